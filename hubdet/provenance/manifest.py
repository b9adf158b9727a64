"""C2PA Content Credentials, read and validated with the Content Authenticity Initiative's ``c2pa-python``.

Offline by design: remote manifests and OCSP are never fetched. No trust list is configured unless the caller
passes trust anchors (or sets ``HUBDET_C2PA_TRUST_ANCHORS`` to a PEM file), so a manifest that validates is
normally ``Valid`` with ``signingCredential.untrusted``: the signature and hashes hold, the signer's name is unverified.
"""

from __future__ import annotations

import io
import json
import logging
import os
import threading
from pathlib import Path
from typing import Any

from hubdet.provenance.record import (
    C2paAction,
    C2paEvidence,
    C2paIngredient,
    SourceTypeClaim,
    ValidationCode,
    source_type_term,
)

logger = logging.getLogger(__name__)

#: Codes that are about trust, not integrity: a manifest failing only these still validates.
TRUST_ONLY_FAILURES = frozenset({"signingCredential.untrusted"})

#: Markers of a JUMBF manifest store in the raw bytes (a JUMBF description box type and the C2PA label): when they
#: are present but the reader finds or parses nothing, the file carries a damaged manifest rather than none. (XMP's
#: ``dcterms:provenance`` pointer, ``self#jumbf=/c2pa/...``, left behind when an editor strips a manifest, has no
#: ``jumd`` box type and does not count.)
_JUMBF_MARKERS = (b"jumd", b"c2pa")

_MAX_INGREDIENT_DEPTH = 8

_contexts: dict[tuple[int, str | None], Any] = {}  # keyed by process too: a forked child builds its own
_lock = threading.Lock()


def c2pa_available() -> bool:
    """True if ``c2pa-python`` can be imported (the check itself imports it lazily)."""
    try:
        import c2pa  # noqa: F401
    except ImportError:
        return False
    return True


def _context(trust_anchors: str | None) -> Any:
    """One shared, offline c2pa ``Context`` per trust-anchor file (created on first use)."""
    import c2pa

    key = (os.getpid(), trust_anchors)
    with _lock:
        if key not in _contexts:
            settings: dict[str, Any] = {"verify": {"remote_manifest_fetch": False, "ocsp_fetch": False}}
            if trust_anchors:
                try:
                    pem = Path(trust_anchors).read_text(encoding="utf-8")
                except (OSError, UnicodeDecodeError) as exc:
                    raise FileNotFoundError(f"C2PA trust anchors {trust_anchors}: cannot read ({exc})") from exc
                if "-----BEGIN CERTIFICATE-----" not in pem:
                    raise ValueError(f"C2PA trust anchors {trust_anchors}: no PEM certificate in the file")
                settings["trust"] = {"trust_anchors": pem}
            try:
                _contexts[key] = c2pa.Context.from_dict(settings)
            except c2pa.C2paError as exc:
                raise ValueError(f"C2PA trust anchors {trust_anchors}: refused by c2pa ({exc})") from exc
        return _contexts[key]


def has_jumbf_markers(data: bytes) -> bool:
    """True if the bytes contain what a C2PA JUMBF box starts with (a hint, not a parse)."""
    return all(marker in data for marker in _JUMBF_MARKERS)


def _agent(value: Any) -> str | None:
    if isinstance(value, dict):
        name = value.get("name")
        version = value.get("version")
        return f"{name}/{version}" if name and version else (str(name) if name else None)
    return str(value) if value else None


def _claim_generator(manifest: dict[str, Any]) -> str | None:
    if manifest.get("claim_generator"):
        return str(manifest["claim_generator"])
    infos = manifest.get("claim_generator_info") or []
    names = [_agent(i) for i in infos if isinstance(i, dict)]
    return " ".join(n for n in names if n) or None


def _actions(manifest: dict[str, Any]) -> list[C2paAction]:
    out: list[C2paAction] = []
    for assertion in manifest.get("assertions") or []:
        if not isinstance(assertion, dict) or not str(assertion.get("label", "")).startswith("c2pa.actions"):
            continue
        for act in (assertion.get("data") or {}).get("actions") or []:
            if not isinstance(act, dict):
                continue
            params = act.get("parameters") if isinstance(act.get("parameters"), dict) else {}
            dst = act.get("digitalSourceType") or params.get("digitalSourceType")
            out.append(C2paAction(
                action=str(act.get("action", "")),
                digital_source_type=str(dst) if dst else None,
                software_agent=_agent(act.get("softwareAgent")),
                description=str(act["description"]) if act.get("description") else None,
            ))
    return out


def _find_source_types(value: Any, path: str, found: list[tuple[str, str]], depth: int = 0) -> None:
    """Every ``*DigitalSourceType`` value in a (non-actions) assertion, e.g. IPTC photo metadata in C2PA."""
    if depth > 12:
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if str(key).lower().endswith("digitalsourcetype") and isinstance(item, str):
                found.append((item, f"{path}.{key}"))
            else:
                _find_source_types(item, path, found, depth + 1)
    elif isinstance(value, list):
        for item in value:
            _find_source_types(item, path, found, depth + 1)


def _manifest_source_types(manifest: dict[str, Any], where: str, signed: bool,
                           relationship: str | None = None) -> list[SourceTypeClaim]:
    claims = [
        SourceTypeClaim(term=source_type_term(a.digital_source_type), value=a.digital_source_type,
                        where=f"{where}, action {a.action}", signed=signed, relationship=relationship)
        for a in _actions(manifest) if a.digital_source_type
    ]
    for assertion in manifest.get("assertions") or []:
        if isinstance(assertion, dict) and not str(assertion.get("label", "")).startswith("c2pa.actions"):
            found: list[tuple[str, str]] = []
            _find_source_types(assertion.get("data"), f"{where}, assertion {assertion.get('label')}", found)
            claims += [SourceTypeClaim(term=source_type_term(v), value=v, where=w, signed=signed,
                                       relationship=relationship) for v, w in found]
    return claims


def _codes(results: dict[str, Any]) -> list[ValidationCode]:
    codes: list[ValidationCode] = []

    def add(group: dict[str, Any], scope: str) -> None:
        for status in ("failure", "informational", "success"):
            for item in group.get(status) or []:
                if isinstance(item, dict) and item.get("code"):
                    codes.append(ValidationCode(code=str(item["code"]), status=status,
                                                explanation=str(item.get("explanation") or ""), scope=scope))

    add(results.get("activeManifest") or {}, "active_manifest")
    for delta in results.get("ingredientDeltas") or []:
        add((delta or {}).get("validationDeltas") or {}, "ingredient")
    return codes


def _ingredient_claims(store: dict[str, Any], manifest: dict[str, Any], signed: bool, via: str | None = None,
                       depth: int = 0, seen: set[str] | None = None) -> list[SourceTypeClaim]:
    """Source types declared by the manifests of ingredients, walked down the edit history.

    ``relationship`` of a claim is ``parentOf`` only if every link above it is ``parentOf`` (an edit of an edit);
    one ``componentOf`` (or ``inputTo``) link makes it ``componentOf``.
    """
    seen = set() if seen is None else seen
    claims: list[SourceTypeClaim] = []
    if depth >= _MAX_INGREDIENT_DEPTH:
        return claims
    for ing in manifest.get("ingredients") or []:
        label = ing.get("active_manifest") if isinstance(ing, dict) else None
        if not label or label in seen or not isinstance(store.get(label), dict):
            continue
        seen.add(label)
        rel = "parentOf" if ing.get("relationship") == "parentOf" and via in (None, "parentOf") else "componentOf"
        where = f"C2PA ingredient {ing.get('title')!r} ({ing.get('relationship', 'componentOf')})"
        claims += _manifest_source_types(store[label], where, signed, rel)
        claims += _ingredient_claims(store, store[label], signed, rel, depth + 1, seen)
    return claims


def read_c2pa(data: bytes, mime: str | None, *, trust_anchors: str | None = None
              ) -> tuple[C2paEvidence, list[SourceTypeClaim], list[str]]:
    """Read the C2PA manifest store of ``data``: the evidence, the declared source types, and read errors.

    Problems of the file are returned as errors; an unreadable ``trust_anchors`` file raises (a caller's error).
    """
    try:
        import c2pa
    except ImportError:
        return C2paEvidence(), [], ["c2pa-python is not installed: C2PA Content Credentials were not checked"]
    context = _context(trust_anchors or os.environ.get("HUBDET_C2PA_TRUST_ANCHORS") or None)
    evidence = C2paEvidence(checked=True)
    try:
        reader = c2pa.Reader.try_create(mime, io.BytesIO(data), None, context)
        if reader is None:
            if has_jumbf_markers(data):
                evidence.present = True
                evidence.error = "bytes of a C2PA manifest store (JUMBF) are present but the reader found no manifest"
                return evidence, [], [f"C2PA: {evidence.error}"]
            return evidence, [], []
        with reader:
            store = json.loads(reader.json())
    except c2pa.C2paError as exc:
        message = str(exc) or type(exc).__name__
        kind = type(exc).__name__.lstrip("_").removeprefix("C2pa") or "Error"
        if kind in ("RemoteManifest", "Remote") or message.startswith("Remote"):
            evidence.present, evidence.embedded = True, False
            evidence.remote_url = message.rsplit(" ", 1)[-1] if "http" in message else None
            evidence.error = f"the manifest is remote ({evidence.remote_url or 'unknown URL'}) and was not fetched"
            return evidence, [], []
        if kind == "NotSupported" and not has_jumbf_markers(data):
            evidence.checked = False
            return evidence, [], [f"C2PA: not checked, the reader does not support this file type ({message})"]
        evidence.present = evidence.checked = has_jumbf_markers(data)
        evidence.error = f"{kind}: {message}" if not message.startswith(kind) else message
        what = "a C2PA manifest is present but malformed" if evidence.present else "the C2PA reader failed"
        return evidence, [], [f"C2PA: {what} ({evidence.error})"]
    except (OSError, ValueError, UnicodeDecodeError) as exc:  # json, encoding or stream trouble in the binding
        evidence.checked = False
        evidence.error = f"{type(exc).__name__}: {exc}"
        return evidence, [], [f"C2PA: could not read the manifest ({evidence.error})"]

    manifests = store.get("manifests") or {}
    active = manifests.get(store.get("active_manifest") or "") or {}
    evidence.present = True
    evidence.manifest_count = len(manifests)
    evidence.validation_state = store.get("validation_state")
    evidence.validation_codes = _codes(store.get("validation_results") or {})
    if not evidence.validation_codes:  # older stores carry only the flat failure list
        evidence.validation_codes = [
            ValidationCode(code=str(s.get("code")), status="failure", explanation=str(s.get("explanation") or ""))
            for s in store.get("validation_status") or [] if isinstance(s, dict) and s.get("code")
        ]
    if not active:
        evidence.error = "the manifest store has no active manifest"
        return evidence, [], [f"C2PA: {evidence.error}"]
    sig = active.get("signature_info") or {}
    evidence.claim_generator = _claim_generator(active)
    evidence.title = active.get("title")
    evidence.signer_issuer = sig.get("issuer")
    evidence.signer_common_name = sig.get("common_name")
    evidence.signing_time = sig.get("time")
    evidence.signature_alg = sig.get("alg")
    evidence.actions = _actions(active)
    evidence.ingredients = [
        C2paIngredient(title=i.get("title"), format=i.get("format"), relationship=i.get("relationship"),
                       has_manifest=bool(i.get("active_manifest")))
        for i in active.get("ingredients") or [] if isinstance(i, dict)
    ]
    signed = manifest_validates(evidence)
    claims = _manifest_source_types(active, "C2PA active manifest", signed)
    claims += _ingredient_claims(manifests, active, signed)
    return evidence, claims, []


def manifest_validates(evidence: C2paEvidence) -> bool:
    """True when the manifest's signature and hashes hold (the signer may be untrusted)."""
    if not evidence.present or evidence.error or evidence.validation_state not in ("Valid", "Trusted"):
        return False
    return not integrity_failures(evidence)


def integrity_failures(evidence: C2paEvidence) -> list[str]:
    """Failure codes of the active manifest other than the signer being off a trust list."""
    return [code for code in evidence.failures if code not in TRUST_ONLY_FAILURES]
