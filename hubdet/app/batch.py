"""Batch: every uploaded file (and every file inside uploaded zips) scored by every chosen detector, as rows.

Files are expanded and limited by :mod:`hubdet.app.uploads`; predictions come from
:func:`hubdet.models.predict.predict_many` in chunks (an ensemble reuses the predictions of its members run beside it);
each file's provenance (read once from its original bytes by :mod:`hubdet.app.provenance`) fills the provenance
columns of its rows, beside the verdicts.
"""

from __future__ import annotations

import csv
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PIL import Image

from hubdet._core.errors import BadImageError, UnsupportedImageError
from hubdet.app.pool import AppInputError, DetectorPool
from hubdet.app.provenance import PROVENANCE_COLUMNS, provenance_columns, read_provenance
from hubdet.app.uploads import BatchLimits, decode_upload, expand_uploads
from hubdet.models.output import CANNOT_JUDGE

BATCH_COLUMNS = ["file", "detector", "prob_fake", "verdict", "box", "box_score", "inpainted_share", "regions", "error",
                 *PROVENANCE_COLUMNS]


def _box_text(box: Sequence[float] | None) -> str:
    return "" if box is None else ",".join(f"{v:.0f}" for v in box)


def _error_rows(label: str, error: str, detectors: Sequence[str], verdict: str | None = None) -> list[dict[str, Any]]:
    return [{"file": label, "detector": d, "prob_fake": None, "verdict": verdict, "box": "", "box_score": None,
             "inpainted_share": None, "regions": None, "error": error} for d in detectors]


def batch(pool: DetectorPool, paths: Sequence[str | os.PathLike] | None, names: Sequence[str] | None, *,
          limits: BatchLimits = BatchLimits(), chunk: int = 8, max_pixels: int | None = None,
          max_file_bytes: int | None = None) -> list[dict[str, Any]]:
    """Rows ``file, detector, prob_fake, verdict, box, box_score, inpainted_share, regions, error`` and the provenance
    columns for every file x detector (``inpainted_share``: the share of the image a mask detector flags; ``regions``:
    how many regions; :data:`~hubdet.app.provenance.PROVENANCE_COLUMNS`: conclusion, reason, C2PA validation, digital
    source type, generator metadata of the file's original bytes; empty for files refused unread).

    Bad files, files over ``max_file_bytes`` or ``max_pixels`` and refused archives become rows with their error
    (one per detector); an image a detector cannot judge gets verdict ``cannot_judge`` and the reason in ``error``.
    Nothing is skipped silently. Detectors are loaded when the first image is ready; good images are scored
    ``chunk`` at a time.
    """
    if not paths:
        raise AppInputError("upload one or more images or a zip archive")
    chosen = list(dict.fromkeys(names or []))
    if not chosen:
        raise AppInputError("choose at least one detector")
    for name in chosen:
        pool.check_name(name)
    rows: list[dict[str, Any]] = []
    pending: list[tuple[str, Image.Image]] = []
    evidence: dict[str, dict[str, str]] = {}  # file -> its provenance cells
    loaded: tuple[dict[str, Any], dict[str, str]] | None = None

    def flush() -> None:
        nonlocal loaded
        if not pending:
            return
        loaded = loaded or pool.load(chosen)
        rows.extend(_score(pool, *loaded, pending, chosen))
        pending.clear()

    def with_evidence(new: list[dict[str, Any]]) -> list[dict[str, Any]]:
        empty = dict.fromkeys(PROVENANCE_COLUMNS, "")
        return [{**row, **evidence.get(row["file"], empty)} for row in new]

    for label, source, error in expand_uploads(paths, limits):
        size = len(source) if isinstance(source, bytes) else _file_size(source)
        if error is None and max_file_bytes is not None and size > max_file_bytes:
            error = f"the file is {size / 2**20:.1f} MiB, over this app's limit of {max_file_bytes / 2**20:.0f} MiB"
        unjudged = False
        if error is None:
            evidence[label] = provenance_columns(read_provenance(source, name=label).to_dict())
            try:
                pending.append((label, decode_upload(source, name=label, max_pixels=max_pixels).image))
            except BadImageError as exc:
                error, unjudged = exc.reason, isinstance(exc, UnsupportedImageError)
        if error is not None:
            flush()
            rows.extend(_error_rows(label, f"cannot judge: {error}" if unjudged else error, chosen,
                                    verdict=CANNOT_JUDGE if unjudged else None))
        elif len(pending) >= chunk:
            flush()
    flush()
    return with_evidence(rows)


def _score(pool: DetectorPool, detectors: dict[str, Any], failures: dict[str, str],
           pending: Sequence[tuple[str, Image.Image]], chosen: Sequence[str]) -> list[dict[str, Any]]:
    """Rows for the decoded images of one chunk: file by file, each with its detectors in ``chosen`` order."""
    from hubdet.models.predict import predict_many

    runs = predict_many(detectors, [im for _, im in pending], digests={n: pool.weights_sha256(n) for n in detectors},
                        locks={n: pool.lock(n) for n in detectors})
    rows: list[dict[str, Any]] = []
    for i, (label, _) in enumerate(pending):
        for name in chosen:
            error = failures[name] if name in failures else runs[name].error
            if error is not None:
                rows.extend(_error_rows(label, error, [name]))
                continue
            pred = (runs[name].predictions or [])[i]
            if not pred.judged:
                rows.append({"file": label, "detector": name, "prob_fake": None, "verdict": pred.verdict, "box": "",
                             "box_score": None, "inpainted_share": None, "regions": None,
                             "error": f"cannot judge: {pred.reason}"})
                continue
            rows.append({"file": label, "detector": name, "prob_fake": round(float(pred.prob), 4),
                         "verdict": pred.verdict, "box": _box_text(pred.box),
                         "box_score": None if pred.box_score is None else round(float(pred.box_score), 4),
                         "inpainted_share": None if pred.mask is None else round(float((pred.mask >= 0.5).mean()), 4),
                         "regions": None if pred.regions is None else len(pred.regions), "error": ""})
    return rows


def _file_size(source: Any) -> int:
    try:
        return os.stat(source).st_size if source is not None else 0
    except OSError:
        return 0  # a missing file is the decoder's to report


def rows_to_csv(rows: Sequence[dict[str, Any]], path: str | os.PathLike | None = None) -> Path:
    """Write batch rows to a CSV file (a new temporary file if ``path`` is None) and return its path."""
    if path is None:
        path = Path(tempfile.mkdtemp(prefix="hubdet_batch_")) / "hubdet_batch.csv"
    path = Path(path)
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=BATCH_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path
