"""Builders of every source: layouts, counts, labels, boxes, generators, splits, bad files, re-encoding, errors."""

from __future__ import annotations

import io
import json
from collections import Counter
from pathlib import Path

import datasets
import pytest
from PIL import Image

from hubdet._core.errors import ConfigError, DataLayoutError, UnknownNameError
from hubdet.data import list_sources, load_source
from hubdet.data.debias import ReencodeConfig, reencode, rescale_boxes
from hubdet.data.schema import features
from tests.plugins.images import make_image


def _load(name: str, root: Path, tmp_path: Path, **kw):
    return load_source(name, root, cache_dir=tmp_path / "cache", **kw)


def _labels(ds) -> Counter:
    return Counter(ds.features["label"].int2str(v) for v in ds["label"])


def _skipped(ds) -> dict[str, str]:
    return {Path(p).name: r for p, r in ds.report.skipped}


def test_list_sources_names_every_builder():
    assert set(list_sources()) >= {
        "cifake", "deepfakeart", "deepfake_and_real_images", "deepfake_faces", "inpaint_boxes", "ufd", "genimage",
        "folder",
    }


@pytest.mark.parametrize("name", list_sources())
def test_every_registered_source_describes_itself_and_refuses_an_empty_folder(name, tmp_path):
    from hubdet.data import get_source
    from hubdet.data.schema import ColumnMap

    cls = get_source(name)
    assert cls.SOURCE_NAME == name and cls.LAYOUT and isinstance(cls.HUB_COLUMNS, ColumnMap)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataLayoutError) as err:  # names the folder and what the source expects there
        load_source(name, empty, cache_dir=tmp_path / "cache")
    assert str(err.value).startswith(str(empty)) and (cls.LAYOUT in str(err.value) or "expected" in str(err.value))


def test_cifake_splits_labels_generators_and_bad_files(tmp_path, cifake_tree):
    root = cifake_tree(tmp_path / "cifake", n=3)
    ds = _load("cifake", root, tmp_path)
    assert set(ds) == {"train", "test"}
    assert _labels(ds["train"]) == {"real": 3, "fake": 3}
    assert _labels(ds["test"]) == {"real": 3, "fake": 3}
    train = ds["train"]
    gens = {(lab, g) for lab, g in zip(train["label"], train["generator"], strict=True)}
    assert gens == {(0, "natural"), (1, "stable-diffusion-v1.4")}
    assert set(train["source"]) == {"cifake"}
    assert set(train["orig_format"]) == {"JPEG"}
    assert all(80 <= q <= 95 for q in train["orig_jpeg_quality"])  # written at quality 90
    assert train.features == features()
    skipped = _skipped(train)
    assert set(skipped) == {"bad_truncated.jpg", "bad_empty.png", "bad_text.jpg"}
    assert "0 bytes" in skipped["bad_empty.png"]
    assert "not an image" in skipped["bad_text.jpg"]
    assert "truncated" in skipped["bad_truncated.jpg"]
    # the report is also written next to the cache, and read back on a cached load
    report_file = Path(ds["train"].report.path)
    assert json.loads(report_file.read_text())["bad_files"]["count"] == 3
    again = _load("cifake", root, tmp_path, split="train")
    assert isinstance(again, datasets.Dataset) and again.num_rows == 6
    assert len(again.report.skipped) == 3


def test_stored_image_keeps_original_bytes(tmp_path, cifake_tree):
    root = cifake_tree(tmp_path / "c", n=1, corrupt=False)
    ds = _load("cifake", root, tmp_path, split="test")
    raw = ds.cast_column("image", datasets.Image(decode=False))[0]
    assert raw["image"]["bytes"] == (root / raw["file"]).read_bytes()


def test_split_argument_selects_one_split_and_unknown_split_raises(tmp_path, cifake_tree):
    root = cifake_tree(tmp_path / "c", n=1, corrupt=False)
    test = _load("cifake", root, tmp_path, split="test")
    assert isinstance(test, datasets.Dataset) and test.num_rows == 2
    with pytest.raises(UnknownNameError, match="no split 'validation'"):
        _load("cifake", root, tmp_path, split="validation")


def test_deepfakeart_kaggle_records_give_pairs_with_masks_and_boxes(tmp_path, deepfakeart_tree):
    root = deepfakeart_tree(tmp_path / "dfa", n=3)
    ds = _load("deepfakeart", root, tmp_path)
    assert set(ds) == {"train"}
    train = ds["train"]
    assert _labels(train) == {"real": 3, "fake": 3}  # group.jpg previews are not examples
    for ex in train:
        if ex["label"] == 1:
            assert ex["generator"] == "stable-diffusion-2-inpainting"
            assert ex["boxes"] == [[0.0, 0.0, 24.0, 40.0]]
            assert ex["mask"].size == (48, 40) and ex["mask"].getbbox() == (0, 0, 24, 40)
            assert ex["file"].endswith("inpainting.png")
        else:
            assert ex["generator"] == "natural" and ex["boxes"] == [] and ex["mask"] is None


def test_deepfakeart_split_json_and_seed_layout(tmp_path, deepfakeart_tree, deepfakeart_seed_tree):
    root = deepfakeart_tree(tmp_path / "dfa", n=3, with_json=True)
    ds = _load("deepfakeart", root, tmp_path)
    assert {k: v.num_rows for k, v in ds.items()} == {"train": 4, "test": 2}
    inner = _load("deepfakeart", root / "similar", tmp_path)  # data_dir may point below the dataset root
    assert {k: v.num_rows for k, v in inner.items()} == {"train": 4, "test": 2}
    seed = _load("deepfakeart", deepfakeart_seed_tree(tmp_path / "seed", n=2), tmp_path)
    assert set(seed) == {"train", "test"}
    assert _labels(seed["test"]) == {"real": 2, "fake": 2}


def test_deepfake_and_real_images(tmp_path, deepfake_and_real_tree):
    ds = _load("deepfake_and_real_images", deepfake_and_real_tree(tmp_path / "k", n=2), tmp_path)
    assert set(ds) == {"train", "validation", "test"}
    assert all(_labels(v) == {"real": 2, "fake": 2} for v in ds.values())
    assert len(ds["train"].report.skipped) == 3


def test_deepfake_faces_metadata_bad_rows_and_default_split(tmp_path, deepfake_faces_tree):
    root = deepfake_faces_tree(tmp_path / "faces", n_real=6, n_fake=20)
    ds = _load("deepfake_faces", root, tmp_path)
    assert set(ds) == {"train", "validation", "test"}
    total = sum((_labels(v) for v in ds.values()), Counter())
    assert total == {"real": 6, "fake": 20}
    assert ds["train"].num_rows == 18  # 70 % of each class: round(4.2) + round(14)
    skipped = _skipped(ds["train"])
    assert "does not exist" in skipped["missing000.jpg"]
    assert "0 bytes" in skipped["empty000.jpg"]
    assert "not listed in metadata.csv" in skipped["orphan000.jpg"]
    assert set(ds["train"]["generator"]) <= {"natural", "dfdc"}


def test_deepfake_faces_balance_and_seeded_split_are_deterministic(tmp_path, deepfake_faces_tree):
    root = deepfake_faces_tree(tmp_path / "faces", n_real=6, n_fake=20, corrupt=False)

    def files(seed: int, cache: str) -> dict[str, list[str]]:
        ds = load_source("deepfake_faces", root, balance=True, seed=seed, cache_dir=tmp_path / cache)
        return {k: sorted(v["file"]) for k, v in ds.items()}

    a, b, c = files(0, "a"), files(0, "b"), files(1, "c")
    assert a == b  # same seed, fresh cache: same files in the same splits
    assert a != c
    counts = Counter()
    for names in a.values():
        counts.update("real" if Path(n).name.startswith("real") else "fake" for n in names)
    assert counts == {"real": 6, "fake": 6}
    all_files = [f for names in a.values() for f in names]
    assert len(all_files) == len(set(all_files)) == 12


def test_inpaint_boxes_csv_boxes_and_proportional_split(tmp_path, inpaint_boxes_tree):
    root = inpaint_boxes_tree(tmp_path / "ib", n=20)
    ds = _load("inpaint_boxes", root, tmp_path, seed=3)
    sizes = {k: v.num_rows for k, v in ds.items()}
    assert sum(sizes.values()) == 20 and sizes["train"] > sizes["test"] > 0 and sizes["validation"] > 0
    for split in ds.values():
        for ex in split:
            if ex["label"] == 1:
                assert ex["boxes"] == [[8.0, 16.0, 40.0, 48.0]] and ex["generator"] == "deepfill-v2"
            else:
                assert ex["boxes"] == [] and ex["generator"] == "natural"
    assert "0 bytes" in _skipped(ds["train"])["99999.jpg"]


def test_inpaint_boxes_split_column_wins(tmp_path, inpaint_boxes_tree):
    root = inpaint_boxes_tree(tmp_path / "ib", n=20, split_column=True, corrupt=False)
    ds = _load("inpaint_boxes", root, tmp_path)
    assert {k: v.num_rows for k, v in ds.items()} == {"train": 12, "validation": 4, "test": 4}


@pytest.mark.parametrize("with_split,with_classes", [(False, False), (True, True)])
def test_ufd_generators_and_splits(tmp_path, ufd_tree, with_split, with_classes):
    root = ufd_tree(tmp_path / "ufd", n=2, with_split=with_split, with_classes=with_classes)
    ds = _load("ufd", root, tmp_path)
    assert set(ds) == ({"train", "validation"} if with_split else {"train"})
    train = ds["train"]
    per_class = 2 if with_classes else 1
    fakes = Counter(g for g, lab in zip(train["generator"], train["label"], strict=True) if lab == 1)
    assert fakes == {"biggan": 2 * per_class, "ldm": 2 * per_class}
    reals = [f for f, lab in zip(train["file"], train["label"], strict=True) if lab == 0]
    assert len(reals) == 2 * 2 * per_class + 2 and any("laion/0_real" in f for f in reals)
    assert set(g for g, lab in zip(train["generator"], train["label"], strict=True) if lab == 0) == {"natural"}


def test_genimage_val_becomes_validation_and_generator_is_top_folder(tmp_path, genimage_tree):
    ds = _load("genimage", genimage_tree(tmp_path / "gi", n=2), tmp_path)
    assert set(ds) == {"train", "validation"}
    fakes = Counter(g for g, lab in zip(ds["train"]["generator"], ds["train"]["label"], strict=True) if lab == 1)
    assert fakes == {"Midjourney": 2, "stable_diffusion_v_1_4": 2}
    assert _labels(ds["validation"]) == {"real": 4, "fake": 4}
    assert len(ds["validation"].report.skipped) == 3


def test_folder_with_boxes_csv_masks_and_extra_columns(tmp_path, folder_tree):
    root = folder_tree(tmp_path / "f", n=3, csv_kind="boxes")
    train = _load("folder", root, tmp_path)["train"]
    assert _labels(train) == {"real": 3, "fake": 3}
    for ex in train:
        if ex["label"] == 1:
            assert ex["generator"] == "test-gen" and ex["boxes"] == [[4.0, 8.0, 20.0, 24.0]]
            assert ex["mask"].getbbox() == (4, 8, 20, 24)
        else:
            assert ex["generator"] == "natural" and ex["boxes"] == [] and ex["mask"] is None
    assert set(_skipped(train)) == {"bad_truncated.jpg", "bad_empty.png", "bad_text.jpg"}


def test_folder_without_csv_and_split_folders(tmp_path):
    for split in ("train", "val"):
        for cls in ("REAL", "1_fake"):
            make_image(tmp_path / "d" / split / cls / "a.png", (16, 16))
    (tmp_path / "d" / "train" / "REAL" / "notes.txt").write_text("hello")
    ds = _load("folder", tmp_path / "d", tmp_path)
    assert set(ds) == {"train", "validation"}
    assert _labels(ds["train"]) == {"real": 1, "fake": 1}
    assert set(ds["train"]["generator"]) == {"natural", "unknown"}
    assert "not an image file" in _skipped(ds["train"])["notes.txt"]


def test_reencode_makes_both_classes_identical_in_format_and_size(tmp_path, folder_tree):
    root = folder_tree(tmp_path / "f", n=2, csv_kind="boxes", corrupt=False)
    ds = _load("folder", root, tmp_path, reencode={"format": "JPEG", "quality": 75, "resize": (24, 16)})["train"]
    raw = ds.cast_column("image", datasets.Image(decode=False))
    fmts = {(Image.open(io.BytesIO(r["image"]["bytes"])).format, Image.open(io.BytesIO(r["image"]["bytes"])).size)
            for r in raw}
    assert fmts == {("JPEG", (24, 16))}
    assert set(ds["reencoded"]) == {"JPEG q75 24x16 bicubic"}
    assert set(ds["orig_format"]) == {"PNG"} and set(ds["orig_width"]) == {48}
    fake = next(ex for ex in ds if ex["label"] == 1)
    assert fake["boxes"] == [[2.0, 4.0, 10.0, 12.0]]  # halved with the image
    assert fake["mask"].size == (24, 16) and fake["mask"].getbbox() == (2, 4, 10, 12)


def test_reencode_helpers():
    cfg = ReencodeConfig(format="PNG", resize_shorter=8)
    img = Image.new("RGB", (32, 16), (10, 200, 30))
    out = reencode(img, cfg)
    assert out.format == "PNG" and out.size == (16, 8)
    assert rescale_boxes([[0, 0, 32, 16]], (32, 16), (16, 8)) == [[0.0, 0.0, 16.0, 8.0]]
    with pytest.raises(ConfigError):
        ReencodeConfig(resize=(8, 8), resize_shorter=8)
    with pytest.raises(ConfigError, match="did you mean 'quality'"):
        ReencodeConfig.from_dict({"qualty": 50})


def test_unknown_source_option_and_missing_dir_raise(tmp_path, cifake_tree):
    with pytest.raises(UnknownNameError, match="did you mean 'cifake'"):
        load_source("cifak", tmp_path)
    root = cifake_tree(tmp_path / "c", n=1, corrupt=False)
    with pytest.raises(ConfigError, match="balanse"):
        load_source("deepfake_faces", root, balanse=True)
    with pytest.raises(ConfigError, match="unknown key"):
        load_source("cifake", root, seed=1)
    with pytest.raises(ConfigError, match="expected true/false"):
        load_source("deepfake_faces", root, balance="yes")
    with pytest.raises(ConfigError, match="data_dir"):
        load_source("cifake")
    with pytest.raises(DataLayoutError, match="no such folder"):
        load_source("cifake", tmp_path / "absent")
    with pytest.raises(DataLayoutError, match="no images found"):
        load_source("genimage", root, cache_dir=tmp_path / "cache")


def test_changed_folder_is_prepared_again(tmp_path):
    make_image(tmp_path / "d" / "real" / "a.png", (16, 16))
    make_image(tmp_path / "d" / "fake" / "b.png", (16, 16))
    assert _load("folder", tmp_path / "d", tmp_path)["train"].num_rows == 2
    make_image(tmp_path / "d" / "fake" / "c.png", (16, 16))
    assert _load("folder", tmp_path / "d", tmp_path)["train"].num_rows == 3


def test_decompression_bomb_is_refused_and_reported(tmp_path, monkeypatch):
    import hubdet.data.imageio as imageio

    monkeypatch.setattr(imageio, "MAX_PIXELS", 100)
    make_image(tmp_path / "d" / "real" / "big.png", (20, 20))
    make_image(tmp_path / "d" / "fake" / "small.png", (8, 8))
    ds = _load("folder", tmp_path / "d", tmp_path)["train"]
    assert ds.num_rows == 1
    assert "decompression bomb" in _skipped(ds)["big.png"]


def test_streaming_local_source(tmp_path, cifake_tree):
    root = cifake_tree(tmp_path / "c", n=2)
    stream = load_source("cifake", root, split="test", streaming=True, cache_dir=tmp_path / "cache")
    assert isinstance(stream, datasets.IterableDataset)
    rows = list(stream)
    assert len(rows) == 4 and {r["label"] for r in rows} == {0, 1}


@pytest.mark.shared_data
def test_folder_reads_every_shared_set(shared_data, tmp_path):
    expected = {"genimage_sample": (55, 194), "inpaint_pairs": (32, 32), "faces": (125, 195), "gallery": (146, 221)}
    for name, (n_real, n_fake) in expected.items():
        ds = load_source("folder", shared_data / name, split="train", cache_dir=tmp_path / "cache")
        labels = Counter(ds["label"])
        assert (labels[0], labels[1]) == (n_real, n_fake), name
        assert not ds.report.skipped, (name, ds.report.skipped[:3])
        assert "unknown" not in set(ds["generator"]) or name == "inpaint_pairs"
        if name == "inpaint_pairs":
            boxes = [b for b, lab in zip(ds["boxes"], ds["label"], strict=True) if lab == 1]
            assert all(len(b) == 1 and b[0][2] > b[0][0] for b in boxes)
            assert ds.cast_column("mask", datasets.Image(decode=False))["mask"].count(None) == n_real


def test_reports_are_returned_per_call_even_across_threads(tmp_path, cifake_tree):
    """Each load gets its own report, whatever other threads load meanwhile; last_report() is deprecated, per thread."""
    from concurrent.futures import ThreadPoolExecutor

    import hubdet.data as hd

    roots = {n: cifake_tree(tmp_path / f"c{n}", n=n, corrupt=n == 2) for n in (1, 2)}

    def load(n: int):
        ds = load_source("cifake", roots[n], split="train", cache_dir=tmp_path / f"cache{n}")
        with pytest.warns(DeprecationWarning, match=r"\.report"):
            last = hd.last_report()
        return ds, last

    with ThreadPoolExecutor(2) as pool:
        (one, last1), (two, last2) = pool.map(load, (1, 2))
    assert last1 is one.report and last2 is two.report
    assert one.report.splits["train"] == {"real": 1, "fake": 1} and not one.report.skipped
    assert two.report.splits["train"] == {"real": 2, "fake": 2} and len(two.report.skipped) == 3
    with pytest.warns(DeprecationWarning):
        mine = hd.last_report()
    assert mine is not one.report and mine is not two.report  # the workers' loads are not this thread's


def test_code_on_the_example_path_is_part_of_the_cache_key(tmp_path, cifake_tree, monkeypatch):
    """Editing any module that shapes an example (here debias.py, re-encoding) prepares the data again."""
    from hubdet.data import example

    for loader in ("hubdet.data._builder", "hubdet.data.hub_sources"):
        modules = set(example.example_modules("hubdet.data.cifake", loader))
        assert {"hubdet.data.cifake", "hubdet.data.example", "hubdet.data.debias", "hubdet.data.imageio",
                "hubdet.data.schema", loader} <= modules
        assert not any(m.startswith(("hubdet.models", "hubdet.eval", "hubdet.app")) for m in modules)
    root = cifake_tree(tmp_path / "c", n=1, corrupt=False)
    first = _load("cifake", root, tmp_path, split="test").report.path
    assert _load("cifake", root, tmp_path, split="test").report.path == first  # unchanged: the cache serves it
    read = example._read_code
    monkeypatch.setattr(example, "_read_code",
                        lambda path: read(path) + (b"\n# edited" if path.name == "debias.py" else b""))
    edited = _load("cifake", root, tmp_path, split="test")
    assert edited.report.path != first and Path(edited.report.path).is_file()
    cls = __import__("hubdet.data", fromlist=["get_source"]).get_source("cifake")
    keys = {example.cache_key(cls, "hubdet.data._builder", options=o, reencode=r, data=d)
            for o, r, d in [({}, None, "a"), ({"x": 1}, None, "a"), ({}, ReencodeConfig(), "a"), ({}, None, "b")]}
    assert len(keys) == 4  # options, re-encoding and data each change the key
