"""The inpainting benchmark maker (hubdet.data.synth) and its backends (hubdet.data.inpainters)."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hubdet._core.errors import ConfigError, DuplicateNameError, UnknownNameError
from hubdet.data.imageio import open_image
from hubdet.data.inpainters import (
    INPAINTERS,
    Inpainter,
    InpainterUnavailableError,
    create_inpainter,
    list_inpainters,
    register_inpainter,
)
from hubdet.data.synth import make_inpainting_benchmark, mask_box, random_mask
from tests.plugins.images import make_corrupt_files, make_image

SIZES = [(40, 32), (32, 40), (48, 48), (36, 30), (44, 34), (32, 32)]


@pytest.fixture
def photos(tmp_path: Path) -> Path:
    """Six small textured photos of several sizes and formats, one in a sub-folder."""
    root = tmp_path / "photos"
    for i, size in enumerate(SIZES):
        pattern = "checker" if i % 2 else "gradient"
        name = f"sub/p{i}.jpg" if i == 5 else f"p{i}.png"
        make_image(root / name, size, pattern, seed=i)
    return root


def _rows(out: Path) -> list[dict[str, str]]:
    with open(out / "boxes.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def _arr(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.int16)


def _tree(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


# ------------------------------------------------------------------------------------------------ backends


def _scene(size: int = 32) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A smooth image, the same image with a corrupted block, and the block's mask."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    clean = np.stack([xx * 255 / size, yy * 255 / size, np.full_like(xx, 128)], -1).astype(np.uint8)
    mask = np.zeros((size, size), bool)
    mask[10:18, 12:22] = True
    corrupt = clean.copy()
    corrupt[mask] = (255, 0, 255)
    return clean, corrupt, mask


@pytest.mark.parametrize("name", list_inpainters())
def test_each_backend_fills_only_the_mask(name):
    """Every registered backend fills the masked block towards its surroundings and keeps the rest."""
    try:
        inpainter = create_inpainter(name)
    except InpainterUnavailableError as exc:
        pytest.skip(f"{name} cannot run here: {exc}")
    clean, corrupt, mask = _scene()
    out = inpainter.inpaint(corrupt, mask)
    assert out.shape == corrupt.shape and out.dtype == np.uint8
    assert np.array_equal(out[~mask], corrupt[~mask])
    error_before = np.abs(corrupt[mask].astype(int) - clean[mask]).mean()
    error_after = np.abs(out[mask].astype(int) - clean[mask]).mean()
    # a backend that got the mask semantics backwards (xphoto marks VALID pixels) would leave the block as is
    assert error_after < 0.5 * error_before, (name, error_before, error_after)
    assert np.array_equal(out, inpainter.inpaint(corrupt, mask))  # deterministic
    assert isinstance(inpainter.generator, str) and inpainter.generator


def test_backend_input_checks_and_registry():
    telea = create_inpainter("telea")
    clean, _, mask = _scene()
    with pytest.raises(ValueError, match="uint8 HxWx3"):
        telea.inpaint(clean.astype(np.float32), mask)
    with pytest.raises(ValueError, match="does not match"):
        telea.inpaint(clean, mask[:-1])
    with pytest.raises(ValueError, match="whole image"):
        telea.inpaint(clean, np.ones_like(mask))
    assert np.array_equal(telea.inpaint(clean, np.zeros_like(mask)), clean)
    assert create_inpainter("FSR_FAST").generator == "opencv-xphoto-fsr-fast"  # spelling normalised
    with pytest.raises(UnknownNameError, match="telea"):
        create_inpainter("teela")
    with pytest.raises(DuplicateNameError):
        register_inpainter("telea", lambda: None)
    with pytest.raises(ValueError, match="bad options"):
        create_inpainter("telea", radius=3, colour="red")


def test_patchmatch_needs_no_build_at_first_use():
    """pypatchmatch ships its native library in the wheel; importing it must not compile anything."""
    patchmatch = pytest.importorskip("patchmatch")
    lib = Path(patchmatch.__file__).parent / "libpatchmatch.so"
    if not patchmatch.patchmatch_available:
        pytest.skip(f"pypatchmatch's native library did not load ({lib} exists: {lib.exists()})")
    assert lib.is_file()


# --------------------------------------------------------------------------------------------------- masks


@pytest.mark.parametrize("kind", ["rect", "brush", "mixed"])
def test_random_masks_respect_the_bounds(kind):
    width, height, lo, hi = 60, 40, 0.2, 0.5
    for seed in range(40):
        mask = random_mask(np.random.default_rng(seed), width, height, kind=kind, min_frac=lo, max_frac=hi)
        assert mask.shape == (height, width) and mask.dtype == bool and mask.any()
        x0, y0, x1, y1 = mask_box(mask)
        assert x1 - x0 <= round(hi * width) and y1 - y0 <= round(hi * height)
        if kind == "rect":
            assert mask.sum() == (x1 - x0) * (y1 - y0)
            assert x1 - x0 >= round(lo * width) and y1 - y0 >= round(lo * height)
    assert mask_box(np.zeros((3, 3), bool)) is None


# ---------------------------------------------------------------------------------------------- benchmark


def test_same_seed_same_bytes_whatever_the_workers(photos, tmp_path):
    kw = dict(backend="telea", seed=3, mask_kind="mixed", progress=False)
    a = make_inpainting_benchmark(photos, tmp_path / "a", **kw)
    make_inpainting_benchmark(photos, tmp_path / "b", workers=2, **kw)
    make_inpainting_benchmark(photos, tmp_path / "c", **{**kw, "seed": 4})
    tree_a, tree_b, tree_c = _tree(tmp_path / "a"), _tree(tmp_path / "b"), _tree(tmp_path / "c")
    assert tree_a == tree_b
    assert tree_a != tree_c
    assert (a.n_real, a.n_fake, a.n_photos) == (3, 3, 6)
    assert a.images_per_second > 0 and not a.bad_files


def test_ground_truth_is_the_mask_and_only_masked_pixels_change(photos, tmp_path):
    out = tmp_path / "out"
    report = make_inpainting_benchmark(photos, out, backend="ns", fraction=0.5, mask_kind="brush", seed=1,
                                       progress=False)
    rows = _rows(out)
    assert len(rows) == report.n_images == 6
    assert {r["label"] for r in rows} == {"real", "fake"}
    for row in rows:
        image = _arr(out / row["file"])
        source = _arr(photos / row["original"])
        assert image.shape[:2] == (int(row["height"]), int(row["width"])) == source.shape[:2]
        if row["label"] == "real":
            assert row["file"].startswith("Real/") and row["generator"] == "natural"
            assert row["mask"] == row["xmin"] == row["xmax"] == ""
            assert np.array_equal(image, source)  # PNG, no resize: untouched means identical
            continue
        assert row["file"].startswith("Fake/") and row["generator"] == "opencv-ns"
        mask = np.asarray(Image.open(out / row["mask"])) > 0
        assert mask.shape == image.shape[:2] and mask.any()
        assert mask_box(mask) == tuple(int(row[k]) for k in ("xmin", "ymin", "xmax", "ymax"))
        changed = (image != source).any(-1)
        assert not changed[~mask].any()
        assert changed[mask].any()


def test_resize_crops_and_jpeg_treat_both_classes_alike(photos, tmp_path):
    """Same size, codec and quality for both classes; after resizing, differences stay inside the mask."""
    kw = dict(backend="telea", seed=7, size="20x16", crops_per_image=2, crop_size=24, progress=False)
    fakes = make_inpainting_benchmark(photos, tmp_path / "fakes", fraction=1.0, **kw)
    reals = make_inpainting_benchmark(photos, tmp_path / "reals", fraction=0.0, **kw)
    assert (fakes.n_fake, fakes.n_real, reals.n_real) == (12, 0, 12)
    fake_rows, real_rows = _rows(tmp_path / "fakes"), _rows(tmp_path / "reals")
    for f, r in zip(fake_rows, real_rows, strict=True):
        assert f["original"] == r["original"] and "#crop=" in f["original"]  # same random crop in both runs
        a, b = _arr(tmp_path / "fakes" / f["file"]), _arr(tmp_path / "reals" / r["file"])
        mask = np.asarray(Image.open(tmp_path / "fakes" / f["mask"])) > 0
        assert a.shape == b.shape == mask.shape + (3,) == (16, 20, 3)
        assert not (a != b).any(-1)[~mask].any()
        assert mask_box(mask) == tuple(int(f[k]) for k in ("xmin", "ymin", "xmax", "ymax"))

    mixed = make_inpainting_benchmark(photos, tmp_path / "jpeg", format="jpeg", quality=80, size=24,
                                      backend="fsr-fast", progress=False)
    assert mixed.n_real and mixed.n_fake
    infos = {}
    for row in _rows(tmp_path / "jpeg"):
        _, info = open_image(tmp_path / "jpeg" / row["file"])
        infos.setdefault(row["label"], set()).add((info.format, info.width, info.height, info.jpeg_quality))
        assert row["file"].endswith(".jpg")
    assert infos["real"] == infos["fake"] == {("JPEG", 24, 24, 80)}


def test_bad_photos_are_reported_not_fatal(photos, tmp_path):
    bad = make_corrupt_files(photos / "broken")
    make_image(photos / "tiny.png", (4, 4), "gradient")
    (photos / "notes.txt").write_text("not a photo; ignored by extension")
    out = tmp_path / "out"
    report = make_inpainting_benchmark(photos, out, progress=False)
    reasons = dict(report.bad_files.skipped)
    assert set(reasons) == {str(p) for p in bad.values()} | {str(photos / "tiny.png")}
    assert "empty" in reasons[str(bad["empty"])] and "too small" in reasons[str(photos / "tiny.png")]
    assert report.n_images == 6 and report.n_photos == 10
    manifest = json.loads((out / "synth.json").read_text())
    assert len(manifest["bad_files"]) == 4 and manifest["counts"]["photos"] == 10
    assert "4 file(s) skipped" in report.summary()


def test_settings_are_checked_and_outputs_protected(photos, tmp_path):
    with pytest.raises(ConfigError, match="min_frac"):
        make_inpainting_benchmark(photos, tmp_path / "x", min_frac=0.6, max_frac=0.5)
    with pytest.raises(ConfigError, match="size"):
        make_inpainting_benchmark(photos, tmp_path / "x", size="12xq")
    with pytest.raises(UnknownNameError):
        make_inpainting_benchmark(photos, tmp_path / "x", backend="deepfill")
    with pytest.raises(FileNotFoundError):
        make_inpainting_benchmark(tmp_path / "missing", tmp_path / "x")
    out = tmp_path / "out"
    make_inpainting_benchmark(photos, out, progress=False)
    with pytest.raises(FileExistsError, match="overwrite"):
        make_inpainting_benchmark(photos, out, progress=False)
    before = _tree(out)
    make_inpainting_benchmark(photos, out, overwrite=True, progress=False)
    assert _tree(out) == before


def test_learned_backends_plug_in_by_registration(photos, tmp_path):
    class MeanFill(Inpainter):
        """Stands in for a learned inpainter: fills the hole with the mean colour of the rest."""

        name = generator = "mean-fill"

        def __init__(self, weights: str) -> None:
            super().__init__()
            self.weights = Path(weights)
            if not self.weights.is_file():
                raise FileNotFoundError(weights)

        def _fill(self, image, mask):
            out = image.copy()
            out[mask] = image[~mask].mean(0).astype(np.uint8)
            return out

    weights = tmp_path / "weights.pt"
    weights.write_bytes(b"fake")
    register_inpainter("mean-fill", MeanFill)
    try:
        report = make_inpainting_benchmark(photos, tmp_path / "out", backend="mean-fill",
                                           backend_options={"weights": str(weights)}, progress=False)
        assert report.generator == "mean-fill"
        assert {r["generator"] for r in _rows(tmp_path / "out") if r["label"] == "fake"} == {"mean-fill"}
    finally:
        INPAINTERS._items.pop("mean-fill", None)


def test_folder_builder_reads_the_benchmark(photos, tmp_path):
    data = pytest.importorskip("hubdet.data")
    if not hasattr(data, "load_source"):
        pytest.skip("hubdet.data.load_source is not written yet")
    out = tmp_path / "out"
    make_inpainting_benchmark(photos, out, backend="telea", mask_kind="mixed", seed=2, progress=False)
    ds = data.load_source("folder", out, split="train", cache_dir=str(tmp_path / "cache"))
    by_file = {r["file"]: r for r in _rows(out)}
    assert len(ds) == len(by_file) == 6
    for ex in ds:
        row = by_file[ex["file"]]
        assert ds.features["label"].int2str(ex["label"]) == row["label"]
        assert ex["generator"] == row["generator"]
        if row["label"] == "fake":
            assert ex["boxes"] == [[float(row[k]) for k in ("xmin", "ymin", "xmax", "ymax")]]
            assert ex["mask"] is not None and ex["mask"].size == ex["image"].size
        else:
            assert ex["boxes"] == []


def test_synth_command(photos, tmp_path, capsys):
    from hubdet.cli import main

    out = tmp_path / "out"
    status = main(["synth", "--input-dir", str(photos), "--output-dir", str(out), "--backend", "fsr_fast",
                   "--seed", "5", "--fraction", "1", "--mask", "rect", "--size", "24", "--format", "jpeg",
                   "--quality", "85", "--no-progress"])
    assert status == 0
    assert "6 inpainted (opencv-xphoto-fsr-fast)" in capsys.readouterr().out
    assert len(list((out / "Fake").glob("*.jpg"))) == 6
    assert main(["synth", "--input-dir", str(photos), "--output-dir", str(out)]) == 2  # not empty: clear error
    assert "overwrite" in capsys.readouterr().err


def test_synth_help_is_fast_and_light():
    """``hubdet synth --help`` answers, and the data commands import neither torch nor datasets."""
    proc = subprocess.run([sys.executable, "-m", "hubdet.cli", "synth", "--help"], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0 and "--crops-per-image" in proc.stdout and "--backend" in proc.stdout
    code = ("import argparse, sys; import hubdet.data.commands as c; "
            "c.add_commands(argparse.ArgumentParser().add_subparsers()); "
            "print(sorted(m for m in ('torch', 'datasets', 'cv2', 'numpy') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "[]", proc.stdout + proc.stderr


# ------------------------------------------------------------------------------------------------ exemplar


def _texture(h: int, w: int, seed: int) -> np.ndarray:
    """A smooth random colour texture (blurred noise): every block differs, neighbours are correlated."""
    import cv2

    noise = np.random.default_rng(seed).normal(0, 1, (h, w, 3)).astype(np.float32)
    smooth = cv2.GaussianBlur(noise, (0, 0), 1.5)
    return np.clip(128 + smooth / smooth.std() * 40, 0, 255).astype(np.uint8)


def test_exemplar_copies_known_pixels_exactly():
    """Criminisi-style fill: known pixels unchanged, the hole fully filled, every filled colour copied."""
    image = _texture(96, 128, seed=0)
    mask = np.zeros(image.shape[:2], bool)
    mask[30:62, 40:90] = True
    mask[70:80, 5:20] = True  # a second hole, near the border
    corrupt = image.copy()
    corrupt[mask] = (255, 0, 255)
    out = create_inpainter("exemplar").inpaint(corrupt, mask)
    assert np.array_equal(out[~mask], image[~mask])
    known = {tuple(v) for v in image[~mask].reshape(-1, 3)}
    assert all(tuple(v) in known for v in out[mask].reshape(-1, 3))
    assert not np.any(np.all(out[mask] == (255, 0, 255), axis=-1))  # no hole pixel left
    assert np.array_equal(out, create_inpainter("exemplar", seed=3).inpaint(corrupt, mask))  # deterministic
    with pytest.raises(ValueError, match="odd"):
        create_inpainter("exemplar", patch_size=8)


def test_synth_command_with_exemplar_backend(photos, tmp_path):
    from hubdet.cli import main

    out = tmp_path / "out"
    assert main(["synth", "--input-dir", str(photos), "--output-dir", str(out), "--backend", "exemplar",
                 "--seed", "1", "--fraction", "0.5", "--no-progress"]) == 0
    rows = _rows(out)
    assert {r["generator"] for r in rows if r["label"] == "fake"} == {"exemplar-criminisi"}
    data = pytest.importorskip("hubdet.data")
    ds = data.load_source("folder", out, split="train", cache_dir=str(tmp_path / "cache"))
    assert len(ds) == len(rows) == 6
    assert sum(len(ex["boxes"]) for ex in ds) == sum(r["label"] == "fake" for r in rows) == 3
