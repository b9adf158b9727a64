"""``evaluate`` module: localisation of the inpainted region by a box (delegates to hubdet.eval.metrics)."""

from __future__ import annotations

from typing import Any

import datasets
import evaluate

from hubdet.eval.metrics import box_metrics

_DESCRIPTION = """\
Box localisation metrics of hubdet over the images that have a true box: mean and median IoU of the predicted
box with the true box (torchvision.ops.box_iou; a missing prediction scores 0; with several true boxes the best
match counts), and the hit rates at IoU >= 0.5 and >= 0.55 (the success criterion of the inpainting-boxes seed).
"""

_KWARGS_DESCRIPTION = """\
Args:
    predictions (list of list of boxes): per image, the predicted [xmin, ymin, xmax, ymax] boxes (pixels of the
        original image), [] when the detector predicts none.
    references (list of list of boxes): per image, the true boxes in the same frame, [] for untouched images
        (which are skipped).
Returns:
    dict with mean_iou, median_iou, hit_rate@0.5, hit_rate@0.55, n_boxes.
Examples:
    >>> metric = hubdet.eval.load_metric("hubdet_boxes")
    >>> metric.compute(predictions=[[[0, 0, 10, 10]]], references=[[[0, 0, 10, 20]]])["mean_iou"]
    0.5
"""

_CITATION = """\
@inproceedings{everingham2010pascal,
  title={The Pascal Visual Object Classes (VOC) Challenge},
  author={Everingham, Mark and Van Gool, Luc and Williams, Christopher K. I. and Winn, John and Zisserman, Andrew},
  booktitle={International Journal of Computer Vision}, volume={88}, pages={303--338}, year={2010}
}
"""

_BOXES = datasets.Sequence(datasets.Sequence(datasets.Value("float64"), length=4))


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class HubdetBoxes(evaluate.Metric):
    """Mean IoU and hit rates of predicted boxes."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": _BOXES, "references": _BOXES}),
            reference_urls=["https://pytorch.org/vision/stable/generated/torchvision.ops.box_iou.html"],
        )

    def _compute(self, predictions: list[list[list[float]]], references: list[list[list[float]]]) -> dict[str, Any]:
        return box_metrics(predictions, references)
