"""Benchmark suites: versioned YAML files naming sources and splits, perturbations, metrics and the primary
metric, loaded into strict configs (unknown keys raise). Built-in suites live in ``hubdet/eval/suites/``.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from hubdet._core.config import StrictConfig
from hubdet._core.errors import ConfigError, DataLayoutError, UnknownNameError
from hubdet.eval.metric_table import DEFAULT_PRIMARY, metric_names
from hubdet.eval.results import PROTOCOL_VERSION
from hubdet.eval.robustness import resolve_perturbations

logger = logging.getLogger(__name__)

SUITES_DIR = Path(__file__).resolve().parent / "suites"


@dataclasses.dataclass
class SuiteSource(StrictConfig):
    """One dataset of a suite. ``data_dir`` is relative to the data root given at run time (or absolute);
    ``repo_id``/``revision`` load a Hub copy instead; ``options`` and ``reencode`` go to ``load_source``."""

    id: str
    source: str
    split: str | None = None
    data_dir: str | None = None
    repo_id: str | None = None
    revision: str | None = None
    options: dict[str, Any] = dataclasses.field(default_factory=dict)
    reencode: dict[str, Any] | None = None
    limit: int | None = None

    def validate(self) -> None:
        if not self.id:
            raise ConfigError("suite source: id must not be empty")
        if self.limit is not None and self.limit < 1:
            raise ConfigError(f"suite source {self.id!r}: limit must be >= 1")


@dataclasses.dataclass
class SuiteConfig(StrictConfig):
    """A benchmark suite (see ``hubdet/eval/suites/hubdet-v1.yaml``)."""

    name: str
    version: str
    sources: list[SuiteSource]
    description: str = ""
    protocol_version: int = PROTOCOL_VERSION
    primary_metric: str = DEFAULT_PRIMARY
    metrics: list[str] = dataclasses.field(default_factory=lambda: [DEFAULT_PRIMARY, "accuracy", "f1"])
    perturbations: list[Any] = dataclasses.field(default_factory=lambda: ["clean"])
    batch_size: int = 32

    def validate(self) -> None:
        where = f"suite {self.name!r}"
        if not self.sources:
            raise ConfigError(f"{where}: no sources")
        self.sources = [s if isinstance(s, SuiteSource) else SuiteSource.from_dict(s, where=f"{where}.sources[{i}]")
                        for i, s in enumerate(self.sources)]
        ids = [s.id for s in self.sources]
        dup = sorted({i for i in ids if ids.count(i) > 1})
        if dup:
            raise ConfigError(f"{where}: duplicate source id(s) {dup}")
        if self.protocol_version != PROTOCOL_VERSION:
            raise ConfigError(f"{where}: protocol_version {self.protocol_version} is not {PROTOCOL_VERSION}")
        known = metric_names()
        unknown = [m for m in self.metrics if m not in known]
        if unknown:
            raise ConfigError(f"{where}: unknown metric(s) {unknown}; known: {known}")
        if self.primary_metric not in self.metrics:
            raise ConfigError(f"{where}: primary_metric {self.primary_metric!r} is not in metrics {self.metrics}")
        if self.batch_size < 1:
            raise ConfigError(f"{where}: batch_size must be >= 1")
        resolve_perturbations(self.perturbations)  # raises on unknown names or bad inline specs

    def ref(self) -> dict[str, str]:
        return {"name": self.name, "version": self.version}


def list_suites() -> list[str]:
    """Names of the built-in suites."""
    return sorted(p.stem for p in SUITES_DIR.glob("*.yaml"))


def load_suite(name_or_path: str | os.PathLike[str]) -> SuiteConfig:
    """A built-in suite by name (``hubdet-v1``) or a YAML file, strictly validated."""
    import yaml

    path = Path(name_or_path)
    if not path.is_file():
        builtin = SUITES_DIR / f"{name_or_path}.yaml"
        if not builtin.is_file():
            import difflib

            close = difflib.get_close_matches(str(name_or_path), list_suites(), n=3)
            hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
            raise UnknownNameError(f"no suite file or built-in suite {str(name_or_path)!r}{hint} "
                                   f"(built-in: {list_suites()})")
        path = builtin
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: invalid YAML ({exc})") from exc
    return SuiteConfig.from_dict(data, where=str(path))


def resolve_data_dir(src: SuiteSource, data_root: str | os.PathLike[str] | None,
                     overrides: Mapping[str, str] | None = None) -> str | None:
    """The data folder of a suite source: an override by id, else ``data_dir`` under ``data_root``."""
    if overrides and src.id in overrides:
        return str(overrides[src.id])
    if src.repo_id:
        return None
    if src.data_dir is None:
        raise DataLayoutError(f"suite source {src.id!r} has no data_dir: pass --source {src.id}:DIR")
    path = Path(src.data_dir).expanduser()
    if not path.is_absolute():
        path = Path(data_root or ".") / path
    if not path.is_dir():
        raise DataLayoutError(f"suite source {src.id!r}: {path} is not a folder (set --data-root or "
                              f"--source {src.id}:DIR)")
    return str(path)


def run_suite(
    suite: SuiteConfig | str | os.PathLike[str],
    models: Sequence[Any],
    *,
    data_root: str | os.PathLike[str] | None = None,
    data_dirs: Mapping[str, str] | None = None,
    only: Sequence[str] | None = None,
    batch_size: int | None = None,
    limit: int | None = None,
    plots_dir: str | os.PathLike[str] | None = None,
    streaming: bool = False,
    provenance: bool = True,
) -> list[dict[str, Any]]:
    """Evaluate every model on every source of the suite (``only``: a subset of source ids); one result each.
    ``provenance``: record what each source's files declare (once per source; see
    :mod:`hubdet.eval.provenance_audit`)."""
    from hubdet.eval.runner import evaluate_detector, load_eval_data, load_model, provenance_section

    cfg = suite if isinstance(suite, SuiteConfig) else load_suite(suite)
    chosen = [s for s in cfg.sources if not only or s.id in only]
    if only:
        missing = sorted(set(only) - {s.id for s in cfg.sources})
        if missing:
            raise UnknownNameError(f"suite {cfg.name!r} has no source(s) {missing}; it has "
                                   f"{[s.id for s in cfg.sources]}")
    loaded = [load_model(m) for m in models]
    results = []
    for src in chosen:
        data_dir = resolve_data_dir(src, data_root, data_dirs)
        ds, info = load_eval_data(src.source, data_dir, src.split, repo_id=src.repo_id, revision=src.revision,
                                  streaming=streaming, limit=limit or src.limit, reencode=src.reencode,
                                  options=src.options)
        info.name = src.id if src.id == src.source else f"{src.source}:{src.id}"
        audit = provenance_section(ds, info) if provenance else False
        for detector, minfo in loaded:
            logger.info("suite %s: %s on %s", cfg.name, minfo.id, src.id)
            results.append(evaluate_detector(
                detector, ds, model=minfo, dataset_info=info, perturbations=cfg.perturbations,
                batch_size=batch_size or cfg.batch_size, suite=cfg.ref(), primary_metric=cfg.primary_metric,
                plots_dir=plots_dir, provenance=audit,
            ))
    return results
