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
    - ``masks``: ``[B, H, W]`` per-pixel probability that the pixel was inpainted, at the input's resolution
      (``None`` for families without a map);
    - ``loss``: only when labels were given; ``losses``: its named components (detached), for logging.
    """

    logits: torch.Tensor
    probs: torch.Tensor
    boxes: torch.Tensor | None = None
    box_scores: torch.Tensor | None = None
    masks: torch.Tensor | None = None
    loss: torch.Tensor | None = None
    losses: dict[str, torch.Tensor] = field(default_factory=dict)


#: The verdict of an image a detector cannot judge (too small, extreme aspect ratio, unsupported sample format,
#: unreadable): ``prob`` and ``logit`` are None and ``reason`` says why.
CANNOT_JUDGE = "cannot_judge"


@dataclass
class Prediction:
    """One image's calibrated verdict, as returned by ``Detector.predict``.

    ``box`` is in pixels of the ORIGINAL image (``[xmin, ymin, xmax, ymax]``), ``None`` if the detector has no box
    head or finds no region. Mask-predicting detectors also give ``mask`` (``[H, W]`` float32 probability that each
    pixel of the original image was inpainted) and ``regions`` (one ``{"box", "score", "area_fraction"}`` per
    connected region of ``mask >= 0.5``, best first; ``box`` is the first one's). ``to_dict`` leaves the map out
    (see :meth:`mask_png` for a compact encoding). An image the detector cannot judge has
    ``verdict == "cannot_judge"``, ``prob`` and ``logit`` None, no map and the ``reason`` (see :meth:`cannot_judge`);
    ``notes`` say what the decoder normalised (e.g. "animated image with 3 frames: only the first frame is used").
    """

    prob: float | None
    logit: float | None
    verdict: str  # "real" | "fake" | "uncertain" | "cannot_judge"
    box: list[float] | None = None
    box_score: float | None = None
    width: int = 0
    height: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    mask: Any = None  # numpy [H, W] float32 in [0, 1], original resolution
    regions: list[dict[str, Any]] | None = None
    reason: str | None = None  # why there is no verdict (verdict "cannot_judge")
    notes: list[str] = field(default_factory=list)

    @classmethod
    def cannot_judge(cls, reason: str, *, width: int = 0, height: int = 0, notes: list[str] | None = None
                     ) -> Prediction:
        """The answer for an image that cannot be judged: no probability, no verdict, the reason."""
        return cls(prob=None, logit=None, verdict=CANNOT_JUDGE, width=width, height=height, reason=reason,
                   notes=list(notes or []))

    @property
    def judged(self) -> bool:
        """Whether there is a verdict (False for "cannot judge")."""
        return self.verdict != CANNOT_JUDGE

    def mask_png(self) -> bytes | None:
        """The map as an 8-bit greyscale PNG (255 = certainly inpainted), ``None`` without a map."""
        if self.mask is None:
            return None
        import io

        import numpy as np
        from PIL import Image

        buf = io.BytesIO()
        Image.fromarray(np.round(np.clip(self.mask, 0, 1) * 255).astype(np.uint8), "L").save(buf, format="PNG")
        return buf.getvalue()

    def to_dict(self) -> dict[str, Any]:
        return {
            "prob_fake": self.prob,
            "logit": self.logit,
            "verdict": self.verdict,
            "box": self.box,
            "box_score": self.box_score,
            "width": self.width,
            "height": self.height,
            **({"regions": self.regions} if self.regions is not None else {}),
            **({"reason": self.reason} if self.reason is not None else {}),
            **({"notes": list(self.notes)} if self.notes else {}),
            **({"extra": self.extra} if self.extra else {}),
        }
