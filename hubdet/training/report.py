"""What a run leaves behind besides weights: the model card's arguments (test results in ``model-index``), the
training curves, TensorBoard hyper-parameters and a weights digest."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from hubdet.data.augment import AugmentConfig
from hubdet.training.config import DataConfig, TrainingConfig

CURVES_FILE = "training_curves.png"
HISTORY_FILE = "history.json"


def split_revision(hf_ds: Any, cfg: DataConfig) -> str:
    """A content fingerprint of an evaluated split (its files and labels, and how it was carved) for the card."""
    if cfg.repo_id and cfg.options.get("revision"):
        return str(cfg.options["revision"])
    h = hashlib.sha256()
    files = hf_ds["file"] if "file" in hf_ds.column_names else [str(i) for i in range(len(hf_ds))]
    for f, y in zip(files, hf_ds["label"], strict=True):
        h.update(f"{f}\0{y}\n".encode())
    h.update(json.dumps({"split_seed": cfg.split_seed, "reencode": cfg.reencode}, sort_keys=True).encode())
    return "sha256:" + h.hexdigest()[:16]


def card_kwargs(cfg: TrainingConfig, splits: dict[str, Any], results: dict[str, dict[str, Any]],
                summary: dict[str, Any]) -> dict[str, Any]:
    """``render_card`` arguments: every scored metric of the metric table on the test split (validation's when
    there is no test split), the training recipe and the data."""
    from hubdet.eval.metric_table import metric_names

    role = "test" if "test" in results else "validation"
    metrics = results[role]
    dataset_id = cfg.data.repo_id or cfg.data.source
    dataset_name = f"{cfg.data.source} ({cfg.data.repo_id or Path(cfg.data.data_dir or '.').name})"
    revision = split_revision(splits[role], cfg.data)
    eval_results = [{"dataset": dataset_id, "dataset_name": dataset_name, "split": role, "revision": revision,
                     "metrics": {k: metrics[k] for k in metric_names(scored=True) if metrics.get(k) is not None}}]
    o = cfg.optim
    training = {
        "trainer": "training/train.py (hubdet)", "detector": cfg.model.name, "pretrained": cfg.model.pretrained,
        "epochs": f"{summary['epochs_run']} of {cfg.train.epochs}", "batch size per process": cfg.train.batch_size,
        "processes": summary["processes"],
        "optimizer": f"{o.optimizer} lr={o.lr:g} wd={o.weight_decay:g}"
                     + (f" momentum={o.momentum:g}" if o.optimizer == "sgd" else ""),
        "schedule": o.scheduler + (f" (warm-up {o.warmup_steps} steps)" if o.warmup_steps else ""),
        "gradient accumulation": o.grad_accum_steps,
        "augmentation": "none" if cfg.augment.is_identity else json.dumps(
            {k: v for k, v in cfg.augment.to_dict().items() if v != getattr(AugmentConfig(), k)}),
        "class balance": cfg.data.balance, "seed": cfg.train.seed, "best epoch": summary["best_epoch"],
        f"best {cfg.train.best_metric}": summary["best_value"], "optimizer steps": summary["steps"],
    }
    dataset = {"name": dataset_name, "id": dataset_id, "revision": revision,
               "reencode": json.dumps(cfg.data.reencode) if cfg.data.reencode else "none (original files)",
               **{f"{k} images": len(v) for k, v in splits.items()}}
    return {"eval_results": eval_results if eval_results[0]["metrics"] else [], "training": training,
            "dataset": dataset}


def plot_curves(history: list[dict[str, Any]], path: Path) -> Path | None:
    """Loss, accuracy/ROC-AUC/IoU and learning rate per epoch, as one PNG (matplotlib, Agg)."""
    if not history:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] + 1 for h in history]
    panels = [("loss", ["train_loss", "val_loss"]),
              ("quality", ["train_accuracy", "val_accuracy", "val_roc_auc", "val_mean_iou", "val_pixel_f1"]),
              ("learning rate", ["lr"])]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for ax, (title, keys) in zip(axes, panels, strict=True):
        for key in keys:
            ys = [h.get(key) for h in history]
            if any(y is not None for y in ys):
                ax.plot(epochs, [np.nan if y is None else y for y in ys], marker="o", label=key)
        ax.set_title(title)
        ax.set_xlabel("epoch")
        if title == "learning rate" and any(h.get("lr") for h in history):
            ax.set_yscale("log")
        if ax.lines:
            ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def hparams(cfg: TrainingConfig) -> dict[str, Any]:
    """Flat scalar hyperparameters for TensorBoard (mapping and list fields as JSON)."""
    return {k.replace(".", "/"): v if isinstance(v, (int, float, str, bool)) else json.dumps(v)
            for k, v in cfg.flat().items()}


def scalars(prefix: str, metrics: dict[str, Any]) -> dict[str, float]:
    """The numbers of ``metrics`` for ``accelerator.log`` under ``prefix`` (``val_loss`` -> ``val/loss``)."""
    out = {}
    for k, v in metrics.items():
        if isinstance(v, (int, float)) and not isinstance(v, bool) and k not in ("epoch", "step"):
            out[f"{prefix}{k.replace('_', '/', 1) if not prefix else k}"] = v
    return out


def weights_digest(module: torch.nn.Module) -> str:
    """The content digest of ``module.state_dict()`` (:func:`hubdet.models.integrity.tensors_sha256`)."""
    from hubdet.models.integrity import tensors_sha256

    return tensors_sha256(module.state_dict())
