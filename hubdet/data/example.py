"""What every source shares once its files or rows are read: one example, one report, one cache key.

- :func:`make_example` assembles an example in the schema (mask, boxes, re-encoding, original encoding) for local
  builders and Hub copies alike; :func:`decode` turns bytes into a picture or a report entry.
- :class:`PreparationReport` is what a load produced and skipped; it is returned with the dataset (``ds.report``).
- :func:`cache_key` covers everything that shapes an example: the code of every module on the example path (found
  from the imports of the loader and of the source module), the source's options, the re-encoding and the data.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import hashlib
import io
import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import datasets
from PIL import Image

from hubdet._core.errors import BadImageError
from hubdet.data.debias import ReencodeConfig, reencode_to_bytes, rescale_boxes, resize_mask
from hubdet.data.imageio import BadFileReport, ImageInfo, open_image
from hubdet.data.policy import DATA_POLICY, InputPolicy
from hubdet.data.schema import LABEL_NAMES, features

logger = logging.getLogger(__name__)

#: Column added (only) when ``reencode=`` is used: how the stored image was re-encoded, e.g. ``JPEG q90``.
REENCODED_COLUMN = "reencoded"


def example_features(reencode: ReencodeConfig | None) -> datasets.Features:
    """The schema's features, plus the ``reencoded`` column when images are re-encoded."""
    feats = features()
    if reencode is not None:
        feats[REENCODED_COLUMN] = datasets.Value("string")
    return feats


# ----------------------------------------------------------------------------------------- example


def decode(data: bytes, name: str, bad: BadFileReport, policy: InputPolicy = DATA_POLICY
           ) -> tuple[Image.Image, ImageInfo] | None:
    """Decode ``data`` through the one image decoder and check it against ``policy`` (default: the builders'
    :data:`~hubdet.data.policy.DATA_POLICY`, which refuses degenerate images); report ``name`` with the reason and
    return None if unusable."""
    try:
        img, info = open_image(data)
    except BadImageError as exc:
        bad.add(name, exc.reason)
        return None
    refusal = policy.refusal(img.width, img.height)
    if refusal is not None:
        bad.add(name, refusal)
        return None
    return img, info


def clip_boxes(boxes: Sequence[Sequence[float]], size: tuple[int, int], file: str) -> list[list[float]]:
    """Clip ``[xmin, ymin, xmax, ymax]`` boxes to the image; drop empty ones (e.g. an untouched image's zero box)."""
    w, h = size
    out = []
    for b in boxes:
        x0, y0, x1, y1 = max(0.0, b[0]), max(0.0, b[1]), min(float(w), b[2]), min(float(h), b[3])
        if x1 > x0 and y1 > y0:
            out.append([float(x0), float(y0), float(x1), float(y1)])
        elif any(b):
            logger.warning("%s: box %s is empty inside a %sx%s image; dropped", file, list(b), w, h)
    return out


def png_bytes(img: Image.Image) -> bytes:
    """``img`` encoded as PNG (how masks are stored)."""
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    return buf.getvalue()


def make_example(
    data: bytes,
    img: Image.Image,
    info: ImageInfo,
    *,
    label: int,
    generator: str,
    source: str,
    file: str,
    boxes: Sequence[Sequence[float]] | None = None,
    mask: Image.Image | None = None,
    boxes_from_mask: bool = False,
    reencode: ReencodeConfig | None = None,
) -> dict[str, Any]:
    """One example in the hubdet schema, from an image decoded by :func:`decode` (``data`` are its file bytes).

    The mask (white = manipulated) is binarised and brought to the image size; with ``boxes_from_mask`` and no
    boxes, the mask's bounding box becomes the box; boxes are clipped to the image (empty ones dropped). With
    ``reencode`` the stored image is re-encoded and boxes and mask follow its new size; otherwise ``data`` is stored
    as it is. ``orig_*`` record the original encoding.
    """
    size = (img.width, img.height)
    if mask is not None:
        mask = mask.convert("L").point(lambda v: 255 if v > 127 else 0)
        if mask.size != size:
            logger.warning("%s: mask is %sx%s, image is %sx%s; resizing the mask", file, *mask.size, *size)
            mask = resize_mask(mask, size)
    box_list = [[float(v) for v in b] for b in (boxes or [])]
    if boxes_from_mask and not box_list and mask is not None and mask.getbbox():
        box_list = [[float(v) for v in mask.getbbox()]]
    box_list = clip_boxes(box_list, size, file)
    example: dict[str, Any] = {}
    if reencode is not None:
        data, new_size = reencode_to_bytes(img, reencode)
        box_list = rescale_boxes(box_list, size, new_size)
        mask = resize_mask(mask, new_size) if mask is not None else None
        example[REENCODED_COLUMN] = reencode.describe()
    example.update({
        "image": {"bytes": data, "path": None},
        "label": label,
        "boxes": box_list,
        "mask": {"bytes": png_bytes(mask), "path": None} if mask is not None else None,
        "generator": str(generator),
        "source": source,
        "orig_format": info.format or "",
        "orig_jpeg_quality": info.jpeg_quality if info.jpeg_quality is not None else -1,
        "orig_width": info.width,
        "orig_height": info.height,
        "file": file,
    })
    return example


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


def attach_report(ds: Any, report: PreparationReport) -> Any:
    """Set ``report`` as the ``report`` attribute of ``ds`` and, for a dict of splits, of each split."""
    targets = [ds, *ds.values()] if isinstance(ds, dict) else [ds]
    for target in targets:
        target.report = report
    return ds


# ----------------------------------------------------------------------------------------- cache key


_PACKAGE_ROOT = Path(__file__).resolve().parents[1]  # the folder of the ``hubdet`` package


def _module_file(name: str) -> Path | None:
    """The source file of hubdet module ``name`` (found on disk, nothing imported); None if it is not a module."""
    parts = name.split(".")
    if parts[0] != "hubdet":
        return None
    base = _PACKAGE_ROOT.joinpath(*parts[1:])
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


@functools.cache
def example_modules(*roots: str) -> tuple[str, ...]:
    """The modules on the example path of ``roots``: the roots and every hubdet module they import, transitively.

    Imports are read from the source (function-level imports included), so a module added to the path is covered
    without a list to edit; nothing is imported. ``from package import name`` counts ``package.name`` when it is a
    module.
    """
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        name = todo.pop()
        path = _module_file(name)
        if name in seen or path is None:
            continue
        seen.add(name)
        for node in ast.walk(ast.parse(path.read_bytes(), filename=str(path))):
            if isinstance(node, ast.Import):
                todo += [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                todo += [node.module, *(f"{node.module}.{alias.name}" for alias in node.names)]
    return tuple(sorted(seen))


def _read_code(path: Path) -> bytes:
    return path.read_bytes()


def code_digest(modules: Sequence[str]) -> str:
    """SHA-256 over the source files of ``modules`` (read now, so an edited file changes the digest)."""
    h = hashlib.sha256()
    for name in sorted(modules):
        path = _module_file(name)
        if path is not None:
            h.update(name.encode() + b"\0" + _read_code(path) + b"\0")
    return h.hexdigest()


def cache_key(
    source: type,
    loader: str,
    *,
    options: Mapping[str, Any],
    reencode: ReencodeConfig | None,
    data: str,
) -> str:
    """The key of a prepared copy: it changes whenever anything that shapes an example changes.

    ``source`` is the builder class (its module is on the path: layout, column map), ``loader`` the module that
    turns files or rows into examples (``hubdet.data._builder`` or ``hubdet.data.hub_sources``); ``data``
    identifies the input (a folder's listing fingerprint and path, a Hub copy's datasets fingerprint and split).
    """
    modules = example_modules(source.__module__, loader)
    payload = {
        "source": getattr(source, "SOURCE_NAME", source.__name__),
        "code": code_digest(modules),
        "options": dict(options),
        "reencode": reencode.to_dict() if reencode is not None else None,
        "data": data,
    }
    return hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]
