"""The two Kaggle face sets used by seeds 003 and 004.

- ``deepfake_and_real_images`` (manjilkarki/deepfake-and-real-images): ``Dataset/{Train,Validation,Test}/{Fake,Real}``.
- ``deepfake_faces`` (dagnelies/deepfake-faces, face crops of DFDC videos): ``faces_224/*.jpg`` + ``metadata.csv``
  (``videoname,original_width,original_height,label,original``; the image of ``abc.mp4`` is ``faces_224/abc.jpg``).
  It has no splits: like seed 003, it is optionally balanced (majority class down-sampled) and split 70/15/15,
  stratified by class and deterministic for ``seed``.
"""

from __future__ import annotations

import csv
import dataclasses
import random
from pathlib import Path

from hubdet._core.config import StrictConfig
from hubdet._core.errors import ConfigError, DataLayoutError
from hubdet.data._builder import (
    HubdetBuilder,
    Item,
    class_folder_items,
    find_child,
    register_source,
    rel,
    split_items,
)
from hubdet.data.imageio import is_image_file
from hubdet.data.schema import FAKE, REAL, ColumnMap, parse_label

#: The fakes of deepfake_faces are face crops of the DFDC challenge's videos.
FACES_GENERATOR = "dfdc"


@register_source("deepfake_and_real_images")
class DeepfakeAndRealImages(HubdetBuilder):
    """Reads ``Dataset/{Train,Validation,Test}/{Fake,Real}``; ``data_dir`` may be the folder holding ``Dataset``."""

    LAYOUT = "Dataset/{Train,Validation,Test}/{Fake,Real}/*.jpg"
    HOMEPAGE = "https://www.kaggle.com/datasets/manjilkarki/deepfake-and-real-images"

    def scan(self, data_dir: Path) -> dict[str, list[Item]]:
        root = find_child(data_dir, "Dataset") or data_dir
        out: dict[str, list[Item]] = {}
        for split, names in (("train", ("Train",)), ("validation", ("Validation", "val")), ("test", ("Test",))):
            split_dir = find_child(root, *names)
            if split_dir is None:
                continue
            items: list[Item] = []
            for cls, label, generator in (("Real", REAL, "natural"), ("Fake", FAKE, "unknown")):
                folder = find_child(split_dir, cls)
                if folder is not None:
                    items += class_folder_items(folder, data_dir, label, generator, self.report.bad_files)
            out[split] = items
        return out


@dataclasses.dataclass
class DeepfakeFacesOptions(StrictConfig):
    """Options of ``deepfake_faces``.

    ``balance`` down-samples the majority class to the size of the minority one (seed 003 kept 16,000 of
    each; ``max_per_class`` caps each class too); ``split_fractions`` are train/validation/test; ``seed`` makes
    the sampling and the split deterministic.
    """

    balance: bool = False
    max_per_class: int | None = None
    split_fractions: tuple[float, float, float] = (0.70, 0.15, 0.15)
    seed: int = 0

    def validate(self) -> None:
        if any(f < 0 for f in self.split_fractions) or sum(self.split_fractions) <= 0:
            raise ConfigError(f"deepfake_faces options.split_fractions: invalid {self.split_fractions}")
        if self.max_per_class is not None and self.max_per_class < 1:
            raise ConfigError(f"deepfake_faces options.max_per_class: expected >= 1, got {self.max_per_class}")


@register_source("deepfake_faces")
class DeepfakeFaces(HubdetBuilder):
    """Reads ``faces_224/*.jpg`` labelled by ``metadata.csv``; balances and splits deterministically."""

    LAYOUT = "faces_224/*.jpg + metadata.csv (videoname, label REAL/FAKE, ...)"
    HUB_COLUMNS = ColumnMap(fake_generator=FACES_GENERATOR)
    HOMEPAGE = "https://www.kaggle.com/datasets/dagnelies/deepfake-faces"
    OPTIONS = DeepfakeFacesOptions
    options: DeepfakeFacesOptions

    def scan(self, data_dir: Path) -> dict[str, list[Item]]:
        meta = data_dir / "metadata.csv"
        faces = find_child(data_dir, "faces_224")
        if not meta.is_file() or faces is None:
            raise DataLayoutError(f"{data_dir}: expected metadata.csv and faces_224/ ({self.LAYOUT})")
        bad = self.report.bad_files
        items: list[Item] = []
        listed: set[str] = set()
        with meta.open(newline="") as f:
            reader = csv.DictReader(f)
            if not reader.fieldnames or not {"videoname", "label"} <= set(reader.fieldnames):
                raise DataLayoutError(f"{meta}: expected columns videoname,label; got {reader.fieldnames}")
            for line, row in enumerate(reader, start=2):
                stem = Path(row["videoname"].strip()).stem
                path = faces / f"{stem}.jpg"
                listed.add(path.name)
                try:
                    label = parse_label(row["label"], f"{meta.name} line {line}")
                except ValueError as exc:
                    bad.add(rel(path, data_dir), str(exc))
                    continue
                if not path.is_file():
                    bad.add(rel(path, data_dir), f"listed in metadata.csv (line {line}) but the file does not exist")
                    continue
                items.append(Item(path=path, label=label, generator="natural" if label == REAL else FACES_GENERATOR,
                                  file=rel(path, data_dir)))
        for path in sorted(faces.iterdir()):
            if path.is_file() and not path.name.startswith(".") and path.name not in listed:
                why = "no label: not listed in metadata.csv" if is_image_file(path) else "not an image file"
                bad.add(rel(path, data_dir), why)
        items = self._sample(items)
        opts = self.options
        return split_items(items, opts.split_fractions, ("train", "validation", "test"), opts.seed)

    def _sample(self, items: list[Item]) -> list[Item]:
        opts = self.options
        by_label = {
            lab: sorted((it for it in items if it.label == lab), key=lambda it: it.file) for lab in (REAL, FAKE)
        }
        cap = min(len(v) for v in by_label.values()) if opts.balance else None
        if opts.max_per_class is not None:
            cap = opts.max_per_class if cap is None else min(cap, opts.max_per_class)
        if cap is None:
            return items
        out: list[Item] = []
        for lab, group in by_label.items():
            if len(group) > cap:
                group = sorted(random.Random(f"{opts.seed}-sample-{lab}").sample(group, cap), key=lambda it: it.file)
            out += group
        return out
