"""Optimizer, learning-rate schedules, gradual unfreezing, and which way a monitored metric improves."""

from __future__ import annotations

import difflib
import logging
import math
from collections.abc import Iterable, Mapping
from typing import Any

import torch

from hubdet._core.errors import ConfigError
from hubdet.training.config import OptimConfig, TrainingConfig

logger = logging.getLogger(__name__)

#: Prefixes of the names in a run's history: training-loop numbers, validation and test metrics.
SPLIT_PREFIXES = ("train_", "val_", "test_")


def build_optimizer(params: Iterable[torch.nn.Parameter], cfg: OptimConfig) -> torch.optim.Optimizer:
    """AdamW, Adam or SGD (momentum, Nesterov) over ``params``."""
    params = list(params)
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov,
                               weight_decay=cfg.weight_decay)
    cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    return cls(params, lr=cfg.lr, betas=tuple(cfg.betas), weight_decay=cfg.weight_decay)


def build_schedulers(optimizer: torch.optim.Optimizer, cfg: OptimConfig, steps_per_epoch: int,
                     epochs: int) -> tuple[torch.optim.lr_scheduler.LambdaLR, Any]:
    """A per-optimizer-step LambdaLR (warm-up, cosine, step) and an optional per-epoch ReduceLROnPlateau."""
    total = max(1, steps_per_epoch * epochs)
    floor = min(cfg.min_lr / cfg.lr, 1.0)

    def factor(step: int) -> float:
        if cfg.warmup_steps and step < cfg.warmup_steps:
            return (step + 1) / cfg.warmup_steps
        if cfg.scheduler == "cosine":
            progress = min(1.0, (step - cfg.warmup_steps) / max(1, total - cfg.warmup_steps))
            return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))
        if cfg.scheduler == "step":
            return cfg.gamma ** (step // max(1, steps_per_epoch * cfg.step_epochs))
        return 1.0

    per_step = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    plateau = None
    if cfg.scheduler == "plateau":
        plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode=metric_mode(cfg.plateau_monitor), factor=cfg.plateau_factor,
            patience=cfg.plateau_patience, min_lr=cfg.min_lr)
    return per_step, plateau


def prepare_trainable(accelerator: Any, detector: torch.nn.Module, optimizer: torch.optim.Optimizer,
                      loader: Any, *, unfreeze_later: bool) -> tuple[Any, Any, Any]:
    """``accelerator.prepare`` of a gradient-trained detector. DDP only synchronises parameters that require grad
    when it is built, so with ``unfreeze_later`` on several processes the frozen ones are briefly unfrozen."""
    frozen = [p for p in detector.parameters() if not p.requires_grad]
    frozen = frozen if unfreeze_later and accelerator.num_processes > 1 else []
    for p in frozen:
        p.requires_grad_(True)
    prepared = accelerator.prepare(detector, optimizer, loader)
    for p in frozen:
        p.requires_grad_(False)
    return prepared


def unfreeze(detector: torch.nn.Module) -> int:
    """Make every parameter trainable; return how many tensors were frozen."""
    frozen = [p for p in detector.parameters() if not p.requires_grad]
    for p in frozen:
        p.requires_grad_(True)
    return len(frozen)


# --------------------------------------------------------------------------- monitored metrics


def metric_mode(name: str, mode: str = "auto") -> str:
    """``min`` or ``max``: ``mode`` unless ``auto``, else the metric table's direction of ``name`` without its
    ``train_``/``val_``/``test_`` prefix (``val_loss`` -> loss -> lower -> ``min``)."""
    if mode != "auto":
        return mode
    from hubdet.eval.metric_table import get_metric, metric_names

    base = next((name[len(p):] for p in SPLIT_PREFIXES if name.startswith(p)), name)
    if base not in metric_names(scored=True):
        known = [p + m for p in SPLIT_PREFIXES for m in metric_names(scored=True)]
        close = difflib.get_close_matches(name, known, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ConfigError(f"{name!r} is not a metric with a direction{hint}; use one of the metric table's scores "
                          "with a train_/val_ prefix, or set the mode (min/max) yourself")
    direction = get_metric(base).direction
    return "min" if direction == "lower" else "max"


def improved(value: float | None, best: float | None, mode: str, min_delta: float = 0.0) -> bool:
    """Whether ``value`` beats ``best`` by more than ``min_delta`` (undefined values never do)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return False
    return best is None or (value < best - min_delta if mode == "min" else value > best + min_delta)


def check_monitors(cfg: TrainingConfig, metrics: Mapping[str, Any]) -> None:
    """A misspelt monitor must not silently stop a run or never pick a best epoch."""
    wanted = {"train.best_metric": cfg.train.best_metric}
    if cfg.train.early_stopping_patience is not None:
        wanted["train.early_stopping_monitor"] = cfg.train.early_stopping_monitor
    if cfg.optim.scheduler == "plateau":
        wanted["optim.plateau_monitor"] = cfg.optim.plateau_monitor
    for key, name in wanted.items():
        if name not in metrics:
            close = difflib.get_close_matches(name, list(metrics), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"{key}: {name!r} is not a reported metric{hint}; reported: {sorted(metrics)}")
