"""What the evaluated files declare about themselves: the provenance of every image of an evaluation data set, and
whether a metadata reader alone would separate its classes (a shortcut a pixel detector must not be credited for).

:func:`audit_dataset` reads each image's ORIGINAL encoded bytes (the stored file, never the decoded picture; for a
data set re-encoded at load time, the file under ``data_dir`` named by its ``file`` column) with
:func:`hubdet.provenance.inspect`, which reads headers, metadata chunks and the C2PA manifest only (no pixel
decoding). The section it returns goes into the result as ``result["provenance"]``::

    {"checked": 40, "skipped": 0, "skip_reason": null, "with_claim": 20,
     "per_conclusion": {"declared_ai": 20, "no_claim": 20},
     "per_class": {"real": {"n": 20, "with_claim": 0, "tells": 0, "per_conclusion": {...}},
                   "fake": {"n": 20, "with_claim": 20, "tells": 20, "per_conclusion": {...}}},
     "fake_tell_share": 1.0, "real_tell_share": 0.0, "provenance_shortcut": true, "shortcut_rule": "...",
     "seconds": 0.05, "ms_per_image": 1.2, "files": [{"file", "label", "conclusion", "signed", "generators"}],
     "files_omitted": 0}

The shortcut rule (:data:`SHORTCUT_RULE`): an image *tells* when its metadata alone would make a reader call it
generated: its conclusion is ``declared_ai`` or ``declared_ai_edit`` (signed or not), or it carries generator
metadata (A1111 ``parameters``, ComfyUI ``prompt``/``workflow``, ...). ``provenance_shortcut`` is true when at least
:data:`SHORTCUT_SHARE` (half) of the fakes tell. Builders that keep the pixels should then drop such chunks when
re-encoding (``reencode=``), or the data set rewards metadata readers, not pixel detectors.

``with_claim`` counts images with any evidence: a conclusion other than ``no_claim`` or generator metadata.
``files`` lists the images with any evidence or a read error (at most :data:`MAX_FILES`; clean ``no_claim`` images
are only counted).
"""

from __future__ import annotations

import logging
import os
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

#: The share of fakes that must tell (see the module docstring) for ``provenance_shortcut``.
SHORTCUT_SHARE = 0.5
#: At most this many per-image entries are kept in the result.
MAX_FILES = 500
AI_CONCLUSIONS = ("declared_ai", "declared_ai_edit")
SHORTCUT_RULE = (f"provenance_shortcut is true when at least {SHORTCUT_SHARE:.0%} of the fakes tell: their metadata "
                 "alone declares AI (conclusion declared_ai or declared_ai_edit, signed or not) or carries generator "
                 "metadata (A1111 parameters, ComfyUI prompt/workflow, ...), so a metadata reader alone would flag "
                 "them")
_LABELS = {0: "real", 1: "fake"}


def tells(record: Mapping[str, Any]) -> bool:
    """Would a metadata reader alone call this image generated? (see :data:`SHORTCUT_RULE`)"""
    return record.get("conclusion") in AI_CONCLUSIONS or bool(record.get("generators"))


def _has_claim(record: Mapping[str, Any]) -> bool:
    return record.get("conclusion") != "no_claim" or bool(record.get("generators"))


def _original(item: Mapping[str, Any], data_dir: Path | None) -> tuple[Any, str | None]:
    """``(bytes or path, None)`` of an item's original file, or ``(None, why not)``."""
    image, file = item.get("image"), item.get("file")
    if item.get("reencoded"):  # the stored bytes were re-encoded at load time: the original file is the evidence
        path = data_dir / str(file) if data_dir is not None and file else None
        if path is not None and path.is_file():
            return path, None
        return None, "the stored images were re-encoded and the original files are not reachable"
    if isinstance(image, Mapping):
        if image.get("bytes"):
            return bytes(image["bytes"]), None
        if image.get("path") and Path(image["path"]).is_file():
            return image["path"], None
    if isinstance(image, (bytes, bytearray)):
        return bytes(image), None
    if isinstance(image, (str, os.PathLike)) and Path(image).is_file():
        return image, None
    filename = getattr(image, "filename", None)  # a PIL image opened from a file
    if filename and Path(filename).is_file():
        return filename, None
    return None, "the items carry decoded images, not their file bytes or paths"


def _items(dataset: Any) -> Iterable[Mapping[str, Any]]:
    """The dataset's rows with the image column NOT decoded (``{"bytes", "path"}``), when it is a datasets one."""
    if hasattr(dataset, "cast_column") and hasattr(dataset, "column_names") and dataset.column_names:
        import datasets

        cols = [c for c in ("image", "label", "file", "reencoded") if c in dataset.column_names]
        if "image" in cols:
            dataset = dataset.select_columns(cols).cast_column("image", datasets.Image(decode=False))
    return dataset


def audit_dataset(dataset: Any, *, data_dir: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """The provenance section of an evaluation result for ``dataset`` (see the module docstring). Never raises for
    a bad file (its record says what went wrong); items without file bytes or paths are counted as ``skipped``."""
    from hubdet.provenance import inspect

    root = Path(data_dir) if data_dir is not None else None
    start = time.perf_counter()
    totals: Counter[str] = Counter()
    per_class: dict[str, dict[str, Any]] = {}
    files: list[dict[str, Any]] = []
    checked = skipped = with_claim = omitted = 0
    skip_reason = None
    for index, item in enumerate(_items(dataset)):
        name = str(item.get("file") or f"#{index}")
        source, why = _original(item, root)
        if source is None:
            skipped += 1
            skip_reason = skip_reason or why
            continue
        record = inspect(source, name=name).to_dict()
        checked += 1
        label = _LABELS.get(int(item["label"]), str(item["label"])) if item.get("label") is not None else "unknown"
        group = per_class.setdefault(label, {"n": 0, "with_claim": 0, "tells": 0, "per_conclusion": Counter()})
        group["n"] += 1
        group["per_conclusion"][record["conclusion"]] += 1
        totals[record["conclusion"]] += 1
        claim = _has_claim(record)
        with_claim += claim
        group["with_claim"] += claim
        group["tells"] += tells(record)
        if claim or record["errors"]:
            if len(files) < MAX_FILES:
                tools = sorted({g["tool"] for g in record["generators"]})
                files.append({"file": name, "label": label, "conclusion": record["conclusion"],
                              "signed": record["signed"], "generators": tools, "errors": record["errors"][:3]})
            else:
                omitted += 1
    seconds = time.perf_counter() - start
    for group in per_class.values():
        group["per_conclusion"] = dict(sorted(group["per_conclusion"].items()))
    fake, real = per_class.get("fake"), per_class.get("real")
    fake_share = round(fake["tells"] / fake["n"], 4) if fake and fake["n"] else None
    real_share = round(real["tells"] / real["n"], 4) if real and real["n"] else None
    section = {
        "checked": checked, "skipped": skipped, "skip_reason": skip_reason, "with_claim": with_claim,
        "per_conclusion": dict(sorted(totals.items())), "per_class": dict(sorted(per_class.items())),
        "fake_tell_share": fake_share, "real_tell_share": real_share,
        "provenance_shortcut": bool(fake_share is not None and fake_share >= SHORTCUT_SHARE),
        "shortcut_rule": SHORTCUT_RULE, "seconds": round(seconds, 4),
        "ms_per_image": round(1000 * seconds / checked, 3) if checked else None,
        "files": files, "files_omitted": omitted,
    }
    if section["provenance_shortcut"]:
        logger.warning("%d of %d fakes carry metadata that declares AI or names a generator: a metadata reader alone "
                       "would flag them (provenance_shortcut)", fake["tells"], fake["n"])
    return section


def describe(section: Mapping[str, Any] | None) -> str:
    """One line for the ``hubdet evaluate`` report."""
    if not section:
        return "provenance: not checked"
    if not section["checked"]:
        return f"provenance: not checked ({section.get('skip_reason') or 'no items'})"
    per_class = ", ".join(f"{label} {g['with_claim']}/{g['n']}" for label, g in section["per_class"].items())
    conclusions = ", ".join(f"{k} {v}" for k, v in section["per_conclusion"].items())
    line = (f"provenance: {section['with_claim']} of {section['checked']} image(s) carry a claim ({per_class}; "
            f"{conclusions}); {section['ms_per_image']:.1f} ms/image")
    if section["provenance_shortcut"]:
        line += (f"\n  PROVENANCE SHORTCUT: {section['fake_tell_share']:.0%} of the fakes carry metadata that declares "
                 "AI or names a generator; a metadata reader alone would flag them. Strip it by re-encoding both "
                 "classes alike (hubdet.data.load_source(..., reencode=...)) before publishing the data.")
    if section.get("skipped"):
        line += f"\n  {section['skipped']} image(s) not checked: {section['skip_reason']}"
    return line
