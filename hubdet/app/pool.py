"""The configured detectors, loaded lazily and cached, safe to share between threads: :class:`DetectorPool`.

Every detector is loaded by the resolver (:func:`hubdet.load_detector`): hubdet checkpoints and outside
transformers/timm/ONNX classifiers alike. Users may add a Hub model repo by id (:meth:`DetectorPool.add`), loaded
once and cached. Also the app's two error types: :class:`AppInputError` (a request the app refuses) and
:class:`DetectorLoadError`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from typing import Any

from hubdet._core.errors import HubdetError
from hubdet.app.config import DetectorSpec

logger = logging.getLogger(__name__)

MIN_SIDES = 2
MAX_SIDES = 4
MAX_ADDED = 6  # Hub repos users may add to one app (each stays in memory)


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
        self._digests: dict[str, str | None] = {}  # weights_sha256 of each loaded detector (None: random weights)
        self._failures: dict[str, str] = {}
        self._locks = {name: threading.RLock() for name in self.specs}
        self._added: list[str] = []
        self._add_lock = threading.Lock()

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
            self._digests[name] = _weights_digest(model)
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
        """:func:`~hubdet.models.integrity.weights_sha256` of loaded detector ``name`` (None if random, unknown or not
        loaded): what :func:`hubdet.models.predict.predict_many` matches ensemble members against."""
        return self._digests.get(name)

    def add(self, text: str) -> str:
        """Add a Hub model repository by id (``org/name``, ``org/name@revision``, optionally with a kind prefix such
        as ``transformers:``), load it once and cache it; return its name in the pool (the spec as typed).

        Raises :class:`AppInputError` with the reason: not a Hub id, offline, no such repository or revision, not an
        image classifier (or labels that do not say which class is fake), too many added detectors.
        """
        from hubdet._core.errors import HubRepoError
        from hubdet._core.hub import is_offline
        from hubdet.app.config import DetectorSpec
        from hubdet.models.resolver import SpecError, parse_spec

        text = (text or "").strip()
        try:
            spec = parse_spec(text)
        except SpecError as exc:
            raise AppInputError(str(exc)) from None
        if spec.kind == "registry" or not spec.is_hub or len(text) > 200:
            raise AppInputError(f"{text!r} is not a Hub model id: type 'org/name' or 'org/name@revision' (e.g. "
                                "'umm-maybe/AI-image-detector')")
        with self._add_lock:
            if text in self._models:
                return text
            if text in self.specs:
                raise AppInputError(f"{text!r} is already a detector name here")
            if len(self._added) >= MAX_ADDED:
                raise AppInputError(f"this app holds at most {MAX_ADDED} added detectors ({self._added})")
            if is_offline():
                raise AppInputError(f"the app is offline (HF_HUB_OFFLINE is set): it cannot fetch {text!r} from the "
                                    "Hub; choose among the configured detectors")
            start = time.perf_counter()
            try:
                model = _load(DetectorSpec(name=_label(text), model=text))
            except HubRepoError as exc:
                raise AppInputError(f"cannot add {text!r}: {exc}") from None
            except Exception as exc:  # not an image classifier, ambiguous labels, pickle-only weights ...
                logger.warning("cannot add %s: %s", text, exc)
                raise AppInputError(f"cannot add {text!r}: {exc}") from None
            model.eval()
            self._digests[text] = _weights_digest(model)
            self._models[text] = model
            self._locks = {**self._locks, text: threading.RLock()}
            self.specs = {**self.specs, text: DetectorSpec(name=_label(text), model=text,
                                                           description="added by a user from the Hub")}
            self._added.append(text)
            logger.info("added detector %s in %.2fs", text, time.perf_counter() - start)
            return text

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
                prov = model.provenance
                if prov is not None:
                    row.update(revision=prov.revision, weights_sha256=prov.sha256, verified=prov.verified)
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


def _label(text: str) -> str:
    """A detector name the config accepts for a spec typed by a user (its characters limited, 64 at most)."""
    import re

    return re.sub(r"[^\w.\- ]", "-", text)[:64] or "added"


def _weights_digest(model: Any) -> str | None:
    """The digest ensemble members are matched against; None for random weights (never shared)."""
    from hubdet.models.resolver import weights_record

    prov = model.provenance
    if prov is not None and prov.format == "registry":
        return None
    return weights_record(model).sha256


def _load(spec: DetectorSpec) -> Any:
    from hubdet.models.resolver import load_detector

    detector = load_detector(spec.model)
    if detector.provenance is not None and detector.provenance.format == "registry":
        detector.config.metadata.setdefault("description", "random weights (demo/test only)")
    return detector
