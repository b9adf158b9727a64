"""``evaluate`` module: pixel-level localisation of manipulated regions (delegates to hubdet.eval.metrics)."""

from __future__ import annotations

from typing import Any

import datasets
import evaluate

from hubdet.eval.metrics import pixel_metrics

_DESCRIPTION = """\
Pixel-level localisation metrics of hubdet (the "masks" rows of hubdet.eval.metric_table): per-image F1 and IoU
of the predicted manipulation mask against the true mask, averaged over the images, at the fixed threshold
(pixel_f1, pixel_iou) and at each image's best threshold (pixel_f1_best, pixel_iou_best). Masks are 2-D arrays with
values in [0, 1] (or 0-255); a prediction counts as manipulated where >= threshold.
"""

_KWARGS_DESCRIPTION = """\
Args:
    predictions (list of 2-D lists): predicted masks (probabilities or 0/1).
    references (list of 2-D lists): true masks of the same shapes (1 or 255 = manipulated).
    threshold (float, default 0.5): binarisation threshold of the predictions.
Returns:
    dict with pixel_f1, pixel_iou, pixel_f1_best, pixel_iou_best, n_masks.
Examples:
    >>> metric = hubdet.eval.load_metric("hubdet_pixels")
    >>> metric.compute(predictions=[[[1, 0], [0, 0]]], references=[[[1, 1], [0, 0]]])["pixel_iou"]
    0.5
"""

_CITATION = """\
@article{verdoliva2020media,
  title={Media Forensics and DeepFakes: an Overview},
  author={Verdoliva, Luisa},
  journal={IEEE Journal of Selected Topics in Signal Processing}, volume={14}, number={5}, pages={910--932},
  year={2020}
}
"""

_MASK = datasets.Sequence(datasets.Sequence(datasets.Value("float32")))


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class HubdetPixels(evaluate.Metric):
    """Pixel F1 and IoU of manipulation masks."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features({"predictions": _MASK, "references": _MASK}),
            reference_urls=["https://scikit-learn.org/stable/modules/generated/sklearn.metrics.jaccard_score.html"],
        )

    def _compute(
        self, predictions: list[list[list[float]]], references: list[list[list[float]]], threshold: float = 0.5
    ) -> dict[str, Any]:
        return pixel_metrics(predictions, references, threshold=threshold)
