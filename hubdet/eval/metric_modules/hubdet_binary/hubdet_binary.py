"""``evaluate`` module: real-vs-fake metrics of calibrated fake probabilities (delegates to hubdet.eval.metrics)."""

from __future__ import annotations

from typing import Any

import datasets
import evaluate

from hubdet.eval.metrics import binary_metrics

_DESCRIPTION = """\
Binary real-vs-fake detection metrics of hubdet: accuracy, precision, recall and F1 at a threshold on the
calibrated fake probability; ROC-AUC, average precision, equal error rate and TPR at 1% FPR (threshold-free,
None when one class is missing); expected calibration error (15 equal-width bins); counts and the confusion
matrix [[tn, fp], [fn, tp]]. Computed with scikit-learn.
"""

_KWARGS_DESCRIPTION = """\
Args:
    predictions (list of float): calibrated probability that each image is fake, in [0, 1].
    references (list of int): 0 for real, 1 for fake.
    threshold (float, default 0.5): predict fake when probability >= threshold.
Returns:
    dict with accuracy, precision, recall, f1, roc_auc, average_precision, eer, tpr_at_1pct_fpr, ece, n,
    n_real, n_fake, threshold, confusion_matrix.
Examples:
    >>> metric = hubdet.eval.load_metric("hubdet_binary")
    >>> metric.compute(predictions=[0.1, 0.9], references=[0, 1])["roc_auc"]
    1.0
"""

_CITATION = """\
@article{scikit-learn,
  title={Scikit-learn: Machine Learning in {P}ython},
  author={Pedregosa, F. and others},
  journal={Journal of Machine Learning Research},
  volume={12}, pages={2825--2830}, year={2011}
}
@inproceedings{guo2017calibration,
  title={On Calibration of Modern Neural Networks},
  author={Guo, Chuan and Pleiss, Geoff and Sun, Yu and Weinberger, Kilian Q.},
  booktitle={ICML}, year={2017}
}
"""


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class HubdetBinary(evaluate.Metric):
    """Real-vs-fake metrics from calibrated probabilities."""

    def _info(self) -> evaluate.MetricInfo:
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=datasets.Features(
                {"predictions": datasets.Value("float64"), "references": datasets.Value("int32")}
            ),
            reference_urls=["https://scikit-learn.org/stable/modules/model_evaluation.html"],
        )

    def _compute(self, predictions: list[float], references: list[int], threshold: float = 0.5) -> dict[str, Any]:
        return binary_metrics(references, predictions, threshold=threshold)
