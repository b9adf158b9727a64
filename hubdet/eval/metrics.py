"""Plain metric functions (scikit-learn and torchvision underneath); the ``evaluate`` modules delegate here.

Every function returns a JSON-ready ``dict`` of Python floats/ints. A metric that is undefined for the inputs
(ROC-AUC with one class only, mean IoU with no true box ...) is ``None``, never ``NaN``, so result files stay
valid JSON and a missing class never crashes an evaluation.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

#: IoU thresholds of the box hit rates: 0.5 (PASCAL VOC) and 0.55 (seed 001's "successful prediction").
HIT_RATE_IOUS: tuple[float, ...] = (0.5, 0.55)
#: Bins of the expected calibration error and the reliability diagram (equal width on [0, 1]).
ECE_BINS = 15
#: False-positive rate at which the TPR is reported.
LOW_FPR = 0.01

BINARY_KEYS = (
    "accuracy", "precision", "recall", "f1", "roc_auc", "average_precision", "eer", "tpr_at_1pct_fpr", "ece",
    "n", "n_real", "n_fake", "threshold", "confusion_matrix",
)


def _as_1d(values: Any, name: str, dtype: Any) -> np.ndarray:
    arr = np.asarray(values if not hasattr(values, "detach") else values.detach().cpu().numpy(), dtype=dtype)
    if arr.ndim != 1:
        arr = arr.reshape(-1)
    return arr


def _check_binary_inputs(labels: Any, probs: Any) -> tuple[np.ndarray, np.ndarray]:
    y = _as_1d(labels, "labels", np.float64)
    p = _as_1d(probs, "probs", np.float64)
    if y.shape != p.shape:
        raise ValueError(f"labels and probs differ in length ({y.size} vs {p.size})")
    if y.size and not np.isin(y, (0, 1)).all():
        bad = sorted(set(np.unique(y[~np.isin(y, (0, 1))]).tolist()))[:5]
        raise ValueError(f"labels must be 0 (real) or 1 (fake); found {bad}")
    if not np.isfinite(p).all():
        raise ValueError(f"probs contain {int((~np.isfinite(p)).sum())} NaN/inf value(s)")
    if p.size and (p.min() < 0 or p.max() > 1):
        raise ValueError(f"probs must lie in [0, 1]; found range [{p.min():.4g}, {p.max():.4g}]")
    return y.astype(np.int64), p


def _float_or_none(x: Any) -> float | None:
    if x is None:
        return None
    x = float(x)
    return None if math.isnan(x) else x


def equal_error_rate(labels: Any, probs: Any) -> float | None:
    """The rate where the false-positive and false-negative rates are equal (interpolated on the ROC curve)."""
    from sklearn.metrics import roc_curve

    y, p = _check_binary_inputs(labels, probs)
    if len(np.unique(y)) < 2:
        return None
    fpr, tpr, _ = roc_curve(y, p, drop_intermediate=False)
    fnr = 1.0 - tpr
    diff = fnr - fpr  # starts at 1 (fpr=0, fnr=1) and falls to -1
    i = int(np.argmax(diff <= 0))
    if i == 0:
        return float(fpr[0])
    d0, d1 = diff[i - 1], diff[i]
    t = d0 / (d0 - d1) if d0 != d1 else 0.0
    return float(fpr[i - 1] + t * (fpr[i] - fpr[i - 1]))


def tpr_at_fpr(labels: Any, probs: Any, max_fpr: float = LOW_FPR) -> float | None:
    """The highest true-positive rate among operating points with a false-positive rate <= ``max_fpr``."""
    from sklearn.metrics import roc_curve

    y, p = _check_binary_inputs(labels, probs)
    if len(np.unique(y)) < 2:
        return None
    fpr, tpr, _ = roc_curve(y, p, drop_intermediate=False)
    return float(tpr[fpr <= max_fpr + 1e-12].max())


def calibration_bins(labels: Any, probs: Any, n_bins: int = ECE_BINS) -> dict[str, list[float]]:
    """Reliability-diagram data: per non-empty bin, the mean predicted fake probability, the observed fake
    fraction and the count (bins as in ``sklearn.calibration.calibration_curve(strategy="uniform")``)."""
    from sklearn.calibration import calibration_curve

    y, p = _check_binary_inputs(labels, probs)
    if y.size == 0:
        return {"prob_pred": [], "prob_true": [], "count": []}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prob_true, prob_pred = calibration_curve(y, p, n_bins=n_bins, strategy="uniform", pos_label=1)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    ids = np.searchsorted(edges[1:-1], p)  # the same binning as calibration_curve
    counts = np.bincount(ids, minlength=n_bins)
    counts = counts[counts > 0]
    return {"prob_pred": prob_pred.tolist(), "prob_true": prob_true.tolist(), "count": counts.tolist()}


def expected_calibration_error(labels: Any, probs: Any, n_bins: int = ECE_BINS) -> float | None:
    """ECE of the fake probability: sum over bins of ``(n_bin / n) * |observed fake fraction - mean prob|``."""
    bins = calibration_bins(labels, probs, n_bins)
    total = sum(bins["count"])
    if total == 0:
        return None
    triples = zip(bins["count"], bins["prob_true"], bins["prob_pred"], strict=True)
    return float(sum(c / total * abs(t - q) for c, t, q in triples))


def binary_metrics(labels: Any, probs: Any, threshold: float = 0.5) -> dict[str, Any]:
    """Real-vs-fake metrics of calibrated fake probabilities ``probs`` against ``labels`` (0 real, 1 fake).

    Threshold metrics (accuracy, precision, recall, F1, confusion matrix ``[[tn, fp], [fn, tp]]``) predict fake
    when ``prob >= threshold``. Ranking metrics (``roc_auc``, ``average_precision``, ``eer``,
    ``tpr_at_1pct_fpr``) are ``None`` when only one class is present; everything is ``None`` for no examples.
    """
    from sklearn.metrics import (
        accuracy_score,
        average_precision_score,
        confusion_matrix,
        precision_recall_fscore_support,
        roc_auc_score,
    )

    if not 0.0 <= float(threshold) <= 1.0:
        raise ValueError(f"threshold must be in [0, 1], got {threshold}")
    y, p = _check_binary_inputs(labels, probs)
    n_fake = int(y.sum())
    out: dict[str, Any] = dict.fromkeys(BINARY_KEYS)
    out.update(n=int(y.size), n_real=int(y.size - n_fake), n_fake=n_fake, threshold=float(threshold))
    if y.size == 0:
        return out
    pred = (p >= threshold).astype(np.int64)
    precision, recall, f1, _ = precision_recall_fscore_support(
        y, pred, average="binary", pos_label=1, zero_division=0
    )
    cm = confusion_matrix(y, pred, labels=[0, 1])
    out.update(
        accuracy=float(accuracy_score(y, pred)),
        precision=float(precision),
        recall=float(recall),
        f1=float(f1),
        confusion_matrix=cm.astype(int).tolist(),
        ece=expected_calibration_error(y, p),
    )
    if 0 < n_fake < y.size:
        out.update(
            roc_auc=_float_or_none(roc_auc_score(y, p)),
            average_precision=_float_or_none(average_precision_score(y, p)),
            eer=equal_error_rate(y, p),
            tpr_at_1pct_fpr=tpr_at_fpr(y, p, LOW_FPR),
        )
    return out


# --------------------------------------------------------------------------- boxes


def _normalise_box_list(item: Any, where: str) -> list[list[float]]:
    """``None`` / ``[]`` -> no box; ``[x0, y0, x1, y1]`` -> one box; ``[[...], ...]`` -> several."""
    if item is None:
        return []
    arr = np.asarray(item.detach().cpu().numpy() if hasattr(item, "detach") else item, dtype=np.float64)
    if arr.size == 0:
        return []
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise ValueError(f"{where}: a box is [xmin, ymin, xmax, ymax], got shape {tuple(arr.shape)}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{where}: box has NaN/inf coordinates")
    return arr.tolist()


def box_ious(pred_boxes: Sequence[Any], true_boxes: Sequence[Any]) -> list[float | None]:
    """Per image, the IoU of the predicted box with the best-matching true box (``torchvision.ops.box_iou``).

    ``None`` where the image has no true box; ``0.0`` where it has one but no box was predicted. Several
    predicted boxes per image are allowed: the best pair counts.
    """
    import torch
    from torchvision.ops import box_iou

    if len(pred_boxes) != len(true_boxes):
        raise ValueError(f"pred_boxes and true_boxes differ in length ({len(pred_boxes)} vs {len(true_boxes)})")
    out: list[float | None] = []
    for i, (pb, tb) in enumerate(zip(pred_boxes, true_boxes, strict=True)):
        truth = _normalise_box_list(tb, f"true_boxes[{i}]")
        if not truth:
            out.append(None)
            continue
        pred = _normalise_box_list(pb, f"pred_boxes[{i}]")
        if not pred:
            out.append(0.0)
            continue
        t = torch.tensor(truth, dtype=torch.float64)
        q = torch.tensor(pred, dtype=torch.float64)
        # torchvision divides by the union: a degenerate predicted box against a degenerate truth gives NaN
        iou = torch.nan_to_num(box_iou(q, t), nan=0.0)
        out.append(float(iou.max()))
    return out


def box_metrics(
    pred_boxes: Sequence[Any], true_boxes: Sequence[Any], has_box: Sequence[bool] | None = None
) -> dict[str, Any]:
    """Localisation metrics over the images with a true box.

    ``pred_boxes[i]``/``true_boxes[i]``: ``None``, one ``[xmin, ymin, xmax, ymax]`` or a list of them, in the
    same pixel frame (hubdet predictions are in ORIGINAL pixels, like the dataset's ``boxes``). ``has_box``
    (default: the true box list is non-empty) selects the images that count; an image that counts but has no
    predicted box scores IoU 0. Returns ``mean_iou``, ``median_iou``, ``hit_rate@0.5``, ``hit_rate@0.55``
    (fraction with IoU >= threshold; 0.55 is seed 001's success criterion), ``n_boxes``.
    """
    if has_box is not None and len(has_box) != len(true_boxes):
        raise ValueError(f"has_box and true_boxes differ in length ({len(has_box)} vs {len(true_boxes)})")
    ious = box_ious(pred_boxes, true_boxes)
    keep = [
        iou for i, iou in enumerate(ious)
        if iou is not None and (has_box is None or bool(has_box[i]))
    ]
    out: dict[str, Any] = {"mean_iou": None, "median_iou": None, "n_boxes": len(keep)}
    for thr in HIT_RATE_IOUS:
        out[f"hit_rate@{thr:g}"] = None
    if keep:
        arr = np.asarray(keep)
        out["mean_iou"] = float(arr.mean())
        out["median_iou"] = float(np.median(arr))
        for thr in HIT_RATE_IOUS:
            out[f"hit_rate@{thr:g}"] = float((arr >= thr - 1e-12).mean())
    return out


# --------------------------------------------------------------------------- pixels


def _mask_array(mask: Any, where: str, threshold: float) -> np.ndarray:
    if hasattr(mask, "detach"):
        mask = mask.detach().cpu().numpy()
    if hasattr(mask, "convert") and hasattr(mask, "size"):  # PIL image
        mask = np.asarray(mask.convert("L"), dtype=np.float64) / 255.0
    arr = np.asarray(mask)
    if arr.ndim == 3 and 1 in (arr.shape[0], arr.shape[-1]):
        arr = arr.squeeze()
    if arr.ndim != 2:
        raise ValueError(f"{where}: a mask is a 2-D array, got shape {arr.shape}")
    if arr.dtype == bool:
        return arr
    arr = arr.astype(np.float64)
    if arr.size and arr.max() > 1.0:
        arr = arr / 255.0
    return arr >= threshold


def pixel_metrics(pred_masks: Sequence[Any], true_masks: Sequence[Any], threshold: float = 0.5) -> dict[str, Any]:
    """Pixel-level localisation of manipulated regions.

    Masks are 2-D arrays, tensors or PIL images (white / >= ``threshold`` = manipulated); a ``None`` true mask
    skips the image, a ``None`` predicted mask counts as all-authentic. Returns pooled ``pixel_f1`` and
    ``pixel_iou`` (over all pixels of the counted images), the per-image means ``pixel_f1_mean`` and
    ``pixel_iou_mean``, and ``n_masks``. Pixel counts are summed with numpy (scikit-learn on millions of
    pixels is slow); tests check them against ``sklearn.metrics.f1_score``/``jaccard_score``.
    """
    if len(pred_masks) != len(true_masks):
        raise ValueError(f"pred_masks and true_masks differ in length ({len(pred_masks)} vs {len(true_masks)})")
    tp = fp = fn = 0
    f1s: list[float] = []
    ious: list[float] = []
    for i, (pm, tm) in enumerate(zip(pred_masks, true_masks, strict=True)):
        if tm is None:
            continue
        t = _mask_array(tm, f"true_masks[{i}]", 0.5)
        q = np.zeros_like(t) if pm is None else _mask_array(pm, f"pred_masks[{i}]", threshold)
        if q.shape != t.shape:
            raise ValueError(f"pred_masks[{i}]: shape {q.shape} differs from the true mask's {t.shape}")
        a, b, c = int((q & t).sum()), int((q & ~t).sum()), int((~q & t).sum())
        tp, fp, fn = tp + a, fp + b, fn + c
        denom_f1, denom_iou = 2 * a + b + c, a + b + c
        f1s.append(2 * a / denom_f1 if denom_f1 else 1.0)  # both empty: perfect agreement
        ious.append(a / denom_iou if denom_iou else 1.0)
    out: dict[str, Any] = {"pixel_f1": None, "pixel_iou": None, "pixel_f1_mean": None, "pixel_iou_mean": None,
                           "n_masks": len(f1s)}
    if f1s:
        out["pixel_f1"] = 2 * tp / (2 * tp + fp + fn) if (2 * tp + fp + fn) else 1.0
        out["pixel_iou"] = tp / (tp + fp + fn) if (tp + fp + fn) else 1.0
        out["pixel_f1_mean"] = float(np.mean(f1s))
        out["pixel_iou_mean"] = float(np.mean(ious))
    return out


def roc_points(labels: Any, probs: Any) -> dict[str, list[float]] | None:
    """``fpr``/``tpr`` of the ROC curve (for plots), ``None`` with one class."""
    from sklearn.metrics import roc_curve

    y, p = _check_binary_inputs(labels, probs)
    if len(np.unique(y)) < 2:
        return None
    fpr, tpr, _ = roc_curve(y, p)
    return {"fpr": fpr.tolist(), "tpr": tpr.tolist()}
