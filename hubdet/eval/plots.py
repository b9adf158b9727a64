"""ROC curve, reliability diagram and confusion matrix as PNG files (matplotlib, Agg backend)."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path

from hubdet.eval.metrics import binary_metrics, calibration_bins, roc_points

logger = logging.getLogger(__name__)


def _pyplot():  # noqa: ANN202 - matplotlib's module
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def plot_roc(labels: Sequence[int], probs: Sequence[float], path: str | os.PathLike[str], *, title: str = "") -> Path:
    """ROC curve with its AUC (a note instead of a curve when one class is missing)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4, 4), dpi=100)
    pts = roc_points(labels, probs)
    if pts is None:
        ax.text(0.5, 0.5, "ROC undefined:\nonly one class", ha="center", va="center")
    else:
        auc = binary_metrics(labels, probs)["roc_auc"]
        ax.plot(pts["fpr"], pts["tpr"], lw=2, label=f"AUC = {auc:.3f}")
        ax.legend(loc="lower right")
    ax.plot([0, 1], [0, 1], ls="--", c="grey", lw=1)
    ax.set(xlim=(0, 1), ylim=(0, 1.01), xlabel="false positive rate (reals called fake)",
           ylabel="true positive rate (fakes caught)", title=title or "ROC")
    return _save(fig, path)


def plot_reliability(labels: Sequence[int], probs: Sequence[float], path: str | os.PathLike[str], *,
                     title: str = "") -> Path:
    """Reliability diagram: observed fake fraction against mean predicted probability, with the ECE."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4, 4), dpi=100)
    bins = calibration_bins(labels, probs)
    ece = binary_metrics(labels, probs)["ece"]
    ax.plot([0, 1], [0, 1], ls="--", c="grey", lw=1, label="perfect calibration")
    if bins["count"]:
        ax.plot(bins["prob_pred"], bins["prob_true"], marker="o", lw=2,
                label=f"ECE = {ece:.3f}" if ece is not None else "model")
    ax.legend(loc="upper left")
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="mean predicted P(fake)", ylabel="observed fraction fake",
           title=title or "Reliability")
    return _save(fig, path)


def plot_confusion(labels: Sequence[int], probs: Sequence[float], path: str | os.PathLike[str], *,
                   threshold: float = 0.5, title: str = "") -> Path:
    """Confusion matrix (rows: truth, columns: prediction at ``threshold``)."""
    from sklearn.metrics import ConfusionMatrixDisplay

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4, 4), dpi=100)
    cm = binary_metrics(labels, probs, threshold=threshold)["confusion_matrix"] or [[0, 0], [0, 0]]
    import numpy as np

    ConfusionMatrixDisplay(np.asarray(cm), display_labels=["real", "fake"]).plot(ax=ax, colorbar=False,
                                                                                 values_format="d")
    ax.set_title(title or f"Confusion (threshold {threshold:g})")
    return _save(fig, path)


def _save(fig: object, path: str | os.PathLike[str]) -> Path:
    plt = _pyplot()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()  # type: ignore[attr-defined]
    fig.savefig(path)  # type: ignore[attr-defined]
    plt.close(fig)
    return path


def write_plots(labels: Sequence[int], probs: Sequence[float], out_dir: str | os.PathLike[str], *, prefix: str,
                threshold: float = 0.5) -> dict[str, Path]:
    """Write ``<prefix>_roc.png``, ``<prefix>_reliability.png`` and ``<prefix>_confusion.png``."""
    out = Path(out_dir)
    paths = {
        "roc": plot_roc(labels, probs, out / f"{prefix}_roc.png", title=f"ROC: {prefix}"),
        "reliability": plot_reliability(labels, probs, out / f"{prefix}_reliability.png",
                                        title=f"Reliability: {prefix}"),
        "confusion": plot_confusion(labels, probs, out / f"{prefix}_confusion.png", threshold=threshold,
                                    title=f"Confusion: {prefix}"),
    }
    logger.info("wrote plots %s", ", ".join(str(p) for p in paths.values()))
    return paths
