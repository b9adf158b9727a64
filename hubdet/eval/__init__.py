"""Evaluation: the one metric table (:mod:`hubdet.eval.metric_table`; plain functions and local ``evaluate``
modules underneath), the robustness protocol, benchmark suites, versioned results, cross-dataset matrices and the
leaderboard.

``evaluate(model, source, data_dir, ...)`` returns one versioned result dict (see :mod:`hubdet.eval.results`).
Attributes are imported lazily so that ``hubdet --help`` does not pay for torch, datasets or scikit-learn.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hubdet._core.lazy import lazy_exports

METRIC_MODULES_DIR = Path(__file__).resolve().parent / "metric_modules"

_LAZY = {
    "evaluate": "hubdet.eval.runner",
    "evaluate_detector": "hubdet.eval.runner",
    "load_model": "hubdet.eval.runner",
    "load_eval_data": "hubdet.eval.runner",
    "binary_metrics": "hubdet.eval.metrics",
    "box_metrics": "hubdet.eval.metrics",
    "pixel_metrics": "hubdet.eval.metrics",
    "METRICS": "hubdet.eval.metric_table",
    "Metric": "hubdet.eval.metric_table",
    "Records": "hubdet.eval.metric_table",
    "compute_metrics": "hubdet.eval.metric_table",
    "get_metric": "hubdet.eval.metric_table",
    "metric_direction": "hubdet.eval.metric_table",
    "metric_names": "hubdet.eval.metric_table",
    "model_kinds": "hubdet.eval.metric_table",
    "predict_records": "hubdet.eval.runner",
    "PROTOCOL": "hubdet.eval.robustness",
    "Perturbation": "hubdet.eval.robustness",
    "apply_perturbation": "hubdet.eval.robustness",
    "PROTOCOL_VERSION": "hubdet.eval.results",
    "validate_result": "hubdet.eval.results",
    "ResultError": "hubdet.eval.results",
    "SuiteConfig": "hubdet.eval.suites",
    "load_suite": "hubdet.eval.suites",
    "list_suites": "hubdet.eval.suites",
    "run_suite": "hubdet.eval.suites",
    "cross_evaluate": "hubdet.eval.crossdataset",
    "load_results": "hubdet.eval.leaderboard",
    "leaderboard_table": "hubdet.eval.leaderboard",
    "push_results": "hubdet.eval.leaderboard",
}

__all__ = sorted([*_LAZY, "list_metrics", "load_metric", "METRIC_MODULES_DIR"])


def list_metrics() -> list[str]:
    """Names of the ``evaluate`` modules shipped in the package (``hubdet_binary``, ``hubdet_boxes`` ...)."""
    return sorted(p.name for p in METRIC_MODULES_DIR.iterdir() if (p / f"{p.name}.py").is_file())


def load_metric(name: str, **kwargs: Any) -> Any:
    """``evaluate.load`` of a module shipped in the package, by name; works offline (no Hub access).

    Unknown names raise :class:`~hubdet._core.errors.UnknownNameError` with close matches.
    """
    import difflib

    from hubdet._core.errors import UnknownNameError

    names = list_metrics()
    if name not in names:
        close = difflib.get_close_matches(name, names, n=3, cutoff=0.4)
        hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
        raise UnknownNameError(f"unknown hubdet metric {name!r}{hint} (known: {names})")
    import evaluate

    return evaluate.load(str(METRIC_MODULES_DIR / name), **kwargs)


__getattr__, __dir__ = lazy_exports('hubdet.eval', _LAZY, globals())
