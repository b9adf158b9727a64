"""Shared machinery of the source builders: the base builder, items, the source registry and local preparation.

A source module only describes its layout: it subclasses :class:`HubdetBuilder`, registers it with
``@register_source("name")``, sets ``LAYOUT`` (a one-line description used in error messages), optionally
``OPTIONS`` (a :class:`StrictConfig`) and ``HUB_COLUMNS`` (a :class:`~hubdet.data.schema.ColumnMap`: where published
copies keep each field), and implements :meth:`HubdetBuilder.scan`, which returns the files of each split as
:class:`Item` records. Reading, decoding and example assembly (:func:`hubdet.data.example.make_example`) are shared.

Sources are discovered, not listed: every module directly in ``hubdet/data/`` whose name does not start with ``_``
and whose code calls ``register_source`` is imported on the first lookup (:data:`SOURCE_DISCOVERY`).
"""

from __future__ import annotations

import dataclasses
import hashlib
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
from hubdet._core.errors import ConfigError, DataLayoutError, UnknownNameError
from hubdet._core.registry import ModuleDiscovery, Registry
from hubdet.data.debias import ReencodeConfig, as_reencode_config
from hubdet.data.example import PreparationReport, attach_report, cache_key, decode, example_features, make_example
from hubdet.data.imageio import BadFileReport, ImageInfo, is_image_file
from hubdet.data.schema import FAKE, REAL, ColumnMap

logger = logging.getLogger(__name__)

#: Name of the JSON report written next to each prepared cache.
REPORT_FILENAME = "hubdet_report.json"

#: The source modules: found by their ``register_source`` calls, imported on the first lookup.
SOURCE_DISCOVERY = ModuleDiscovery("hubdet.data", markers=("register_source",))
SOURCES: Registry[type[HubdetBuilder]] = Registry("source", lister="hubdet.list_sources()",
                                                  discovery=SOURCE_DISCOVERY)

_SPLIT_ALIASES = {
    "train": "train", "training": "train",
    "val": "validation", "valid": "validation", "validation": "validation", "dev": "validation",
    "test": "test", "testing": "test",
}


def normalize_split(name: str) -> str | None:
    """Map split folder/column spellings (Train, val, Validation, testing ...) to train/validation/test."""
    return _SPLIT_ALIASES.get(str(name).strip().lower())


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
    #: Where published copies of this source (``load_source(name, repo_id=...)``) keep each field.
    HUB_COLUMNS: ClassVar[ColumnMap] = ColumnMap()
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
        return datasets.DatasetInfo(
            description=f"hubdet source {self.SOURCE_NAME!r}: {self.LAYOUT}",
            features=example_features(as_reencode_config(self.config.reencode)),
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
            example = self.example_for(item)
            if example is None:
                continue
            self.report.count(split, item.label)
            yield item.file, example

    # -- example construction -------------------------------------------------------------------

    def _read(self, path: Path, file: str) -> tuple[bytes, Image.Image, ImageInfo] | None:
        """Read a file once and decode it; report it and return None when unusable."""
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            self.report.bad_files.add(file, "file does not exist")
            return None
        except OSError as exc:
            self.report.bad_files.add(file, f"cannot read file ({exc.strerror or exc})")
            return None
        got = decode(data, file, self.report.bad_files)
        return None if got is None else (data, *got)

    def example_for(self, item: Item) -> dict[str, Any] | None:
        """The example of ``item`` (``None`` and a report entry when the image or its mask is unusable)."""
        got = self._read(item.path, item.file)
        if got is None:
            return None
        data, img, info = got
        mask = None
        if item.mask is not None:
            mask_file = rel(item.mask, Path(self.config.data_dir or "."))
            mask_got = self._read(item.mask, mask_file)
            if mask_got is None:
                self.report.bad_files.add(item.file, f"its mask {mask_file} is unusable (see above); example skipped")
                return None
            mask = mask_got[1]
            if not _same_aspect(mask.size, img.size):
                self.report.bad_files.add(item.file, f"its mask {mask_file} is {mask.width}x{mask.height}, the image "
                                          f"{img.width}x{img.height} (another aspect ratio: the mask does not "
                                          "belong to this image); example skipped")
                return None
        return make_example(data, img, info, label=item.label, generator=item.generator, source=self.SOURCE_NAME,
                            file=item.file, boxes=item.boxes, mask=mask, boxes_from_mask=item.boxes_from_mask,
                            reencode=self.reencode_config)


def _same_aspect(a: tuple[int, int], b: tuple[int, int], tolerance: float = 0.02) -> bool:
    """Whether two (width, height) sizes have the same aspect ratio within ``tolerance`` (a mask of the same aspect
    but another size is resized to the image, with a warning; another aspect means it is not this image's mask)."""
    return abs(a[0] * b[1] - a[1] * b[0]) <= tolerance * max(a[0] * b[1], a[1] * b[0])


# ----------------------------------------------------------------------------------------- registry


def register_source(name: str) -> Any:
    """Class decorator: register a :class:`HubdetBuilder` subclass as source ``name``."""

    def wrap(cls: type[HubdetBuilder]) -> type[HubdetBuilder]:
        cls.SOURCE_NAME = name
        SOURCES.register(name, cls)
        return cls

    return wrap


def list_sources() -> list[str]:
    """Names of every source :func:`~hubdet.data.load_source` can read."""
    return SOURCES.names()


def get_source(name: str) -> type[HubdetBuilder]:
    """The builder class of source ``name`` (unknown names raise with suggestions)."""
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
    fingerprint = _fingerprint_dir(root)
    return cls(
        cache_dir=str(cache_dir) if cache_dir is not None else None,
        dataset_name=name,
        hash=cache_key(cls, __name__, options=checked, reencode=cfg, data=f"{root}\0{fingerprint}"),
        data_dir=str(root),
        options=checked,
        reencode=cfg.to_dict() if cfg else None,
        fingerprint=fingerprint,
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
    """Prepare (or reuse from the cache) a local copy of source ``name``; see :func:`hubdet.data.load_source`.

    The dataset carries its :class:`PreparationReport` as ``ds.report`` (also written as ``hubdet_report.json``
    next to the cache and read back on a cached load).
    """
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
                       report.path or "dataset.report")
    return attach_report(ds, report)
