"""The app's pure-python logic: a lazy, thread-safe detector cache, compare, batch, explanations, drawing.

Nothing here imports gradio; the UI (:mod:`hubdet.app.ui`) only wires these functions to components.
Every image is decoded by :func:`hubdet.data.imageio.open_image` (the one decoder, with its bad-file rules).
"""

from __future__ import annotations

import csv
import io
import logging
import math
import os
import tempfile
import threading
import time
import weakref
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from hubdet._core.errors import BadImageError, HubdetError
from hubdet.app.config import DetectorSpec

logger = logging.getLogger(__name__)

MIN_SIDES = 2
MAX_SIDES = 4
DISPLAY_MAX_SIDE = 768  # overlays sent to the browser are downscaled to this longest side
EXPLAIN_MAX_SIDE = 512  # full-resolution families are explained on a copy no larger than this


class AppInputError(HubdetError, ValueError):
    """A request the app refuses (too few/many detectors, unknown names, oversized archives...)."""


class DetectorLoadError(HubdetError, RuntimeError):
    """A configured detector could not be loaded; the message says which and why."""


# ============================================================================ detector cache


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
        self._check_name(name)
        return self._locks[name]

    def _check_name(self, name: str) -> None:
        if name not in self.specs:
            if name in self.problems:
                raise AppInputError(f"detector {name!r} is configured but unavailable: {self.problems[name]}")
            raise AppInputError(f"unknown detector {name!r}; available: {self.names()}")

    def is_loaded(self, name: str) -> bool:
        return name in self._models

    def get(self, name: str) -> Any:
        """The loaded detector ``name`` (loaded on first call, then cached). Raises :class:`DetectorLoadError`."""
        self._check_name(name)
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
            folder = _checkpoint_folder(spec)
            self._digests[name] = _state_sha256(folder)
            self._models[name] = model
            logger.info("loaded detector %s from %s in %.2fs", name, spec.source, time.perf_counter() - start)
            return model

    def weights_sha256(self, name: str) -> str | None:
        """State digest (weights and other state files, :func:`~hubdet.models.base.checkpoint_sha256`) of loaded
        detector ``name`` (None if unknown or not loaded)."""
        return self._digests.get(name)

    def share_plan(self, names: Sequence[str]) -> dict[str, dict[int, str]]:
        """For each ensemble among ``names``: member index -> a stand-alone detector among ``names`` with the same
        state digest (weights and other state files such as a probe's skops head) and the same config, whose
        predictions the ensemble can reuse.

        Loads the detectors; one that cannot be loaded takes no part (its error is reported when it runs)."""
        from hubdet.models.ensemble import EnsembleDetector

        loaded = {}
        for name in names:
            try:
                loaded[name] = self.get(name)
            except (DetectorLoadError, AppInputError):
                continue
        providers = {n: m for n, m in loaded.items() if not isinstance(m, EnsembleDetector) and self._digests.get(n)}
        plan: dict[str, dict[int, str]] = {}
        for name, model in loaded.items():
            if not isinstance(model, EnsembleDetector):
                continue
            shared = {}
            for k, (member, digest) in enumerate(zip(model.members, model.member_sha256(), strict=True)):
                if digest is None:
                    continue
                match = next((n for n, m in providers.items()
                              if self._digests[n] == digest and _same_predict_config(m.config, member.config)), None)
                if match is not None:
                    shared[k] = match
            if shared:
                plan[name] = shared
        return plan

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
            self._check_name(name)
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


def _same_predict_config(a: Any, b: Any) -> bool:
    """Whether two detector configs predict alike given the same weights (family, args, preprocessing, calibration)."""
    return (a.family, a.args, a.preprocess, a.calibration, tuple(a.labels)) == (
        b.family, b.args, b.preprocess, b.calibration, tuple(b.labels))


def _load(spec: DetectorSpec) -> Any:
    from hubdet.models import create_detector, from_pretrained

    if spec.path:
        return from_pretrained(spec.path)
    if spec.repo_id:
        return from_pretrained(spec.repo_id, revision=spec.revision or None)
    detector = create_detector(spec.registry)
    detector.config.metadata.setdefault("description", "random weights (demo/test only)")
    return detector


# ============================================================================ image decoding


@dataclass
class DecodedImage:
    """An uploaded image decoded by the shared decoder, with notes on what was normalised."""

    name: str
    image: Image.Image
    format: str | None
    mode: str
    n_frames: int
    notes: list[str] = field(default_factory=list)

    def info(self) -> dict[str, Any]:
        return {"file": self.name, "width": self.image.width, "height": self.image.height, "format": self.format,
                "mode": self.mode, "frames": self.n_frames, "notes": self.notes}


def decode_upload(source: str | os.PathLike | bytes | None, *, name: str | None = None) -> DecodedImage:
    """Decode an upload (a path or bytes). Raises :class:`BadImageError` with a readable reason."""
    from hubdet.data.imageio import open_image

    if source is None or (isinstance(source, str) and not source.strip()):
        raise BadImageError(name or "<upload>", "no file was uploaded")
    label = name or (Path(os.fspath(source)).name if not isinstance(source, bytes) else "<bytes>")
    try:
        img, info = open_image(source)
    except BadImageError as exc:
        raise BadImageError(label, exc.reason) from None
    notes = []
    if info.n_frames > 1:
        notes.append(f"animated image with {info.n_frames} frames: the first frame was analysed")
    if info.mode != "RGB":
        how = " (transparent pixels composited on white)" if "A" in info.mode or "transparency" in img.info else ""
        notes.append(f"converted from mode {info.mode} to 8-bit RGB{how}")
    return DecodedImage(label, img, info.format, info.mode, info.n_frames, notes)


# ============================================================================ drawing


def display_copy(img: Image.Image, max_side: int = DISPLAY_MAX_SIDE) -> tuple[Image.Image, float]:
    """A copy no larger than ``max_side`` and the scale applied (for boxes)."""
    scale = min(1.0, max_side / max(img.width, img.height))
    if scale >= 1.0:
        return img.copy(), 1.0
    size = (max(1, round(img.width * scale)), max(1, round(img.height * scale)))
    return img.resize(size, Image.Resampling.BILINEAR), scale


def draw_box(img: Image.Image, box: Sequence[float] | None, label: str = "", *,
             color: tuple[int, int, int] = (255, 40, 40), scale: float = 1.0) -> Image.Image:
    """``img`` with ``box`` (original pixels, xyxy; multiplied by ``scale``) drawn and labelled."""
    out = img.convert("RGB").copy()
    if box is None:
        return out
    x0, y0, x1, y1 = (float(v) * scale for v in box)
    draw = ImageDraw.Draw(out)
    width = max(2, round(max(out.size) / 200))
    draw.rectangle([x0, y0, x1, y1], outline=color, width=width)
    if label:
        text_y = max(0.0, y0 - 12)
        bbox = draw.textbbox((x0 + 2, text_y), label)
        draw.rectangle(bbox, fill=color)
        draw.text((x0 + 2, text_y), label, fill=(255, 255, 255))
    return out


def overlay_heatmap(img: Image.Image, heat: np.ndarray, *, alpha: float = 0.45, cmap: str = "jet") -> Image.Image:
    """Blend a ``[H, W]`` heatmap in [0, 1] (resized to ``img``) over ``img`` with a matplotlib colormap;
    the blend weight grows with the heat, so cold regions stay readable."""
    from matplotlib import colormaps

    base = np.asarray(img.convert("RGB"), dtype=np.float32)
    h = np.asarray(heat, dtype=np.float32)
    if h.shape != base.shape[:2]:
        h = np.asarray(Image.fromarray(h).resize(img.size, Image.Resampling.BILINEAR), dtype=np.float32)
    h = np.clip(np.nan_to_num(h), 0.0, 1.0)
    colored = colormaps[cmap](h)[..., :3].astype(np.float32) * 255.0
    weight = (alpha * np.sqrt(h))[..., None]  # cold regions keep the photo visible
    out = base * (1.0 - weight) + colored * weight
    return Image.fromarray(np.clip(out, 0, 255).astype(np.uint8), "RGB")


# ============================================================================ explanations


_EXPLAINERS: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()
_EXPLAINERS_LOCK = threading.Lock()


def _logit_forward(detector: Any):  # noqa: ANN202
    def forward(pixel_values: Any) -> Any:
        return detector(pixel_values).logits.reshape(pixel_values.shape[0])

    return forward


def _gradcam_layer(detector: Any, x: Any) -> Any:
    """The last conv layer whose output reaches the fake logit, or None (then occlusion is used).

    Composite detectors (detectors made of detectors, like ensembles) and models with a single conv (a ViT patch
    embedding) return None: one member's or the stem's Grad-CAM would not explain the whole decision.
    """
    import torch
    from torch import nn

    from hubdet.models.base import Detector

    if any(isinstance(m, Detector) for m in detector.modules() if m is not detector):
        return None
    seen: list[tuple[nn.Module, Any]] = []
    hooks = [m.register_forward_hook(lambda mod, _i, out: seen.append((mod, out)))
             for m in detector.modules() if isinstance(m, nn.Conv2d)]
    try:
        with torch.enable_grad():
            logits = _logit_forward(detector)(x.clone().requires_grad_(True))
            cands = [(m, o) for m, o in seen
                     if isinstance(o, torch.Tensor) and o.dim() == 4 and min(o.shape[-2:]) >= 2 and o.requires_grad]
            if not cands:
                return None
            grads = torch.autograd.grad(logits.sum(), [o for _, o in cands], allow_unused=True)
    finally:
        for h in hooks:
            h.remove()
    connected = [m for (m, _), g in zip(cands, grads, strict=True) if g is not None and bool(g.abs().sum() > 0)]
    return connected[-1] if len(connected) >= 2 else None


def _gradcam(detector: Any, layer: Any, x: Any) -> Any:
    """Grad-CAM of the fake logit at ``layer``, upsampled to the input size: ``[H, W]``."""
    import torch
    from captum.attr import LayerAttribution, LayerGradCam

    with torch.enable_grad():
        attr = LayerGradCam(_logit_forward(detector), layer).attribute(
            x.clone().requires_grad_(True), relu_attributions=True)
    attr = LayerAttribution.interpolate(attr.detach(), tuple(x.shape[-2:]), interpolate_mode="bilinear")
    return attr[0].sum(0)


def _occlusion(detector: Any, x: Any, grid: int = 7) -> Any:
    """Occlusion of a ``grid x grid`` lattice of patches (positive part: patches whose removal lowers the fake
    logit), smoothed by bilinear upsampling of the patch centres: ``[H, W]``."""
    import torch
    import torch.nn.functional as F
    from captum.attr import Occlusion

    h, w = x.shape[-2:]
    win = (max(2, math.ceil(h / grid)), max(2, math.ceil(w / grid)))
    with torch.no_grad():
        attr = Occlusion(_logit_forward(detector)).attribute(
            x, sliding_window_shapes=(x.shape[1], *win), strides=(x.shape[1], *win), baselines=0.0,
            perturbations_per_eval=8,
        )
    per_pixel = attr[0].sum(0).clamp(min=0)
    ys = torch.arange(win[0] // 2, h, win[0])
    xs = torch.arange(win[1] // 2, w, win[1])
    centres = per_pixel[ys][:, xs][None, None]
    return F.interpolate(centres.float(), size=(h, w), mode="bilinear", align_corners=False)[0, 0]


def explain(detector: Any, img: Image.Image) -> tuple[np.ndarray, str]:
    """A ``[H, W]`` heatmap in [0, 1] over the ORIGINAL image of what pushed the fake logit up, and the method.

    A detector with its own ``explain_map`` (copy-move: where the duplicated blocks are) is asked for it; otherwise
    Grad-CAM (captum ``LayerGradCam``) on the last conv layer that reaches the logit; occlusion (captum
    ``Occlusion``) for models without one (ensembles, ViTs, classical heads). The caller holds the detector lock.
    """
    from hubdet.models.preprocessing import crop_box

    own = getattr(detector, "explain_map", None)
    if callable(own):  # a detector that explains itself (copy-move: its duplicate density at native resolution)
        heat_own = np.asarray(own(img), dtype=np.float32)
        return np.clip(heat_own, 0.0, 1.0), str(getattr(detector, "explanation_method", "the detector's own map"))
    original = img
    if detector.config.preprocess.resize == "none" and max(img.size) > EXPLAIN_MAX_SIDE:
        img, _ = display_copy(img, EXPLAIN_MAX_SIDE)  # full-resolution families: bound the cost of explaining
    x = detector.transform(img).unsqueeze(0).to(detector.device)
    with _EXPLAINERS_LOCK:
        known = detector in _EXPLAINERS
        layer = _EXPLAINERS.get(detector)
    if not known:
        try:
            layer = _gradcam_layer(detector, x)
        except Exception as exc:  # non-differentiable heads (e.g. scikit-learn) fall back to occlusion
            logger.info("Grad-CAM unavailable for %s (%s); using occlusion", type(detector).__name__, exc)
            layer = None
        with _EXPLAINERS_LOCK:
            _EXPLAINERS[detector] = layer
    was_training = detector.training
    detector.eval()
    try:
        if layer is not None:
            heat_in = _gradcam(detector, layer, x)
            method = "Grad-CAM (captum LayerGradCam)"
            if not bool(heat_in.max() > 0):
                method += ": no region pushes towards fake"
        else:
            heat_in = _occlusion(detector, x)
            method = "occlusion (captum Occlusion)"
    finally:
        detector.train(was_training)
    heat = heat_in.float().cpu().numpy()
    peak = float(heat.max()) if heat.size else 0.0
    heat = heat / peak if peak > 0 else np.zeros_like(heat)
    # map the model-input heatmap back onto the original image (resize/crop geometry of the detector)
    left, top, sx, sy, out_w, out_h = crop_box(detector.config.preprocess, img.width, img.height)
    region = (round(left), round(top), round(left + out_w / sx), round(top + out_h / sy))
    resized = Image.fromarray(heat.astype(np.float32)).resize(
        (max(1, region[2] - region[0]), max(1, region[3] - region[1])), Image.Resampling.BILINEAR)
    canvas = np.zeros((img.height, img.width), np.float32)
    arr = np.asarray(resized, dtype=np.float32)
    x0, y0 = max(region[0], 0), max(region[1], 0)
    x1, y1 = min(region[2], img.width), min(region[3], img.height)
    if x1 > x0 and y1 > y0:
        canvas[y0:y1, x0:x1] = arr[y0 - region[1]:y1 - region[1], x0 - region[0]:x1 - region[0]]
    if img.size != original.size:
        canvas = np.asarray(Image.fromarray(canvas).resize(original.size, Image.Resampling.BILINEAR))
    return np.clip(canvas, 0.0, 1.0), method


# ============================================================================ compare


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
    family: str = ""
    explanation: str = ""
    explanation_seconds: float | None = None
    error: str | None = None
    shared_members: dict[str, str] = field(default_factory=dict)  # ensemble member -> detector it reused
    box_image: Image.Image | None = None
    heatmap_image: Image.Image | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "detector": self.detector, "prob_fake": self.prob_fake, "verdict": self.verdict, "box": self.box,
            "box_score": self.box_score, "seconds": self.seconds, "supports_boxes": self.supports_boxes,
            "family": self.family, "explanation": self.explanation,
            "explanation_seconds": self.explanation_seconds, "error": self.error,
            "shared_members": dict(self.shared_members),
        }


@dataclass
class Comparison:
    """A side-by-side comparison of one image."""

    image: dict[str, Any]
    results: list[DetectorResult]
    summary: dict[str, Any]
    preview: Image.Image | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"ok": True, "error": None, "image": self.image, "results": [r.to_dict() for r in self.results],
                "summary": self.summary}


def run_detector(pool: DetectorPool, name: str, decoded: DecodedImage, *, explain_it: bool = True,
                 display: tuple[Image.Image, float] | None = None) -> DetectorResult:
    """Predict (and optionally explain) one image with one detector; errors become ``result.error``."""
    return _run_detector(pool, name, decoded, explain_it=explain_it, display=display)[0]


def _member_label(ensemble: Any, k: int) -> str:
    member = ensemble.members[k]
    return f"{k}:{member.config.name or member.family}"


def _run_detector(pool: DetectorPool, name: str, decoded: DecodedImage, *, explain_it: bool = True,
                  display: tuple[Image.Image, float] | None = None,
                  shared: dict[int, tuple[str, Any]] | None = None) -> tuple[DetectorResult, Any]:
    """:func:`run_detector` and the raw prediction (None on error). ``shared``: ensemble member index ->
    ``(detector name, its Prediction)`` reused instead of running that member (see :meth:`DetectorPool.share_plan`)."""
    result = DetectorResult(detector=name)
    try:
        detector = pool.get(name)
    except (DetectorLoadError, AppInputError) as exc:
        result.error = str(exc)
        return result, None
    result.family = detector.family
    result.supports_boxes = bool(detector.supports_boxes)
    img = decoded.image
    shown, scale = display or display_copy(img)
    with pool.lock(name):
        try:
            start = time.perf_counter()
            if shared:  # the time is then the fusion plus the members the ensemble still runs itself
                pred = detector.predict_with([img], {k: [p] for k, (_, p) in shared.items()}, batch_size=1)[0]
                result.shared_members = {_member_label(detector, k): src for k, (src, _) in sorted(shared.items())}
            else:
                pred = detector.predict([img], batch_size=1)[0]
            result.seconds = round(time.perf_counter() - start, 4)
        except Exception as exc:  # a model failure must not take the app down
            logger.exception("detector %s failed on %s", name, decoded.name)
            result.error = f"{name} failed on {decoded.name}: {type(exc).__name__}: {exc}"
            return result, None
        result.prob_fake = float(pred.prob)
        result.verdict = pred.verdict
        result.box = [round(float(v), 1) for v in pred.box] if pred.box is not None else None
        result.box_score = float(pred.box_score) if pred.box_score is not None else None
        if explain_it:
            try:
                start = time.perf_counter()
                heat, result.explanation = explain(detector, img)
                result.explanation_seconds = round(time.perf_counter() - start, 4)
                small = np.asarray(Image.fromarray(heat).resize(shown.size, Image.Resampling.BILINEAR))
                result.heatmap_image = overlay_heatmap(shown, small)
            except Exception as exc:  # explanations are a bonus: report, keep the prediction
                logger.exception("explanation failed for %s", name)
                result.explanation = f"no explanation ({type(exc).__name__}: {exc})"
    if result.supports_boxes:
        label = f"{name}: {result.box_score:.2f}" if result.box_score is not None else name
        result.box_image = draw_box(shown, result.box, label, scale=scale)
    return result, pred


def compare(pool: DetectorPool, source: str | os.PathLike | bytes | None, names: Sequence[str] | None, *,
            explain_it: bool = True, name: str | None = None) -> Comparison:
    """Run the chosen detectors on one upload. Raises :class:`BadImageError` or :class:`AppInputError`."""
    chosen = pool.check_selection(names)
    decoded = decode_upload(source, name=name)
    display = display_copy(decoded.image)
    plan = pool.share_plan(chosen)  # ensembles reuse the predictions of stand-alone copies of their members
    preds: dict[str, Any] = {}
    results: dict[str, DetectorResult] = {}
    for n in _providers_first(chosen, plan):
        shared = {k: (src, preds[src]) for k, src in plan.get(n, {}).items() if src in preds}
        results[n], pred = _run_detector(pool, n, decoded, explain_it=explain_it, display=display, shared=shared)
        if pred is not None:
            preds[n] = pred
    ordered = [results[n] for n in chosen]
    return Comparison(image=decoded.info(), results=ordered, summary=agreement_summary(ordered),
                      preview=display[0])


def _providers_first(names: Sequence[str], plan: dict[str, dict[int, str]]) -> list[str]:
    """``names`` with the ensembles that reuse predictions last (they need those of the others)."""
    return [n for n in names if n not in plan] + [n for n in names if n in plan]


def _box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    import torch
    from torchvision.ops import box_iou

    ta = torch.tensor([list(a)], dtype=torch.float32)
    tb = torch.tensor([list(b)], dtype=torch.float32)
    return float(box_iou(ta, tb)[0, 0])


def agreement_summary(results: Sequence[DetectorResult]) -> dict[str, Any]:
    """Where the detectors agree and disagree: verdict groups, probability spread, pairwise box IoU."""
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
    summary: dict[str, Any] = {
        "n_detectors": len(results), "n_ok": len(ok), "unanimous": agree,
        "verdicts": {r.detector: r.verdict for r in ok},
        "groups": groups,
        "prob_fake_min": round(min(probs), 4) if probs else None,
        "prob_fake_max": round(max(probs), 4) if probs else None,
        "prob_fake_mean": round(float(np.mean(probs)), 4) if probs else None,
        "pairs": pairs,
        "errors": {r.detector: r.error for r in results if r.error},
    }
    summary["text"] = summary_markdown(summary)
    return summary


def summary_markdown(summary: dict[str, Any]) -> str:
    """A few readable lines from :func:`agreement_summary`."""
    lines = []
    groups = summary["groups"]
    if summary["n_ok"] == 0:
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
    for name, error in summary["errors"].items():
        lines.append(f"{name}: error: {error}")
    return "\n\n".join(lines)


# ============================================================================ batch


@dataclass(frozen=True)
class BatchLimits:
    """Limits on one batch request (archives are checked before anything is decompressed)."""

    max_files: int = 200
    max_zip_members: int = 500
    max_zip_total_bytes: int = 512 * 1024 * 1024
    max_member_bytes: int = 64 * 1024 * 1024
    max_compression_ratio: float = 200.0


BATCH_COLUMNS = ["file", "detector", "prob_fake", "verdict", "box", "box_score", "error"]


def expand_uploads(paths: Sequence[str | os.PathLike], limits: BatchLimits = BatchLimits()
                   ) -> Iterator[tuple[str, str | bytes | None, str | None]]:
    """Yield ``(name, source, error)`` for each uploaded file and each file inside uploaded zips.

    A zip over the member-count or total-size limit, or with an extreme compression ratio, is refused as a whole
    (one entry with the error) before any member is decompressed; members are read with a size cap, so an
    archive whose headers lie cannot inflate past the limit either.
    """
    count = 0
    for raw in paths:
        path = Path(os.fspath(raw))
        if path.suffix.lower() == ".zip" or (path.is_file() and path.stat().st_size > 0 and zipfile.is_zipfile(path)):
            entries = _zip_members(path, limits)
        else:
            entries = iter([(path.name, str(path), None)])
        for entry in entries:
            if count >= limits.max_files:
                yield (path.name, None, f"batch stopped: more than {limits.max_files} files in one request")
                return
            count += 1
            yield entry


def _zip_members(path: Path, limits: BatchLimits
                 ) -> Iterator[tuple[str, str | bytes | None, str | None]]:
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        yield (path.name, None, f"not a readable zip archive ({exc})")
        return
    with zf:
        infos = [i for i in zf.infolist() if not i.is_dir() and not _hidden(i.filename)]
        total = sum(i.file_size for i in infos)
        compressed = sum(i.compress_size for i in infos)
        if len(infos) > limits.max_zip_members:
            yield (path.name, None, f"zip refused: {len(infos)} files, over the limit of {limits.max_zip_members}")
            return
        if total > limits.max_zip_total_bytes:
            yield (path.name, None, f"zip refused: {total / 2**20:.1f} MiB uncompressed, over the limit of "
                                    f"{limits.max_zip_total_bytes / 2**20:.0f} MiB")
            return
        if compressed and total / compressed > limits.max_compression_ratio and total > 2**20:
            yield (path.name, None, f"zip refused: compression ratio {total / compressed:.0f}:1 looks like a zip bomb")
            return
        if not infos:
            yield (path.name, None, "zip archive holds no files")
            return
        read_total = 0
        for info in infos:
            label = f"{path.name}/{info.filename}"
            if info.file_size > limits.max_member_bytes:
                yield (label, None, f"file is {info.file_size / 2**20:.1f} MiB, over the per-file limit of "
                                    f"{limits.max_member_bytes / 2**20:.0f} MiB")
                continue
            try:
                with zf.open(info) as member:
                    data = member.read(limits.max_member_bytes + 1)
            except (zipfile.BadZipFile, RuntimeError, OSError, NotImplementedError, EOFError) as exc:
                yield (label, None, f"cannot read from the zip ({exc})")
                continue
            read_total += len(data)
            if len(data) > limits.max_member_bytes or read_total > limits.max_zip_total_bytes:
                yield (label, None, "zip refused: members inflate past the declared size limits")
                return
            yield (label, data, None)


def _hidden(name: str) -> bool:
    parts = Path(name).parts
    return any(p.startswith(".") or p == "__MACOSX" for p in parts)


def _box_text(box: Sequence[float] | None) -> str:
    return "" if box is None else ",".join(f"{v:.0f}" for v in box)


def batch(pool: DetectorPool, paths: Sequence[str | os.PathLike] | None, names: Sequence[str] | None, *,
          limits: BatchLimits = BatchLimits(), chunk: int = 8) -> list[dict[str, Any]]:
    """Rows ``file, detector, prob_fake, verdict, box, box_score, error`` for every file x detector.

    Bad files and refused archives become rows with their error (one per detector); nothing is skipped silently.
    """
    if not paths:
        raise AppInputError("upload one or more images or a zip archive")
    chosen = list(dict.fromkeys(names or []))
    if not chosen:
        raise AppInputError("choose at least one detector")
    for name in chosen:
        pool._check_name(name)
    rows: list[dict[str, Any]] = []

    def error_rows(label: str, error: str, detectors: Sequence[str]) -> None:
        rows.extend({"file": label, "detector": d, "prob_fake": None, "verdict": None, "box": "",
                     "box_score": None, "error": error} for d in detectors)

    pending: list[tuple[str, Image.Image]] = []

    plan: dict[str, dict[int, str]] | None = None

    def flush() -> None:
        nonlocal plan
        if not pending:
            return
        if plan is None:
            plan = pool.share_plan(chosen)  # ensembles reuse the predictions of stand-alone copies of their members
        images = [im for _, im in pending]
        outcome: dict[str, list[Any] | str] = {}  # name -> predictions, or the error message
        for name in _providers_first(chosen, plan):
            try:
                detector = pool.get(name)
            except DetectorLoadError as exc:
                outcome[name] = str(exc)
                continue
            shared = {k: outcome[src] for k, src in plan.get(name, {}).items() if isinstance(outcome.get(src), list)}
            with pool.lock(name):
                try:
                    if shared:
                        outcome[name] = detector.predict_with(images, shared, batch_size=len(images))
                    else:
                        outcome[name] = detector.predict(images, batch_size=len(images))
                except Exception as exc:  # keep serving: the batch reports the failure per file
                    logger.exception("detector %s failed on a batch", name)
                    outcome[name] = f"{type(exc).__name__}: {exc}"
        for name in chosen:
            preds = outcome[name]
            if isinstance(preds, str):
                for label, _ in pending:
                    error_rows(label, preds, [name])
                continue
            for (label, _), pred in zip(pending, preds, strict=True):
                rows.append({"file": label, "detector": name, "prob_fake": round(float(pred.prob), 4),
                             "verdict": pred.verdict, "box": _box_text(pred.box),
                             "box_score": None if pred.box_score is None else round(float(pred.box_score), 4),
                             "error": ""})
        pending.clear()

    for label, source, error in expand_uploads(paths, limits):
        if error is not None:
            flush()
            error_rows(label, error, chosen)
            continue
        try:
            decoded = decode_upload(source, name=label)
        except BadImageError as exc:
            flush()
            error_rows(label, exc.reason, chosen)
            continue
        pending.append((label, decoded.image))
        if len(pending) >= chunk:
            flush()
    flush()
    return rows


def rows_to_csv(rows: Sequence[dict[str, Any]], path: str | os.PathLike | None = None) -> Path:
    """Write batch rows to a CSV file (a new temporary file if ``path`` is None) and return its path."""
    if path is None:
        path = Path(tempfile.mkdtemp(prefix="hubdet_batch_")) / "hubdet_batch.csv"
    path = Path(path)
    with path.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=BATCH_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


# ============================================================================ examples


def examples_dir() -> Path:
    """Where generated example images live: ``HUBDET_APP_CACHE/examples`` or ``<tempdir>/hubdet_app/examples``.

    The temporary directory is the default because Gradio serves files from it without extra ``allowed_paths``.
    """
    env = os.environ.get("HUBDET_APP_CACHE", "").strip()
    base = Path(env).expanduser() if env else Path(tempfile.gettempdir()) / "hubdet_app"
    return base / "examples"


def _synthetic_scene(width: int, height: int, seed: int) -> np.ndarray:
    """A photo-like synthetic scene: sky gradient, sun, layered hills, textured ground, sensor noise."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    t = yy / height
    sky = np.stack([90 + 110 * t, 150 + 70 * t, 230 - 20 * t], -1)
    img = sky.copy()
    cx, cy, r = width * (0.2 + 0.6 * rng.random()), height * 0.25, min(width, height) * 0.08
    sun = np.clip(1.3 - np.hypot(xx - cx, yy - cy) / r, 0, 1)[..., None]
    img = img * (1 - sun) + np.array([255, 240, 200], np.float32) * sun
    for k, color in enumerate(([70, 110, 70], [50, 90, 45], [95, 80, 50])):
        phase = rng.random() * 6.28
        ridge = height * (0.45 + 0.15 * k) + height * 0.06 * np.sin(xx[0] / width * (3 + 2 * k) * 3.14 + phase)
        mask = (yy > ridge[None, :]).astype(np.float32)[..., None]
        shade = (1 - 0.3 * (yy - ridge[None, :]).clip(0) / height)[..., None]
        img = img * (1 - mask) + np.array(color, np.float32) * shade * mask
    texture = rng.normal(0, 1, (height // 4 + 1, width // 4 + 1)).astype(np.float32)
    texture = np.asarray(Image.fromarray(texture).resize((width, height), Image.Resampling.BICUBIC))
    img += (t[..., None] > 0.5) * texture[..., None] * 12
    img += rng.normal(0, 3, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


def ensure_examples(folder: str | os.PathLike | None = None) -> list[Path]:
    """Generate (once) a few synthetic example images and return their paths. No downloads, no shared data.

    - ``scene.jpg``: a photo-like synthetic landscape, JPEG q90;
    - ``scene_patched.jpg``: the same scene with a region repainted smoothly (a crude stand-in for inpainting);
    - ``scene_rgba.png``: the scene with an alpha channel (exercises the decoder's RGB normalisation).
    """
    folder = Path(folder) if folder is not None else examples_dir()
    folder.mkdir(parents=True, exist_ok=True)
    names = ("scene.jpg", "scene_patched.jpg", "scene_rgba.png")
    paths = [folder / n for n in names]
    if all(p.is_file() and p.stat().st_size > 0 for p in paths):
        return paths
    scene = _synthetic_scene(640, 480, seed=7)
    patched = scene.copy()
    y0, y1, x0, x1 = 260, 400, 360, 560
    region = Image.fromarray(patched[y0:y1, x0:x1]).resize((10, 7), Image.Resampling.BILINEAR)
    patched[y0:y1, x0:x1] = np.asarray(region.resize((x1 - x0, y1 - y0), Image.Resampling.BICUBIC))
    alpha = np.full(scene.shape[:2], 255, np.uint8)
    alpha[:40] = 128
    encoded = {
        "scene.jpg": _encode(Image.fromarray(scene), "JPEG", quality=90),
        "scene_patched.jpg": _encode(Image.fromarray(patched), "JPEG", quality=90),
        "scene_rgba.png": _encode(Image.fromarray(np.dstack([scene, alpha]), "RGBA"), "PNG"),
    }
    for path in paths:
        tmp = path.with_suffix(path.suffix + f".{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_bytes(encoded[path.name])
        os.replace(tmp, path)
    return paths


def _encode(img: Image.Image, fmt: str, **kwargs: Any) -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt, **kwargs)
    return buf.getvalue()


# ============================================================================ leaderboard

ALL = "All"
LEADERBOARD_COLUMNS = ("rank", "model", "revision", "family", "source", "split", "perturbation", "metric", "value",
                       "roc_auc", "average_precision", "accuracy", "f1", "eer", "tpr_at_1pct_fpr", "ece", "mean_iou",
                       "hit_rate@0.55", "mean_drop", "n", "pinned", "suite")


def load_leaderboard(folder: str | os.PathLike) -> tuple[list[dict[str, Any]] | None, str]:
    """Result files of ``folder`` read and validated by ``hubdet.eval.leaderboard`` (unpinned ones kept, flagged
    in the ``pinned`` column), and a status message; ``None`` when there is nothing to show."""
    folder = Path(folder)
    if not folder.is_dir() or not any(folder.rglob("*.json")):
        return None, f"No leaderboard results yet (looked in `{folder}`; set `HUBDET_RESULTS_DIR`)."
    try:
        from hubdet.eval.leaderboard import load_results

        results = load_results(folder, allow_unpinned=True)
    except Exception as exc:  # a broken results file must not break the app: show what is wrong
        logger.exception("cannot read the leaderboard results in %s", folder)
        return None, f"Cannot read the leaderboard results in `{folder}`: {exc}"
    if not results:
        return None, f"No leaderboard results yet in `{folder}`."
    return results, f"{len(results)} result(s) from `{folder}`."


def leaderboard_choices(results: Sequence[dict[str, Any]] | None) -> dict[str, Any]:
    """Filter choices: sources (``All`` first), perturbations (``clean`` first), metrics and the default metric."""
    from hubdet.eval.leaderboard import TABLE_METRICS, default_metric, perturbations_of, sources_of

    if not results:
        return {"source": [ALL], "perturbation": ["clean"], "metric": list(TABLE_METRICS), "default_metric": None}
    return {"source": [ALL, *sources_of(results)], "perturbation": perturbations_of(results),
            "metric": list(TABLE_METRICS), "default_metric": default_metric(results)}


def leaderboard_frame(results: Sequence[dict[str, Any]] | None, *, source: str | None = None,
                      perturbation: str | None = None, metric: str | None = None) -> Any:
    """The ranked table (pandas DataFrame) for one source (``All``: every source) and one perturbation."""
    import pandas as pd

    from hubdet.eval.leaderboard import leaderboard_table

    if not results:
        return pd.DataFrame(columns=list(LEADERBOARD_COLUMNS))
    rows = leaderboard_table(results, metric or None, source=None if source in (None, "", ALL) else source,
                             perturbation=perturbation or "clean")
    frame = pd.DataFrame(rows)
    if not len(frame):
        return frame
    return frame[[c for c in LEADERBOARD_COLUMNS if c in frame.columns]].round(4)
