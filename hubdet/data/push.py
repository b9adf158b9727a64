"""Push a prepared source to the Hub as a dataset repository: parquet shards + a dataset card.

The layout is the one ``datasets``' own ``push_to_hub`` writes, so ``load_dataset(repo_id)`` reads it::

    README.md                              card rendered from model_cards/dataset_card.md
    data/<split>-00000-of-0000N.parquet    image bytes embedded in the shards

The upload goes through :func:`hubdet._core.hub.push_folder`, the one place that talks to the Hub.
"""

from __future__ import annotations

import json
import logging
import math
import os
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from hubdet._core.templates import card_template
from hubdet.data.imageio import BadFileReport

logger = logging.getLogger(__name__)

__all__ = ["push_dataset", "save_dataset_folder", "dataset_card_template"]

DEFAULT_MAX_SHARD_SIZE = 500 * 1024 * 1024

_MEANINGS = {
    "image": "the picture",
    "label": "0 = real, 1 = fake (AI-generated or inpainted)",
    "boxes": "manipulated regions, `[xmin, ymin, xmax, ymax]` in pixels; empty if untouched",
    "mask": "white = manipulated pixels (absent when unknown)",
    "generator": "what made the image: a generator or inpainter name, `natural` for real photos",
    "source": "the hubdet source (builder) the example came from",
    "orig_format": "format of the original file (JPEG, PNG, ...)",
    "orig_jpeg_quality": "estimated JPEG quality of the original file, -1 if unknown or not JPEG",
    "orig_width": "width of the original file in pixels",
    "orig_height": "height of the original file in pixels",
    "file": "path of the original file relative to the source folder",
}


def dataset_card_template() -> Path:
    """Locate ``dataset_card.md`` (see :func:`hubdet._core.templates.card_template`)."""
    return card_template("dataset_card.md")


def _as_dict(ds: Any, split: str | None) -> dict[str, Any]:
    import datasets

    if isinstance(ds, datasets.DatasetDict):
        if split is not None:
            if split not in ds:
                raise KeyError(f"split {split!r} not in the dataset (splits: {sorted(ds)})")
            return {split: ds[split]}
        return dict(ds)
    if isinstance(ds, datasets.Dataset):
        name = split or (str(ds.split) if ds.split is not None else "train")
        return {name: ds}
    raise TypeError(f"expected a datasets.Dataset or DatasetDict, got {type(ds).__name__} (streaming is not supported)")


def _find_bad_files(ds: Any) -> list[dict[str, str]] | None:
    """The bad-file report a builder attached to ``ds`` (``ds.report.bad_files``, or ``ds.bad_files``)."""
    for obj in (ds, *(ds.values() if hasattr(ds, "values") else ())):
        report = getattr(obj, "bad_files", None)
        if report is None:
            report = getattr(getattr(obj, "report", None), "bad_files", None)
        if isinstance(report, BadFileReport):
            return report.to_dict()["files"]
        if isinstance(report, dict) and "files" in report:
            return list(report["files"])
    return None


def _label_name(ds: Any, value: Any) -> str:
    feature = ds.features.get("label")
    if hasattr(feature, "int2str") and isinstance(value, int):
        return str(feature.int2str(value))
    return str(value)


def _counts(splits: dict[str, Any]) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[str]]:
    split_rows, generator_rows, sources = [], [], set()
    for name, ds in splits.items():
        labels = [_label_name(ds, v) for v in ds["label"]] if "label" in ds.column_names else ["?"] * len(ds)
        gens = list(ds["generator"]) if "generator" in ds.column_names else ["?"] * len(ds)
        if "source" in ds.column_names:
            sources.update(str(s) for s in ds["source"])
        by_label = Counter(labels)
        split_rows.append({"split": name, "total": len(ds), "real": by_label.get("real", 0),
                           "fake": by_label.get("fake", 0)})
        for (gen, label), count in sorted(Counter(zip(gens, labels, strict=True)).items()):
            generator_rows.append({"split": name, "generator": gen, "label": label, "count": count})
    return split_rows, generator_rows, sorted(sources)


def _type_name(feature: Any) -> str:
    """A short readable type for the card's schema table."""
    import datasets

    if isinstance(feature, datasets.Image):
        return "image"
    if isinstance(feature, datasets.ClassLabel):
        return f"class label ({', '.join(feature.names)})"
    if isinstance(feature, datasets.Value):
        return str(feature.dtype)
    inner = getattr(feature, "feature", None)
    if inner is not None:
        length = getattr(feature, "length", -1)
        return f"list of {_type_name(inner)}" + (f" (length {length})" if length and length > 0 else "")
    return type(feature).__name__


def _size_category(n: int) -> str:
    for limit, name in ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M")):
        if n < limit:
            return name
    return "1M<n<10M"


def _write_split(ds: Any, folder: Path, split: str, max_shard_size: int) -> list[str]:
    """Write ``ds`` as parquet shards with the image bytes embedded; returns the paths relative to ``folder``."""
    from datasets.table import embed_table_storage

    nbytes = ds._estimate_nbytes() if hasattr(ds, "_estimate_nbytes") else ds.data.nbytes
    num_shards = max(1, min(len(ds), int(math.ceil(nbytes / max_shard_size)))) if len(ds) else 1
    paths = []
    for index in range(num_shards):
        shard = ds.shard(num_shards=num_shards, index=index, contiguous=True)
        shard = shard.with_format("arrow").map(embed_table_storage, batched=True, keep_in_memory=True)
        rel = f"data/{split}-{index:05d}-of-{num_shards:05d}.parquet"
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        shard.with_format(None).to_parquet(str(folder / rel))
        paths.append(rel)
    return paths


def save_dataset_folder(
    ds: Any,
    folder: str | os.PathLike,
    *,
    repo_id: str = "user/dataset",
    card_data: Any = None,
    split: str | None = None,
    pretty_name: str | None = None,
    description: str | None = None,
    bad_files: BadFileReport | list[dict[str, str]] | None = None,
    synth_config: dict[str, Any] | None = None,
    licence_note: str | None = None,
    max_shard_size: int = DEFAULT_MAX_SHARD_SIZE,
) -> Path:
    """Write ``ds`` (Dataset or DatasetDict) as a Hub dataset repository in ``folder``; return the folder.

    ``card_data`` (a ``DatasetCardData`` or a dict of its fields: ``license``, ``pretty_name``, ``tags``, ...)
    is merged into the card's YAML; ``bad_files`` defaults to the report a builder attached to ``ds``.
    """
    import datasets
    from huggingface_hub import DatasetCard, DatasetCardData

    from hubdet import __version__

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    splits = _as_dict(ds, split)
    if not splits:
        raise ValueError("the dataset has no split to push")
    for name in splits:
        _write_split(splits[name], folder, name, max_shard_size)

    split_rows, generator_rows, sources = _counts(splits)
    total = sum(r["total"] for r in split_rows)
    if isinstance(card_data, DatasetCardData):
        data = card_data
    else:
        fields: dict[str, Any] = {
            "license": "other",
            "task_categories": ["image-classification", "object-detection"],
            "tags": ["hubdet", "ai-generated-image-detection", "image-forensics", "inpainting"],
        }
        fields.update(dict(card_data or {}))
        data = DatasetCardData(**fields)
    if pretty_name:
        data.pretty_name = pretty_name
    data.pretty_name = data.pretty_name or repo_id.split("/")[-1]
    data.size_categories = data.size_categories or [_size_category(total)]
    data["configs"] = [
        {"config_name": "default", "data_files": [{"split": s, "path": f"data/{s}-*"} for s in splits]}
    ]
    first = next(iter(splits.values()))
    info = datasets.DatasetInfo(features=first.features)
    info.splits = datasets.SplitDict()
    for name, part in splits.items():
        info.splits.add(datasets.SplitInfo(name=name, num_examples=len(part)))
    datasets.info.DatasetInfosDict({"default": info}).to_dataset_card_data(data)

    if isinstance(bad_files, BadFileReport):
        bad_list: list[dict[str, str]] | None = bad_files.to_dict()["files"]
    elif bad_files is not None:
        bad_list = list(bad_files)
    else:
        bad_list = _find_bad_files(ds)
    schema_rows = [
        {"name": name, "type": _type_name(feature), "meaning": _MEANINGS.get(name, "")}
        for name, feature in first.features.items()
    ]
    card = DatasetCard.from_template(
        data,
        template_path=str(dataset_card_template()),
        repo_id=repo_id,
        hubdet_version=__version__,
        source_names=sources or ["unknown"],
        description=description or f"{total} images in {len(splits)} split(s): real photos and AI-generated or "
        "inpainted images, with boxes and masks where the source gives them.",
        split_rows=split_rows,
        generator_rows=generator_rows,
        schema_rows=schema_rows,
        bad_files=bad_list,
        synth_config=json.dumps(synth_config, indent=2, sort_keys=True) if synth_config else None,
        licence_note=licence_note or f"Licence: `{data.license}` (see each source's terms).",
    )
    card.save(str(folder / "README.md"))
    logger.info("wrote %d example(s) in %d split(s) to %s", total, len(splits), folder)
    return folder


def push_dataset(
    ds: Any,
    repo_id: str,
    *,
    card_data: Any = None,
    private: bool = False,
    token: str | None = None,
    split: str | None = None,
    commit_message: str = "Upload dataset with hubdet",
    **card_options: Any,
) -> str:
    """Push ``ds`` to the Hub dataset repository ``repo_id`` (created if needed); return the commit URL.

    ``card_options`` go to :func:`save_dataset_folder` (``pretty_name``, ``description``, ``bad_files``,
    ``synth_config``, ``licence_note``, ``max_shard_size``).
    """
    from hubdet._core.hub import push_folder

    with tempfile.TemporaryDirectory(prefix="hubdet-push-") as tmp:
        save_dataset_folder(ds, tmp, repo_id=repo_id, card_data=card_data, split=split, **card_options)
        return push_folder(
            tmp, repo_id, repo_type="dataset", private=private, token=token, commit_message=commit_message
        )
