"""The ensemble: fusion maths, frozen members, offline save/load round trip, box from the box member."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file, save_file

from hubdet._core.errors import CheckpointError, ConfigError
from hubdet.models import create_detector, from_pretrained
from hubdet.models.config import PreprocessConfig
from hubdet.models.ensemble import EnsembleDetector, convert_pixels


def _noise(width: int, height: int, seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


@pytest.fixture(scope="module")
def member_dirs(tmp_path_factory):
    """Two saved tiny members (a classifier and a box head) with different temperatures."""
    root = tmp_path_factory.mktemp("members")
    torch.manual_seed(0)
    clf = create_detector("classifier_tiny.test")
    clf.config.calibration = clf.config.calibration.replace(temperature=2.0)
    box = create_detector("boxhead_tiny.test")
    return clf.save_pretrained(root / "clf", card=False), box.save_pretrained(root / "box", card=False)


def _member_logits(ens: EnsembleDetector, pixels: torch.Tensor) -> torch.Tensor:
    cols = []
    for m in ens.members:
        x = convert_pixels(pixels, ens.config.preprocess, m.config.preprocess)
        cols.append(m(x).logits / m.config.calibration.temperature)
    return torch.stack(cols, dim=1)


def test_mean_and_weighted_fusion_exact(member_dirs):
    paths = [str(p) for p in member_dirs]
    mean = create_detector("ensemble_tiny.test", members=paths, fusion="mean")
    weighted = create_detector("ensemble_tiny.test", members=paths, fusion="weighted", weights=[1.0, 3.0])
    logits = torch.tensor([[2.0, -1.0], [0.5, 4.0]])
    assert mean.fuse(logits).tolist() == pytest.approx([0.5, 2.25])
    assert weighted.fuse(logits).tolist() == pytest.approx([(2 - 3) / 4, (0.5 + 12) / 4])
    assert mean.tensors_to_save() == {} and weighted.tensors_to_save() == {}

    pixels = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        per_member = _member_logits(mean, pixels)
        assert torch.allclose(mean(pixels).logits, per_member.mean(1), atol=1e-5)
        assert torch.allclose(weighted(pixels).logits, per_member[:, 0] * 0.25 + per_member[:, 1] * 0.75, atol=1e-5)
    # the classifier member's temperature 2 halves its logit before fusion
    raw = mean.members[0](convert_pixels(pixels, mean.config.preprocess, mean.members[0].config.preprocess)).logits
    assert torch.allclose(per_member[:, 0], raw / 2, atol=1e-6)


def test_linear_fusion_trains_only_the_fusion():
    torch.manual_seed(0)
    ens = create_detector("ensemble_tiny.test")
    ens.train()
    assert all(not m.training for m in ens.members)
    assert [n for n, p in ens.named_parameters() if p.requires_grad] == ["fusion.weight", "fusion.bias"]
    out = ens(torch.randn(4, 3, 32, 32), labels=torch.tensor([0, 1, 1, 0]))
    out.loss.backward()
    assert ens.fusion.weight.grad.abs().sum() > 0 and ens.fusion.bias.grad is not None
    assert all(p.grad is None for p in ens.members.parameters())
    # initialised to the mean
    assert ens.fusion.weight.tolist() == [[0.5, 0.5]] and ens.fusion.bias.item() == 0.0
    assert list(ens.tensors_to_save()) == ["fusion.weight", "fusion.bias"]


def test_fit_fusion_learns_to_trust_the_informative_member():
    torch.manual_seed(0)
    ens = create_detector("ensemble_tiny.test")
    labels = torch.tensor([0, 1] * 20)
    logits = torch.stack([labels * 4.0 - 2.0 + torch.randn(40) * 0.5, torch.randn(40)], dim=1)
    metrics = ens.fit_fusion(logits, labels)
    assert metrics["bce_after"] < metrics["bce_before"]
    w = ens.fusion.weight.detach().flatten()
    assert w[0] > 5 * w[1].abs()


def test_convert_pixels():
    src = PreprocessConfig(input_size=(32, 32), mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
    dst = PreprocessConfig(input_size=(16, 16), mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
    x = torch.full((1, 3, 32, 32), 0.2)  # rgb 0.6 everywhere
    assert convert_pixels(x, src, src) is x
    y = convert_pixels(x, src, dst)
    assert y.shape == (1, 3, 16, 16)
    expected = (0.6 - torch.tensor(dst.mean)) / torch.tensor(dst.std)
    assert torch.allclose(y[0, :, 5, 5], expected, atol=1e-5)
    crop = convert_pixels(torch.randn(2, 3, 40, 24), src, dst.replace(resize="center_crop"))
    assert crop.shape == (2, 3, 16, 16)
    shorter = convert_pixels(torch.randn(2, 3, 40, 24), src, dst.replace(resize="shorter_crop"))
    assert shorter.shape == (2, 3, 16, 16)


def test_box_comes_from_the_box_member(member_dirs):
    ens = create_detector("ensemble_tiny.test", members=[str(p) for p in member_dirs])
    assert ens.box_member == 1 and ens.supports_boxes
    image = _noise(100, 80)
    (pred,) = ens.predict(image)
    (box_pred,) = ens.members[1].predict(image)
    assert pred.box == box_pred.box and pred.box_score == box_pred.box_score
    assert [m["name"] for m in pred.extra["members"]] == ["classifier_tiny.test", "boxhead_tiny.test"]
    # predict fuses each member's own predict-path logit (the box head at full resolution)
    (clf_pred,) = ens.members[0].predict(image)
    expected = ens.fuse(torch.tensor([[clf_pred.logit / 2.0, box_pred.logit]]))
    assert pred.logit == pytest.approx(float(expected.detach()), abs=1e-5)
    out = ens(torch.randn(2, 3, 32, 32))
    assert out.boxes.shape == (2, 4)


@pytest.mark.parametrize("winner", [0, 1])
def test_box_from_the_most_confident_box_member(tmp_path, winner):
    dirs = []
    for i in range(2):
        torch.manual_seed(i)
        box = create_detector("boxhead_tiny.test")
        with torch.no_grad():  # the winner's presence logit is far above the other's on every image
            box.presence.bias.fill_(50.0 if i == winner else -50.0)
        dirs.append(box.save_pretrained(tmp_path / f"box{i}", card=False))
    ens = create_detector("ensemble_tiny.test", members=[str(p) for p in dirs], fusion="mean",
                          box_from="most_confident")
    assert ens.box_members == [0, 1]
    images = [_noise(100, 80, seed=1), _noise(64, 90, seed=2)]
    preds = ens.predict(images)
    own = ens.members[winner].predict(images)
    other = ens.members[1 - winner].predict(images)
    for pred, mine, theirs in zip(preds, own, other, strict=True):
        assert pred.box == mine.box and pred.box_score == mine.box_score and mine.box != theirs.box
        assert pred.extra["box_from"] == "boxhead_tiny.test"
    pixels = torch.randn(3, 3, 32, 32)
    out = ens(pixels)
    expected = ens.members[winner](convert_pixels(pixels, ens.config.preprocess, ens.members[winner].config.preprocess))
    assert torch.allclose(out.boxes, expected.boxes.float())
    with pytest.raises(ConfigError, match="box_member"):
        create_detector("ensemble_tiny.test", members=[str(p) for p in dirs], box_from="most_confident", box_member=0)
    with pytest.raises(ConfigError, match="box_from"):
        create_detector("ensemble_tiny.test", members=[str(p) for p in dirs], box_from="largest")


@pytest.mark.parametrize("box_from", ["member", "most_confident"])
def test_predict_with_reuses_member_predictions_exactly(member_dirs, box_from):
    paths = [str(p) for p in member_dirs]
    ens = create_detector("ensemble_tiny.test", members=paths, box_from=box_from)
    with torch.no_grad():
        ens.fusion.weight.copy_(torch.tensor([[0.7, -1.3]]))
        ens.fusion.bias.fill_(0.2)
    assert ens.member_sha256() == [from_pretrained(p).provenance.sha256 for p in member_dirs]
    alone = [from_pretrained(p) for p in paths]  # the same checkpoints loaded on their own
    images = [_noise(100, 80, seed=3), _noise(64, 90, seed=4), _noise(50, 50, seed=5)]
    expected = [p.to_dict() for p in ens.predict(images, batch_size=2)]
    calls = [0, 0]
    for k, member in enumerate(ens.members):
        def counted(imgs, _k=k, _run=member._predict_images):
            calls[_k] += 1
            return _run(imgs)
        member._predict_images = counted
    given = {k: a.predict(images, batch_size=2) for k, a in enumerate(alone)}  # same batches: same floats
    for known in ({0: given[0]}, {1: given[1]}, given):
        calls[:] = [0, 0]
        got = ens.predict_with(images, known, batch_size=2)
        assert [p.to_dict() for p in got] == expected
        assert calls == [0 if k in known else 2 for k in range(2)]  # two chunks of two and one image
    with pytest.raises(ConfigError, match="member index"):
        ens.predict_with(images, {2: given[0]})
    with pytest.raises(ConfigError, match="predictions for"):
        ens.predict_with(images, {0: given[0][:1]})
    with pytest.raises(ConfigError, match="fuse_predictions"):
        ens.fuse_predictions(images, [given[0]])
    assert create_detector("ensemble_tiny.test").member_sha256() == [None, None]  # registry members: unknown


def test_no_box_without_a_box_member(member_dirs):
    ens = create_detector("ensemble_tiny.test", members=[str(member_dirs[0])] * 2, fusion="mean")
    assert not ens.supports_boxes
    (pred,) = ens.predict(_noise(40, 40))
    assert pred.box is None
    with pytest.raises(ConfigError, match="box_member"):
        create_detector("ensemble_tiny.test", members=[str(member_dirs[0])] * 2, fusion="mean", box_member=0)


def test_save_load_round_trip_offline(tmp_path):
    torch.manual_seed(0)
    ens = create_detector("ensemble_tiny.test")
    with torch.no_grad():
        ens.fusion.weight.copy_(torch.tensor([[0.3, 1.7]]))
        ens.fusion.bias.fill_(-0.4)
    ens.eval()
    pixels = torch.randn(2, 3, 32, 32)
    image = _noise(90, 70)
    ref, (ref_pred,) = ens(pixels), ens.predict(image)
    folder = ens.save_pretrained(tmp_path / "ens", card=False)
    cfg = json.loads((folder / "config.json").read_text())
    assert cfg["args"]["members"] == ["members/0", "members/1"]
    assert cfg["metadata"]["member_sources"] == ["registry:classifier_tiny.test", "registry:boxhead_tiny.test"]
    assert (folder / "members" / "0" / "model.safetensors").is_file()

    loaded = from_pretrained(folder)
    out, (pred,) = loaded(pixels), loaded.predict(image)
    assert torch.allclose(ref.logits, out.logits, atol=1e-6)
    assert pred.prob == pytest.approx(ref_pred.prob, abs=1e-6) and pred.box == pytest.approx(ref_pred.box)
    # the folder is self-contained: moving it keeps it loadable
    moved = folder.rename(tmp_path / "moved")
    assert torch.allclose(from_pretrained(moved)(pixels).logits, ref.logits, atol=1e-6)


def test_tampered_member_is_refused(tmp_path):
    torch.manual_seed(0)
    folder = create_detector("ensemble_tiny.test").save_pretrained(tmp_path / "ens", card=False)
    weights = folder / "members" / "1" / "model.safetensors"
    state = load_file(str(weights))
    key = sorted(state)[0]
    state[key] = state[key] + 1.0  # same names and shapes: only the digest can tell
    save_file(state, str(weights))
    with pytest.raises(CheckpointError, match="SHA-256"):
        from_pretrained(folder)


def test_members_outside_the_folder_are_refused(tmp_path, member_dirs):
    torch.manual_seed(0)
    folder = create_detector("ensemble_tiny.test").save_pretrained(tmp_path / "ens", card=False)
    cfg = json.loads((folder / "config.json").read_text())
    cfg["args"]["members"][0] = str(member_dirs[0])
    cfg["args"].pop("member_sha256")
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="inside the checkpoint"):
        from_pretrained(folder)


def test_tampered_fusion_tensors_are_refused(tmp_path):
    torch.manual_seed(0)
    folder = create_detector("ensemble_tiny.test").save_pretrained(tmp_path / "ens", card=False)
    save_file({"fusion.weight": torch.zeros(1, 3), "fusion.bias": torch.zeros(1)}, str(folder / "model.safetensors"))
    with pytest.raises(CheckpointError, match="model.safetensors: SHA-256 mismatch"):
        from_pretrained(folder)
    with pytest.raises(CheckpointError, match="fusion.weight"):  # the strict loader, without the manifest check
        from_pretrained(folder, verify=False)


@pytest.mark.parametrize(
    "args, match",
    [
        ({"members": []}, "members is empty"),
        ({"fusion": "weighted"}, "weights"),
        ({"fusion": "mean", "weights": [1.0, 1.0]}, "only used"),
        ({"fusion": "weighted", "weights": [-1.0, 2.0]}, "non-negative"),
        ({"fusion": "vote"}, "fusion"),
    ],
)
def test_bad_configs_raise(args, match):
    with pytest.raises(ConfigError, match=match):
        create_detector("ensemble_tiny.test", **args)


def test_training_path_follows_the_fusion(member_dirs):
    paths = [str(p) for p in member_dirs]
    torch.manual_seed(0)
    linear = create_detector("ensemble_tiny.test", members=paths)
    mean = create_detector("ensemble_tiny.test", members=paths, fusion="mean")
    assert linear.trains_with_gradients and not mean.trains_with_gradients
    pixels = torch.randn(6, 3, 32, 32)
    feats = mean.extract_features(pixels)
    assert feats.shape == (6, 2) and not feats.requires_grad
    assert torch.allclose(mean(pixels).logits, feats.mean(1), atol=1e-6)
    labels = torch.tensor([0, 1] * 3)
    metrics = mean.fit_head(feats, labels)
    assert metrics["train_bce"] == pytest.approx(
        float(torch.nn.functional.binary_cross_entropy_with_logits(feats.mean(1), labels.float())), rel=1e-5
    )
    before = linear.fusion.weight.detach().clone()
    metrics = linear.fit_head(linear.extract_features(pixels), labels)
    assert metrics["bce_after"] <= metrics["bce_before"]
    assert not torch.equal(before, linear.fusion.weight.detach())


def test_a_swapped_probe_head_in_a_member_is_refused(tmp_path):
    """The member digest covers every state file (weights AND e.g. a probe's skops head), not only the weights."""
    from hubdet.models.integrity import write_manifest
    from hubdet.models.probe import HEAD_NAME

    pixels = torch.randn(8, 3, 32, 32)
    heads = []
    for i, labels in enumerate(([0, 1] * 4, [1, 1, 0, 0] * 2)):
        torch.manual_seed(0)  # the same frozen weights, two different heads
        probe = create_detector("probe_tiny.test", classifier="linear_probe")
        probe.fit_head(probe.extract_features(pixels), torch.tensor(labels))
        heads.append(probe.save_pretrained(tmp_path / f"probe{i}", card=False))
    w0, w1 = load_file(heads[0] / "model.safetensors"), load_file(heads[1] / "model.safetensors")
    assert w0.keys() == w1.keys() and all(torch.equal(w0[k], w1[k]) for k in w0)
    assert from_pretrained(heads[0]).provenance.sha256 != from_pretrained(heads[1]).provenance.sha256
    ens = create_detector("ensemble_tiny.test", members=[str(heads[0]), str(heads[0])], fusion="mean")
    saved = ens.save_pretrained(tmp_path / "ens", card=False)
    from_pretrained(saved)  # loads as saved
    (saved / "members" / "1" / HEAD_NAME).write_bytes((heads[1] / HEAD_NAME).read_bytes())
    with pytest.raises(CheckpointError, match=f"members/1/{HEAD_NAME}: SHA-256 mismatch"):  # the member's manifest
        from_pretrained(saved)
    write_manifest(saved / "members" / "1")  # the member re-signed: the ensemble's record still refuses it
    with pytest.raises(CheckpointError, match="member 1 differs .*expected weights SHA-256"):
        from_pretrained(saved)
    assert from_pretrained(saved, verify=False).members[1].provenance.sha256 == \
        from_pretrained(heads[1]).provenance.sha256
