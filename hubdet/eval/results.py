"""The versioned JSON result of one evaluation (one model on one source/split), and its validation.

A result file holds one result object or a JSON list of them. Layout (``PROTOCOL_VERSION`` 1)::

    {"schema": "hubdet-eval-result", "protocol_version": 1, "hubdet_version": "0.1.0", "date": "<ISO UTC>",
     "model":   {"id", "kind" (folder|hub|registry|object), "name", "family", "revision", "weights_sha256",
                 "random_init", "training_source", "threshold", "calibration"},
     "dataset": {"name", "split", "data_dir", "repo_id", "revision", "fingerprint", "n_images", "limit",
                 "streaming", "reencode"},
     "suite": {"name", "version"} | null, "primary_metric": "roc_auc",
     "metrics": {...},                      # clean data: binary metrics (+ box metrics for box detectors)
     "per_generator": {gen: {...}},         # each fake generator against all reals
     "per_source": {source: {...}},
     "perturbations": {name: {"spec": {...}, "metrics": {...}, "drop": {...}}},
     "timing": {"seconds", "images_per_second", "n_forward", "batch_size", "device", "num_processes"},
     "cannot_judge": {perturbation: {"count", "files": [{"file", "reason"}]}},  # only when some image was not judged
     "provenance": {"checked", "with_claim", "per_conclusion", "per_class", "provenance_shortcut", ...} | null}
                                            # what the files declare (hubdet.eval.provenance_audit); null: not checked

Pinning: a result is *pinned* when the model is identified by its weights (``weights_sha256``), plus a
40-hex commit ``revision`` when it came from the Hub, and is not a random init; and the dataset has a
``fingerprint`` (local data: hash of the listing/prepared files) or a 40-hex Hub ``revision``.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hubdet._core.config import StrictConfig
from hubdet._core.errors import ConfigError, HubdetError
from hubdet.eval.metric_table import DEFAULT_PRIMARY

PROTOCOL_VERSION = 1
SCHEMA_NAME = "hubdet-eval-result"
_SHA1 = re.compile(r"^[0-9a-f]{40}$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class ResultError(HubdetError, ValueError):
    """A result file is malformed, of another protocol version, a duplicate or unpinned."""


@dataclasses.dataclass
class ModelInfo(StrictConfig):
    """Which detector was evaluated, pinned by the sha256 of its weights (and the Hub commit)."""

    id: str
    kind: str = "folder"  # folder | hub | registry (random init) | object (an in-memory detector)
    name: str = ""
    family: str = ""
    revision: str | None = None
    weights_sha256: str | None = None
    random_init: bool = False
    training_source: str | None = None
    threshold: float = 0.5
    calibration: dict[str, Any] = dataclasses.field(default_factory=dict)

    def validate(self) -> None:
        if self.kind not in ("folder", "hub", "registry", "object"):
            raise ConfigError(f"model.kind: {self.kind!r} is not folder/hub/registry/object")
        if self.weights_sha256 is not None and not _SHA256.match(self.weights_sha256):
            raise ConfigError(f"model.weights_sha256: {self.weights_sha256!r} is not a sha256 hex digest")

    def pinned(self) -> str | None:
        """``None`` if pinned, else why not."""
        if self.random_init:
            return f"model {self.id!r} is a random initialisation, not trained weights"
        if not self.weights_sha256:
            return f"model {self.id!r} has no weights_sha256"
        if self.kind == "hub" and not (self.revision and _SHA1.match(self.revision)):
            return f"model {self.id!r} comes from the Hub without a commit revision (got {self.revision!r})"
        return None


@dataclasses.dataclass
class DatasetInfo(StrictConfig):
    """Which data was evaluated, pinned by the datasets fingerprint or a Hub commit."""

    name: str
    split: str | None = None
    data_dir: str | None = None
    repo_id: str | None = None
    revision: str | None = None
    fingerprint: str | None = None
    n_images: int = 0
    limit: int | None = None
    streaming: bool = False
    reencode: dict[str, Any] | None = None

    def pinned(self) -> str | None:
        if self.repo_id:
            if self.revision and _SHA1.match(self.revision):
                return None
            if self.fingerprint:
                return None
            return f"dataset {self.repo_id!r} has no commit revision or fingerprint"
        if not self.fingerprint:
            return f"dataset {self.name!r} ({self.data_dir}) has no fingerprint"
        return None


@dataclasses.dataclass
class SuiteRef(StrictConfig):
    name: str
    version: str


@dataclasses.dataclass
class Timing(StrictConfig):
    seconds: float
    images_per_second: float
    n_forward: int
    batch_size: int
    device: str = "cpu"
    num_processes: int = 1


@dataclasses.dataclass
class PerturbationResult(StrictConfig):
    spec: dict[str, Any]
    metrics: dict[str, Any]
    drop: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class ProvenanceSection(StrictConfig):
    """What the evaluated files declare about themselves (:func:`hubdet.eval.provenance_audit.audit_dataset`)."""

    checked: int
    skipped: int = 0
    skip_reason: str | None = None
    with_claim: int = 0
    per_conclusion: dict[str, Any] = dataclasses.field(default_factory=dict)
    per_class: dict[str, Any] = dataclasses.field(default_factory=dict)
    fake_tell_share: float | None = None
    real_tell_share: float | None = None
    provenance_shortcut: bool = False
    shortcut_rule: str = ""
    seconds: float = 0.0
    ms_per_image: float | None = None
    files: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    files_omitted: int = 0


@dataclasses.dataclass
class EvalResult(StrictConfig):
    """One evaluation; :meth:`from_dict` validates strictly (unknown keys, types, protocol version)."""

    protocol_version: int
    model: ModelInfo
    dataset: DatasetInfo
    metrics: dict[str, Any]
    timing: Timing
    date: str
    hubdet_version: str
    schema: str = SCHEMA_NAME
    primary_metric: str = DEFAULT_PRIMARY
    suite: SuiteRef | None = None
    per_generator: dict[str, Any] = dataclasses.field(default_factory=dict)
    per_source: dict[str, Any] = dataclasses.field(default_factory=dict)
    perturbations: dict[str, PerturbationResult] = dataclasses.field(default_factory=dict)
    cannot_judge: dict[str, Any] = dataclasses.field(default_factory=dict)  # perturbation -> {count, files}
    provenance: ProvenanceSection | None = None  # what the files declare; None: not checked (older results too)

    def validate(self) -> None:
        if self.schema != SCHEMA_NAME:
            raise ConfigError(f"schema: {self.schema!r} is not {SCHEMA_NAME!r}")
        if self.protocol_version != PROTOCOL_VERSION:
            raise ConfigError(
                f"protocol_version: {self.protocol_version} is not the supported version {PROTOCOL_VERSION}"
            )
        if self.primary_metric not in self.metrics:
            raise ConfigError(f"primary_metric {self.primary_metric!r} is not among the metrics")
        self.perturbations = {
            k: v if isinstance(v, PerturbationResult) else PerturbationResult.from_dict(v, where=f"perturbations.{k}")
            for k, v in self.perturbations.items()
        }

    def unpinned_reason(self) -> str | None:
        """``None`` if both the model and the dataset are pinned, else the reasons."""
        reasons = [r for r in (self.model.pinned(), self.dataset.pinned()) if r]
        return "; ".join(reasons) or None

    def key(self) -> tuple[Any, ...]:
        """What makes two results duplicates: the same weights on the same data (split, pin) under the same protocol
        and suite, whatever perturbations each ran (they would give two clean rows for one model)."""
        suite = (self.suite.name, self.suite.version) if self.suite else None
        model = self.model.weights_sha256 or f"{self.model.id}@{self.model.revision}"
        data = self.dataset.revision or self.dataset.fingerprint or self.dataset.data_dir
        return (model, self.dataset.name, self.dataset.repo_id, self.dataset.split, data, self.protocol_version, suite)


_REQUIRED = [f.name for f in dataclasses.fields(EvalResult)
             if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]


def validate_result(data: Mapping[str, Any], *, where: str = "result", require_pinned: bool = True) -> EvalResult:
    """Check a result dict; raise :class:`ResultError` naming ``where`` and the problem.

    Problems named: not a JSON object, a missing field, an unknown field or wrong type, another protocol
    version, and (with ``require_pinned``) an unpinned model or dataset revision.
    """
    if not isinstance(data, Mapping):
        raise ResultError(f"{where}: a result must be a JSON object, got {type(data).__name__}")
    if "protocol_version" in data and data["protocol_version"] != PROTOCOL_VERSION:
        raise ResultError(
            f"{where}: protocol_version {data['protocol_version']!r} is not supported "
            f"(this hubdet reads protocol version {PROTOCOL_VERSION}); re-run the evaluation"
        )
    missing = [k for k in _REQUIRED if k not in data]
    if missing:
        raise ResultError(f"{where}: missing required field(s) {missing}")
    try:
        result = EvalResult.from_dict(dict(data), where=where)
    except ConfigError as exc:
        raise ResultError(str(exc) if str(exc).startswith(where) else f"{where}: {exc}") from None
    if require_pinned:
        reason = result.unpinned_reason()
        if reason:
            raise ResultError(f"{where}: unpinned revision: {reason} "
                              "(use --allow-unpinned / allow_unpinned=True to keep it, flagged)")
    return result


def read_result_file(path: str | Path) -> list[dict[str, Any]]:
    """The result objects in a JSON file (one object or a list), unvalidated."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ResultError(f"{path}: not a readable JSON file ({exc})") from exc
    items = data if isinstance(data, list) else [data]
    return items


def write_results(results: list[dict[str, Any]] | dict[str, Any], path: str | Path) -> Path:
    """Write one result (an object) or several (a list) as indented JSON."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = results[0] if isinstance(results, list) and len(results) == 1 else results
    path.write_text(json.dumps(payload, indent=2, sort_keys=False, allow_nan=False) + "\n")
    return path
