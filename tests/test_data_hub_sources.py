"""Loading published copies (``repo_id=``) into the schema; a local parquet/imagefolder copy stands in for the Hub."""

from __future__ import annotations

import io
from collections import Counter
from pathlib import Path

import datasets
import pytest
from PIL import Image

from hubdet._core.errors import ConfigError, DataLayoutError
from hubdet.data import load_source
from hubdet.data.schema import features
from tests.plugins.images import make_corrupt_files, make_image


def _png(color: tuple[int, int, int], size: tuple[int, int] = (16, 12)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, color).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture
def cifake_imagefolder(tmp_path: Path) -> Path:
    """A CIFAKE copy as the Hub shows it: imagefolder ``train/{REAL,FAKE}``, label names FAKE/REAL."""
    root = tmp_path / "cifake_copy"
    for cls, color in (("REAL", (200, 0, 0)), ("FAKE", (0, 0, 200))):
        for i in range(3):
            make_image(root / "train" / cls / f"{cls.lower()}{i}.jpg", (32, 32), color)
    make_corrupt_files(root / "train" / "FAKE")
    return root


@pytest.fixture
def generic_parquet(tmp_path: Path) -> Path:
    """A parquet copy with unusual column names: img (Image), is_fake (bool), model (str), bbox (list)."""
    root = tmp_path / "generic_copy"
    (root / "data").mkdir(parents=True)
    feats = datasets.Features({
        "img": datasets.Image(),
        "is_fake": datasets.Value("bool"),
        "model": datasets.Value("string"),
        "bbox": datasets.List(datasets.Value("float32")),
    })
    rows = {
        "img": [{"bytes": _png((i * 40, 10, 10)), "path": f"im{i}.png"} for i in range(4)]
        + [{"bytes": b"not an image", "path": "broken.png"}],
        "is_fake": [False, True, False, True, True],
        "model": ["", "sd-xl", "", "sd-xl", "sd-xl"],
        "bbox": [[], [2, 2, 8, 6], [], [0, 0, 16, 12], [1, 1, 2, 2]],
    }
    datasets.Dataset.from_dict(rows, features=feats).to_parquet(str(root / "data" / "train-00000-of-00001.parquet"))
    return root


def test_cifake_copy_maps_class_names_not_indices(cifake_imagefolder, tmp_path):
    ds = load_source("cifake", repo_id=str(cifake_imagefolder), split="train", cache_dir=tmp_path / "cache")
    assert isinstance(ds, datasets.Dataset)
    assert ds.features == features()
    by_file = {f: (lab, g) for f, lab, g in zip(ds["file"], ds["label"], ds["generator"], strict=True)}
    assert by_file["real0.jpg"] == (0, "natural")  # imagefolder's REAL is index 1, ours is 0
    assert by_file["fake0.jpg"] == (1, "stable-diffusion-v1.4")
    assert Counter(ds["label"]) == {0: 3, 1: 3}
    assert set(ds["source"]) == {"cifake"} and set(ds["orig_format"]) == {"JPEG"}
    reasons = {p.split(" ")[-1]: r for p, r in ds.report.skipped}
    assert set(reasons) == {"bad_truncated.jpg", "bad_empty.png", "bad_text.jpg"}
    assert "0 bytes" in reasons["bad_empty.png"]


def test_cached_copy_still_reports_bad_rows(cifake_imagefolder, tmp_path):
    cache = tmp_path / "cache"
    first = load_source("cifake", repo_id=str(cifake_imagefolder), split="train", cache_dir=cache)
    second = load_source("cifake", repo_id=str(cifake_imagefolder), split="train", cache_dir=cache)
    assert second.num_rows == first.num_rows == 6
    assert sorted(second.report.skipped) == sorted(first.report.skipped) and len(second.report.skipped) == 3


def test_generic_fallback_finds_columns_boxes_and_generator(generic_parquet, tmp_path):
    dd = load_source("folder", repo_id=str(generic_parquet), cache_dir=tmp_path / "cache")
    assert isinstance(dd, datasets.DatasetDict) and set(dd) == {"train"}
    ds = dd["train"]
    assert ds.num_rows == 4
    assert ds["label"] == [0, 1, 0, 1]
    assert ds["generator"] == ["natural", "sd-xl", "natural", "sd-xl"]
    assert ds["boxes"] == [[], [[2.0, 2.0, 8.0, 6.0]], [], [[0.0, 0.0, 16.0, 12.0]]]
    assert [r for _, r in ds.report.skipped] == ["not an image file (format not recognised)"]


def test_streaming_copy_with_reencoding(generic_parquet, tmp_path):
    stream = load_source("folder", repo_id=str(generic_parquet), split="train", streaming=True,
                         reencode={"format": "JPEG", "quality": 80, "resize": (8, 6)}, cache_dir=tmp_path / "cache")
    assert isinstance(stream, datasets.IterableDataset)
    rows = list(stream)
    assert len(rows) == 4
    assert {(r["image"].format, r["image"].size) for r in rows} == {("JPEG", (8, 6))}
    assert {r["orig_format"] for r in rows} == {"PNG"} and {r["reencoded"] for r in rows} == {"JPEG q80 8x6 bicubic"}
    assert rows[1]["boxes"] == [[1.0, 1.0, 4.0, 3.0]]
    assert len(stream.report.skipped) == 1  # filled while streaming


def test_label_map_option_and_strict_options(generic_parquet, tmp_path):
    ds = load_source("folder", repo_id=str(generic_parquet), split="train", cache_dir=tmp_path / "cache",
                     label_map={"False": "fake", "True": "real"})
    assert ds["label"] == [1, 0, 1, 0]
    with pytest.raises(ConfigError, match="did you mean 'label_column'"):
        load_source("folder", repo_id=str(generic_parquet), label_colum="x")
    with pytest.raises(DataLayoutError, match="label column 'nope' not found"):
        load_source("folder", repo_id=str(generic_parquet), label_column="nope", cache_dir=tmp_path / "cache")
    with pytest.raises(ConfigError, match="not both"):
        load_source("folder", tmp_path, repo_id=str(generic_parquet))


def test_hub_copy_cache_key_covers_the_example_path(cifake_imagefolder, tmp_path, monkeypatch):
    """A change to re-encoding code (debias.py) maps a cached Hub copy again instead of serving stale examples."""
    from hubdet.data import example

    def load():
        return load_source("cifake", repo_id=str(cifake_imagefolder), split="train", cache_dir=tmp_path / "cache",
                           reencode={"format": "JPEG", "quality": 70})

    first = load().report.path
    assert load().report.path == first
    read = example._read_code
    monkeypatch.setattr(example, "_read_code",
                        lambda path: read(path) + (b"\n# edited" if path.name == "debias.py" else b""))
    assert load().report.path != first


def test_local_and_hub_copies_of_the_same_files_give_the_same_examples(folder_tree, tmp_path):
    """One make_example: a folder and a parquet copy of it (image, label, generator, mask) agree field by field."""
    root = folder_tree(tmp_path / "f", n=2, csv_kind="boxes", corrupt=False)
    reencode = {"format": "JPEG", "quality": 80, "resize": (24, 16)}
    local = load_source("folder", root, split="train", reencode=reencode, cache_dir=tmp_path / "cache")
    rows = {"image": [], "label": [], "generator": [], "mask": []}
    for ex in local:
        rows["image"].append({"bytes": (root / ex["file"]).read_bytes(), "path": Path(ex["file"]).name})
        rows["label"].append("fake" if ex["label"] else "real")
        rows["generator"].append(ex["generator"])
        mask = root / "masks" / Path(ex["file"]).name
        rows["mask"].append({"bytes": mask.read_bytes(), "path": mask.name} if ex["label"] else None)
    copy = tmp_path / "copy" / "data"
    copy.mkdir(parents=True)
    feats = datasets.Features({"image": datasets.Image(), "label": datasets.Value("string"),
                               "generator": datasets.Value("string"), "mask": datasets.Image()})
    datasets.Dataset.from_dict(rows, features=feats).to_parquet(str(copy / "train-00000-of-00001.parquet"))
    hub = load_source("folder", repo_id=str(copy.parent), split="train", reencode=reencode,
                      cache_dir=tmp_path / "cache")
    assert hub.features == local.features

    def by_name(ds):
        return {Path(ex["file"]).name: ex for ex in ds}

    a, b = by_name(local), by_name(hub)
    assert set(a) == set(b) and len(a) == 4
    for name, ex in a.items():
        other = b[name]
        for key in ("label", "boxes", "generator", "orig_format", "orig_width", "orig_height", "reencoded"):
            assert ex[key] == other[key], (name, key)
        assert ex["image"].tobytes() == other["image"].tobytes()
        assert (ex["mask"] is None) == (other["mask"] is None)
        if ex["mask"] is not None:
            assert ex["mask"].tobytes() == other["mask"].tobytes() and ex["mask"].size == (24, 16)
