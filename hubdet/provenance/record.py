"""The provenance record: what an image says about where it came from, and whether that validates.

Strict dataclasses (``StrictConfig``): ``to_dict()`` gives JSON, ``Provenance.from_dict`` reads it back and rejects
unknown keys. The record is evidence, never a score: no conclusion reads as "authentic".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from hubdet._core.config import StrictConfig

Conclusion = Literal["declared_ai", "declared_ai_edit", "declared_capture", "no_claim", "invalid_claim"]
CONCLUSIONS: tuple[str, ...] = ("declared_ai", "declared_ai_edit", "declared_capture", "no_claim", "invalid_claim")

#: IPTC digital source types (https://cv.iptc.org/newscodes/digitalsourcetype/) that decide a conclusion.
#: Anything else (``algorithmicMedia``, ``digitalCreation``, ``humanEdits``, ...) is recorded but decides nothing.
SOURCE_TYPE_CONCLUSION: dict[str, str] = {
    "trainedAlgorithmicMedia": "declared_ai",
    "compositeWithTrainedAlgorithmicMedia": "declared_ai_edit",
    "compositeSynthetic": "declared_ai_edit",
    "digitalCapture": "declared_capture",
    "computationalCapture": "declared_capture",
    "compositeCapture": "declared_capture",
    "negativeFilm": "declared_capture",
    "positiveFilm": "declared_capture",
    "print": "declared_capture",
}

#: When several declarations disagree, the stronger claim of AI involvement decides.
CONCLUSION_RANK = {"declared_ai": 3, "declared_ai_edit": 2, "declared_capture": 1}


def source_type_term(value: str) -> str:
    """The IPTC term of a digital source type: its IRI's last path segment (``.../trainedAlgorithmicMedia``)."""
    text = value.strip().rstrip("/")
    for sep in ("/", "#", ":"):
        if sep in text:
            text = text.rsplit(sep, 1)[-1]
    return text


@dataclass
class ValidationCode(StrictConfig):
    """One C2PA validation status code, e.g. ``assertion.dataHash.mismatch`` (status ``failure``)."""

    code: str
    status: Literal["success", "informational", "failure"]
    explanation: str = ""
    scope: Literal["active_manifest", "ingredient"] = "active_manifest"


@dataclass
class C2paAction(StrictConfig):
    """One action of a ``c2pa.actions`` assertion."""

    action: str
    digital_source_type: str | None = None
    software_agent: str | None = None
    description: str | None = None


@dataclass
class C2paIngredient(StrictConfig):
    """An ingredient of the active manifest (the file it was made from or composed with)."""

    title: str | None = None
    format: str | None = None
    relationship: str | None = None
    has_manifest: bool = False


@dataclass
class SourceTypeClaim(StrictConfig):
    """A declared digital source type, where it was found, and whether a validated C2PA signature covers it."""

    term: str
    value: str
    where: str
    signed: bool = False
    relationship: str | None = None  # None: the file's own; else how the declaring ingredient was used


@dataclass
class C2paEvidence(StrictConfig):
    """What the C2PA reader found. ``checked`` is False when c2pa-python is missing or the file unreadable."""

    checked: bool = False
    present: bool = False
    embedded: bool = True
    remote_url: str | None = None
    validation_state: str | None = None
    claim_generator: str | None = None
    title: str | None = None
    signer_issuer: str | None = None
    signer_common_name: str | None = None
    signing_time: str | None = None
    signature_alg: str | None = None
    actions: list[C2paAction] = field(default_factory=list)
    ingredients: list[C2paIngredient] = field(default_factory=list)
    validation_codes: list[ValidationCode] = field(default_factory=list)
    manifest_count: int = 0
    error: str | None = None

    @property
    def failures(self) -> list[str]:
        """The failure codes of the active manifest (``signingCredential.untrusted`` included)."""
        return [c.code for c in self.validation_codes if c.status == "failure" and c.scope == "active_manifest"]

    @property
    def trusted(self) -> bool:
        """True only when the signer chains to a configured trust anchor (none are configured by default)."""
        return self.validation_state == "Trusted"


@dataclass
class GeneratorInfo(StrictConfig):
    """Settings a generator front-end wrote into the file (unsigned: anyone can write or remove them)."""

    tool: str
    where: str
    prompt: str | None = None
    negative_prompt: str | None = None
    steps: int | None = None
    sampler: str | None = None
    cfg_scale: float | None = None
    seed: int | None = None
    size: str | None = None
    model: str | None = None
    model_hash: str | None = None
    checkpoints: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Provenance(StrictConfig):
    """Everything :func:`hubdet.provenance.inspect` found in one file, and what it amounts to.

    ``conclusion`` is one of :data:`CONCLUSIONS`; ``reason`` says why in words; ``signed`` is True when the
    conclusion rests on a C2PA manifest whose signature and hashes validated (the signer may still be unknown:
    see ``c2pa.validation_state``). ``errors`` lists what could not be read.
    """

    source: str
    conclusion: Conclusion = "no_claim"
    reason: str = ""
    signed: bool = False
    format: str | None = None
    c2pa: C2paEvidence = field(default_factory=C2paEvidence)
    source_types: list[SourceTypeClaim] = field(default_factory=list)
    software: dict[str, str] = field(default_factory=dict)
    generators: list[GeneratorInfo] = field(default_factory=list)
    checked: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One line for a table cell or a panel title, e.g. ``declared_ai (C2PA, signer not on a trust list)``."""
        bits: list[str] = []
        c = self.c2pa
        if self.conclusion == "invalid_claim":
            failures = [f for f in c.failures if f != "signingCredential.untrusted"]
            bits.append("C2PA fails validation: " + (", ".join(failures) if failures else "malformed manifest"))
        elif self.signed:
            bits.append("C2PA" + ("" if c.trusted else ", signer not on a trust list"))
        elif c.present and not c.embedded:
            bits.append("remote C2PA manifest not fetched")
        elif c.present:
            bits.append("valid C2PA manifest without an AI or capture source type")
        if not self.signed and self.conclusion not in ("no_claim", "invalid_claim"):
            bits.append("unsigned metadata")
        tools = sorted({g.tool for g in self.generators})
        if tools:
            bits.append("+".join(tools))
        if self.errors:
            bits.append(f"{len(self.errors)} read error(s)")
        return self.conclusion + (f" ({', '.join(bits)})" if bits else "")

    def details(self) -> str:
        """The record as a few indented lines of text (``hubdet provenance`` prints these)."""
        lines = [f"{self.source}: {self.conclusion}", f"  reason: {self.reason}"]
        c = self.c2pa
        if c.present and not c.embedded:
            lines.append(f"  c2pa: {c.error}")
        elif c.present:
            lines.append(f"  c2pa: state {c.validation_state or '-'}; generator {c.claim_generator or '-'}; signer "
                         f"{c.signer_common_name or '-'} / {c.signer_issuer or '-'}; time {c.signing_time or '-'}")
            if c.actions:
                lines.append("  c2pa actions: " + ", ".join(
                    a.action + (f" [{source_type_term(a.digital_source_type)}]" if a.digital_source_type else "")
                    for a in c.actions))
            if c.ingredients:
                lines.append("  c2pa ingredients: " + ", ".join(
                    f"{i.title} ({i.relationship or '-'}{', has manifest' if i.has_manifest else ''})"
                    for i in c.ingredients))
            lines.append(f"  c2pa failure codes: {', '.join(c.failures) or 'none'}")
        for claim in self.source_types:
            if not claim.where.startswith("C2PA"):
                lines.append(f"  source type: {claim.term} ({claim.where}, unsigned)")
        for g in self.generators:
            settings = [f"{k} {v}" for k, v in (("model", g.model), ("steps", g.steps), ("sampler", g.sampler),
                                                 ("cfg", g.cfg_scale), ("seed", g.seed), ("size", g.size))
                        if v is not None]
            lines.append(f"  generator: {g.tool} ({g.where})" + (f": {', '.join(settings)}" if settings else ""))
            if g.prompt:
                lines.append(f"    prompt: {g.prompt[:160]}{'...' if len(g.prompt) > 160 else ''}")
        lines += [f"  {key}: {value[:120]}" for key, value in self.software.items()]
        lines += [f"  error: {e}" for e in self.errors]
        return "\n".join(lines)
