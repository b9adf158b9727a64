"""Configs that travel with the weights in config.json: preprocessing, calibration, the detector itself."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hubdet._core.config import StrictConfig
from hubdet._core.errors import ConfigError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass
class PreprocessConfig(StrictConfig):
    """How an image becomes ``pixel_values``; stored in config.json and resolved from the detector.

    ``resize``: ``"resize"`` (squash to ``input_size``), ``"shorter_crop"`` (resize the shorter side to
    ``input_size / crop_pct`` then centre-crop), ``"center_crop"`` (crop ``input_size`` from the middle, padding if
    smaller), or ``"none"`` (keep the size; for full-resolution families that tile internally).
    """

    input_size: tuple[int, int] = (224, 224)  # (height, width)
    resize: str = "resize"
    interpolation: str = "bilinear"
    crop_pct: float = 1.0
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    def validate(self) -> None:
        if self.resize not in {"resize", "shorter_crop", "center_crop", "none"}:
            raise ConfigError(f"PreprocessConfig.resize: {self.resize!r} is not resize/shorter_crop/center_crop/none")
        if self.interpolation not in {"nearest", "bilinear", "bicubic", "lanczos"}:
            raise ConfigError(f"PreprocessConfig.interpolation: unknown {self.interpolation!r}")
        if not 0 < self.crop_pct <= 1:
            raise ConfigError("PreprocessConfig.crop_pct must be in (0, 1]")
        if min(self.input_size) < 8:
            raise ConfigError(f"PreprocessConfig.input_size too small: {self.input_size}")


@dataclass
class CalibrationConfig(StrictConfig):
    """Calibration and the decision rule. ``prob = sigmoid(logit / temperature + bias)`` (``temperature``: temperature
    scaling, bias 0; ``platt``: Platt scaling, both fitted).

    Verdict: ``fake`` if prob >= ``uncertain_high``, ``real`` if prob < ``uncertain_low``, else ``uncertain``.
    With an empty band (low == high == threshold) every image gets real or fake.
    """

    method: str = "none"  # "none" | "temperature" | "platt"
    temperature: float = 1.0
    bias: float = 0.0
    # how threshold / uncertain_low were chosen, e.g. "validation real FPR <= 0.05" (empty: the defaults)
    threshold_rule: str = ""
    threshold: float = 0.5
    uncertain_low: float = 0.35
    uncertain_high: float = 0.65
    fitted_on: str = ""  # e.g. "folder:genimage_sample/validation (n=120)"
    nll_before: float | None = None
    nll_after: float | None = None

    def validate(self) -> None:
        if self.temperature <= 0:
            raise ConfigError("CalibrationConfig.temperature must be > 0")
        if self.method not in ("none", "temperature", "platt"):
            raise ConfigError(f"CalibrationConfig.method: {self.method!r} is not none/temperature/platt")
        if not 0.0 <= self.uncertain_low <= self.threshold <= self.uncertain_high <= 1.0:
            raise ConfigError("CalibrationConfig needs 0 <= uncertain_low <= threshold <= uncertain_high <= 1")


@dataclass
class DetectorConfig(StrictConfig):
    """Everything needed to rebuild a detector: config.json of a checkpoint folder."""

    family: str
    name: str = ""  # the registry name it was created from, e.g. "classifier_vit_b16.in1k"
    args: dict[str, Any] = field(default_factory=dict)  # the family's own strict config (validated by the family)
    preprocess: PreprocessConfig = field(default_factory=PreprocessConfig)
    calibration: CalibrationConfig = field(default_factory=CalibrationConfig)
    labels: tuple[str, str] = ("real", "fake")
    weights_source: str = "random init"  # which pretrained weights the backbone started from
    metadata: dict[str, Any] = field(default_factory=dict)  # training data, eval results, hubdet version ...
    # backbones whose tensors are NOT in model.safetensors (frozen foundation models loaded by name): name -> the
    # SHA-256 of their tensors when the detector was fitted; a different digest at load time is an error
    external_weights: dict[str, str] = field(default_factory=dict)
    hubdet_version: str = ""
    format_version: int = 1
    # the manifest: content SHA-256 of each state file, written by save_pretrained and checked on load
    # (hubdet.models.integrity); None in checkpoints saved before manifests existed
    file_sha256: dict[str, str] | None = None
    # timm's own Hub format, written by families whose weights are a plain timm model (the linear-head
    # classifier), so that ``timm.create_model("local-dir:PATH" / "hf-hub:REPO", pretrained=True)`` loads the
    # folder without hubdet. Left out of config.json when ``architecture`` is empty.
    architecture: str = ""
    num_classes: int | None = None
    num_features: int | None = None
    global_pool: str | None = None
    label_names: list[str] | None = None
    model_args: dict[str, Any] = field(default_factory=dict)
    pretrained_cfg: dict[str, Any] = field(default_factory=dict)

    TIMM_KEYS = ("architecture", "num_classes", "num_features", "global_pool", "label_names", "model_args",
                 "pretrained_cfg")

    def to_dict(self) -> dict[str, Any]:
        """config.json content; the timm keys only when the weights are in timm's format."""
        data = super().to_dict()
        if not self.external_weights:
            data.pop("external_weights", None)
        if data.get("file_sha256") is None:
            data.pop("file_sha256", None)
        if not self.architecture:
            for key in self.TIMM_KEYS:
                data.pop(key, None)
        else:
            for key in ("global_pool", "label_names"):
                if data.get(key) is None:
                    data.pop(key, None)
        return data
