"""Copies of the sources published on the Hub: load with ``datasets.load_dataset`` and map into the hubdet schema.

Each source's builder declares a :class:`~hubdet.data.schema.ColumnMap` as ``HUB_COLUMNS`` (which columns hold the
image, the label, ...; what generator its fakes come from); the generic default takes the first ``Image`` column (or
a column named ``image``/``img``/...) and the first ``ClassLabel`` column (or one named ``label``/``class``/...).
Label values are read by name (``REAL``/``FAKE``, ``real``/``fake``, ``0_real``, ``ai``/``nature`` ...), ``label_map=``
overrides them. Options name columns explicitly when the guess is wrong. Rows whose image is unusable are
skipped and listed in the report, exactly like local preparation; examples are assembled by the same
:func:`~hubdet.data.example.make_example` and cached under the same kind of :func:`~hubdet.data.example.cache_key`.

``repo_id`` may also be a local folder (a parquet or imagefolder copy): ``load_dataset`` reads both, which is
how the tests stand in for the Hub.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import datasets

from hubdet._core.config import StrictConfig
from hubdet._core.errors import BadImageError, ConfigError, DataLayoutError
from hubdet.data._builder import get_source
from hubdet.data.debias import ReencodeConfig, as_reencode_config
from hubdet.data.example import PreparationReport, attach_report, cache_key, decode, example_features, make_example
from hubdet.data.imageio import open_image
from hubdet.data.schema import REAL, ColumnMap, parse_label

logger = logging.getLogger(__name__)


@dataclasses.dataclass
class HubOptions(StrictConfig):
    """Options of a Hub load: explicit column names, label spellings, the fakes' generator, a revision."""

    image_column: str | None = None
    label_column: str | None = None
    generator_column: str | None = None
    boxes_column: str | None = None
    mask_column: str | None = None
    label_map: dict[str, str] | None = None
    fake_generator: str | None = None
    config_name: str | None = None
    revision: str | None = None


def _find_column(
    feats: Mapping[str, Any], explicit: str | None, candidates: tuple[str, ...], kind: type | None, what: str
) -> str | None:
    if explicit is not None:
        if explicit not in feats:
            raise DataLayoutError(f"{what} column {explicit!r} not found; columns: {list(feats)}")
        return explicit
    lower = {c.lower(): c for c in feats}
    for cand in candidates:
        if cand in lower:
            return lower[cand]
    if kind is not None:
        for col, feat in feats.items():
            if isinstance(feat, kind):
                return col
    return None


class _RowConverter:
    """Turns rows of a published copy into hubdet examples, filling the report."""

    def __init__(
        self, source: str, feats: datasets.Features, cmap: ColumnMap, opts: HubOptions,
        reencode: ReencodeConfig | None, report: PreparationReport,
    ) -> None:
        self.source = source
        self.opts = opts
        self.reencode = reencode
        self.report = report
        self.image_col = _find_column(feats, opts.image_column, cmap.image, datasets.Image, "image")
        self.label_col = _find_column(feats, opts.label_column, cmap.label, datasets.ClassLabel, "label")
        if self.image_col is None or self.label_col is None:
            raise DataLayoutError(
                f"cannot find the image and label columns among {list(feats)}; name them with "
                "image_column= and label_column="
            )
        self.generator_col = _find_column(feats, opts.generator_column, cmap.generator, None, "generator")
        self.boxes_col = _find_column(feats, opts.boxes_column, cmap.boxes, None, "boxes")
        self.mask_col = _find_column(feats, opts.mask_column, cmap.mask, None, "mask")
        label_feat = feats[self.label_col]
        self.label_names = label_feat.names if isinstance(label_feat, datasets.ClassLabel) else None
        self.fake_generator = opts.fake_generator or cmap.fake_generator
        self.real_generator = cmap.real_generator
        self.ran = False
        self._warned_numeric = False
        logger.info("%s: image=%s label=%s generator=%s boxes=%s mask=%s", source, self.image_col, self.label_col,
                    self.generator_col, self.boxes_col, self.mask_col)

    def image_columns(self) -> list[str]:
        return [c for c in (self.image_col, self.mask_col) if c is not None]

    def _label(self, raw: Any, where: str) -> int:
        if self.label_names is not None and isinstance(raw, int) and not isinstance(raw, bool):
            raw = self.label_names[raw]
        if self.opts.label_map is not None:
            if str(raw) not in self.opts.label_map:
                raise ValueError(f"{where}: label {raw!r} not in label_map {sorted(self.opts.label_map)}")
            raw = self.opts.label_map[str(raw)]
        elif isinstance(raw, int) and not isinstance(raw, bool) and not self._warned_numeric:
            logger.warning("%s: numeric labels without names; reading 0 as real and 1 as fake "
                           "(pass label_map= if the copy means otherwise)", self.source)
            self._warned_numeric = True
        return parse_label(raw, where)

    @staticmethod
    def _bytes(value: Any) -> tuple[bytes, str | None]:
        if isinstance(value, (bytes, bytearray)):
            return bytes(value), None
        if isinstance(value, str):
            return Path(value).read_bytes(), value
        if isinstance(value, Mapping):
            data, path = value.get("bytes"), value.get("path")
            if data:
                return bytes(data), path
            if path:
                from datasets.utils.file_utils import xopen

                with xopen(path, "rb") as f:
                    return f.read(), path
            return b"", path
        raise BadImageError("<row>", f"unsupported image value of type {type(value).__name__}")

    def convert(self, row: Mapping[str, Any], index: int, split: str) -> dict[str, Any] | None:
        self.ran = True
        where = f"{split}[{index}]"
        name = where
        try:
            data, path = self._bytes(row[self.image_col])
            name = f"{where} {os.path.basename(path)}" if path else where
        except BadImageError as exc:
            self.report.bad_files.add(name, exc.reason)
            return None
        except OSError as exc:
            self.report.bad_files.add(name, f"cannot read image ({exc})")
            return None
        got = decode(data, name, self.report.bad_files)
        if got is None:
            return None
        try:
            label = self._label(row[self.label_col], where)
        except ValueError as exc:
            self.report.bad_files.add(name, str(exc))
            return None
        mask = None
        if self.mask_col is not None and row.get(self.mask_col) is not None:
            try:
                mask = open_image(self._bytes(row[self.mask_col])[0])[0]
            except (BadImageError, OSError) as exc:
                self.report.bad_files.add(name, f"unusable mask ({exc}); example skipped")
                return None
        boxes = row.get(self.boxes_col) if self.boxes_col else None
        if boxes:
            boxes = [boxes] if not isinstance(boxes[0], (list, tuple)) else boxes
            boxes = [b for b in boxes if len(b) == 4]
        generator = (row.get(self.generator_col) if self.generator_col else None) or (
            self.real_generator if label == REAL else self.fake_generator
        )
        example = make_example(data, *got, label=label, generator=generator, source=self.source,
                               file=os.path.basename(path) if path else where, boxes=boxes, mask=mask,
                               boxes_from_mask=True, reencode=self.reencode)
        self.report.count(split, label)
        return example


def _map_split(
    ds: Any, split: str, conv_args: tuple[Any, ...], out_features: datasets.Features, fingerprint: str | None
) -> tuple[Any, _RowConverter]:
    feats = ds.features
    if feats is None:  # an iterable copy whose features are unknown until read
        ds = ds._resolve_features()
        feats = ds.features
    conv = _RowConverter(*conv_args[:1], feats, *conv_args[1:])
    for col in conv.image_columns():
        if isinstance(feats[col], datasets.Image):
            ds = ds.cast_column(col, datasets.Image(decode=False))

    def batch_fn(batch: dict[str, list[Any]], indices: list[int]) -> dict[str, list[Any]]:
        out: dict[str, list[Any]] = {k: [] for k in out_features}
        for i, index in enumerate(indices):
            ex = conv.convert({k: v[i] for k, v in batch.items()}, index, split)
            if ex is not None:
                for k in out_features:
                    out[k].append(ex[k])
        return out

    kwargs: dict[str, Any] = dict(batched=True, batch_size=32, with_indices=True, remove_columns=list(feats))
    if isinstance(ds, datasets.Dataset):
        kwargs.update(features=out_features, new_fingerprint=fingerprint,
                      desc=f"Mapping {split} into the hubdet schema")
        return ds.map(batch_fn, **kwargs), conv
    # an IterableDataset ignores features= for decoding; casting afterwards turns image decoding back on
    return ds.map(batch_fn, **kwargs).cast(out_features), conv


def load_from_hub(
    name: str,
    repo_id: str,
    split: str | None = None,
    *,
    streaming: bool = False,
    reencode: ReencodeConfig | Mapping[str, Any] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    **options: Any,
) -> Any:
    """Load a published copy of source ``name`` from ``repo_id`` (or a local folder) in the hubdet schema.

    The dataset carries its :class:`~hubdet.data.example.PreparationReport` as ``ds.report``.
    """
    cls = get_source(name)  # unknown source names raise with suggestions
    opts = HubOptions.from_dict(dict(options), where=f"{name} (Hub copy) options")
    cfg = as_reencode_config(reencode)
    cmap = cls.HUB_COLUMNS
    report = PreparationReport(source=name, repo_id=repo_id, reencode=cfg.describe() if cfg else None)
    try:
        loaded = datasets.load_dataset(
            repo_id, opts.config_name, split=split, streaming=streaming, revision=opts.revision,
            cache_dir=str(cache_dir) if cache_dir is not None else None,
        )
    except ValueError as exc:
        if split is not None and "split" in str(exc).lower():
            raise ConfigError(f"{repo_id}: {exc}") from None
        raise
    out_features = example_features(cfg)
    conv_args = (name, cmap, opts, cfg, report)

    def one(ds: Any, split_name: str) -> Any:
        fp = None
        if isinstance(ds, datasets.Dataset):
            fp = cache_key(cls, __name__, options=opts.to_dict(), reencode=cfg,
                           data=f"{repo_id}\0{ds._fingerprint}\0{split_name}")
        mapped, conv = _map_split(ds, split_name, conv_args, out_features, fp)
        if isinstance(mapped, datasets.Dataset) and mapped.cache_files:
            path = Path(mapped.cache_files[0]["filename"]).parent / f"hubdet_report-{fp}.json"
            if conv.ran:
                _save_part(path, split_name, report)
            elif path.is_file():
                _load_part(path, split_name, report)
        return mapped

    if isinstance(loaded, (datasets.DatasetDict, datasets.IterableDatasetDict)):
        result: Any = type(loaded)({k: one(v, k) for k, v in loaded.items()})
    else:
        result = one(loaded, split or "train")
    if report.bad_files.skipped:
        logger.warning("%s: %d row(s) skipped; see the report (dataset.report)", repo_id, len(report.bad_files))
    return attach_report(result, report)


def _save_part(path: Path, split: str, report: PreparationReport) -> None:
    mine = [(p, r) for p, r in report.bad_files.skipped if p.startswith(f"{split}[")]
    data = {"split": split, "counts": report.splits.get(split, {}), "bad_files": mine}
    try:
        path.write_text(json.dumps(data, indent=2) + "\n")
        report.path = str(path)
    except OSError as exc:
        logger.warning("could not write %s: %s", path, exc)


def _load_part(path: Path, split: str, report: PreparationReport) -> None:
    data = json.loads(path.read_text())
    report.splits[split] = dict(data.get("counts", {}))
    report.bad_files.skipped.extend((p, r) for p, r in data.get("bad_files", []))
    report.path = str(path)
