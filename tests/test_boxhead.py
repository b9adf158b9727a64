"""The box head: loss components, tiling at native resolution, boxes mapped back to original pixels."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from hubdet._core.errors import ConfigError
from hubdet.models import create_detector, from_pretrained
from hubdet.models.boxes import giou_loss
from hubdet.models.boxhead import (
    BoxHeadDetector,
    aggregate_logits,
    merge_regions,
    sample_training_crop,
    tile_grid,
    tile_starts,
    tiling_scale,
)
from hubdet.models.output import DetectorOutput


@pytest.fixture()
def head() -> BoxHeadDetector:
    torch.manual_seed(0)
    return create_detector("boxhead_tiny.test", max_tiles=1000)


def _noise(width: int, height: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


# ---------------------------------------------------------------------------------------------------- tiling
def test_tile_starts_include_the_edge_tile():
    assert tile_starts(100, 32, 16) == [0, 16, 32, 48, 64, 68]
    assert tile_starts(96, 32, 32) == [0, 32, 64]
    assert tile_starts(32, 32, 16) == [0]
    assert tile_starts(20, 32, 16) == [0]  # smaller than a tile: one padded tile
    with pytest.raises(ConfigError):
        tile_starts(100, 32, 0)


def test_tile_grid_covers_every_pixel():
    width, height = 256, 192
    seen = np.zeros((height, width), dtype=bool)
    origins = tile_grid(width, height, (32, 32), (16, 16))
    for x, y in origins:
        assert 0 <= x <= width - 32 and 0 <= y <= height - 32
        seen[y : y + 32, x : x + 32] = True
    assert seen.all()
    assert len(origins) == 15 * 11


def test_tiling_scale_respects_max_tiles():
    assert tiling_scale(256, 192, (32, 32), (16, 16), 1000) == 1.0
    scale = tiling_scale(256, 192, (32, 32), (16, 16), 20)
    assert scale < 1.0
    assert len(tile_grid(round(256 * scale), round(192 * scale), (32, 32), (16, 16))) <= 20


def test_aggregate_logits():
    logits = torch.tensor([-2.0, 0.0, 1.0, 3.0])
    assert aggregate_logits(logits, "max").item() == 3.0
    assert aggregate_logits(logits, "topk_mean", topk=2).item() == pytest.approx(2.0)
    # two tiles of p=0.5: 1 - 0.5 * 0.5 = 0.75 -> logit log(3)
    assert aggregate_logits(torch.zeros(2), "noisy_or").item() == pytest.approx(math.log(3), abs=1e-5)
    # one tile: every rule gives the tile's logit
    for how in ("max", "topk_mean", "noisy_or"):
        assert aggregate_logits(torch.tensor([0.7]), how).item() == pytest.approx(0.7, abs=1e-5)
    with pytest.raises(ConfigError):
        aggregate_logits(logits, "median")


def test_merge_regions_groups_overlapping_boxes():
    boxes = torch.tensor([[10.0, 10.0, 40.0, 40.0], [30.0, 20.0, 60.0, 50.0], [100.0, 100.0, 120.0, 110.0]])
    scores = torch.tensor([1.0, 2.0, 5.0])
    regions = merge_regions(boxes, scores)
    assert len(regions) == 2
    assert regions[0] == ([100.0, 100.0, 120.0, 110.0], 5.0, 1)
    assert regions[1] == ([10.0, 10.0, 60.0, 50.0], 2.0, 2)
    assert merge_regions(boxes[:0], scores[:0]) == []


# ---------------------------------------------------------------------------------------------------- loss
def test_loss_components(head):
    pixels = torch.randn(4, 3, 32, 32)
    labels = torch.tensor([1, 0, 1, 1])
    boxes = torch.tensor([[0.1, 0.1, 0.5, 0.5], [0.2, 0.2, 0.6, 0.6], [0.3, 0.3, 0.3, 0.9], [0.2, 0.4, 0.9, 0.8]])
    out = head(pixels, labels=labels, boxes=boxes)
    assert isinstance(out, DetectorOutput)
    assert out.logits.shape == (4,) and out.boxes.shape == (4, 4)
    cls = F.binary_cross_entropy_with_logits(out.logits, labels.float())
    # rows 0 and 3 only: row 1 is real, row 2 has a zero-width box
    loc = giou_loss(out.boxes[[0, 3]], boxes[[0, 3]])
    assert out.losses["classification"].item() == pytest.approx(cls.item(), rel=1e-5)
    assert out.losses["localization"].item() == pytest.approx(loc.item(), rel=1e-5)
    assert out.losses["num_boxes"].item() == 2
    assert out.loss.item() == pytest.approx(head.args.alpha * cls.item() + head.args.beta * loc.item(), rel=1e-5)
    out.loss.backward()
    assert head.box.weight.grad.abs().sum() > 0


def test_no_localization_loss_for_real_images(head):
    out = head(torch.randn(3, 3, 32, 32), labels=torch.zeros(3), boxes=torch.tensor([[0.1, 0.1, 0.5, 0.5]] * 3))
    assert out.losses["localization"].item() == 0.0
    assert out.losses["num_boxes"].item() == 0
    out.loss.backward()
    assert head.box.weight.grad is None or head.box.weight.grad.abs().sum() == 0
    assert head.presence.weight.grad.abs().sum() > 0


def test_no_loss_without_labels(head):
    out = head(torch.randn(2, 3, 32, 32))
    assert out.loss is None and out.losses == {}
    assert ((out.boxes >= 0) & (out.boxes <= 1)).all()


@pytest.mark.parametrize("kind", ["smooth_l1", "mse"])
def test_other_localization_losses(kind):
    torch.manual_seed(0)
    det = create_detector("boxhead_tiny.test", localization=kind, alpha=2.0, beta=0.5)
    target = torch.tensor([[0.1, 0.1, 0.5, 0.5], [0.2, 0.3, 0.7, 0.9]])
    out = det(torch.randn(2, 3, 32, 32), labels=torch.ones(2), boxes=target)
    ref = F.smooth_l1_loss(out.boxes, target, beta=0.1) if kind == "smooth_l1" else F.mse_loss(out.boxes, target)
    assert out.losses["localization"].item() == pytest.approx(ref.item(), rel=1e-5)


def test_bad_localization_name_raises():
    with pytest.raises(ConfigError, match="localization"):
        create_detector("boxhead_tiny.test", localization="l3")


# ---------------------------------------------------------------------------------------------------- predict
def test_predict_big_image_returns_box_in_original_pixels(head):
    image = _noise(256, 192)
    (pred,) = head.predict(image)
    assert (pred.width, pred.height) == (256, 192)
    assert pred.extra["tiles"] == 15 * 11 and pred.extra["scale"] == 1.0
    x0, y0, x1, y1 = pred.box
    assert 0 <= x0 < x1 <= 256 and 0 <= y0 < y1 <= 192
    assert 0.0 <= pred.prob <= 1.0 and pred.verdict in {"real", "fake", "uncertain"}


def _bright_square_forward(det: BoxHeadDetector):
    """A stand-in network: a tile is positive where it has white pixels, and its box is their bounding box."""
    mean = torch.tensor(det.config.preprocess.mean).view(1, 3, 1, 1)
    std = torch.tensor(det.config.preprocess.std).view(1, 3, 1, 1)

    def forward(pixel_values, labels=None, boxes=None):
        rgb = pixel_values * std + mean
        white = (rgb > 0.95).all(dim=1)  # [B, H, W]
        h, w = white.shape[1:]
        logits, out_boxes = [], []
        for m in white:
            if m.any():
                ys, xs = torch.nonzero(m, as_tuple=True)
                logits.append(5.0 + m.float().mean() * 10)
                out_boxes.append(torch.stack([xs.min() / w, ys.min() / h, (xs.max() + 1) / w, (ys.max() + 1) / h]))
            else:
                logits.append(torch.tensor(-5.0))
                out_boxes.append(torch.tensor([0.25, 0.25, 0.75, 0.75]))
        logits = torch.stack(logits).float()
        return DetectorOutput(logits=logits, probs=torch.sigmoid(logits), boxes=torch.stack(out_boxes).float(),
                              box_scores=torch.sigmoid(logits))

    return forward


def _image_with_square(width: int, height: int, box: tuple[int, int, int, int]) -> Image.Image:
    arr = np.full((height, width, 3), 60, dtype=np.uint8)
    arr[box[1] : box[3], box[0] : box[2]] = 255
    return Image.fromarray(arr)


@pytest.mark.parametrize("max_tiles", [1000, 12])
def test_tile_boxes_map_back_to_the_region(head, monkeypatch, max_tiles):
    """Positive tiles' boxes are merged and mapped to pixels of the original, also after downscaling."""
    head.args.max_tiles = max_tiles
    monkeypatch.setattr(head, "forward", _bright_square_forward(head))
    region = (150, 100, 190, 150)  # spans several 32 px tiles, far from the corner
    (pred,) = head.predict(_image_with_square(256, 192, region))
    tol = 1.0 if max_tiles == 1000 else 256 / (256 * tiling_scale(256, 192, (32, 32), (16, 16), 12)) + 1
    assert pred.box == pytest.approx(list(region), abs=tol)
    assert pred.verdict == "fake"
    assert pred.extra["regions"] == 1 and pred.extra["positive_tiles"] > 1
    if max_tiles == 12:
        assert pred.extra["scale"] < 1.0 and pred.extra["tiles"] <= 12


def test_edge_region_is_found(head, monkeypatch):
    monkeypatch.setattr(head, "forward", _bright_square_forward(head))
    region = (240, 180, 256, 192)  # bottom-right corner: only the flush edge tile sees it entirely
    (pred,) = head.predict(_image_with_square(250 + 6, 192, region))
    assert pred.box == pytest.approx(list(region), abs=1.0)


def test_small_image_is_padded_not_upscaled(head):
    (pred,) = head.predict(_noise(20, 16))  # under one 32x32 tile, at least half a tile per side
    assert pred.extra["tiles"] == 1
    assert 0 <= pred.box[0] <= pred.box[2] <= 20 and 0 <= pred.box[1] <= pred.box[3] <= 16


def test_image_under_half_a_tile_cannot_be_judged(head):
    (pred,) = head.predict(_noise(20, 12))
    assert pred.verdict == "cannot_judge" and pred.prob is None and pred.box is None
    assert pred.reason.startswith("too small") and "20x12" in pred.reason and "half a tile" in pred.reason


# ---------------------------------------------------------------------------------------------------- training crops
def test_sample_training_crop_positive_and_negative():
    image = _noise(200, 150)
    box = [60.0, 40.0, 80.0, 70.0]
    rng = np.random.default_rng(0)
    labels = set()
    for _ in range(40):
        crop, cbox, label = sample_training_crop(image, box, (32, 32), rng, positive_fraction=0.5, min_visible=0.5)
        assert crop.size == (32, 32)
        labels.add(label)
        if label == 1:
            assert cbox is not None and all(0.0 <= v <= 1.0 for v in cbox)
            assert (cbox[2] - cbox[0]) * (cbox[3] - cbox[1]) * 32 * 32 >= 0.5 * 20 * 30 - 1e-6
        else:
            assert cbox is None
    assert labels == {0, 1}


def test_sample_training_crop_box_matches_pixels():
    arr = np.zeros((100, 100, 3), dtype=np.uint8)
    arr[40:60, 30:50] = 255
    image = Image.fromarray(arr)
    rng = np.random.default_rng(3)
    for _ in range(10):
        crop, cbox, label = sample_training_crop(image, [30, 40, 50, 60], (32, 32), rng, positive_fraction=1.0)
        assert label == 1
        white = np.asarray(crop).all(axis=2)
        ys, xs = np.nonzero(white)
        assert cbox == pytest.approx([xs.min() / 32, ys.min() / 32, (xs.max() + 1) / 32, (ys.max() + 1) / 32])


def test_sample_training_crop_without_box():
    image = _noise(20, 10)  # smaller than the tile: padded
    rng = np.random.default_rng(0)
    crop, cbox, label = sample_training_crop(image, None, (32, 32), rng)
    assert crop.size == (32, 32) and cbox is None and label == 0
    _, cbox, label = sample_training_crop(_noise(64, 64), None, (32, 32), rng, label=1)  # wholly generated
    assert cbox is None and label == 1


def test_train_crop_hook(head):
    crop, cbox, label = head.train_crop(_noise(120, 90), label=1, box=[[10, 10, 30, 30]],
                                        rng=np.random.default_rng(1))
    assert crop.size == (32, 32) and label in (0, 1)
    assert (cbox is None) == (label == 0)


def test_save_load_round_trip(head, tmp_path):
    head.eval()
    pixels = torch.randn(2, 3, 32, 32)
    ref = head(pixels)
    head.save_pretrained(tmp_path / "bh", card=False)
    loaded = from_pretrained(tmp_path / "bh")
    out = loaded(pixels)
    assert torch.allclose(ref.logits, out.logits, atol=1e-6) and torch.allclose(ref.boxes, out.boxes, atol=1e-6)
    assert loaded.args.max_tiles == 1000


def test_default_train_crop_hook_applies_the_eval_geometry():
    """Families without their own sampling (the classifier) resize and map the box to the input."""
    clf = create_detector("classifier_tiny.test")
    crop, cbox, label = clf.train_crop(_noise(64, 48), label=1, box=[16, 12, 48, 36])
    assert crop.size == (32, 32) and label == 1
    assert cbox == pytest.approx([0.25, 0.25, 0.75, 0.75])
    _, cbox, label = clf.train_crop(_noise(64, 48), label=0, box=None)
    assert cbox is None and label == 0


def test_freeze_first_blocks_keeps_early_stages_and_their_norm_stats():
    import hubdet

    det = hubdet.create_detector("boxhead_tiny.test", freeze_first_n_blocks=1)
    frozen = [n for n, p in det.named_parameters() if not p.requires_grad]
    assert frozen and all(n.startswith("backbone.") for n in frozen)
    assert all(p.requires_grad for n, p in det.named_parameters() if n.startswith(("presence", "box")))
    det.train()
    assert det._frozen_norms and not any(m.training for m in det._frozen_norms)
    with pytest.raises(Exception, match="cannot freeze"):
        hubdet.create_detector("boxhead_tiny.test", freeze_first_n_blocks=99)
