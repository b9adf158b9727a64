"""The copy-move family: duplicated-block forensics at native resolution with a fitted logistic head."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision.ops import box_iou

from hubdet._core.errors import CheckpointError, ConfigError
from hubdet.data.inpainters import create_inpainter
from hubdet.models import create_detector, from_pretrained
from hubdet.models.copymove import FEATURES
from hubdet.models.preprocessing import to_tensor

H, W = 192, 256


def _texture(seed: int = 0) -> np.ndarray:
    """A smooth random colour texture (blurred noise), like a photo's fine detail."""
    import cv2

    noise = np.random.default_rng(seed).normal(0, 1, (H, W, 3)).astype(np.float32)
    smooth = cv2.GaussianBlur(noise, (0, 0), 1.5)
    return np.clip(128 + smooth / smooth.std() * 40, 0, 255).astype(np.uint8)


def _copy_move(image: np.ndarray) -> tuple[np.ndarray, list[int]]:
    out = image.copy()
    out[110:160, 150:220] = image[20:70, 30:100]  # pasted region; its source stays in place
    return out, [150, 110, 220, 160]


def _exemplar(image: np.ndarray) -> tuple[np.ndarray, list[int]]:
    mask = np.zeros(image.shape[:2], bool)
    mask[60:120, 90:170] = True
    return create_inpainter("exemplar").inpaint(image, mask), [90, 60, 170, 120]


def _iou(a, b) -> float:
    return float(box_iou(torch.tensor([a], dtype=torch.float32), torch.tensor([b], dtype=torch.float32))[0, 0])


@pytest.fixture(scope="module")
def detector():
    return create_detector("copymove_dct.b4")


@pytest.mark.parametrize("make", [_copy_move, _exemplar], ids=["copy_move", "exemplar"])
def test_box_finds_the_copied_region_and_logit_rises(detector, make):
    clean = _texture()
    fake, truth = make(clean)
    pred_fake, pred_clean = detector.predict([Image.fromarray(fake), Image.fromarray(clean)])
    assert pred_fake.box is not None and _iou(pred_fake.box, truth) > 0.5, (pred_fake.box, truth)
    assert pred_fake.logit > pred_clean.logit
    assert pred_clean.box is None  # a natural texture has no duplicated region
    assert (pred_fake.width, pred_fake.height) == (W, H)


def _rim_fill(image: np.ndarray, offset: int = 16, tile: int = 8) -> tuple[np.ndarray, list[int]]:
    """An exemplar-style fill whose border tiles come from a ring of sources just outside the hole (they merge
    with it in the density map) and whose inner tiles come from far away."""
    rng = np.random.default_rng(0)
    out = image.copy()
    x0, y0, x1, y1 = 90, 60, 170, 120
    for ty in range(y0, y1, tile):
        for tx in range(x0, x1, tile):
            if ty == y0 or ty + tile >= y1:
                sy, sx = ty + (offset if ty > y0 else -offset), tx
            elif tx == x0 or tx + tile >= x1:
                sy, sx = ty, tx + (offset if tx > x0 else -offset)
            else:
                while True:
                    sy, sx = int(rng.integers(0, H - tile)), int(rng.integers(0, W - tile))
                    if not (x0 - 40 < sx < x1 + 40 and y0 - 40 < sy < y1 + 40):
                        break
            out[ty:ty + tile, tx:tx + tile] = image[sy:sy + tile, sx:sx + tile]
    return out, [x0, y0, x1, y1]


def test_box_keeps_the_filled_side_not_the_adjacent_sources(detector):
    fake, truth = _rim_fill(_texture(0))
    pred = detector.predict([Image.fromarray(fake)])[0]
    assert pred.box is not None and _iou(pred.box, truth) > 0.8, (pred.box, truth)
    # without the filled-side rule the ring of sources joins the box
    merged = create_detector("copymove_dct.b4", filled_fraction=0.0).predict([Image.fromarray(fake)])[0]
    assert merged.box is not None and _iou(merged.box, truth) < 0.7, merged.box
    x = to_tensor(Image.fromarray(fake), detector.config.preprocess)[None]
    region = detector.analyze(x)[0].region
    assert region is not None and region.shape == (H, W)
    assert region[truth[1]:truth[3], truth[0]:truth[2]].sum() > 0.8 * region.sum()  # the map sits on the hole
    with pytest.raises(ConfigError, match="filled_fraction"):
        create_detector("copymove_dct.b4", filled_fraction=1.5)


def test_flat_and_tiny_images_give_no_detection(detector):
    flat = Image.new("RGB", (W, H), (90, 120, 200))
    gradient = Image.fromarray(np.tile(np.linspace(0, 255, W, dtype=np.uint8)[None, :, None], (H, 1, 3)))
    *judged, tiny = detector.predict([flat, gradient, Image.new("RGB", (5, 5))])
    for pred in judged:
        assert pred.box is None and pred.prob < 0.5
    assert tiny.verdict == "cannot_judge" and tiny.prob is None and tiny.reason.startswith("too small")


def test_forward_contract_boxes_are_normalised(detector):
    fake, truth = _copy_move(_texture(1))
    x = torch.stack([to_tensor(Image.fromarray(fake), detector.config.preprocess)] * 2)
    out = detector(x, labels=torch.tensor([1.0, 0.0]))
    assert out.logits.shape == (2,) and out.boxes.shape == (2, 4) and out.box_scores.shape == (2,)
    assert out.loss is not None and out.loss.ndim == 0
    assert _iou((out.boxes[0] * torch.tensor([W, H, W, H])).tolist(), truth) > 0.5
    assert detector(x).loss is None
    with pytest.raises(ConfigError):
        detector(x[:, :1])


def test_pixel_values_are_not_resized(detector):
    pre = detector.config.preprocess
    assert pre.resize == "none" and tuple(pre.mean) == (0.0, 0.0, 0.0) and tuple(pre.std) == (1.0, 1.0, 1.0)
    with pytest.raises(ConfigError, match="resize"):
        create_detector("copymove_dct.b4", preprocess={"resize": "resize"})
    big = Image.fromarray(np.zeros((900, 1200, 3), np.uint8))
    crop, box, label = detector.train_crop(big, label=1, box=[1000, 800, 1100, 880])
    assert crop.size == (1024, 768) and label == 1 and box is not None
    assert box[2] > box[0] and box[3] > box[1]


def test_fit_head_and_strict_round_trip(detector, tmp_path):
    det = create_detector("copymove_dct.b4")
    images = []
    labels = []
    for seed in range(6):
        clean = _texture(seed)
        images += [clean, (_copy_move if seed % 2 else _exemplar)(clean)[0]]
        labels += [0, 1]
    x = torch.stack([to_tensor(Image.fromarray(a), det.config.preprocess) for a in images])
    feats = det.extract_features(x)
    assert feats.shape == (12, len(FEATURES)) and torch.isfinite(feats).all()
    metrics = det.fit_head(feats.numpy(), np.array(labels))
    assert metrics["train_accuracy"] == 1.0 and det.is_fitted
    with pytest.raises(ConfigError):
        det.fit_head(feats.numpy(), np.zeros(12, int))

    folder = det.save_pretrained(tmp_path / "ckpt")
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    loaded = from_pretrained(folder)
    assert loaded.is_fitted
    for key, value in det.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[key]), key
    assert torch.equal(det(x).logits, loaded(x).logits)

    cfg = json.loads((folder / "config.json").read_text())
    cfg["args"]["blok"] = 4  # a typo is an error, not silently dropped
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ConfigError, match="blok"):
        from_pretrained(folder)
    cfg["args"].pop("blok")
    cfg["args"]["n_coefficients"] = 12  # fine, no tensor depends on it; but a wrong tensor set is refused:
    (folder / "config.json").write_text(json.dumps(cfg))
    from safetensors.torch import load_file, save_file

    state = load_file(str(folder / "model.safetensors"))
    state.pop("head_bias")
    save_file(state, str(folder / "model.safetensors"))
    with pytest.raises(CheckpointError, match="model.safetensors: SHA-256 mismatch"):  # the manifest check first
        from_pretrained(folder)
    with pytest.raises(CheckpointError, match="head_bias"):  # the strict loader, for weights edited on purpose
        from_pretrained(folder, verify=False)


def test_one_photo_size_image_runs_in_a_few_seconds(detector):
    import time

    rng = np.random.default_rng(0)
    image = Image.fromarray(np.repeat(np.repeat(rng.integers(0, 255, (192, 256, 3), dtype=np.uint8), 4, 0), 4, 1))
    start = time.perf_counter()
    pred = detector.predict(image)[0]
    assert time.perf_counter() - start < 10.0
    assert pred.width == 1024 and pred.height == 768


def test_explanation_map_marks_the_copied_region(detector):
    from hubdet.models.explain import explain

    fake, (x0, y0, x1, y1) = _copy_move(_texture())
    heat = detector.explain_map(Image.fromarray(fake))
    assert heat.shape == (H, W) and heat.dtype == np.float32 and 0 <= heat.min() and heat.max() <= 1
    inside = np.zeros((H, W), bool)
    inside[y0:y1, x0:x1] = True
    assert heat[inside].mean() > 0.5 > heat[~inside].mean() + 0.3
    assert not detector.explain_map(Image.fromarray(_texture())).any()  # nothing duplicated: an empty map
    app_heat, method = explain(detector, Image.fromarray(fake))
    assert np.array_equal(app_heat, heat) and "copy-move" in method
