"""The one resolver: a string (a *detector spec*) -> a loaded detector, with where its weights came from.

Spec grammar::

    spec    := [kind ":"] target
    kind    := "hubdet" | "transformers" | "timm" | "hf-hub" (= timm) | "onnx" | "registry"
    target  := FOLDER | FILE.onnx | "pkg:" PACKAGE "/" PATH.onnx | ORG "/" NAME ["@" REVISION] | ARCH "." TAG

Without a kind, an existing local path is loaded from what it holds; ``ARCH.TAG`` is a registered variant (random
weights: a warning says its verdicts mean nothing); ``ORG/NAME[@REVISION]`` is a Hugging Face Hub model repository
(downloaded to the cache; offline: from the cache). The kind of a folder or repository is read from its files:

- ``config.json`` with ``family``: a hubdet checkpoint (any family; strict, safetensors only, manifest checked);
- ``config.json`` with ``architecture`` and ``pretrained_cfg``: a timm checkpoint;
- ``config.json`` with ``id2label``/``architectures``/``model_type``: a transformers image classifier;
- an ``.onnx`` file (with an optional sidecar ``<name>.json``): an ONNX image classifier.

Outside models become first-class detectors through the adapter families (``transformers``, ``timm``, ``onnx``):
keyword ``overrides`` go to them (``fake_labels=``, and for ONNX the input/output description); for a registered
variant they are the family's arguments, as in :func:`~hubdet.models.create_detector`. Pickle files and remote
code are never loaded.

Every loaded detector carries :class:`Provenance` (``detector.provenance``): the spec, where the folder came from,
the resolved Hub commit and :func:`~hubdet.models.integrity.weights_sha256` of its state files, the one digest that
results, cards, leaderboard rows and the app's ensemble-member sharing record (:func:`weights_record`).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
import tempfile
from pathlib import Path
from typing import Any

from hubdet._core.errors import CheckpointError, ConfigError, HubdetError
from hubdet.models import integrity

logger = logging.getLogger(__name__)

KINDS = ("hubdet", "transformers", "timm", "onnx", "registry")
PREFIXES = {"hubdet": "hubdet", "transformers": "transformers", "timm": "timm", "hf-hub": "timm", "onnx": "onnx",
            "registry": "registry"}
#: the adapter family that loads each outside kind
ADAPTERS = {"transformers": "transformers", "timm": "timm", "onnx": "onnx"}
_REPO_RE = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$")
_REGISTRY_RE = re.compile(r"^[a-z0-9_]+\.[a-z0-9_]+$")
#: files fetched from a Hub repository of each kind (everything for hubdet checkpoints)
_HUB_PATTERNS: dict[str, list[str] | None] = {
    "hubdet": None,
    "transformers": ["*.json", "*.safetensors", "*.md"],
    "timm": ["*.json", "*.safetensors", "*.md"],
    "onnx": ["*.json", "*.onnx", "*.onnx_data", "*.md"],
}
GRAMMAR = ("a local folder (or .onnx file), a Hub repo id 'org/name' or 'org/name@revision', or a registered "
           "'arch.tag'; prefix 'hubdet:', 'transformers:', 'timm:' (or 'hf-hub:'), 'onnx:' or 'registry:' to force "
           "the kind")


class SpecError(HubdetError, ValueError):
    """A detector spec that names nothing loadable; the message says what was expected."""


@dataclasses.dataclass
class Spec:
    """A parsed detector spec (see the module docstring)."""

    text: str
    kind: str | None  # forced by a prefix
    target: str
    revision: str | None = None

    @property
    def is_local(self) -> bool:
        return self.target.startswith(integrity.PACKAGE_PREFIX) or Path(self.target).expanduser().exists()

    @property
    def is_hub(self) -> bool:
        return not self.is_local and bool(_REPO_RE.match(self.target)) and not self.target.startswith((".", "~"))

    @property
    def is_registry(self) -> bool:
        return self.kind == "registry" or (self.kind is None and not self.is_local
                                           and bool(_REGISTRY_RE.match(self.target)))


@dataclasses.dataclass
class Provenance:
    """Where a detector's weights came from and which they are."""

    spec: str  # as given
    kind: str  # folder | hub | registry | object (the result schema's model kinds)
    format: str  # hubdet | transformers | timm | onnx | registry | object
    id: str  # the folder, repo id or registry name
    revision: str | None = None  # the resolved Hub commit
    sha256: str | None = None  # integrity.weights_sha256 of the state files (None: random weights)
    files: dict[str, str] = dataclasses.field(default_factory=dict)  # state file -> content digest
    verified: bool = False  # the files matched a manifest written at save time
    tensors_sha256: str | None = None  # digest of the in-memory tensors right after loading (detects later changes)

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in dataclasses.asdict(self).items() if k != "tensors_sha256"}


def parse_spec(spec: str) -> Spec:
    """Split ``[kind:]target[@revision]`` (see the module docstring); nothing is loaded or checked remotely."""
    text = str(spec).strip()
    if not text:
        raise SpecError(f"empty detector spec; give {GRAMMAR}")
    kind = None
    head, sep, rest = text.partition(":")
    if sep and head in PREFIXES:
        kind, target = PREFIXES[head], rest.strip()
    elif sep and head and not Path(text).expanduser().exists() and head not in ("pkg",) and "/" not in head:
        raise SpecError(f"{text!r}: unknown prefix {head!r}; give {GRAMMAR}")
    else:
        target = text
    revision = None
    if "@" in target and not Path(target).expanduser().exists() and not target.startswith(integrity.PACKAGE_PREFIX):
        target, revision = target.rsplit("@", 1)
        if not revision or not _REPO_RE.match(target):
            raise SpecError(f"{text!r}: '@revision' goes after a Hub repo id 'org/name'")
    if not target:
        raise SpecError(f"{text!r}: nothing after the prefix; give {GRAMMAR}")
    return Spec(text, kind, target, revision)


def check_spec(spec: str) -> str | None:
    """Why ``spec`` cannot name a detector, from cheap checks only (syntax, a missing local path, an unknown
    registry name), or None. Nothing is loaded or downloaded."""
    try:
        s = parse_spec(spec)
    except SpecError as exc:
        return str(exc)
    if s.is_local or s.is_hub:
        return None
    if s.is_registry:
        from hubdet.models._registry import DETECTORS

        return None if s.target in DETECTORS else f"{s.target!r} is not a registered detector"
    if s.target.startswith((".", "/", "~")) or "/" in s.target:
        return f"{s.target}: not found (no such file or folder, and not a Hub repo id)"
    return f"{spec!r} is not {GRAMMAR}"


def default_name(spec: str) -> str:
    """A short display name for a spec: the folder's or repo's last part, or the registry name."""
    s = parse_spec(spec)
    if s.is_registry:
        return s.target
    return Path(s.target.rstrip("/")).stem if s.target.endswith(".onnx") else Path(s.target.rstrip("/")).name


def detect_kind(path: Path, *, where: str = "") -> str:
    """The kind of checkpoint a folder (or file) holds; see the module docstring."""
    where = where or str(path)
    if path.is_file():
        if path.suffix == ".onnx":
            return "onnx"
        raise SpecError(f"{where}: a file that is not .onnx; give a checkpoint folder or an .onnx file")
    cfg = path / "config.json"
    if cfg.is_file():
        try:
            data = json.loads(cfg.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise CheckpointError(f"{cfg}: invalid JSON ({exc})") from exc
        if not isinstance(data, dict):
            raise CheckpointError(f"{cfg}: not a JSON object")
        if "family" in data:
            return "hubdet"
        if "architecture" in data and ("pretrained_cfg" in data or "num_classes" in data):
            return "timm"
        if {"id2label", "architectures", "model_type"} & set(data):
            return "transformers"
    if any(path.glob("*.onnx")):
        return "onnx"
    found = sorted(p.name for p in path.iterdir())[:12] if path.is_dir() else []
    raise SpecError(
        f"{where}: not an image classifier hubdet can load: no hubdet config.json (with 'family'), transformers "
        f"config.json (with 'id2label'/'architectures'), timm config.json (with 'architecture' and "
        f"'pretrained_cfg') or .onnx file (found {found}). Force the kind with a prefix ({', '.join(PREFIXES)})."
    )


def load_detector(spec: Any, *, revision: str | None = None, verify: bool = True, **overrides: Any) -> Any:
    """Load the detector ``spec`` names (see the module docstring); ``detector.provenance`` says which weights.

    ``revision`` pins a Hub commit (as ``org/name@revision`` does); ``verify=False`` skips the manifest check (only
    for weights edited on purpose). ``overrides`` go to the adapter (e.g. ``fake_labels=["artificial"]``) or, for a
    registered variant, to :func:`~hubdet.models.create_detector`.
    """
    from hubdet.models.base import Detector

    if isinstance(spec, Detector):
        if overrides:
            raise ConfigError(f"load_detector: overrides {sorted(overrides)} need a spec, not a loaded detector")
        return spec
    if isinstance(spec, Path):
        spec = str(spec)
    s = parse_spec(spec)
    rev = revision or s.revision
    with integrity.verification(verify and integrity.verifying()):
        if s.is_registry:
            return _load_registry(s, overrides)
        if s.is_local:
            if rev:
                raise SpecError(f"{s.text!r}: a revision only applies to Hub repo ids, not local paths")
            path = (integrity.resolve_file(".", s.target) if s.target.startswith(integrity.PACKAGE_PREFIX)
                    else Path(s.target).expanduser())
            kind = s.kind or detect_kind(path)
            detector = _load_path(path, kind, overrides, where=s.target)
            source_kind, repo_rev = "folder", None
        elif s.is_hub:
            path, kind, repo_rev = _fetch(s, rev)
            detector = _load_path(path, kind, overrides, where=s.target + (f"@{rev}" if rev else ""))
            source_kind = "hub"
        else:
            raise SpecError(check_spec(s.text) or f"{s.text!r} is not {GRAMMAR}")
    prov = detector.provenance
    prov.spec, prov.kind, prov.id, prov.revision = s.text, source_kind, s.target, repo_rev
    return detector


def from_pretrained(path_or_repo_id: Any, *, revision: str | None = None, verify: bool = True) -> Any:
    """Load a checkpoint folder or Hub repo (any kind the resolver knows; not a registry name)."""
    s = parse_spec(str(path_or_repo_id))
    if s.is_registry and not s.is_local:
        raise FileNotFoundError(f"{path_or_repo_id}: no such folder (a registry name: use create_detector or "
                                "load_detector for random weights)")
    return load_detector(path_or_repo_id, revision=revision, verify=verify)


def weights_record(detector: Any) -> Provenance:
    """Which weights ``detector`` holds *now*: its load-time :class:`Provenance` while its tensors are unchanged,
    else (built or trained in memory) the digest of what :meth:`save_pretrained` would write, computed on a
    temporary copy. Random weights (a registry variant) keep ``kind="registry"``, with their digest."""
    prov = detector.provenance
    unchanged = prov is not None and (prov.tensors_sha256 is None or prov.tensors_sha256 == tensors_sha256(detector))
    if unchanged and prov.sha256:
        return prov
    with tempfile.TemporaryDirectory() as tmp:
        detector.save_pretrained(tmp, card=False)
        manifest = json.loads((Path(tmp) / "config.json").read_text())[integrity.MANIFEST_KEY]
    digest = integrity.weights_sha256(manifest, {**_external(detector.config), **detector.component_sha256()})
    if unchanged:  # random registry weights: digested on first use
        prov.sha256, prov.files = digest, manifest
        return prov
    name = detector.config.name or detector.family
    return Provenance(spec=prov.spec if prov else name, kind="object", format="object", id=prov.id if prov else name,
                      sha256=digest, files=manifest)


def tensors_sha256(detector: Any) -> str:
    """Content digest of the tensors ``save_pretrained`` would write (the same definition as a saved
    ``model.safetensors``'s :func:`~hubdet.models.integrity.content_sha256`), computed in memory."""
    from hubdet.models.integrity import tensors_sha256 as digest

    return digest(detector.tensors_to_save())


def detector_for_training(spec: str, *, revision: str | None = None, verify: bool = True,
                          family: str | None = None) -> Any:
    """The detector a training run starts from (``--init_from``): resolved like any spec, then put in train mode;
    its :class:`Provenance` is recorded in ``config.metadata["init_from"]`` so the card says which weights training
    started from. ``family`` refuses a checkpoint of another family."""
    detector = load_detector(spec, revision=revision, verify=verify)
    if family is not None and detector.family != family:
        raise ConfigError(f"--init_from {spec!r} is a {detector.family!r} detector, not {family!r}")
    record = weights_record(detector).to_dict()
    detector.config.metadata["init_from"] = {k: record[k] for k in ("spec", "kind", "format", "id", "revision",
                                                                       "sha256")}
    detector.provenance = None  # training changes the weights: later records describe the trained ones
    detector.train()
    return detector


# --------------------------------------------------------------------------- kinds


def _load_registry(s: Spec, overrides: dict[str, Any]) -> Any:
    from hubdet.models._registry import create_detector

    logger.warning("%s is a registry name: an UNTRAINED detector (random weights), its verdicts mean nothing",
                   s.target)
    detector = create_detector(s.target, **overrides)
    detector.eval()
    detector.provenance = Provenance(spec=s.text, kind="registry", format="registry", id=s.target,
                                     tensors_sha256=tensors_sha256(detector))
    return detector


def _fetch(s: Spec, revision: str | None) -> tuple[Path, str, str | None]:
    """Download (or find in the cache) what a Hub spec needs; return the folder, its kind and the commit."""
    from hubdet._core.hub import local_or_snapshot

    kind = s.kind
    if kind is None:  # the configs first, to tell the kind before fetching weights
        probe = local_or_snapshot(s.target, revision=revision, allow_patterns=["*.json", "*.md"])
        if not any(probe.glob("*.json")):  # perhaps an ONNX model with no config: fetch the graphs, then tell
            probe = local_or_snapshot(s.target, revision=revision, allow_patterns=_HUB_PATTERNS["onnx"])
        kind = detect_kind(probe, where=s.target)
    folder = local_or_snapshot(s.target, revision=revision, allow_patterns=_HUB_PATTERNS[kind])
    commit = folder.name if folder.parent.name == "snapshots" else revision
    return folder, kind, commit


def _load_path(path: Path, kind: str, overrides: dict[str, Any], *, where: str) -> Any:
    if kind == "hubdet":
        if path.is_file():
            raise SpecError(f"{where}: a hubdet checkpoint is a folder")
        detector = _load_hubdet_folder(path, overrides)
    elif kind in ADAPTERS:
        from hubdet.models._registry import FAMILIES

        cls = FAMILIES.get(ADAPTERS[kind])
        detector = cls.from_source(path, where=where, **overrides)
        # the tensors as loaded (the outside file's key names may differ) and any other state file (an ONNX graph):
        # the digests a save_pretrained copy of this detector has too, so the two are recognised as the same weights
        tensors = tensors_sha256(detector)
        digests = {name: integrity.content_sha256(p) for name, p in detector.source_files(path).items()}
        digests["model.safetensors"] = tensors
        detector.provenance = Provenance(spec=where, kind="folder", format=kind, id=where,
                                         sha256=integrity.weights_sha256(digests), files=digests,
                                         tensors_sha256=tensors)
        logger.info("%s: an outside %s model (no hubdet manifest to verify)", where, kind)
    else:
        raise SpecError(f"{where}: unknown kind {kind!r} (one of {KINDS})")
    detector.eval()
    return detector


def _load_hubdet_folder(folder: Path, overrides: dict[str, Any]) -> Any:
    """A hubdet checkpoint of any family: strict, safetensors only, its manifest checked (unless not verifying)."""
    from hubdet.models._registry import FAMILIES
    from hubdet.models.base import CONFIG_NAME, WEIGHTS_NAME
    from hubdet.models.config import DetectorConfig

    if overrides:
        raise ConfigError(f"{folder}: a saved hubdet checkpoint takes no overrides (got {sorted(overrides)})")
    cfg_path = folder / CONFIG_NAME
    if not cfg_path.is_file():
        raise CheckpointError(f"{folder}: no {CONFIG_NAME} (is this a hubdet checkpoint folder?)")
    if not (folder / WEIGHTS_NAME).is_file():
        pickles = [p.name for p in folder.glob("*.bin")] + [p.name for p in folder.glob("*.pt*")]
        extra = f" (found {pickles}: pickle checkpoints are never loaded)" if pickles else ""
        raise CheckpointError(f"{folder}: no {WEIGHTS_NAME}{extra}")
    try:
        data = json.loads(cfg_path.read_text())
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{cfg_path}: invalid JSON ({exc})") from exc
    config = DetectorConfig.from_dict(data, where=str(cfg_path))
    manifest = config.file_sha256
    verified = False
    if manifest is None:
        logger.info("%s: no file manifest (saved before hubdet wrote one): its weights are not verified", folder)
        digests = {name: integrity.content_sha256(folder / name) for name in integrity.state_files(folder)}
    elif integrity.verifying():
        digests = integrity.verify_manifest(folder, manifest)
        verified = True
    else:
        logger.warning("%s: loading WITHOUT checking its file manifest (verify=False)", folder)
        digests = {ref: integrity.content_sha256(integrity.resolve_file(folder, ref)) for ref in manifest}
    cls = FAMILIES.get(config.family)
    detector = cls.from_folder(folder, config)
    parts = {**_external(config), **detector.component_sha256()}
    detector.provenance = Provenance(spec=str(folder), kind="folder", format="hubdet", id=str(folder),
                                     sha256=integrity.weights_sha256(digests, parts),
                                     files=digests, verified=verified, tensors_sha256=tensors_sha256(detector))
    return detector


def _external(config: Any) -> dict[str, str]:
    """Frozen weights loaded by name (``config.external_weights``, when the config has that field)."""
    return dict(getattr(config, "external_weights", None) or {})
