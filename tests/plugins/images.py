"""Fixtures that generate small image trees and files (corrupt ones included).

Plain helpers (importable: ``from tests.plugins.images import make_image``):

- :func:`make_image` writes one small image (solid colour, gradient, noise or checker pattern) in any format;
- :func:`make_corrupt_files` writes a truncated JPEG, a zero-byte PNG and a text file named ``.jpg``
  into a folder and returns their paths.

Fixtures (each returns a factory ``f(root: Path, ...) -> Path`` writing a tree in a public layout):
``image_factory``, ``cifake_tree``, ``deepfakeart_tree``, ``deepfakeart_seed_tree``,
``deepfake_and_real_tree``, ``deepfake_faces_tree``, ``inpaint_boxes_tree``, ``ufd_tree``,
``genimage_tree``, ``folder_tree``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

Color = tuple[int, int, int]

_FORMATS = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".webp": "WEBP", ".bmp": "BMP", ".gif": "GIF",
            ".tif": "TIFF", ".tiff": "TIFF"}


def _pixels(size: tuple[int, int], color: Color | str, seed: int) -> np.ndarray:
    w, h = size
    if isinstance(color, tuple):
        return np.broadcast_to(np.array(color, dtype=np.uint8), (h, w, 3)).copy()
    rng = np.random.default_rng(seed)
    if color == "noise":
        return rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
    if color == "gradient":
        x = np.linspace(0, 255, w, dtype=np.float32)[None, :]
        y = np.linspace(0, 255, h, dtype=np.float32)[:, None]
        return np.stack([np.broadcast_to(x, (h, w)), np.broadcast_to(y, (h, w)),
                         np.full((h, w), (seed * 37) % 256, np.float32)], -1).astype(np.uint8)
    if color == "checker":
        yy, xx = np.mgrid[0:h, 0:w]
        board = (((xx // 4) + (yy // 4)) % 2 * 255).astype(np.uint8)
        return np.stack([board, 255 - board, np.full_like(board, (seed * 37) % 256)], -1)
    raise ValueError(f"unknown pattern {color!r}; use an (r, g, b) tuple, 'noise', 'gradient' or 'checker'")


def make_image(
    path: str | Path,
    size: tuple[int, int] = (32, 32),
    color: Color | str = "gradient",
    fmt: str | None = None,
    *,
    quality: int = 90,
    mode: str = "RGB",
    seed: int = 0,
) -> Path:
    """Write a small image to ``path`` (parents created) and return the path.

    ``size`` is (width, height); ``color`` is an RGB tuple or a pattern: ``"gradient"``, ``"noise"``,
    ``"checker"``; ``fmt`` defaults from the extension (JPEG, PNG, WEBP, BMP, GIF, TIFF); ``mode`` converts
    before saving (e.g. ``"L"``, ``"RGBA"``); ``seed`` varies noise and patterns.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = fmt or _FORMATS.get(path.suffix.lower(), "PNG")
    img = Image.fromarray(_pixels(size, color, seed), "RGB")
    if mode != "RGB":
        img = img.convert(mode)
    kwargs: dict[str, Any] = {"quality": quality} if fmt.upper() in ("JPEG", "WEBP") else {}
    img.save(path, format=fmt, **kwargs)
    return path


def make_mask(path: str | Path, size: tuple[int, int], box: Sequence[int]) -> Path:
    """Write an ``L`` PNG mask of ``size`` with the rectangle ``box`` (xmin, ymin, xmax, ymax) white."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.zeros((size[1], size[0]), np.uint8)
    x0, y0, x1, y1 = box
    arr[y0:y1, x0:x1] = 255
    Image.fromarray(arr, "L").save(path, format="PNG")
    return path


def make_corrupt_files(folder: str | Path, prefix: str = "bad") -> dict[str, Path]:
    """Write a truncated JPEG, a zero-byte PNG and a text file named ``.jpg``; return them by kind."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    Image.fromarray(_pixels((48, 48), "noise", 1), "RGB").save(buf, format="JPEG", quality=90)
    truncated = folder / f"{prefix}_truncated.jpg"
    truncated.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    empty = folder / f"{prefix}_empty.png"
    empty.write_bytes(b"")
    text = folder / f"{prefix}_text.jpg"
    text.write_text("this is not an image\n")
    return {"truncated": truncated, "empty": empty, "text": text}


def _write_csv(path: Path, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)
    return path


# --------------------------------------------------------------------------- layout factories


def write_cifake(root: Path, n: int = 3, *, corrupt: bool = True) -> Path:
    """``train/{REAL,FAKE}``, ``test/{REAL,FAKE}`` of 32x32 JPEGs; ``n`` per class and split (+3 bad in train/FAKE)."""
    for split in ("train", "test"):
        for cls, color in (("REAL", (200, 30, 30)), ("FAKE", (30, 30, 200))):
            for i in range(n):
                make_image(root / split / cls / f"{i:04d}.jpg", (32, 32), color if i % 2 else "gradient", seed=i)
    if corrupt:
        make_corrupt_files(root / "train" / "FAKE")
    return root


def write_deepfakeart(root: Path, n: int = 3, *, with_json: bool = False) -> Path:
    """Kaggle layout ``similar/inpainting/<id>/{original,inpainting,mask}.png`` (+ a ``group.jpg`` to ignore).

    The mask of record ``i`` covers the left half of the 48x40 image. With ``with_json`` the records are split
    between ``similar/train_similar.json`` (first n-1) and ``similar/test_similar.json`` (last one).
    """
    base = root / "similar" / "inpainting"
    for i in range(n):
        rec = base / str(10 + i)
        make_image(rec / "original.png", (48, 40), "gradient", seed=i)
        make_image(rec / "inpainting.png", (48, 40), "noise", seed=i)
        make_mask(rec / "mask.png", (48, 40), (0, 0, 24, 40))
        make_image(rec / "group.jpg", (100, 50), "checker")
    if with_json:
        import json

        def entries(ids: Sequence[int]) -> dict[str, Any]:
            return {"inpainting": {str(k): {"original": f"similar/inpainting/{10 + i}/original.png",
                                            "generated": f"similar/inpainting/{10 + i}/inpainting.png"}
                                   for k, i in enumerate(ids)}}

        (root / "similar" / "train_similar.json").write_text(json.dumps(entries(range(n - 1))))
        (root / "similar" / "test_similar.json").write_text(json.dumps(entries([n - 1])))
    return root


def write_deepfakeart_seed(root: Path, n: int = 2) -> Path:
    """Seed 000's arrangement: ``Train/{Real,Fake}``, ``Test/{Real,Fake}``."""
    for split in ("Train", "Test"):
        for cls in ("Real", "Fake"):
            for i in range(n):
                make_image(root / split / cls / f"{cls.lower()}_{i}.png", (40, 40), "gradient", seed=i)
    return root


def write_deepfake_and_real(root: Path, n: int = 2, *, corrupt: bool = True) -> Path:
    """Kaggle ``Dataset/{Train,Validation,Test}/{Fake,Real}`` of JPEGs (+ bad files in Train/Real)."""
    for split in ("Train", "Validation", "Test"):
        for cls in ("Fake", "Real"):
            for i in range(n):
                make_image(root / "Dataset" / split / cls / f"{cls.lower()}_{i}.jpg", (40, 40), "gradient", seed=i)
    if corrupt:
        make_corrupt_files(root / "Dataset" / "Train" / "Real")
    return root


def write_deepfake_faces(root: Path, n_real: int = 6, n_fake: int = 20, *, corrupt: bool = True) -> Path:
    """Kaggle ``faces_224/*.jpg`` + ``metadata.csv`` (videoname, original_width, original_height, label, original).

    With ``corrupt``: one listed video whose image is missing, one zero-byte image and one image not in the CSV.
    """
    rows = []
    for i in range(n_real):
        name = f"real{i:03d}"
        make_image(root / "faces_224" / f"{name}.jpg", (32, 32), "gradient", seed=i)
        rows.append([f"{name}.mp4", 1920, 1080, "REAL", ""])
    for i in range(n_fake):
        name = f"fake{i:03d}"
        make_image(root / "faces_224" / f"{name}.jpg", (32, 32), "noise", seed=i)
        rows.append([f"{name}.mp4", 1920, 1080, "FAKE", f"real{i % max(n_real, 1):03d}.mp4"])
    if corrupt:
        rows.append(["missing000.mp4", 1920, 1080, "FAKE", "real000.mp4"])
        (root / "faces_224" / "empty000.jpg").write_bytes(b"")
        rows.append(["empty000.mp4", 1920, 1080, "FAKE", "real000.mp4"])
        make_image(root / "faces_224" / "orphan000.jpg", (32, 32), "noise")
    _write_csv(root / "metadata.csv", ["videoname", "original_width", "original_height", "label", "original"], rows)
    return root


def write_inpaint_boxes(root: Path, n: int = 20, *, split_column: bool = False, corrupt: bool = True) -> Path:
    """Seed 001: ``images/<id>.jpg`` (64x64) + ``labels.csv`` (id, label, xmin, ymin, xmax, ymax).

    Odd ids are inpainted with box (8, 16, 40, 48); even ids are untouched (zeros). With ``split_column`` a
    ``split`` column assigns ids 0-11 to train, 12-15 to validation, 16-19 to test.
    """
    rows = []
    for i in range(n):
        make_image(root / "images" / f"{i:05d}.jpg", (64, 64), "gradient", seed=i)
        fake = i % 2 == 1
        row: list[Any] = [f"{i:05d}", int(fake), *((8, 16, 40, 48) if fake else (0, 0, 0, 0))]
        if split_column:
            row.append("train" if i < 12 else "val" if i < 16 else "test")
        rows.append(row)
    if corrupt:
        (root / "images" / "99999.jpg").write_bytes(b"")
        rows.append(["99999", 1, 8, 16, 40, 48] + (["train"] if split_column else []))
    header = ["id", "label", "xmin", "ymin", "xmax", "ymax"] + (["split"] if split_column else [])
    _write_csv(root / "labels.csv", header, rows)
    return root


def write_ufd(root: Path, n: int = 2, *, with_split: bool = False, with_classes: bool = False) -> Path:
    """UniversalFakeDetect/CNNDetection: ``[split/]<generator>/[<class>/]{0_real,1_fake}``.

    Generators ``biggan`` and ``ldm``, plus ``laion/0_real`` (reals only, as UFD ships); classes ``cat``, ``dog``.
    """
    splits = ["train", "val"] if with_split else [""]
    classes = ["cat", "dog"] if with_classes else [""]
    for split in splits:
        for gen in ("biggan", "ldm"):
            for cls in classes:
                for sub in ("0_real", "1_fake"):
                    for i in range(n):
                        parts = [p for p in (split, gen, cls, sub) if p]
                        make_image(root.joinpath(*parts, f"{i}.png"), (32, 32), "gradient", seed=i)
        for i in range(n):
            make_image(root.joinpath(*[p for p in (split, "laion", "0_real") if p], f"{i}.jpg"), (32, 32), seed=i)
    return root


def write_genimage(root: Path, n: int = 2, *, corrupt: bool = True) -> Path:
    """GenImage: ``<generator>/<subset>/{train,val}/{ai,nature}`` (the subset level is what GenImage ships)."""
    for gen, subset in (("Midjourney", "imagenet_midjourney"), ("stable_diffusion_v_1_4", "imagenet_ai_0419_sdv4")):
        for split in ("train", "val"):
            for cls in ("ai", "nature"):
                for i in range(n):
                    ext = ".png" if cls == "ai" else ".JPEG"
                    make_image(root / gen / subset / split / cls / f"{cls}_{i}{ext}", (32, 32), "gradient", seed=i)
    if corrupt:
        make_corrupt_files(root / "Midjourney" / "imagenet_midjourney" / "val" / "ai")
    return root


def write_folder(root: Path, n: int = 3, *, csv_kind: str | None = "boxes", corrupt: bool = True) -> Path:
    """``Real/``, ``fake/`` class folders (mixed case) with 48x32 PNGs, optional ``labels.csv``/``boxes.csv``.

    With ``csv_kind="boxes"``: ``boxes.csv`` (file, label, generator, xmin, ymin, xmax, ymax, mask, extra) where
    fake ``i`` has box (4, 8, 20, 24) and a mask under ``masks/``; reals have empty box cells.
    With ``csv_kind="labels"``: ``labels.csv`` (file, label, generator). Bad files go into ``fake/``.
    """
    rows = []
    for i in range(n):
        make_image(root / "Real" / f"r{i}.png", (48, 32), "gradient", seed=i)
        rows.append([f"Real/r{i}.png", "real", "natural", "", "", "", "", "", "x"])
        make_image(root / "fake" / f"f{i}.png", (48, 32), "noise", seed=i)
        make_mask(root / "masks" / f"f{i}.png", (48, 32), (4, 8, 20, 24))
        rows.append([f"fake/f{i}.png", "fake", "test-gen", 4, 8, 20, 24, f"masks/f{i}.png", "y"])
    if corrupt:
        make_corrupt_files(root / "fake")
    if csv_kind == "boxes":
        _write_csv(root / "boxes.csv", ["file", "label", "generator", "xmin", "ymin", "xmax", "ymax", "mask", "extra"],
                   rows)
    elif csv_kind == "labels":
        _write_csv(root / "labels.csv", ["file", "label", "generator"], [r[:3] for r in rows])
    return root


@pytest.fixture
def image_factory(tmp_path: Path) -> Callable[..., Path]:
    """``image_factory(name, size=(32, 32), color="gradient", fmt=None, **kw)`` writes under ``tmp_path``."""

    def make(name: str, size: tuple[int, int] = (32, 32), color: Color | str = "gradient", fmt: str | None = None,
             **kwargs: Any) -> Path:
        return make_image(tmp_path / name, size, color, fmt, **kwargs)

    return make


@pytest.fixture
def cifake_tree() -> Callable[..., Path]:
    return write_cifake


@pytest.fixture
def deepfakeart_tree() -> Callable[..., Path]:
    return write_deepfakeart


@pytest.fixture
def deepfakeart_seed_tree() -> Callable[..., Path]:
    return write_deepfakeart_seed


@pytest.fixture
def deepfake_and_real_tree() -> Callable[..., Path]:
    return write_deepfake_and_real


@pytest.fixture
def deepfake_faces_tree() -> Callable[..., Path]:
    return write_deepfake_faces


@pytest.fixture
def inpaint_boxes_tree() -> Callable[..., Path]:
    return write_inpaint_boxes


@pytest.fixture
def ufd_tree() -> Callable[..., Path]:
    return write_ufd


@pytest.fixture
def genimage_tree() -> Callable[..., Path]:
    return write_genimage


@pytest.fixture
def folder_tree() -> Callable[..., Path]:
    return write_folder
