"""The copy-move family: classical duplicated-block forensics with a small logistic head (no gradient steps).

Patch-based (exemplar) inpainting and copy-move forgeries fill a region with pixels copied from elsewhere in the
same image, so the region is dense in near-duplicates of other blocks. Following Fridrich, Soukal and Lukas (2003),
per image and at native resolution:

1. luma in [0, 255] -> overlapping ``block x block`` blocks every ``stride`` pixels (more stride when the image has
   more than ``max_blocks`` blocks, so memory stays bounded); blocks whose standard deviation is below
   ``min_block_std`` are flat and skipped (any two flat blocks look alike);
2. the ``n_coefficients`` lowest-frequency orthonormal DCT coefficients of each block (computed for all blocks at
   once as separable filters), divided by ``quantization`` and rounded: the descriptor;
3. blocks with equal descriptors (hash + sort; groups larger than ``max_group`` are repetitive texture and
   skipped) whose offset is at least ``min_shift`` pixels form pairs; a shift vector needs ``min_votes`` pairs
   (one copied fragment gives many pairs with its shift; chance matches do not agree on one);
4. the blocks of the kept pairs, spread over their pixels, give a duplicate map; its density among textured
   blocks (a ``density_window`` box) above ``density_threshold`` gives dense components. The box is the bounding
   box of the largest component. Which side of a copy to report: an exemplar fill is one dense region copied
   from scattered sources (the largest component); for a copy-move pair of equal components the one with the
   stronger seam (pixel differences across its border, relative to just inside it) is the pasted one. Sources
   next to the hole merge into its component (density window, closing), so the box and the region map keep only
   the component's blocks whose partner lies OUTSIDE it (a filled block's source is elsewhere; a source block's
   partner is the filled block inside), unless fewer than ``filled_fraction`` of its duplicated pixels remain
   (two adjacent copies of one region, or sources all on the rim).
5. :data:`FEATURES` of the maps -> standardisation -> logistic regression (``fit_head``; the weights are tensors
   in ``model.safetensors``). Until fitted, a prior head scores the largest component's area and density.

``pixel_values`` must keep the decoded pixel values: the registered variants use ``mean 0, std 1`` (values in
[0, 1]) and ``resize: none``. :meth:`CopyMoveDetector.train_crop` pads or crops training images to
``input_size`` at native resolution (never resizes), and ``predict`` runs each image at its own size.
"""

from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from hubdet._core.config import StrictConfig
from hubdet._core.errors import ConfigError
from hubdet.data.policy import DATA_POLICY, InputPolicy
from hubdet.models._registry import register_detector, register_family
from hubdet.models.base import Detector
from hubdet.models.config import DetectorConfig
from hubdet.models.output import DetectorOutput, Prediction
from hubdet.models.preprocessing import to_tensor

logger = logging.getLogger(__name__)

#: Image-level features, in the order the head sees them.
FEATURES = (
    "dup_fraction",  # duplicated textured blocks / textured blocks
    "component_fraction",  # area of the largest dense component / image area
    "component_density",  # mean duplicate density inside it
    "log_dup_blocks",  # log1p(duplicated blocks)
    "log_shifts",  # log1p(number of shift vectors kept)
    "max_shift_votes",  # log1p(votes of the strongest shift)
    "textured_fraction",  # textured blocks / blocks
)
#: Prior head used before ``fit_head``: logit = sum(w * raw feature) + b.
_PRIOR_WEIGHTS = {"component_fraction": 40.0, "component_density": 4.0, "dup_fraction": 4.0}
_PRIOR_BIAS = -3.0


@dataclass
class CopyMoveArgs(StrictConfig):
    """Config of the copy-move detector (``config.json`` ``args``); see the module docstring."""

    block: int = 4
    stride: int = 1
    max_blocks: int = 1_000_000
    min_block_std: float = 2.0
    n_coefficients: int = 10
    quantization: float = 1.0
    max_group: int = 8
    min_shift: int = 12
    min_votes: int = 3
    density_window: int = 32
    density_threshold: float = 0.2
    close: int = 16  # pixels: morphological closing that joins the fragments of one filled region
    min_component: int = 256  # pixels: smaller dense components are ignored
    seam_tie: float = 0.6  # a component at least this fraction of the largest competes on seam strength
    filled_fraction: float = 0.3  # keep only blocks whose partner is outside the component if >= this share; 0: off
    l2: float = 1.0  # inverse regularisation C of the logistic head
    max_abs_logit: float = 20.0

    def validate(self) -> None:
        if self.block < 2 or self.stride < 1:
            raise ConfigError("CopyMoveArgs: block must be >= 2 and stride >= 1")
        if not 1 <= self.n_coefficients <= self.block * self.block:
            raise ConfigError(f"CopyMoveArgs.n_coefficients must be in [1, {self.block * self.block}]")
        if self.quantization <= 0 or self.min_block_std < 0:
            raise ConfigError("CopyMoveArgs: quantization must be > 0 and min_block_std >= 0")
        if self.max_group < 2 or self.min_votes < 1 or self.min_shift < 1 or self.max_blocks < 1000:
            raise ConfigError("CopyMoveArgs: need max_group >= 2, min_votes >= 1, min_shift >= 1, max_blocks >= 1000")
        if not 0 < self.density_threshold <= 1 or self.density_window < 1:
            raise ConfigError("CopyMoveArgs: density_threshold must be in (0, 1] and density_window >= 1")
        if not 0 <= self.filled_fraction <= 1:
            raise ConfigError("CopyMoveArgs.filled_fraction must be in [0, 1]")
        if not 0 < self.seam_tie <= 1 or self.l2 <= 0 or self.max_abs_logit <= 0:
            raise ConfigError("CopyMoveArgs: need 0 < seam_tie <= 1, l2 > 0, max_abs_logit > 0")


@dataclass
class Analysis:
    """What one image's duplicate analysis found: features, box in pixels (or None), its score in [0, 1] and the
    ``[H, W]`` boolean region map of the reported (filled) duplicated pixels (None when no box)."""

    features: np.ndarray
    box: list[float] | None
    score: float
    extra: dict[str, Any]
    region: np.ndarray | None = None
    density_grid: np.ndarray | None = None  # float32 duplicate density (copied-to side) in [0, 1], one per block
    stride: int = 1  # pixels between blocks of the grid
    shape: tuple[int, int] = (0, 0)  # the image's (h, w)

    @property
    def density(self) -> np.ndarray | None:
        """``[H, W]`` float32 duplicate density (copied-to side) in [0, 1], spread from the block grid on each access
        (the grid is what is kept: a 16 MP image's pixel map is 64 MB)."""
        if self.density_grid is None:
            return None
        return _to_pixels(self.density_grid, self.stride, *self.shape)


def _to_pixels(grid: np.ndarray, stride: int, h: int, w: int) -> np.ndarray:
    """A block-grid map (one cell every ``stride`` pixels) spread over an ``[h, w]`` pixel map (zero past the grid)."""
    out = np.zeros((h, w), grid.dtype)
    gw = min(w, grid.shape[1] * stride)
    for i, row in enumerate(grid[: -(-h // stride)]):  # row by row: no second full-size array
        out[i * stride : (i + 1) * stride, :gw] = np.repeat(row, stride)[:gw]
    return out


def _dct_basis(n: int) -> np.ndarray:
    """Orthonormal DCT-II basis ``[n, n]`` (row u = frequency u)."""
    k = np.arange(n)
    basis = np.cos(np.pi * (2 * k[None, :] + 1) * k[:, None] / (2 * n)) * math.sqrt(2.0 / n)
    basis[0] /= math.sqrt(2.0)
    return basis.astype(np.float32)


def _zigzag(n: int, count: int) -> list[tuple[int, int]]:
    """The first ``count`` (u, v) frequencies in JPEG zig-zag order."""
    order = sorted(((u, v) for u in range(n) for v in range(n)),
                   key=lambda uv: (uv[0] + uv[1], uv[1] if (uv[0] + uv[1]) % 2 else uv[0]))
    return order[:count]


def _hash_rows(q: np.ndarray) -> np.ndarray:
    """64-bit hash of each integer row (wrapping multiply-add; collisions are negligible at these sizes)."""
    h = np.zeros(q.shape[0], dtype=np.uint64)
    mult = np.uint64(0x9E3779B97F4A7C15)
    with np.errstate(over="ignore"):
        for j in range(q.shape[1]):
            h = (h ^ q[:, j].astype(np.int64).astype(np.uint64)) * mult
            h ^= h >> np.uint64(29)
    return h


class _Analyzer:
    """Duplicate-block analysis of one luma image (the steps of the module docstring)."""

    def __init__(self, args: CopyMoveArgs) -> None:
        self.args = args
        basis = _dct_basis(args.block)
        self.kernels = [(basis[u], basis[v]) for u, v in _zigzag(args.block, args.n_coefficients)]

    def __call__(self, luma: np.ndarray) -> Analysis:
        import cv2

        a = self.args
        h, w = luma.shape
        b = a.block
        nfeat = len(FEATURES)
        if h < 2 * b or w < 2 * b:
            return Analysis(np.zeros(nfeat, np.float32), None, 0.0, {"blocks": 0})
        stride = a.stride
        while ((h - b) // stride + 1) * ((w - b) // stride + 1) > a.max_blocks:
            stride += 1
        gy = (h - b) // stride + 1
        gx = (w - b) // stride + 1
        img = np.ascontiguousarray(luma, dtype=np.float32)

        def block_map(kx: np.ndarray, ky: np.ndarray) -> np.ndarray:
            # correlation anchored at the block's top-left corner, sampled every ``stride`` pixels
            full = cv2.sepFilter2D(img, cv2.CV_32F, kx, ky, anchor=(0, 0), borderType=cv2.BORDER_CONSTANT)
            return full[: (gy - 1) * stride + 1 : stride, : (gx - 1) * stride + 1 : stride].copy()  # not a view of full

        ones = np.ones(b, np.float32) / b
        mean = block_map(ones, ones)
        sq = cv2.sepFilter2D(img * img, cv2.CV_32F, ones, ones, anchor=(0, 0), borderType=cv2.BORDER_CONSTANT)
        sq = sq[: (gy - 1) * stride + 1 : stride, : (gx - 1) * stride + 1 : stride].copy()
        std = np.sqrt(np.maximum(sq - mean * mean, 0.0))
        textured = std >= a.min_block_std
        n_blocks = gy * gx
        n_textured = int(textured.sum())
        ys, xs = np.nonzero(textured)
        dup = np.zeros((gy, gx), bool)
        shifts_kept = 0
        max_votes = 0
        pair_a = pair_b = np.zeros(0, np.int64)
        if len(ys) >= 2:
            pair_a, pair_b, shifts_kept, max_votes = self._pairs(block_map, ys, xs, stride, w)
            dup[ys[pair_a], xs[pair_a]] = True
            dup[ys[pair_b], xs[pair_b]] = True
        n_dup = int(dup.sum())
        cover, density, dense = self._maps(dup, textured, stride)
        # which side of each pair was copied TO: the block deeper inside the dense region (an exemplar fill is the
        # core, its scattered sources the rim); equal depths (two copies of one region) keep both sides
        if len(pair_a):
            depth = cv2.distanceTransform(dense, cv2.DIST_L2, 3)
            c = max(0, round(b / stride) // 2)
            da = depth[np.minimum(ys[pair_a] + c, gy - 1), np.minimum(xs[pair_a] + c, gx - 1)]
            db = depth[np.minimum(ys[pair_b] + c, gy - 1), np.minimum(xs[pair_b] + c, gx - 1)]
            tol = max(1.0, 2.0 / stride)
            target = np.zeros((gy, gx), bool)
            sel_a, sel_b = da >= db - tol, db >= da - tol
            target[ys[pair_a[sel_a]], xs[pair_a[sel_a]]] = True
            target[ys[pair_b[sel_b]], xs[pair_b[sel_b]]] = True
            cover, density, dense = self._maps(target, textured, stride)
        box, comp_frac, comp_density, extra, region = self._component(dense, density, cover, img, stride, w, h,
                                                                      ys[pair_a], xs[pair_a], ys[pair_b], xs[pair_b])
        feats = np.array([
            n_dup / max(n_textured, 1), comp_frac, comp_density, math.log1p(n_dup), math.log1p(shifts_kept),
            math.log1p(max_votes), n_textured / max(n_blocks, 1),
        ], dtype=np.float32)
        extra.update(blocks=n_blocks, textured=n_textured, duplicated=n_dup, shifts=shifts_kept, stride=stride)
        return Analysis(feats, box, float(comp_density if box is not None else 0.0), extra, region,
                        np.clip(density.astype(np.float32), 0.0, 1.0), stride, (h, w))

    def _pairs(self, block_map: Any, ys: np.ndarray, xs: np.ndarray, stride: int,
               w: int) -> tuple[np.ndarray, np.ndarray, int, int]:
        """Indices (into ``ys``/``xs``) of the block pairs with equal descriptors, far apart, whose shift has
        enough votes; the number of such shifts and the votes of the strongest."""
        a = self.args
        coefs = np.stack([block_map(kx, ky)[ys, xs] for ky, kx in self.kernels], axis=1)
        keys = _hash_rows(np.rint(coefs / a.quantization).astype(np.int64))
        order = np.argsort(keys, kind="stable")
        keys = keys[order]
        starts = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])
        sizes = np.diff(np.r_[starts, len(keys)])
        small = np.repeat(sizes, sizes) <= a.max_group  # larger groups: repetitive texture, skipped
        pi, pj = [], []
        for k in range(1, a.max_group):
            idx = np.flatnonzero((keys[k:] == keys[:-k]) & small[k:])
            pi.append(order[idx])
            pj.append(order[idx + k])
        i_idx, j_idx = np.concatenate(pi), np.concatenate(pj)
        dy = (ys[j_idx] - ys[i_idx]) * stride
        dx = (xs[j_idx] - xs[i_idx]) * stride
        flip = (dy < 0) | ((dy == 0) & (dx < 0))
        dy, dx = np.where(flip, -dy, dy), np.where(flip, -dx, dx)
        far = dy * dy + dx * dx >= a.min_shift * a.min_shift
        i_idx, j_idx, dy, dx = i_idx[far], j_idx[far], dy[far], dx[far]
        if not len(i_idx):
            return i_idx, j_idx, 0, 0
        code = dy.astype(np.int64) * (2 * w + 1) + (dx + w)
        _, inv, counts = np.unique(code, return_inverse=True, return_counts=True)
        keep = counts[inv] >= a.min_votes
        return i_idx[keep], j_idx[keep], int((counts >= a.min_votes).sum()), int(counts.max())

    def _maps(self, dup: np.ndarray, textured: np.ndarray, stride: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Block flags -> pixel coverage, duplicate density among textured pixels, closed dense mask (grid)."""
        import cv2

        a = self.args
        cells = max(1, round(a.block / stride))
        kernel = np.ones((cells, cells), np.uint8)
        anchor = (cells - 1, cells - 1)
        cover = cv2.dilate(dup.astype(np.uint8), kernel, anchor=anchor, borderType=cv2.BORDER_CONSTANT, borderValue=0)
        tex = cv2.dilate(textured.astype(np.uint8), kernel, anchor=anchor, borderType=cv2.BORDER_CONSTANT,
                         borderValue=0)
        win = max(1, round(a.density_window / stride))
        num = cv2.boxFilter(cover.astype(np.float32), -1, (win, win), normalize=False)
        den = cv2.boxFilter(tex.astype(np.float32), -1, (win, win), normalize=False)
        density = num / np.maximum(den, 1.0)
        dense = ((density >= a.density_threshold) & (cover > 0)).astype(np.uint8)
        if a.close > 1:
            k = max(1, round(a.close / stride))
            dense = cv2.morphologyEx(dense, cv2.MORPH_CLOSE, np.ones((k, k), np.uint8))
        return cover, density, dense

    def _component(self, dense: np.ndarray, density: np.ndarray, cover: np.ndarray, img: np.ndarray, stride: int,
                   w: int, h: int,
                   ay: np.ndarray, ax: np.ndarray, by: np.ndarray,
                   bx: np.ndarray) -> tuple[list[float] | None, float, float, dict[str, Any], np.ndarray | None]:
        """Box (pixels), area fraction, mean density and pixel region map of the reported dense component; the
        pairs' block positions (grid cells, ``a``/``b`` sides) separate its filled blocks from adjacent sources."""
        import cv2

        n, labels, stats, _ = cv2.connectedComponentsWithStats(dense, connectivity=8)
        min_cells = max(1, round(self.args.min_component / (stride * stride)))
        comps = [i for i in range(1, n) if stats[i, cv2.CC_STAT_AREA] >= min_cells]
        if not comps:
            return None, 0.0, 0.0, {"components": 0}, None
        # the component holding the most duplicated pixels (area alone favours loose clusters of chance matches)
        mass = np.bincount(labels.ravel(), weights=cover.ravel().astype(np.float64), minlength=n)
        comps.sort(key=lambda i: -mass[i])
        rivals = [i for i in comps if mass[i] >= self.args.seam_tie * mass[comps[0]]]
        best = comps[0]
        if len(rivals) > 1:
            seams = [self._seam(labels == i, img, stride) for i in rivals]
            best = rivals[int(np.argmax(seams))]
        comp = labels == best
        # box of the duplicated pixels inside the component (the closing and the density window spread it)
        sel = comp & (cover > 0)
        if self.args.filled_fraction > 0 and len(ay):
            # filled side: blocks whose partner lies outside the component (sources merged into it pair inside)
            in_a, in_b = comp[ay, ax], comp[by, bx]
            filled = np.zeros(comp.shape, np.uint8)
            filled[ay[in_a & ~in_b], ax[in_a & ~in_b]] = 1
            filled[by[in_b & ~in_a], bx[in_b & ~in_a]] = 1
            cells = max(1, round(self.args.block / stride))
            filled = cv2.dilate(filled, np.ones((cells, cells), np.uint8), anchor=(cells - 1, cells - 1))
            kept = comp & (filled > 0)
            if kept.sum() >= self.args.filled_fraction * sel.sum():
                sel = kept
        rows = np.flatnonzero(sel.any(axis=1))
        cols = np.flatnonzero(sel.any(axis=0))
        box = [float(cols[0] * stride), float(rows[0] * stride), float(min(w, (cols[-1] + 1) * stride)),
               float(min(h, (rows[-1] + 1) * stride))]
        area = float(stats[best, cv2.CC_STAT_AREA]) * stride * stride / (w * h)
        region = _to_pixels(sel, stride, h, w)
        return box, min(area, 1.0), float(density[comp].mean()), {"components": len(comps)}, region

    @staticmethod
    def _seam(comp: np.ndarray, img: np.ndarray, stride: int) -> float:
        """Mean luma step across the component's border relative to steps one band further inside: a pasted
        region has an unnatural seam, its source does not."""
        import cv2

        mask = _to_pixels(comp.astype(np.uint8), stride, *img.shape)
        gxm = np.abs(cv2.Sobel(img, cv2.CV_32F, 1, 0, ksize=3))
        gym = np.abs(cv2.Sobel(img, cv2.CV_32F, 0, 1, ksize=3))
        grad = gxm + gym
        k = np.ones((3, 3), np.uint8)
        edge = cv2.dilate(mask, k) & (1 - cv2.erode(mask, k))
        inner = cv2.erode(mask, k, iterations=2) & (1 - cv2.erode(mask, k, iterations=5))
        e = float(grad[edge > 0].mean()) if edge.any() else 0.0
        i = float(grad[inner > 0].mean()) if inner.any() else 1.0
        return e / (i + 1e-3)


@register_family
class CopyMoveDetector(Detector):
    """Duplicated-block forensics at native resolution + a logistic head fitted with :meth:`fit_head`."""

    family = "copymove"
    args_class = CopyMoveArgs
    supports_boxes = True
    trains_with_gradients = False
    args: CopyMoveArgs

    def __init__(self, config: DetectorConfig, *, pretrained: bool = False) -> None:
        super().__init__(config, pretrained=pretrained)
        pre = config.preprocess
        if pre.resize != "none":
            raise ConfigError("copymove needs preprocess.resize 'none': it compares exact pixel values")
        nf = len(FEATURES)
        self.register_buffer("feature_mean", torch.zeros(nf))
        self.register_buffer("feature_std", torch.ones(nf))
        weight = torch.tensor([_PRIOR_WEIGHTS.get(name, 0.0) for name in FEATURES])
        self.register_buffer("head_weight", weight)
        self.register_buffer("head_bias", torch.tensor(_PRIOR_BIAS))
        self.register_buffer("head_fitted", torch.zeros((), dtype=torch.uint8))
        self._analyzer = _Analyzer(self.args)
        # pixel values -> [0, 255] luma: undo the configured normalisation
        mean = torch.tensor(pre.mean, dtype=torch.float32).view(3, 1, 1)
        std = torch.tensor(pre.std, dtype=torch.float32).view(3, 1, 1)
        self._unnorm = (mean, std)

    @property
    def is_fitted(self) -> bool:
        return bool(self.head_fitted)

    def input_policy(self) -> InputPolicy:
        """Blocks compared at native resolution: each side must hold two density windows (a copied region and its
        source), and several blocks with the minimum shift between them."""
        a = self.args
        side = max(DATA_POLICY.min_width, 2 * a.density_window, 4 * a.block, 2 * a.min_shift)
        return InputPolicy(side, side, DATA_POLICY.max_aspect,
                           f"it compares {a.block}x{a.block} blocks at native resolution over {a.density_window}-pixel "
                           "windows")

    # ------------------------------------------------------------------ analysis
    def _luma(self, pixels: torch.Tensor) -> np.ndarray:
        mean, std = self._unnorm
        rgb = (pixels.detach().float().cpu() * std + mean) * 255.0
        luma = 0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]
        return luma.numpy()

    def image_luma(self, image: Image.Image, *, band: int = 256) -> np.ndarray:
        """The luma :meth:`analyze` computes from ``to_tensor(image)``, band of rows by band of rows: the same
        float32 arithmetic (element by element, so bit-identical) without a full-size float copy of the RGB image
        (at 16 MP that copy and its temporaries were most of a prediction's memory)."""
        rgb = image.convert("RGB") if image.mode != "RGB" else image
        out = np.empty((rgb.height, rgb.width), np.float32)
        for top in range(0, rgb.height, band):
            rows = rgb.crop((0, top, rgb.width, min(rgb.height, top + band)))
            out[top:top + rows.height] = self._luma(to_tensor(rows, self.config.preprocess))
        return out

    def analyze(self, pixel_values: torch.Tensor) -> list[Analysis]:
        """Duplicate analysis of every image of ``[B, 3, H, W]`` pixel values."""
        if pixel_values.ndim != 4 or pixel_values.shape[1] != 3:
            raise ConfigError(f"pixel_values must be [B, 3, H, W], got {tuple(pixel_values.shape)}")
        return [self._analyzer(self._luma(px)) for px in pixel_values]

    #: What :meth:`explain_map` shows (the app's heatmap label).
    explanation_method = "duplicate-block density (copy-move analysis, native resolution)"

    def explain_map(self, image: Any) -> np.ndarray:
        """``[H, W]`` map in [0, 1] over the image at its own size: the density of duplicated blocks on the copied-to
        side, i.e. what the verdict and the box rest on (no gradients or occlusion needed)."""
        from hubdet.data.imageio import load_image
        from hubdet.models.explain import recall

        img = image if isinstance(image, Image.Image) else load_image(image)
        analysis = recall(self, img, "analysis")  # the analysis predict made of this very image
        if analysis is None:
            analysis = self._analyzer(self.image_luma(img))
        density = analysis.density
        return np.zeros((img.height, img.width), np.float32) if density is None else density

    def extract_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """``[B, len(FEATURES)]`` image features (float32)."""
        return torch.from_numpy(np.stack([a.features for a in self.analyze(pixel_values)]))

    def head_logits(self, features: Any) -> torch.Tensor:
        """Fake logits ``[N]`` of raw features (standardised with the stored statistics)."""
        feats = torch.as_tensor(np.asarray(features), dtype=torch.float32).to(self.head_weight.device)
        if feats.ndim != 2 or feats.shape[1] != len(FEATURES):
            raise ConfigError(f"features must be [N, {len(FEATURES)}], got {tuple(feats.shape)}")
        z = (feats - self.feature_mean) / self.feature_std
        clip = self.args.max_abs_logit
        return (z @ self.head_weight + self.head_bias).clamp(-clip, clip)

    def fit_head(self, features: Any, labels: Any) -> dict[str, float]:
        """Fit standardisation + L2 logistic regression on ``[N, F]`` features and ``{0, 1}`` labels."""
        from sklearn.linear_model import LogisticRegression

        x = np.asarray(features, dtype=np.float64)
        y = np.asarray(labels).astype(np.int64).reshape(-1)
        if x.ndim != 2 or x.shape[1] != len(FEATURES):
            raise ConfigError(f"features must be [N, {len(FEATURES)}], got {x.shape}")
        if y.shape[0] != x.shape[0]:
            raise ConfigError(f"fit_head: {x.shape[0]} feature rows but {y.shape[0]} labels")
        if set(np.unique(y).tolist()) != {0, 1}:
            raise ConfigError(f"fit_head needs both classes 0 and 1 in the labels, got {sorted(set(y.tolist()))}")
        if not np.isfinite(x).all():
            raise ConfigError("features contain NaN or infinite values")
        mean = x.mean(0)
        std = np.maximum(x.std(0), 1e-6)
        clf = LogisticRegression(C=self.args.l2, max_iter=5000)
        clf.fit((x - mean) / std, y)
        with torch.no_grad():
            self.feature_mean.copy_(torch.from_numpy(mean).float())
            self.feature_std.copy_(torch.from_numpy(std).float())
            self.head_weight.copy_(torch.from_numpy(clf.coef_[0]).float())
            self.head_bias.fill_(float(clf.intercept_[0]))
            self.head_fitted.fill_(1)
        logits = self.head_logits(x).cpu()
        target = torch.as_tensor(y, dtype=torch.float32)
        metrics = {
            "n_samples": float(len(y)),
            "train_accuracy": float(((logits > 0).float() == target).float().mean()),
            "train_bce": float(F.binary_cross_entropy_with_logits(logits, target)),
        }
        logger.info("copymove head fitted: %s; weights %s", metrics,
                    dict(zip(FEATURES, np.round(clf.coef_[0], 3).tolist(), strict=True)))
        return metrics

    # ------------------------------------------------------------------ forward contract
    def forward(
        self, pixel_values: torch.Tensor, labels: torch.Tensor | None = None, boxes: torch.Tensor | None = None
    ) -> DetectorOutput:
        """Logits of the head on the duplicate features; boxes normalised to the input (zeros when none found)."""
        results = self.analyze(pixel_values)
        h, w = pixel_values.shape[-2:]
        logits = self.head_logits(np.stack([r.features for r in results])).to(pixel_values.device)
        scale = torch.tensor([w, h, w, h], dtype=torch.float32)
        out_boxes = torch.stack([torch.tensor(r.box) / scale if r.box is not None else torch.zeros(4)
                                 for r in results]).to(pixel_values.device)
        scores = torch.tensor([r.score for r in results], dtype=torch.float32, device=pixel_values.device)
        out = DetectorOutput(logits=logits, probs=torch.sigmoid(logits), boxes=out_boxes, box_scores=scores)
        if labels is not None:
            target = labels.to(device=logits.device, dtype=logits.dtype).view(-1)
            if target.numel() != logits.numel():
                raise ConfigError(f"labels has {target.numel()} items for a batch of {logits.numel()}")
            out.loss = F.binary_cross_entropy_with_logits(logits, target)
            out.losses = {"classification": out.loss.detach()}
        return out

    # ------------------------------------------------------------------ native resolution
    def train_crop(
        self, image: Any, *, label: int, box: Any = None, rng: Any = None
    ) -> tuple[Any, list[float] | None, int]:
        """Pad (black, flat: ignored) or crop the image to ``input_size`` at native resolution, keeping the box in
        view when it fits; never resizes, since resampling destroys exact copies."""
        from PIL import Image

        th, tw = (int(v) for v in self.config.preprocess.input_size)
        img = image.convert("RGB") if image.mode != "RGB" else image
        region = None
        if box is not None and label == 1:
            vals = [float(v) for v in torch.as_tensor(box, dtype=torch.float64).flatten()]
            if len(vals) % 4:
                raise ValueError(f"train_crop: box must be [xmin, ymin, xmax, ymax] or a list of them, got {box!r}")
            region = [min(vals[0::4]), min(vals[1::4]), max(vals[2::4]), max(vals[3::4])]

        def origin(size: int, target: int, lo: float | None, hi: float | None) -> int:
            if size <= target:
                return 0
            if lo is not None and hi is not None and hi - lo <= target:
                centre = (lo + hi) / 2 - target / 2
                return int(min(max(round(centre), 0), size - target))
            return (size - target) // 2

        x0 = origin(img.width, tw, *(region[0::2] if region else (None, None)))
        y0 = origin(img.height, th, *(region[1::2] if region else (None, None)))
        crop = img.crop((x0, y0, x0 + min(tw, img.width), y0 + min(th, img.height)))
        if crop.size != (tw, th):
            canvas = Image.new("RGB", (tw, th))
            canvas.paste(crop, (0, 0))
            crop = canvas
        mapped = None
        if region is not None:
            bx = [min(max(region[0] - x0, 0), tw) / tw, min(max(region[1] - y0, 0), th) / th,
                  min(max(region[2] - x0, 0), tw) / tw, min(max(region[3] - y0, 0), th) / th]
            mapped = bx if bx[2] > bx[0] and bx[3] > bx[1] else None
        return crop, mapped, int(label)

    def _predict_images(self, images: Sequence[Any]) -> list[Prediction]:
        """Each image at its own size: exact pixel values, boxes straight in original pixels."""
        from hubdet.models.explain import remember

        logits, boxes, scores, extras, has_box = [], [], [], [], []
        for img in images:
            result = self._analyzer(self.image_luma(img))
            remember(self, img, "analysis", dataclasses.replace(result, region=None))  # its grid, not pixel maps
            logits.append(self.head_logits(result.features[None]).cpu()[0])
            boxes.append(result.box if result.box is not None else [0.0, 0.0, 0.0, 0.0])
            has_box.append(result.box is not None)
            scores.append(result.score)
            extras.append(result.extra)
        preds = self._to_predictions(images, torch.stack(logits), torch.tensor(boxes), torch.tensor(scores),
                                     normalised=False)
        for pred, found, extra in zip(preds, has_box, extras, strict=True):
            if not found:
                pred.box, pred.box_score = None, None
            pred.extra.update(extra)
        return preds


# ---------------------------------------------------------------------------------------------------- variants
def _register() -> None:
    exact = {"resize": "none", "mean": (0.0, 0.0, 0.0), "std": (1.0, 1.0, 1.0)}
    register_detector(
        "copymove_tiny.test", family="copymove",
        args={"block": 4, "stride": 2, "min_shift": 8, "min_votes": 2, "density_window": 8, "close": 4,
              "min_component": 16},
        preprocess={**exact, "input_size": (32, 32)},
        description="Tiny copy-move detector for tests (4x4 blocks, 32x32 training crops).",
    )
    register_detector(
        "copymove_dct.b4", family="copymove",
        # chosen on the validation splits (inpaint + copymove_extra): quantization 1.0 gives the same AUC, worse IoU;
        # density_threshold 0.1 / close 24 (vs 0.2 / 16): val ROC-AUC 0.698 -> 0.708, mean IoU 0.083 -> 0.105
        args={"quantization": 2.0, "density_threshold": 0.1, "close": 24},
        preprocess={**exact, "input_size": (768, 1024)},
        description="Duplicated 4x4 blocks (quantised low-frequency DCT, Fridrich et al. 2003) at native resolution "
                    "with shift voting, a duplicate-density map and a logistic head: finds patch-based (exemplar) "
                    "inpainting and copy-move regions.",
    )


_register()
