"""Shared machinery of the source builders: base builder, items, bad-file report, registry and ``load_source``.

A source module only describes its layout: it subclasses :class:`HubdetBuilder`, sets ``LAYOUT`` (a
one-line description used in error messages) and optionally ``OPTIONS`` (a :class:`StrictConfig`), and
implements :meth:`HubdetBuilder.scan`, which returns the files of each split as :class:`Item` records.
Reading, validating (through :func:`hubdet.data.imageio.open_image`), re-encoding, box/mask handling and the
bad-file report are done here, once for every source.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import io
import json
import logging
import os
import random
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import datasets
import numpy as np
from PIL import Image

from hubdet._core.config import StrictConfig
from hubdet._core.errors import BadImageError, ConfigError, DataLayoutError, UnknownNameError
from hubdet._core.registry import Registry
from hubdet.data.debias import ReencodeConfig, as_reencode_config, reencode_to_bytes, rescale_boxes, resize_mask
from hubdet.data.imageio import BadFileReport, ImageInfo, is_image_file, open_image
from hubdet.data.schema import FAKE, LABEL_NAMES, REAL, features

logger = logging.getLogger(__name__)

#: Column added (only) when ``reencode=`` is used: how the stored image was re-encoded, e.g. ``JPEG q90``.
REENCODED_COLUMN = "reencoded"
#: Name of the JSON report written next to each prepared cache.
REPORT_FILENAME = "hubdet_report.json"

SOURCE_MODULES = (
    "hubdet.data.cifake",
    "hubdet.data.deepfakeart",
    "hubdet.data.kaggle_faces",
    "hubdet.data.inpaint_boxes",
    "hubdet.data.ufd",
    "hubdet.data.genimage",
    "hubdet.data.folder",
)

SOURCES: Registry[type[HubdetBuilder]] = Registry("source")

_SPLIT_ALIASES = {
    "train": "train", "training": "train",
    "val": "validation", "valid": "validation", "validation": "validation", "dev": "validation",
    "test": "test", "testing": "test",
}


def normalize_split(name: str) -> str | None:
    """Map split folder/column spellings (Train, val, Validation, testing ...) to train/validation/test."""
    return _SPLIT_ALIASES.get(str(name).strip().lower())


# ----------------------------------------------------------------------------------------- report


@dataclasses.dataclass
class PreparationReport:
    """What a preparation produced: examples per split and label, the skipped files and why, the re-encoding."""

    source: str
    data_dir: str | None = None
    repo_id: str | None = None
    splits: dict[str, dict[str, int]] = dataclasses.field(default_factory=dict)
    reencode: str | None = None
    bad_files: BadFileReport = dataclasses.field(default_factory=BadFileReport)
    path: str | None = None  # where the JSON copy lies

    @property
    def skipped(self) -> list[tuple[str, str]]:
        """``(path, reason)`` of every skipped file."""
        return self.bad_files.skipped

    def count(self, split: str, label: int) -> None:
        counts = self.splits.setdefault(split, {"real": 0, "fake": 0})
        counts[LABEL_NAMES[label]] += 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source, "data_dir": self.data_dir, "repo_id": self.repo_id, "splits": self.splits,
            "reencode": self.reencode, "bad_files": self.bad_files.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], path: str | None = None) -> PreparationReport:
        bad = BadFileReport([(f["path"], f["reason"]) for f in data.get("bad_files", {}).get("files", [])])
        return cls(source=data["source"], data_dir=data.get("data_dir"), repo_id=data.get("repo_id"),
                   splits=dict(data.get("splits", {})), reencode=data.get("reencode"), bad_files=bad, path=path)

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")
        self.path = str(path)

    @classmethod
    def load(cls, path: str | Path) -> PreparationReport:
        return cls.from_dict(json.loads(Path(path).read_text()), path=str(path))

    def summary(self) -> str:
        counts = ", ".join(f"{s}: {c.get('real', 0)} real / {c.get('fake', 0)} fake" for s, c in self.splits.items())
        head = f"{self.source}: {counts or 'no examples'}" + (f" (re-encoded {self.reencode})" if self.reencode else "")
        return head + "\n" + self.bad_files.summary()


_LAST_REPORT: PreparationReport | None = None


def last_report() -> PreparationReport | None:
    """The report of the last :func:`load_source` call in this process (``None`` before the first)."""
    return _LAST_REPORT


def _set_last_report(report: PreparationReport) -> None:
    global _LAST_REPORT
    _LAST_REPORT = report


# ----------------------------------------------------------------------------------------- items


@dataclasses.dataclass
class Item:
    """One file to turn into an example. ``boxes`` None means "none known"; ``mask`` is a mask image file."""

    path: Path
    label: int
    generator: str
    file: str  # relative to the data dir: the example's ``file`` field and its key
    boxes: list[list[float]] | None = None
    mask: Path | None = None
    boxes_from_mask: bool = False


def iter_files(root: Path) -> list[Path]:
    """Every file under ``root`` (recursive, sorted, hidden files and folders left out)."""
    out: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        out.extend(Path(dirpath) / f for f in sorted(filenames) if not f.startswith("."))
    return out


def child_dirs(parent: Path) -> list[Path]:
    """Sub-folders of ``parent`` (sorted, hidden ones left out)."""
    if not parent.is_dir():
        return []
    return sorted(p for p in parent.iterdir() if p.is_dir() and not p.name.startswith("."))


def find_child(parent: Path, *names: str) -> Path | None:
    """The sub-folder of ``parent`` whose name matches one of ``names`` case-insensitively."""
    wanted = {n.lower() for n in names}
    for p in child_dirs(parent):
        if p.name.lower() in wanted:
            return p
    return None


def rel(path: Path, root: Path) -> str:
    """``path`` relative to ``root`` in POSIX form (the ``file`` field)."""
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return path.as_posix()


def class_folder_items(
    folder: Path, root: Path, label: int, generator: str, report: BadFileReport
) -> list[Item]:
    """Items for every image under a class folder; files without an image extension are reported, not read."""
    items = []
    for path in iter_files(folder):
        if not is_image_file(path):
            report.add(rel(path, root), f"not an image file (extension {path.suffix or 'none'!r})")
            continue
        items.append(Item(path=path, label=label, generator=generator, file=rel(path, root)))
    return items


def split_items(
    items: Sequence[Item], fractions: Sequence[float], names: Sequence[str], seed: int
) -> dict[str, list[Item]]:
    """Split ``items`` by class (stratified) into ``names`` with ``fractions``, deterministically for ``seed``.

    Items are sorted by ``file`` first, so the split depends only on the file names and the seed.
    """
    total = float(sum(fractions))
    out: dict[str, list[Item]] = {n: [] for n in names}
    for label in (REAL, FAKE):
        group = sorted((it for it in items if it.label == label), key=lambda it: it.file)
        random.Random(f"{seed}-{label}").shuffle(group)
        n = len(group)
        bounds = np.round(np.cumsum([0.0, *fractions]) / total * n).astype(int)
        for name, lo, hi in zip(names, bounds[:-1], bounds[1:], strict=True):
            out[name].extend(group[lo:hi])
    return {k: sorted(v, key=lambda it: it.file) for k, v in out.items()}


# ----------------------------------------------------------------------------------------- builder


@dataclasses.dataclass
class NoOptions(StrictConfig):
    """A source without options."""


@dataclasses.dataclass
class HubdetBuilderConfig(datasets.BuilderConfig):
    """Builder config: the source's options (checked by its ``OPTIONS`` class), re-encoding and a data fingerprint.

    ``fingerprint`` summarises the file listing of ``data_dir`` (names, sizes, times) so that a changed folder
    is prepared again instead of served stale from the cache.
    """

    options: dict = dataclasses.field(default_factory=dict)
    reencode: dict | None = None
    fingerprint: str = ""


class HubdetBuilder(datasets.GeneratorBasedBuilder):
    """Base of every hubdet source: reads a local ``data_dir`` and yields examples in the hubdet schema."""

    BUILDER_CONFIG_CLASS = HubdetBuilderConfig
    VERSION = datasets.Version("1.0.0")
    #: The registered source name (also the ``source`` field of every example).
    SOURCE_NAME: ClassVar[str] = ""
    #: One line on the expected folder layout, used in error messages.
    LAYOUT: ClassVar[str] = ""
    #: Strict options of this source.
    OPTIONS: ClassVar[type[StrictConfig]] = NoOptions
    HOMEPAGE: ClassVar[str] = ""
    CITATION: ClassVar[str] = ""

    config: HubdetBuilderConfig

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.options = self.OPTIONS.from_dict(dict(self.config.options), where=f"{self.SOURCE_NAME} options")
        self.reencode_config: ReencodeConfig | None = as_reencode_config(self.config.reencode)
        self.report = PreparationReport(
            source=self.SOURCE_NAME,
            data_dir=self.config.data_dir,
            reencode=self.reencode_config.describe() if self.reencode_config else None,
        )
        self.generated = False

    # -- to implement ---------------------------------------------------------------------------

    def scan(self, data_dir: Path) -> dict[str, list[Item]]:
        """Return the items of each split found in ``data_dir``; report unusable entries in ``self.report``."""
        raise NotImplementedError

    # -- datasets hooks -------------------------------------------------------------------------

    def _info(self) -> datasets.DatasetInfo:
        feats = features()
        if self.config.reencode is not None:
            feats[REENCODED_COLUMN] = datasets.Value("string")
        return datasets.DatasetInfo(
            description=f"hubdet source {self.SOURCE_NAME!r}: {self.LAYOUT}",
            features=feats,
            homepage=self.HOMEPAGE,
            citation=self.CITATION,
        )

    def _split_generators(self, dl_manager: Any) -> list[datasets.SplitGenerator]:
        if not self.config.data_dir:
            raise DataLayoutError(
                f"source {self.SOURCE_NAME!r} needs data_dir= (a local copy laid out as {self.LAYOUT})"
            )
        data_dir = Path(self.config.data_dir)
        if not data_dir.is_dir():
            raise DataLayoutError(f"{data_dir}: no such folder (source {self.SOURCE_NAME!r} expects {self.LAYOUT})")
        self.generated = True
        by_split = {k: v for k, v in self.scan(data_dir).items() if v}
        if not by_split:
            raise DataLayoutError(
                f"{data_dir}: no images found in the layout of source {self.SOURCE_NAME!r} ({self.LAYOUT})"
            )
        logger.info("%s: %s", self.SOURCE_NAME, ", ".join(f"{k}={len(v)} files" for k, v in by_split.items()))
        return [
            datasets.SplitGenerator(name=split, gen_kwargs={"items": items, "split": split})
            for split, items in by_split.items()
        ]

    def _generate_examples(self, items: list[Item], split: str) -> Iterator[tuple[str, dict[str, Any]]]:
        for item in items:
            example = self.make_example(item)
            if example is None:
                continue
            self.report.count(split, item.label)
            yield item.file, example

    # -- example construction -------------------------------------------------------------------

    def _read(self, path: Path, file: str) -> tuple[bytes, Image.Image, ImageInfo] | None:
        """Read a file once and decode it through ``open_image``; report and return None when unusable."""
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            self.report.bad_files.add(file, "file does not exist")
            return None
        except OSError as exc:
            self.report.bad_files.add(file, f"cannot read file ({exc.strerror or exc})")
            return None
        try:
            img, info = open_image(data)
        except BadImageError as exc:
            self.report.bad_files.add(file, exc.reason)
            return None
        return data, img, info

    def _read_mask(self, item: Item, size: tuple[int, int]) -> Image.Image | None:
        if item.mask is None:
            return None
        mask_file = rel(item.mask, Path(self.config.data_dir or "."))
        got = self._read(item.mask, mask_file)
        if got is None:
            return None
        mask = got[1].convert("L").point(lambda v: 255 if v > 127 else 0)
        if mask.size != size:
            logger.warning("%s: mask %s is %sx%s, image is %sx%s; resizing the mask", item.file, mask_file,
                           *mask.size, *size)
            mask = resize_mask(mask, size)
        return mask

    def make_example(self, item: Item) -> dict[str, Any] | None:
        """Build one example (``None`` and a report entry when the image or its mask is unusable)."""
        got = self._read(item.path, item.file)
        if got is None:
            return None
        data, img, info = got
        size = (img.width, img.height)
        mask = None
        if item.mask is not None:
            mask = self._read_mask(item, size)
            if mask is None:
                self.report.bad_files.add(item.file, f"its mask {rel(item.mask, Path(self.config.data_dir or '.'))} "
                                                     "is unusable (see above); example skipped")
                return None
        boxes = [list(map(float, b)) for b in (item.boxes or [])]
        if item.boxes_from_mask and mask is not None and not boxes:
            bbox = mask.getbbox()
            boxes = [list(map(float, bbox))] if bbox else []
        boxes = _clip_boxes(boxes, size, item.file)
        cfg = self.reencode_config
        example: dict[str, Any] = {}
        if cfg is not None:
            data, new_size = reencode_to_bytes(img, cfg)
            boxes = rescale_boxes(boxes, size, new_size)
            if mask is not None:
                mask = resize_mask(mask, new_size)
            example[REENCODED_COLUMN] = cfg.describe()
        example.update({
            "image": {"bytes": data, "path": None},
            "label": item.label,
            "boxes": boxes,
            "mask": {"bytes": _png_bytes(mask), "path": None} if mask is not None else None,
            "generator": item.generator,
            "source": self.SOURCE_NAME,
            "orig_format": info.format or "",
            "orig_jpeg_quality": info.jpeg_quality if info.jpeg_quality is not None else -1,
            "orig_width": info.width,
            "orig_height": info.height,
            "file": item.file,
        })
        return example


def _png_bytes(img: Image.Image) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def _clip_boxes(boxes: list[list[float]], size: tuple[int, int], file: str) -> list[list[float]]:
    """Clip boxes to the image; drop empty ones (e.g. the all-zero box of an untouched image)."""
    w, h = size
    out = []
    for b in boxes:
        x0, y0, x1, y1 = max(0.0, b[0]), max(0.0, b[1]), min(float(w), b[2]), min(float(h), b[3])
        if x1 > x0 and y1 > y0:
            out.append([x0, y0, x1, y1])
        elif any(b):
            logger.warning("%s: box %s is empty inside a %sx%s image; dropped", file, b, w, h)
    return out


# ----------------------------------------------------------------------------------------- registry


def register_source(name: str) -> Any:
    """Class decorator: register a :class:`HubdetBuilder` subclass as source ``name``."""

    def wrap(cls: type[HubdetBuilder]) -> type[HubdetBuilder]:
        cls.SOURCE_NAME = name
        SOURCES.register(name, cls)
        return cls

    return wrap


def _ensure_registered() -> None:
    for module in SOURCE_MODULES:
        importlib.import_module(module)


def list_sources() -> list[str]:
    """Names of every source :func:`load_source` can read."""
    _ensure_registered()
    return SOURCES.names()


def get_source(name: str) -> type[HubdetBuilder]:
    """The builder class of source ``name`` (unknown names raise with suggestions)."""
    _ensure_registered()
    return SOURCES.get(name)


# ----------------------------------------------------------------------------------------- loading


def _fingerprint_dir(root: Path) -> str:
    """A hash of the listing of ``root``: relative names, sizes and modification times."""
    h = hashlib.sha256()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(filenames):
            p = os.path.join(dirpath, name)
            try:
                st = os.stat(p)
            except OSError:
                continue
            h.update(f"{os.path.relpath(p, root)}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def _code_hash(cls: type[HubdetBuilder]) -> str:
    """A hash of the code that shapes the prepared data, so that a code change invalidates the cache."""
    import inspect

    h = hashlib.sha256()
    for module in {__name__, cls.__module__, "hubdet.data.debias", "hubdet.data.schema"}:
        src = inspect.getsourcefile(importlib.import_module(module))
        if src:
            h.update(Path(src).read_bytes())
    return h.hexdigest()[:16]


def _check_options(cls: type[HubdetBuilder], options: Mapping[str, Any]) -> dict[str, Any]:
    """Validate ``options`` against the source's ``OPTIONS`` (unknown keys raise with suggestions)."""
    try:
        return cls.OPTIONS.from_dict(dict(options), where=f"{cls.SOURCE_NAME} options").to_dict()
    except ConfigError as exc:
        raise ConfigError(f"{exc} (source {cls.SOURCE_NAME!r})") from None


def make_builder(
    name: str,
    data_dir: str | os.PathLike[str],
    *,
    reencode: ReencodeConfig | Mapping[str, Any] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    **options: Any,
) -> HubdetBuilder:
    """Instantiate the builder of source ``name`` for ``data_dir`` (options and re-encoding checked strictly)."""
    cls = get_source(name)
    checked = _check_options(cls, options)
    cfg = as_reencode_config(reencode)
    root = Path(data_dir).expanduser().resolve()
    if not root.is_dir():
        raise DataLayoutError(f"{root}: no such folder (source {name!r} expects {cls.LAYOUT})")
    return cls(
        cache_dir=str(cache_dir) if cache_dir is not None else None,
        dataset_name=name,
        hash=_code_hash(cls),
        data_dir=str(root),
        options=checked,
        reencode=cfg.to_dict() if cfg else None,
        fingerprint=_fingerprint_dir(root),
    )


def _resolve_split(name: str | None, available: Iterable[str], source: str) -> str | None:
    if name is None:
        return None
    available = list(available)
    if name in available:
        return name
    alias = normalize_split(name)
    if alias in available:
        return alias
    raise UnknownNameError(f"source {source!r} has no split {name!r}; it has {available}")


def prepare_local(
    name: str,
    data_dir: str | os.PathLike[str],
    split: str | None = None,
    *,
    streaming: bool = False,
    reencode: ReencodeConfig | Mapping[str, Any] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    **options: Any,
) -> Any:
    """Prepare (or reuse from the cache) a local copy of source ``name``; see :func:`hubdet.data.load_source`."""
    builder = make_builder(name, data_dir, reencode=reencode, cache_dir=cache_dir, **options)
    if streaming:
        ds: Any = builder.as_streaming_dataset(split=normalize_split(split) or split if split else None)
        report = builder.report  # filled while the stream is read
    else:
        builder.download_and_prepare()
        report_path = Path(builder.cache_dir) / REPORT_FILENAME
        if builder.generated:
            report = builder.report
            try:
                report.save(report_path)
            except OSError as exc:  # a read-only cache still gives the in-memory report
                logger.warning("could not write %s: %s", report_path, exc)
        elif report_path.is_file():
            report = PreparationReport.load(report_path)
        else:
            report = builder.report
        chosen = _resolve_split(split, builder.info.splits or {}, name)
        ds = builder.as_dataset(split=chosen)
    if report.bad_files.skipped:
        logger.warning("%s: %d file(s) skipped; see the report (%s)", name, len(report.bad_files),
                       report.path or "hubdet.data.last_report()")
    _set_last_report(report)
    return attach_report(ds, report)


def attach_report(ds: Any, report: PreparationReport) -> Any:
    """Set ``report`` as the ``report`` attribute of ``ds`` and, for a dict of splits, of each split."""
    targets = [ds, *ds.values()] if isinstance(ds, dict) else [ds]
    for target in targets:
        target.report = report
    return ds


def load_source(
    name: str,
    data_dir: str | os.PathLike[str] | None = None,
    split: str | None = None,
    *,
    repo_id: str | None = None,
    streaming: bool = False,
    reencode: ReencodeConfig | Mapping[str, Any] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    **options: Any,
) -> Any:
    """Load source ``name`` in the hubdet schema, from a local ``data_dir`` or a Hub copy ``repo_id``.

    Returns a ``datasets.DatasetDict`` (or ``Dataset`` for one ``split``; the iterable variants when
    ``streaming``). ``reencode`` re-encodes every image of both classes the same way (a
    :class:`~hubdet.data.debias.ReencodeConfig` or a dict of its fields). ``options`` are the source's own,
    checked strictly. Files that cannot be used are skipped and listed in the report, available as
    ``dataset.report``, :func:`last_report` and ``hubdet_report.json`` next to the cache.
    """
    if repo_id is not None:
        if data_dir is not None:
            raise ConfigError("give data_dir= or repo_id=, not both")
        from hubdet.data.hub_sources import load_from_hub

        return load_from_hub(name, repo_id, split, streaming=streaming, reencode=reencode, cache_dir=cache_dir,
                             **options)
    cls = get_source(name)
    if data_dir is None:
        raise ConfigError(f"source {name!r}: give data_dir= (a local copy laid out as {cls.LAYOUT}) "
                          "or repo_id= (a copy published on the Hub)")
    return prepare_local(name, data_dir, split, streaming=streaming, reencode=reencode, cache_dir=cache_dir,
                         **options)
