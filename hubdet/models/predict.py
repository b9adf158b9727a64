"""Several detectors on the same images, with ensemble member sharing: :func:`predict_many`.

An ensemble compared beside stand-alone detectors that ARE some of its members (the same weights digest over weights
and other state files, :func:`hubdet.models.integrity.weights_sha256`, and the same predict config) reuses their
predictions instead of running those members again (:meth:`~hubdet.models.ensemble.EnsembleDetector.predict_with`):
the fused result is exactly the ensemble's own ``predict``, and each member runs once. The app's compare and batch
both call :func:`predict_many`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from typing import Any

from hubdet.models.base import Detector
from hubdet.models.config import DetectorConfig
from hubdet.models.output import Prediction

logger = logging.getLogger(__name__)


@dataclass
class DetectorRun:
    """One detector's predictions on the images of a :func:`predict_many` call, or why there are none."""

    name: str
    predictions: list[Prediction] | None = None  # one per image; "cannot judge" ones have verdict "cannot_judge"
    error: str | None = None  # "ExceptionType: message" when the detector failed
    seconds: float = 0.0  # wall time of its predict (for an ensemble that shares: the fusion + members it ran)
    shared_members: dict[str, str] = field(default_factory=dict)  # "k:member name" -> detector it reused


def predicts_alike(a: DetectorConfig, b: DetectorConfig) -> bool:
    """Whether two configs predict alike given the same weights (family, args, preprocessing, calibration, labels)."""
    return (a.family, a.args, a.preprocess, a.calibration, tuple(a.labels)) == (
        b.family, b.args, b.preprocess, b.calibration, tuple(b.labels))


def share_plan(detectors: Mapping[str, Detector], digests: Mapping[str, str | None]) -> dict[str, dict[int, str]]:
    """For each ensemble among ``detectors``: member index -> a stand-alone detector among them with the same
    weights digest (``digests[name]``: :func:`hubdet.models.resolver.weights_record`'s ``sha256``; None or missing:
    never shared) and a config that :func:`predicts_alike`, whose predictions it can reuse."""
    from hubdet.models.ensemble import EnsembleDetector

    providers = {n: d for n, d in detectors.items() if not isinstance(d, EnsembleDetector) and digests.get(n)}
    plan: dict[str, dict[int, str]] = {}
    for name, model in detectors.items():
        if not isinstance(model, EnsembleDetector):
            continue
        shared = {}
        for k, (member, digest) in enumerate(zip(model.members, model.member_sha256(), strict=True)):
            match = next((n for n, d in providers.items()
                          if digest is not None and digests[n] == digest and predicts_alike(d.config, member.config)),
                         None)
            if match is not None:
                shared[k] = match
        if shared:
            plan[name] = shared
    return plan


def _member_label(ensemble: Any, k: int) -> str:
    member = ensemble.members[k]
    return f"{k}:{member.config.name or member.family}"


def predict_many(
    detectors: Mapping[str, Detector],
    images: Sequence[Any],
    *,
    digests: Mapping[str, str | None] | None = None,
    locks: Mapping[str, AbstractContextManager[Any]] | None = None,
    batch_size: int | None = None,
    stability: bool = False,
) -> dict[str, DetectorRun]:
    """Every detector's predictions on ``images`` (decoded PIL images, paths or bytes), in ``detectors``' order.

    Ensembles reuse the predictions of stand-alone detectors that are their members (:func:`share_plan` over
    ``digests``; no digests: nothing is shared) and run after them. ``locks[name]`` (optional) is held while
    detector ``name`` predicts. All detectors predict in batches of ``batch_size`` (default: all images at once),
    the same for all, so a shared prediction is bit-identical to the one the member would make inside the ensemble.
    A detector that raises gets ``run.error`` (logged) and the others go on: one model's failure costs no answer.
    ``stability=True``: every detector also scores degraded copies (see :meth:`Detector.predict`); nothing is shared.
    """
    images = list(images)
    size = batch_size or max(1, len(images))
    plan = {} if stability else share_plan(detectors, digests or {})
    runs: dict[str, DetectorRun] = {}
    for name in [n for n in detectors if n not in plan] + [n for n in detectors if n in plan]:  # providers first
        detector = detectors[name]
        shared = {k: src for k, src in plan.get(name, {}).items() if runs[src].predictions is not None}
        run = DetectorRun(name)
        lock = (locks or {}).get(name)
        with lock if lock is not None else nullcontext():
            start = time.perf_counter()
            try:
                if shared:
                    known = {k: runs[src].predictions or [] for k, src in shared.items()}
                    run.predictions = detector.predict_with(images, known, batch_size=size)  # type: ignore[attr-defined]
                    run.shared_members = {_member_label(detector, k): src for k, src in sorted(shared.items())}
                else:
                    run.predictions = detector.predict(images, batch_size=size, stability=stability)
            except Exception as exc:  # keep serving the other detectors; the caller reports the failure
                logger.exception("detector %s failed on %d image(s)", name, len(images))
                run.error = f"{type(exc).__name__}: {exc}"
            run.seconds = time.perf_counter() - start
        runs[name] = run
    return {n: runs[n] for n in detectors}
