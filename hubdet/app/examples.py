"""The app's example images: generated once into a cache folder, never downloaded."""

from __future__ import annotations

import io
import os
import tempfile
import threading
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image


def examples_dir() -> Path:
    """Where generated example images live: ``HUBDET_APP_CACHE/examples`` or ``<tempdir>/hubdet_app/examples``.

    The temporary directory is the default because Gradio serves files from it without extra ``allowed_paths``.
    """
    env = os.environ.get("HUBDET_APP_CACHE", "").strip()
    base = Path(env).expanduser() if env else Path(tempfile.gettempdir()) / "hubdet_app"
    return base / "examples"


def _synthetic_scene(width: int, height: int, seed: int) -> np.ndarray:
    """A photo-like synthetic scene: sky gradient, sun, layered hills, textured ground, sensor noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    t = yy / height
    sky = np.stack([90 + 110 * t, 150 + 70 * t, 230 - 20 * t], -1)
    img = sky.copy()
    cx, cy, r = width * (0.2 + 0.6 * rng.random()), height * 0.25, min(width, height) * 0.08
    sun = np.clip(1.3 - np.hypot(xx - cx, yy - cy) / r, 0, 1)[..., None]
    img = img * (1 - sun) + np.array([255, 240, 200], np.float32) * sun
    for k, color in enumerate(([70, 110, 70], [50, 90, 45], [95, 80, 50])):
        phase = rng.random() * 6.28
        ridge = height * (0.45 + 0.15 * k) + height * 0.06 * np.sin(xx[0] / width * (3 + 2 * k) * 3.14 + phase)
        mask = (yy > ridge[None, :]).astype(np.float32)[..., None]
        shade = (1 - 0.3 * (yy - ridge[None, :]).clip(0) / height)[..., None]
        img = img * (1 - mask) + np.array(color, np.float32) * shade * mask
    texture = rng.normal(0, 1, (height // 4 + 1, width // 4 + 1)).astype(np.float32)
    texture = np.asarray(Image.fromarray(texture).resize((width, height), Image.Resampling.BICUBIC))
    img += (t[..., None] > 0.5) * texture[..., None] * 12
    img += rng.normal(0, 3, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def ensure_examples(folder: str | os.PathLike | None = None) -> list[Path]:
    """Generate (once) a few synthetic example images and return their paths. No downloads, no shared data.

    - ``scene.jpg``: a photo-like synthetic landscape, JPEG q90;
    - ``scene_patched.jpg``: the same scene with a region repainted smoothly (a crude stand-in for inpainting);
    - ``scene_rgba.png``: the scene with an alpha channel (exercises the decoder's RGB normalisation).
    """
    folder = Path(folder) if folder is not None else examples_dir()
    folder.mkdir(parents=True, exist_ok=True)
    names = ("scene.jpg", "scene_patched.jpg", "scene_rgba.png")
    paths = [folder / n for n in names]
    if all(p.is_file() and p.stat().st_size > 0 for p in paths):
        return paths
    scene = _synthetic_scene(640, 480, seed=7)
    patched = scene.copy()
    y0, y1, x0, x1 = 260, 400, 360, 560
    region = Image.fromarray(patched[y0:y1, x0:x1]).resize((10, 7), Image.Resampling.BILINEAR)
    patched[y0:y1, x0:x1] = np.asarray(region.resize((x1 - x0, y1 - y0), Image.Resampling.BICUBIC))
    alpha = np.full(scene.shape[:2], 255, np.uint8)
    alpha[:40] = 128
    encoded = {
        "scene.jpg": _encode(Image.fromarray(scene), "JPEG", quality=90),
        "scene_patched.jpg": _encode(Image.fromarray(patched), "JPEG", quality=90),
        "scene_rgba.png": _encode(Image.fromarray(np.dstack([scene, alpha]), "RGBA"), "PNG"),
    }
    for path in paths:
        tmp = path.with_suffix(path.suffix + f".{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_bytes(encoded[path.name])
        os.replace(tmp, path)
    return paths


def _encode(img: Image.Image, fmt: str, **kwargs: Any) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kwargs)
    return buf.getvalue()
