"""Training augmentations on PIL images, box-aware: geometry (seed 000), blur and colour jitter (seed 002), JPEG.

Seed 000 trained with Keras' ``ImageDataGenerator(rotation_range=20, horizontal_flip=True, width_shift_range=0.1,
height_shift_range=0.1, zoom_range=0.2, shear_range=0.2)``; seed 002 with random colour jitter (p=0.5) and Gaussian
blur (p=0.5). :class:`AugmentConfig` holds the same knobs with the same meaning (Keras' shear is in degrees, its zoom
draws x and y scales independently in ``[1 - zoom, 1 + zoom]``, its default fill repeats the edge pixels).

Every random draw comes from the ``numpy.random.Generator`` passed in, so a trainer that seeds one generator per
(seed, epoch, sample) gets the same augmentation whatever the worker, process count or resume point.

Boxes (``[xmin, ymin, xmax, ymax]`` in pixels) follow the geometry: each becomes the bounding box of its
transformed corners, clipped to the image; a box pushed out of the image is dropped. With
``box_geometry="skip"`` images that carry boxes get no geometric transform at all (photometric ones only).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Literal

import cv2
import numpy as np
from PIL import Image, ImageFilter

from hubdet._core.config import StrictConfig
from hubdet._core.errors import ConfigError
from hubdet.data.debias import ReencodeConfig, reencode

Boxes = list[list[float]]

_BORDER = {"nearest": cv2.BORDER_REPLICATE, "reflect": cv2.BORDER_REFLECT_101, "constant": cv2.BORDER_CONSTANT}


@dataclasses.dataclass
class AugmentConfig(StrictConfig):
    """Which augmentations to apply in training (all off by default). See the module docstring for semantics.

    Geometry: ``rotation`` (max degrees), ``hflip``/``vflip`` (p=0.5 each), ``shift`` (max fraction of
    width/height), ``zoom`` (scale in ``[1 - zoom, 1 + zoom]`` per axis), ``shear`` (max degrees), ``fill``.
    Photometric: ``jitter_p`` with ``brightness``/``contrast``/``saturation`` (factor in ``[1-v, 1+v]``) and ``hue``
    (shift in ``[-v, v]``, at most 0.5); ``blur_p`` with ``blur_sigma`` (range); ``jpeg_p`` with ``jpeg_quality``
    (inclusive range) re-compresses the pixels.
    """

    rotation: float = 0.0
    hflip: bool = False
    vflip: bool = False
    shift: float = 0.0
    zoom: float = 0.0
    shear: float = 0.0
    fill: Literal["nearest", "reflect", "constant"] = "nearest"
    jitter_p: float = 0.0
    brightness: float = 0.4
    contrast: float = 0.4
    saturation: float = 0.4
    hue: float = 0.1
    blur_p: float = 0.0
    blur_sigma: tuple[float, float] = (0.1, 2.0)
    jpeg_p: float = 0.0
    jpeg_quality: tuple[int, int] = (60, 95)
    box_geometry: Literal["transform", "skip"] = "transform"

    def validate(self) -> None:
        for name in ("rotation", "shift", "zoom", "shear", "brightness", "contrast", "saturation", "hue"):
            if getattr(self, name) < 0:
                raise ConfigError(f"AugmentConfig.{name} must be >= 0, got {getattr(self, name)}")
        if self.zoom >= 1:
            raise ConfigError(f"AugmentConfig.zoom must be < 1, got {self.zoom}")
        if self.hue > 0.5:
            raise ConfigError(f"AugmentConfig.hue must be <= 0.5, got {self.hue}")
        for name in ("jitter_p", "blur_p", "jpeg_p"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"AugmentConfig.{name} must be in [0, 1], got {getattr(self, name)}")
        lo, hi = self.blur_sigma
        if not 0 < lo <= hi:
            raise ConfigError(f"AugmentConfig.blur_sigma must be 0 < low <= high, got {self.blur_sigma}")
        qlo, qhi = self.jpeg_quality
        if not 1 <= qlo <= qhi <= 100:
            raise ConfigError(f"AugmentConfig.jpeg_quality must be 1 <= low <= high <= 100, got {self.jpeg_quality}")
        if self.fill not in _BORDER:
            raise ConfigError(f"AugmentConfig.fill: {self.fill!r} is not one of {sorted(_BORDER)}")
        if self.box_geometry not in ("transform", "skip"):
            raise ConfigError(f"AugmentConfig.box_geometry: {self.box_geometry!r} is not 'transform' or 'skip'")

    @property
    def has_geometry(self) -> bool:
        return bool(self.rotation or self.hflip or self.vflip or self.shift or self.zoom or self.shear)

    @property
    def is_identity(self) -> bool:
        return not (self.has_geometry or self.jitter_p or self.blur_p or self.jpeg_p)


def affine_matrix(
    width: int, height: int, *, angle: float = 0.0, tx: float = 0.0, ty: float = 0.0, zx: float = 1.0,
    zy: float = 1.0, shear: float = 0.0, hflip: bool = False, vflip: bool = False,
) -> np.ndarray:
    """The 2x3 matrix mapping source pixel coordinates to output ones (about the image centre).

    ``angle`` and ``shear`` in degrees (counter-clockwise), ``tx``/``ty`` in pixels, ``zx``/``zy`` scale factors.
    """
    cx, cy = width / 2.0, height / 2.0
    to_origin = np.array([[1, 0, -cx], [0, 1, -cy], [0, 0, 1]], dtype=np.float64)
    flip = np.diag([-1.0 if hflip else 1.0, -1.0 if vflip else 1.0, 1.0])
    scale = np.diag([zx, zy, 1.0])
    sh = math.radians(shear)
    shear_m = np.array([[1, -math.sin(sh), 0], [0, math.cos(sh), 0], [0, 0, 1]], dtype=np.float64)
    a = math.radians(angle)
    # image y points down: a counter-clockwise rotation on screen is clockwise in these coordinates
    rot = np.array([[math.cos(a), math.sin(a), 0], [-math.sin(a), math.cos(a), 0], [0, 0, 1]], dtype=np.float64)
    back = np.array([[1, 0, cx + tx], [0, 1, cy + ty], [0, 0, 1]], dtype=np.float64)
    return (back @ rot @ shear_m @ scale @ flip @ to_origin)[:2]


def transform_boxes(boxes: Sequence[Sequence[float]], matrix: np.ndarray, width: int, height: int) -> Boxes:
    """Map pixel boxes through ``matrix``: bounding box of the four corners, clipped; empty results are dropped."""
    out: Boxes = []
    for x0, y0, x1, y1 in boxes:
        corners = np.array([[x0, y0, 1], [x1, y0, 1], [x0, y1, 1], [x1, y1, 1]], dtype=np.float64)
        pts = corners @ matrix.T
        nx0, ny0 = np.clip(pts[:, 0].min(), 0, width), np.clip(pts[:, 1].min(), 0, height)
        nx1, ny1 = np.clip(pts[:, 0].max(), 0, width), np.clip(pts[:, 1].max(), 0, height)
        if nx1 - nx0 >= 1 and ny1 - ny0 >= 1:
            out.append([float(nx0), float(ny0), float(nx1), float(ny1)])
    return out


def _pixel_centre_matrix(matrix: np.ndarray) -> np.ndarray:
    """``matrix`` works on continuous coordinates (pixel ``i`` spans ``[i, i + 1]``); OpenCV puts pixel ``i`` at
    ``i``: conjugate by a half-pixel shift."""
    full = np.vstack([matrix, [0.0, 0.0, 1.0]])
    shift = np.array([[1, 0, 0.5], [0, 1, 0.5], [0, 0, 1]], dtype=np.float64)
    return (np.linalg.inv(shift) @ full @ shift)[:2]


def _colour_jitter(img: Image.Image, cfg: AugmentConfig, rng: np.random.Generator) -> Image.Image:
    import torchvision.transforms.functional as TF

    ops = []
    if cfg.brightness:
        ops.append((TF.adjust_brightness, rng.uniform(max(0.0, 1 - cfg.brightness), 1 + cfg.brightness)))
    if cfg.contrast:
        ops.append((TF.adjust_contrast, rng.uniform(max(0.0, 1 - cfg.contrast), 1 + cfg.contrast)))
    if cfg.saturation:
        ops.append((TF.adjust_saturation, rng.uniform(max(0.0, 1 - cfg.saturation), 1 + cfg.saturation)))
    if cfg.hue:
        ops.append((TF.adjust_hue, rng.uniform(-cfg.hue, cfg.hue)))
    for i in rng.permutation(len(ops)):
        fn, value = ops[int(i)]
        img = fn(img, float(value))
    return img


class Augmenter:
    """Callable ``(image, boxes, rng) -> (image, boxes)`` built from an :class:`AugmentConfig`."""

    def __init__(self, config: AugmentConfig | None = None) -> None:
        self.config = config or AugmentConfig()

    def __repr__(self) -> str:
        return f"Augmenter({self.config})"

    def geometry(self, width: int, height: int, rng: np.random.Generator) -> np.ndarray | None:
        """Draw one random affine matrix (``None`` when geometry is off)."""
        cfg = self.config
        if not cfg.has_geometry:
            return None
        return affine_matrix(
            width, height,
            angle=rng.uniform(-cfg.rotation, cfg.rotation) if cfg.rotation else 0.0,
            tx=rng.uniform(-cfg.shift, cfg.shift) * width if cfg.shift else 0.0,
            ty=rng.uniform(-cfg.shift, cfg.shift) * height if cfg.shift else 0.0,
            zx=rng.uniform(1 - cfg.zoom, 1 + cfg.zoom) if cfg.zoom else 1.0,
            zy=rng.uniform(1 - cfg.zoom, 1 + cfg.zoom) if cfg.zoom else 1.0,
            shear=rng.uniform(-cfg.shear, cfg.shear) if cfg.shear else 0.0,
            hflip=bool(cfg.hflip and rng.random() < 0.5),
            vflip=bool(cfg.vflip and rng.random() < 0.5),
        )

    def geometric(
        self, image: Image.Image, boxes: Sequence[Sequence[float]] | None = None,
        rng: np.random.Generator | None = None,
    ) -> tuple[Image.Image, Boxes]:
        """Rotation, flips, shift, zoom and shear; boxes follow (or, with ``box_geometry="skip"``, nothing moves)."""
        cfg = self.config
        rng = rng if rng is not None else np.random.default_rng()
        boxes = [[float(v) for v in b] for b in (boxes or [])]
        if image.mode != "RGB":
            image = image.convert("RGB")
        if cfg.has_geometry and not (boxes and cfg.box_geometry == "skip"):
            matrix = self.geometry(image.width, image.height, rng)
            if matrix is not None:
                arr = cv2.warpAffine(
                    np.asarray(image), _pixel_centre_matrix(matrix), (image.width, image.height),
                    flags=cv2.INTER_LINEAR, borderMode=_BORDER[cfg.fill], borderValue=(0, 0, 0),
                )
                image = Image.fromarray(arr, "RGB")
                boxes = transform_boxes(boxes, matrix, image.width, image.height)
        return image, boxes

    def photometric(self, image: Image.Image, rng: np.random.Generator | None = None) -> Image.Image:
        """Colour jitter, Gaussian blur and JPEG re-compression (each with its probability); no geometry."""
        cfg = self.config
        rng = rng if rng is not None else np.random.default_rng()
        if image.mode != "RGB":
            image = image.convert("RGB")
        if cfg.jitter_p and rng.random() < cfg.jitter_p:
            image = _colour_jitter(image, cfg, rng)
        if cfg.blur_p and rng.random() < cfg.blur_p:
            image = image.filter(ImageFilter.GaussianBlur(radius=float(rng.uniform(*cfg.blur_sigma))))
        if cfg.jpeg_p and rng.random() < cfg.jpeg_p:
            quality = int(rng.integers(cfg.jpeg_quality[0], cfg.jpeg_quality[1] + 1))
            image = reencode(image, ReencodeConfig(format="JPEG", quality=quality)).convert("RGB")
        return image

    def __call__(
        self, image: Image.Image, boxes: Sequence[Sequence[float]] | None = None,
        rng: np.random.Generator | None = None,
    ) -> tuple[Image.Image, Boxes]:
        """Geometry then photometry. (A trainer that cuts crops in between calls the two halves itself.)"""
        rng = rng if rng is not None else np.random.default_rng()
        image, boxes = self.geometric(image, boxes, rng)
        return self.photometric(image, rng), boxes


def build_augmenter(config: AugmentConfig | dict | None) -> Augmenter:
    """An :class:`Augmenter` from a config object or a dict of its fields (strictly checked)."""
    if isinstance(config, dict):
        config = AugmentConfig.from_dict(config, where="augment")
    return Augmenter(config)
