"""The configured detectors, loaded lazily and cached, safe to share between threads: :class:`DetectorPool`.

Also the app's two error types: :class:`AppInputError` (a request the app refuses) and :class:`DetectorLoadError`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hubdet._core.errors import HubdetError
from hubdet.app.config import DetectorSpec

logger = logging.getLogger(__name__)

MIN_SIDES = 2
MAX_SIDES = 4


class AppInputError(HubdetError, ValueError):
    """A request the app refuses (too few/many detectors, unknown names, oversized archives...)."""


class DetectorLoadError(HubdetError, RuntimeError):
    """A configured detector could not be loaded; the message says which and why."""


class DetectorPool:
    """The configured detectors, loaded lazily on first use and cached; safe to share between threads.

    Each detector has its own lock: loading happens once, and inference/explanations on one detector are
    serialised (explanations register hooks on modules), while different detectors run concurrently.
    """

    def __init__(self, specs: Sequence[DetectorSpec]) -> None:
        self.specs: dict[str, DetectorSpec] = {}
        self.problems: dict[str, str] = {}
        for spec in specs:
            problem = spec.problem()
            if problem:
                logger.warning("detector %s is not offered: %s", spec.name, problem)
                self.problems[spec.name] = problem
            else:
                self.specs[spec.name] = spec
        self._models: dict[str, Any] = {}
        self._digests: dict[str, str | None] = {}  # state digest of each loaded detector (None: unknown)
        self._failures: dict[str, str] = {}
        self._locks = {name: threading.RLock() for name in self.specs}

    def names(self) -> list[str]:
        """Names of the detectors that can be offered (in configuration order)."""
        return list(self.specs)

    def lock(self, name: str) -> threading.RLock:
        """The lock that serialises use of detector ``name``."""
        self.check_name(name)
        return self._locks[name]

    def check_name(self, name: str) -> None:
        """Raise :class:`AppInputError` unless ``name`` is an offered detector."""
        if name not in self.specs:
            if name in self.problems:
                raise AppInputError(f"detector {name!r} is configured but unavailable: {self.problems[name]}")
            raise AppInputError(f"unknown detector {name!r}; available: {self.names()}")

    def is_loaded(self, name: str) -> bool:
        return name in self._models

    def get(self, name: str) -> Any:
        """The loaded detector ``name`` (loaded on first call, then cached). Raises :class:`DetectorLoadError`."""
        self.check_name(name)
        model = self._models.get(name)
        if model is not None:
            return model
        with self._locks[name]:
            if name in self._models:
                return self._models[name]
            if name in self._failures:
                raise DetectorLoadError(self._failures[name])
            spec = self.specs[name]
            start = time.perf_counter()
            try:
                model = _load(spec)
            except Exception as exc:  # any loading failure becomes one clear, cached message
                message = f"detector {name!r} ({spec.source}) could not be loaded: {exc}"
                logger.error(message)
                self._failures[name] = message
                raise DetectorLoadError(message) from exc
            model.eval()
            self._digests[name] = _state_sha256(_checkpoint_folder(spec))
            self._models[name] = model
            logger.info("loaded detector %s from %s in %.2fs", name, spec.source, time.perf_counter() - start)
            return model

    def load(self, names: Sequence[str]) -> tuple[dict[str, Any], dict[str, str]]:
        """The detectors among ``names`` that load (in order), and the load error of each one that does not."""
        loaded, failed = {}, {}
        for name in names:
            try:
                loaded[name] = self.get(name)
            except DetectorLoadError as exc:
                failed[name] = str(exc)
        return loaded, failed

    def weights_sha256(self, name: str) -> str | None:
        """State digest (weights and other state files, :func:`~hubdet.models.base.checkpoint_sha256`) of loaded
        detector ``name`` (None if unknown or not loaded): what :func:`hubdet.models.predict.predict_many` matches
        ensemble members against."""
        return self._digests.get(name)

    def describe(self) -> list[dict[str, Any]]:
        """One dict per configured detector: name, source, description, availability (loaded ones add details)."""
        rows = []
        for name, spec in self.specs.items():
            row: dict[str, Any] = {"name": name, "source": spec.source, "description": spec.description,
                                   "available": name not in self._failures, "loaded": name in self._models}
            model = self._models.get(name)
            if model is not None:
                row.update(family=model.family, supports_boxes=bool(model.supports_boxes),
                           registry_name=model.config.name, weights_source=model.config.weights_source)
                row["description"] = row["description"] or model.config.metadata.get("description", "")
            if name in self._failures:
                row["error"] = self._failures[name]
            rows.append(row)
        for name, problem in self.problems.items():
            rows.append({"name": name, "source": "", "description": "", "available": False, "loaded": False,
                         "error": problem})
        return rows

    def check_selection(self, names: Sequence[str] | None) -> list[str]:
        """Validate a side-by-side selection: two to four known names (fewer only if fewer are configured)."""
        names = list(dict.fromkeys(names or []))
        for name in names:
            self.check_name(name)
        low = min(MIN_SIDES, len(self.specs))
        if not low <= len(names) <= MAX_SIDES or not names:
            raise AppInputError(f"choose {low} to {MAX_SIDES} detectors (got {len(names)})")
        return names


def _checkpoint_folder(spec: DetectorSpec) -> Path | None:
    """The detector's checkpoint folder (local or the Hub snapshot it was loaded from), None for registry ones."""
    from hubdet._core.hub import local_or_snapshot

    if not (spec.path or spec.repo_id):
        return None  # random weights: never shared
    try:
        return local_or_snapshot(spec.path or spec.repo_id, revision=spec.revision or None)
    except (OSError, ValueError) as exc:  # no folder only means no sharing
        logger.warning("cannot find the checkpoint of %s (%s): its predictions will not be shared", spec.name, exc)
        return None


def _state_sha256(folder: Path | None) -> str | None:
    """The checkpoint's state digest (weights + other state files), None if there is no readable checkpoint."""
    from hubdet.models.base import checkpoint_sha256

    if folder is None or not folder.is_dir():
        return None
    try:
        return checkpoint_sha256(folder)
    except OSError:
        return None


def _load(spec: DetectorSpec) -> Any:
    from hubdet.models import create_detector, from_pretrained

    if spec.path:
        return from_pretrained(spec.path)
    if spec.repo_id:
        return from_pretrained(spec.repo_id, revision=spec.revision or None)
    detector = create_detector(spec.registry)
    detector.config.metadata.setdefault("description", "random weights (demo/test only)")
    return detector
