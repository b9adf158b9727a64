"""The ensemble family: frozen member detectors whose logits are fused (seed 000).

Members (``args.members``) are strings, one per member:

- ``"registry:NAME"`` (or a bare ``NAME``) creates a fresh detector from the registry (random init unless the
  ensemble is built with ``pretrained=True``): for tests and for wiring an ensemble before its members are trained;
- anything else is any detector spec :func:`hubdet.load_detector` resolves: a hubdet checkpoint folder, a Hub repo
  id (``org/name[@revision]``), a transformers/timm/ONNX image classifier (the adapter families).

Members are frozen (no gradient, always in eval mode); only the fusion trains. Each member's logit is divided by
its own calibration (temperature, Platt bias) before fusion, so members are on comparable scales. Fusion:

- ``"linear"``: a learned ``Linear(M, 1)`` over the member logits (seed 000 fused the two members' outputs with a
  dense layer), initialised to the mean;
- ``"weighted"``: ``sum(w_i * l_i) / sum(w_i)`` with ``args.weights`` (non-negative, normalised to sum 1);
- ``"mean"``: the plain mean of the member logits.

``forward(pixel_values)`` takes pixels in the ensemble's own preprocessing and converts them for each member in
tensor space (un-normalise, resize/crop as the member's config says, re-normalise): the fast path the trainer uses.
``predict`` runs each member's own predict path instead (so a box-head member looks at full resolution) and fuses the
logits. The box comes from the box-capable member (``args.box_member``, default the first one), or with
``box_from="most_confident"`` from whichever box-capable member gives the image the highest calibrated logit (two
inpainting detectors that see different traces each localise what they detect). An ensemble with a mask-predicting
member (``args.mask_member``, default the first one) predicts masks too: its map and regions are that member's.

Training: with ``linear`` fusion the trainer's gradient loop works on ``forward`` (members run under ``no_grad``, so
only the fusion learns); :meth:`EnsembleDetector.fit_head` on member logits (from ``extract_features``, or from
:meth:`EnsembleDetector.member_logits` to fit on exactly what ``predict`` fuses) solves the same logistic regression
with L-BFGS. ``mean`` and ``weighted`` have nothing to train: such an ensemble reports
``trains_with_gradients = False`` and its ``fit_head`` only reports metrics.

``save_pretrained`` writes every member into ``members/<i>/`` (their own strict checkpoints with their own file
manifests; an adapter member keeps the outside model's weights), records those relative paths and each member's
:func:`~hubdet.models.integrity.weights_sha256` in ``config.json``, so the folder loads offline and a changed member
is refused. A saved ensemble only loads members from inside its folder.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from hubdet._core.config import StrictConfig
from hubdet._core.errors import CheckpointError, ConfigError
from hubdet.data.policy import InputPolicy
from hubdet.models import calibration as cal_lib
from hubdet.models import integrity
from hubdet.models._registry import register_detector, register_family
from hubdet.models.base import WEIGHTS_NAME, Detector
from hubdet.models.config import DetectorConfig, PreprocessConfig
from hubdet.models.output import DetectorOutput, Prediction
from hubdet.models.preprocessing import box_to_original

logger = logging.getLogger(__name__)

FUSIONS = ("linear", "weighted", "mean")
REGISTRY_PREFIX = "registry:"
MEMBERS_DIR = "members"


@dataclass
class EnsembleArgs(StrictConfig):
    """Config of an ensemble (``config.json`` ``args``). ``member_sha256`` is filled by ``save_pretrained``."""

    members: list[str] = field(default_factory=list)
    fusion: str = "linear"
    weights: list[float] | None = None
    box_member: int | None = None
    box_from: str = "member"  # "member" (args.box_member) | "most_confident" (per image, among box-capable members)
    mask_member: int | None = None  # the member whose map and regions the ensemble reports (default: the first)
    member_sha256: list[str] | None = None

    def validate(self) -> None:
        if not self.members:
            raise ConfigError("EnsembleArgs.members is empty: give members=[path, hub id or 'registry:NAME', ...]")
        if self.fusion not in FUSIONS:
            raise ConfigError(f"EnsembleArgs.fusion: {self.fusion!r} is not one of {FUSIONS}")
        if self.fusion == "weighted":
            if self.weights is None or len(self.weights) != len(self.members):
                raise ConfigError(f"EnsembleArgs.weights: fusion 'weighted' needs {len(self.members)} weights "
                                  f"(one per member), got {self.weights}")
            if min(self.weights) < 0 or sum(self.weights) <= 0:
                raise ConfigError("EnsembleArgs.weights must be non-negative with a positive sum")
        elif self.weights is not None:
            raise ConfigError(f"EnsembleArgs.weights is only used with fusion 'weighted' (fusion is {self.fusion!r})")
        if self.box_member is not None and not 0 <= self.box_member < len(self.members):
            raise ConfigError(f"EnsembleArgs.box_member {self.box_member} is not a member index")
        if self.box_from not in ("member", "most_confident"):
            raise ConfigError(f"EnsembleArgs.box_from: {self.box_from!r} is not 'member' or 'most_confident'")
        if self.box_from == "most_confident" and self.box_member is not None:
            raise ConfigError("EnsembleArgs.box_member is only used with box_from 'member'")
        if self.member_sha256 is not None and len(self.member_sha256) != len(self.members):
            raise ConfigError("EnsembleArgs.member_sha256 must have one digest per member")


def convert_pixels(pixel_values: torch.Tensor, src: PreprocessConfig, dst: PreprocessConfig) -> torch.Tensor:
    """Re-preprocess a normalised batch from ``src`` to ``dst`` in tensor space (un-normalise, geometry, normalise).

    The geometry mirrors :func:`hubdet.models.preprocessing.apply_geometry` on the ``src`` tensor: ``resize`` and
    ``none`` resize to ``dst.input_size`` (a full-resolution member gets the whole view as one tile),
    ``shorter_crop`` resizes the shorter side then centre-crops, ``center_crop`` crops at native resolution (enlarging
    a view smaller than the crop first, never padding).
    """
    if src == dst:
        return pixel_values
    dev, dt = pixel_values.device, pixel_values.dtype
    mean_s = torch.tensor(src.mean, device=dev, dtype=dt).view(1, 3, 1, 1)
    std_s = torch.tensor(src.std, device=dev, dtype=dt).view(1, 3, 1, 1)
    x = pixel_values * std_s + mean_s
    out_h, out_w = dst.input_size
    mode = {"nearest": "nearest", "bilinear": "bilinear", "bicubic": "bicubic", "lanczos": "bicubic"}[dst.interpolation]

    def resize(t: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        if tuple(t.shape[-2:]) == size:
            return t
        if mode == "nearest":
            return F.interpolate(t, size=size, mode="nearest")
        return F.interpolate(t, size=size, mode=mode, align_corners=False, antialias=True).clamp(0, 1)

    if dst.resize in ("resize", "none"):
        x = resize(x, (out_h, out_w))
    else:
        if dst.resize == "shorter_crop":
            h, w = x.shape[-2:]
            scale = max(out_w, out_h) / dst.crop_pct / min(h, w)
            x = resize(x, (max(out_h, round(h * scale)), max(out_w, round(w * scale))))
        h, w = x.shape[-2:]
        if h < out_h or w < out_w:
            scale = max(out_h / h, out_w / w)
            x = resize(x, (max(out_h, round(h * scale)), max(out_w, round(w * scale))))
            h, w = x.shape[-2:]
        top, left = (h - out_h) // 2, (w - out_w) // 2
        x = x[..., top : top + out_h, left : left + out_w]
    mean_d = torch.tensor(dst.mean, device=dev, dtype=dt).view(1, 3, 1, 1)
    std_d = torch.tensor(dst.std, device=dev, dtype=dt).view(1, 3, 1, 1)
    return (x - mean_d) / std_d


@register_family
class EnsembleDetector(Detector):
    """Frozen members + a fusion of their (temperature-scaled) logits."""

    family = "ensemble"
    args_class = EnsembleArgs
    supports_boxes = False  # per instance: True when a member predicts boxes
    predicts_masks = False  # per instance: True when a member predicts masks
    trains_with_gradients = True  # per instance: False for the parameter-free mean/weighted fusions
    args: EnsembleArgs

    def __init__(
        self, config: DetectorConfig, *, pretrained: bool = False, member_root: str | os.PathLike | None = None
    ) -> None:
        """``member_root``: the checkpoint folder being loaded; members must then live inside it."""
        super().__init__(config, pretrained=pretrained)
        root = Path(member_root) if member_root is not None else None
        self._signed = config.file_sha256 is not None  # member_sha256 are weights_sha256 (else: the legacy digest)
        self._member_sha256: list[str | None] = list(self.args.member_sha256 or [None] * len(self.args.members))
        members = [self._load_member(spec, i, root, pretrained) for i, spec in enumerate(self.args.members)]
        for member in members:
            member.requires_grad_(False)
            member.eval()
        self.members = nn.ModuleList(members)
        n = len(members)
        self.fusion: nn.Linear | None = None
        if self.args.fusion == "linear":
            self.fusion = nn.Linear(n, 1)
            with torch.no_grad():
                self.fusion.weight.fill_(1.0 / n)
                self.fusion.bias.zero_()
        box_capable = [i for i, m in enumerate(members) if getattr(m, "supports_boxes", False)]
        if self.args.box_member is not None and self.args.box_member not in box_capable:
            raise ConfigError(f"EnsembleArgs.box_member {self.args.box_member} does not predict boxes "
                              f"(box-capable members: {box_capable})")
        self.box_member: int | None = (
            self.args.box_member if self.args.box_member is not None else (box_capable[0] if box_capable else None)
        )
        self.box_members = box_capable if self.args.box_from == "most_confident" else (
            [self.box_member] if self.box_member is not None else [])
        self.supports_boxes = self.box_member is not None  # type: ignore[misc]
        mask_capable = [i for i, m in enumerate(members) if getattr(m, "predicts_masks", False)]
        if self.args.mask_member is not None and self.args.mask_member not in mask_capable:
            raise ConfigError(f"EnsembleArgs.mask_member {self.args.mask_member} does not predict masks "
                              f"(mask-capable members: {mask_capable})")
        self.mask_member: int | None = (
            self.args.mask_member if self.args.mask_member is not None else (mask_capable[0] if mask_capable else None)
        )
        self.predicts_masks = self.mask_member is not None  # type: ignore[misc]
        # a mean/weighted fusion has no parameter: the trainer takes the frozen-feature path (fit_head is a no-op)
        self.trains_with_gradients = self.args.fusion == "linear"  # type: ignore[misc]

    # ------------------------------------------------------------------ members
    def _load_member(self, spec: str, index: int, root: Path | None, pretrained: bool) -> Detector:
        from hubdet.models.resolver import load_detector, parse_spec, weights_record

        if not isinstance(spec, str) or not spec:
            raise ConfigError(f"ensemble member {index}: expected a detector spec (folder, Hub id, 'registry:NAME' "
                              f"...), got {spec!r}")
        if root is not None:
            if spec.startswith(REGISTRY_PREFIX):
                raise CheckpointError(f"{root}: member {index} is {spec!r}; a saved ensemble keeps its members in "
                                      f"{MEMBERS_DIR}/")
            folder = (root / spec).resolve()
            if not folder.is_relative_to(root.resolve()) or not folder.is_dir():
                raise CheckpointError(f"{root}: member {index} ({spec!r}) is not a folder inside the checkpoint")
            if not (folder / WEIGHTS_NAME).is_file():
                raise CheckpointError(f"{folder}: member {index} has no {WEIGHTS_NAME}")
            member = load_detector(str(folder))  # its own manifest is checked (unless the load is not verifying)
            expected = (self.args.member_sha256 or [None] * len(self.args.members))[index]
            if expected is not None and integrity.verifying():
                actual = member.provenance.sha256 if self._signed else integrity.legacy_state_sha256(folder)
                if actual != expected:
                    raise integrity.IntegrityError(
                        f"{folder}: member {index} differs from the one the ensemble was saved with: expected weights "
                        f"SHA-256 {expected}, actual {actual}")
            self._member_sha256[index] = member.provenance.sha256
            return member
        if parse_spec(spec).is_registry:
            return load_detector(spec, pretrained=pretrained)  # random weights: never shared
        member = load_detector(spec)
        self._member_sha256[index] = weights_record(member).sha256
        return member

    def member_sha256(self) -> list[str | None]:
        """Each member's :func:`~hubdet.models.integrity.weights_sha256` (its weights and any other state file such
        as a skops head; ``None`` for random registry members of an unsaved ensemble)."""
        return list(self._member_sha256)

    def component_sha256(self) -> dict[str, str]:
        """The members' digests (their weights and state files): part of the ensemble's own weights digest."""
        return {f"member {i}": d for i, d in enumerate(self._member_sha256) if d is not None}

    def train(self, mode: bool = True) -> EnsembleDetector:
        """Members stay in eval mode (frozen); only the fusion follows ``mode``."""
        super().train(mode)
        for member in self.members:
            member.eval()
        return self

    # ------------------------------------------------------------------ what it can judge
    def _member_refusal(self, k: int, reason: str) -> str:
        member = self.members[k]
        return f"{reason} [ensemble member {k}: {member.config.name or member.family}]"

    def input_policy(self) -> InputPolicy:
        """The strictest of the members' policies: the fusion needs every member's logit."""
        policies = [m.input_policy() for m in self.members]
        out = policies[0]
        for other in policies[1:]:
            out = out.strictest(other)
        return out

    def cannot_judge_reason(self, width: int, height: int) -> str | None:
        """The first member's reason (naming the member): the ensemble judges only what every member judges."""
        for k, member in enumerate(self.members):
            reason = member.cannot_judge_reason(width, height)
            if reason is not None:
                return self._member_refusal(k, reason)
        return None

    # ------------------------------------------------------------------ fusion
    def fusion_weights(self) -> torch.Tensor:
        """The (normalised) per-member weights of the ``weighted``/``mean`` fusions, or the linear layer's."""
        n = len(self.members)
        if self.fusion is not None:
            return self.fusion.weight.detach().flatten()
        if self.args.fusion == "weighted" and self.args.weights is not None:
            w = torch.tensor(self.args.weights, dtype=torch.float32)
            return w / w.sum()
        return torch.full((n,), 1.0 / n)

    def fuse(self, member_logits: torch.Tensor) -> torch.Tensor:
        """``[B, M]`` member logits (temperature-scaled) -> ``[B]`` ensemble logits."""
        if member_logits.ndim != 2 or member_logits.shape[1] != len(self.members):
            raise ConfigError(f"member logits must be [B, {len(self.members)}], got {tuple(member_logits.shape)}")
        if self.fusion is not None:
            return self.fusion(member_logits).squeeze(-1)
        w = self.fusion_weights().to(member_logits)
        return member_logits @ w

    def _calibrated(self, k: int, logits: torch.Tensor) -> torch.Tensor:
        """Member ``k``'s logits calibrated by its own calibration (temperature, and Platt bias if any)."""
        return cal_lib.calibrated_logits(logits, self.members[k].config.calibration)

    # ------------------------------------------------------------------ forward
    def _run_members(
        self, pixel_values: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """Member logits ``[B, M]`` (temperature-scaled) and the box member's boxes, normalised to the input."""
        if pixel_values.ndim != 4 or pixel_values.shape[1] != 3:
            raise ConfigError(f"pixel_values must be [B, 3, H, W], got {tuple(pixel_values.shape)}")
        height, width = pixel_values.shape[-2:]
        columns = []
        box = box_scores = None
        best: torch.Tensor | None = None  # per image, the highest logit among the box members so far
        with torch.no_grad():  # members are frozen whatever their requires_grad flags say
            for i, member in enumerate(self.members):
                pre = member.config.preprocess
                out = member(convert_pixels(pixel_values, self.config.preprocess, pre))
                columns.append(self._calibrated(i, out.logits.float()))
                if i == self.mask_member and out.masks is not None:
                    masks = out.masks.float()[:, None]
                    if tuple(masks.shape[-2:]) != (height, width):
                        masks = F.interpolate(masks, size=(height, width), mode="bilinear", align_corners=False)
                    self._last_masks = masks[:, 0]
                if i in self.box_members and out.boxes is not None:
                    member_box = out.boxes.float()
                    if pre.resize not in ("resize", "none"):  # map through the member's crop
                        member_box = torch.tensor([
                            [v / s for v, s in zip(box_to_original(b, pre, width, height),
                                                   (width, height, width, height), strict=True)]
                            for b in member_box.tolist()
                        ], device=member_box.device)
                    scores = out.box_scores if out.box_scores is not None else torch.zeros_like(columns[-1])
                    if best is None or box is None or box_scores is None:  # the first box member
                        box, box_scores, best = member_box, scores.float(), columns[-1]
                    else:  # keep, per image, the box of the member with the highest calibrated logit
                        take = columns[-1] > best
                        box = torch.where(take[:, None], member_box, box)
                        box_scores = torch.where(take, scores.float(), box_scores)
                        best = torch.where(take, columns[-1], best)
        return torch.stack(columns, dim=1), box, box_scores

    def forward(
        self, pixel_values: torch.Tensor, labels: torch.Tensor | None = None, boxes: torch.Tensor | None = None
    ) -> DetectorOutput:
        self._last_masks = None
        member_logits, box, box_scores = self._run_members(pixel_values)
        logits = self.fuse(member_logits)
        out = DetectorOutput(logits=logits, probs=torch.sigmoid(logits), boxes=box, box_scores=box_scores,
                             masks=self._last_masks)
        if labels is not None:
            target = labels.to(device=logits.device, dtype=logits.dtype).view(-1)
            out.loss = F.binary_cross_entropy_with_logits(logits, target)
            out.losses = {"classification": out.loss.detach()}
        return out

    # ------------------------------------------------------------------ the frozen-feature path (mean / weighted)
    def extract_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """The member logits ``[B, M]``: the "features" of an ensemble whose fusion has nothing to train."""
        return self._run_members(pixel_values)[0]

    def fit_head(self, features: Any, labels: Any) -> dict[str, float]:
        """Fit the fusion on member logits: L-BFGS for ``linear``, nothing to fit for ``mean``/``weighted``.

        Returns the fused BCE and accuracy on ``features``."""
        x = torch.as_tensor(features).detach().float()
        y = torch.as_tensor(labels).detach().float().view(-1)
        metrics: dict[str, float] = {}
        if self.fusion is not None:
            metrics.update(self.fit_fusion(x, y))
        with torch.no_grad():
            fused = self.fuse(x.to(self.device)).float().cpu()
        metrics["train_bce"] = float(F.binary_cross_entropy_with_logits(fused, y))
        metrics["train_accuracy"] = float(((fused > 0).float() == y).float().mean())
        return metrics

    def _member_predictions(
        self, images: Sequence[Any], known: Mapping[int, Sequence[Prediction]] | None = None
    ) -> list[list[Prediction]]:
        """Each member's predictions on ``images`` (those of the members in ``known`` are taken as given)."""
        known = known or {}
        return [list(known[k]) if k in known else m._predict_images(images) for k, m in enumerate(self.members)]

    def _scaled_logits(self, per_member: Sequence[Sequence[Prediction]], n_images: int) -> torch.Tensor:
        raw = torch.tensor([[p[i].logit for p in per_member] for i in range(n_images)], dtype=torch.float32)
        return torch.stack([self._calibrated(k, raw[:, k]) for k in range(len(per_member))], dim=1) if n_images \
            else raw.reshape(0, len(per_member))

    def member_logits(self, images: Sequence[Any]) -> torch.Tensor:
        """``[B, M]`` temperature-scaled logits of each member's own predict path on decoded RGB PIL images.

        Use them to fit the fusion on exactly what ``predict`` fuses (e.g. box heads at full resolution)."""
        was_training = self.training
        self.eval()
        try:
            with torch.inference_mode():
                logits = self._scaled_logits(self._member_predictions(images), len(images))
        finally:
            self.train(was_training)
        return logits.clone()  # a normal tensor, usable with autograd

    def fit_fusion(self, member_logits: torch.Tensor, labels: torch.Tensor, *, max_iter: int = 100) -> dict[str, float]:
        """Fit the linear fusion by L-BFGS on ``[N, M]`` member logits (e.g. from :meth:`member_logits`).

        A logistic regression over M inputs: the closed-form alternative to training the fusion with the trainer's
        gradient loop. Returns the BCE before and after."""
        if self.fusion is None:
            raise ConfigError(f"fit_fusion needs fusion 'linear' (this ensemble uses {self.args.fusion!r})")
        x = member_logits.detach().float().to(self.device)
        y = torch.as_tensor(labels).detach().float().view(-1).to(self.device)
        if x.ndim != 2 or x.shape != (y.numel(), len(self.members)):
            raise ConfigError(f"fit_fusion: member_logits {tuple(x.shape)} and labels ({y.numel()}) do not match")
        opt = torch.optim.LBFGS(self.fusion.parameters(), lr=1.0, max_iter=max_iter, line_search_fn="strong_wolfe")

        def closure() -> torch.Tensor:
            opt.zero_grad()
            loss = F.binary_cross_entropy_with_logits(self.fuse(x), y)
            loss.backward()
            return loss

        with torch.enable_grad():
            with torch.no_grad():
                before = float(F.binary_cross_entropy_with_logits(self.fuse(x), y))
            opt.step(closure)
            with torch.no_grad():
                after = float(F.binary_cross_entropy_with_logits(self.fuse(x), y))
        logger.info("ensemble fusion fitted: BCE %.4f -> %.4f", before, after)
        return {"bce_before": before, "bce_after": after}

    def predict_with(
        self, images: Sequence[Any], member_predictions: Mapping[int, Sequence[Prediction]], *, batch_size: int = 32
    ) -> list[Prediction]:
        """``predict``, reusing ``member_predictions[k]`` (one per image) instead of running member ``k``.

        The given predictions must come from a detector with the member's weights and config (e.g. the same
        checkpoint loaded on its own) on the same images in batches of ``batch_size`` (a batched forward may differ
        in the last bits); the other members run as in ``predict``. The fusion, calibration, box choice and
        ``extra["members"]`` are exactly those of ``predict``."""
        images = list(images)
        for k, preds in member_predictions.items():
            if not 0 <= k < len(self.members):
                raise ConfigError(f"predict_with: {k} is not a member index (0..{len(self.members) - 1})")
            if len(preds) != len(images):
                raise ConfigError(f"predict_with: member {k} has {len(preds)} predictions for {len(images)} images")

        def run(chunk: list[Any], positions: list[int]) -> list[Prediction]:
            known = {k: [p[i] for i in positions] for k, p in member_predictions.items()}
            return self.fuse_predictions(chunk, self._member_predictions(chunk, known))

        return self._predict_batched(images, batch_size, run)

    def _predict_images(self, images: Sequence[Any]) -> list[Prediction]:
        """Every member predicts through its own path (full resolution for box heads); the logits are fused."""
        return self.fuse_predictions(images, self._member_predictions(images))

    def fuse_predictions(self, images: Sequence[Any], per_member: Sequence[Sequence[Prediction]]) -> list[Prediction]:
        """Fuse the members' predictions ``per_member[k][i]`` (member ``k``, image ``i``) on decoded ``images``.

        Each member's logit is divided by its temperature, fused, calibrated; the box comes from the box member."""
        if len(per_member) != len(self.members) or any(len(p) != len(images) for p in per_member):
            raise ConfigError(f"fuse_predictions: expected {len(self.members)} members x {len(images)} predictions")
        unjudged: dict[int, str] = {}  # image -> the first member's reason: the fusion needs every member's logit
        for k, preds in enumerate(per_member):
            for i, pred in enumerate(preds):
                if not pred.judged and i not in unjudged:
                    unjudged[i] = self._member_refusal(k, pred.reason or "")
        if unjudged:
            keep = [i for i in range(len(images)) if i not in unjudged]
            kept = iter(self.fuse_predictions([images[i] for i in keep], [[p[i] for i in keep] for p in per_member])
                        if keep else [])
            return [Prediction.cannot_judge(unjudged[i], width=images[i].width, height=images[i].height)
                    if i in unjudged else next(kept) for i in range(len(images))]
        member_logits = self._scaled_logits(per_member, len(images))
        fused = self.fuse(member_logits.to(self.device)).float().cpu()
        preds = self._to_predictions(images, fused, None, None, normalised=False)
        for i, pred in enumerate(preds):
            pred.extra["members"] = [
                {"name": m.config.name or m.family, "prob": p[i].prob, "logit": p[i].logit}
                for m, p in zip(self.members, per_member, strict=True)
            ]
            if self.box_members:
                # the box member, or (box_from="most_confident") the box member with the highest calibrated logit
                # among those that found a region
                boxed = [k for k in self.box_members if per_member[k][i].box is not None] or self.box_members
                j = max(boxed, key=lambda k: float(member_logits[i, k]))
                member_pred = per_member[j][i]
                pred.box, pred.box_score = member_pred.box, member_pred.box_score
                if len(self.box_members) > 1:
                    pred.extra["box_from"] = self.members[j].config.name or self.members[j].family
            if self.mask_member is not None:  # the map (and its regions) of the mask member
                mask_pred = per_member[self.mask_member][i]
                pred.mask, pred.regions = mask_pred.mask, mask_pred.regions
                if "flagged_fraction" in mask_pred.extra:
                    pred.extra["flagged_fraction"] = mask_pred.extra["flagged_fraction"]
        return preds

    # ------------------------------------------------------------------ explanation
    #: What :meth:`explain_map` shows (the app's heatmap label).
    explanation_method = "members' maps weighted as the fusion weighs their logits"

    def explain_map(self, image: Any, member_maps: Mapping[int, Any] | None = None) -> Any:
        """``[H, W]`` map in [0, 1]: each member's own explanation (:func:`hubdet.models.explain.explain`; those in
        ``member_maps`` are reused) weighted by how much the fusion counts its logit (fusion weight over its
        temperature; members the fusion counts against are left out)."""
        import numpy as np

        from hubdet.models.explain import explain

        temperatures = torch.tensor([float(m.config.calibration.temperature) for m in self.members])
        weights = (self.fusion_weights().float().cpu() / temperatures).tolist()
        total, norm = None, 0.0
        for k, (member, weight) in enumerate(zip(self.members, weights, strict=True)):
            if weight <= 0:
                continue
            heat = (member_maps or {}).get(k)
            if heat is None:
                heat = explain(member, image)[0]
            heat = np.asarray(heat, dtype=np.float32)
            total = heat * weight if total is None else total + heat * weight
            norm += weight
        if total is None:
            return np.zeros((image.height, image.width), np.float32)
        return total / norm

    # ------------------------------------------------------------------ save / load
    def tensors_to_save(self) -> dict[str, torch.Tensor]:
        """Only the fusion: members are saved as their own checkpoints under ``members/``."""
        return {k: v for k, v in self.state_dict().items() if not k.startswith("members.")}

    def save_pretrained(
        self, save_directory: str | os.PathLike, *, dtype: torch.dtype | None = None, card: bool = True,
        card_kwargs: dict[str, Any] | None = None,
    ) -> Path:
        """Write each member to ``members/<i>/`` (strict checkpoints), then the ensemble's own files.

        ``config.json`` then lists the members as relative paths with their weights' SHA-256; the original member
        sources (paths, Hub ids, registry names) are kept in ``metadata["member_sources"]``.
        """
        folder = Path(save_directory)
        folder.mkdir(parents=True, exist_ok=True)
        members_dir = folder / MEMBERS_DIR
        if members_dir.exists():  # members are in memory; stale ones from an earlier save must not linger
            shutil.rmtree(members_dir)
        specs, digests = [], []
        for i, member in enumerate(self.members):
            member.save_pretrained(members_dir / str(i), dtype=dtype, card=card)
            specs.append(f"{MEMBERS_DIR}/{i}")
            digests.append(integrity.weights_sha256(member.config.file_sha256 or {},
                                                    getattr(member.config, "external_weights", None)))
        self.config.metadata.setdefault("member_sources", list(self.args.members))
        self.config.args = {**self.config.args, "members": specs, "member_sha256": digests}
        self.args = EnsembleArgs.from_dict(self.config.args, where=f"{self.config.name or self.family}.args")
        self._member_sha256 = list(digests)
        self._signed = True
        return super().save_pretrained(folder, dtype=dtype, card=card, card_kwargs=card_kwargs)

    @classmethod
    def from_folder(cls, folder: Path, config: DetectorConfig) -> EnsembleDetector:
        """Load members from ``folder/members/`` (each checked against its manifest and ``member_sha256``) and the
        fusion strictly."""
        detector = cls(config, member_root=folder)
        detector.load_extra(folder)
        detector.load_weights(folder / WEIGHTS_NAME)
        detector.eval()
        return detector


def _register() -> None:
    half = {"mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5)}
    register_detector(
        "ensemble_tiny.test", family="ensemble",
        args={"members": ["registry:classifier_tiny.test", "registry:boxhead_tiny.test"], "fusion": "linear"},
        preprocess={"input_size": (32, 32), **half},
        description="Tiny ensemble for tests: fresh tiny classifier + tiny box head, linear fusion.",
    )
    register_detector(
        "ensemble_linear.custom", family="ensemble",
        args={"members": ["registry:classifier_tiny.test"], "fusion": "linear"},
        preprocess={"input_size": (224, 224)},
        description="Seed 000's ensemble: frozen trained detectors fused by a learned linear layer over their logits. "
                    "Give members=[checkpoint folders or Hub ids]; the default member is a tiny random placeholder.",
    )


_register()
