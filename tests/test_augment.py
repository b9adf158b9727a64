"""hubdet.data.augment: box-aware geometry, photometric transforms, determinism, strict config."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from hubdet._core.errors import ConfigError
from hubdet.data.augment import AugmentConfig, Augmenter, affine_matrix, build_augmenter, transform_boxes


def _rect_image(w: int = 64, h: int = 48, box: tuple[int, int, int, int] = (10, 8, 30, 20)) -> Image.Image:
    arr = np.zeros((h, w, 3), np.uint8)
    x0, y0, x1, y1 = box
    arr[y0:y1, x0:x1] = 255
    return Image.fromarray(arr, "RGB")


def _white_bbox(img: Image.Image) -> tuple[int, int, int, int]:
    ys, xs = np.nonzero(np.asarray(img.convert("L")) > 127)
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def test_identity_config_returns_same_pixels() -> None:
    img = _rect_image()
    out, boxes = Augmenter()(img, [[10, 8, 30, 20]], np.random.default_rng(0))
    assert np.array_equal(np.asarray(out), np.asarray(img))
    assert boxes == [[10.0, 8.0, 30.0, 20.0]]
    assert AugmentConfig().is_identity


def test_hflip_moves_box_and_pixels() -> None:
    img = _rect_image()
    m = affine_matrix(64, 48, hflip=True)
    assert transform_boxes([[10, 8, 30, 20]], m, 64, 48) == [[34.0, 8.0, 54.0, 20.0]]
    aug = Augmenter(AugmentConfig(hflip=True, fill="constant"))
    # find a seed that flips
    for seed in range(20):
        out, boxes = aug(img, [[10, 8, 30, 20]], np.random.default_rng(seed))
        if boxes != [[10.0, 8.0, 30.0, 20.0]]:
            break
    assert boxes == [[34.0, 8.0, 54.0, 20.0]]
    assert _white_bbox(out) == (34, 8, 54, 20)


@pytest.mark.parametrize("seed", range(6))
def test_random_geometry_box_follows_pixels(seed: int) -> None:
    img = _rect_image(96, 80, (30, 25, 60, 50))
    cfg = AugmentConfig(rotation=20, hflip=True, vflip=True, shift=0.1, zoom=0.2, shear=10, fill="constant")
    out, boxes = Augmenter(cfg)(img, [[30, 25, 60, 50]], np.random.default_rng(seed))
    assert out.size == img.size
    assert len(boxes) == 1
    wx0, wy0, wx1, wy1 = _white_bbox(out)
    bx0, by0, bx1, by1 = boxes[0]
    # the transformed box is the bounding box of the moved rectangle (to interpolation accuracy)
    for got, want in ((wx0, bx0), (wy0, by0), (wx1, bx1), (wy1, by1)):
        assert abs(got - want) <= 2.5


def test_box_pushed_out_is_dropped_and_skip_mode_keeps_geometry_off() -> None:
    m = affine_matrix(64, 48, tx=200.0)
    assert transform_boxes([[10, 8, 30, 20]], m, 64, 48) == []
    img = _rect_image()
    cfg = AugmentConfig(rotation=30, shift=0.2, box_geometry="skip")
    out, boxes = Augmenter(cfg)(img, [[10, 8, 30, 20]], np.random.default_rng(1))
    assert np.array_equal(np.asarray(out), np.asarray(img)) and boxes == [[10.0, 8.0, 30.0, 20.0]]
    out2, _ = Augmenter(cfg)(img, [], np.random.default_rng(1))  # no box: geometry applies
    assert not np.array_equal(np.asarray(out2), np.asarray(img))


def test_same_rng_same_result_and_different_rng_differs() -> None:
    rng_img = np.random.default_rng(3).integers(0, 256, (40, 40, 3), dtype=np.uint8)
    img = Image.fromarray(rng_img, "RGB")
    cfg = AugmentConfig(rotation=20, shift=0.1, zoom=0.2, jitter_p=1.0, blur_p=0.5, jpeg_p=1.0)
    aug = build_augmenter(cfg.to_dict())
    a, _ = aug(img, None, np.random.default_rng([7, 1, 2]))
    b, _ = aug(img, None, np.random.default_rng([7, 1, 2]))
    c, _ = aug(img, None, np.random.default_rng([7, 1, 3]))
    assert np.array_equal(np.asarray(a), np.asarray(b))
    assert not np.array_equal(np.asarray(a), np.asarray(c))


def test_photometric_transforms_change_pixels_not_geometry() -> None:
    img = _rect_image()
    for cfg in (AugmentConfig(jitter_p=1.0), AugmentConfig(blur_p=1.0, blur_sigma=(1.5, 2.0)),
                AugmentConfig(jpeg_p=1.0, jpeg_quality=(10, 10))):
        out, boxes = Augmenter(cfg)(img, [[10, 8, 30, 20]], np.random.default_rng(0))
        assert out.size == img.size and out.mode == "RGB"
        assert boxes == [[10.0, 8.0, 30.0, 20.0]]
        assert not np.array_equal(np.asarray(out), np.asarray(img)), cfg


@pytest.mark.parametrize(
    "bad",
    [{"rotaton": 20}, {"zoom": 1.5}, {"jitter_p": 2.0}, {"jpeg_quality": [90, 10]}, {"fill": "wrap"},
     {"blur_sigma": [0, 1]}],
)
def test_config_rejects_bad_values(bad: dict) -> None:
    with pytest.raises(ConfigError):
        AugmentConfig.from_dict(bad)


def test_unknown_key_suggests() -> None:
    with pytest.raises(ConfigError, match="rotation"):
        build_augmenter({"rotaton": 20})
