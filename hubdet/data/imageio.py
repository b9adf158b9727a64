"""The one image decoder of hubdet: size limits, bad-file rules and normalisation to RGB.

Every path that reads pixels (builders, synth, predict, the app) goes through :func:`open_image` /
:func:`load_image`. What can be read is decided here; what can be judged by :mod:`hubdet.data.policy`.
"""

from __future__ import annotations

import io
import logging
import os
import threading
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
    notes: list[str] = field(default_factory=list)  # what the decoder normalised (animation, mode, bit depth, alpha)


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


def _side(pixels: int) -> str:
    """``"8192x8192"``-style reading of a pixel budget (the side of the square image with that many pixels)."""
    side = int(pixels ** 0.5)
    return f"{side}x{side}" if side * side == pixels else f"{pixels:,} pixels"


def _over_limit(where: str, width: int, height: int, limit: int, limit_name: str | None, nbytes: int | None) -> str:
    """The reason an image over the pixel budget is refused: its size, whose limit, and whether it looks like a
    decompression bomb (far fewer bytes than pixels)."""
    owner = limit_name or "hubdet's decoding limit (HUBDET_MAX_PIXELS)"
    reason = (f"image is {width}x{height} pixels ({width * height / 1e6:.1f} MP), over {owner} of "
              f"{limit / 1e6:.1f} MP ({_side(limit)})")
    if limit_name is None or (nbytes is not None and nbytes * 100 < width * height):
        size = f"{nbytes / 1024:.0f} KB for " if nbytes is not None else ""
        reason += f"; {size}that many pixels is a possible decompression bomb"
    return reason


def _float_to_8bit(arr: np.ndarray, where: str, what: str) -> np.ndarray:
    """Float samples in [0, 1] -> uint8; anything else is refused (its scale cannot be known)."""
    from hubdet._core.errors import UnsupportedImageError
    from hubdet.data.policy import UNSUPPORTED_FORMAT

    a = np.asarray(arr, dtype=np.float64)
    if a.size and not np.isfinite(a).all():
        raise UnsupportedImageError(where, f"{UNSUPPORTED_FORMAT}: {what} include NaN or infinite values")
    lo, hi = (float(a.min()), float(a.max())) if a.size else (0.0, 0.0)
    if lo < 0.0 or hi > 1.0:
        raise UnsupportedImageError(
            where, f"{UNSUPPORTED_FORMAT}: {what} range over [{lo:.4g}, {hi:.4g}], not [0, 1], so their scale is "
                   "unknown (save the image with 8-bit samples, or floats scaled to [0, 1])")
    return np.round(a * 255.0).astype(np.uint8)


def _int_to_8bit(arr: np.ndarray, where: str, what: str, *, bits: int | None) -> tuple[np.ndarray, str]:
    """Integer samples -> uint8 and how: 16-bit samples (``bits=16``, or values above 255 up to 65535) are scaled by
    255/65535; values within 0-255 of an unknown depth are kept; anything else is refused."""
    from hubdet._core.errors import UnsupportedImageError
    from hubdet.data.policy import UNSUPPORTED_FORMAT

    a = np.asarray(arr)
    lo, hi = (int(a.min()), int(a.max())) if a.size else (0, 0)
    if lo < 0 or hi > 65535:
        raise UnsupportedImageError(where, f"{UNSUPPORTED_FORMAT}: {what} range over [{lo}, {hi}], outside the "
                                           "8- and 16-bit ranges hubdet reads")
    if bits == 16 or hi > 255:
        return np.round(a.astype(np.float64) * (255.0 / 65535.0)).astype(np.uint8), "16-bit samples scaled to 8 bits"
    return a.astype(np.uint8), "samples within 0-255 kept as 8-bit"


def _to_rgb(img: Image.Image, where: str, notes: list[str] | None = None) -> Image.Image:
    """Normalise any mode (palette, alpha, CMYK, 16-bit, float, grayscale) to 8-bit RGB; say what was done in
    ``notes``. Float samples outside [0, 1] and integers beyond 16 bits raise :class:`UnsupportedImageError`."""
    notes = notes if notes is not None else []
    if img.mode == "RGB":
        return img
    how = ""
    if img.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        if img.mode == "F":
            arr, how = _float_to_8bit(np.asarray(img), where, "floating-point samples"), \
                "floating-point samples in [0, 1] scaled to 8 bits"
        else:
            arr, how = _int_to_8bit(np.asarray(img), where, f"mode {img.mode} samples",
                                    bits=16 if img.mode.startswith("I;16") else None)
        out = Image.fromarray(arr, mode="L").convert("RGB")
    elif img.mode in ("RGBA", "LA", "PA", "RGBa", "La") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        out = Image.alpha_composite(background, rgba).convert("RGB")
        how = "transparent pixels composited on white"
    else:
        try:
            out = img.convert("RGB")
        except (OSError, ValueError) as exc:
            raise BadImageError(where, f"cannot convert mode {img.mode} to RGB ({exc})") from exc
    notes.append(f"converted from mode {img.mode} to 8-bit RGB" + (f" ({how})" if how else ""))
    return out


def _array_to_image(source: np.ndarray) -> Image.Image:
    """An ``HxW``, ``HxWxC`` or ``CxHxW`` array as a PIL image (uint8; floats must lie in [0, 1])."""
    arr = source
    if arr.ndim == 3 and arr.shape[0] in (1, 3, 4) and arr.shape[-1] not in (1, 3, 4):
        arr = np.moveaxis(arr, 0, -1)
    if arr.ndim == 3 and arr.shape[-1] == 1:
        arr = arr[..., 0]
    if arr.ndim not in (2, 3) or (arr.ndim == 3 and arr.shape[-1] not in (3, 4)):
        raise BadImageError("<array>", f"expected an HxW, HxWx3 or HxWx4 array, got shape {source.shape}")
    if arr.dtype == np.bool_:
        arr = arr.astype(np.uint8) * 255
    elif np.issubdtype(arr.dtype, np.floating):
        arr = _float_to_8bit(arr, "<array>", f"{arr.dtype} samples")
    elif arr.dtype != np.uint8:
        if not np.issubdtype(arr.dtype, np.integer):
            raise BadImageError("<array>", f"unsupported array dtype {arr.dtype}")
        arr = _int_to_8bit(arr, "<array>", f"{arr.dtype} samples", bits=16 if arr.dtype == np.uint16 else None)[0]
    return Image.fromarray(np.ascontiguousarray(arr))


def _unidentified_reason(data: bytes) -> str:
    """Why Pillow could not identify ``data``: a TIFF whose sample format it does not read (named from its tags),
    or not an image at all."""
    from hubdet.data.policy import UNSUPPORTED_FORMAT

    if data[:4] in (b"II*\0", b"MM\0*"):
        try:
            from PIL import TiffImagePlugin

            ifd = TiffImagePlugin.ImageFileDirectory_v2(ifh=data[:8])
            fp = io.BytesIO(data)
            fp.seek(int.from_bytes(data[4:8], "little" if data[:2] == b"II" else "big"))
            ifd.load(fp)
            bits = ifd.get(258, (1,))
            kinds = {1: "unsigned integer", 2: "signed integer", 3: "floating-point"}
            kind = kinds.get(int((ifd.get(339) or (1,))[0]), "unknown")
            spp = int(ifd.get(277, 1))
            return (f"{UNSUPPORTED_FORMAT}: TIFF with {spp} sample(s) per pixel of {int(bits[0])}-bit {kind} "
                    "data, which hubdet cannot read (save it as 8-bit RGB, or one channel of floats in [0, 1])")
        except Exception:  # noqa: BLE001  (the tags are only used to word the reason)
            return f"{UNSUPPORTED_FORMAT}: a TIFF whose layout hubdet cannot read"
    return "not an image file (format not recognised)"


_OPEN_LOCK = threading.Lock()


def open_image(source: ImageInput, *, max_pixels: int | None = None,
               limit_name: str | None = None) -> tuple[Image.Image, ImageInfo]:
    """Decode ``source`` fully into an RGB PIL image and describe its encoding (``info.notes`` says what was
    normalised: animation, mode, bit depth, alpha).

    Raises :class:`BadImageError` (naming the file) for missing, empty, non-image, truncated or oversized inputs,
    and its subclass :class:`UnsupportedImageError` for samples whose meaning is unknown (floats outside [0, 1],
    floating-point RGB TIFFs). The pixel budget is ``max_pixels`` (default :data:`MAX_PIXELS`), checked on the
    header before anything is decoded; ``limit_name`` names whose budget it is in the refusal (e.g. "this app's
    limit"). Animated images use their first frame. EXIF orientation is applied.
    """
    from hubdet._core.errors import UnsupportedImageError

    limit = MAX_PIXELS if max_pixels is None else max_pixels
    if isinstance(source, Image.Image):
        where = getattr(source, "filename", "") or "<PIL image>"
        img = source
        if img.width * img.height > limit:
            raise BadImageError(where, _over_limit(where, img.width, img.height, limit, limit_name, None))
        n_frames = getattr(img, "n_frames", 1)
        notes = [f"animated image with {n_frames} frames: only the first frame is used"] if n_frames > 1 else []
        info = ImageInfo(img.format, img.width, img.height, img.mode, None, n_frames, notes)
        return _to_rgb(img, where, info.notes), info
    if isinstance(source, np.ndarray):
        return open_image(_array_to_image(source), max_pixels=limit, limit_name=limit_name)
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
    try:
        with _OPEN_LOCK:  # hubdet checks the budget itself (below), with its own message, before decoding
            previous = Image.MAX_IMAGE_PIXELS
            Image.MAX_IMAGE_PIXELS = None
            try:
                img = Image.open(io.BytesIO(data))
            finally:
                Image.MAX_IMAGE_PIXELS = previous
        if img.width * img.height > limit:
            raise BadImageError(where, _over_limit(where, img.width, img.height, limit, limit_name, len(data)))
        fmt = img.format
        quality = estimate_jpeg_quality(img) if fmt == "JPEG" else None
        n_frames = getattr(img, "n_frames", 1)
        img.seek(0)
        ImageFile.LOAD_TRUNCATED_IMAGES = False
        ImageOps.exif_transpose(img, in_place=True)  # in place: no full-size copy of every decoded image
        img.load()
    except BadImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:  # Pillow's own check, later on
        raise BadImageError(where, f"over Pillow's decoding limit ({exc}); a possible decompression bomb") from None
    except UnidentifiedImageError:
        reason = _unidentified_reason(data)
        error = UnsupportedImageError if reason.startswith("unsupported") else BadImageError
        raise error(where, reason) from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise BadImageError(where, f"corrupt or truncated image ({exc})") from exc
    notes = [f"animated image with {n_frames} frames: only the first frame is used"] if n_frames > 1 else []
    info = ImageInfo(fmt, img.width, img.height, img.mode, quality, n_frames, notes)
    return _to_rgb(img, where, info.notes), info


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
