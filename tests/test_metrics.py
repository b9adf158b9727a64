"""Metrics against scikit-learn/torchvision or hand-computed values; the local evaluate modules; perturbations."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from sklearn import metrics as skm
from torchvision.ops import box_iou

from hubdet.eval import list_metrics, load_metric
from hubdet.eval.metric_table import metric_drops
from hubdet.eval.metrics import (
    binary_metrics,
    box_metrics,
    equal_error_rate,
    expected_calibration_error,
    pixel_metrics,
    tpr_at_fpr,
)
from hubdet.eval.robustness import PROTOCOL, Perturbation, apply_perturbation, resolve_perturbations


@pytest.fixture
def scores() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    p = np.clip(0.35 * y + rng.random(200) * 0.65, 0, 1)
    return y, p


# --------------------------------------------------------------------------- binary


def test_binary_metrics_match_sklearn(scores):
    y, p = scores
    m = binary_metrics(y, p, threshold=0.5)
    pred = (p >= 0.5).astype(int)
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert m["precision"] == pytest.approx(skm.precision_score(y, pred))
    assert m["recall"] == pytest.approx(skm.recall_score(y, pred))
    assert m["f1"] == pytest.approx(skm.f1_score(y, pred))
    assert m["roc_auc"] == pytest.approx(skm.roc_auc_score(y, p))
    assert m["average_precision"] == pytest.approx(skm.average_precision_score(y, p))
    assert m["confusion_matrix"] == skm.confusion_matrix(y, pred).tolist()
    assert (m["n"], m["n_fake"], m["n_real"]) == (200, int(y.sum()), int(200 - y.sum()))
    # the threshold matters
    assert binary_metrics(y, p, threshold=0.8)["recall"] < m["recall"]


def test_eer_and_tpr_by_hand():
    # fakes 0.9 0.6 0.3, reals 0.7 0.2 0.1: at threshold 0.6 fpr = 1/3 and fnr = 1/3
    y = [1, 1, 1, 0, 0, 0]
    p = [0.9, 0.6, 0.3, 0.7, 0.2, 0.1]
    assert equal_error_rate(y, p) == pytest.approx(1 / 3)
    # no real above 0.7 other than itself: with fpr 0, only 0.9 is caught
    assert tpr_at_fpr(y, p, 0.01) == pytest.approx(1 / 3)
    assert binary_metrics(y, p)["tpr_at_1pct_fpr"] == pytest.approx(1 / 3)
    # perfect separation: EER 0, TPR 1
    assert equal_error_rate([0, 1], [0.2, 0.8]) == 0.0
    assert tpr_at_fpr([0, 1], [0.2, 0.8]) == 1.0


def test_eer_equals_the_crossing_on_sklearn_roc(scores):
    y, p = scores
    fpr, tpr, _ = skm.roc_curve(y, p)
    eer = equal_error_rate(y, p)
    fnr = 1 - tpr
    # the EER lies between the fpr and fnr of the operating point nearest the crossing
    i = int(np.nanargmin(np.abs(fnr - fpr)))
    assert min(fpr[i], fnr[i]) - 0.02 <= eer <= max(fpr[i], fnr[i]) + 0.02


def test_ece_by_hand():
    # 15 equal bins: 0.1 -> bin 1, 0.4 -> bin 6, 0.6 -> bin 9, 0.9 -> bin 13; one example each
    y = [0, 1, 0, 1]
    p = [0.1, 0.4, 0.6, 0.9]
    expected = (0.1 + 0.6 + 0.6 + 0.1) / 4
    assert expected_calibration_error(y, p) == pytest.approx(expected)
    # two examples in one bin: |mean(y) - mean(p)|
    assert expected_calibration_error([0, 1], [0.51, 0.53]) == pytest.approx(abs(0.5 - 0.52))


def test_one_class_and_empty_are_none_not_nan():
    m = binary_metrics([1, 1, 1], [0.2, 0.7, 0.9])
    assert m["roc_auc"] is None and m["average_precision"] is None and m["eer"] is None
    assert m["accuracy"] == pytest.approx(2 / 3) and m["n_real"] == 0
    empty = binary_metrics([], [])
    assert empty["n"] == 0 and empty["accuracy"] is None and empty["roc_auc"] is None


@pytest.mark.parametrize(
    "labels, probs, message",
    [([0, 1], [0.2, float("nan")], "NaN"), ([0, 2], [0.1, 0.2], r"0 \(real\) or 1"), ([0, 1], [0.1], "differ"),
     ([0, 1], [0.1, 1.5], r"\[0, 1\]")],
)
def test_bad_binary_inputs_raise(labels, probs, message):
    with pytest.raises(ValueError, match=message):
        binary_metrics(labels, probs)


# --------------------------------------------------------------------------- boxes and pixels


def test_box_metrics_match_torchvision():
    truth = [[0, 0, 10, 10], [10, 10, 30, 30], [0, 0, 100, 50], [5, 5, 15, 15]]
    preds = [[0, 0, 10, 10], [15, 15, 35, 35], [0, 0, 100, 26], None]
    m = box_metrics(preds, truth, [True, True, True, True])
    ref = [float(box_iou(torch.tensor([p], dtype=torch.float64), torch.tensor([t], dtype=torch.float64))[0, 0])
           for p, t in zip(preds[:3], truth[:3], strict=True)] + [0.0]
    assert m["mean_iou"] == pytest.approx(float(np.mean(ref)))
    assert ref[2] == pytest.approx(0.52)  # a hit at IoU 0.5 but not at seed 001's 0.55
    assert m["hit_rate@0.5"] == pytest.approx(2 / 4)
    assert m["hit_rate@0.55"] == pytest.approx(1 / 4)
    assert m["n_boxes"] == 4


def test_box_metrics_skip_images_without_a_true_box_and_take_the_best_match():
    m = box_metrics([[0, 0, 10, 10], [0, 0, 4, 4]], [[], [[50, 50, 60, 60], [0, 0, 4, 4]]])
    assert m["n_boxes"] == 1 and m["mean_iou"] == pytest.approx(1.0)
    m = box_metrics([[0, 0, 10, 10]], [[0, 0, 10, 10]], has_box=[False])
    assert m["n_boxes"] == 0 and m["mean_iou"] is None and m["hit_rate@0.55"] is None
    with pytest.raises(ValueError, match="pred_boxes\\[0\\]"):
        box_metrics([[0, 0, 10]], [[0, 0, 1, 1]])


def test_pixel_metrics_match_sklearn():
    rng = np.random.default_rng(1)
    true = [rng.random((16, 12)) > 0.7 for _ in range(3)]
    prob = [rng.random((16, 12)) for _ in range(3)]
    m = pixel_metrics(prob, [t.astype(np.uint8) * 255 for t in true], threshold=0.6)
    pairs = list(zip(true, prob, strict=True))
    assert m["pixel_f1"] == pytest.approx(np.mean([skm.f1_score(t.ravel(), (p >= 0.6).ravel()) for t, p in pairs]))
    assert m["pixel_iou"] == pytest.approx(np.mean([skm.jaccard_score(t.ravel(), (p >= 0.6).ravel())
                                                    for t, p in pairs]))
    # best threshold per image: the maximum over every cut of the image's own scores (sklearn's PR curve)
    best = []
    for t, p in pairs:
        prec, rec, _ = skm.precision_recall_curve(t.ravel(), p.ravel())
        best.append(np.nanmax(2 * prec * rec / np.where(prec + rec > 0, prec + rec, np.nan)))
    assert m["pixel_f1_best"] == pytest.approx(np.mean(best))
    assert m["pixel_f1_best"] >= m["pixel_f1"] and m["pixel_iou_best"] >= m["pixel_iou"]
    assert m["pixel_iou_best"] == pytest.approx(np.mean([f / (2 - f) for f in best]))
    # PIL masks, a missing prediction (all authentic) and a skipped image
    pil = Image.fromarray((true[0] * 255).astype(np.uint8), "L")
    m2 = pixel_metrics([None, prob[1]], [pil, None])
    assert m2["n_masks"] == 1 and m2["pixel_f1"] == 0.0
    with pytest.raises(ValueError, match="shape"):
        pixel_metrics([np.zeros((4, 4))], [np.zeros((4, 5))])


# --------------------------------------------------------------------------- evaluate modules


def test_metric_modules_are_listed():
    assert {"hubdet_binary", "hubdet_boxes", "hubdet_pixels"} <= set(list_metrics())


def test_binary_module_offline_matches_sklearn(scores, monkeypatch, tmp_path):
    monkeypatch.setenv("HF_MODULES_CACHE", str(tmp_path / "modules"))
    y, p = scores
    metric = load_metric("hubdet_binary")
    out = metric.compute(predictions=p.tolist(), references=y.tolist(), threshold=0.4)
    assert out["roc_auc"] == pytest.approx(skm.roc_auc_score(y, p))
    assert out["f1"] == pytest.approx(skm.f1_score(y, (p >= 0.4).astype(int)))
    assert "calibrat" in metric.description.lower() and "scikit" in metric.citation.lower()
    # incremental batches give the same result as one call
    for start in range(0, 200, 64):
        metric.add_batch(predictions=p[start:start + 64].tolist(), references=y[start:start + 64].tolist())
    assert metric.compute()["average_precision"] == pytest.approx(skm.average_precision_score(y, p))


def test_box_and_pixel_modules_offline(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_MODULES_CACHE", str(tmp_path / "modules"))
    boxes = load_metric("hubdet_boxes")
    out = boxes.compute(predictions=[[[0, 0, 10, 10]], [], [[0, 0, 5, 5]]],
                        references=[[[0, 0, 10, 20]], [[1, 1, 3, 3]], []])
    assert out["mean_iou"] == pytest.approx((0.5 + 0.0) / 2) and out["n_boxes"] == 2
    pixels = load_metric("hubdet_pixels")
    out = pixels.compute(predictions=[[[1, 0], [0, 0]]], references=[[[1, 1], [0, 0]]])
    assert out["pixel_iou"] == pytest.approx(0.5) and out["pixel_f1"] == pytest.approx(2 / 3)


def test_unknown_metric_name_suggests():
    with pytest.raises(KeyError, match="hubdet_binary"):
        load_metric("hubdet_binar")


# --------------------------------------------------------------------------- perturbations


def _image(seed: int = 0, size: tuple[int, int] = (40, 32)) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8), "RGB")


def test_protocol_has_the_issue_perturbations():
    names = [p.name for p in PROTOCOL]
    assert names == ["clean", "jpeg_q95", "jpeg_q75", "jpeg_q50", "blur_s1", "blur_s2", "jitter", "downscale_0.5"]


def test_perturbations_change_pixels_as_expected():
    img = _image()
    arr = np.asarray(img, dtype=np.float64)
    assert np.array_equal(np.asarray(apply_perturbation(img, PROTOCOL[0])), arr)
    err = {q: np.abs(np.asarray(apply_perturbation(img, Perturbation(f"q{q}", kind="jpeg", quality=q)),
                                np.float64) - arr).mean() for q in (95, 50)}
    assert 0 < err[95] < err[50]
    std = {s: np.asarray(apply_perturbation(img, Perturbation(f"b{s}", kind="blur", sigma=s)), np.float64).std()
           for s in (1.0, 2.0)}
    assert std[2.0] < std[1.0] < arr.std()
    small = apply_perturbation(img, Perturbation("d", kind="downscale", factor=0.5))
    assert small.size == (20, 16)


def test_jitter_is_deterministic_per_image_and_varies_between_images():
    jit = Perturbation("jitter", kind="jitter")
    img = _image(3)
    a = np.asarray(jit(img, key="Real/a.png"))
    b = np.asarray(jit(img, key="Real/a.png"))
    c = np.asarray(jit(img, key="Fake/b.png"))
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)
    assert not np.array_equal(a, np.asarray(img))


def test_resolve_perturbations_and_drops():
    perts = resolve_perturbations(["blur_s1", {"name": "jpeg_q30", "kind": "jpeg", "quality": 30}])
    assert [p.name for p in perts] == ["clean", "blur_s1", "jpeg_q30"]
    with pytest.raises(KeyError, match="blur_s1"):
        resolve_perturbations(["blur_s3"])
    with pytest.raises(ValueError, match="twice"):
        resolve_perturbations(["blur_s1", "blur_s1"])
    with pytest.raises(ValueError, match="unknown key"):
        resolve_perturbations([{"name": "x", "kind": "jpeg", "qualty": 3}])
    drops = metric_drops({"roc_auc": 0.9, "eer": 0.1, "f1": None}, {"roc_auc": 0.7, "eer": 0.3, "f1": 0.5})
    assert drops["roc_auc"] == pytest.approx(0.2) and drops["eer"] == pytest.approx(0.2) and drops["f1"] is None
