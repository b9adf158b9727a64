"""Any folder of real and fake images: class folders, an optional labels/boxes CSV, optional split folders.

Layout: ``[<split>/]{real,fake}/...`` with class folder names in any case (``Real``, ``FAKE``, ``0_real``,
``1_fake``), and optionally, beside the class folders, ``boxes.csv`` or ``labels.csv`` with columns
``file,label,generator,xmin,ymin,xmax,ymax,mask`` (all but ``file`` optional; extra columns ignored; empty box
cells mean no box; several rows for one file give several boxes; a ``split`` column assigns splits). ``file``
and ``mask`` are relative to ``data_dir``. The CSV wins over the folder name; files listed in the CSV outside
class folders are read too. This reads every set in ``../shared/data`` and the output of ``hubdet synth``.
"""

from __future__ import annotations

import csv
import dataclasses
import logging
from pathlib import Path

from hubdet._core.config import StrictConfig
from hubdet._core.errors import DataLayoutError
from hubdet.data._builder import (
    HubdetBuilder,
    Item,
    child_dirs,
    class_folder_items,
    normalize_split,
    register_source,
)
from hubdet.data.schema import FAKE, REAL, parse_label

logger = logging.getLogger(__name__)

_CLASS_DIRS = {"real": REAL, "0_real": REAL, "fake": FAKE, "1_fake": FAKE}
_FILE_COLS = ("file", "path", "filename", "image", "file_name")
_BOX = ("xmin", "ymin", "xmax", "ymax")


@dataclasses.dataclass
class FolderOptions(StrictConfig):
    """``labels_file``: the CSV to read (default ``boxes.csv``, else ``labels.csv``, when present);
    ``fake_generator``: the generator recorded for fakes that the CSV does not name."""

    labels_file: str | None = None
    fake_generator: str = "unknown"


@dataclasses.dataclass
class _Row:
    label: int | None = None
    generator: str | None = None
    boxes: list[list[float]] = dataclasses.field(default_factory=list)
    mask: str | None = None
    split: str | None = None


@register_source("folder")
class Folder(HubdetBuilder):
    """Reads ``[split/]{real,fake}/`` class folders and an optional ``boxes.csv``/``labels.csv``."""

    LAYOUT = "[<split>/]{real,fake,0_real,1_fake}/* (any case) + optional boxes.csv or labels.csv"
    OPTIONS = FolderOptions
    options: FolderOptions

    def _csv(self, data_dir: Path) -> Path | None:
        if self.options.labels_file:
            path = data_dir / self.options.labels_file
            if not path.is_file():
                raise DataLayoutError(f"{path}: labels file not found")
            return path
        for name in ("boxes.csv", "labels.csv"):
            if (data_dir / name).is_file():
                return data_dir / name
        return None

    def _read_csv(self, path: Path, data_dir: Path) -> dict[str, _Row]:
        rows: dict[str, _Row] = {}
        with path.open(newline="") as f:
            reader = csv.DictReader(f)
            cols = {c.strip().lower(): c for c in reader.fieldnames or []}
            file_col = next((cols[c] for c in _FILE_COLS if c in cols), None)
            if file_col is None:
                raise DataLayoutError(f"{path}: no file column (one of {_FILE_COLS}); got {reader.fieldnames}")

            def cell(row: dict[str, str], name: str) -> str:
                return (row.get(cols[name]) or "").strip() if name in cols else ""

            for line, row in enumerate(reader, start=2):
                file = (row.get(file_col) or "").strip()
                if not file:
                    continue
                where = f"{path.name} line {line}"
                if Path(file).as_posix() in self._rejected:
                    continue
                entry = rows.setdefault(Path(file).as_posix(), _Row())
                try:
                    if cell(row, "label"):
                        entry.label = parse_label(cell(row, "label"), where)
                    coords = [cell(row, c) for c in _BOX]
                    if all(coords):
                        entry.boxes.append([float(v) for v in coords])
                    elif any(coords):
                        raise ValueError(f"{where}: incomplete box {coords}")
                except ValueError as exc:
                    self.report.bad_files.add(file, f"{exc}; file skipped")
                    rows.pop(Path(file).as_posix(), None)
                    self._rejected.add(Path(file).as_posix())
                    continue
                entry.generator = cell(row, "generator") or entry.generator
                entry.mask = cell(row, "mask") or entry.mask
                if cell(row, "split"):
                    entry.split = normalize_split(cell(row, "split")) or cell(row, "split")
        return rows

    def _class_roots(self, data_dir: Path) -> list[tuple[str | None, Path]]:
        """(split from the folder, folder holding class folders): split folders if any, else ``data_dir``."""
        roots: list[tuple[str | None, Path]] = []
        for sub in child_dirs(data_dir):
            split = normalize_split(sub.name)
            if split and any(d.name.lower() in _CLASS_DIRS for d in child_dirs(sub)):
                roots.append((split, sub))
        return roots or [(None, data_dir)]

    def scan(self, data_dir: Path) -> dict[str, list[Item]]:
        csv_path = self._csv(data_dir)
        self._rejected = set()
        rows = self._read_csv(csv_path, data_dir) if csv_path else {}
        bad = self.report.bad_files
        found: dict[str, tuple[str | None, Item]] = {}
        for split, root in self._class_roots(data_dir):
            for class_dir in child_dirs(root):
                label = _CLASS_DIRS.get(class_dir.name.lower())
                if label is None:
                    continue
                generator = "natural" if label == REAL else self.options.fake_generator
                for item in class_folder_items(class_dir, data_dir, label, generator, bad):
                    if item.file not in self._rejected:
                        found[item.file] = (split, item)
        for file, row in rows.items():
            split, item = found.get(file, (None, None))
            path = data_dir / file
            if item is None:
                if not path.is_file():
                    bad.add(file, f"listed in {csv_path.name if csv_path else 'the CSV'} but the file does not exist")
                    continue
                if row.label is None:
                    bad.add(file, "no label: not in a real/fake folder and the CSV gives none")
                    continue
                first = Path(file).parts[0] if len(Path(file).parts) > 1 else ""
                split = normalize_split(first)
                item = Item(path=path, label=row.label, generator="", file=file)
            elif row.label is not None and row.label != item.label:
                logger.warning("%s: the CSV says %s but the folder says %s; using the CSV", file,
                               ["real", "fake"][row.label], ["real", "fake"][item.label])
            if row.label is not None:
                item.label = row.label
            item.generator = row.generator or ("natural" if item.label == REAL else self.options.fake_generator)
            item.boxes = row.boxes
            if row.mask:
                item.mask = data_dir / row.mask
            found[file] = (row.split or split, item)
        out: dict[str, list[Item]] = {}
        for file in sorted(found):
            split, item = found[file]
            out.setdefault(split or "train", []).append(item)
        return out
