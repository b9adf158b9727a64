"""Inpainting backends behind one small interface, for the inpainting benchmark maker.

An inpainter fills the pixels where ``mask`` is True and returns an image of the same shape::

    from hubdet.data.inpainters import create_inpainter

    inpainter = create_inpainter("telea")
    filled = inpainter.inpaint(image_rgb, mask)  # uint8 HxWx3, bool HxW (True = fill)

Built-in backends (``list_inpainters()``):

===============  ==========================  ==================================================
name             generator (recorded)        what
===============  ==========================  ==================================================
``telea``        ``opencv-telea``            ``cv2.inpaint`` with ``INPAINT_TELEA`` (fast marching)
``ns``           ``opencv-ns``               ``cv2.inpaint`` with ``INPAINT_NS`` (Navier-Stokes)
``fsr-fast``     ``opencv-xphoto-fsr-fast``  opencv-contrib ``cv2.xphoto.inpaint``, ``INPAINT_FSR_FAST``
``fsr-best``     ``opencv-xphoto-fsr-best``  same, ``INPAINT_FSR_BEST`` (much slower)
``patchmatch``   ``patchmatch``              ``pypatchmatch`` (PatchMatch, Barnes et al. 2009)
``exemplar``     ``exemplar-criminisi``      exemplar-based fill (Criminisi et al. 2004): exact copies of known patches
===============  ==========================  ==================================================

Learned inpainters (DeepFillv2, LaMa, ...) plug in with :func:`register_inpainter`; hubdet ships none
because their weights are not redistributable inside the package. A backend is a subclass of
:class:`Inpainter` that implements ``_fill``; weights come from a path the user gives::

    import numpy as np
    import torch
    from hubdet.data.inpainters import Inpainter, register_inpainter

    class LamaInpainter(Inpainter):
        name = "lama"
        generator = "lama"

        def __init__(self, weights: str, device: str = "cpu") -> None:
            super().__init__()
            self.model = torch.jit.load(weights, map_location=device).eval()  # a TorchScript export of LaMa
            self.device = device

        def _fill(self, image: np.ndarray, mask: np.ndarray) -> np.ndarray:
            x = torch.from_numpy(image).permute(2, 0, 1)[None].float().div(255).to(self.device)
            m = torch.from_numpy(mask)[None, None].float().to(self.device)
            with torch.no_grad():
                y = self.model(x, m)[0].permute(1, 2, 0).clamp(0, 1).mul(255).round()
            return y.byte().cpu().numpy()

    register_inpainter("lama", LamaInpainter)
    # then: make_inpainting_benchmark(..., backend="lama", backend_options={"weights": "/path/big-lama.pt"})

The base class checks inputs and outputs and pastes the filled pixels back into the untouched image, so
that pixels outside the mask never change (the ground truth stays exact whatever the backend does).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

import numpy as np

from hubdet._core.errors import HubdetError
from hubdet._core.registry import Registry

logger = logging.getLogger(__name__)

__all__ = [
    "Inpainter",
    "InpainterUnavailableError",
    "OpenCVInpainter",
    "XPhotoInpainter",
    "PatchMatchInpainter",
    "ExemplarInpainter",
    "available_inpainters",
    "build_inpainter",
    "create_inpainter",
    "get_inpainter_factory",
    "list_inpainters",
    "register_inpainter",
]


class InpainterUnavailableError(HubdetError, RuntimeError):
    """A backend is registered but cannot run here (missing package or native library)."""


class Inpainter:
    """Base class: validated ``inpaint(image, mask)``; subclasses implement ``_fill``.

    ``name`` is the registry name, ``generator`` the string recorded in the ``generator`` column.
    """

    name: str = "inpainter"
    generator: str = "inpainter"

    def __init__(self, **options: Any) -> None:
        if options:
            raise TypeError(f"{type(self).__name__} takes no options {sorted(options)}")

    def _fill(self, image: np.ndarray, mask: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def inpaint(self, image: np.ndarray, mask: np.ndarray) -> np.ndarray:
        """Fill ``image`` (uint8 HxWx3 RGB) where ``mask`` (bool HxW) is True; other pixels are kept."""
        if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            got = getattr(image, "shape", type(image).__name__), getattr(image, "dtype", None)
            raise ValueError(f"{self.name}: image must be a uint8 HxWx3 array, got {got}")
        mask = np.asarray(mask)
        if mask.shape != image.shape[:2]:
            raise ValueError(f"{self.name}: mask shape {mask.shape} does not match image shape {image.shape[:2]}")
        mask = mask.astype(bool, copy=False)
        if not mask.any():
            return image.copy()
        if mask.all():
            raise ValueError(f"{self.name}: the mask covers the whole image; nothing is left to inpaint from")
        image = np.ascontiguousarray(image)
        out = self._fill(image, mask)
        if not isinstance(out, np.ndarray) or out.shape != image.shape:
            raise RuntimeError(
                f"inpainter {self.name!r} returned shape {getattr(out, 'shape', None)}, expected {image.shape}"
            )
        out = out.astype(np.uint8, copy=False)
        return np.where(mask[..., None], out, image)

    __call__ = inpaint

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, generator={self.generator!r})"


class OpenCVInpainter(Inpainter):
    """``cv2.inpaint`` (TELEA or NS) with a neighbourhood ``radius`` in pixels."""

    def __init__(self, method: str = "telea", radius: float = 3.0) -> None:
        super().__init__()
        if method not in ("telea", "ns"):
            raise ValueError(f"OpenCV inpainting method must be 'telea' or 'ns', got {method!r}")
        if radius <= 0:
            raise ValueError(f"radius must be positive, got {radius}")
        self.method = method
        self.radius = float(radius)
        self.name = method
        self.generator = f"opencv-{method}"

    def _fill(self, image: np.ndarray, mask: np.ndarray) -> np.ndarray:
        import cv2

        flag = cv2.INPAINT_TELEA if self.method == "telea" else cv2.INPAINT_NS
        # cv2.inpaint treats the channels independently of their order, so RGB in gives RGB out.
        return cv2.inpaint(image, mask.astype(np.uint8) * 255, self.radius, flag)


class XPhotoInpainter(Inpainter):
    """opencv-contrib ``cv2.xphoto.inpaint`` (FSR_FAST or FSR_BEST); its mask marks the VALID pixels."""

    def __init__(self, algorithm: str = "fsr-fast") -> None:
        super().__init__()
        if algorithm not in ("fsr-fast", "fsr-best"):
            raise ValueError(f"xphoto algorithm must be 'fsr-fast' or 'fsr-best', got {algorithm!r}")
        import cv2

        if not hasattr(cv2, "xphoto"):
            raise InpainterUnavailableError(
                f"{algorithm}: cv2.xphoto is missing; install opencv-contrib-python-headless "
                "(and uninstall opencv-python/opencv-python-headless, which shadow it)"
            )
        self.algorithm = algorithm
        self.name = algorithm
        self.generator = f"opencv-xphoto-{algorithm}"

    def _fill(self, image: np.ndarray, mask: np.ndarray) -> np.ndarray:
        import cv2

        flag = cv2.xphoto.INPAINT_FSR_FAST if self.algorithm == "fsr-fast" else cv2.xphoto.INPAINT_FSR_BEST
        valid = (~mask).astype(np.uint8) * 255  # xphoto: non-zero = valid pixel, zero = to be filled
        bgr = np.ascontiguousarray(image[..., ::-1])  # FSR documents a BGR input
        dst = np.zeros_like(bgr)
        cv2.xphoto.inpaint(bgr, valid, dst, flag)
        return dst[..., ::-1]


class PatchMatchInpainter(Inpainter):
    """PatchMatch from ``pypatchmatch`` (prebuilt native library in its wheel; no build at first use).

    ``patch_size`` is the patch radius (patches span ``2 * patch_size + 1`` pixels); ``seed`` is set before
    every call, so equal inputs give equal outputs whatever the order of calls.
    """

    name = "patchmatch"
    generator = "patchmatch"

    def __init__(self, patch_size: int = 3, seed: int = 0) -> None:
        super().__init__()
        self.patch_size = int(patch_size)
        self.seed = int(seed)
        self._pm = _load_patchmatch()

    def _fill(self, image: np.ndarray, mask: np.ndarray) -> np.ndarray:
        self._pm.set_random_seed(self.seed)
        return self._pm.inpaint(image, mask.astype(np.uint8) * 255, patch_size=self.patch_size)


class ExemplarInpainter(Inpainter):
    """Exemplar-based inpainting (Criminisi, Perez and Toyama 2004): the hole is filled patch by patch with
    pixels copied EXACTLY from the known region, as patch-based object removal tools do.

    Each step takes the fill-front pixel of highest priority ``confidence x data term`` (the data term is the
    strength of the isophote hitting the front, so linear structures are propagated first), finds the fully known
    ``patch_size`` square with the smallest SSD over the target patch's known pixels (``cv2.matchTemplate`` with a
    mask) and copies its pixels into the target's unknown ones. For speed the search is limited to a window of
    ``search_radius`` pixels plus the target's distance to the known region around the target (capped at
    ``max_radius``; widened to the whole image only when the window holds no candidate). Ties go to the candidate
    nearest the target, so the result is a pure function of the input (no randomness, ``seed`` is unused).
    A 1024x768 photo with a hole of 10% of its area takes a few seconds on one CPU core.
    """

    name = "exemplar"
    generator = "exemplar-criminisi"

    def __init__(self, patch_size: int = 9, search_radius: int = 40, max_radius: int = 100, seed: int = 0) -> None:
        super().__init__()
        if patch_size < 3 or patch_size % 2 == 0:
            raise ValueError(f"patch_size must be an odd number >= 3, got {patch_size}")
        if search_radius < patch_size or max_radius < search_radius:
            raise ValueError("need patch_size <= search_radius <= max_radius")
        self.patch_size = int(patch_size)
        self.search_radius = int(search_radius)
        self.max_radius = int(max_radius)
        self.seed = int(seed)  # accepted for the benchmark maker's interface; the fill is deterministic

    def _fill(self, image: np.ndarray, mask: np.ndarray) -> np.ndarray:
        import cv2

        h, w = mask.shape
        p = self.patch_size
        half = p // 2
        if h < p or w < p:
            raise ValueError(f"exemplar: image {w}x{h} is smaller than one {p}x{p} patch")
        img = image.astype(np.float32)
        hole = mask.copy()
        known0 = (~mask).astype(np.uint8)
        # a candidate (top-left corner) is valid if its whole patch lies in the originally known region
        valid = cv2.erode(known0, np.ones((p, p), np.uint8), borderType=cv2.BORDER_CONSTANT, borderValue=0)
        valid = valid[half : h - half, half : w - half].astype(bool)  # indexed by top-left corner
        if not valid.any():
            raise ValueError(f"exemplar: no fully known {p}x{p} patch to copy from")
        dist = cv2.distanceTransform(mask.astype(np.uint8), cv2.DIST_L2, 3)
        conf = known0.astype(np.float32)
        gray = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0
        priority = np.full((h, w), -1.0, np.float32)
        ys, xs = np.nonzero(mask)
        self._update_priority(priority, hole, conf, gray, (int(ys.min()), int(ys.max()) + 1, int(xs.min()),
                                                           int(xs.max()) + 1))
        remaining = int(hole.sum())
        while remaining:
            idx = int(np.argmax(priority))
            cy, cx = divmod(idx, w)
            if priority[cy, cx] < 0:  # cannot happen while pixels remain; guards an endless loop
                raise RuntimeError("exemplar: fill front lost")
            cy = min(max(cy, half), h - 1 - half)
            cx = min(max(cx, half), w - 1 - half)
            ty, tx = cy - half, cx - half  # target top-left
            target_hole = hole[ty : ty + p, tx : tx + p]
            sy, sx = self._best_source(img, hole, valid, ty, tx, float(dist[cy, cx]))
            src = img[sy : sy + p, sx : sx + p]
            img[ty : ty + p, tx : tx + p][target_hole] = src[target_hole]
            gray[ty : ty + p, tx : tx + p][target_hole] = cv2.cvtColor(
                np.ascontiguousarray(src), cv2.COLOR_RGB2GRAY)[target_hole] / 255.0
            patch_conf = conf[ty : ty + p, tx : tx + p]
            c = float(patch_conf[~target_hole].sum()) / (p * p)
            patch_conf[target_hole] = c
            remaining -= int(target_hole.sum())
            target_hole[:] = False
            m = 2 * p
            self._update_priority(priority, hole, conf, gray, (ty - m, ty + p + m, tx - m, tx + p + m))
        return img.astype(np.uint8)

    def _best_source(self, img: np.ndarray, hole: np.ndarray, valid: np.ndarray, ty: int, tx: int,
                     dist: float) -> tuple[int, int]:
        """Top-left corner of the fully known patch with the least masked SSD to the target patch."""
        import cv2

        p = self.patch_size
        h, w = hole.shape
        template = img[ty : ty + p, tx : tx + p]
        weights = (~hole[ty : ty + p, tx : tx + p]).astype(np.float32)
        radius = min(self.search_radius + int(np.ceil(dist)), self.max_radius)
        while True:
            y0, y1 = max(0, ty - radius), min(h, ty + p + radius)
            x0, x1 = max(0, tx - radius), min(w, tx + p + radius)
            ok = valid[y0 : y1 - p + 1, x0 : x1 - p + 1]
            if ok.any():
                break
            if y0 == 0 and x0 == 0 and y1 == h and x1 == w:  # pragma: no cover - valid.any() was checked
                raise RuntimeError("exemplar: no source patch")
            radius *= 2
        ssd = cv2.matchTemplate(img[y0:y1, x0:x1], template, cv2.TM_SQDIFF, mask=weights)
        ssd = np.where(ok, ssd, np.inf)
        best = float(ssd.min())
        cand_y, cand_x = np.nonzero(ssd <= best + 1e-3 * max(best, 1.0))
        near = int(np.argmin((cand_y + y0 - ty) ** 2 + (cand_x + x0 - tx) ** 2))
        return int(cand_y[near] + y0), int(cand_x[near] + x0)

    def _update_priority(self, priority: np.ndarray, hole: np.ndarray, conf: np.ndarray, gray: np.ndarray,
                         box: tuple[int, int, int, int]) -> None:
        """Recompute ``confidence x data term`` of the fill-front pixels inside ``box`` (y0, y1, x0, x1)."""
        import cv2

        h, w = hole.shape
        p = self.patch_size
        pad = p // 2 + 2
        y0, y1, x0, x1 = max(0, box[0]), min(h, box[1]), max(0, box[2]), min(w, box[3])
        if y0 >= y1 or x0 >= x1:
            return
        # work on the box plus a margin so that the filters see the same neighbourhood as on the full image
        wy0, wy1, wx0, wx1 = max(0, y0 - pad), min(h, y1 + pad), max(0, x0 - pad), min(w, x1 + pad)
        sub_hole = hole[wy0:wy1, wx0:wx1]
        known = (~sub_hole).astype(np.float32)
        front = sub_hole & (cv2.dilate(known, np.ones((3, 3), np.uint8)) > 0)
        border = cv2.BORDER_CONSTANT
        c_sum = cv2.boxFilter(conf[wy0:wy1, wx0:wx1] * known, -1, (p, p), normalize=True, borderType=border)
        # isophotes: image gradients at known pixels away from the hole, averaged over each patch
        g = gray[wy0:wy1, wx0:wx1]
        gx = cv2.Sobel(g, cv2.CV_32F, 1, 0, ksize=3)
        gy = cv2.Sobel(g, cv2.CV_32F, 0, 1, ksize=3)
        inner = cv2.erode(known, np.ones((3, 3), np.uint8), borderType=cv2.BORDER_REPLICATE)
        cnt = cv2.boxFilter(inner, -1, (p, p), normalize=False, borderType=border) + 1e-6
        mgx = cv2.boxFilter(gx * inner, -1, (p, p), normalize=False, borderType=border) / cnt
        mgy = cv2.boxFilter(gy * inner, -1, (p, p), normalize=False, borderType=border) / cnt
        # normal of the fill front: gradient of the (smoothed) known mask
        sm = cv2.GaussianBlur(known, (5, 5), 1.0)
        nx = cv2.Sobel(sm, cv2.CV_32F, 1, 0, ksize=3)
        ny = cv2.Sobel(sm, cv2.CV_32F, 0, 1, ksize=3)
        norm = np.sqrt(nx * nx + ny * ny) + 1e-6
        data = np.abs(-mgy * nx / norm + mgx * ny / norm) + 1e-3
        pri = np.where(front, c_sum * data, -1.0).astype(np.float32)
        oy, ox = y0 - wy0, x0 - wx0
        priority[y0:y1, x0:x1] = pri[oy : oy + (y1 - y0), ox : ox + (x1 - x0)]


def _load_patchmatch() -> Any:
    """Import ``patchmatch`` and check that its native library loaded; raise a clear error otherwise."""
    try:
        import patchmatch
    except ImportError as exc:
        raise InpainterUnavailableError(f"patchmatch: the pypatchmatch package is not installed ({exc})") from exc
    if not getattr(patchmatch, "patchmatch_available", False):
        raise InpainterUnavailableError(
            "patchmatch: pypatchmatch is installed but its native library did not load; reinstall it with "
            "`pip install --force-reinstall --no-deps --no-cache-dir pypatchmatch` (a source build needs a C++ "
            "compiler, CMake and OpenCV)"
        )
    return patchmatch


#: Factories keyed by backend name; a factory takes keyword options and returns an :class:`Inpainter`.
INPAINTERS: Registry[Callable[..., Inpainter]] = Registry("inpainter", lister="hubdet.data.list_inpainters()")


def register_inpainter(name: str, factory: Callable[..., Inpainter]) -> Callable[..., Inpainter]:
    """Register ``factory`` (a class or function returning an :class:`Inpainter`) under ``name``."""
    return INPAINTERS.register(name, factory)


def _normalise(name: str) -> str:
    return name.strip().lower().replace("_", "-")


def get_inpainter_factory(name: str) -> Callable[..., Inpainter]:
    """The registered factory of backend ``name`` (spelling ``FSR_FAST`` = ``fsr-fast``); raises with suggestions."""
    return INPAINTERS.get(name if name in INPAINTERS else _normalise(name))


def accepts_seed(factory: Callable[..., Inpainter]) -> bool:
    """True if ``factory`` names a ``seed`` parameter (the benchmark maker then passes its seed)."""
    import inspect

    try:
        params = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return False
    return "seed" in params


def create_inpainter(name: str, **options: Any) -> Inpainter:
    """Build the backend ``name`` (``telea``, ``ns``, ``fsr-fast``, ``fsr-best``, ``patchmatch``, ...)."""
    factory = get_inpainter_factory(name)
    return build_inpainter(factory, name, **options)


def build_inpainter(factory: Callable[..., Inpainter], name: str, **options: Any) -> Inpainter:
    """Call ``factory(**options)`` and check that it made an :class:`Inpainter`."""
    try:
        inpainter = factory(**options)
    except TypeError as exc:
        raise ValueError(f"inpainter {name!r}: bad options {sorted(options)} ({exc})") from exc
    if not isinstance(inpainter, Inpainter):
        raise TypeError(f"inpainter factory {name!r} returned {type(inpainter).__name__}, not an Inpainter")
    return inpainter


def list_inpainters() -> list[str]:
    """Names of every registered backend."""
    return INPAINTERS.names()


def available_inpainters() -> dict[str, str]:
    """Each registered backend mapped to ``"ok"`` or the reason it cannot run here."""
    status: dict[str, str] = {}
    for name in INPAINTERS:
        try:
            create_inpainter(name)
            status[name] = "ok"
        except (InpainterUnavailableError, TypeError, ValueError) as exc:
            status[name] = str(exc)
    return status


# partials of classes, not lambdas: worker processes receive the factory itself (picklable by reference)
register_inpainter("telea", functools.partial(OpenCVInpainter, "telea"))
register_inpainter("ns", functools.partial(OpenCVInpainter, "ns"))
register_inpainter("fsr-fast", functools.partial(XPhotoInpainter, "fsr-fast"))
register_inpainter("fsr-best", functools.partial(XPhotoInpainter, "fsr-best"))
register_inpainter("patchmatch", PatchMatchInpainter)
register_inpainter("exemplar", ExemplarInpainter)
