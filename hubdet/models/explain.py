"""Explain a detector's fake logit as a heatmap over the original image: :func:`explain`.

- a detector that explains itself (an ``explain_map(image)`` method and an ``explanation_method`` label; copy-move:
  its duplicate-block density at native resolution) is asked for its own map;
- otherwise Grad-CAM (captum ``LayerGradCam``) on the last conv layer whose output reaches the logit;
- occlusion (captum ``Occlusion``) for models without one (ensembles, ViTs, classical heads).

Grad-CAM and occlusion work on the model input; :func:`hubdet.models.preprocessing.map_to_original` maps the result
back through the detector's own resize/crop geometry.
"""

from __future__ import annotations

import logging
import math
import threading
import weakref
from typing import Any

import numpy as np
import torch
from PIL import Image

from hubdet.models.base import Detector
from hubdet.models.preprocessing import map_to_original

logger = logging.getLogger(__name__)

EXPLAIN_MAX_SIDE = 512  # full-resolution families are explained on a copy no larger than this

_LAYERS: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()  # detector -> Grad-CAM layer or None
_LAYERS_LOCK = threading.Lock()


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


def gradcam(detector: Any, layer: Any, x: torch.Tensor) -> torch.Tensor:
    """Grad-CAM of the fake logit at ``layer``, upsampled to the input size: ``[H, W]``."""
    from captum.attr import LayerAttribution, LayerGradCam

    with torch.enable_grad():
        attr = LayerGradCam(_logit_forward(detector), layer).attribute(
            x.clone().requires_grad_(True), relu_attributions=True)
    attr = LayerAttribution.interpolate(attr.detach(), tuple(x.shape[-2:]), interpolate_mode="bilinear")
    return attr[0].sum(0)


def occlusion(detector: Any, x: torch.Tensor, grid: int = 7) -> torch.Tensor:
    """Occlusion of a ``grid x grid`` lattice of patches (positive part: patches whose removal lowers the fake
    logit), smoothed by bilinear upsampling of the patch centres: ``[H, W]``."""
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


def explain(detector: Any, img: Image.Image) -> tuple[np.ndarray, str]:
    """A ``[H, W]`` float32 heatmap in [0, 1] over ``img`` (decoded RGB) of what pushed the fake logit up, and the
    method used (see the module docstring). Not thread-safe per detector (Grad-CAM hooks its modules): callers
    that share a detector between threads hold a lock around the call."""
    own = getattr(detector, "explain_map", None)
    if callable(own):  # a detector that explains itself (copy-move: its duplicate density at native resolution)
        heat_own = np.asarray(own(img), dtype=np.float32)
        return np.clip(heat_own, 0.0, 1.0), str(getattr(detector, "explanation_method", "the detector's own map"))
    original = img
    scale = EXPLAIN_MAX_SIDE / max(img.size)
    if detector.config.preprocess.resize == "none" and scale < 1:  # full-resolution families: bound the cost
        img = img.resize((max(1, round(img.width * scale)), max(1, round(img.height * scale))),
                         Image.Resampling.BILINEAR)
    x = detector.transform(img).unsqueeze(0).to(detector.device)
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
            method = "occlusion (captum Occlusion)"
    finally:
        detector.train(was_training)
    heat = heat_in.float().cpu().numpy()
    peak = float(heat.max()) if heat.size else 0.0
    heat = heat / peak if peak > 0 else np.zeros_like(heat)
    canvas = map_to_original(heat, detector.config.preprocess, img.width, img.height)
    if img.size != original.size:
        canvas = np.asarray(Image.fromarray(canvas).resize(original.size, Image.Resampling.BILINEAR))
    return np.clip(canvas, 0.0, 1.0), method
