"""The detectors shipped in defaults/: they load strictly offline, predict, stay small, and carry honest cards."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from huggingface_hub import ModelCard
from PIL import Image

import hubdet
from hubdet.app.config import load_detector_specs

DEFAULTS = Path(__file__).resolve().parents[1] / "defaults"
NAMES = ["classifier", "mask", "copymove", "ensemble", "boxhead"]


def test_bundled_detectors_are_listed_and_small():
    specs = load_detector_specs(str(DEFAULTS / "detectors.yaml"))
    assert [s.name for s in specs] == NAMES
    files = {f.resolve() for f in DEFAULTS.rglob("*") if f.is_file()}
    assert sum(f.stat().st_size for f in files) < 25 * 1024 * 1024
    assert max(f.stat().st_size for f in files) < 10 * 1024 * 1024


@pytest.mark.parametrize("name", NAMES)
def test_bundled_detector_loads_and_predicts(name, tmp_path):
    det = hubdet.from_pretrained(DEFAULTS / name)
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
    import shutil

    copy = tmp_path / "ensemble"
    shutil.copytree(DEFAULTS / "ensemble", copy)
    weights = copy / "members" / "0" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF  # flip bits in the last tensor's bytes
    weights.write_bytes(bytes(data))
    with pytest.raises(Exception, match="sha|SHA|changed|digest"):
        hubdet.from_pretrained(copy)
