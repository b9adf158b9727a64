"""Temperature scaling fitted on a validation split, and the verdict rule."""

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


def calibrated_probs(logits: torch.Tensor, cal: CalibrationConfig) -> torch.Tensor:
    """Calibrated fake probability of raw logits."""
    return torch.sigmoid(logits.float() / cal.temperature)


def verdict(prob: float, cal: CalibrationConfig) -> str:
    """``fake`` / ``real`` / ``uncertain`` for a calibrated probability."""
    if prob >= cal.uncertain_high and prob >= cal.threshold:
        return "fake"
    if prob < cal.uncertain_low or (prob < cal.threshold and cal.uncertain_low == cal.uncertain_high):
        return "real"
    return "uncertain"
