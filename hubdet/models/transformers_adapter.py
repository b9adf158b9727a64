"""The transformers family: any ``AutoModelForImageClassification`` checkpoint (a Hub repo or a folder) as a
hubdet detector, with its own image processor.

``hubdet.load_detector("org/name[@revision]")`` (or ``"transformers:..."``) reads the repository's ``config.json``
and ``preprocessor_config.json`` and its ``*.safetensors`` weights (pickle files and remote code are refused; the
model class must be one of transformers' own image classifiers). Which classes mean "fake" comes from ``id2label``
(:mod:`hubdet.models._adapters`: artificial/ai/fake/generated/... versus real/human/natural/...; ``fake_labels=``
to say it explicitly; an ambiguous mapping is an error listing the labels). The fake logit is the log-odds of the
fake classes under the head's softmax, so calibration, verdicts, the batch path, ensembles, ``hubdet evaluate``,
the leaderboard and the app treat it like any family.

Preprocessing is the image processor's (its PIL backend); when hubdet's own transform reproduces it exactly (checked
on a probe image when the detector is built: the common resize-and-normalise processors), hubdet's faster batch
transform runs it, else the processor itself does. ``config.preprocess`` describes the geometry either way (for
explanations and ensembles).

Saving writes a hubdet folder: ``model.safetensors`` (the model's own state dict, transformers' key names) and
``config.json`` holding the transformers config and the processor config; it loads offline, strictly, without
transformers' Hub code.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from hubdet._core.config import StrictConfig
from hubdet._core.errors import CheckpointError, ConfigError
from hubdet.models._adapters import bce_output, fake_logit, require, resolve_fake_labels
from hubdet.models._registry import register_detector, register_family
from hubdet.models.base import Detector
from hubdet.models.config import DetectorConfig, PreprocessConfig
from hubdet.models.output import DetectorOutput

logger = logging.getLogger(__name__)

EXTRA = "transformers"
_RESAMPLE = {0: "nearest", 1: "lanczos", 2: "bilinear", 3: "bicubic"}


@dataclass
class TransformersArgs(StrictConfig):
    """Config of the transformers family (``config.json`` ``args``).

    - ``model_config``: the model's transformers config (its ``config.json``: ``model_type``, ``id2label`` ...);
    - ``processor_config``: its image processor config (``preprocessor_config.json``);
    - ``fake_labels``: the classes that mean fake (names or indices); None: found from ``id2label``.
    """

    model_config: dict[str, Any] = field(default_factory=dict)
    processor_config: dict[str, Any] = field(default_factory=dict)
    fake_labels: list[str] | None = None

    def validate(self) -> None:
        if not self.model_config.get("model_type"):
            raise ConfigError("TransformersArgs.model_config has no model_type: load an outside model with "
                              "hubdet.load_detector('transformers:ORG/NAME') or give its config")
        if "auto_map" in self.model_config:
            raise ConfigError("TransformersArgs.model_config has auto_map: hubdet never runs a repository's own "
                              "(remote) code")
        if not self.processor_config.get("image_processor_type"):
            raise ConfigError("TransformersArgs.processor_config has no image_processor_type")


def image_classifier_types() -> dict[str, str]:
    """transformers' image-classification model types -> class name (``AutoModelForImageClassification``)."""
    require("transformers", EXTRA, "transformers")
    from transformers.models.auto.modeling_auto import MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES

    return {k: v if isinstance(v, str) else v[0] for k, v in MODEL_FOR_IMAGE_CLASSIFICATION_MAPPING_NAMES.items()}


def _model_from_config(model_config: dict[str, Any]) -> torch.nn.Module:
    require("transformers", EXTRA, "transformers")
    from transformers import AutoModelForImageClassification
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    model_type = model_config["model_type"]
    if model_type not in image_classifier_types():
        raise ConfigError(f"model_type {model_type!r} is not a transformers image classifier")
    config = CONFIG_MAPPING[model_type].from_dict(dict(model_config))
    return AutoModelForImageClassification.from_config(config, trust_remote_code=False)


def _processor_from_config(processor_config: dict[str, Any]) -> Any:
    """The image processor of a saved config: its PIL backend where transformers has one (as when loaded from the
    model's folder), else the class the config names (one of transformers' own, never remote code)."""
    transformers = require("transformers", EXTRA, "transformers")
    from transformers.image_processing_base import ImageProcessingMixin

    name = str(processor_config["image_processor_type"])
    cls = getattr(transformers, name + "Pil", None) or getattr(transformers, name, None)  # the PIL backend first
    if not (isinstance(cls, type) and issubclass(cls, ImageProcessingMixin)):
        raise ConfigError(f"image_processor_type {name!r} is not one of transformers' image processors")
    return cls.from_dict(dict(processor_config))


def preprocess_from_processor(processor_config: dict[str, Any], fallback_size: int = 224) -> PreprocessConfig:
    """hubdet's description of an image processor's geometry and normalisation (exact for resize+normalise and
    shortest-edge+centre-crop processors; :class:`TransformersDetector` checks before relying on it)."""
    d = processor_config
    size = d.get("size") or {}
    crop = d.get("crop_size") or {}
    interpolation = _RESAMPLE.get(int(d.get("resample", 2) or 0), "bilinear")
    mean = tuple(d.get("image_mean") or (0.0, 0.0, 0.0)) if d.get("do_normalize", True) else (0.0, 0.0, 0.0)
    std = tuple(d.get("image_std") or (1.0, 1.0, 1.0)) if d.get("do_normalize", True) else (1.0, 1.0, 1.0)
    if len(mean) != 3 or len(std) != 3:
        mean, std = (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)
    common = {"interpolation": interpolation, "mean": [float(v) for v in mean], "std": [float(v) for v in std]}
    if "shortest_edge" in size and d.get("do_center_crop") and "height" in crop and "width" in crop:
        out = (int(crop["height"]), int(crop["width"]))
        return PreprocessConfig.from_dict({"input_size": out, "resize": "shorter_crop",
                                           "crop_pct": min(1.0, max(out) / int(size["shortest_edge"])), **common})
    if "height" in size and "width" in size:
        return PreprocessConfig.from_dict({"input_size": (int(size["height"]), int(size["width"])),
                                           "resize": "resize", **common})
    side = int(size.get("shortest_edge") or fallback_size)
    return PreprocessConfig.from_dict({"input_size": (side, side), "resize": "resize", **common})


@register_family
class TransformersDetector(Detector):
    """A transformers image classifier; ``self.model`` is the ``AutoModelForImageClassification`` model."""

    family = "transformers"
    args_class = TransformersArgs
    requires = ("transformers",)
    args: TransformersArgs

    def __init__(self, config: DetectorConfig, *, pretrained: bool = False, model: torch.nn.Module | None = None,
                 processor: Any = None) -> None:
        """Build from ``config.args`` (random weights, filled by loading) or wrap a loaded ``model``/``processor``."""
        super().__init__(config, pretrained=pretrained)
        if pretrained:
            logger.info("transformers family: pretrained weights come from the checkpoint loaded, not at build time")
        self.model = model if model is not None else _model_from_config(self.args.model_config)
        self.processor = processor if processor is not None else _processor_from_config(self.args.processor_config)
        id2label = self.model.config.id2label
        self.class_labels = [str(id2label[i]) for i in range(len(id2label))]
        self.fake_index, self.real_index = resolve_fake_labels(
            self.class_labels, self.args.fake_labels, where=config.name or config.metadata.get("source", "model"))
        self._exact = self._hubdet_transform_matches()

    # ------------------------------------------------------------------ loading an outside checkpoint
    @classmethod
    def from_source(cls, path: Path, *, where: str, fake_labels: list[str] | None = None,
                    **unknown: Any) -> TransformersDetector:
        """A transformers image classifier from its folder (a Hub snapshot or a ``save_pretrained`` folder)."""
        if unknown:
            raise ConfigError(f"{where}: unknown option(s) {sorted(unknown)} for a transformers model "
                              "(valid: fake_labels)")
        from hubdet.models.resolver import SpecError

        if path.is_file():
            raise SpecError(f"{where}: a transformers model is a folder with config.json")
        cfg = _read_json(path / "config.json", where)
        model_type = cfg.get("model_type")
        types = image_classifier_types()
        if model_type not in types:
            raise SpecError(
                f"{where} is not an image classifier: its config.json has model_type {model_type!r} and "
                f"architectures {cfg.get('architectures')}; hubdet loads transformers AutoModelForImageClassification "
                f"models (e.g. {', '.join(sorted(types)[:6])}, ...)")
        weights = sorted(path.glob("*.safetensors"))
        if not weights:
            pickles = sorted(p.name for p in path.iterdir() if p.suffix in (".bin", ".pt", ".pth", ".ckpt", ".h5"))
            raise CheckpointError(f"{where}: no *.safetensors weights{f' (found {pickles})' if pickles else ''}; "
                                  "hubdet never loads pickle checkpoints such as pytorch_model.bin")
        if not (path / "preprocessor_config.json").is_file():
            raise CheckpointError(f"{where}: no preprocessor_config.json (the model's image processor); "
                                  "preprocessing must travel with the weights")
        from transformers import AutoImageProcessor, AutoModelForImageClassification

        model = AutoModelForImageClassification.from_pretrained(
            path, trust_remote_code=False, use_safetensors=True, dtype=torch.float32)
        try:
            processor = AutoImageProcessor.from_pretrained(path, trust_remote_code=False, backend="pil")
        except (TypeError, ValueError, KeyError):  # a processor without a PIL backend
            processor = AutoImageProcessor.from_pretrained(path, trust_remote_code=False)
        model_config = json.loads(model.config.to_json_string(use_diff=False))
        processor_config = json.loads(processor.to_json_string())
        labels = [str(model.config.id2label[i]) for i in range(len(model.config.id2label))]
        fake, _ = resolve_fake_labels(labels, fake_labels, where=where)
        arch = (cfg.get("architectures") or [types[model_type]])[0]
        config = DetectorConfig(
            family="transformers",
            args={"model_config": model_config, "processor_config": processor_config,
                  "fake_labels": list(fake_labels) if fake_labels else None},
            preprocess=preprocess_from_processor(processor_config, int(model_config.get("image_size") or 224)),
            weights_source=f"transformers checkpoint {where}",
            metadata={"source": where, "description": f"{where}: transformers {arch}, classes {labels}, fake = "
                                                      f"{[labels[i] for i in fake]}"},
        )
        return cls(config, model=model, processor=processor)

    def source_files(self, path: Path) -> dict[str, Path]:
        """State files of the outside checkpoint besides its tensors (none: the weights are all tensors)."""
        return {}

    # ------------------------------------------------------------------ preprocessing: the model's processor
    def _processor_pixels(self, images: Any) -> torch.Tensor:
        rgb = [im if im.mode == "RGB" else im.convert("RGB") for im in images]
        return self.processor(images=rgb, return_tensors="pt")["pixel_values"].float()

    def _hubdet_transform_matches(self) -> bool:
        """Whether hubdet's transform of ``config.preprocess`` gives the processor's pixels on a probe image."""
        import numpy as np
        from PIL import Image

        from hubdet.models.preprocessing import build_transform

        rng = np.random.default_rng(0)
        probe = Image.fromarray(rng.integers(0, 256, (45, 61, 3), dtype=np.uint8))
        try:
            ours = build_transform(self.config.preprocess)(probe)
            theirs = self._processor_pixels([probe])[0]
        except Exception as exc:  # an unusual processor: it runs itself
            logger.info("transformers processor not reproducible by hubdet's transform (%s)", exc)
            return False
        same = tuple(ours.shape) == tuple(theirs.shape) and float((ours - theirs).abs().max()) <= 1e-5
        if not same:
            logger.info("transformers detector: the image processor runs itself (hubdet's transform differs)")
        return same

    @property
    def transform(self) -> Any:
        return super().transform if self._exact else (lambda img: self._processor_pixels([img])[0])

    @property
    def batch_transform(self) -> Any:
        return super().batch_transform if self._exact else self._processor_pixels

    # ------------------------------------------------------------------ forward
    def forward(self, pixel_values: torch.Tensor, labels: torch.Tensor | None = None,
                boxes: torch.Tensor | None = None) -> DetectorOutput:
        logits = self.model(pixel_values=pixel_values).logits
        return bce_output(fake_logit(logits, self.fake_index, self.real_index), labels)

    def tensors_to_save(self) -> dict[str, torch.Tensor]:
        """The model's own state dict (transformers' key names)."""
        return {k.removeprefix("model."): v for k, v in self.state_dict().items()}

    def card_details(self) -> dict[str, Any]:
        mc = self.args.model_config
        return {"backbone": f"transformers `{(mc.get('architectures') or [mc.get('model_type')])[0]}`",
                "family_note": f"Outside image classifier; classes {self.class_labels}, fake = "
                               f"{[self.class_labels[i] for i in self.fake_index]}."}


def _read_json(path: Path, where: str) -> dict[str, Any]:
    if not path.is_file():
        raise CheckpointError(f"{where}: no {path.name}")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise CheckpointError(f"{path}: invalid JSON ({exc})") from exc
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: not a JSON object")
    return data


_HALF = [0.5, 0.5, 0.5]
register_detector(
    "transformers_tiny.test", family="transformers",
    args={
        "model_config": {"model_type": "vit", "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
                         "intermediate_size": 64, "image_size": 32, "patch_size": 8, "num_labels": 2,
                         "id2label": {"0": "real", "1": "fake"}, "label2id": {"real": 0, "fake": 1}},
        "processor_config": {"image_processor_type": "ViTImageProcessorPil", "do_resize": True,
                             "size": {"height": 32, "width": 32}, "resample": 2, "do_rescale": True,
                             "rescale_factor": 1 / 255, "do_normalize": True, "image_mean": _HALF,
                             "image_std": _HALF},
    },
    preprocess={"input_size": [32, 32], "mean": _HALF, "std": _HALF},
    description="Tiny ViT image classifier through transformers (labels real/fake) for tests; random init.",
)
