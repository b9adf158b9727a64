"""Explain a detector's fake logit as a heatmap over the original image: :func:`explain`.

Cheapest faithful method first:

- a detector that explains itself is asked for its own map (``explain_map(image)`` returning ``[H, W]`` in [0, 1]
  over the image, or None when it has none for its configuration, and an ``explanation_method`` label):
  copy-move: its duplicate-block density; box head: its per-tile fake probability at native resolution; probe with
  an affine head over average-pooled features: the class activation map (:func:`pooled_cam`, one forward pass, no
  gradient, an exact split of the logit over positions); probe on a foundation tower (the CLIP classifier): the
  gradient x activation of its patch tokens under the affine head (captum ``LayerGradientXActivation``, one forward
  and one backward pass: 0.8 s instead of 5-10 s of occlusion for a ViT-B/16 on 2 cores, and on 24 validation images
  it removed the evidence faster than occlusion when the top patches were blurred); ensemble: its members' maps
  weighted as the fusion weighs them (maps already computed for the same members beside it are reused:
  ``member_maps``);
- otherwise Grad-CAM (captum ``LayerGradCam``: one forward and one backward pass) on the last conv layer whose
  output reaches the logit, on a copy no larger than :data:`EXPLAIN_MAX_SIDE` for full-resolution families;
- occlusion (captum ``Occlusion``, a coarse grid, one row per batched pass) for models with neither (ViTs, other heads).

Grad-CAM and occlusion work on the model input; :func:`hubdet.models.preprocessing.map_to_original` maps the result
back through the detector's own resize/crop geometry. What a detector's ``predict`` computed for an image (tile
logits, duplicate density) is kept with the image while it lives (:func:`remember` / :func:`recall`), so explaining a
prediction does not compute it twice.
"""

from __future__ import annotations

import logging
import math
import threading
import weakref
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from PIL import Image

from hubdet.models.base import Detector
from hubdet.models.preprocessing import map_to_original

logger = logging.getLogger(__name__)

EXPLAIN_MAX_SIDE = 512  # full-resolution families are explained on a copy no larger than this
OCCLUSION_GRID = 5  # occlusion patches per side (all patches run in one batch)

_LAYERS: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()  # detector -> Grad-CAM layer or None
_LAYERS_LOCK = threading.Lock()
# id(image) -> (weak reference to the image, {detector: {key: value}})
_SEEN: dict[int, tuple[weakref.ref, weakref.WeakKeyDictionary[Any, dict[str, Any]]]] = {}
_SEEN_LOCK = threading.RLock()  # re-entrant: an image may be collected (and forgotten) while the lock is held


# ---------------------------------------------------------------------------------------------------- evidence cache
def _forget(key: int, ref: weakref.ref) -> None:
    with _SEEN_LOCK:
        if key in _SEEN and _SEEN[key][0] is ref:
            del _SEEN[key]


def remember(detector: Any, image: Any, key: str, value: Any) -> None:
    """Keep ``value`` (what ``detector`` computed for ``image`` while predicting) for as long as both live. Images
    are told apart by identity (PIL images are not hashable), through a weak reference."""
    try:
        with _SEEN_LOCK:
            entry = _SEEN.get(id(image))
            if entry is None or entry[0]() is not image:
                ref = weakref.ref(image, lambda r, k=id(image): _forget(k, r))
                entry = _SEEN[id(image)] = (ref, weakref.WeakKeyDictionary())
            entry[1].setdefault(detector, {})[key] = value
    except TypeError:  # an input that cannot be weakly referenced: nothing is kept
        pass


def recall(detector: Any, image: Any, key: str) -> Any:
    """What :func:`remember` kept for ``detector`` and ``image`` under ``key``, or None."""
    with _SEEN_LOCK:
        entry = _SEEN.get(id(image))
        if entry is None or entry[0]() is not image:
            return None
        return entry[1].get(detector, {}).get(key)


# ---------------------------------------------------------------------------------------------------- own maps
def input_map_to_original(heat_in: torch.Tensor | np.ndarray, detector: Any, img: Image.Image) -> np.ndarray:
    """An ``[h, w]`` map over the model input (positive part, scaled to its peak) mapped onto ``img`` through the
    detector's resize/crop geometry: ``[H, W]`` float32 in [0, 1]."""
    heat = np.asarray(heat_in.detach().float().cpu().numpy() if torch.is_tensor(heat_in) else heat_in, np.float32)
    heat = np.clip(np.nan_to_num(heat), 0.0, None)
    peak = float(heat.max()) if heat.size else 0.0
    heat = heat / peak if peak > 0 else np.zeros_like(heat)
    return np.clip(map_to_original(heat, detector.config.preprocess, img.width, img.height), 0.0, 1.0)


def spatial_features(module: Any, x: torch.Tensor) -> torch.Tensor | None:
    """``[C, h, w]`` features of a timm backbone whose pooled output is exactly their spatial mean (CNNs with average
    pooling, ViTs averaging their patch tokens), else None (CLS-token or attention pooling, norms after pooling)."""
    if not (hasattr(module, "forward_features") and hasattr(module, "forward_head")):
        return None
    feats = module.forward_features(x)
    pooled = module.forward_head(feats)
    if feats.ndim == 4:
        fmap = feats[0].float()
    elif feats.ndim == 3:
        tokens = feats[0, int(getattr(module, "num_prefix_tokens", 0)):].float()
        side = math.isqrt(tokens.shape[0])
        if side * side != tokens.shape[0]:
            return None
        fmap = tokens.T.reshape(tokens.shape[1], side, side)
    else:
        return None
    mean = fmap.mean((1, 2))
    if pooled.ndim != 2 or pooled.shape[1] != mean.shape[0] or not torch.allclose(
            pooled[0].float(), mean, rtol=1e-3, atol=1e-4 * (1.0 + float(mean.abs().max()))):
        return None
    return fmap


def pooled_cam(parts: list[tuple[Any, torch.Tensor]], weights: torch.Tensor) -> torch.Tensor | None:
    """Class activation map of an affine head over concatenated average-pooled features: ``parts`` are
    ``(backbone, its input [1, 3, H, W])`` in feature order, ``weights`` the head's weight per feature. Each position
    gets ``sum_c w_c f_c(position)``; their mean over positions plus the bias IS the logit. ``[H, W]`` over the
    input, or None when a backbone does not average-pool."""
    import torch.nn.functional as F

    total = None
    offset = 0
    with torch.no_grad():
        for module, x in parts:
            fmap = spatial_features(module, x)
            if fmap is None:
                return None
            w = weights[offset:offset + fmap.shape[0]].to(fmap)
            offset += fmap.shape[0]
            cam = torch.einsum("c,chw->hw", w, fmap)
            cam = F.interpolate(cam[None, None], size=tuple(x.shape[-2:]), mode="bilinear", align_corners=False)[0, 0]
            total = cam if total is None else total + cam
    return total if offset == weights.numel() else None


# ---------------------------------------------------------------------------------------------------- Grad-CAM
def _logit_forward(detector: Any):  # noqa: ANN202
    def forward(pixel_values: torch.Tensor) -> torch.Tensor:
        return detector(pixel_values).logits.reshape(pixel_values.shape[0])

    return forward


def gradcam_layer(detector: Any, x: torch.Tensor) -> Any:
    """The last conv layer whose output reaches the fake logit, or None (then occlusion is used).

    Composite detectors (detectors made of detectors, like ensembles) and models with a single conv (a ViT patch
    embedding) return None: one member's or the stem's Grad-CAM would not explain the whole decision.
    """
    from torch import nn

    if any(isinstance(m, Detector) for m in detector.modules() if m is not detector):
        return None
    convs = [m for m in detector.modules() if isinstance(m, nn.Conv2d)]
    if len(convs) < 2:  # a ViT (one patch-embedding conv): decided without a forward pass with gradients
        return None
    seen: list[tuple[nn.Module, Any]] = []
    hooks = [m.register_forward_hook(lambda mod, _i, out: seen.append((mod, out))) for m in convs]
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


def gradcam(detector: Any, layer: Any, x: torch.Tensor) -> torch.Tensor:
    """Grad-CAM of the fake logit at ``layer``, upsampled to the input size: ``[H, W]``."""
    from captum.attr import LayerAttribution, LayerGradCam

    with torch.enable_grad():
        attr = LayerGradCam(_logit_forward(detector), layer).attribute(
            x.clone().requires_grad_(True), relu_attributions=True)
    attr = LayerAttribution.interpolate(attr.detach(), tuple(x.shape[-2:]), interpolate_mode="bilinear")
    return attr[0].sum(0)


def occlusion(detector: Any, x: torch.Tensor, grid: int = OCCLUSION_GRID) -> torch.Tensor:
    """Occlusion of a ``grid x grid`` lattice of patches, one lattice row per batch (the whole lattice in one batch
    took a CLIP ViT-B/16 probe ~480 MB over its resting memory) (positive part: patches whose removal lowers the fake
    logit), smoothed by bilinear upsampling of the patch centres: ``[H, W]``."""
    import torch.nn.functional as F
    from captum.attr import Occlusion

    h, w = x.shape[-2:]
    win = (max(2, math.ceil(h / grid)), max(2, math.ceil(w / grid)))
    with torch.no_grad():
        attr = Occlusion(_logit_forward(detector)).attribute(
            x, sliding_window_shapes=(x.shape[1], *win), strides=(x.shape[1], *win), baselines=0.0,
            perturbations_per_eval=grid,
        )
    per_pixel = attr[0].sum(0).clamp(min=0)
    ys = torch.arange(win[0] // 2, h, win[0])
    xs = torch.arange(win[1] // 2, w, win[1])
    centres = per_pixel[ys][:, xs][None, None]
    return F.interpolate(centres.float(), size=(h, w), mode="bilinear", align_corners=False)[0, 0]


def _cached_layer(detector: Any, x: torch.Tensor) -> Any:
    """:func:`gradcam_layer`, found once per detector (None: occlusion)."""
    with _LAYERS_LOCK:
        if detector in _LAYERS:
            return _LAYERS[detector]
    try:
        layer = gradcam_layer(detector, x)
    except Exception as exc:  # non-differentiable heads (e.g. scikit-learn) fall back to occlusion
        logger.info("Grad-CAM unavailable for %s (%s); using occlusion", type(detector).__name__, exc)
        layer = None
    with _LAYERS_LOCK:
        _LAYERS[detector] = layer
    return layer


# ---------------------------------------------------------------------------------------------------- explain
def explain(detector: Any, img: Image.Image, *, member_maps: Mapping[int, np.ndarray] | None = None
            ) -> tuple[np.ndarray, str]:
    """A ``[H, W]`` float32 heatmap in [0, 1] over ``img`` (decoded RGB) of what pushed the fake logit up, and the
    method used (see the module docstring). ``member_maps``: maps of a composite detector's members (by index)
    already computed over ``img``. Not thread-safe per detector (Grad-CAM hooks its modules): callers that share
    a detector between threads hold a lock around the call."""
    own = getattr(detector, "explain_map", None)
    if callable(own):  # a detector that explains itself
        heat_own = own(img, member_maps=member_maps) if member_maps and hasattr(detector, "members") else own(img)
        if heat_own is not None:
            method = str(getattr(detector, "explanation_method", "the detector's own map"))
            return np.clip(np.nan_to_num(np.asarray(heat_own, dtype=np.float32)), 0.0, 1.0), method
    original = img
    scale = EXPLAIN_MAX_SIDE / max(img.size)
    if detector.config.preprocess.resize == "none" and scale < 1:  # full-resolution families: bound the cost
        img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))),
                         Image.Resampling.BILINEAR)
    x = detector.batch_transform([img]).to(detector.device)  # channels-last: fast convolutions on CPU
    layer = _cached_layer(detector, x)
    was_training = detector.training
    detector.eval()
    try:
        if layer is not None:
            heat_in = gradcam(detector, layer, x)
            method = "Grad-CAM (captum LayerGradCam)"
            if not bool(heat_in.max() > 0):
                method += ": no region pushes towards fake"
        else:
            heat_in = occlusion(detector, x)
            method = f"occlusion (captum Occlusion, {OCCLUSION_GRID}x{OCCLUSION_GRID} patches)"
    finally:
        detector.train(was_training)
    canvas = input_map_to_original(heat_in, detector, img)
    if img.size != original.size:
        canvas = np.asarray(Image.fromarray(canvas).resize(original.size, Image.Resampling.BILINEAR))
    return np.clip(canvas, 0.0, 1.0), method
