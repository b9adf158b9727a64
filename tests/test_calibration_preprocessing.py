"""Temperature scaling, verdicts, and the transform/box geometry that travels with the weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from hubdet.models import calibration
from hubdet.models.config import CalibrationConfig, PreprocessConfig
from hubdet.models.preprocessing import (
    apply_geometry,
    box_to_input,
    box_to_original,
    build_transform,
    map_to_original,
)


def test_temperature_recovers_overconfident_scale():
    g = torch.Generator().manual_seed(0)
    true_logits = torch.randn(4000, generator=g) * 2
    labels = torch.bernoulli(torch.sigmoid(true_logits), generator=g)
    t, before, after = calibration.fit_temperature(true_logits * 3.0, labels)
    assert 2.6 < t < 3.4
    assert after < before


def test_temperature_never_worse_than_identity():
    logits = torch.tensor([3.0, -3.0, 2.0, -2.0])
    labels = torch.tensor([1.0, 0.0, 1.0, 0.0])
    t, before, after = calibration.fit_temperature(logits, labels)
    assert after <= before + 1e-9


def test_verdict_band():
    cal = CalibrationConfig(threshold=0.5, uncertain_low=0.4, uncertain_high=0.6)
    assert calibration.verdict(0.9, cal) == "fake"
    assert calibration.verdict(0.1, cal) == "real"
    assert calibration.verdict(0.5, cal) == "uncertain"
    sharp = CalibrationConfig(threshold=0.5, uncertain_low=0.5, uncertain_high=0.5)
    assert calibration.verdict(0.5, sharp) == "fake" and calibration.verdict(0.49, sharp) == "real"
    with pytest.raises(ValueError):
        CalibrationConfig(threshold=0.5, uncertain_low=0.6, uncertain_high=0.7)


@pytest.mark.parametrize("policy", ["resize", "shorter_crop", "center_crop"])
def test_box_round_trip(policy):
    pre = PreprocessConfig(input_size=(64, 64), resize=policy, crop_pct=0.875 if policy == "shorter_crop" else 1.0)
    w, h = 200, 120
    box = [80.0, 40.0, 110.0, 70.0]  # central, so no crop clipping
    back = box_to_original(box_to_input(box, pre, w, h), pre, w, h)
    assert back == pytest.approx(box, abs=1e-4)


def test_transform_normalises_with_config():
    pre = PreprocessConfig(input_size=(8, 10), mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    t = build_transform(pre)(Image.new("RGB", (30, 20), (255, 0, 127)))
    assert t.shape == (3, 8, 10)
    assert t[0].mean().item() == pytest.approx(1.0) and t[1].mean().item() == pytest.approx(-1.0)


def test_center_crop_enlarges_small_images_instead_of_padding():
    pre = PreprocessConfig(input_size=(32, 32), resize="center_crop")
    small = Image.new("RGB", (10, 16), (200, 100, 50))
    out = apply_geometry(small, pre)
    assert out.size == (32, 32)
    assert min(out.getextrema()[0]) == 200  # no black border: the image was enlarged, not padded
    # the box mapping follows the enlargement: the whole small image maps onto the whole crop's width
    assert box_to_input([0, 0, 10, 16], pre, 10, 16)[0::2] == pytest.approx([0.0, 1.0])


@pytest.mark.parametrize("policy", ["resize", "shorter_crop", "center_crop"])
def test_map_to_original_follows_the_box_geometry(policy):
    """A map that is 1 on one input cell lands where box_to_original puts that cell, and nowhere else."""
    pre = PreprocessConfig(input_size=(64, 64), resize=policy, crop_pct=0.875 if policy == "shorter_crop" else 1.0)
    w, h = 200, 120
    cell = np.zeros((64, 64), np.float32)
    cell[16:48, 24:40] = 1.0
    out = map_to_original(cell, pre, w, h)
    assert out.shape == (h, w) and out.dtype == np.float32
    x0, y0, x1, y1 = box_to_original([24 / 64, 16 / 64, 40 / 64, 48 / 64], pre, w, h)
    inside = out[round(y0) + 2 : round(y1) - 2, round(x0) + 2 : round(x1) - 2]
    assert inside.min() > 0.9
    outside = out.copy()
    outside[max(0, round(y0) - 2) : round(y1) + 2, max(0, round(x0) - 2) : round(x1) + 2] = 0
    assert outside.max() == 0.0


def test_map_to_original_of_an_enlarged_small_image():
    pre = PreprocessConfig(input_size=(32, 32), resize="center_crop")
    out = map_to_original(np.ones((32, 32), np.float32), pre, 10, 20)  # enlarged x3.2, the middle half is cropped
    assert out.shape == (20, 10)
    assert out[5:15].min() == 1.0 and out[:5].max() == 0.0 and out[15:].max() == 0.0
