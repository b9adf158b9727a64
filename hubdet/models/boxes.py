"""Box maths for the box head and the evaluators: IoU, GIoU, the GIoU loss, conversions, sanitising.

Everything delegates to :mod:`torchvision.ops`; this module only adds what it leaves to the caller:

- **degenerate boxes**: zero-area boxes are allowed and give IoU 0 (never NaN); inverted corners
  (``xmin > xmax``) are sorted by :func:`sanitize_boxes` before any maths;
- **elementwise** IoU/GIoU of matched pairs (``torchvision.ops.box_iou`` is pairwise ``N x M``);
- the box head's parametrisation ``sigmoid(cx, cy, w, h) -> xyxy``, which can never produce an invalid box.

Boxes are ``[..., 4]`` tensors ``[xmin, ymin, xmax, ymax]`` (normalised to [0, 1] or in pixels; the maths does
not care as long as both arguments use the same units).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torchvision.ops import box_convert, box_iou, generalized_box_iou, generalized_box_iou_loss

__all__ = [
    "EPS",
    "box_area",
    "box_convert",
    "boxes_from_cxcywh_logits",
    "elementwise_giou",
    "elementwise_iou",
    "giou_loss",
    "normalise_box",
    "pairwise_giou",
    "pairwise_iou",
    "sanitize_boxes",
    "to_pixels",
    "valid_box_mask",
]

EPS = 1e-7


def sanitize_boxes(boxes: torch.Tensor, *, clamp: tuple[float, float] | None = None) -> torch.Tensor:
    """Sort the corners (``xmin <= xmax``, ``ymin <= ymax``) and optionally clamp to ``[lo, hi]``."""
    if not torch.is_tensor(boxes):
        boxes = torch.as_tensor(boxes, dtype=torch.float32)
    x0, y0, x1, y1 = boxes.unbind(-1)
    out = torch.stack([torch.minimum(x0, x1), torch.minimum(y0, y1), torch.maximum(x0, x1), torch.maximum(y0, y1)],
                      dim=-1)
    if clamp is not None:
        out = out.clamp(clamp[0], clamp[1])
    return out


def box_area(boxes: torch.Tensor) -> torch.Tensor:
    """Area of (sanitised) boxes; zero for degenerate ones."""
    b = sanitize_boxes(boxes)
    return (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1])


def valid_box_mask(boxes: torch.Tensor, *, min_area: float = 0.0) -> torch.Tensor:
    """True where a box has finite coordinates, sorted corners and an area strictly above ``min_area``."""
    finite = torch.isfinite(boxes).all(dim=-1)
    ordered = (boxes[..., 2] > boxes[..., 0]) & (boxes[..., 3] > boxes[..., 1])
    area = (boxes[..., 2] - boxes[..., 0]) * (boxes[..., 3] - boxes[..., 1])
    return finite & ordered & (area > min_area)


def pairwise_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``[N, M]`` IoU (``torchvision.ops.box_iou``) of sanitised boxes; 0 where the union is empty."""
    iou = box_iou(sanitize_boxes(a), sanitize_boxes(b))
    return torch.nan_to_num(iou, nan=0.0)


def pairwise_giou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``[N, M]`` GIoU (``torchvision.ops.generalized_box_iou``) of sanitised boxes, in [-1, 1].

    Two identical zero-area boxes (empty union and empty hull) give 0.
    """
    giou = generalized_box_iou(sanitize_boxes(a), sanitize_boxes(b))
    return torch.nan_to_num(giou, nan=0.0)


def elementwise_giou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """GIoU of matched pairs ``a[i], b[i]`` (``[N]``), via ``1 - generalized_box_iou_loss``."""
    return 1.0 - generalized_box_iou_loss(sanitize_boxes(a), sanitize_boxes(b), reduction="none", eps=EPS)


def elementwise_iou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """IoU of matched pairs ``a[i], b[i]`` (``[N]``); 0 where the union is empty."""
    a, b = sanitize_boxes(a), sanitize_boxes(b)
    lt = torch.maximum(a[..., :2], b[..., :2])
    rb = torch.minimum(a[..., 2:], b[..., 2:])
    wh = (rb - lt).clamp(min=0)
    inter = wh[..., 0] * wh[..., 1]
    union = box_area(a) + box_area(b) - inter
    return torch.where(union > 0, inter / union.clamp(min=EPS), torch.zeros_like(union))


def giou_loss(pred: torch.Tensor, target: torch.Tensor, *, reduction: str = "mean") -> torch.Tensor:
    """``1 - GIoU`` (``torchvision.ops.generalized_box_iou_loss``) with predicted corners sorted first.

    Gradients flow in every case, disjoint boxes included (the enclosing-hull term), which is why seed 001
    found GIoU better than MSE for localisation.
    """
    return generalized_box_iou_loss(sanitize_boxes(pred), sanitize_boxes(target), reduction=reduction, eps=EPS)


def boxes_from_cxcywh_logits(raw: torch.Tensor) -> torch.Tensor:
    """Map 4 unconstrained outputs to a valid normalised box: ``sigmoid -> (cx, cy, w, h) -> xyxy``, clamped.

    The corners are ordered by construction; only the clamp at the image border can shrink a box.
    """
    cxcywh = torch.sigmoid(raw)
    return box_convert(cxcywh, in_fmt="cxcywh", out_fmt="xyxy").clamp(0.0, 1.0)


def normalise_box(box: Sequence[float], width: float, height: float) -> list[float]:
    """A pixel box ``[xmin, ymin, xmax, ymax]`` -> normalised to [0, 1] of ``width x height`` (clipped)."""
    x0, y0, x1, y1 = (float(v) for v in box)
    out = [x0 / width, y0 / height, x1 / width, y1 / height]
    return [min(max(v, 0.0), 1.0) for v in out]


def to_pixels(box: Sequence[float], width: float, height: float) -> list[float]:
    """A normalised box -> pixels of a ``width x height`` image."""
    x0, y0, x1, y1 = (float(v) for v in box)
    return [x0 * width, y0 * height, x1 * width, y1 * height]
