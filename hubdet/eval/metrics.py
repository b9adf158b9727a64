"""The metric functions underneath :mod:`hubdet.eval.metric_table` (scikit-learn and torchvision), and its
per-kind entry points ``binary_metrics``/``box_metrics``/``pixel_metrics`` that the ``evaluate`` modules wrap.

A metric that is undefined for the inputs (ROC-AUC with one class only, mean IoU with no true box ...) is
``None``, never ``NaN``, so result files stay valid JSON and a missing class never crashes an evaluation.
"""

from __future__ import annotations

import logging
import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

#: Bins of the expected calibration error and the reliability diagram (equal width on [0, 1]).
ECE_BINS = 15
#: False-positive rate at which the TPR is reported.
LOW_FPR = 0.01



def _as_1d(values: Any, name: str, dtype: Any) -> np.ndarray:
    arr = np.asarray(values if not hasattr(values, "detach") else values.detach().cpu().numpy(), dtype=dtype)
    if arr.ndim != 1:
        arr = arr.reshape(-1)
    return arr


def check_binary_inputs(labels: Any, probs: Any) -> tuple[np.ndarray, np.ndarray]:
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


def float_or_none(x: Any) -> float | None:
    if x is None:
        return None
    x = float(x)
    return None if math.isnan(x) else x


def equal_error_rate(labels: Any, probs: Any) -> float | None:
    """The rate where the false-positive and false-negative rates are equal (interpolated on the ROC curve)."""
    from sklearn.metrics import roc_curve

    y, p = check_binary_inputs(labels, probs)
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

    y, p = check_binary_inputs(labels, probs)
    if len(np.unique(y)) < 2:
        return None
    fpr, tpr, _ = roc_curve(y, p, drop_intermediate=False)
    return float(tpr[fpr <= max_fpr + 1e-12].max())


def calibration_bins(labels: Any, probs: Any, n_bins: int = ECE_BINS) -> dict[str, list[float]]:
    """Reliability-diagram data: per non-empty bin, the mean predicted fake probability, the observed fake
    fraction and the count (bins as in ``sklearn.calibration.calibration_curve(strategy="uniform")``)."""
    from sklearn.calibration import calibration_curve

    y, p = check_binary_inputs(labels, probs)
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


# --------------------------------------------------------------------------- pixels


def mask_scores(mask: Any, where: str) -> np.ndarray:
    """A mask (2-D array, tensor or PIL image; bool, [0, 1] or 0-255) as a float array in [0, 1]."""
    if hasattr(mask, "detach"):
        mask = mask.detach().cpu().numpy()
    if hasattr(mask, "convert") and hasattr(mask, "size"):  # PIL image
        mask = np.asarray(mask.convert("L"), dtype=np.float64) / 255.0
    arr = np.asarray(mask)
    if arr.ndim == 3 and 1 in (arr.shape[0], arr.shape[-1]):
        arr = arr.squeeze()
    if arr.ndim != 2:
        raise ValueError(f"{where}: a mask is a 2-D array, got shape {arr.shape}")
    arr = arr.astype(np.float64)
    if not np.isfinite(arr).all():
        raise ValueError(f"{where}: mask has NaN/inf values")
    if arr.size and arr.max() > 1.0:
        arr = arr / 255.0
    return arr


def mask_f1_iou(pred: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """Pixel F1 and IoU of two boolean masks (both empty: perfect agreement, 1.0)."""
    tp, fp, fn = int((pred & truth).sum()), int((pred & ~truth).sum()), int((~pred & truth).sum())
    f1 = 2 * tp / (2 * tp + fp + fn) if (2 * tp + fp + fn) else 1.0
    iou = tp / (tp + fp + fn) if (tp + fp + fn) else 1.0
    return f1, iou


def best_threshold_f1(scores: np.ndarray, truth: np.ndarray) -> float:
    """The highest pixel F1 of ``scores >= t`` over every threshold ``t`` (including predicting nothing)."""
    s = scores.ravel()
    t = truth.ravel()
    positives = int(t.sum())
    best = 1.0 if positives == 0 else 0.0  # threshold above every score: nothing predicted
    if s.size == 0:
        return best
    order = np.argsort(-s, kind="stable")
    s, t = s[order], t[order]
    tp = np.cumsum(t)
    fp = np.cumsum(~t)
    cut = np.r_[np.flatnonzero(np.diff(s)), s.size - 1]  # last pixel of each run of equal scores
    f1 = 2 * tp[cut] / (tp[cut] + fp[cut] + positives)
    return float(max(best, f1.max()))


# --------------------------------------------------------------------------- the table's functions, by kind
# (kept for the ``evaluate`` modules and callers with plain lists; the definitions are in metric_table)


def binary_metrics(labels: Any, probs: Any, threshold: float = 0.5) -> dict[str, Any]:
    """The ``binary`` metrics of :mod:`hubdet.eval.metric_table` for calibrated fake probabilities ``probs``
    against ``labels`` (0 real, 1 fake); fake is predicted when ``prob >= threshold``."""
    from hubdet.eval.metric_table import Records, compute_metrics

    y, p = check_binary_inputs(labels, probs)
    return compute_metrics(Records(labels=y.tolist(), probs=p.tolist()), threshold=threshold, kinds=("binary",))


def box_metrics(
    pred_boxes: Sequence[Any], true_boxes: Sequence[Any], has_box: Sequence[bool] | None = None
) -> dict[str, Any]:
    """The ``boxes`` metrics of :mod:`hubdet.eval.metric_table` over the images with a true box.

    ``pred_boxes[i]``/``true_boxes[i]``: ``None``, one ``[xmin, ymin, xmax, ymax]`` or a list of them, in the
    same pixel frame. ``has_box`` (default: the true box list is non-empty) selects the images that count; an
    image that counts but has no predicted box scores IoU 0.
    """
    from hubdet.eval.metric_table import Records, compute_metrics

    if len(pred_boxes) != len(true_boxes):
        raise ValueError(f"pred_boxes and true_boxes differ in length ({len(pred_boxes)} vs {len(true_boxes)})")
    if has_box is not None:
        if len(has_box) != len(true_boxes):
            raise ValueError(f"has_box and true_boxes differ in length ({len(has_box)} vs {len(true_boxes)})")
        true_boxes = [t if keep else None for t, keep in zip(true_boxes, has_box, strict=True)]
    return compute_metrics(Records(pred_boxes=list(pred_boxes), true_boxes=list(true_boxes)), threshold=0.5,
                           kinds=("boxes",))


def pixel_metrics(pred_masks: Sequence[Any], true_masks: Sequence[Any], threshold: float = 0.5) -> dict[str, Any]:
    """The ``masks`` metrics of :mod:`hubdet.eval.metric_table`: per-image pixel F1/IoU at ``threshold`` and at
    each image's best threshold, averaged. A ``None`` true mask skips the image; a ``None`` prediction counts as
    all-authentic."""
    from hubdet.eval.metric_table import Records, compute_metrics

    if len(pred_masks) != len(true_masks):
        raise ValueError(f"pred_masks and true_masks differ in length ({len(pred_masks)} vs {len(true_masks)})")
    return compute_metrics(Records(pred_masks=list(pred_masks), true_masks=list(true_masks)), threshold=0.5,
                           kinds=("masks",), pixel_threshold=threshold)

def roc_points(labels: Any, probs: Any) -> dict[str, list[float]] | None:
    """``fpr``/``tpr`` of the ROC curve (for plots), ``None`` with one class."""
    from sklearn.metrics import roc_curve

    y, p = check_binary_inputs(labels, probs)
    if len(np.unique(y)) < 2:
        return None
    fpr, tpr, _ = roc_curve(y, p)
    return {"fpr": fpr.tolist(), "tpr": tpr.tolist()}
