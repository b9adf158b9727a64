"""Pictures for the browser: a display-sized copy, a labelled box, a heatmap or an inpainting mask blended over an
image with one labelled box per region."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw

DISPLAY_MAX_SIDE = 768  # overlays sent to the browser are downscaled to this longest side


def display_copy(img: Image.Image, max_side: int = DISPLAY_MAX_SIDE) -> tuple[Image.Image, float]:
    """A copy no larger than ``max_side`` and the scale applied (for boxes)."""
    scale = min(1.0, max_side / max(img.width, img.height))
    if scale >= 1.0:
        return img.copy(), 1.0
    size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
    return img.resize(size, Image.Resampling.BILINEAR), scale


def draw_box(img: Image.Image, box: Sequence[float] | None, label: str = "", *,
             color: tuple[int, int, int] = (255, 40, 40), scale: float = 1.0) -> Image.Image:
    """``img`` with ``box`` (original pixels, xyxy; multiplied by ``scale``) drawn and labelled."""
    out = img.convert("RGB").copy()
    if box is None:
        return out
    x0, y0, x1, y1 = (float(v) * scale for v in box)
    draw = ImageDraw.Draw(out)
    width = max(2, round(max(out.size) / 200))
    draw.rectangle([x0, y0, x1, y1], outline=color, width=width)
    if label:
        text_y = max(0.0, y0 - 12)
        bbox = draw.textbbox((x0 + 2, text_y), label)
        draw.rectangle(bbox, fill=color)
        draw.text((x0 + 2, text_y), label, fill=(255, 255, 255))
    return out


def overlay_heatmap(img: Image.Image, heat: np.ndarray, *, alpha: float = 0.45, cmap: str = "jet") -> Image.Image:
    """Blend a ``[H, W]`` heatmap in [0, 1] (resized to ``img``) over ``img`` with a matplotlib colormap;
    the blend weight grows with the heat, so cold regions stay readable."""
    from matplotlib import colormaps

    base = np.asarray(img.convert("RGB"), dtype=np.float32)
    h = np.asarray(heat, dtype=np.float32)
    if h.shape != base.shape[:2]:
        h = np.asarray(Image.fromarray(h).resize(img.size, Image.Resampling.BILINEAR), dtype=np.float32)
    h = np.clip(np.nan_to_num(h), 0.0, 1.0)
    colored = colormaps[cmap](h)[..., :3].astype(np.float32) * 255.0
    weight = (alpha * np.sqrt(h))[..., None]  # cold regions keep the photo visible
    out = base * (1.0 - weight) + colored * weight
    return Image.fromarray(np.clip(out, 0, 255).astype(np.uint8), "RGB")


def overlay_mask(img: Image.Image, mask: np.ndarray, regions: Sequence[dict] | None = None, *, scale: float = 1.0,
                 threshold: float = 0.5, color: tuple[int, int, int] = (255, 0, 160),
                 alpha: float = 0.5) -> Image.Image:
    """``img`` with the pixels where ``mask`` (``[H, W]`` probabilities, resized to ``img``) reaches ``threshold``
    tinted, and each region's box (original pixels, multiplied by ``scale``) drawn with its confidence and share of
    the image."""
    base = np.asarray(img.convert("RGB"), dtype=np.float32)
    m = np.asarray(mask, dtype=np.float32)
    if m.shape != base.shape[:2]:
        m = np.asarray(Image.fromarray(m).resize(img.size, Image.Resampling.BILINEAR), dtype=np.float32)
    flagged = (np.nan_to_num(m) >= threshold)[..., None]
    out = np.where(flagged, base * (1 - alpha) + np.array(color, np.float32) * alpha, base)
    picture = Image.fromarray(np.clip(out, 0, 255).astype(np.uint8), "RGB")
    for k, region in enumerate(regions or []):
        label = f"#{k + 1} {region['score']:.2f} ({100 * region['area_fraction']:.1f}%)"
        picture = draw_box(picture, region["box"], label, color=color, scale=scale)
    return picture
