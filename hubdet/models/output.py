"""The one output type of every detector family, and the per-image prediction."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch


@dataclass
class DetectorOutput:
    """What ``Detector.forward`` returns.

    - ``logits``: ``[B]`` raw (uncalibrated) fake logit; ``probs``: ``[B]`` ``sigmoid(logits)``;
    - ``boxes``: ``[B, 4]`` predicted inpainted region ``[xmin, ymin, xmax, ymax]`` normalised to [0, 1] of the
      input (``None`` for families without a box), ``box_scores``: ``[B]`` confidence of each box;
    - ``loss``: only when labels were given; ``losses``: its named components (detached), for logging.
    """

    logits: torch.Tensor
    probs: torch.Tensor
    boxes: torch.Tensor | None = None
    box_scores: torch.Tensor | None = None
    loss: torch.Tensor | None = None
    losses: dict[str, torch.Tensor] = field(default_factory=dict)


@dataclass
class Prediction:
    """One image's calibrated verdict, as returned by ``Detector.predict``.

    ``box`` is in pixels of the ORIGINAL image (``[xmin, ymin, xmax, ymax]``), ``None`` if the detector has no box
    head or finds no region.
    """

    prob: float
    logit: float
    verdict: str  # "real" | "fake" | "uncertain"
    box: list[float] | None = None
    box_score: float | None = None
    width: int = 0
    height: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "prob_fake": self.prob,
            "logit": self.logit,
            "verdict": self.verdict,
            "box": self.box,
            "box_score": self.box_score,
            "width": self.width,
            "height": self.height,
            **({"extra": self.extra} if self.extra else {}),
        }
