"""Build the image -> tensor transform from a detector's :class:`PreprocessConfig`, and map boxes back."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from PIL import Image

from hubdet.models.config import PreprocessConfig

_INTERP = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
}


def crop_box(pre: PreprocessConfig, width: int, height: int) -> tuple[float, float, float, float, float, float]:
    """Geometry of the transform: ``(left, top, scale_x, scale_y, out_w, out_h)``.

    A pixel ``(x, y)`` of the original maps to ``((x - left) * scale_x, (y - top) * scale_y)`` in the input.
    """
    out_h, out_w = pre.input_size
    if pre.resize == "none":
        return 0.0, 0.0, 1.0, 1.0, float(width), float(height)
    if pre.resize == "resize":
        return 0.0, 0.0, out_w / width, out_h / height, float(out_w), float(out_h)
    if pre.resize == "shorter_crop":
        scale = max(out_w, out_h) / pre.crop_pct / min(width, height)
        scaled_w, scaled_h = width * scale, height * scale
        left = (scaled_w - out_w) / 2 / scale
        top = (scaled_h - out_h) / 2 / scale
        return left, top, scale, scale, float(out_w), float(out_h)
    # center_crop at native resolution
    left = (width - out_w) / 2
    top = (height - out_h) / 2
    return left, top, 1.0, 1.0, float(out_w), float(out_h)


def apply_geometry(img: Image.Image, pre: PreprocessConfig) -> Image.Image:
    """Resize/crop ``img`` as the config says (no normalisation)."""
    out_h, out_w = pre.input_size
    interp = _INTERP[pre.interpolation]
    if pre.resize == "none":
        return img
    if pre.resize == "resize":
        return img if img.size == (out_w, out_h) else img.resize((out_w, out_h), interp)
    if pre.resize == "shorter_crop":
        scale = max(out_w, out_h) / pre.crop_pct / min(img.size)
        new = (max(out_w, round(img.width * scale)), max(out_h, round(img.height * scale)))
        if new != img.size:
            img = img.resize(new, interp)
    left = (img.width - out_w) // 2
    top = (img.height - out_h) // 2
    # PIL pads with black where the crop leaves the image (images smaller than input_size)
    return img.crop((left, top, left + out_w, top + out_h))


def to_tensor(img: Image.Image, pre: PreprocessConfig) -> torch.Tensor:
    """RGB PIL image -> normalised float tensor ``[3, H, W]``."""
    arr = np.asarray(img, dtype=np.float32)
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    t = torch.from_numpy(arr).permute(2, 0, 1).div_(255.0)
    mean = torch.tensor(pre.mean, dtype=t.dtype).view(3, 1, 1)
    std = torch.tensor(pre.std, dtype=t.dtype).view(3, 1, 1)
    return t.sub_(mean).div_(std)


def build_transform(pre: PreprocessConfig) -> Callable[[Image.Image], torch.Tensor]:
    """The eval transform of a detector: geometry then normalisation."""

    def transform(img: Image.Image) -> torch.Tensor:
        if img.mode != "RGB":
            img = img.convert("RGB")
        return to_tensor(apply_geometry(img, pre), pre)

    return transform


def box_to_original(box: Sequence[float], pre: PreprocessConfig, width: int, height: int) -> list[float]:
    """Map a box normalised to [0, 1] of the model input back to pixels of the original image (clipped)."""
    left, top, sx, sy, out_w, out_h = crop_box(pre, width, height)
    x0, y0, x1, y1 = (float(v) for v in box)
    xs = [x0 * out_w / sx + left, x1 * out_w / sx + left]
    ys = [y0 * out_h / sy + top, y1 * out_h / sy + top]
    return [
        min(max(xs[0], 0.0), width),
        min(max(ys[0], 0.0), height),
        min(max(xs[1], 0.0), width),
        min(max(ys[1], 0.0), height),
    ]


def box_to_input(box: Sequence[float], pre: PreprocessConfig, width: int, height: int) -> list[float]:
    """Map a pixel box of the original image to [0, 1] coordinates of the model input (clipped)."""
    left, top, sx, sy, out_w, out_h = crop_box(pre, width, height)
    x0, y0, x1, y1 = (float(v) for v in box)
    out = [(x0 - left) * sx / out_w, (y0 - top) * sy / out_h, (x1 - left) * sx / out_w, (y1 - top) * sy / out_h]
    return [min(max(v, 0.0), 1.0) for v in out]
