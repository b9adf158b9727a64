"""The one image decoder of hubdet: size limits, bad-file rules and normalisation to RGB.

Every path that reads pixels (builders, synth, predict, the app) goes through :func:`load_image`.
"""

from __future__ import annotations

import io
import logging
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from hubdet._core.errors import BadImageError

logger = logging.getLogger(__name__)

#: Images with more pixels than this are refused (decompression-bomb guard). 8192 x 8192 by default;
#: override with the ``HUBDET_MAX_PIXELS`` environment variable.
MAX_PIXELS = int(os.environ.get("HUBDET_MAX_PIXELS", 8192 * 8192))

IMAGE_EXTENSIONS = frozenset(
    {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff", ".jfif", ".ppm", ".pgm"}
)

ImageInput = Any  # str | os.PathLike | bytes | PIL.Image.Image | np.ndarray


@dataclass
class ImageInfo:
    """What is known of an image's original encoding."""

    format: str | None
    width: int
    height: int
    mode: str
    jpeg_quality: int | None = None
    n_frames: int = 1


def estimate_jpeg_quality(img: Image.Image) -> int | None:
    """Estimate the IJG quality of a JPEG from its luminance quantisation table (None if not JPEG)."""
    tables = getattr(img, "quantization", None)
    if not tables or 0 not in tables:
        return None
    from PIL import JpegPresets  # noqa: F401  (ensures the JPEG plugin is loaded)

    std = [
        16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
        14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113,
        92, 49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99,
    ]
    q = list(tables[0])
    # PIL stores tables in zig-zag order; compare sorted scale factors, robust to ordering.
    scale = float(np.median([qi * 100.0 / si for qi, si in zip(sorted(q), sorted(std), strict=False)]))
    quality = 100 - scale / 2 if scale <= 100 else 5000 / scale
    return int(round(min(100, max(1, quality))))


def _to_rgb(img: Image.Image, where: str) -> Image.Image:
    """Normalise any mode (palette, alpha, CMYK, 16-bit, float, grayscale) to 8-bit RGB."""
    if img.mode == "RGB":
        return img
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        hi = arr.max() if arr.size else 1.0
        if img.mode.startswith("I;16") or hi > 255:
            arr = arr / (65535.0 if hi > 255 else 255.0) * 255.0
        arr = np.clip(arr, 0, 255).astype(np.uint8)
        return Image.fromarray(arr, mode="L").convert("RGB")
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    try:
        return img.convert("RGB")
    except (OSError, ValueError) as exc:
        raise BadImageError(where, f"cannot convert mode {img.mode} to RGB ({exc})") from exc


def open_image(source: ImageInput, *, max_pixels: int | None = None) -> tuple[Image.Image, ImageInfo]:
    """Decode ``source`` fully into an RGB PIL image and describe its encoding.

    Raises :class:`BadImageError` (naming the file) for missing, empty, non-image, truncated or
    oversized inputs. Animated images use their first frame. EXIF orientation is applied.
    """
    limit = MAX_PIXELS if max_pixels is None else max_pixels
    if isinstance(source, Image.Image):
        where = getattr(source, "filename", "") or "<PIL image>"
        img = source
        if img.width * img.height > limit:
            raise BadImageError(where, f"image has {img.width}x{img.height} pixels, over the limit of {limit}")
        info = ImageInfo(img.format, img.width, img.height, img.mode, None, getattr(img, "n_frames", 1))
        return _to_rgb(img, where), info
    if isinstance(source, np.ndarray):
        arr = source
        if arr.ndim == 3 and arr.shape[0] in (1, 3, 4) and arr.shape[-1] not in (1, 3, 4):
            arr = np.moveaxis(arr, 0, -1)
        if arr.ndim == 3 and arr.shape[-1] == 1:
            arr = arr[..., 0]
        if arr.ndim not in (2, 3):
            raise BadImageError("<array>", f"expected HxW or HxWxC array, got shape {source.shape}")
        if arr.dtype != np.uint8:
            a = arr.astype(np.float64)
            a = a * 255.0 if a.max() <= 1.0 else a
            arr = np.clip(a, 0, 255).astype(np.uint8)
        img = Image.fromarray(arr)
        return open_image(img, max_pixels=limit)
    if isinstance(source, (bytes, bytearray)):
        where, data = "<bytes>", bytes(source)
    else:
        path = Path(os.fspath(source))
        where = str(path)
        if not path.exists():
            raise BadImageError(where, "file does not exist")
        if path.is_dir():
            raise BadImageError(where, "is a directory, not an image file")
        data = path.read_bytes()
    if not data:
        raise BadImageError(where, "file is empty (0 bytes)")
    previous = Image.MAX_IMAGE_PIXELS
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            Image.MAX_IMAGE_PIXELS = limit
            ImageFile.LOAD_TRUNCATED_IMAGES = False
            img = Image.open(io.BytesIO(data))
            if img.width * img.height > limit:
                raise BadImageError(
                    where, f"image is {img.width}x{img.height} pixels, over the limit of {limit} "
                    "(possible decompression bomb)"
                )
            fmt = img.format
            quality = estimate_jpeg_quality(img) if fmt == "JPEG" else None
            n_frames = getattr(img, "n_frames", 1)
            img.seek(0)
            ImageOps.exif_transpose(img, in_place=True)  # in place: no full-size copy of every decoded image
            img.load()
    except BadImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise BadImageError(where, f"refused as a possible decompression bomb ({exc})") from exc
    except UnidentifiedImageError:
        raise BadImageError(where, "not an image file (format not recognised)") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise BadImageError(where, f"corrupt or truncated image ({exc})") from exc
    finally:
        Image.MAX_IMAGE_PIXELS = previous
    info = ImageInfo(fmt, img.width, img.height, img.mode, quality, n_frames)
    return _to_rgb(img, where), info


def load_image(source: ImageInput, *, max_pixels: int | None = None) -> Image.Image:
    """Decode ``source`` into an RGB PIL image (see :func:`open_image`)."""
    return open_image(source, max_pixels=max_pixels)[0]


def is_image_file(path: str | Path) -> bool:
    """True if ``path`` has an image extension (content is checked when decoding)."""
    return Path(path).suffix.lower() in IMAGE_EXTENSIONS


@dataclass
class BadFileReport:
    """Files skipped while preparing data, with the reason for each. Never silently dropped."""

    skipped: list[tuple[str, str]] = field(default_factory=list)

    def add(self, path: str | Path, reason: str) -> None:
        self.skipped.append((str(path), reason))
        logger.warning("skipped %s: %s", path, reason)

    def extend(self, other: BadFileReport) -> None:
        self.skipped.extend(other.skipped)

    def __len__(self) -> int:
        return len(self.skipped)

    def to_dict(self) -> dict[str, Any]:
        return {"count": len(self.skipped), "files": [{"path": p, "reason": r} for p, r in self.skipped]}

    def summary(self) -> str:
        if not self.skipped:
            return "no files skipped"
        lines = [f"{len(self.skipped)} file(s) skipped:"]
        lines += [f"  {p}: {r}" for p, r in self.skipped]
        return "\n".join(lines)
