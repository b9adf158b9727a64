"""Every family through the same API, parametrized over the registry's tiny variants."""

from __future__ import annotations

import json
import re

import pytest
import torch
from safetensors.torch import load_file, save_file

from hubdet._core.errors import CheckpointError, ConfigError, DuplicateNameError, UnknownNameError
from hubdet.models import (
    DETECTORS,
    FAMILIES,
    create_detector,
    from_pretrained,
    list_detectors,
    register_detector,
    register_family,
)
from hubdet.models.base import WEIGHTS_NAME
from hubdet.models.integrity import IntegrityError, weights_sha256

TINY = list_detectors("*_tiny.*")


def _inputs(det, n: int = 4, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    h, w = det.config.preprocess.input_size
    x = torch.randn(n, 3, h, w, generator=g)
    labels = torch.tensor([i % 2 for i in range(n)], dtype=torch.float32)
    boxes = torch.tensor([[0.1, 0.2, 0.6, 0.7]] * n) * labels[:, None]
    return x, labels, boxes


def _ready(name: str):
    """A tiny detector, fitted first when it is not trained with gradients (the probe)."""
    torch.manual_seed(0)
    det = create_detector(name)
    if not det.trains_with_gradients:
        x, labels, _ = _inputs(det, n=16, seed=1)
        det.fit_head(det.extract_features(x), labels)
    return det


def test_all_families_have_a_tiny_variant():
    assert "classifier_tiny.test" in TINY
    families = {DETECTORS.get(n)().family for n in TINY}
    assert "classifier" in families
    # every registered family has a tiny variant, so tests over TINY reach all of them
    assert families == set(FAMILIES)


@pytest.mark.parametrize("name", TINY)
def test_forward_backward_and_loss_only_with_labels(name):
    det = _ready(name)
    x, labels, boxes = _inputs(det)
    det.train()
    out = det(x)
    assert out.logits.shape == (4,) and out.probs.shape == (4,)
    assert torch.allclose(out.probs, torch.sigmoid(out.logits))
    assert out.loss is None
    out = det(x, labels=labels, boxes=boxes)
    assert out.loss is not None and out.loss.ndim == 0 and torch.isfinite(out.loss)
    if out.boxes is not None:
        assert out.boxes.shape == (4, 4)
    if det.trains_with_gradients:
        out.loss.backward()
        grads = [p.grad for p in det.parameters() if p.requires_grad]
        assert grads and any(g is not None and g.abs().sum() > 0 for g in grads)


@pytest.mark.parametrize("name", TINY)
def test_save_load_identical_outputs(name, tmp_path):
    det = _ready(name).eval()
    x, _, _ = _inputs(det, seed=2)
    with torch.no_grad():
        before = det(x)
    det.save_pretrained(tmp_path / "ckpt")
    assert {"model.safetensors", "config.json", "README.md"} <= {p.name for p in (tmp_path / "ckpt").iterdir()}
    assert not list((tmp_path / "ckpt").glob("*.bin")) and not list((tmp_path / "ckpt").glob("*.pt*"))
    loaded = from_pretrained(tmp_path / "ckpt")
    assert type(loaded) is type(det) and loaded.config.name == name
    with torch.no_grad():
        after = loaded(x)
    torch.testing.assert_close(after.logits, before.logits, rtol=0, atol=1e-6)
    if before.boxes is not None:
        torch.testing.assert_close(after.boxes, before.boxes, rtol=0, atol=1e-6)


def _save(name: str, folder):
    det = _ready(name)
    det.save_pretrained(folder, card=False)
    return load_file(str(folder / WEIGHTS_NAME))


def _refused_by_manifest(folder) -> None:
    """The manifest check names the weights file and both digests."""
    with pytest.raises(IntegrityError) as err:
        from_pretrained(folder)
    message = str(err.value)
    assert WEIGHTS_NAME in message and len(re.findall(r"\b[0-9a-f]{64}\b", message)) == 2


@pytest.mark.parametrize("name", TINY)
def test_tampered_checkpoint_renamed_tensor(name, tmp_path):
    state = _save(name, tmp_path)
    key = sorted(state)[0]
    state[key + "_renamed"] = state.pop(key)
    save_file(state, str(tmp_path / WEIGHTS_NAME))
    _refused_by_manifest(tmp_path)
    with pytest.raises(CheckpointError) as err:  # without the manifest check, the strict loader still refuses it
        from_pretrained(tmp_path, verify=False)
    assert key in str(err.value) and f"{key}_renamed" in str(err.value)


@pytest.mark.parametrize("name", TINY)
def test_tampered_checkpoint_changed_shape(name, tmp_path):
    state = _save(name, tmp_path)
    key = next((k for k in sorted(state) if state[k].ndim >= 1 and state[k].numel() > 1), sorted(state)[0])
    # drop an element (or, for a checkpoint of scalars only - a probe whose backbone loads by name - add one)
    state[key] = state[key].flatten()[:-1].clone() if state[key].numel() > 1 else state[key].flatten().repeat(2)
    save_file(state, str(tmp_path / WEIGHTS_NAME))
    _refused_by_manifest(tmp_path)
    with pytest.raises(CheckpointError, match="shape") as err:
        from_pretrained(tmp_path, verify=False)
    assert key in str(err.value)


@pytest.mark.parametrize("name", TINY)
def test_flipped_weight_bytes_are_refused_unless_verify_is_off(name, tmp_path):
    """Bytes flipped inside a tensor (the file still parses): refused naming the file and both digests; loading
    with ``verify=False`` (a deliberate edit) works and gives other outputs."""
    _save(name, tmp_path)
    det = from_pretrained(tmp_path)
    assert det.provenance.verified and WEIGHTS_NAME in det.provenance.files
    # frozen backbones loaded by name (external_weights) and ensemble members count as state
    parts = {**det.config.external_weights, **det.component_sha256()}
    assert det.provenance.sha256 == weights_sha256(det.provenance.files, parts)
    data = bytearray((tmp_path / WEIGHTS_NAME).read_bytes())
    start = 8 + int.from_bytes(data[:8], "little")  # the tensor data follows the JSON header
    for pos in range(len(data) - 1, max(start, len(data) - 64) - 1, -4):
        data[pos] ^= 0x40  # one exponent bit of (up to) 16 float32s at the end of the data
    (tmp_path / WEIGHTS_NAME).write_bytes(bytes(data))
    _refused_by_manifest(tmp_path)
    edited = from_pretrained(tmp_path, verify=False)
    assert edited.provenance.sha256 != det.provenance.sha256 and not edited.provenance.verified


@pytest.mark.parametrize("name", TINY)
def test_tampered_checkpoint_truncated_file(name, tmp_path):
    _save(name, tmp_path)
    data = (tmp_path / WEIGHTS_NAME).read_bytes()
    (tmp_path / WEIGHTS_NAME).write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="model.safetensors"):
        from_pretrained(tmp_path)


def test_pickle_checkpoints_are_never_loaded(tmp_path):
    det = create_detector("classifier_tiny.test")
    det.save_pretrained(tmp_path, card=False)
    (tmp_path / WEIGHTS_NAME).unlink()
    torch.save(det.state_dict(), tmp_path / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match="pickle"):
        from_pretrained(tmp_path)


def test_config_of_another_family_is_refused(tmp_path):
    create_detector("classifier_tiny.test").save_pretrained(tmp_path, card=False)
    cfg = json.loads((tmp_path / "config.json").read_text())
    cfg["args"]["not_an_arg"] = 1
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ConfigError, match="not_an_arg"):
        from_pretrained(tmp_path)


def test_duplicate_registration_raises():
    with pytest.raises(DuplicateNameError, match="classifier_tiny.test"):
        register_detector("classifier_tiny.test", family="classifier")
    from hubdet.models.classifier import Classifier

    with pytest.raises(DuplicateNameError, match="classifier"):
        register_family(Classifier)


def test_unknown_name_suggests_close_matches():
    with pytest.raises(UnknownNameError) as err:
        create_detector("classifier_tiny.tset")
    assert "classifier_tiny.test" in str(err.value)
    with pytest.raises(ConfigError, match="arch.tag"):
        register_detector("NoTag", family="classifier")


def test_strict_args_unknown_key_raises():
    with pytest.raises(ConfigError) as err:
        create_detector("classifier_tiny.test", drop_rat=0.1)
    assert "drop_rat" in str(err.value) and "drop_rate" in str(err.value)  # suggests the close key
    with pytest.raises(ConfigError):
        create_detector("classifier_tiny.test", drop_rate="high")


def test_list_detectors_filters():
    assert set(list_detectors("classifier_*")) == set(list_detectors(family="classifier"))
    assert all(n.count(".") == 1 for n in list_detectors())
