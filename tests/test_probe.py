"""The probe: every classical classifier fits and round-trips through skops; reductions; tampered heads refused."""

from __future__ import annotations

import numpy as np
import pytest
import skops.io as sio
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import load_file

from hubdet._core.errors import CheckpointError, ConfigError, NotFittedError
from hubdet.models import create_detector, from_pretrained
from hubdet.models.probe import CLASSIFIERS, HEAD_NAME, ProbeDetector

N_FEATURES = 64  # timm test_vit
FAST = {"random_forest": {"n_estimators": 5}, "bagging": {"n_estimators": 3}, "gradient_boosting": {"n_estimators": 5}}


def _features(n: int = 40, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    labels = torch.tensor([0, 1] * (n // 2))
    feats = torch.randn(n, N_FEATURES, generator=g)
    feats[labels == 1, :8] += 1.5  # separable in a few directions
    return feats, labels


def _probe(**args) -> ProbeDetector:
    torch.manual_seed(0)
    return create_detector("probe_tiny.test", **args)


@pytest.mark.parametrize("classifier", CLASSIFIERS)
def test_every_classifier_fits_and_round_trips(classifier, tmp_path):
    probe = _probe(classifier=classifier, classifier_kwargs=FAST.get(classifier, {}))
    feats, labels = _features()
    metrics = probe.fit_head(feats, labels)
    assert metrics["n_samples"] == 40 and metrics["n_features"] == N_FEATURES
    assert metrics["train_accuracy"] > 0.6  # the classes are separable in 8 dimensions
    logits = probe.head_logits(feats)
    assert logits.shape == (40,) and torch.isfinite(logits).all()
    assert logits.abs().max() <= probe.args.max_abs_logit
    folder = probe.save_pretrained(tmp_path / classifier, card=False)
    assert (folder / HEAD_NAME).is_file()
    assert not list(folder.glob("*.pkl")) and not list(folder.glob("*.joblib"))
    loaded = from_pretrained(folder)
    assert torch.allclose(loaded.head_logits(feats), logits, atol=1e-6)


def test_pca_reduction(tmp_path):
    probe = _probe(classifier="linear_probe", reduction="pca", n_components=5)
    feats, labels = _features()
    metrics = probe.fit_head(feats, labels)
    assert metrics["n_reduced"] == 5
    assert probe._head.named_steps["pca"].n_components_ == 5
    loaded = from_pretrained(probe.save_pretrained(tmp_path / "pca", card=False))
    assert torch.allclose(loaded.head_logits(feats), probe.head_logits(feats), atol=1e-6)
    with pytest.raises(ConfigError, match="n_components"):
        _probe(reduction="pca", n_components=500).fit_head(feats, labels)


def test_autoencoder_reduction(tmp_path):
    probe = _probe(classifier="lda", reduction="autoencoder", n_components=4, autoencoder_epochs=30)
    feats, labels = _features()
    metrics = probe.fit_head(feats, labels)
    assert metrics["n_reduced"] == 4
    assert metrics["autoencoder_mse"] < 1.0  # standardised features have variance 1: the bottleneck learned something
    assert probe._head.named_steps["clf"].n_features_in_ == 4
    folder = probe.save_pretrained(tmp_path / "ae", card=False)
    tensors = load_file(str(folder / "model.safetensors"))
    assert "autoencoder.encoder.0.weight" in tensors and "feature_mean" in tensors
    assert float(tensors["feature_std"].mean()) != 1.0
    loaded = from_pretrained(folder)
    assert torch.allclose(loaded.head_logits(feats), probe.head_logits(feats), atol=1e-5)


def test_autoencoder_fit_is_reproducible():
    feats, labels = _features()
    a = _probe(reduction="autoencoder", n_components=4, autoencoder_epochs=5)
    b = _probe(reduction="autoencoder", n_components=4, autoencoder_epochs=5)
    a.fit_head(feats, labels)
    b.fit_head(feats, labels)
    assert torch.allclose(a.head_logits(feats), b.head_logits(feats), atol=1e-5)


def test_unfitted_probe_raises_clearly(tmp_path):
    probe = _probe()
    assert not probe.trains_with_gradients and not probe.is_fitted
    with pytest.raises(NotFittedError, match="fit_head"):
        probe.predict(Image.new("RGB", (32, 32)))
    with pytest.raises(NotFittedError):
        probe(torch.randn(1, 3, 32, 32))
    # an unfitted probe saves and loads as unfitted
    loaded = from_pretrained(probe.save_pretrained(tmp_path / "unfitted", card=False))
    assert not loaded.is_fitted


def test_frozen_features_forward_and_predict():
    probe = _probe(classifier="linear_probe")
    assert all(not p.requires_grad for p in probe.backbone.parameters())
    probe.train()
    assert not probe.backbone.training
    pixels = torch.randn(12, 3, 32, 32)
    feats = probe.extract_features(pixels)
    assert feats.shape == (12, N_FEATURES) and not feats.requires_grad
    labels = torch.tensor([0, 1] * 6)
    probe.fit_head(feats, labels)
    out = probe(pixels, labels=labels)
    assert torch.allclose(out.logits, probe.head_logits(feats), atol=1e-5)
    assert out.loss.item() == pytest.approx(F.binary_cross_entropy_with_logits(out.logits, labels.float()).item())
    assert not out.loss.requires_grad
    preds = probe.predict([Image.new("RGB", (48, 40), (200, 10, 10)), Image.new("RGB", (20, 20))])
    assert len(preds) == 2 and all(0 <= p.prob <= 1 and p.box is None for p in preds)


def test_fit_head_input_checks():
    probe = _probe()
    feats, _ = _features()
    with pytest.raises(ConfigError, match="both classes"):
        probe.fit_head(feats, torch.zeros(40))
    with pytest.raises(ConfigError, match="labels"):
        probe.fit_head(feats, torch.zeros(3))
    with pytest.raises(ConfigError, match=r"\[N, 64\]"):
        probe.fit_head(feats[:, :10], torch.tensor([0, 1] * 20))


def test_bad_classifier_name():
    with pytest.raises(ConfigError, match="classifier"):
        _probe(classifier="xgboost")


class Evil:
    """Not a scikit-learn type: skops reports it as untrusted."""


@pytest.fixture()
def fitted_folder(tmp_path):
    probe = _probe(classifier="lda")
    probe.fit_head(*_features())
    return probe.save_pretrained(tmp_path / "probe", card=False), probe


def test_untrusted_type_in_skops_is_refused(fitted_folder):
    folder, probe = fitted_folder
    probe._head.evil = Evil()  # an extra attribute is serialised with the pipeline
    sio.dump(probe._head, folder / HEAD_NAME)
    with pytest.raises(CheckpointError, match="untrusted"):
        from_pretrained(folder)


def test_corrupt_skops_is_refused(fitted_folder):
    folder, _ = fitted_folder
    (folder / HEAD_NAME).write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(CheckpointError, match="skops"):
        from_pretrained(folder)


def test_other_classifier_in_skops_is_refused(fitted_folder):
    folder, _ = fitted_folder
    other = _probe(classifier="naive_bayes")
    other.fit_head(*_features())
    sio.dump(other._head, folder / HEAD_NAME)
    with pytest.raises(CheckpointError, match=f"{HEAD_NAME}: SHA-256 mismatch"):  # the manifest check first
        from_pretrained(folder)
    with pytest.raises(CheckpointError, match="LinearDiscriminantAnalysis"):  # the type check, verify or not
        from_pretrained(folder, verify=False)


def test_missing_skops_is_refused(fitted_folder):
    folder, _ = fitted_folder
    (folder / HEAD_NAME).unlink()
    with pytest.raises(CheckpointError, match="missing"):
        from_pretrained(folder)


def test_probe_never_pickles(fitted_folder):
    folder, _ = fitted_folder
    data = (folder / HEAD_NAME).read_bytes()
    assert data[:2] == b"PK"  # a skops zip archive
    assert np.asarray(sorted(sio.get_untrusted_types(file=folder / HEAD_NAME))).size == 0


def test_extra_backbones_concatenate_renormalised_features(tmp_path):
    probe = _probe(classifier="linear_probe", extra_backbones=["test_efficientnet"])
    extra = probe.extra_backbones[0]
    assert all(not p.requires_grad for p in extra.parameters())
    probe.train()
    assert not extra.training
    pixels = torch.randn(6, 3, 32, 32)
    feats = probe.extract_features(pixels)
    assert feats.shape == (6, N_FEATURES + extra.num_features) == (6, probe.num_features)
    assert torch.allclose(feats[:, :N_FEATURES], probe.backbone(pixels))
    # the extra backbone sees the pixels mapped from the probe's mean/std (0.5) to its own (ImageNet)
    raw = pixels * 0.5 + 0.5
    own = (raw - torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)) / torch.tensor([0.229, 0.224, 0.225]).view(
        1, 3, 1, 1)
    assert torch.allclose(feats[:, N_FEATURES:], extra(own), atol=1e-5)
    probe.fit_head(feats, torch.tensor([0, 1] * 3))
    probe.save_pretrained(tmp_path / "p")
    loaded = from_pretrained(tmp_path / "p")
    assert len(loaded.extra_backbones) == 1
    assert torch.allclose(loaded(pixels).logits, probe(pixels).logits, atol=1e-5)
