"""Calibration (temperature or Platt scaling) fitted on a validation split, thresholds for a target false-positive
rate, and the verdict rule."""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F

from hubdet.models.config import CalibrationConfig

logger = logging.getLogger(__name__)


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor, *, max_iter: int = 200) -> tuple[float, float, float]:
    """Fit ``T`` minimising the binary NLL of ``sigmoid(logits / T)``; return ``(T, nll_before, nll_after)``."""
    logits = logits.detach().double().flatten()
    labels = labels.detach().double().flatten()
    if logits.numel() != labels.numel() or logits.numel() == 0:
        raise ValueError(
            f"calibration needs matching, non-empty logits and labels ({logits.numel()}, {labels.numel()})"
        )
    log_t = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([log_t], lr=0.1, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = F.binary_cross_entropy_with_logits(logits / log_t.exp(), labels)
        loss.backward()
        return loss

    with torch.no_grad():
        before = float(F.binary_cross_entropy_with_logits(logits, labels))
    opt.step(closure)
    temperature = float(log_t.detach().exp().clamp(1e-3, 1e3))
    with torch.no_grad():
        after = float(F.binary_cross_entropy_with_logits(logits / temperature, labels))
    if after > before:  # never make calibration worse than identity
        temperature, after = 1.0, before
    logger.info("temperature %.4f: NLL %.4f -> %.4f", temperature, before, after)
    return temperature, before, after


def fit_platt(logits: torch.Tensor, labels: torch.Tensor, *, max_iter: int = 200) -> tuple[float, float, float, float]:
    """Fit ``sigmoid(logits / T + b)`` (Platt scaling with a positive slope) by NLL; return ``(T, b, before, after)``.

    A head trained with balanced class weights puts its decision boundary at logit 0 whatever the class balance;
    the bias moves it where the validation data says, which temperature scaling alone cannot do."""
    logits = logits.detach().double().flatten()
    labels = labels.detach().double().flatten()
    if logits.numel() != labels.numel() or logits.numel() == 0:
        raise ValueError(
            f"calibration needs matching, non-empty logits and labels ({logits.numel()}, {labels.numel()})"
        )
    params = torch.zeros(2, dtype=torch.float64, requires_grad=True)  # log(1/T), b
    opt = torch.optim.LBFGS([params], lr=0.1, max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = F.binary_cross_entropy_with_logits(logits * params[0].exp() + params[1], labels)
        loss.backward()
        return loss

    with torch.no_grad():
        before = float(F.binary_cross_entropy_with_logits(logits, labels))
    opt.step(closure)
    temperature = float((-params[0]).detach().exp().clamp(1e-3, 1e3))
    bias = float(params[1].detach())
    with torch.no_grad():
        after = float(F.binary_cross_entropy_with_logits(logits / temperature + bias, labels))
    if after > before:
        temperature, bias, after = 1.0, 0.0, before
    logger.info("Platt scaling: T %.4f, bias %.4f: NLL %.4f -> %.4f", temperature, bias, before, after)
    return temperature, bias, before, after


def fit_thresholds(probs: torch.Tensor, labels: torch.Tensor, *, max_fpr: float) -> tuple[float, float]:
    """``(uncertain_low, threshold)`` for calibrated probabilities: ``threshold`` is the lowest probability at which
    at most ``max_fpr`` of the real images (label 0) are called fake; ``uncertain_low`` the highest at which at most
    ``max_fpr`` of the fakes are called real (never above ``threshold``). Between the two a verdict is uncertain."""
    import numpy as np

    p = probs.detach().double().flatten().numpy()
    y = labels.detach().flatten().numpy().astype(int)
    real, fake = np.sort(p[y == 0]), np.sort(p[y == 1])
    if not len(real) or not len(fake):
        raise ValueError("fit_thresholds needs both real and fake validation images")
    allowed = int(np.floor(max_fpr * len(real)))  # reals allowed at or above the threshold
    threshold = float(np.nextafter(real[len(real) - allowed - 1], 1.0)) if allowed < len(real) else 0.0
    missed = int(np.floor(max_fpr * len(fake)))  # fakes allowed below uncertain_low
    low = float(fake[missed]) if missed < len(fake) else 1.0
    threshold = min(max(threshold, 1e-6), 1.0)
    return min(low, threshold), threshold


def calibrated_logits(logits: torch.Tensor, cal: CalibrationConfig) -> torch.Tensor:
    """Calibrated fake logits ``logit / T + bias`` (what ensembles fuse)."""
    return logits.float() / cal.temperature + cal.bias


def calibrated_probs(logits: torch.Tensor, cal: CalibrationConfig) -> torch.Tensor:
    """Calibrated fake probability of raw logits."""
    return torch.sigmoid(calibrated_logits(logits, cal))


def verdict(prob: float, cal: CalibrationConfig) -> str:
    """``fake`` / ``real`` / ``uncertain`` for a calibrated probability."""
    if prob >= cal.uncertain_high and prob >= cal.threshold:
        return "fake"
    if prob < cal.uncertain_low or (prob < cal.threshold and cal.uncertain_low == cal.uncertain_high):
        return "real"
    return "uncertain"
