"""Compare: the chosen detectors side by side on one upload (:func:`compare`), and where they agree.

Predictions come from :func:`hubdet.models.predict.predict_many` (an ensemble reuses the predictions of its members
compared beside it); explanations from :func:`hubdet.models.explain.explain`; pictures from
:mod:`hubdet.app.rendering`; the provenance record of the uploaded bytes from :mod:`hubdet.app.provenance` (shown
beside the verdicts, never changing them).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from hubdet._core.errors import BadImageError, UnsupportedImageError
from hubdet.app.pool import DetectorPool
from hubdet.app.provenance import pixel_conflict, read_provenance
from hubdet.app.rendering import display_copy, draw_box, overlay_heatmap, overlay_mask
from hubdet.app.uploads import decode_upload
from hubdet.models.output import CANNOT_JUDGE

logger = logging.getLogger(__name__)


@dataclass
class DetectorResult:
    """One detector's answer for one image (and, in the UI, its pictures)."""

    detector: str
    prob_fake: float | None = None
    verdict: str | None = None
    box: list[float] | None = None
    box_score: float | None = None
    seconds: float | None = None
    supports_boxes: bool = False
    predicts_masks: bool = False
    regions: list[dict[str, Any]] | None = None  # mask detectors: one box per inpainted region, best first
    flagged_fraction: float | None = None  # mask detectors: share of the image's pixels flagged as inpainted
    family: str = ""
    explanation: str = ""
    explanation_seconds: float | None = None
    error: str | None = None
    reason: str | None = None  # why the detector cannot judge the image (verdict "cannot_judge", prob None)
    shared_members: dict[str, str] = field(default_factory=dict)  # ensemble member -> detector it reused
    stability: dict[str, Any] | None = None  # with the stability check: the degraded copies' answers
    box_image: Image.Image | None = None
    heatmap_image: Image.Image | None = None
    mask_image: Image.Image | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "detector": self.detector, "prob_fake": self.prob_fake, "verdict": self.verdict, "box": self.box,
            "box_score": self.box_score, "seconds": self.seconds, "supports_boxes": self.supports_boxes,
            "predicts_masks": self.predicts_masks, "regions": self.regions, "flagged_fraction": self.flagged_fraction,
            "family": self.family, "explanation": self.explanation,
            "explanation_seconds": self.explanation_seconds, "error": self.error,
            **({"reason": self.reason} if self.reason is not None else {}),
            "shared_members": dict(self.shared_members),
            **({"stability": self.stability} if self.stability is not None else {}),
        }


@dataclass
class Comparison:
    """A side-by-side comparison of one image, and the provenance record of the uploaded file."""

    image: dict[str, Any]
    results: list[DetectorResult]
    summary: dict[str, Any]
    preview: Image.Image | None = None
    provenance: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"ok": True, "error": None, "image": self.image, "results": [r.to_dict() for r in self.results],
                "summary": self.summary, "provenance": self.provenance}


def compare(pool: DetectorPool, source: str | os.PathLike | bytes | None, names: Sequence[str] | None, *,
            explain_it: bool = True, name: str | None = None, max_pixels: int | None = None,
            stability: bool = False) -> Comparison:
    """Run the chosen detectors on one upload (at most ``max_pixels`` pixels; default: the decoder's limit).
    ``stability=True``: each detector also scores degraded copies (JPEG 75, half size, blur) and a verdict that a
    copy disagrees with becomes ``uncertain`` (:meth:`hubdet.models.base.Detector.predict`; 4x the time).

    A detector that cannot judge the image answers ``verdict == "cannot_judge"`` with its ``reason`` (no
    probability, no pictures). ``provenance`` is read from the uploaded bytes (never from the decoded image) and
    never raises; ``summary["provenance_conflict"]`` says when it and every detector disagree. Raises
    :class:`BadImageError` or :class:`AppInputError`."""
    from hubdet.models.predict import predict_many

    chosen = pool.check_selection(names)
    uploaded = source is not None and not (isinstance(source, str) and not source.strip())
    record = read_provenance(source, name=name).to_dict() if uploaded else None
    try:
        decoded = decode_upload(source, name=name, max_pixels=max_pixels)
    except UnsupportedImageError as exc:  # readable, but no detector can judge samples of unknown meaning
        unjudged = [DetectorResult(detector=n, verdict=CANNOT_JUDGE, reason=exc.reason) for n in chosen]
        image = {"file": exc.path, "width": None, "height": None, "format": None, "mode": None, "frames": None,
                 "notes": []}
        return Comparison(image=image, results=unjudged, summary=agreement_summary(unjudged, record),
                          provenance=record)
    except BadImageError as exc:  # no comparison, but what the file's metadata says still reaches the caller
        if record is not None:
            exc.provenance = record  # type: ignore[attr-defined]
        raise
    shown, scale = display_copy(decoded.image)
    detectors, failures = pool.load(chosen)
    runs = predict_many(detectors, [decoded.image], digests={n: pool.weights_sha256(n) for n in detectors},
                        locks={n: pool.lock(n) for n in detectors}, stability=stability)
    results = {n: DetectorResult(detector=n, error=failures.get(n)) for n in chosen}
    for n in detectors:
        _fill(results[n], detectors[n], runs[n], decoded.name)
    heatmaps: dict[str, np.ndarray] = {}
    for n in sorted(detectors, key=lambda d: bool(runs[d].shared_members)):  # members' maps before ensembles'
        result = results[n]
        if result.error is None and result.reason is None:
            with pool.lock(n):  # explanations may hook the detector's modules
                _pictures(result, detectors[n], decoded.image, shown, scale, explain_it=explain_it,
                          heatmaps=heatmaps, shared=runs[n].shared_members, prediction=runs[n].predictions[0])
    ordered = [results[n] for n in chosen]
    return Comparison(image=decoded.info(), results=ordered, summary=agreement_summary(ordered, record),
                      preview=shown, provenance=record)


def _fill(result: DetectorResult, detector: Any, run: Any, file: str) -> None:
    """Copy a detector's :class:`~hubdet.models.predict.DetectorRun` on one image into ``result`` (box rounded to
    0.1 pixel), its "cannot judge" and reason, or its error."""
    result.family, result.supports_boxes = detector.family, bool(detector.supports_boxes)
    result.shared_members = run.shared_members
    if run.error is not None:
        result.error = f"{result.detector} failed on {file}: {run.error}"
        return
    pred = run.predictions[0]
    result.seconds = round(run.seconds, 4)
    result.verdict = pred.verdict
    if not pred.judged:
        result.reason = pred.reason
        return
    result.prob_fake = float(pred.prob)
    result.stability = pred.extra.get("stability")
    result.box = [round(float(v), 1) for v in pred.box] if pred.box is not None else None
    result.box_score = float(pred.box_score) if pred.box_score is not None else None
    result.predicts_masks = bool(getattr(detector, "predicts_masks", False)) and pred.mask is not None
    if result.predicts_masks:
        result.regions = [{"box": [round(float(v), 1) for v in r["box"]], "score": round(float(r["score"]), 4),
                           "area_fraction": round(float(r["area_fraction"]), 5)} for r in (pred.regions or [])]
        result.flagged_fraction = round(float((pred.mask >= 0.5).mean()), 5)


def _pictures(result: DetectorResult, detector: Any, img: Image.Image, shown: Image.Image, scale: float, *,
              explain_it: bool, heatmaps: dict[str, np.ndarray] | None = None,
              shared: dict[str, str] | None = None, prediction: Any = None) -> None:
    """The column's pictures at display size (``shown`` is ``img`` scaled by ``scale``): the heatmap overlay (and
    the method) when asked, and the box for box-capable detectors. A mask detector's own map replaces the heatmap
    (it IS the explanation: no Grad-CAM), and its mask is drawn with one box per region. A failed explanation is
    reported, not raised.

    ``heatmaps`` (detector name -> its map, filled here) lets an ensemble reuse the maps of the members it
    ``shared`` with detectors explained before it (``"k:member" -> detector name``)."""
    from hubdet.models.explain import explain

    if result.predicts_masks and prediction is not None and prediction.mask is not None:
        result.mask_image = overlay_mask(shown, prediction.mask, result.regions, scale=scale)
        result.box_image = None  # the mask picture carries every region's box
        if explain_it:
            small = np.asarray(Image.fromarray(prediction.mask.astype(np.float32)).resize(
                shown.size, Image.Resampling.BILINEAR))
            result.heatmap_image = overlay_heatmap(shown, small)
            result.explanation = str(getattr(detector, "explanation_method", "")
                                     or "the detector's own inpainting map")
            result.explanation_seconds = 0.0
            if heatmaps is not None:  # an ensemble beside it with this detector as a member reuses the map
                heatmaps[result.detector] = np.clip(prediction.mask.astype(np.float32), 0.0, 1.0)
        return
    if result.supports_boxes:
        label = f"{result.detector}: {result.box_score:.2f}" if result.box_score is not None else result.detector
        result.box_image = draw_box(shown, result.box, label, scale=scale)
    if not explain_it:
        return
    heatmaps = heatmaps if heatmaps is not None else {}
    known = {int(member.split(":", 1)[0]): heatmaps[src] for member, src in (shared or {}).items() if src in heatmaps}
    try:
        start = time.perf_counter()
        heat, result.explanation = explain(detector, img, member_maps=known)
        result.explanation_seconds = round(time.perf_counter() - start, 4)
        heatmaps[result.detector] = heat
        small = np.asarray(Image.fromarray(heat).resize(shown.size, Image.Resampling.BILINEAR))
        result.heatmap_image = overlay_heatmap(shown, small)
    except Exception as exc:  # explanations are a bonus: report, keep the prediction
        logger.exception("explanation failed for %s", result.detector)
        result.explanation = f"no explanation ({type(exc).__name__}: {exc})"


def _box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    import torch
    from torchvision.ops import box_iou

    ta = torch.tensor([list(a)], dtype=torch.float32)
    tb = torch.tensor([list(b)], dtype=torch.float32)
    return float(box_iou(ta, tb)[0, 0])


def agreement_summary(results: Sequence[DetectorResult], provenance: dict[str, Any] | None = None) -> dict[str, Any]:
    """Where the detectors agree and disagree: verdict groups, probability spread, pairwise box IoU; with the
    upload's ``provenance`` record, its conclusion and the note when it and every detector disagree."""
    ok = [r for r in results if r.error is None and r.prob_fake is not None]
    groups: dict[str, list[str]] = {}
    for r in ok:
        groups.setdefault(str(r.verdict), []).append(r.detector)
    probs = [float(r.prob_fake) for r in ok if r.prob_fake is not None]
    pairs = []
    for i, a in enumerate(ok):
        for b in ok[i + 1:]:
            pair: dict[str, Any] = {"a": a.detector, "b": b.detector, "same_verdict": a.verdict == b.verdict,
                                    "prob_difference": round(abs(float(a.prob_fake) - float(b.prob_fake)), 4)}
            if a.box is not None and b.box is not None:
                pair["box_iou"] = round(_box_iou(a.box, b.box), 4)
            pairs.append(pair)
    agree = len(ok) >= 2 and len(groups) == 1
    unjudged = {r.detector: r.reason for r in results if r.error is None and r.reason is not None}
    summary: dict[str, Any] = {
        "n_detectors": len(results), "n_ok": len(ok), "unanimous": agree,
        "verdicts": {r.detector: r.verdict for r in ok},
        "groups": groups,
        "prob_fake_min": round(min(probs), 4) if probs else None,
        "prob_fake_max": round(max(probs), 4) if probs else None,
        "prob_fake_mean": round(float(np.mean(probs)), 4) if probs else None,
        "pairs": pairs,
        "errors": {r.detector: r.error for r in results if r.error},
        "cannot_judge": unjudged,
        "provenance": provenance.get("conclusion") if provenance else None,
        "provenance_conflict": pixel_conflict(provenance, [r.to_dict() for r in results]) if provenance else None,
    }
    summary["text"] = summary_markdown(summary)
    return summary


def summary_markdown(summary: dict[str, Any]) -> str:
    """A few readable lines from :func:`agreement_summary`."""
    lines = []
    groups = summary["groups"]
    if summary["n_ok"] == 0 and summary.get("cannot_judge"):
        lines.append("**No detector can judge this image.**")
    elif summary["n_ok"] == 0:
        lines.append("**No detector produced a result.**")
    elif summary["n_ok"] == 1:
        (verdict, names), = groups.items()
        lines.append(f"Only **{names[0]}** produced a result: **{verdict}**.")
    elif summary["unanimous"]:
        (verdict, names), = groups.items()
        lines.append(f"**All {len(names)} detectors agree: {verdict}.**")
    else:
        parts = [f"{', '.join(names)} say **{verdict}**" for verdict, names in groups.items()]
        lines.append("**The detectors disagree:** " + "; ".join(parts) + ".")
    if summary["prob_fake_min"] is not None and summary["n_ok"] >= 2:
        lines.append(f"Fake probability ranges from {summary['prob_fake_min']:.2f} to {summary['prob_fake_max']:.2f} "
                     f"(spread {summary['prob_fake_max'] - summary['prob_fake_min']:.2f}).")
    for pair in summary["pairs"]:
        if "box_iou" in pair:
            lines.append(f"Boxes of {pair['a']} and {pair['b']} overlap with IoU {pair['box_iou']:.2f}.")
    for name, reason in summary.get("cannot_judge", {}).items():
        lines.append(f"{name}: cannot judge: {reason}")
    for name, error in summary["errors"].items():
        lines.append(f"{name}: error: {error}")
    return "\n\n".join(lines)
