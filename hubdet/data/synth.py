"""Inpainting benchmark maker: turn a folder of photos into real/inpainted pairs with boxes and masks.

As seed 001 built its data: a ``fraction`` of the photos get a random rectangle (uniform position and size
within ``min_frac``..``max_frac`` of each side), a free-form brush mask or an object-shaped mask (a smooth random
blob or polygon, the outline of a removed object), one or more regions per photo, filled by an inpainting backend
(:mod:`hubdet.data.inpainters`); the others stay untouched. Both classes then go through the same final
resize and the same encoding (PNG, or JPEG at one quality), so size and codec give nothing away.

Output (read by the ``folder`` builder)::

    OUT/Real/<name>.png            untouched photos
    OUT/Fake/<name>_inpainted.png  inpainted photos
    OUT/masks/<name>_inpainted_mask.png   white = inpainted pixels, in output pixels
    OUT/boxes.csv                  file,label,generator,xmin,ymin,xmax,ymax,mask,original,width,height
                                   (one row per inpainted region: several rows for one file give several boxes)
    OUT/synth.json                 the settings, counts and skipped files (for the dataset card)

Boxes are ``[xmin, ymin, xmax, ymax]`` in output pixels with exclusive max (as ``inpaint_pairs/boxes.csv``):
the bounding box of each region's mask. Every file is a pure function of the seed and the input bytes, whatever
the number of workers.

Pipeline per photo: decode (:func:`hubdet.data.imageio.open_image`) -> optional random crops
(``crops_per_image`` x ``crop_size``) -> centre crop to the output aspect (``resize="cover"``) -> mask and
inpaint at that resolution -> final resize of image and mask (same interpolation, so the mask covers every
output pixel that a filled pixel touches) -> encode.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from hubdet._core.config import StrictConfig
from hubdet._core.errors import BadImageError, ConfigError, HubdetError
from hubdet.data.imageio import BadFileReport, is_image_file, open_image

logger = logging.getLogger(__name__)

__all__ = [
    "BOXES_COLUMNS",
    "OutputExistsError",
    "SynthConfig",
    "SynthReport",
    "make_inpainting_benchmark",
    "mask_box",
    "random_mask",
    "random_regions",
]

#: Mask shapes of :func:`random_mask`; ``mixed`` draws rect or brush, ``varied`` rect, brush or object.
MASK_KINDS = ("rect", "brush", "object", "mixed", "varied")

BOXES_COLUMNS = ["file", "label", "generator", "xmin", "ymin", "xmax", "ymax", "mask", "original", "width", "height"]
MIN_SIDE = 8  # photos (or crops) smaller than this on a side are skipped: too small to mask and inpaint


class OutputExistsError(HubdetError, FileExistsError):
    """The output folder already holds files (pass ``overwrite=True`` to replace a previous synth output)."""


def _size_pair(value: Any, what: str) -> tuple[int, int] | None:
    """``None``, ``256``, ``"256"``, ``"320x240"`` or ``(320, 240)`` -> ``(width, height)``."""
    if value is None:
        return None
    if isinstance(value, str):
        parts = value.lower().replace("*", "x").split("x")
        try:
            nums = [int(p) for p in parts]
        except ValueError:
            raise ConfigError(f"{what}: expected N or WxH, got {value!r}") from None
    elif isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        nums = [int(value)]
    elif isinstance(value, (list, tuple)):
        nums = [int(v) for v in value]
    else:
        raise ConfigError(f"{what}: expected N, WxH or (width, height), got {value!r}")
    if len(nums) == 1:
        nums = nums * 2
    if len(nums) != 2 or min(nums) < MIN_SIDE:
        raise ConfigError(f"{what}: expected two sizes of at least {MIN_SIDE} px, got {value!r}")
    return nums[0], nums[1]


@dataclass
class SynthConfig(StrictConfig):
    """Settings of :func:`make_inpainting_benchmark` (saved to ``synth.json`` beside the data).

    - ``backend``/``backend_options``: the inpainter and its keyword options;
    - ``fraction``: share of the images that are inpainted;
    - ``mask_kind``: ``rect`` (seed 001), ``brush`` (free-form strokes inside such a rectangle), ``object`` (a
      smooth blob or polygon inside it: the outline of a removed object), ``mixed`` (rect or brush) or ``varied``
      (rect, brush or object);
    - ``regions``: ``(lo, hi)``: each inpainted photo gets between ``lo`` and ``hi`` regions (one box row each);
    - ``min_frac``/``max_frac``: bounds of the rectangle's width and height as fractions of the image's;
    - ``size``: output ``(width, height)`` (``None`` keeps the working size); ``resize``: ``cover`` (centre
      crop to the output aspect, then scale), ``stretch`` (scale to ``size``), ``longest`` (scale so the
      longer side is ``size[0]``, aspect kept);
    - ``format``/``quality``: ``png`` or ``jpeg`` at ``quality`` for BOTH classes;
    - ``crops_per_image``/``crop_size``: random crops of ``crop_size`` (default ``size``) per photo.
    """

    backend: str = "telea"
    backend_options: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    fraction: float = 0.5
    mask_kind: Literal["rect", "brush", "object", "mixed", "varied"] = "rect"
    regions: tuple[int, int] = (1, 1)
    min_frac: float = 0.1
    max_frac: float = 0.5
    size: tuple[int, int] | None = None
    resize: Literal["cover", "stretch", "longest"] = "cover"
    format: Literal["png", "jpeg"] = "png"
    quality: int = 90
    crops_per_image: int = 1
    crop_size: tuple[int, int] | None = None

    def validate(self) -> None:
        self.size = _size_pair(self.size, "size")
        self.crop_size = _size_pair(self.crop_size, "crop_size")
        if not 0.0 <= self.fraction <= 1.0:
            raise ConfigError(f"fraction must be in [0, 1], got {self.fraction}")
        if not 0.0 < self.min_frac <= self.max_frac < 1.0:
            raise ConfigError(
                f"need 0 < min_frac <= max_frac < 1, got min_frac={self.min_frac}, max_frac={self.max_frac}"
            )
        if self.mask_kind not in MASK_KINDS:
            raise ConfigError(f"mask_kind must be one of {', '.join(MASK_KINDS)}, got {self.mask_kind!r}")
        if isinstance(self.regions, int) and not isinstance(self.regions, bool):
            self.regions = (self.regions, self.regions)
        if len(tuple(self.regions)) != 2 or not 1 <= int(self.regions[0]) <= int(self.regions[1]) <= 8:
            raise ConfigError(f"regions must be (lo, hi) with 1 <= lo <= hi <= 8, got {self.regions!r}")
        self.regions = (int(self.regions[0]), int(self.regions[1]))
        if self.resize not in ("cover", "stretch", "longest"):
            raise ConfigError(f"resize must be cover, stretch or longest, got {self.resize!r}")
        if self.format not in ("png", "jpeg"):
            raise ConfigError(f"format must be png or jpeg, got {self.format!r}")
        if not 1 <= self.quality <= 100:
            raise ConfigError(f"quality must be in [1, 100], got {self.quality}")
        if self.crops_per_image < 1:
            raise ConfigError(f"crops_per_image must be at least 1, got {self.crops_per_image}")
        if self.crops_per_image > 1 and self.crop_size is None:
            if self.size is None:
                raise ConfigError("crops_per_image > 1 needs crop_size (or size, used as the crop size)")
            self.crop_size = self.size
        if self.resize == "longest" and self.size is not None and self.size[0] != self.size[1]:
            raise ConfigError(f"resize='longest' takes one size (the longer side), got {self.size}")
        if self.seed < 0:
            raise ConfigError(f"seed must be non-negative, got {self.seed}")


@dataclass
class SynthReport:
    """What :func:`make_inpainting_benchmark` made: counts, skipped files with reasons, timing."""

    output_dir: str
    backend: str
    generator: str
    n_photos: int = 0
    n_real: int = 0
    n_fake: int = 0
    bad_files: BadFileReport = field(default_factory=BadFileReport)
    seconds: float = 0.0
    inpaint_seconds: float = 0.0
    workers: int = 1

    @property
    def n_images(self) -> int:
        return self.n_real + self.n_fake

    @property
    def images_per_second(self) -> float:
        return self.n_images / self.seconds if self.seconds > 0 else float("nan")

    def to_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in dataclasses.asdict(self).items() if k != "bad_files"}
        out["bad_files"] = self.bad_files.to_dict()
        out["n_images"] = self.n_images
        out["images_per_second"] = self.images_per_second
        return out

    def summary(self) -> str:
        return (
            f"{self.output_dir}: {self.n_real} real + {self.n_fake} inpainted ({self.generator}) images from "
            f"{self.n_photos} photo(s) in {self.seconds:.1f} s ({self.images_per_second:.2f} images/s, "
            f"{self.inpaint_seconds:.1f} s inpainting, {self.workers} worker(s)); {self.bad_files.summary()}"
        )


# ----------------------------------------------------------------------------------------------- masks


def _random_rect(rng: np.random.Generator, width: int, height: int, min_frac: float, max_frac: float) -> tuple:
    """Uniform size in [min_frac, max_frac] of each side, then uniform position; returns (x0, y0, x1, y1)."""
    w = int(rng.integers(max(1, round(min_frac * width)), max(1, round(max_frac * width)) + 1))
    h = int(rng.integers(max(1, round(min_frac * height)), max(1, round(max_frac * height)) + 1))
    w, h = min(w, width - 1), min(h, height - 1)
    x0 = int(rng.integers(0, width - w + 1))
    y0 = int(rng.integers(0, height - h + 1))
    return x0, y0, x0 + w, y0 + h


def _brush_strokes(rng: np.random.Generator, rect: tuple, width: int, height: int) -> np.ndarray:
    """Free-form strokes (DeepFillv2-style random walks of thick lines) kept inside ``rect``."""
    import cv2

    x0, y0, x1, y1 = rect
    rw, rh = x1 - x0, y1 - y0
    canvas = np.zeros((rh, rw), np.uint8)
    short = min(rw, rh)
    for _ in range(int(rng.integers(1, 4))):
        brush = max(2, int(round(rng.uniform(0.1, 0.25) * short)))
        x, y = float(rng.uniform(0, rw)), float(rng.uniform(0, rh))
        angle = float(rng.uniform(0, 2 * np.pi))
        for _ in range(int(rng.integers(3, 9))):
            angle += float(rng.uniform(-np.pi / 2, np.pi / 2))
            length = float(rng.uniform(0.2, 0.6)) * max(rw, rh)
            nx = float(np.clip(x + length * np.cos(angle), 0, rw - 1))
            ny = float(np.clip(y + length * np.sin(angle), 0, rh - 1))
            cv2.line(canvas, (int(x), int(y)), (int(nx), int(ny)), 255, brush)
            cv2.circle(canvas, (int(nx), int(ny)), brush // 2, 255, -1)
            x, y = nx, ny
    mask = np.zeros((height, width), bool)
    mask[y0:y1, x0:x1] = canvas > 0
    return mask


def _object_shape(rng: np.random.Generator, rect: tuple, width: int, height: int) -> np.ndarray:
    """An object-like outline filling much of ``rect``: a smooth star-shaped blob (a few random Fourier terms on the
    radius of an ellipse) or a random polygon, optionally with a second lobe (a head, a handle)."""
    import cv2

    x0, y0, x1, y1 = rect
    rw, rh = x1 - x0, y1 - y0
    canvas = np.zeros((rh, rw), np.uint8)
    cx, cy = rw / 2, rh / 2
    angles = np.linspace(0, 2 * np.pi, 96, endpoint=False)
    if rng.random() < 0.6:  # smooth blob
        radius = np.ones_like(angles)
        for k in range(2, 6):
            radius += float(rng.uniform(0, 0.35 / k * 2)) * np.cos(k * angles + float(rng.uniform(0, 2 * np.pi)))
        radius = np.clip(radius / radius.max(), 0.35, 1.0)
    else:  # polygon with 5-12 corners at random radii
        n = int(rng.integers(5, 13))
        angles = np.sort(rng.uniform(0, 2 * np.pi, n))
        radius = rng.uniform(0.55, 1.0, n)
    pts = np.stack([cx + radius * (rw / 2 - 1) * np.cos(angles), cy + radius * (rh / 2 - 1) * np.sin(angles)], 1)
    cv2.fillPoly(canvas, [np.round(pts).astype(np.int32)], 255)
    if rng.random() < 0.35:  # a second, smaller lobe overlapping the first
        r2 = (max(2, int(rw * rng.uniform(0.15, 0.3))), max(2, int(rh * rng.uniform(0.15, 0.3))))
        c2 = (int(rng.uniform(r2[0], rw - r2[0])), int(rng.uniform(r2[1], max(r2[1] + 1, rh * 0.4))))
        cv2.ellipse(canvas, c2, r2, float(rng.uniform(0, 180)), 0, 360, 255, -1)
    mask = np.zeros((height, width), bool)
    mask[y0:y1, x0:x1] = canvas > 0
    return mask


def random_mask(
    rng: np.random.Generator,
    width: int,
    height: int,
    *,
    kind: str = "rect",
    min_frac: float = 0.1,
    max_frac: float = 0.5,
) -> np.ndarray:
    """A boolean HxW mask (True = to fill): a rectangle, free-form brush strokes, an object-shaped blob or polygon,
    or a random one of rect/brush (``mixed``) or of rect/brush/object (``varied``)."""
    if kind == "mixed":
        kind = "rect" if rng.random() < 0.5 else "brush"
    elif kind == "varied":
        kind = ("rect", "brush", "object")[int(rng.integers(0, 3))]
    rect = _random_rect(rng, width, height, min_frac, max_frac)
    if kind == "rect":
        mask = np.zeros((height, width), bool)
        mask[rect[1] : rect[3], rect[0] : rect[2]] = True
        return mask
    if kind in ("brush", "object"):
        mask = _brush_strokes(rng, rect, width, height) if kind == "brush" else _object_shape(rng, rect, width, height)
        if not mask.any():  # cannot happen with brush >= 2 px, but never return an empty "fake"
            mask[rect[1] : rect[3], rect[0] : rect[2]] = True
        return mask
    raise ConfigError(f"mask kind must be one of {', '.join(MASK_KINDS)}, got {kind!r}")


def random_regions(
    rng: np.random.Generator,
    width: int,
    height: int,
    *,
    kind: str = "rect",
    min_frac: float = 0.1,
    max_frac: float = 0.5,
    count: int = 1,
) -> list[np.ndarray]:
    """``count`` region masks (:func:`random_mask` each); a region that would touch an earlier one is redrawn a
    few times (then kept), so that regions stay separate boxes. Their union is what gets inpainted."""
    import cv2

    regions: list[np.ndarray] = []
    taken = np.zeros((height, width), bool)
    for _ in range(count):
        for _attempt in range(8):
            mask = random_mask(rng, width, height, kind=kind, min_frac=min_frac, max_frac=max_frac)
            grown = cv2.dilate(mask.astype(np.uint8), np.ones((9, 9), np.uint8)) > 0
            if not (grown & taken).any():
                break
        if (taken | mask).all():
            break
        regions.append(mask)
        taken |= mask
    return regions


def mask_box(mask: np.ndarray) -> tuple[int, int, int, int] | None:
    """``(xmin, ymin, xmax, ymax)`` of the True pixels, max exclusive; None if the mask is empty."""
    ys = np.flatnonzero(mask.any(axis=1))
    xs = np.flatnonzero(mask.any(axis=0))
    if not len(xs):
        return None
    return int(xs[0]), int(ys[0]), int(xs[-1]) + 1, int(ys[-1]) + 1


# -------------------------------------------------------------------------------------------- geometry


def _random_crop(rng: np.random.Generator, img: np.ndarray, crop: tuple[int, int]) -> tuple[np.ndarray, tuple]:
    """A uniform random ``crop`` (w, h); photos smaller than it are first scaled up to cover it."""
    import cv2

    cw, ch = crop
    h, w = img.shape[:2]
    if w < cw or h < ch:
        s = max(cw / w, ch / h)
        img = cv2.resize(img, (max(cw, round(w * s)), max(ch, round(h * s))), interpolation=cv2.INTER_LINEAR)
        h, w = img.shape[:2]
    x0 = int(rng.integers(0, w - cw + 1))
    y0 = int(rng.integers(0, h - ch + 1))
    return np.ascontiguousarray(img[y0 : y0 + ch, x0 : x0 + cw]), (x0, y0, cw, ch)


def _centre_crop_to_aspect(img: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    h, w = img.shape[:2]
    tw, th = size
    if w * th > h * tw:  # too wide
        nw = max(1, round(h * tw / th))
        x0 = (w - nw) // 2
        return np.ascontiguousarray(img[:, x0 : x0 + nw])
    nh = max(1, round(w * th / tw))
    y0 = (h - nh) // 2
    return np.ascontiguousarray(img[y0 : y0 + nh])


def _output_size(w: int, h: int, cfg: SynthConfig) -> tuple[int, int]:
    if cfg.size is None:
        return w, h
    if cfg.resize == "longest":
        s = cfg.size[0] / max(w, h)
        return max(1, round(w * s)), max(1, round(h * s))
    return cfg.size


def _resize(arr: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Area interpolation when shrinking, bilinear when enlarging (non-negative weights in both cases)."""
    import cv2

    h, w = arr.shape[:2]
    if (w, h) == tuple(size):
        return arr
    shrink = size[0] <= w and size[1] <= h
    return cv2.resize(arr, size, interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR)


def _encode(arr: np.ndarray, cfg: SynthConfig) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    img = Image.fromarray(arr)
    if cfg.format == "jpeg":
        img.save(buf, format="JPEG", quality=cfg.quality, optimize=False)
    else:
        img.save(buf, format="PNG", compress_level=1)  # lossless either way; level 6 is ~6x slower for ~10% less
    return buf.getvalue()


def _encode_mask(mask: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(mask.astype(np.uint8) * 255, mode="L").save(buf, format="PNG", compress_level=6)
    return buf.getvalue()


# --------------------------------------------------------------------------------------------- workers


@dataclass
class _Task:
    index: int
    path: str  # absolute
    rel: str  # relative to input_dir, posix
    stem: str  # output name stem (unique)
    fakes: list[bool]  # one per crop


_STATE: dict[str, Any] = {}


def _make_inpainter(cfg: SynthConfig, factory: Any) -> Any:
    """The backend of ``cfg``; factories that take a ``seed`` get the benchmark's seed unless given one."""
    from hubdet.data.inpainters import accepts_seed, build_inpainter

    options = dict(cfg.backend_options)
    if accepts_seed(factory):
        options.setdefault("seed", cfg.seed)
    return build_inpainter(factory, cfg.backend, **options)


def _init_worker(cfg_dict: dict[str, Any], output_dir: str, factory: Any) -> None:
    cfg = SynthConfig.from_dict(cfg_dict)
    _STATE.update(cfg=cfg, out=Path(output_dir), inpainter=_make_inpainter(cfg, factory))


def _process(task: _Task) -> dict[str, Any]:
    """Make the images of one photo; returns rows for boxes.csv, or the reason it was skipped."""
    cfg: SynthConfig = _STATE["cfg"]
    out: Path = _STATE["out"]
    inpainter = _STATE["inpainter"]
    ext = ".jpg" if cfg.format == "jpeg" else ".png"
    try:
        pil, _info = open_image(task.path)
    except BadImageError as exc:
        return {"index": task.index, "bad": (task.path, exc.reason)}
    photo = np.asarray(pil, dtype=np.uint8)
    rows: list[dict[str, Any]] = []
    files: list[tuple[str, bytes]] = []  # written only once every crop of the photo succeeded
    inpaint_s = 0.0
    seeds = np.random.SeedSequence([cfg.seed, task.index]).spawn(len(task.fakes))
    for j, (is_fake, ss) in enumerate(zip(task.fakes, seeds, strict=True)):
        rng = np.random.default_rng(ss)
        original = task.rel
        work = photo
        if cfg.crop_size is not None:
            work, (cx, cy, cw, ch) = _random_crop(rng, photo, cfg.crop_size)
            original = f"{task.rel}#crop={cx},{cy},{cw},{ch}"
        if cfg.size is not None and cfg.resize == "cover":
            work = _centre_crop_to_aspect(work, cfg.size)
        h, w = work.shape[:2]
        if min(h, w) < MIN_SIDE:
            reason = f"image is {w}x{h}, too small to inpaint (min {MIN_SIDE} px)"
            return {"index": task.index, "bad": (task.path, reason)}
        size = _output_size(w, h, cfg)
        name = task.stem + (f"_c{j}" if len(task.fakes) > 1 else "")
        row: dict[str, Any] = dict.fromkeys(BOXES_COLUMNS, "")
        row.update(original=original, width=size[0], height=size[1])
        if is_fake:
            count = int(rng.integers(cfg.regions[0], cfg.regions[1] + 1)) if cfg.regions != (1, 1) else 1
            if count == 1:  # (the draws of a one-region benchmark are those it always had)
                parts = [random_mask(rng, w, h, kind=cfg.mask_kind, min_frac=cfg.min_frac, max_frac=cfg.max_frac)]
            else:
                parts = random_regions(rng, w, h, kind=cfg.mask_kind, min_frac=cfg.min_frac, max_frac=cfg.max_frac,
                                       count=count)
            mask = np.logical_or.reduce(parts)
            t0 = time.perf_counter()
            try:
                work = inpainter.inpaint(work, mask)
            except Exception as exc:  # a backend failing on one photo must not stop the run; it is reported
                return {"index": task.index, "bad": (task.path, f"inpainting failed ({type(exc).__name__}: {exc})")}
            inpaint_s += time.perf_counter() - t0
            image = _resize(work, size)
            out_mask = _resize(mask.astype(np.float32), size) > 1e-6
            rel_file, rel_mask = f"Fake/{name}_inpainted{ext}", f"masks/{name}_inpainted_mask.png"
            files.append((rel_mask, _encode_mask(out_mask)))
            row.update(file=rel_file, label="fake", generator=inpainter.generator, mask=rel_mask)
            region_boxes = [b for b in (mask_box(_resize(p.astype(np.float32), size) > 1e-6) for p in parts) if b]
            x0, y0, x1, y1 = region_boxes[0]
            row.update(xmin=x0, ymin=y0, xmax=x1, ymax=y1)
            # one more row per further region: the folder source reads several rows of a file as several boxes
            more = [{**row, "xmin": b[0], "ymin": b[1], "xmax": b[2], "ymax": b[3]} for b in region_boxes[1:]]
        else:
            image = _resize(work, size)
            rel_file = f"Real/{name}{ext}"
            row.update(file=rel_file, label="real", generator="natural")
        files.append((rel_file, _encode(np.ascontiguousarray(image), cfg)))
        rows.append(row)
        if is_fake:
            rows.extend(more)
    for rel, data in files:
        (out / rel).write_bytes(data)
    return {"index": task.index, "rows": rows, "inpaint_seconds": inpaint_s}


# ---------------------------------------------------------------------------------------------- driver


def _list_photos(input_dir: Path) -> list[Path]:
    files = [p for p in input_dir.rglob("*") if p.is_file() and is_image_file(p)]
    return sorted(files, key=lambda p: p.relative_to(input_dir).as_posix())


def _unique_stems(rels: Sequence[str]) -> list[str]:
    stems, seen = [], set()
    for i, rel in enumerate(rels):
        stem = os.path.splitext(rel)[0].replace("/", "__")
        stem = "".join(c if c.isalnum() or c in "-_." else "_" for c in stem)
        if stem in seen:
            stem = f"{stem}_{i}"
        seen.add(stem)
        stems.append(stem)
    return stems


def _prepare_output(output_dir: Path, overwrite: bool) -> None:
    import shutil

    ours = ["Real", "Fake", "masks", "boxes.csv", "synth.json"]
    if output_dir.exists():
        if not output_dir.is_dir():
            raise OutputExistsError(f"{output_dir}: exists and is not a folder")
        existing = sorted(p.name for p in output_dir.iterdir())
        if existing and not overwrite:
            raise OutputExistsError(
                f"{output_dir}: folder is not empty ({', '.join(existing[:5])}); pass overwrite=True to replace it"
            )
        foreign = [n for n in existing if n not in ours]
        if foreign:
            raise OutputExistsError(
                f"{output_dir}: holds files that synth did not write ({', '.join(foreign[:5])}); refusing to overwrite"
            )
        for name in existing:
            path = output_dir / name
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    for sub in ("Real", "Fake", "masks"):
        (output_dir / sub).mkdir(parents=True, exist_ok=True)


def make_inpainting_benchmark(
    input_dir: str | os.PathLike,
    output_dir: str | os.PathLike,
    *,
    backend: str = "telea",
    seed: int = 0,
    fraction: float = 0.5,
    mask_kind: str = "rect",
    min_frac: float = 0.1,
    max_frac: float = 0.5,
    regions: int | tuple[int, int] = 1,
    size: int | str | tuple[int, int] | None = None,
    resize: str = "cover",
    format: str = "png",
    quality: int = 90,
    crops_per_image: int = 1,
    crop_size: int | str | tuple[int, int] | None = None,
    backend_options: dict[str, Any] | None = None,
    workers: int = 1,
    overwrite: bool = False,
    progress: bool = True,
) -> SynthReport:
    """Make an inpainting benchmark from the photos under ``input_dir`` (recursively) in ``output_dir``.

    See :class:`SynthConfig` for the settings and the module docstring for the layout. Unreadable, empty,
    truncated, oversized or tiny photos are skipped and listed in the report (never a crash). ``workers`` > 1
    uses that many processes; the output does not depend on it.
    """
    from hubdet.data.inpainters import get_inpainter_factory

    cfg = SynthConfig.from_dict(
        dict(backend=backend, backend_options=dict(backend_options or {}), seed=seed, fraction=fraction,
             mask_kind=mask_kind, min_frac=min_frac, max_frac=max_frac, size=_size_pair(size, "size"),
             regions=(regions, regions) if isinstance(regions, int) else tuple(regions),
             resize=resize, format=format, quality=quality, crops_per_image=crops_per_image,
             crop_size=_size_pair(crop_size, "crop_size"))
    )
    if workers < 1:
        raise ConfigError(f"workers must be at least 1, got {workers}")
    input_dir, output_dir = Path(input_dir), Path(output_dir)
    if not input_dir.is_dir():
        raise FileNotFoundError(f"{input_dir}: input folder of photos does not exist")
    if output_dir.resolve() == input_dir.resolve() or input_dir.resolve() in output_dir.resolve().parents:
        raise ConfigError(f"{output_dir}: the output folder must not be inside the input folder {input_dir}")
    # Fail early (before touching the output) on an unknown or unavailable backend.
    factory = get_inpainter_factory(cfg.backend)
    generator = _make_inpainter(cfg, factory).generator

    photos = _list_photos(input_dir)
    if not photos:
        raise FileNotFoundError(f"{input_dir}: no image files found (extensions .jpg, .png, .webp, ...)")
    _prepare_output(output_dir, overwrite)
    rels = [p.relative_to(input_dir).as_posix() for p in photos]
    stems = _unique_stems(rels)
    # Which (photo, crop) items are inpainted: an exact share, drawn from the seed alone.
    n_items = len(photos) * cfg.crops_per_image
    n_fake = int(round(cfg.fraction * n_items))
    is_fake = np.zeros(n_items, bool)
    is_fake[np.random.default_rng(np.random.SeedSequence([cfg.seed, 2**31 - 1])).permutation(n_items)[:n_fake]] = True
    k = cfg.crops_per_image
    tasks = [
        _Task(i, str(p), rel, stem, [bool(f) for f in is_fake[i * k : (i + 1) * k]])
        for i, (p, rel, stem) in enumerate(zip(photos, rels, stems, strict=True))
    ]

    report = SynthReport(str(output_dir), cfg.backend, generator, n_photos=len(photos), workers=workers)
    results: list[dict[str, Any]] = []
    from tqdm.auto import tqdm

    start = time.perf_counter()
    bar = tqdm(total=len(tasks), desc=f"synth ({cfg.backend})", unit="photo", disable=not progress)
    try:
        if workers == 1:
            _init_worker(cfg.to_dict(), str(output_dir), factory)
            for task in tasks:
                results.append(_process(task))
                bar.update()
        else:
            import multiprocessing as mp

            with mp.get_context().Pool(workers, _init_worker, (cfg.to_dict(), str(output_dir), factory)) as pool:
                for res in pool.imap_unordered(_process, tasks, chunksize=1):
                    results.append(res)
                    bar.update()
    finally:
        bar.close()
        _STATE.clear()
    report.seconds = time.perf_counter() - start

    rows: list[dict[str, Any]] = []
    for res in sorted(results, key=lambda r: r["index"]):
        if "bad" in res:
            report.bad_files.add(*res["bad"])
            continue
        rows.extend(res["rows"])
        report.inpaint_seconds += res["inpaint_seconds"]
    report.n_real = sum(r["label"] == "real" for r in rows)
    report.n_fake = len({r["file"] for r in rows if r["label"] == "fake"})
    with open(output_dir / "boxes.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=BOXES_COLUMNS, lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    manifest = {
        "tool": "hubdet synth",
        "config": cfg.to_dict(),
        "generator": generator,
        "input_dir": input_dir.name,
        "counts": {"photos": len(photos), "real": report.n_real, "fake": report.n_fake},
        "bad_files": [{"path": os.path.relpath(p, input_dir), "reason": r} for p, r in report.bad_files.skipped],
    }
    (output_dir / "synth.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    logger.info(report.summary())
    return report
