"""Seed 001's inpainting-localization set: Places365 photos, half inpainted by DeepFillv2 in one random box.

Layout: the images (anywhere under ``data_dir``, e.g. ``images/``) and one CSV with ``id,label,xmin,ymin,xmax,ymax``
(label 1 = inpainted; untouched rows have an all-zero box). ``id`` is matched against file paths relative to
``data_dir``, then file names, then file names without extension. Unless the CSV has a ``split`` column, the
rows are split train/validation/test in the proportions of seed 001 (25000/5000/6500), stratified by label and
deterministic for ``seed``.
"""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

from hubdet._core.config import StrictConfig
from hubdet._core.errors import ConfigError, DataLayoutError
from hubdet.data._builder import HubdetBuilder, Item, iter_files, normalize_split, register_source, rel, split_items
from hubdet.data.imageio import is_image_file
from hubdet.data.schema import REAL, ColumnMap, parse_label

_BOX = ("xmin", "ymin", "xmax", "ymax")
#: Seed 001 inpainted its images with DeepFillv2.
GENERATOR = "deepfill-v2"


@dataclasses.dataclass
class InpaintBoxesOptions(StrictConfig):
    """``csv_file``: the CSV (default: the only ``*.csv`` in ``data_dir``); ``split_sizes``: proportions of
    train/validation/test when the CSV has no ``split`` column; ``generator``: recorded for inpainted images."""

    csv_file: str | None = None
    split_sizes: tuple[float, float, float] = (25000, 5000, 6500)
    seed: int = 0
    generator: str = GENERATOR

    def validate(self) -> None:
        if any(s < 0 for s in self.split_sizes) or sum(self.split_sizes) <= 0:
            raise ConfigError(f"inpaint_boxes options.split_sizes: invalid {self.split_sizes}")


@register_source("inpaint_boxes")
class InpaintBoxes(HubdetBuilder):
    """Reads images + ``id,label,xmin,ymin,xmax,ymax`` CSV (seed 001)."""

    LAYOUT = "images + one CSV with id,label,xmin,ymin,xmax,ymax[,split]"
    HUB_COLUMNS = ColumnMap(fake_generator=GENERATOR)
    OPTIONS = InpaintBoxesOptions
    options: InpaintBoxesOptions

    def _csv_path(self, data_dir: Path) -> Path:
        if self.options.csv_file:
            path = data_dir / self.options.csv_file
            if not path.is_file():
                raise DataLayoutError(f"{path}: CSV file not found")
            return path
        found = sorted(data_dir.glob("*.csv"))
        if len(found) != 1:
            raise DataLayoutError(
                f"{data_dir}: expected exactly one *.csv with id,label,xmin,ymin,xmax,ymax, found "
                f"{[p.name for p in found]}; name it with csv_file="
            )
        return found[0]

    def scan(self, data_dir: Path) -> dict[str, list[Item]]:
        csv_path = self._csv_path(data_dir)
        bad = self.report.bad_files
        index: dict[str, Path] = {}
        for path in iter_files(data_dir):
            if not is_image_file(path):
                continue
            for key in (rel(path, data_dir), path.name, path.stem):
                index.setdefault(key, path)
        items: list[Item] = []
        splits: dict[str, str] = {}
        with csv_path.open(newline="") as f:
            reader = csv.DictReader(f)
            cols = {c.strip().lower(): c for c in reader.fieldnames or []}
            missing = [c for c in ("id", "label", *_BOX) if c not in cols]
            if missing:
                raise DataLayoutError(f"{csv_path}: missing column(s) {missing}; got {reader.fieldnames}")
            for line, row in enumerate(reader, start=2):
                ident = row[cols["id"]].strip()
                where = f"{csv_path.name} line {line}"
                path = index.get(ident)
                if path is None:
                    bad.add(ident, f"listed in {where} but no image file matches")
                    continue
                try:
                    label = parse_label(row[cols["label"]], where)
                    box = [float(row[cols[c]] or 0) for c in _BOX]
                except ValueError as exc:
                    bad.add(rel(path, data_dir), f"{where}: {exc}")
                    continue
                item = Item(path=path, label=label, file=rel(path, data_dir),
                            generator="natural" if label == REAL else self.options.generator,
                            boxes=[box] if label != REAL and any(box) else [])
                if "split" in cols:
                    split = normalize_split(row[cols["split"]])
                    if split is None:
                        bad.add(item.file, f"{where}: unknown split {row[cols['split']]!r}")
                        continue
                    splits[item.file] = split
                items.append(item)
        if "split" in cols:
            out: dict[str, list[Item]] = {}
            for item in items:
                out.setdefault(splits[item.file], []).append(item)
            return out
        return split_items(items, self.options.split_sizes, ("train", "validation", "test"), self.options.seed)
