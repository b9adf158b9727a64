"""The Leaderboard tab's data: result files read by :mod:`hubdet.eval.leaderboard`, filter choices, the table."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hubdet.eval.leaderboard import TABLE_METRICS

logger = logging.getLogger(__name__)

ALL = "All"
LEADERBOARD_COLUMNS = ("rank", "model", "revision", "family", "source", "split", "perturbation", "metric", "value",
                       *TABLE_METRICS, "mean_drop", "n", "pinned", "suite")


def load_leaderboard(folder: str | os.PathLike) -> tuple[list[dict[str, Any]] | None, str]:
    """Result files of ``folder`` read and validated by ``hubdet.eval.leaderboard`` (unpinned ones kept, flagged
    in the ``pinned`` column), and a status message; ``None`` when there is nothing to show."""
    folder = Path(folder)
    if not folder.is_dir() or not any(folder.rglob("*.json")):
        return None, f"No leaderboard results yet (looked in `{folder}`; set `HUBDET_RESULTS_DIR`)."
    try:
        from hubdet.eval.leaderboard import load_results

        results = load_results(folder, allow_unpinned=True)
    except Exception as exc:  # a broken results file must not break the app: show what is wrong
        logger.exception("cannot read the leaderboard results in %s", folder)
        return None, f"Cannot read the leaderboard results in `{folder}`: {exc}"
    if not results:
        return None, f"No leaderboard results yet in `{folder}`."
    return results, f"{len(results)} result(s) from `{folder}`."


def leaderboard_choices(results: Sequence[dict[str, Any]] | None) -> dict[str, Any]:
    """Filter choices: sources (``All`` first), perturbations (``clean`` first), metrics and the default metric."""
    from hubdet.eval.leaderboard import TABLE_METRICS, default_metric, perturbations_of, sources_of

    if not results:
        return {"source": [ALL], "perturbation": ["clean"], "metric": list(TABLE_METRICS), "default_metric": None}
    return {"source": [ALL, *sources_of(results)], "perturbation": perturbations_of(results),
            "metric": list(TABLE_METRICS), "default_metric": default_metric(results)}


def leaderboard_frame(results: Sequence[dict[str, Any]] | None, *, source: str | None = None,
                      perturbation: str | None = None, metric: str | None = None) -> Any:
    """The ranked table (pandas DataFrame) for one source (``All``: every source) and one perturbation."""
    import pandas as pd

    from hubdet.eval.leaderboard import leaderboard_table

    if not results:
        return pd.DataFrame(columns=list(LEADERBOARD_COLUMNS))
    rows = leaderboard_table(results, metric or None, source=None if source in (None, "", ALL) else source,
                             perturbation=perturbation or "clean")
    frame = pd.DataFrame(rows)
    if not len(frame):
        return frame
    return frame[[c for c in LEADERBOARD_COLUMNS if c in frame.columns]].round(4)
