"""The mask family: a per-pixel map at native resolution, with the image score and the regions derived from it."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import hubdet
from hubdet import training
from hubdet._core.errors import CheckpointError
from hubdet.models import create_detector
from hubdet.models.integrity import IntegrityError
from hubdet.models.mask import ImageTooLargeError, image_logit, map_regions, sample_crop, tile_origins
from tests.plugins.images import make_image

TINY = "mask_tiny.test"


def _photo(w: int, h: int, seed: int = 0, mode: str = "RGB") -> Image.Image:
    rng = np.random.default_rng(seed)
    img = Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
    return img.convert(mode) if mode != "RGB" else img


def test_map_regions_one_box_per_connected_region() -> None:
    prob = np.zeros((100, 200), np.float32)
    prob[10:30, 20:60] = 0.9
    prob[50:90, 120:190] = 0.7
    prob[0:2, 198:200] = 0.99  # 4 pixels: below min_area
    regions = map_regions(prob, min_area=0.001)
    assert [r["box"] for r in regions] == [[20.0, 10.0, 60.0, 30.0], [120.0, 50.0, 190.0, 90.0]]
    assert regions[0]["score"] == pytest.approx(0.9) and regions[1]["area_fraction"] == pytest.approx(0.14)
    assert map_regions(np.zeros((5, 5), np.float32)) == []
    # the tiny region is still reported when it is all there is and the image is called fake
    only = np.zeros((100, 100), np.float32)
    only[0:2, 0:2] = 0.8
    assert map_regions(only, min_area=0.01) == [] and len(map_regions(only, min_area=0.01, keep_one=True)) == 1


def test_image_logit_is_a_top_fraction_mean_and_tiles_cover_the_image() -> None:
    logits = torch.arange(100, dtype=torch.float32).view(1, 10, 10)
    assert float(image_logit(logits, 0.05)[0]) == pytest.approx(97.0)  # mean of 95..99
    for length, tile, overlap in ((1024, 512, 64), (768, 512, 64), (300, 512, 64), (1000, 64, 8)):
        starts = tile_origins(length, tile, overlap)
        covered = np.zeros(max(length, tile), bool)
        for s in starts:
            covered[s : s + tile] = True
        assert covered[:length].all() and starts[-1] + tile >= length and starts[0] == 0
        assert all(b - a <= tile - overlap for a, b in zip(starts, starts[1:], strict=False))


def test_image_logit_of_a_large_map_is_the_same_as_torch_topk() -> None:
    """Maps over 2**20 pixels take numpy's partition (torch's CPU topk needs ~15 bytes per pixel): the same value."""
    torch.manual_seed(0)
    maps = torch.randn(2, 1100, 1000)  # 1.1 MP each: the numpy path
    for fraction in (0.0005, 0.01, 1e-9):
        k = max(1, int(np.ceil(fraction * 1100 * 1000)))
        expected = maps.flatten(1).topk(k, dim=1).values.mean(1)
        assert torch.equal(image_logit(maps, fraction), expected)
    grad = maps[:1].clone().requires_grad_(True)  # training keeps torch (and its gradient)
    image_logit(grad, 0.001).sum().backward()
    assert grad.grad is not None and int((grad.grad != 0).sum()) == 1100


def test_block_grid_spreads_over_pixels_like_repeat() -> None:
    from hubdet.models.copymove import _to_pixels

    rng = np.random.default_rng(0)
    for gy, gx, stride, h, w in ((10, 12, 3, 31, 37), (10, 12, 3, 25, 30), (5, 5, 1, 5, 5), (7, 9, 4, 40, 20)):
        grid = rng.random((gy, gx)).astype(np.float32)
        up = np.repeat(np.repeat(grid, stride, axis=0), stride, axis=1)[:h, :w]
        expected = np.zeros((h, w), np.float32)
        expected[: up.shape[0], : up.shape[1]] = up
        assert np.array_equal(_to_pixels(grid, stride, h, w), expected)


@pytest.mark.parametrize("size", [(150, 100), (40, 32), (64, 64), (300, 210)])
def test_map_is_at_native_resolution_and_everything_derives_from_it(size: tuple[int, int]) -> None:
    det = create_detector(TINY).eval()
    with torch.no_grad():  # a map with one confident blob: bias the head so some pixels pass 0.5
        det.decoder.head[1].bias.fill_(0.0)
    img = _photo(*size)
    (pred,) = det.predict([img])
    assert pred.mask.shape == (size[1], size[0]) and pred.mask.dtype == np.float32
    assert 0.0 <= pred.mask.min() and pred.mask.max() <= 1.0
    (logit_map, _), = det.predict_maps([img])
    expected = float(image_logit(torch.from_numpy(logit_map)[None], det.args.topk_fraction)[0])
    assert pred.logit == pytest.approx(expected, abs=1e-5)
    if pred.prob >= 0.5:  # a fake verdict always comes with a region, and the box is the best region's
        assert pred.regions and pred.box == pred.regions[0]["box"]
    if pred.regions:
        x0, y0, x1, y1 = pred.regions[0]["box"]
        assert 0 <= x0 < x1 <= size[0] and 0 <= y0 < y1 <= size[1]
        assert pred.mask[int(y0):int(y1), int(x0):int(x1)].max() >= 0.5
    assert pred.extra["flagged_fraction"] == pytest.approx(float((pred.mask >= 0.5).mean()))
    d = pred.to_dict()
    assert "regions" in d and "mask" not in d and pred.mask_png().startswith(b"\x89PNG")


def test_images_under_half_a_tile_or_too_elongated_for_the_budget_cannot_be_judged() -> None:
    det = create_detector(TINY, max_tiles=4).eval()  # 64x64 tiles: at least 32 pixels per side
    policy = det.input_policy()
    assert (policy.min_width, policy.min_height) == (32, 32) and "half a tile" in policy.basis
    small, tiny, strip, ok = det.predict([_photo(31, 40), _photo(1, 1), _photo(600, 32), _photo(32, 32)])
    for pred in (small, tiny):
        assert pred.verdict == "cannot_judge" and pred.prob is None and pred.mask is None
        assert pred.reason.startswith("too small") and "half a tile" in pred.reason
    assert strip.verdict == "cannot_judge" and "shrink it" in strip.reason  # 4 tiles: under half a tile high
    assert ok.judged and ok.mask.shape == (32, 32)
    assert create_detector("mask_efficientnet_lite0.in1k").input_policy().min_width == 256


def test_alpha_and_palette_images_and_the_tile_budget() -> None:
    det = create_detector(TINY, max_tiles=4).eval()
    rgba = _photo(90, 70, mode="RGBA")
    pal = _photo(90, 70, seed=1).convert("P")
    for pred in det.predict([rgba, pal]):
        assert pred.mask.shape == (70, 90)
    big = _photo(400, 300, seed=2)
    (pred,) = det.predict([big])
    assert pred.mask.shape == (300, 400) and "exceed this detector's budget of 4" in pred.extra["note"]
    strict = create_detector(TINY, max_tiles=4, on_too_large="error").eval()
    with pytest.raises(ImageTooLargeError, match="budget of 4"):
        strict.predict([big])


def test_training_crops_follow_the_mask_and_pad_small_images() -> None:
    rng = np.random.default_rng(0)
    img = np.zeros((100, 120, 3), np.uint8)
    mask = np.zeros((100, 120), np.uint8)
    mask[60:80, 90:110] = 255
    img[mask > 0] = 200
    for _ in range(10):
        crop, m = sample_crop(img, mask, 32, rng, positive_fraction=1.0)
        assert crop.shape == (32, 32, 3) and m.any()
        assert ((crop[..., 0] == 200) == (m > 0)).all()  # the crop and its mask are the same window
    small, m = sample_crop(img[:10, :20], mask[:10, :20], 32, rng)
    assert small.shape == (32, 32, 3) and m.shape == (32, 32)
    det = create_detector(TINY)
    row = {"image": Image.fromarray(img), "label": 1, "mask": Image.fromarray(mask)}
    sample = det.training_sample(row, rng=np.random.default_rng(1))
    assert sample["pixel_values"].shape == (3, 32, 32) and sample["masks"].shape == (32, 32)
    assert float(sample["labels"]) == float(sample["masks"].max())
    # a mask of another size (same aspect) is brought to the image; a fake without a mask is wholly fake
    row["mask"] = Image.fromarray(mask).resize((60, 50), Image.Resampling.NEAREST)
    assert det.training_sample(row, rng=np.random.default_rng(2))["masks"].shape == (32, 32)
    whole = det.training_sample({"image": Image.fromarray(img), "label": 1, "mask": None}, rng=rng)
    assert bool(whole["masks"].all()) and float(whole["labels"]) == 1.0
    out = det(**{k: torch.stack([v, v]) for k, v in sample.items()})
    assert out.loss is not None and out.loss.requires_grad and {"image", "pixel_bce", "dice"} <= set(out.losses)
    assert out.masks.shape == (2, 32, 32)


def test_save_load_is_strict_and_keeps_the_map(tmp_path: Path) -> None:
    det = create_detector(TINY, map_bias=0.5, min_region=0.002).eval()
    img = _photo(100, 80, seed=3)
    before = det.predict([img])[0]
    det.save_pretrained(tmp_path / "m")
    loaded = hubdet.from_pretrained(tmp_path / "m")
    after = loaded.predict([img])[0]
    assert loaded.args.map_bias == 0.5 and np.allclose(before.mask, after.mask, atol=1e-6)
    assert loaded.provenance.verified  # the saved folder carries its file manifest, like every family's
    assert "model.safetensors" in json.loads((tmp_path / "m" / "config.json").read_text())["file_sha256"]
    from safetensors.torch import load_file, save_file

    state = load_file(str(tmp_path / "m" / "model.safetensors"))
    state.pop(next(iter(state)))
    save_file(state, str(tmp_path / "m" / "model.safetensors"))
    with pytest.raises(IntegrityError, match="model.safetensors"):  # the manifest notices the change first
        hubdet.from_pretrained(tmp_path / "m")
    with pytest.raises(CheckpointError, match="missing tensors"):  # and the strict loader without it
        hubdet.from_pretrained(tmp_path / "m", verify=False)


def _mask_tree(root: Path) -> Path:
    """Reals (noise) and fakes (a smooth blob pasted in noise) with masks, in split folders + boxes.csv."""
    rows = [["file", "label", "xmin", "ymin", "xmax", "ymax", "mask"]]
    for split, n in (("train", 8), ("validation", 4), ("test", 4)):
        for i in range(n):
            make_image(root / split / "real" / f"r{i}.png", (96, 80), "noise", seed=i)
            arr = np.random.default_rng(50 + i).integers(0, 256, (80, 96, 3), dtype=np.uint8)
            x0, y0 = 10 + 3 * i, 12 + 2 * i
            arr[y0:y0 + 30, x0:x0 + 40] = 128
            (root / split / "fake").mkdir(parents=True, exist_ok=True)
            (root / split / "masks").mkdir(parents=True, exist_ok=True)
            Image.fromarray(arr).save(root / split / "fake" / f"f{i}.png")
            m = np.zeros((80, 96), np.uint8)
            m[y0:y0 + 30, x0:x0 + 40] = 255
            Image.fromarray(m).save(root / split / "masks" / f"f{i}.png")
            rows.append([f"{split}/fake/f{i}.png", "fake", x0, y0, x0 + 40, y0 + 30, f"{split}/masks/f{i}.png"])
    with open(root / "boxes.csv", "w", newline="") as fh:
        csv.writer(fh).writerows(rows)
    return root


def test_tiny_config_trains_and_reports_pixel_box_and_image_metrics(tmp_path: Path) -> None:
    data = _mask_tree(tmp_path / "data")
    cfg = training.load_config(Path(__file__).resolve().parents[1] / "training" / "configs"
                               / "mask_efficientnet_lite0_tiny.yaml",
                               {"data.data_dir": str(data), "train.output_dir": str(tmp_path / "run"),
                                "train.progress": False, "data.num_workers": 0, "train.epochs": 3})
    result = training.train(cfg)
    val = result["validation"]
    for key in ("pixel_f1", "pixel_iou", "pixel_f1_best", "mean_iou", "hit_rate@0.5", "roc_auc"):
        assert key in val
    assert val["n_masks"] == 4 and result["test"]["n_masks"] == 4
    assert result["history"][-1]["train_loss"] < result["history"][0]["train_loss"] * 1.5
    loaded = hubdet.from_pretrained(result["model_dir"])
    assert loaded.predicts_masks and loaded.config.calibration.method == "temperature"


def test_evaluate_resize_protocol_maps_masks_back(tmp_path: Path) -> None:
    data = _mask_tree(tmp_path / "data")
    det = create_detector(TINY).eval()
    result = hubdet.evaluate(det, "folder", str(data), split="test", perturbations=["clean", "downscale_0.5"])
    clean = result["metrics"]
    half = result["perturbations"]["downscale_0.5"]["metrics"]
    for m in (clean, half):
        assert m["n_masks"] == 4 and 0.0 <= m["pixel_f1"] <= m["pixel_f1_best"] <= 1.0 and "mean_iou" in m
    assert "pixel_f1" in result["perturbations"]["downscale_0.5"]["drop"]


def test_ensemble_with_a_mask_member_reports_its_map() -> None:
    ens = create_detector("ensemble_linear.custom", members=["registry:classifier_tiny.test", f"registry:{TINY}"],
                          fusion="mean").eval()
    assert ens.predicts_masks and ens.mask_member == 1 and ens.supports_boxes
    img = _photo(90, 70, seed=4)
    (pred,) = ens.predict([img])
    member = ens.members[1].predict([img])[0]
    assert pred.mask.shape == (70, 90) and np.array_equal(pred.mask, member.mask)
    assert pred.regions == member.regions
    out = ens(ens.transform(img)[None])
    assert out.masks is not None and out.masks.shape[-2:] == (224, 224)


def test_mask_that_does_not_belong_to_its_image_is_reported_not_fatal(tmp_path: Path) -> None:
    root = tmp_path / "d"
    make_image(root / "fake" / "a.png", (64, 48), "noise")
    make_image(root / "fake" / "b.png", (64, 48), "noise", seed=1)
    (root / "masks").mkdir()
    Image.new("L", (48, 64), 255).save(root / "masks" / "a.png")  # portrait mask for a landscape image
    Image.new("L", (32, 24), 255).save(root / "masks" / "b.png")  # same aspect, half size: resized
    with open(root / "boxes.csv", "w", newline="") as fh:
        csv.writer(fh).writerows([["file", "label", "mask"], ["fake/a.png", "fake", "masks/a.png"],
                                  ["fake/b.png", "fake", "masks/b.png"]])
    ds = hubdet.load_source("folder", str(root), split="train")
    assert ds["file"] == ["fake/b.png"] and ds[0]["mask"].size == (64, 48)
    (bad,) = ds.report.skipped
    assert bad[0] == "fake/a.png" and "48x64" in bad[1] and "aspect" in bad[1]
