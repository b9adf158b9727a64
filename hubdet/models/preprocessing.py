"""Build the image -> tensor transform from a detector's :class:`PreprocessConfig`, and map boxes back."""

from __future__ import annotations

import functools
import math
import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import numpy as np
import torch
from PIL import Image

from hubdet.data.policy import DATA_POLICY, InputPolicy
from hubdet.models.config import PreprocessConfig

_T = TypeVar("_T")
_POOL: tuple[int, int, ThreadPoolExecutor] | None = None  # (pid, workers, pool)
_POOL_LOCK = threading.Lock()


def preprocess_threads() -> int:
    """Threads that decode and resize the images of a batch: ``HUBDET_PREPROCESS_THREADS`` (1 = serial), else
    ``min(4, cpu count)``. PIL releases the GIL while it decodes and resamples, so they run in parallel."""
    env = os.environ.get("HUBDET_PREPROCESS_THREADS", "").strip()
    if env:
        try:
            return max(1, int(env))
        except ValueError:
            raise ValueError(f"HUBDET_PREPROCESS_THREADS must be an integer, got {env!r}") from None
    return min(4, os.cpu_count() or 1)


def thread_map(fn: Callable[[Any], _T], items: Sequence[Any]) -> list[_T]:
    """``[fn(x) for x in items]`` on a shared thread pool (in order; the first exception, in item order, is raised).

    Serial for one item or one thread. The pool is re-created in a forked child (its threads do not survive fork).
    ``fn`` must not call :func:`thread_map` itself.
    """
    workers = preprocess_threads()
    if workers <= 1 or len(items) < 2:
        return [fn(x) for x in items]
    global _POOL
    with _POOL_LOCK:
        if _POOL is None or _POOL[0] != os.getpid() or _POOL[1] != workers:
            _POOL = (os.getpid(), workers, ThreadPoolExecutor(workers, thread_name_prefix="hubdet-preprocess"))
        pool = _POOL[2]
    return list(pool.map(fn, items))


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
    # center_crop at native resolution (an image smaller than the crop is first enlarged to cover it)
    scale = max(1.0, out_w / width, out_h / height)
    left = (width * scale - out_w) / 2 / scale
    top = (height * scale - out_h) / 2 / scale
    return left, top, scale, scale, float(out_w), float(out_h)


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
    elif img.width < out_w or img.height < out_h:  # center_crop: enlarge an image smaller than the crop, never pad
        scale = max(out_w / img.width, out_h / img.height)
        img = img.resize((max(out_w, round(img.width * scale)), max(out_h, round(img.height * scale))), interp)
    left = (img.width - out_w) // 2
    top = (img.height - out_h) // 2
    return img.crop((left, top, left + out_w, top + out_h))


def grid_crops(img: Image.Image, pre: PreprocessConfig, n: int) -> list[Image.Image]:
    """Up to ``n`` crops of ``pre.input_size`` at native resolution spread over the image: the centre crop first, then
    the cells of the smallest square grid with at least ``n`` cells, nearest the centre first (an image smaller than
    the crop gives its one enlarged centre crop; a crop-sized image gives one crop)."""
    import math

    out_h, out_w = pre.input_size
    centre = apply_geometry(img, pre.replace(resize="center_crop"))
    if n <= 1 or (img.width <= out_w and img.height <= out_h):
        return [centre]
    k = math.ceil(math.sqrt(n - 1)) if n > 1 else 1
    xs = [round(i * (img.width - out_w) / max(1, k - 1)) if k > 1 else (img.width - out_w) // 2 for i in range(k)]
    ys = [round(j * (img.height - out_h) / max(1, k - 1)) if k > 1 else (img.height - out_h) // 2 for j in range(k)]
    cx, cy = (img.width - out_w) / 2, (img.height - out_h) / 2
    cells = sorted({(max(0, x), max(0, y)) for x in xs for y in ys}, key=lambda p: (p[0] - cx) ** 2 + (p[1] - cy) ** 2)
    crops = [centre] + [img.crop((x, y, x + out_w, y + out_h)) for x, y in cells[: n - 1]]
    return [c if c.mode == "RGB" else c.convert("RGB") for c in crops]


@functools.lru_cache(maxsize=64)
def _normalisation_table(mean: tuple[float, ...], std: tuple[float, ...]) -> np.ndarray:
    """``[3, 256]`` float32 look-up table: 8-bit value ``v`` of channel ``c`` -> ``(v / 255 - mean[c]) / std[c]``.

    Computed in float32 in the same order as the element-wise version, so the result is bit-identical to it, and
    with one table look-up per pixel instead of three passes of small in-place tensor operations (which are slow
    on a loaded CPU: every one of them synchronises torch's intra-op threads).
    """
    values = np.arange(256, dtype=np.float32) / np.float32(255.0)
    m = np.asarray(mean, dtype=np.float32)[:, None]
    s = np.asarray(std, dtype=np.float32)[:, None]
    table = (values[None, :] - m) / s
    table.setflags(write=False)
    return table


def _fast_path_array(img: Image.Image) -> np.ndarray | None:
    """The ``HxWx3`` uint8 array of an RGB or grayscale 8-bit image, None for any other image."""
    arr = np.asarray(img)
    if arr.dtype != np.uint8:
        return None
    if arr.ndim == 2:
        return np.repeat(arr[..., None], 3, axis=2)
    return arr if arr.ndim == 3 and arr.shape[2] == 3 else None


def _normalise_into(out: np.ndarray, arr: np.ndarray, table: np.ndarray) -> None:
    for c in range(3):
        out[..., c] = table[c][arr[..., c]]


def to_tensor(img: Image.Image, pre: PreprocessConfig) -> torch.Tensor:
    """RGB PIL image -> normalised float tensor ``[3, H, W]`` (a channels-last view of an ``HxWx3`` array)."""
    arr = _fast_path_array(img)
    if arr is not None and len(pre.mean) == 3 and len(pre.std) == 3:
        out = np.empty(arr.shape, dtype=np.float32)
        _normalise_into(out, arr, _normalisation_table(tuple(map(float, pre.mean)), tuple(map(float, pre.std))))
        return torch.from_numpy(out).permute(2, 0, 1)
    arr = np.asarray(img, dtype=np.float32)
    if arr.ndim == 2:
        arr = np.repeat(arr[..., None], 3, axis=2)
    t = torch.from_numpy(arr).permute(2, 0, 1).div_(255.0)
    mean = torch.tensor(pre.mean, dtype=t.dtype).view(3, 1, 1)
    std = torch.tensor(pre.std, dtype=t.dtype).view(3, 1, 1)
    return t.sub_(mean).div_(std)


def to_batch(images: Sequence[Image.Image], pre: PreprocessConfig) -> torch.Tensor:
    """Same-size images -> normalised ``[B, 3, H, W]`` tensor in ``torch.channels_last`` memory format.

    Values are identical to stacking :func:`to_tensor`; the memory format is the one convolutions run fastest in
    on CPU (and the layout the decoded pixels already have, so no transpose copy is made).
    """
    if not images:
        raise ValueError("to_batch: no images")
    arrays = [_fast_path_array(im) for im in images]
    sizes = {im.size for im in images}
    if len(sizes) != 1:
        raise ValueError(f"to_batch: images must share one size, got {sorted(sizes)}")
    if any(a is None for a in arrays) or len(pre.mean) != 3 or len(pre.std) != 3:
        return torch.stack([to_tensor(im, pre) for im in images]).contiguous(memory_format=torch.channels_last)
    table = _normalisation_table(tuple(map(float, pre.mean)), tuple(map(float, pre.std)))
    first = arrays[0]
    out = np.empty((len(arrays), *first.shape), dtype=np.float32)
    for i, arr in enumerate(arrays):
        _normalise_into(out[i], arr, table)
    return torch.from_numpy(out).permute(0, 3, 1, 2)


def stack_channels_last(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    """Stack ``[3, H, W]`` tensors into one ``[B, 3, H, W]`` batch in ``torch.channels_last`` memory format (one copy;
    the views :func:`to_tensor` returns are already channels-last)."""
    return torch.stack([t.permute(1, 2, 0) for t in tensors]).permute(0, 3, 1, 2)


def build_transform(pre: PreprocessConfig) -> Callable[[Image.Image], torch.Tensor]:
    """The eval transform of a detector: geometry then normalisation."""

    def transform(img: Image.Image) -> torch.Tensor:
        if img.mode != "RGB":
            img = img.convert("RGB")
        return to_tensor(apply_geometry(img, pre), pre)

    return transform


def build_batch_transform(pre: PreprocessConfig) -> Callable[[Sequence[Image.Image]], torch.Tensor]:
    """The eval transform for a batch: geometry for each image, then :func:`to_batch` (channels-last batch)."""

    def batch_transform(images: Sequence[Image.Image]) -> torch.Tensor:
        return to_batch(thread_map(lambda im: apply_geometry(im if im.mode == "RGB" else im.convert("RGB"), pre),
                                   images), pre)

    return batch_transform


#: A resizing detector judges images it must enlarge at most this much (beyond, it sees interpolation, not pixels).
MAX_UPSCALE = 8.0
#: How much a native-resolution crop (``center_crop``) may enlarge an image smaller than the crop.
MAX_NATIVE_UPSCALE = 2.0
#: A detector that squashes the image to its input size judges aspect ratios at most this far from its input's.
MAX_DISTORTION = 4.0


def input_policy_for(pre: PreprocessConfig) -> InputPolicy:
    """What a detector with this preprocessing can judge (never less strict than :data:`DATA_POLICY`):

    - ``center_crop`` (a crop at native resolution): an image smaller than the crop is enlarged to cover it, at most
      :data:`MAX_NATIVE_UPSCALE` x (beyond that the pixels it looks at are mostly interpolation);
    - ``resize`` (the whole image squashed to the input size): at most :data:`MAX_UPSCALE` x enlargement per side and
      :data:`MAX_DISTORTION` x change of aspect ratio;
    - ``shorter_crop`` (shorter side resized, centre cropped): at most :data:`MAX_UPSCALE` x enlargement;
    - ``none`` (the whole image at native resolution): only the floor; families that tile or analyse blocks
      override :meth:`~hubdet.models.base.Detector.input_policy` with their own needs.
    """
    out_h, out_w = (int(v) for v in pre.input_size)
    floor_side, floor_aspect = DATA_POLICY.min_width, DATA_POLICY.max_aspect
    if pre.resize == "center_crop":
        return InputPolicy(max(floor_side, math.ceil(out_w / MAX_NATIVE_UPSCALE)),
                           max(floor_side, math.ceil(out_h / MAX_NATIVE_UPSCALE)), floor_aspect,
                           f"it looks at a {out_w}x{out_h} crop at native resolution (a smaller image enlarged at "
                           f"most {MAX_NATIVE_UPSCALE:g}x)")
    if pre.resize == "resize":
        input_aspect = max(out_w, out_h) / min(out_w, out_h)
        return InputPolicy(max(floor_side, math.ceil(out_w / MAX_UPSCALE)),
                           max(floor_side, math.ceil(out_h / MAX_UPSCALE)),
                           min(floor_aspect, MAX_DISTORTION * input_aspect),
                           f"it resizes the whole image to {out_w}x{out_h}: at most {MAX_UPSCALE:g}x enlargement "
                           f"and {MAX_DISTORTION:g}x distortion")
    if pre.resize == "shorter_crop":
        shorter = max(out_w, out_h) / pre.crop_pct
        side = max(floor_side, math.ceil(shorter / MAX_UPSCALE))
        return InputPolicy(side, side, floor_aspect,
                           f"it resizes the shorter side to {shorter:.0f} pixels, at most {MAX_UPSCALE:g}x "
                           "enlargement, and crops the centre")
    return InputPolicy(floor_side, floor_side, floor_aspect, "it looks at the whole image at native resolution")


def tiled_input_policy(tile_size: tuple[int, int], max_tiles: int) -> InputPolicy:
    """What a detector tiling images at native resolution with ``tile_size`` (h, w) tiles can judge: every side at
    least half a tile (smaller images are padded, but a tile that is mostly padding judges little)."""
    th, tw = tile_size
    return InputPolicy(max(DATA_POLICY.min_width, math.ceil(tw / 2)), max(DATA_POLICY.min_height, math.ceil(th / 2)),
                       DATA_POLICY.max_aspect, f"it tiles the image with {tw}x{th} tiles at native resolution, at "
                       f"most {max_tiles} of them, and needs half a tile of image per side")


def tiling_refusal(width: int, height: int, scale: float, tile_size: tuple[int, int], max_tiles: int,
                   who: str) -> str | None:
    """Why an image of ``width x height`` cannot be judged by a tiled detector (``who``) that must shrink it by
    ``scale`` to fit ``max_tiles`` tiles of ``tile_size`` (h, w): when its short side ends under half a tile."""
    from hubdet.data.policy import EXTREME_ASPECT

    th, tw = tile_size
    w, h = round(width * scale), round(height * scale)
    if w * 2 < tw or h * 2 < th:
        return (f"{EXTREME_ASPECT}: the image is {width}x{height} pixels; to fit at most {max_tiles} tiles the {who} "
                f"would shrink it to {w}x{h}, under half a {tw}x{th} tile per side")
    return None


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


def map_to_original(values: np.ndarray, pre: PreprocessConfig, width: int, height: int) -> np.ndarray:
    """Map an ``[h, w]`` float map over the model input back onto the ``[height, width]`` original image: resized
    (bilinear) onto the part of the original the input shows, zero where the input does not see it (a crop)."""
    left, top, sx, sy, out_w, out_h = crop_box(pre, width, height)
    region = (round(left), round(top), round(left + out_w / sx), round(top + out_h / sy))
    resized = Image.fromarray(np.asarray(values, dtype=np.float32)).resize(
        (max(1, region[2] - region[0]), max(1, region[3] - region[1])), Image.Resampling.BILINEAR)
    arr = np.asarray(resized, dtype=np.float32)
    canvas = np.zeros((height, width), np.float32)
    x0, y0 = max(region[0], 0), max(region[1], 0)
    x1, y1 = min(region[2], width), min(region[3], height)
    if x1 > x0 and y1 > y0:
        canvas[y0:y1, x0:x1] = arr[y0 - region[1] : y1 - region[1], x0 - region[0] : x1 - region[0]]
    return canvas
