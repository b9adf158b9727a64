"""Cross-dataset generalisation (seed 002's last experiment): evaluate a list of models on a list of sources and
lay the chosen metric out as a train-source x test-source matrix.

A row is labelled by the model's training source (``config.metadata["training"]["source"]``) or, when the model
does not record one, by its name; a column by the test source (``name``, or ``name:<folder>`` when one source
name appears several times).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)


@dataclass
class SourceSpec:
    """A test source: builder name, data folder (or Hub ``repo_id``), split, label of its column."""

    name: str
    data_dir: str | None = None
    split: str | None = None
    repo_id: str | None = None
    label: str = ""
    options: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> SourceSpec:
        """``NAME:DIR`` (``NAME:DIR:SPLIT`` also accepted); a bare ``NAME`` needs a Hub copy or fails later."""
        name, _, rest = text.partition(":")
        if not name:
            raise ValueError(f"source spec {text!r}: expected NAME:DIR")
        split = None
        if rest and ":" in rest and not Path(rest).exists():
            rest, _, split = rest.rpartition(":")
        return cls(name=name, data_dir=rest or None, split=split or None)


@dataclass
class CrossMatrix:
    """The matrix and every underlying result."""

    metric: str
    rows: list[str]
    columns: list[str]
    values: list[list[float | None]]
    results: list[dict[str, Any]]

    def to_dict(self) -> dict[str, Any]:
        return {"metric": self.metric, "rows": self.rows, "columns": self.columns, "values": self.values,
                "results": self.results}

    def to_markdown(self, digits: int = 3) -> str:
        """A Markdown table: rows = training source, columns = test source."""
        head = f"| train \\ test | {' | '.join(self.columns)} |"
        sep = "|---|" + "---:|" * len(self.columns)
        lines = [head, sep]
        for r, row in zip(self.rows, self.values, strict=True):
            cells = ["-" if v is None else f"{v:.{digits}f}" for v in row]
            lines.append(f"| {r} | {' | '.join(cells)} |")
        return "\n".join(lines)


def _column_labels(specs: Sequence[SourceSpec]) -> list[str]:
    names = [s.name for s in specs]
    out = []
    for s in specs:
        if s.label:
            out.append(s.label)
        elif names.count(s.name) > 1:
            where = Path(s.data_dir).name if s.data_dir else (s.repo_id or "")
            out.append(f"{s.name}:{where}" + (f"/{s.split}" if s.split else ""))
        else:
            out.append(s.name + (f"/{s.split}" if s.split else ""))
    return out


def row_label(model_info: Mapping[str, Any]) -> str:
    """The training source of a model, else its name/id."""
    return str(model_info.get("training_source") or model_info.get("name") or model_info.get("id"))


def cross_evaluate(
    models: Sequence[Any],
    sources: Sequence[SourceSpec | str | Mapping[str, Any]],
    *,
    metric: str = "accuracy",
    batch_size: int = 32,
    limit: int | None = None,
    perturbations: Sequence[Any] | None = None,
    streaming: bool = False,
    cache_dir: str | os.PathLike[str] | None = None,
) -> CrossMatrix:
    """Evaluate every model on every source; ``metric`` (default accuracy, as seed 002 reports) fills the matrix.

    Each source is loaded once and shared by the models. Rows with the same training source are disambiguated
    with the model name.
    """
    from hubdet.eval.metric_table import DEFAULT_PRIMARY, get_metric
    from hubdet.eval.runner import evaluate_detector, load_eval_data, load_model

    kind = get_metric(metric).kind  # unknown names raise with suggestions
    primary = metric if kind == "binary" else DEFAULT_PRIMARY

    specs = [s if isinstance(s, SourceSpec) else SourceSpec.parse(s) if isinstance(s, str) else SourceSpec(**s)
             for s in sources]
    if not models or not specs:
        raise ValueError("cross_evaluate needs at least one model and one source")
    columns = _column_labels(specs)
    loaded = [load_model(m) for m in models]
    rows = [row_label(info.to_dict()) for _, info in loaded]
    for i, r in enumerate(rows):
        if rows.count(r) > 1:
            rows[i] = f"{r} ({loaded[i][1].name or loaded[i][1].id})"
    values: list[list[float | None]] = [[None] * len(specs) for _ in loaded]
    results: list[dict[str, Any]] = []
    for j, spec in enumerate(specs):
        ds, info = load_eval_data(spec.name, spec.data_dir, spec.split, repo_id=spec.repo_id, streaming=streaming,
                                  limit=limit, cache_dir=cache_dir, options=spec.options)
        for i, (detector, minfo) in enumerate(loaded):
            res = evaluate_detector(detector, ds, model=minfo, dataset_info=info, perturbations=perturbations,
                                    batch_size=batch_size, primary_metric=primary)
            values[i][j] = res["metrics"].get(metric)
            results.append(res)
            logger.info("cross-eval %s on %s: %s = %s", rows[i], columns[j], metric, values[i][j])
    return CrossMatrix(metric=metric, rows=rows, columns=columns, values=values, results=results)

