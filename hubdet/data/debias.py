"""Re-encode both classes the same way, so that codec, JPEG quality and size give nothing away.

A detector trained where reals are JPEG and fakes are PNG learns to detect JPEG. Every hubdet builder takes
``reencode=`` (a :class:`ReencodeConfig` or a dict of its fields) and passes every image, real or fake, through
:func:`reencode_to_bytes`; boxes and masks follow the resize (:func:`rescale_boxes`, :func:`resize_mask`).
"""

from __future__ import annotations

import dataclasses
import io
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from PIL import Image

from hubdet._core.config import StrictConfig
from hubdet._core.errors import ConfigError

_RESAMPLE = {
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
}


@dataclasses.dataclass
class ReencodeConfig(StrictConfig):
    """How to re-encode every image: codec, JPEG quality and an optional resize.

    ``resize`` is an exact (width, height); ``resize_shorter`` scales so the shorter side has that many
    pixels, keeping the aspect ratio. At most one of them may be set. Masks are resized with nearest
    neighbour, images with ``interpolation``.
    """

    format: Literal["JPEG", "PNG"] = "JPEG"
    quality: int = 90
    resize: tuple[int, int] | None = None
    resize_shorter: int | None = None
    interpolation: Literal["bilinear", "bicubic", "lanczos"] = "bicubic"

    def validate(self) -> None:
        if self.format not in ("JPEG", "PNG"):
            raise ConfigError(f"ReencodeConfig.format: {self.format!r} is not 'JPEG' or 'PNG'")
        if not 1 <= int(self.quality) <= 100:
            raise ConfigError(f"ReencodeConfig.quality: {self.quality} is not in 1..100")
        if self.resize is not None and self.resize_shorter is not None:
            raise ConfigError("ReencodeConfig: set resize or resize_shorter, not both")
        if self.resize is not None:
            self.resize = tuple(int(v) for v in self.resize)  # type: ignore[assignment]
            if len(self.resize) != 2 or min(self.resize) < 1:
                raise ConfigError(f"ReencodeConfig.resize: expected (width, height) >= 1, got {self.resize}")
        if self.resize_shorter is not None and self.resize_shorter < 1:
            raise ConfigError(f"ReencodeConfig.resize_shorter: expected >= 1, got {self.resize_shorter}")
        if self.interpolation not in _RESAMPLE:
            raise ConfigError(f"ReencodeConfig.interpolation: {self.interpolation!r} not in {sorted(_RESAMPLE)}")

    def describe(self) -> str:
        """A short human-readable tag, e.g. ``JPEG q90 shorter=256`` (recorded with every example)."""
        parts = [self.format + (f" q{self.quality}" if self.format == "JPEG" else "")]
        if self.resize is not None:
            parts.append(f"{self.resize[0]}x{self.resize[1]}")
        if self.resize_shorter is not None:
            parts.append(f"shorter={self.resize_shorter}")
        if self.resize is not None or self.resize_shorter is not None:
            parts.append(self.interpolation)
        return " ".join(parts)

    def target_size(self, width: int, height: int) -> tuple[int, int]:
        """The output (width, height) for an input of ``width`` x ``height``."""
        if self.resize is not None:
            return self.resize[0], self.resize[1]
        if self.resize_shorter is not None:
            scale = self.resize_shorter / min(width, height)
            return max(1, round(width * scale)), max(1, round(height * scale))
        return width, height


def as_reencode_config(value: ReencodeConfig | Mapping[str, Any] | None) -> ReencodeConfig | None:
    """Accept a :class:`ReencodeConfig`, a dict of its fields (strictly checked) or ``None``."""
    if value is None or isinstance(value, ReencodeConfig):
        return value
    if isinstance(value, Mapping):
        return ReencodeConfig.from_dict(dict(value), where="reencode")
    raise ConfigError(f"reencode: expected a ReencodeConfig or a mapping, got {type(value).__name__}")


def reencode_to_bytes(img: Image.Image, cfg: ReencodeConfig) -> tuple[bytes, tuple[int, int]]:
    """Resize (if asked) and encode an RGB image; return the encoded bytes and the new (width, height)."""
    if img.mode != "RGB":
        img = img.convert("RGB")
    size = cfg.target_size(img.width, img.height)
    if size != img.size:
        img = img.resize(size, _RESAMPLE[cfg.interpolation])
    buf = io.BytesIO()
    if cfg.format == "JPEG":
        img.save(buf, format="JPEG", quality=cfg.quality)
    else:
        img.save(buf, format="PNG")
    return buf.getvalue(), size


def reencode(img: Image.Image, cfg: ReencodeConfig | Mapping[str, Any]) -> Image.Image:
    """Return ``img`` after the round trip through ``cfg`` (decoded, so JPEG artefacts are in the pixels)."""
    resolved = as_reencode_config(cfg)
    if resolved is None:
        return img
    data, _ = reencode_to_bytes(img, resolved)
    out = Image.open(io.BytesIO(data))
    out.load()
    return out


def rescale_boxes(
    boxes: Sequence[Sequence[float]], from_size: tuple[int, int], to_size: tuple[int, int]
) -> list[list[float]]:
    """Scale ``[xmin, ymin, xmax, ymax]`` pixel boxes from an image of ``from_size`` to one of ``to_size``."""
    if tuple(from_size) == tuple(to_size):
        return [[float(v) for v in b] for b in boxes]
    sx = to_size[0] / from_size[0]
    sy = to_size[1] / from_size[1]
    return [[b[0] * sx, b[1] * sy, b[2] * sx, b[3] * sy] for b in boxes]


def resize_mask(mask: Image.Image, size: tuple[int, int]) -> Image.Image:
    """Resize a mask with nearest neighbour, so it stays binary."""
    return mask if mask.size == tuple(size) else mask.resize(tuple(size), Image.Resampling.NEAREST)
