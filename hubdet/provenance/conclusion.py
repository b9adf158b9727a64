"""From the evidence to one short conclusion and its reason, in words.

Rules, in order:

1. A C2PA manifest that fails integrity (hash mismatch, bad signature, malformed, unreadable) -> ``invalid_claim``,
   whatever it declares (the reason says what it declared).
2. A manifest that validates (``Valid``, or ``Trusted`` when trust anchors are configured) decides by the digital
   source types it signs: ``trainedAlgorithmicMedia`` -> ``declared_ai``; ``compositeWithTrainedAlgorithmicMedia`` /
   ``compositeSynthetic`` -> ``declared_ai_edit``; ``digitalCapture`` (and the other capture types) ->
   ``declared_capture``. An ingredient's declaration counts for a ``parentOf`` edit history; an AI ``componentOf``
   ingredient makes the result an AI edit.
3. Otherwise unsigned metadata (XMP / IPTC source type, generator text chunks, EXIF software naming a generator)
   decides the same way, and the reason says it is unsigned and unverified.
4. Nothing -> ``no_claim``, whose reason says that missing metadata proves nothing.

When declarations disagree, the strongest claim of AI involvement wins and the reason names the others. No rule
produces "authentic": a validated ``digitalCapture`` is the signer's claim, not proof.
"""

from __future__ import annotations

from hubdet.provenance.manifest import integrity_failures, manifest_validates
from hubdet.provenance.record import (
    CONCLUSION_RANK,
    SOURCE_TYPE_CONCLUSION,
    C2paEvidence,
    GeneratorInfo,
    SourceTypeClaim,
)

NO_CLAIM_NOTE = ("Missing metadata proves nothing: most platforms, messengers and editors strip it, so this says "
                 "nothing about whether the image is a photograph or generated.")

#: Plain words for the failure codes a reader most often meets.
CODE_WORDS = {
    "assertion.dataHash.mismatch": "the image data changed after signing",
    "assertion.boxesHash.mismatch": "the image data changed after signing",
    "assertion.bmffHash.mismatch": "the media data changed after signing",
    "assertion.hashedURI.mismatch": "an assertion changed after signing",
    "claimSignature.mismatch": "the claim signature does not verify",
    "claimSignature.missing": "the claim is not signed",
    "signingCredential.invalid": "the signing certificate is invalid",
    "signingCredential.revoked": "the signing certificate is revoked",
    "signingCredential.expired": "the signing certificate had expired",
    "signingCredential.untrusted": "the signer is not on a trust list",
}


def _category(claim: SourceTypeClaim) -> str | None:
    category = SOURCE_TYPE_CONCLUSION.get(claim.term)
    if claim.relationship == "componentOf":  # a part of the image, not the image
        return "declared_ai_edit" if category in ("declared_ai", "declared_ai_edit") else None
    return category


def _strongest(claims: list[SourceTypeClaim], generators: list[GeneratorInfo]) -> str | None:
    """The strongest declared category; a generator's name or settings count as ``declared_ai`` unless an explicit
    source type already declares AI involvement (``compositeWithTrainedAlgorithmicMedia`` is more precise)."""
    declared = [c for c in map(_category, claims) if c]
    if generators and not any(c in ("declared_ai", "declared_ai_edit") for c in declared):
        declared.append("declared_ai")
    return max(declared, key=CONCLUSION_RANK.__getitem__, default=None)


def _describe_claims(claims: list[SourceTypeClaim]) -> str:
    return "; ".join(f"{c.where} declares {c.term}" for c in claims)


def _describe_generators(generators: list[GeneratorInfo]) -> str:
    parts = []
    for g in generators:
        details = [f"model {g.model}" if g.model else "", f"seed {g.seed}" if g.seed is not None else ""]
        details = [d for d in details if d]
        parts.append(f"{g.where} names {g.tool}" + (f" ({', '.join(details)})" if details else ""))
    return "; ".join(parts)


def _signer(c2pa: C2paEvidence) -> str:
    who = c2pa.signer_common_name or "an unnamed signer"
    if c2pa.signer_issuer and c2pa.signer_issuer != c2pa.signer_common_name:
        who += f" (issued by {c2pa.signer_issuer})"
    return who


def conclude(c2pa: C2paEvidence, claims: list[SourceTypeClaim], generators: list[GeneratorInfo],
             errors: list[str], checked: list[str]) -> tuple[str, str, bool]:
    """``(conclusion, reason, signed)`` for the evidence of one file (see the module's rules)."""
    signed_claims = [c for c in claims if c.signed]
    c2pa_claims = [c for c in claims if c.where.startswith("C2PA")]
    unsigned_claims = [c for c in claims if not c.where.startswith("C2PA")]
    unsigned = _strongest(unsigned_claims, generators)
    unsigned_words = "; ".join(filter(None, [_describe_claims(unsigned_claims), _describe_generators(generators)]))

    # 1. a manifest that does not hold
    if c2pa.present and c2pa.embedded and not manifest_validates(c2pa):
        failures = integrity_failures(c2pa)
        if failures:
            why = "; ".join(f"{code}: {CODE_WORDS.get(code, 'failed')}" for code in failures)
        elif c2pa.error:
            why = c2pa.error
        else:
            why = f"validation state {c2pa.validation_state or 'unknown'}"
        declared = _describe_claims(c2pa_claims) or "no digital source type"
        reason = (f"A C2PA manifest is present but fails validation ({why}). What it declared ({declared}) cannot be "
                  "relied on; the image may have been altered after signing or the manifest forged or damaged.")
        if unsigned_words:
            reason += f" Unsigned metadata, also unverified: {unsigned_words}."
        return "invalid_claim", reason, False

    # 2. a manifest that validates
    prefix = ""
    if c2pa.present and not c2pa.embedded:
        prefix = (f"The file points to a remote C2PA manifest ({c2pa.remote_url or 'unknown URL'}) that was not "
                  "fetched (offline), so nothing of it was verified. ")
    if c2pa.present and c2pa.embedded:
        trust = ("the signer chains to a configured trust anchor" if c2pa.trusted else
                 "the signer is not on a trust list, so who signed it is unverified")
        head = (f"A C2PA manifest made by {c2pa.claim_generator or 'an unnamed tool'}, signed by {_signer(c2pa)}"
                f"{' at ' + c2pa.signing_time if c2pa.signing_time else ''}, validates (signature and hashes hold; "
                f"{trust}).")
        signed = _strongest(signed_claims, [])
        if signed:
            reason = f"{head} {_describe_claims([c for c in signed_claims if _category(c)])}."
            if signed == "declared_capture":
                reason += " That is the signer's claim of a capture, not proof that the scene is real."
            if unsigned and unsigned != signed:
                reason += f" Unsigned metadata disagrees (not verified): {unsigned_words}."
            return signed, reason, True
        actions = ", ".join(dict.fromkeys(a.action for a in c2pa.actions)) or "no actions"
        others = f" (it declares {', '.join(sorted({c.term for c in signed_claims}))})" if signed_claims else ""
        prefix = f"{head} It records {actions} but no AI, AI-edit or capture source type{others}. "

    # 3. unsigned metadata
    if unsigned:
        return unsigned, (f"{prefix}Unsigned metadata, not verified (anyone can write or remove it): "
                          f"{unsigned_words}."), False
    # 4. nothing
    if errors and not checked:
        return "no_claim", f"{prefix}Nothing could be checked ({errors[0]}). {NO_CLAIM_NOTE}", False
    found = ""
    if unsigned_claims:
        found = f"Recorded but deciding nothing: {_describe_claims(unsigned_claims)}. "
    what = ("other declared digital source type or generator metadata" if prefix else
            "C2PA manifest, declared digital source type or generator metadata")
    incomplete = " Some of the file could not be read (see errors)." if errors else ""
    return "no_claim", f"{prefix}{found}No {what} found.{incomplete} {NO_CLAIM_NOTE}", False
