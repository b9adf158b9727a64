"""The leaderboard: result files in, a ranked table out, and the submission files of a Hub dataset repository.

Layout of the leaderboard dataset repository (as the Open LLM Leaderboard's requests/results repos)::

    requests/<org>/<model>_eval_request.json      {"model", "revision", "status": PENDING|RUNNING|FINISHED|FAILED, ...}
    results/<org>/<model>/results_<date>.json     one hubdet result (hubdet.eval.results)

``<org>/<model>`` is the Hub id of the model; local folders go under ``local/<folder name>``. The app's
leaderboard tab reads the same files with :func:`load_results` and builds its table with
:func:`leaderboard_table` (filters by source and perturbation). See docs/leaderboard.md.

Policy on revisions: a result whose model or dataset is not pinned (see :mod:`hubdet.eval.results`) is
REJECTED by default; ``allow_unpinned=True`` (``--allow-unpinned``) keeps it, flagged ``pinned: false`` in
the table, for local comparisons only. Duplicates (same weights, data and protocol) are always rejected.
"""

from __future__ import annotations

import csv
import datetime as _dt
import io
import json
import logging
import os
import re
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from hubdet.eval.metric_table import DEFAULT_PRIMARY, get_metric, metric_direction, metric_names
from hubdet.eval.results import ResultError, read_result_file, validate_result

logger = logging.getLogger(__name__)

REQUEST_STATUSES = ("PENDING", "RUNNING", "FINISHED", "FAILED")
#: The metric columns of the table: the metric table's headline metrics.
TABLE_METRICS = tuple(metric_names(headline=True))
META = "_meta"


def _result_files(paths_or_dir: str | os.PathLike[str] | Iterable[str | os.PathLike[str]]) -> list[Path]:
    items = [paths_or_dir] if isinstance(paths_or_dir, (str, os.PathLike)) else list(paths_or_dir)
    files: list[Path] = []
    for item in items:
        p = Path(item)
        if p.is_dir():
            found = sorted(f for f in p.rglob("*.json")
                           if not f.name.endswith("_eval_request.json") and "requests" not in f.relative_to(p).parts)
            if not found:
                logger.warning("%s: no result files (*.json) found", p)
            files.extend(found)
        elif p.is_file():
            files.append(p)
        else:
            raise FileNotFoundError(f"{p}: no such result file or folder")
    return files


def load_results(
    paths_or_dir: str | os.PathLike[str] | Iterable[str | os.PathLike[str]], *, allow_unpinned: bool = False
) -> list[dict[str, Any]]:
    """Read and validate result files (a file, a folder searched recursively, or a list of either).

    Returns the result dicts, each with ``_meta`` = ``{"file", "pinned", "unpinned_reason"}`` added. Raises
    :class:`~hubdet.eval.results.ResultError` naming the file and the problem: malformed JSON, a missing or
    unknown field, another protocol version, an unpinned revision (unless ``allow_unpinned``), a duplicate.
    """
    out: list[dict[str, Any]] = []
    seen: dict[tuple[Any, ...], str] = {}
    for path in _result_files(paths_or_dir):
        items = read_result_file(path)
        for i, item in enumerate(items):
            where = str(path) if len(items) == 1 else f"{path}[{i}]"
            result = validate_result(item, where=where, require_pinned=not allow_unpinned)
            key = result.key()
            if key in seen:
                raise ResultError(
                    f"{where}: duplicate result: {seen[key]} already has model {result.model.id!r} "
                    f"(weights {str(result.model.weights_sha256)[:12]}) on {result.dataset.name!r} "
                    f"split {result.dataset.split!r} under protocol {result.protocol_version}"
                )
            seen[key] = where
            reason = result.unpinned_reason()
            if reason:
                logger.warning("%s: kept although unpinned (%s)", where, reason)
            data = {k: v for k, v in dict(item).items() if k != META}
            data[META] = {"file": where, "pinned": reason is None, "unpinned_reason": reason}
            out.append(data)
    return out


def load_results_from_hub(repo_id: str, *, revision: str | None = None, allow_unpinned: bool = False
                          ) -> list[dict[str, Any]]:
    """:func:`load_results` of the ``results/`` folder of a leaderboard dataset repository (or a local copy)."""
    from hubdet._core.hub import local_or_snapshot

    folder = local_or_snapshot(repo_id, revision=revision, repo_type="dataset")
    results = folder / "results"
    return load_results(results if results.is_dir() else folder, allow_unpinned=allow_unpinned)


def _metrics_of(result: Mapping[str, Any], perturbation: str) -> dict[str, Any] | None:
    if perturbation == "clean":
        return dict(result["metrics"])
    pert = result.get("perturbations", {}).get(perturbation)
    return dict(pert["metrics"]) if pert else None


def _mean_drop(result: Mapping[str, Any], metric: str) -> float | None:
    drops = [p["drop"].get(metric) for p in result.get("perturbations", {}).values()]
    drops = [d for d in drops if d is not None]
    return sum(drops) / len(drops) if drops else None


def default_metric(results: Sequence[Mapping[str, Any]]) -> str:
    """The results' common primary metric, else ``roc_auc``."""
    primaries = {r.get("primary_metric", DEFAULT_PRIMARY) for r in results}
    return primaries.pop() if len(primaries) == 1 else DEFAULT_PRIMARY


def perturbations_of(results: Sequence[Mapping[str, Any]]) -> list[str]:
    """``clean`` and every perturbation found in the results (for the app's filter)."""
    names = {p for r in results for p in r.get("perturbations", {})}
    return ["clean", *sorted(names)]


def sources_of(results: Sequence[Mapping[str, Any]]) -> list[str]:
    """Every dataset name found in the results (for the app's filter)."""
    return sorted({r["dataset"]["name"] for r in results})


def leaderboard_table(
    results: Sequence[Mapping[str, Any]],
    metric: str | None = None,
    *,
    source: str | Sequence[str] | None = None,
    perturbation: str = "clean",
    suite: str | None = None,
) -> list[dict[str, Any]]:
    """Rows ranked by ``metric`` (default: the results' primary metric); best first, undefined values last.

    ``source``: keep only these dataset names; ``perturbation``: which metrics to rank (``clean`` or a
    perturbation name; results without it are left out); ``suite``: keep results of that suite name. Each row
    has rank, model, revision, family, source, split, perturbation, the ranked metric, the usual metrics,
    ``mean_drop`` (mean drop of the ranked metric over the result's perturbations), n, pinned, suite, date.
    The direction comes from the metric table (``eer``, ``ece``, ``loss`` rank ascending: lower is better).
    """
    metric = metric or default_metric(results)
    if not get_metric(metric).scored:  # unknown names raise with suggestions
        from hubdet._core.errors import UnknownNameError

        raise UnknownNameError(f"{metric!r} is a count, not a score: rank by one of {metric_names(scored=True)}")
    wanted = {source} if isinstance(source, str) else set(source) if source else None
    rows: list[dict[str, Any]] = []
    for r in results:
        if wanted is not None and r["dataset"]["name"] not in wanted:
            continue
        if suite is not None and (r.get("suite") or {}).get("name") != suite:
            continue
        m = _metrics_of(r, perturbation)
        if m is None:
            continue
        model = r["model"]
        meta = r.get(META, {})
        row: dict[str, Any] = {
            "rank": 0,
            "model": model["id"],
            "revision": (model.get("revision") or "")[:12] or (model.get("weights_sha256") or "")[:12],
            "family": model.get("family", ""),
            "source": r["dataset"]["name"],
            "split": r["dataset"].get("split"),
            "perturbation": perturbation,
            "metric": metric,
            "value": m.get(metric),
        }
        for k in TABLE_METRICS:
            row[k] = m.get(k)
        row["mean_drop"] = _mean_drop(r, metric) if perturbation == "clean" else None
        row.update(n=m.get("n"), pinned=meta.get("pinned", True),
                   suite=f"{r['suite']['name']}@{r['suite']['version']}" if r.get("suite") else "",
                   date=r.get("date", ""), file=meta.get("file", ""))
        rows.append(row)
    sign = 1.0 if metric_direction(metric) == "lower" else -1.0
    rows.sort(key=lambda x: (x["value"] is None, sign * (x["value"] or 0.0), str(x["model"])))
    for i, row in enumerate(rows, 1):
        row["rank"] = i
    return rows


def leaderboard_dataframe(results: Sequence[Mapping[str, Any]], metric: str | None = None, **filters: Any) -> Any:
    """:func:`leaderboard_table` as a pandas DataFrame (pandas comes with ``datasets``), for Gradio."""
    import pandas as pd

    return pd.DataFrame(leaderboard_table(results, metric, **filters))


_DISPLAY = ("rank", "model", "revision", "source", "split", "perturbation", "value", *TABLE_METRICS, "mean_drop",
            "n", "pinned", "suite")


def render_table(rows: Sequence[Mapping[str, Any]], fmt: str = "markdown", *, digits: int = 4) -> str:
    """The table as Markdown or CSV (``value`` is the ranked metric, named in the header)."""
    if fmt not in ("markdown", "csv"):
        raise ValueError(f"format {fmt!r} is not markdown or csv")
    metric = rows[0]["metric"] if rows else "value"
    cols = [c for c in _DISPLAY if c != metric]
    header = [f"{metric} (ranked)" if c == "value" else c for c in cols]

    def cell(v: Any) -> str:
        if v is None:
            return "" if fmt == "csv" else "-"
        if isinstance(v, float):
            return f"{v:.{digits}f}"
        return str(v)

    if fmt == "csv":
        buf = io.StringIO()
        writer = csv.writer(buf, lineterminator="\n")
        writer.writerow(header)
        for r in rows:
            writer.writerow([cell(r.get(c)) for c in cols])
        return buf.getvalue()
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for r in rows:
        lines.append("| " + " | ".join(cell(r.get(c)).replace("|", "\\|") for c in cols) + " |")
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------- submissions


def model_path(model: Mapping[str, Any]) -> str:
    """``<org>/<model>`` of a result's model: its Hub id, ``local/<folder>`` or ``registry/<name>``."""
    mid = str(model["id"]).rstrip("/")
    if model.get("kind") == "hub" and mid.count("/") == 1:
        org, name = mid.split("/")
    elif model.get("kind") == "registry":
        org, name = "registry", mid
    else:
        org, name = "local", Path(mid).name or "model"
    clean = [re.sub(r"[^A-Za-z0-9_.-]+", "-", x).strip("-.") or "x" for x in (org, name)]
    return "/".join(clean)


def _stamp(date: str) -> str:
    return re.sub(r"[^0-9T]", "-", date.split("+")[0])[:19] or _dt.datetime.now(_dt.timezone.utc).strftime(
        "%Y-%m-%dT%H-%M-%S")


def make_request(result_or_model: Mapping[str, Any], *, status: str = "PENDING", suite: Mapping[str, str] | None = None
                 ) -> dict[str, Any]:
    """The ``requests/<org>/<model>_eval_request.json`` record of a model (or of a finished result)."""
    if status not in REQUEST_STATUSES:
        raise ValueError(f"request status {status!r} is not one of {REQUEST_STATUSES}")
    model = result_or_model.get("model", result_or_model)
    from hubdet import __version__

    return {
        "model": model["id"],
        "revision": model.get("revision"),
        "weights_sha256": model.get("weights_sha256"),
        "family": model.get("family", ""),
        "suite": dict(suite or result_or_model.get("suite") or {}) or None,
        "status": status,
        "submitted_time": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(),
        "hubdet_version": __version__,
    }


def stage_submission(results: Sequence[Mapping[str, Any]], folder: str | os.PathLike[str]) -> list[Path]:
    """Write results (and FINISHED requests) into ``folder`` in the leaderboard repository layout."""
    root = Path(folder)
    written: list[Path] = []
    for r in results:
        data = {k: v for k, v in r.items() if k != META}
        mp = model_path(data["model"])
        src = re.sub(r"[^A-Za-z0-9_.-]+", "-", data["dataset"]["name"])
        res = root / "results" / mp / f"results_{src}_{_stamp(data['date'])}.json"
        res.parent.mkdir(parents=True, exist_ok=True)
        res.write_text(json.dumps(data, indent=2, allow_nan=False) + "\n")
        req = root / "requests" / f"{mp}_eval_request.json"
        req.parent.mkdir(parents=True, exist_ok=True)
        req.write_text(json.dumps(make_request(data, status="FINISHED"), indent=2) + "\n")
        written += [res, req]
    return written


def push_results(
    results: Sequence[Mapping[str, Any]] | str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    repo_id: str,
    *,
    token: str | None = None,
    private: bool = False,
    commit_message: str | None = None,
) -> str:
    """Validate results (dicts or files) and push them to the leaderboard DATASET repository in one commit,
    through :func:`hubdet._core.hub.push_folder`; return the commit URL. Unpinned results are never pushed."""
    from hubdet._core.hub import push_folder

    if isinstance(results, (str, os.PathLike)) or (results and isinstance(results[0], (str, os.PathLike))):
        loaded = load_results(results)  # type: ignore[arg-type]
    else:
        loaded = []
        for i, r in enumerate(results):  # type: ignore[assignment]
            where = str(r.get(META, {}).get("file") or f"results[{i}]")
            try:
                validate_result({k: v for k, v in r.items() if k != META}, where=where)
            except ResultError as exc:
                raise ResultError(f"refusing to push to {repo_id}: {exc}") from None
            loaded.append(dict(r))
    if not loaded:
        raise ResultError("nothing to push: no results")
    with tempfile.TemporaryDirectory() as tmp:
        stage_submission(loaded, tmp)
        msg = commit_message or f"Add {len(loaded)} hubdet result(s)"
        return push_folder(tmp, repo_id, repo_type="dataset", commit_message=msg, token=token, private=private)
