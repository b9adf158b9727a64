"""The timm family: a timm checkpoint (``hf-hub:org/name[@revision]``, ``timm:FOLDER``, or a Hub repo or folder
whose ``config.json`` is timm's) with a binary or multi-class head, as a hubdet detector.

The model is built from the config's ``architecture``, ``num_classes`` and ``model_args`` and its ``model.safetensors``
is loaded strictly (no pickle). Which classes mean "fake" comes from ``label_names`` (top level or in
``pretrained_cfg``) by the rule of :mod:`hubdet.models._adapters` (``fake_labels=`` to say it explicitly; a single
output is the fake logit when its label is a fake word, the real one negated when it is a real word). Preprocessing
comes from ``pretrained_cfg`` (input size, interpolation, crop, mean/std), as timm's own eval transform does.
Saved, it is a hubdet folder whose ``model.safetensors`` keeps timm's key names.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from hubdet._core.config import StrictConfig
from hubdet._core.errors import CheckpointError, ConfigError
from hubdet.models._adapters import bce_output, fake_logit, resolve_fake_labels
from hubdet.models._registry import register_detector, register_family
from hubdet.models.base import WEIGHTS_NAME, Detector
from hubdet.models.config import DetectorConfig, PreprocessConfig
from hubdet.models.output import DetectorOutput

logger = logging.getLogger(__name__)


@dataclass
class TimmArgs(StrictConfig):
    """Config of the timm family (``config.json`` ``args``): timm's ``architecture``, ``num_classes`` and
    ``model_args``, the head's ``label_names`` (output order) and the ``fake_labels`` (None: from the names)."""

    architecture: str = ""
    num_classes: int = 1
    model_args: dict[str, Any] = field(default_factory=dict)
    label_names: list[str] | None = None
    fake_labels: list[str] | None = None

    def validate(self) -> None:
        if not self.architecture:
            raise ConfigError("TimmArgs.architecture is empty: load a timm checkpoint with hubdet.load_detector("
                              "'hf-hub:ORG/NAME') or name a timm architecture")
        if self.num_classes < 1:
            raise ConfigError(f"TimmArgs.num_classes must be >= 1 (a classifier head), got {self.num_classes}")
        if self.label_names is not None and len(self.label_names) != self.num_classes:
            raise ConfigError(f"TimmArgs.label_names has {len(self.label_names)} names for {self.num_classes} "
                              "outputs")
        for key in ("num_classes", "pretrained"):
            if key in self.model_args:
                raise ConfigError(f"TimmArgs.model_args must not set {key!r}")


def preprocess_from_pretrained_cfg(cfg: dict[str, Any]) -> PreprocessConfig:
    """hubdet's preprocessing for timm's ``pretrained_cfg`` (input size, interpolation, crop_pct/crop_mode,
    mean/std)."""
    size = cfg.get("test_input_size") or cfg.get("input_size") or (3, 224, 224)
    crop_pct = float(cfg.get("test_crop_pct") or cfg.get("crop_pct") or 1.0)
    mode = cfg.get("crop_mode") or "center"
    interpolation = cfg.get("interpolation") or "bilinear"
    data = {
        "input_size": (int(size[-2]), int(size[-1])),
        "interpolation": interpolation if interpolation in ("nearest", "bilinear", "bicubic", "lanczos") else "bicubic",
        "resize": "resize" if mode == "squash" or math.isclose(crop_pct, 1.0) else "shorter_crop",
        "crop_pct": min(1.0, crop_pct),
    }
    for key in ("mean", "std"):
        if cfg.get(key) is not None and len(cfg[key]) == 3:
            data[key] = [float(v) for v in cfg[key]]
    return PreprocessConfig.from_dict(data)


@register_family
class TimmDetector(Detector):
    """A timm classifier; ``self.model`` is the timm model with its head."""

    family = "timm"
    args_class = TimmArgs
    args: TimmArgs

    def __init__(self, config: DetectorConfig, *, pretrained: bool = False) -> None:
        super().__init__(config, pretrained=pretrained)
        import timm

        a = self.args
        self.model = timm.create_model(a.architecture, pretrained=False, num_classes=a.num_classes, **a.model_args)
        self.class_labels = list(a.label_names) if a.label_names else [str(i) for i in range(a.num_classes)]
        self.fake_index, self.real_index = resolve_fake_labels(
            self.class_labels, a.fake_labels, where=config.metadata.get("source") or config.name or a.architecture)

    @classmethod
    def from_source(cls, path: Path, *, where: str, fake_labels: list[str] | None = None,
                    **unknown: Any) -> TimmDetector:
        """A timm checkpoint folder: ``config.json`` (timm's) and ``model.safetensors``, loaded strictly."""
        if unknown:
            raise ConfigError(f"{where}: unknown option(s) {sorted(unknown)} for a timm model (valid: fake_labels)")
        cfg_path = path / "config.json"
        if path.is_file() or not cfg_path.is_file():
            raise CheckpointError(f"{where}: a timm checkpoint is a folder with config.json and {WEIGHTS_NAME}")
        try:
            cfg = json.loads(cfg_path.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise CheckpointError(f"{cfg_path}: invalid JSON ({exc})") from exc
        if not cfg.get("architecture"):
            raise CheckpointError(f"{where}: config.json has no 'architecture' (not a timm checkpoint)")
        if not (path / WEIGHTS_NAME).is_file():
            pickles = sorted(p.name for p in path.iterdir() if p.suffix in (".bin", ".pt", ".pth", ".ckpt"))
            raise CheckpointError(f"{where}: no {WEIGHTS_NAME}{f' (found {pickles})' if pickles else ''}; hubdet "
                                  "never loads pickle checkpoints")
        pcfg = cfg.get("pretrained_cfg") or {}
        num_classes = int(cfg.get("num_classes") or pcfg.get("num_classes") or 0)
        labels = cfg.get("label_names") or pcfg.get("label_names")
        model_args = {k: v for k, v in (cfg.get("model_args") or {}).items() if k not in ("num_classes", "pretrained")}
        config = DetectorConfig(
            family="timm",
            args={"architecture": cfg["architecture"], "num_classes": num_classes, "model_args": model_args,
                  "label_names": list(labels) if labels else None,
                  "fake_labels": list(fake_labels) if fake_labels else None},
            preprocess=preprocess_from_pretrained_cfg(pcfg),
            weights_source=f"timm checkpoint {where}",
            metadata={"source": where, "description": f"{where}: timm {cfg['architecture']}, "
                                                      f"{num_classes} output(s) {labels or ''}"},
        )
        detector = cls(config)
        detector.load_weights(path / WEIGHTS_NAME)
        return detector

    def source_files(self, path: Path) -> dict[str, Path]:
        """State files of the outside checkpoint besides its tensors (none: the weights are all tensors)."""
        return {}

    def forward(self, pixel_values: torch.Tensor, labels: torch.Tensor | None = None,
                boxes: torch.Tensor | None = None) -> DetectorOutput:
        return bce_output(fake_logit(self.model(pixel_values), self.fake_index, self.real_index), labels)

    def tensors_to_save(self) -> dict[str, torch.Tensor]:
        """timm's own key names (no ``model.`` prefix): the file is also a plain timm state dict."""
        return {k.removeprefix("model."): v for k, v in self.state_dict().items()}

    def card_details(self) -> dict[str, Any]:
        return {"backbone": f"`{self.args.architecture}` (timm)",
                "family_note": f"Outside timm classifier; classes {self.class_labels}, fake = "
                               f"{[self.class_labels[i] for i in self.fake_index]}."}


_HALF = [0.5, 0.5, 0.5]
register_detector(
    "timm_tiny.test", family="timm",
    args={"architecture": "test_vit", "num_classes": 2, "model_args": {"img_size": 32},
          "label_names": ["real", "fake"]},
    preprocess={"input_size": [32, 32], "mean": _HALF, "std": _HALF},
    description="Tiny timm test_vit with a two-class head (real, fake) for tests; random init.",
)
