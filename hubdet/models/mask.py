"""The mask family: a per-pixel "inpainted" probability map at native resolution, and everything derived from it.

A timm CNN backbone that sees full-resolution pixels (EfficientNet-Lite / MobileNetV2, ImageNet weights offline)
gives features at strides 2..16 (``args.levels``); an FPN-style decoder (lateral 1x1 convolutions, top-down
upsampling and addition, a 3x3 convolution per level but the finest) brings them back to stride 2 and a 1x1 head
gives one logit per pixel, upsampled to the input. Training (:meth:`MaskDetector.training_sample`) cuts
``args.train_crop`` crops at native resolution from the images and their masks (``hubdet synth`` writes them), mostly
around an inpainted region.

Prediction (:meth:`MaskDetector.predict_maps`) tiles each image at its own resolution: tiles of
``preprocess.input_size`` with ``args.tile_overlap`` pixels of overlap, edge tiles flush with the border, blended
with a weight that falls off towards each tile's edge (no seams); images smaller than a tile are padded by
reflection. More tiles than ``args.max_tiles``: the image is analysed at the largest scale that fits the budget and
the prediction says so (``extra["note"]``), or, with ``on_too_large="error"``, :class:`ImageTooLargeError` names the
image and the budget.

Everything a user sees comes from the one map, so the three never disagree:

- pixel logits are shifted by ``args.map_bias`` (chosen on validation so that 0.5 is the best pixel threshold);
- the **map** (``Prediction.mask``): ``sigmoid`` of those logits at the original resolution;
- the **image logit**: the mean of the top ``args.topk_fraction`` of pixel logits (a high quantile of the map), then
  the usual temperature calibration. Since a mean is at most a maximum, a "fake" verdict (logit >= 0) implies pixels
  at 0.5 or more;
- the **regions** (``Prediction.regions``): connected components of ``map >= 0.5`` (8-connectivity, after a small
  closing), those smaller than ``args.min_region`` of the image dropped unless none is left and the verdict is fake;
  each has its ``box`` (original pixels, xyxy), ``score`` (the mean map value inside it) and ``area_fraction``;
  ``Prediction.box`` is the best-scoring region's.

The copy-move detector's duplicate-density map (:meth:`hubdet.models.copymove.CopyMoveDetector.explain_map`) is
evidence of the same kind; this family does not use it (a variant could add it as a fourth input channel).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from hubdet._core.config import StrictConfig
from hubdet._core.errors import ConfigError, HubdetError
from hubdet.data.policy import InputPolicy
from hubdet.models._registry import register_detector, register_family
from hubdet.models.base import Detector
from hubdet.models.config import DetectorConfig
from hubdet.models.output import DetectorOutput, Prediction
from hubdet.models.preprocessing import tiled_input_policy, tiling_refusal, to_tensor

logger = logging.getLogger(__name__)


class ImageTooLargeError(HubdetError, ValueError):
    """An image needs more tiles than the detector's budget (``max_tiles``) and ``on_too_large`` is ``error``."""


@dataclass
class MaskArgs(StrictConfig):
    """Config of the mask detector (``config.json`` ``args``); see the module docstring.

    Network: ``backbone`` (timm name), ``levels`` (feature levels used: 4 = strides 2..16), ``decoder_channels``.
    Loss: ``pixel BCE (pos_weight) + dice_weight * soft Dice + image_weight * BCE(image logit)``.
    Training crops: ``train_crop`` pixels at native resolution, ``positive_fraction`` of the fakes' crops centred
    near an inpainted pixel, ``rescale_p`` of the images first downscaled by a factor in ``rescale_range``.
    Prediction: ``tile_overlap`` (pixels), ``max_tiles``, ``on_too_large``, ``tile_batch_size``; ``map_bias`` (added
    to pixel logits), ``topk_fraction`` (image logit), ``min_region`` (share of the image), ``close`` (pixels).
    Late fusion (off with ``copymove_weight`` 0): each pixel logit becomes
    ``max(logit, copymove_weight * (density - copymove_threshold))`` where ``density`` is the copy-move analysis's
    duplicate density (:class:`hubdet.models.copymove.CopyMoveArgs` ``copymove_args``) at native resolution.
    """

    backbone: str = "tf_efficientnet_lite0"
    levels: int = 4
    decoder_channels: int = 32
    freeze_first_n_blocks: int = 0
    pos_weight: float = 2.0
    dice_weight: float = 1.0
    image_weight: float = 0.5
    train_crop: int = 256
    positive_fraction: float = 0.7
    rescale_p: float = 0.0
    rescale_range: tuple[float, float] = (0.5, 1.0)
    tile_overlap: int = 64
    max_tiles: int = 64
    on_too_large: str = "downscale"
    tile_batch_size: int = 1  # outputs do not depend on it; on CPU 1 is as fast as 4 and holds ~60 MB, not ~250 MB
    map_bias: float = 0.0
    topk_fraction: float = 0.01
    min_region: float = 0.001
    close: int = 5
    copymove_weight: float = 0.0  # late fusion with the copy-move duplicate density (0: off)
    copymove_threshold: float = 0.5
    copymove_args: dict[str, Any] = field(default_factory=dict)  # CopyMoveArgs of that analysis

    def validate(self) -> None:
        if not 2 <= self.levels <= 5:
            raise ConfigError(f"MaskArgs.levels must be in [2, 5], got {self.levels}")
        if self.decoder_channels < 4 or self.train_crop < 32 or self.train_crop % 32:
            raise ConfigError("MaskArgs: decoder_channels >= 4 and train_crop a multiple of 32 (>= 32)")
        if self.max_tiles < 1 or self.tile_batch_size < 1 or self.tile_overlap < 0:
            raise ConfigError("MaskArgs: max_tiles and tile_batch_size >= 1, tile_overlap >= 0")
        if self.on_too_large not in ("downscale", "error"):
            raise ConfigError(f"MaskArgs.on_too_large: {self.on_too_large!r} is not 'downscale' or 'error'")
        if not 0 < self.topk_fraction <= 1 or not 0 <= self.min_region < 1:
            raise ConfigError("MaskArgs: topk_fraction in (0, 1], min_region in [0, 1)")
        for name in ("positive_fraction", "rescale_p"):
            if not 0 <= getattr(self, name) <= 1:
                raise ConfigError(f"MaskArgs.{name} must be in [0, 1]")
        lo, hi = self.rescale_range
        if not 0 < lo <= hi <= 1:
            raise ConfigError("MaskArgs.rescale_range must satisfy 0 < lo <= hi <= 1")
        if min(self.pos_weight, self.dice_weight, self.image_weight) < 0 or self.close < 0:
            raise ConfigError("MaskArgs: loss weights and close must be >= 0")
        if self.copymove_weight < 0 or not 0 <= self.copymove_threshold <= 1:
            raise ConfigError("MaskArgs: copymove_weight >= 0 and copymove_threshold in [0, 1]")
        if self.copymove_args:
            from hubdet.models.copymove import CopyMoveArgs

            CopyMoveArgs.from_dict(self.copymove_args, where="MaskArgs.copymove_args")


# ---------------------------------------------------------------------------------------------------- maps -> regions
def image_logit(pixel_logits: torch.Tensor, fraction: float) -> torch.Tensor:
    """``[B, H, W]`` pixel logits -> ``[B]`` image logits: the mean of each map's top ``fraction`` of pixels."""
    flat = pixel_logits.flatten(1)
    k = max(1, int(math.ceil(fraction * flat.shape[1])))
    if flat.requires_grad or flat.shape[1] <= 2**20:
        return flat.topk(k, dim=1).values.mean(1)
    # a large map at inference: torch's CPU topk takes ~15 bytes per pixel (256 MB for 16 MP); numpy's partition
    # copies the row once. The same k values, sorted as topk returns them, so the same mean.
    rows = []
    for row in flat.detach().cpu().numpy():
        top = np.partition(row, row.size - k)[row.size - k:]
        rows.append(torch.from_numpy(np.sort(top)[::-1].copy()))
    return torch.stack(rows).to(flat.device).mean(1)


def map_regions(prob: np.ndarray, *, threshold: float = 0.5, min_area: float = 0.001, close: int = 0,
                keep_one: bool = False) -> list[dict[str, Any]]:
    """Connected regions of ``prob >= threshold`` (8-connectivity, after a ``close``-pixel closing): ``box`` (xyxy,
    pixels, max exclusive), ``score`` (mean probability inside), ``area_fraction``; best score first. Regions
    smaller than ``min_area`` of the image are dropped, except the best one when ``keep_one`` and none is left."""
    import cv2

    h, w = prob.shape
    binary = (prob >= threshold).astype(np.uint8)
    if not binary.any():
        return []
    if close > 1:
        binary = cv2.morphologyEx(binary, cv2.MORPH_CLOSE, np.ones((close, close), np.uint8))
    n, labels, stats, _ = cv2.connectedComponentsWithStats(binary, connectivity=8)
    if n <= 1:
        return []
    flagged = labels > 0  # only labelled pixels (the same values in the same order as over the whole image)
    sums = np.bincount(labels[flagged], weights=prob[flagged], minlength=n)
    regions = []
    for i in range(1, n):
        x, y, bw, bh, area = (int(v) for v in stats[i])
        regions.append({"box": [float(x), float(y), float(x + bw), float(y + bh)],
                        "score": float(sums[i] / max(area, 1)), "area_fraction": area / float(h * w)})
    regions.sort(key=lambda r: (r["score"], r["area_fraction"]), reverse=True)
    kept = [r for r in regions if r["area_fraction"] >= min_area]
    if not kept and keep_one:
        kept = sorted(regions, key=lambda r: r["area_fraction"] * r["score"], reverse=True)[:1]
    return kept


def tile_origins(length: int, tile: int, overlap: int) -> list[int]:
    """Tile origins covering ``[0, length)`` with at least ``overlap`` pixels shared; the last tile flush with the
    border; ``length <= tile`` gives one tile."""
    if length <= tile:
        return [0]
    stride = max(1, tile - overlap)
    n = int(math.ceil((length - tile) / stride)) + 1
    return [round(i * (length - tile) / (n - 1)) for i in range(n)]


def _blend_weight(tile: tuple[int, int], overlap: int) -> np.ndarray:
    """A ``[th, tw]`` weight that ramps from near 0 at a tile's edge to 1 at ``overlap`` pixels inside."""
    def ramp(n: int) -> np.ndarray:
        if overlap <= 0:
            return np.ones(n, np.float32)
        d = np.minimum(np.arange(n) + 0.5, n - np.arange(n) - 0.5)
        return np.clip(d / overlap, 1e-3, 1.0).astype(np.float32)

    return ramp(tile[0])[:, None] * ramp(tile[1])[None, :]


# ---------------------------------------------------------------------------------------------------- the network
class _Decoder(nn.Module):
    """FPN-style top-down decoder over backbone levels (strides 2, 4, 8, ...) -> stride-2 logits."""

    def __init__(self, channels: Sequence[int], width: int) -> None:
        super().__init__()
        self.lateral = nn.ModuleList(nn.Conv2d(c, width, 1) for c in channels)
        # a 3x3 convolution on every level but the finest (stride 2: a 1x1 merge only, it is most of the cost)
        self.smooth = nn.ModuleList(
            nn.Sequential(nn.Conv2d(width, width, 3, padding=1, bias=False), nn.BatchNorm2d(width),
                          nn.ReLU(inplace=True)) for _ in channels[1:])
        self.head = nn.Sequential(nn.ReLU(inplace=False), nn.Conv2d(width, 1, 1))

    def forward(self, feats: Sequence[torch.Tensor]) -> torch.Tensor:
        x = self.smooth[-1](self.lateral[-1](feats[-1]))
        for i in range(len(feats) - 2, -1, -1):
            up = F.interpolate(x, size=feats[i].shape[-2:], mode="bilinear", align_corners=False)
            x = self.lateral[i](feats[i]) + up
            if i > 0:
                x = self.smooth[i - 1](x)
        return self.head(x)


@register_family
class MaskDetector(Detector):
    """Backbone + FPN decoder -> per-pixel logits; image logit, map and regions derived from them."""

    family = "mask"
    args_class = MaskArgs
    supports_boxes = True
    predicts_masks = True
    trains_with_gradients = True
    args: MaskArgs

    #: What the app shows instead of Grad-CAM: the map is the explanation.
    explanation_method = "the detector's own per-pixel inpainting map (native resolution)"

    def __init__(self, config: DetectorConfig, *, pretrained: bool = False) -> None:
        super().__init__(config, pretrained=pretrained)
        if config.preprocess.resize != "none":
            raise ConfigError("the mask family needs preprocess.resize 'none': it looks at native resolution")
        th, tw = config.preprocess.input_size
        if th % 32 or tw % 32:
            raise ConfigError(f"mask tiles must be multiples of 32 pixels, got {config.preprocess.input_size}")
        self.backbone = self.build_backbone(self.args.backbone)
        info = self.backbone.feature_info
        if self.args.levels > len(info):
            raise ConfigError(f"{self.args.backbone} has {len(info)} feature levels, asked for {self.args.levels}")
        self._indices = list(range(self.args.levels))
        self.backbone.prune_intermediate_layers(self._indices, prune_head=True)  # drop the unused deep stages
        channels = [int(info[i]["num_chs"]) for i in self._indices]
        self.decoder = _Decoder(channels, self.args.decoder_channels)
        with torch.no_grad():  # start from "nothing is inpainted" (about 1% of pixels)
            self.decoder.head[1].bias.fill_(-4.0)
        if self.args.freeze_first_n_blocks:
            self._freeze_first_blocks(self.args.freeze_first_n_blocks)
        self.to(memory_format=torch.channels_last)  # depthwise convolutions run much faster so on a CPU

    def _freeze_first_blocks(self, n: int) -> None:
        """Freeze the stem and the first ``n - 1`` stages (and their normalisation statistics)."""
        prefixes = ["conv_stem.", "bn1."] + [f"blocks.{i}." for i in range(n - 1)]
        for name, p in self.backbone.named_parameters():
            if name.startswith(tuple(prefixes)):
                p.requires_grad_(False)
        self.keep_frozen_norms_in_eval(self.backbone)

    # ------------------------------------------------------------------ forward
    def pixel_logits(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """``[B, 3, H, W]`` -> ``[B, H, W]`` pixel logits (``map_bias`` applied); H and W multiples of 32."""
        if pixel_values.ndim != 4 or pixel_values.shape[1] != 3:
            raise ConfigError(f"pixel_values must be [B, 3, H, W], got {tuple(pixel_values.shape)}")
        x = pixel_values.contiguous(memory_format=torch.channels_last)
        feats = self.backbone.forward_intermediates(x, indices=self._indices, intermediates_only=True)
        logits = self.decoder(feats)
        logits = F.interpolate(logits, size=pixel_values.shape[-2:], mode="bilinear", align_corners=False)
        return logits[:, 0] + self.args.map_bias

    def forward(
        self, pixel_values: torch.Tensor, labels: torch.Tensor | None = None, boxes: torch.Tensor | None = None,
        masks: torch.Tensor | None = None,
    ) -> DetectorOutput:
        """Image logits (top-k mean of the map), the map (``masks``: probabilities ``[B, H, W]``) and its best
        region's box. With ``labels`` (and ``masks``: targets ``[B, H, W]`` in {0, 1}) the loss; images with a label
        but no mask target count only in the image term."""
        pix = self.pixel_logits(pixel_values)
        logits = image_logit(pix, self.args.topk_fraction)
        probs_map = torch.sigmoid(pix)
        out = DetectorOutput(logits=logits, probs=torch.sigmoid(logits), masks=probs_map.detach())
        if labels is None:
            out.boxes, out.box_scores = self._tensor_boxes(probs_map.detach())
            return out
        target_img = labels.to(device=logits.device, dtype=logits.dtype).view(-1)
        losses: dict[str, torch.Tensor] = {}
        loss = self.args.image_weight * F.binary_cross_entropy_with_logits(logits, target_img)
        losses["image"] = loss.detach()
        if masks is not None:
            target = masks.to(device=pix.device, dtype=pix.dtype)
            if target.shape != pix.shape:
                raise ConfigError(f"masks must be {tuple(pix.shape)} (one per pixel of pixel_values), "
                                  f"got {tuple(target.shape)}")
            pw = torch.tensor(self.args.pos_weight, device=pix.device, dtype=pix.dtype)
            bce = F.binary_cross_entropy_with_logits(pix, target, pos_weight=pw)
            p = torch.sigmoid(pix).flatten(1)
            t = target.flatten(1)
            inter = (p * t).sum(1)
            dice = 1 - (2 * inter + 1) / (p.sum(1) + t.sum(1) + 1)
            loss = loss + bce + self.args.dice_weight * dice.mean()
            losses.update(pixel_bce=bce.detach(), dice=dice.mean().detach())
        out.loss = loss
        out.losses = {"total": loss.detach(), **losses}
        return out

    def _tensor_boxes(self, probs_map: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The best region's box of each map, normalised to the input (zeros and score 0 when none)."""
        h, w = probs_map.shape[-2:]
        boxes, scores = [], []
        for m in probs_map.float().cpu().numpy():
            regions = map_regions(m, min_area=self.args.min_region, close=self.args.close)
            if regions:
                b = regions[0]["box"]
                boxes.append([b[0] / w, b[1] / h, b[2] / w, b[3] / h])
                scores.append(regions[0]["score"])
            else:
                boxes.append([0.0, 0.0, 0.0, 0.0])
                scores.append(0.0)
        return (torch.tensor(boxes, device=probs_map.device), torch.tensor(scores, device=probs_map.device))

    # ------------------------------------------------------------------ training samples
    @property
    def train_columns(self) -> tuple[str, ...]:
        return ("image", "label", "mask")

    def training_sample(self, row: Mapping[str, Any], *, augmenter: Any = None, rng: Any = None
                        ) -> dict[str, torch.Tensor]:
        """A ``train_crop`` crop at native resolution and its mask: ``pixel_values``, ``labels`` (1 when the crop
        shows inpainted pixels) and ``masks``. A fake without a mask (wholly generated) has every pixel fake. With
        an ``augmenter``: horizontal flip (``hflip``) and its photometric part (colour, blur, JPEG) on the crop."""
        rng = rng if rng is not None else np.random.default_rng()
        image = row["image"].convert("RGB") if row["image"].mode != "RGB" else row["image"]
        label = int(row["label"])
        mask = _mask_array(row.get("mask"), image.size, label)
        a = self.args
        if a.rescale_p and rng.random() < a.rescale_p:
            s = float(rng.uniform(*a.rescale_range))
            size = (max(8, round(image.width * s)), max(8, round(image.height * s)))
            image = image.resize(size, Image.Resampling.BILINEAR)
            mask = np.asarray(Image.fromarray(mask).resize(size, Image.Resampling.NEAREST))
        crop, crop_mask = sample_crop(np.asarray(image), mask, a.train_crop, rng,
                                      positive_fraction=a.positive_fraction if label == 1 else 0.0)
        if augmenter is not None and getattr(augmenter.config, "hflip", False) and rng.random() < 0.5:
            crop, crop_mask = crop[:, ::-1], crop_mask[:, ::-1]
        pil = Image.fromarray(np.ascontiguousarray(crop))
        if augmenter is not None:
            pil = augmenter.photometric(pil, rng)
        target = torch.from_numpy((np.ascontiguousarray(crop_mask) > 0).astype(np.float32))
        return {"pixel_values": to_tensor(pil, self.config.preprocess), "labels": torch.tensor(float(target.any())),
                "masks": target}

    # ------------------------------------------------------------------ prediction at native resolution
    @property
    def tile_size(self) -> tuple[int, int]:
        h, w = self.config.preprocess.input_size
        return int(h), int(w)

    def tiles_for(self, width: int, height: int) -> int:
        th, tw = self.tile_size
        o = min(self.args.tile_overlap, min(th, tw) // 2)
        return len(tile_origins(width, tw, o)) * len(tile_origins(height, th, o))

    def budget_scale(self, width: int, height: int) -> float:
        """The scale (<= 1) an image of this size is analysed at so that at most ``max_tiles`` tiles run."""
        scale = 1.0
        while self.tiles_for(max(1, round(width * scale)), max(1, round(height * scale))) > self.args.max_tiles:
            scale *= 0.9
        return scale

    def input_policy(self) -> InputPolicy:
        """Tiles at native resolution: every side at least half a tile (smaller images are padded by reflection, as
        training crops are, but a tile that is mostly mirrored padding judges little)."""
        return tiled_input_policy(self.tile_size, self.args.max_tiles)

    def cannot_judge_reason(self, width: int, height: int) -> str | None:
        """The policy, then the tile budget: an image so elongated that fitting its tiles into ``max_tiles`` shrinks
        the short side under half a tile cannot be judged either (with ``on_too_large="error"`` a too large image
        still raises :class:`ImageTooLargeError` when predicted)."""
        reason = super().cannot_judge_reason(width, height)
        if reason is not None or self.args.on_too_large == "error":
            return reason
        return tiling_refusal(width, height, self.budget_scale(width, height), self.tile_size, self.args.max_tiles,
                              "mask detector")

    def _work_scale(self, img: Image.Image, name: str) -> tuple[float, str]:
        """The scale the image is analysed at (1 unless the tile budget forces less) and a note saying so."""
        n = self.tiles_for(img.width, img.height)
        if n <= self.args.max_tiles:
            return 1.0, ""
        msg = (f"{name} is {img.width}x{img.height}: {n} tiles of {self.tile_size[1]}x{self.tile_size[0]} exceed "
               f"this detector's budget of {self.args.max_tiles}")
        if self.args.on_too_large == "error":
            raise ImageTooLargeError(f"{msg}; crop or downscale it first (or raise max_tiles)")
        scale = self.budget_scale(img.width, img.height)
        note = f"{msg}; analysed at {scale:.2f}x (traces of small edits may be lost)"
        logger.warning(note)
        return scale, note

    def predict_maps(self, images: Sequence[Image.Image]) -> list[tuple[np.ndarray, str]]:
        """Each image's pixel-logit map ``[H, W]`` (float32, original size; ``map_bias`` applied) and a note (empty
        unless the tile budget made it analyse a downscaled copy). Runs in eval and inference mode."""
        was_training = self.training
        self.eval()
        try:
            with torch.inference_mode():
                return self._maps(images)
        finally:
            self.train(was_training)

    def _maps(self, images: Sequence[Image.Image]) -> list[tuple[np.ndarray, str]]:
        out = []
        for idx, img in enumerate(images):
            rgb = img.convert("RGB") if img.mode != "RGB" else img
            scale, note = self._work_scale(rgb, getattr(img, "filename", "") or f"image #{idx}")
            work = rgb if scale == 1.0 else rgb.resize((max(1, round(rgb.width * scale)),
                                                         max(1, round(rgb.height * scale))), Image.Resampling.BILINEAR)
            arr = np.asarray(work)
            del work  # the resized copy (its array is what the tiles read)
            logit_map = self._tiled_logits(arr)
            del arr
            if scale != 1.0:
                logit_map = np.asarray(Image.fromarray(logit_map).resize(rgb.size, Image.Resampling.BILINEAR))
            if self.args.copymove_weight > 0:
                density = copymove_density(np.asarray(rgb), self.args.copymove_args)
                density -= self.args.copymove_threshold
                density *= self.args.copymove_weight
                logit_map = np.maximum(logit_map, density, out=density)
                del density
            logit_map = np.ascontiguousarray(logit_map, dtype=np.float32)
            out.append((logit_map if logit_map.flags.writeable else logit_map.copy(), note))  # PIL's is read-only
        return out

    def _tiled_logits(self, arr: np.ndarray) -> np.ndarray:
        """``[h, w]`` float32 pixel logits of an ``HxWx3`` uint8 array, tile by tile with blended overlaps. Only one
        batch of tiles is normalised at a time (a whole 16 MP image as float32 would be ~200 MB more)."""
        th, tw = self.tile_size
        pre = self.config.preprocess
        h, w = arr.shape[:2]
        ph, pw = max(0, th - h), max(0, tw - w)
        if ph or pw:  # smaller than a tile: pad by reflection, as training crops are
            arr = np.pad(arr, ((0, ph), (0, pw), (0, 0)), mode="symmetric")
        H, W = arr.shape[:2]
        overlap = min(self.args.tile_overlap, min(th, tw) // 2)
        origins = [(x, y) for y in tile_origins(H, th, overlap) for x in tile_origins(W, tw, overlap)]
        acc = np.zeros((H, W), np.float32)
        wsum = np.zeros((H, W), np.float32)
        weight = _blend_weight((th, tw), overlap)
        for start in range(0, len(origins), self.args.tile_batch_size):
            chunk = origins[start : start + self.args.tile_batch_size]
            tiles = [to_tensor(Image.fromarray(arr[y : y + th, x : x + tw]), pre) for x, y in chunk]
            batch = torch.stack(tiles).contiguous(memory_format=torch.contiguous_format).to(self.device)
            logits = self.pixel_logits(batch).float().cpu().numpy()
            for (x, y), tile_logits in zip(chunk, logits, strict=True):
                acc[y : y + th, x : x + tw] += tile_logits * weight
                wsum[y : y + th, x : x + tw] += weight
        np.maximum(wsum, 1e-6, out=wsum)
        acc /= wsum
        return acc[:h, :w]

    def _predict_images(self, images: Sequence[Any]) -> list[Prediction]:
        maps = self.predict_maps(images)
        k = self.args.topk_fraction
        logits = torch.stack([image_logit(torch.from_numpy(m)[None], k)[0] for m, _ in maps])
        preds = self._to_predictions(images, logits, None, None, normalised=False)
        for pred, (logit_map, note) in zip(preds, maps, strict=True):
            prob = np.clip(logit_map, -30, 30)  # sigmoid in place: one full-size copy, not five
            np.negative(prob, out=prob)
            np.exp(prob, out=prob)
            prob += 1.0
            np.reciprocal(prob, out=prob)
            regions = map_regions(prob, min_area=self.args.min_region, close=self.args.close,
                                  keep_one=pred.logit >= 0)
            pred.mask = prob.astype(np.float32, copy=False)
            pred.regions = regions
            if regions:
                pred.box, pred.box_score = list(regions[0]["box"]), float(regions[0]["score"])
            pred.extra["flagged_fraction"] = float((prob >= 0.5).mean())
            if note:
                pred.extra["note"] = note
        return preds

    def explain_map(self, image: Any) -> np.ndarray:
        """The map itself (``[H, W]`` in [0, 1] at the image's size): what the verdict and the regions rest on."""
        from hubdet.data.imageio import load_image

        img = image if isinstance(image, Image.Image) else load_image(image)
        return self.predict([img])[0].mask


def copymove_density(rgb: np.ndarray, args: Mapping[str, Any] | None = None) -> np.ndarray:
    """The copy-move analysis's duplicate density (copied-to side, ``[H, W]`` in [0, 1]) of a uint8 RGB image at its
    own resolution (:mod:`hubdet.models.copymove`); zeros where the image is too small to analyse."""
    from hubdet.models.copymove import CopyMoveArgs, _Analyzer

    cm_args = CopyMoveArgs.from_dict(dict(args or {}), where="copymove_args")
    luma = np.empty(rgb.shape[:2], np.float32)
    for top in range(0, rgb.shape[0], 256):  # in bands: the float64 products of a whole 16 MP image are ~400 MB
        band = rgb[top : top + 256]
        luma[top : top + 256] = band[..., 0] * 0.299 + band[..., 1] * 0.587 + band[..., 2] * 0.114
    analysis = _Analyzer(cm_args)(luma)
    del luma
    if analysis.density is None:
        return np.zeros(rgb.shape[:2], np.float32)
    return analysis.density.astype(np.float32, copy=False)  # the analysis' own array (float32 already)


# ---------------------------------------------------------------------------------------------------- crops and masks
def _mask_array(mask: Any, size: tuple[int, int], label: int) -> np.ndarray:
    """A ``uint8`` 0/255 mask of the image's ``size`` (w, h): the row's mask (resized with nearest neighbour when it
    does not match, as the data builders already report), all 255 for a fake without one, all 0 for a real."""
    w, h = size
    if mask is None:
        return np.full((h, w), 255 if label == 1 else 0, np.uint8)
    m = mask.convert("L") if mask.mode != "L" else mask
    if m.size != (w, h):
        m = m.resize((w, h), Image.Resampling.NEAREST)
    return np.where(np.asarray(m) >= 128, 255, 0).astype(np.uint8)


def sample_crop(image: np.ndarray, mask: np.ndarray, size: int, rng: np.random.Generator, *,
                positive_fraction: float = 0.7) -> tuple[np.ndarray, np.ndarray]:
    """A ``size x size`` crop of ``image`` (HxWx3) and ``mask`` (HxW) at native resolution: with probability
    ``positive_fraction`` (and a non-empty mask) one that contains a random inpainted pixel, else a uniform one.
    Images smaller than ``size`` are padded by reflection (the mask too)."""
    h, w = mask.shape
    ph, pw = max(0, size - h), max(0, size - w)
    if ph or pw:
        image = np.pad(image, ((0, ph), (0, pw), (0, 0)), mode="symmetric")
        mask = np.pad(mask, ((0, ph), (0, pw)), mode="symmetric")
        h, w = mask.shape
    if positive_fraction > 0 and rng.random() < positive_fraction and mask.any():
        ys, xs = np.nonzero(mask[::4, ::4])
        if len(ys):
            j = int(rng.integers(0, len(ys)))
            cy, cx = int(ys[j]) * 4, int(xs[j]) * 4
            y0 = int(np.clip(cy - rng.integers(size // 8, size - size // 8), 0, h - size))
            x0 = int(np.clip(cx - rng.integers(size // 8, size - size // 8), 0, w - size))
            return image[y0 : y0 + size, x0 : x0 + size], mask[y0 : y0 + size, x0 : x0 + size]
    y0 = int(rng.integers(0, h - size + 1))
    x0 = int(rng.integers(0, w - size + 1))
    return image[y0 : y0 + size, x0 : x0 + size], mask[y0 : y0 + size, x0 : x0 + size]


# ---------------------------------------------------------------------------------------------------- variants
def _register() -> None:
    half = {"mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5)}
    register_detector(
        "mask_tiny.test", family="mask",
        args={"backbone": "test_efficientnet", "levels": 3, "decoder_channels": 8, "train_crop": 32,
              "tile_overlap": 8, "max_tiles": 256, "tile_batch_size": 16, "close": 0},
        preprocess={"resize": "none", "input_size": (64, 64), **half},
        description="Tiny random mask detector for tests (timm test_efficientnet, 64x64 tiles).",
    )
    register_detector(
        "mask_efficientnet_lite0.in1k", family="mask",
        args={"backbone": "tf_efficientnet_lite0", "levels": 4},
        preprocess={"resize": "none", "input_size": (512, 512), **half},
        description="Per-pixel inpainting map at native resolution: EfficientNet-Lite0 (strides 2-16, ImageNet "
                    "weights offline) + FPN decoder, 512-pixel tiles; image score and regions derived from the map.",
    )
    register_detector(
        "mask_efficientnet_lite2.in1k", family="mask",
        args={"backbone": "tf_efficientnet_lite2", "levels": 4},
        preprocess={"resize": "none", "input_size": (512, 512), **half},
        description="The same with EfficientNet-Lite2 (wider, slower).",
    )
    register_detector(
        "mask_mobilenetv2.in1k", family="mask",
        args={"backbone": "mobilenetv2_100", "levels": 4},
        preprocess={"resize": "none", "input_size": (512, 512)},
        description="The same with MobileNetV2 (ImageNet weights offline).",
    )


_register()
