"""Box maths against hand-computed IoU/GIoU values, degenerate boxes included."""

from __future__ import annotations

import pytest
import torch
from torchvision.ops import box_iou, generalized_box_iou

from hubdet.models.boxes import (
    box_area,
    boxes_from_cxcywh_logits,
    elementwise_giou,
    elementwise_iou,
    giou_loss,
    normalise_box,
    pairwise_giou,
    pairwise_iou,
    sanitize_boxes,
    to_pixels,
    valid_box_mask,
)

# (a, b, IoU, GIoU), computed by hand:
CASES = {
    # inter 1, union 4+4-1=7, hull [0,0,3,3]=9: GIoU = 1/7 - (9-7)/9 = -5/63
    "overlap": ([0, 0, 2, 2], [1, 1, 3, 3], 1 / 7, 1 / 7 - 2 / 9),
    # inter 0, union 2, hull [0,0,3,1]=3: GIoU = 0 - 1/3
    "disjoint": ([0, 0, 1, 1], [2, 0, 3, 1], 0.0, -1 / 3),
    # b inside a: inter 1, union 16, hull = a: GIoU = IoU = 1/16
    "nested": ([0, 0, 4, 4], [1, 1, 2, 2], 1 / 16, 1 / 16),
    "identical": ([0, 0, 2, 2], [0, 0, 2, 2], 1.0, 1.0),
    # zero-width a: inter 0, union 4, hull [0,0,2,3]=6: GIoU = -(6-4)/6
    "zero_area": ([1, 1, 1, 3], [0, 0, 2, 2], 0.0, -1 / 3),
    # corners given inverted: sorted to [0,0,2,2], identical to b
    "inverted": ([2, 2, 0, 0], [0, 0, 2, 2], 1.0, 1.0),
    # two identical points: empty union and hull -> 0, never NaN
    "two_points": ([1, 1, 1, 1], [1, 1, 1, 1], 0.0, 0.0),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_iou_giou_hand_computed(case):
    a, b, iou, giou = CASES[case]
    ta = torch.tensor([a], dtype=torch.float32)
    tb = torch.tensor([b], dtype=torch.float32)
    assert elementwise_iou(ta, tb).item() == pytest.approx(iou, abs=1e-5)
    assert elementwise_giou(ta, tb).item() == pytest.approx(giou, abs=1e-5)
    assert pairwise_iou(ta, tb).item() == pytest.approx(iou, abs=1e-5)
    assert pairwise_giou(ta, tb).item() == pytest.approx(giou, abs=1e-5)
    assert giou_loss(ta, tb, reduction="none").item() == pytest.approx(1 - giou, abs=1e-5)


def test_overlap_giou_is_minus_five_63rds():
    assert CASES["overlap"][3] == pytest.approx(-5 / 63)


def test_giou_is_symmetric_and_bounded():
    g = torch.Generator().manual_seed(0)
    a = sanitize_boxes(torch.rand(50, 4, generator=g))
    b = sanitize_boxes(torch.rand(50, 4, generator=g))
    assert torch.allclose(elementwise_giou(a, b), elementwise_giou(b, a), atol=1e-6)
    giou = elementwise_giou(a, b)
    assert (giou >= -1 - 1e-6).all() and (giou <= 1 + 1e-6).all()
    assert (giou <= elementwise_iou(a, b) + 1e-6).all()


def test_matches_torchvision_on_valid_boxes():
    g = torch.Generator().manual_seed(1)
    a = sanitize_boxes(torch.rand(20, 4, generator=g) * 10)
    b = sanitize_boxes(torch.rand(20, 4, generator=g) * 10)
    assert torch.allclose(elementwise_iou(a, b), box_iou(a, b).diag(), atol=1e-5)
    assert torch.allclose(elementwise_giou(a, b), generalized_box_iou(a, b).diag(), atol=1e-5)
    assert torch.allclose(pairwise_iou(a, b), box_iou(a, b), atol=1e-6)


def test_giou_loss_has_gradient_for_disjoint_boxes():
    pred = torch.tensor([[0.0, 0.0, 0.1, 0.1]], requires_grad=True)
    target = torch.tensor([[0.5, 0.5, 0.9, 0.9]])
    giou_loss(pred, target).backward()
    assert pred.grad is not None and pred.grad.abs().sum() > 0  # IoU alone would give zero gradient here
    assert torch.isfinite(pred.grad).all()


def test_giou_loss_finite_for_degenerate_prediction():
    pred = torch.tensor([[0.3, 0.3, 0.3, 0.3], [0.9, 0.9, 0.1, 0.1]], requires_grad=True)
    target = torch.tensor([[0.2, 0.2, 0.6, 0.6], [0.1, 0.1, 0.9, 0.9]])
    loss = giou_loss(pred, target)
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(pred.grad).all()
    # the inverted second box is the target after sorting: loss 0; the point inside the target: IoU 0 and
    # hull == union (the target), so GIoU 0 and loss 1
    per_box = giou_loss(pred.detach(), target, reduction="none")
    assert per_box[1].item() == pytest.approx(0.0, abs=1e-6)
    assert per_box[0].item() == pytest.approx(1.0, abs=1e-5)


def test_sanitize_and_area_and_valid_mask():
    boxes = torch.tensor([[3.0, 4.0, 1.0, 2.0], [0.0, 0.0, 0.0, 5.0], [0.0, 0.0, 2.0, 3.0]])
    assert sanitize_boxes(boxes)[0].tolist() == [1.0, 2.0, 3.0, 4.0]
    assert box_area(boxes).tolist() == [4.0, 0.0, 6.0]
    assert valid_box_mask(boxes).tolist() == [False, False, True]
    assert valid_box_mask(torch.tensor([[0.0, 0.0, float("nan"), 1.0]])).tolist() == [False]
    assert sanitize_boxes(torch.tensor([[-1.0, 0.5, 2.0, 0.2]]), clamp=(0.0, 1.0))[0].tolist() == pytest.approx(
        [0.0, 0.2, 1.0, 0.5]
    )


def test_cxcywh_parametrisation_is_always_valid():
    assert boxes_from_cxcywh_logits(torch.zeros(1, 4))[0].tolist() == [0.25, 0.25, 0.75, 0.75]
    raw = torch.randn(200, 4, generator=torch.Generator().manual_seed(2)) * 5
    boxes = boxes_from_cxcywh_logits(raw)
    assert (boxes >= 0).all() and (boxes <= 1).all()
    assert (boxes[:, 2] >= boxes[:, 0]).all() and (boxes[:, 3] >= boxes[:, 1]).all()


def test_pixel_normalised_round_trip():
    box = [10.0, 20.0, 110.0, 60.0]
    norm = normalise_box(box, 200, 100)
    assert norm == pytest.approx([0.05, 0.2, 0.55, 0.6])
    assert to_pixels(norm, 200, 100) == pytest.approx(box)
    assert normalise_box([-5, 0, 250, 50], 200, 100) == pytest.approx([0.0, 0.0, 1.0, 0.5])
