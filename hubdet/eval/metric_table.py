"""The one table of metrics: every number hubdet reports about a detector on a split, defined once.

Each row (:class:`Metric`) has a name, a one-line definition, a direction (``"higher"`` or ``"lower"`` is better;
``None`` for counts and other facts that are not scores), the kind of model it applies to (``binary`` verdicts,
``boxes``, ``masks``) and its definition as a function over the per-image :class:`Records` of one split.
:func:`compute_metrics` turns records into the metrics of the kinds a model has. Training (validation and test),
``hubdet evaluate``, robustness drops, suites, cards and the leaderboard all read this table, so a name means the
same number everywhere; a new metric is one row here.

Conventions: threshold metrics predict fake when the calibrated ``prob >= threshold`` (the detector's calibrated
threshold); a metric that is undefined for the inputs (ROC-AUC with one class, mean IoU without a true box ...) is
``None``, never ``NaN``.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import cached_property
from typing import Any, Literal

import numpy as np

from hubdet._core.errors import UnknownNameError
from hubdet.eval import metrics as fn

Kind = Literal["binary", "boxes", "masks"]
KINDS: tuple[Kind, ...] = ("binary", "boxes", "masks")
Direction = Literal["higher", "lower"]

#: IoU thresholds of the box hit rates: 0.5 (PASCAL VOC) and 0.55 (seed 001's "successful prediction").
HIT_RATE_IOUS: tuple[float, ...] = (0.5, 0.55)
#: Fixed binarisation threshold of predicted masks for ``pixel_f1`` / ``pixel_iou``.
PIXEL_THRESHOLD = 0.5
#: The metric results, suites and the leaderboard rank by unless they name another.
DEFAULT_PRIMARY = "roc_auc"


# --------------------------------------------------------------------------- per-image records


@dataclasses.dataclass
class Records:
    """Per-image predictions of one split (one perturbation): the input of every metric.

    ``probs`` are calibrated fake probabilities; ``logits`` the raw logits (optional: calibration is fitted on
    them); boxes are ``[xmin, ymin, xmax, ymax]`` in the image's original pixels (``true_boxes[i]`` a list of
    them); masks are filled only for mask-predicting detectors (``None`` where an image has no true mask).
    """

    files: list[str] = dataclasses.field(default_factory=list)
    labels: list[int] = dataclasses.field(default_factory=list)
    probs: list[float] = dataclasses.field(default_factory=list)
    logits: list[float | None] = dataclasses.field(default_factory=list)
    generators: list[str] = dataclasses.field(default_factory=list)
    sources: list[str] = dataclasses.field(default_factory=list)
    pred_boxes: list[list[float] | None] = dataclasses.field(default_factory=list)
    true_boxes: list[list[list[float]]] = dataclasses.field(default_factory=list)
    pred_masks: list[Any] = dataclasses.field(default_factory=list)
    true_masks: list[Any] = dataclasses.field(default_factory=list)
    seconds: float = 0.0
    # (file, reason) of the images the detector could not judge: counted and reported, never scored
    cannot_judge: list[tuple[str, str]] = dataclasses.field(default_factory=list)

    _COLUMNS = ("files", "labels", "probs", "logits", "generators", "sources", "pred_boxes", "true_boxes",
                "pred_masks", "true_masks")

    def __len__(self) -> int:
        return len(self.labels)

    def rows(self) -> list[dict[str, Any]]:
        """One dict per image (for gathering across processes); columns that are empty are left out."""
        cols = [c for c in self._COLUMNS if getattr(self, c)]
        return [{c: getattr(self, c)[i] for c in cols} for i in range(len(self.labels))]

    @classmethod
    def from_rows(cls, rows: Iterable[Mapping[str, Any]], seconds: float = 0.0) -> Records:
        """The inverse of :meth:`rows` (missing columns stay empty)."""
        rec = cls(seconds=seconds)
        for row in rows:
            unknown = set(row) - set(cls._COLUMNS)
            if unknown:
                raise ValueError(f"record row has unknown column(s) {sorted(unknown)}; known: {cls._COLUMNS}")
            for c in cls._COLUMNS:
                if c in row:
                    getattr(rec, c).append(row[c])
        return rec

    def subset(self, idx: Sequence[int]) -> Records:
        rows = self.rows()
        return Records.from_rows([rows[i] for i in idx])


# --------------------------------------------------------------------------- the table


class SplitView:
    """Records seen at one threshold, with the per-image quantities the definitions share computed once."""

    def __init__(self, records: Records, *, threshold: float, pixel_threshold: float = PIXEL_THRESHOLD) -> None:
        if not 0.0 <= float(threshold) <= 1.0:
            raise ValueError(f"threshold must be in [0, 1], got {threshold}")
        self.records = records
        self.threshold = float(threshold)
        self.pixel_threshold = float(pixel_threshold)

    @cached_property
    def yp(self) -> tuple[np.ndarray, np.ndarray]:
        return fn.check_binary_inputs(self.records.labels, self.records.probs)

    @property
    def y(self) -> np.ndarray:
        return self.yp[0]

    @property
    def p(self) -> np.ndarray:
        return self.yp[1]

    @cached_property
    def pred(self) -> np.ndarray:
        return (self.p >= self.threshold).astype(np.int64)

    @property
    def both_classes(self) -> bool:
        return 0 < int(self.y.sum()) < self.y.size

    @cached_property
    def prf(self) -> tuple[float, float, float]:
        from sklearn.metrics import precision_recall_fscore_support

        p, r, f, _ = precision_recall_fscore_support(self.y, self.pred, average="binary", pos_label=1,
                                                     zero_division=0)
        return float(p), float(r), float(f)

    @cached_property
    def ious(self) -> np.ndarray:
        """Best-match IoU of each image that has a true box (0 where nothing was predicted)."""
        ious = fn.box_ious(self.records.pred_boxes, self.records.true_boxes)
        return np.asarray([i for i in ious if i is not None], dtype=np.float64)

    @cached_property
    def pixel(self) -> np.ndarray:
        """Per image with a true mask: ``[f1, iou]`` at the fixed threshold and ``[f1, iou]`` at its best one."""
        rows = []
        masks = self.records.true_masks
        preds = self.records.pred_masks or [None] * len(masks)
        if len(preds) != len(masks):
            raise ValueError(f"pred_masks and true_masks differ in length ({len(preds)} vs {len(masks)})")
        for i, (pm, tm) in enumerate(zip(preds, masks, strict=True)):
            if tm is None:
                continue
            truth = fn.mask_scores(tm, f"true_masks[{i}]") >= 0.5
            scores = np.zeros(truth.shape) if pm is None else fn.mask_scores(pm, f"pred_masks[{i}]")
            if scores.shape != truth.shape:
                raise ValueError(f"pred_masks[{i}]: shape {scores.shape} differs from the true mask's {truth.shape}")
            f1, iou = fn.mask_f1_iou(scores >= self.pixel_threshold, truth)
            best = fn.best_threshold_f1(scores, truth)
            rows.append([f1, iou, best, best / (2.0 - best)])  # IoU = F1 / (2 - F1): the same best threshold
        return np.asarray(rows, dtype=np.float64).reshape(-1, 4)


def _defined(fn_: Callable[[SplitView], Any], when: Callable[[SplitView], bool]) -> Callable[[SplitView], Any]:
    return lambda v: fn_(v) if when(v) else None


def _any(v: SplitView) -> bool:
    return v.y.size > 0


def _ranked(v: SplitView) -> bool:
    return v.both_classes


def _boxes(v: SplitView) -> bool:
    return v.ious.size > 0


def _masks(v: SplitView) -> bool:
    return v.pixel.shape[0] > 0


def _sk(name: str) -> Callable[..., float]:
    import sklearn.metrics

    return getattr(sklearn.metrics, name)


@dataclasses.dataclass(frozen=True)
class Metric:
    """One row of the table. ``headline``: shown in summaries, leaderboard columns and robustness drops."""

    name: str
    kind: Kind
    direction: Direction | None
    definition: str
    compute: Callable[[SplitView], Any]
    headline: bool = False

    @property
    def scored(self) -> bool:
        """A score with a direction (not a count or a setting)."""
        return self.direction is not None


METRICS: tuple[Metric, ...] = (
    # ---- binary verdict (every detector)
    Metric("roc_auc", "binary", "higher", "area under the ROC curve of the fake probability (threshold-free)",
           _defined(lambda v: fn.float_or_none(_sk("roc_auc_score")(v.y, v.p)), _ranked), headline=True),
    Metric("average_precision", "binary", "higher", "area under the precision-recall curve of the fake class",
           _defined(lambda v: fn.float_or_none(_sk("average_precision_score")(v.y, v.p)), _ranked), headline=True),
    Metric("accuracy", "binary", "higher", "fraction of images whose verdict (prob >= threshold) is right",
           _defined(lambda v: float(np.mean(v.pred == v.y)), _any), headline=True),
    Metric("precision", "binary", "higher", "of the images called fake, the fraction that are fake",
           _defined(lambda v: v.prf[0], _any)),
    Metric("recall", "binary", "higher", "of the fake images, the fraction called fake (true-positive rate)",
           _defined(lambda v: v.prf[1], _any)),
    Metric("f1", "binary", "higher", "harmonic mean of precision and recall of the fake class",
           _defined(lambda v: v.prf[2], _any), headline=True),
    Metric("eer", "binary", "lower", "equal error rate: where false-positive and false-negative rates meet",
           _defined(lambda v: fn.equal_error_rate(v.y, v.p), _ranked), headline=True),
    Metric("tpr_at_1pct_fpr", "binary", "higher", "highest true-positive rate with at most 1% false positives",
           _defined(lambda v: fn.tpr_at_fpr(v.y, v.p, fn.LOW_FPR), _ranked), headline=True),
    Metric("ece", "binary", "lower", f"expected calibration error of the fake probability ({fn.ECE_BINS} bins)",
           _defined(lambda v: fn.expected_calibration_error(v.y, v.p), _any), headline=True),
    Metric("loss", "binary", "lower", "binary cross-entropy (log loss) of the calibrated fake probability",
           _defined(lambda v: float(_sk("log_loss")(v.y, v.p, labels=[0, 1])), _any)),
    Metric("n", "binary", None, "images", lambda v: int(v.y.size)),
    Metric("n_real", "binary", None, "real images", lambda v: int(v.y.size - v.y.sum())),
    Metric("n_fake", "binary", None, "fake images", lambda v: int(v.y.sum())),
    Metric("threshold", "binary", None, "the calibrated threshold of the verdict", lambda v: v.threshold),
    Metric("confusion_matrix", "binary", None, "[[tn, fp], [fn, tp]] at the threshold",
           _defined(lambda v: _sk("confusion_matrix")(v.y, v.pred, labels=[0, 1]).astype(int).tolist(), _any)),
    # ---- boxes (detectors with supports_boxes): images with a true box
    Metric("mean_iou", "boxes", "higher", "mean over images with a true box of the predicted box's IoU with the "
           "best-matching true box (0 without a prediction)", _defined(lambda v: float(v.ious.mean()), _boxes),
           headline=True),
    Metric("median_iou", "boxes", "higher", "median of the same per-image IoUs",
           _defined(lambda v: float(np.median(v.ious)), _boxes)),
    Metric("n_boxes", "boxes", None, "images with a true box", lambda v: int(v.ious.size)),
    *[Metric(f"hit_rate@{t:g}", "boxes", "higher", f"fraction of images with a true box whose IoU >= {t:g}",
             _defined(lambda v, t=t: float((v.ious >= t - 1e-12).mean()), _boxes), headline=t == 0.55)
      for t in HIT_RATE_IOUS],
    # ---- masks (detectors with predicts_masks): images with a true mask
    Metric("pixel_f1", "masks", "higher", f"per-image pixel F1 at the fixed threshold {PIXEL_THRESHOLD:g}, "
           "averaged over images with a true mask (both empty: 1)",
           _defined(lambda v: float(v.pixel[:, 0].mean()), _masks), headline=True),
    Metric("pixel_iou", "masks", "higher", f"per-image pixel IoU at the fixed threshold {PIXEL_THRESHOLD:g}, "
           "averaged", _defined(lambda v: float(v.pixel[:, 1].mean()), _masks), headline=True),
    Metric("pixel_f1_best", "masks", "higher", "per-image pixel F1 at each image's best threshold, averaged "
           "(an upper bound: the threshold is chosen with the true mask)",
           _defined(lambda v: float(v.pixel[:, 2].mean()), _masks)),
    Metric("pixel_iou_best", "masks", "higher", "per-image pixel IoU at each image's best threshold, averaged",
           _defined(lambda v: float(v.pixel[:, 3].mean()), _masks)),
    Metric("n_masks", "masks", None, "images with a true mask", lambda v: int(v.pixel.shape[0])),
)

_BY_NAME = {m.name: m for m in METRICS}


def get_metric(name: str) -> Metric:
    """The row named ``name``; unknown names raise :class:`UnknownNameError` with close matches."""
    try:
        return _BY_NAME[name]
    except KeyError:
        close = difflib.get_close_matches(name, list(_BY_NAME), n=3)
        hint = f"; did you mean {', '.join(map(repr, close))}?" if close else ""
        raise UnknownNameError(f"unknown metric {name!r}{hint} (known: {list(_BY_NAME)})") from None


def metric_names(kinds: Iterable[Kind] | None = None, *, scored: bool = False, headline: bool = False) -> list[str]:
    """Names in table order, optionally only of ``kinds``, only scores, only headline metrics."""
    wanted = set(KINDS if kinds is None else kinds)
    return [m.name for m in METRICS
            if m.kind in wanted and (not scored or m.scored) and (not headline or m.headline)]


def metric_direction(name: str) -> Direction:
    """``"higher"`` or ``"lower"`` (is better) of a scored metric; counts and settings raise."""
    metric = get_metric(name)
    if metric.direction is None:
        raise UnknownNameError(f"{name!r} is a count, not a score: it has no better direction")
    return metric.direction


def model_kinds(detector: Any) -> tuple[Kind, ...]:
    """The kinds of metrics a detector gets: ``binary`` always, ``boxes`` with ``supports_boxes``, ``masks`` with
    ``predicts_masks``."""
    kinds: list[Kind] = ["binary"]
    if getattr(detector, "supports_boxes", False):
        kinds.append("boxes")
    if getattr(detector, "predicts_masks", False):
        kinds.append("masks")
    return tuple(kinds)


def compute_metrics(records: Records, *, threshold: float, kinds: Iterable[Kind] = ("binary",),
                    pixel_threshold: float = PIXEL_THRESHOLD) -> dict[str, Any]:
    """Every metric of ``kinds`` over ``records`` (names in table order); ``threshold`` is the verdict's."""
    unknown = set(kinds) - set(KINDS)
    if unknown:
        raise UnknownNameError(f"unknown metric kind(s) {sorted(unknown)}; known: {list(KINDS)}")
    if len(records.probs) != len(records.labels):
        raise ValueError(f"labels and probs differ in length ({len(records.labels)} vs {len(records.probs)})")
    view = SplitView(records, threshold=threshold, pixel_threshold=pixel_threshold)
    wanted = set(kinds)
    return {m.name: m.compute(view) for m in METRICS if m.kind in wanted}


def metric_drops(clean: Mapping[str, Any], perturbed: Mapping[str, Any],
                 names: Sequence[str] | None = None) -> dict[str, float | None]:
    """How much worse each headline metric got (``None`` where either side is undefined): ``clean - perturbed``
    for higher-is-better metrics and ``perturbed - clean`` for lower-is-better ones, so positive means worse."""
    out: dict[str, float | None] = {}
    for k in metric_names(headline=True) if names is None else names:
        if k not in clean and k not in perturbed:
            continue
        a, b = clean.get(k), perturbed.get(k)
        if a is None or b is None:
            out[k] = None
        else:
            out[k] = float(a - b) if metric_direction(k) == "higher" else float(b - a)
    return out
