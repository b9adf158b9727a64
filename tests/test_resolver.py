"""The one resolver: spec grammar, registry specs, provenance records and what training starts from."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import torch

import hubdet
from hubdet.models.integrity import content_sha256, weights_sha256
from hubdet.models.resolver import (
    SpecError,
    check_spec,
    default_name,
    detector_for_training,
    load_detector,
    weights_record,
)


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    return hubdet.create_detector("classifier_tiny.test").save_pretrained(tmp_path_factory.mktemp("r") / "clf")


def test_registry_specs_are_random_weights_and_say_so(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        det = load_detector("registry:classifier_tiny.test", drop_rate=0.1)
    assert "UNTRAINED" in caplog.text and det.args.drop_rate == 0.1
    record = weights_record(det)
    assert record.kind == "registry" and record.sha256 == record.files["model.safetensors"]
    with pytest.raises(FileNotFoundError, match="registry name"):
        hubdet.from_pretrained("classifier_tiny.test")


def test_folder_provenance_and_changed_weights(saved: Path) -> None:
    det = load_detector(str(saved))
    prov = weights_record(det)
    assert prov.kind == "folder" and prov.format == "hubdet" and prov.verified
    assert prov.sha256 == content_sha256(saved / "model.safetensors")
    assert load_detector(det) is det  # a loaded detector passes through
    with torch.no_grad():  # weights changed in memory: the record describes the new ones, as an object
        next(det.parameters()).add_(1.0)
    changed = weights_record(det)
    assert changed.kind == "object" and changed.sha256 != prov.sha256
    with pytest.raises(Exception, match="takes no overrides"):
        load_detector(str(saved), drop_rate=0.2)


def test_spec_errors_say_what_is_expected(tmp_path: Path) -> None:
    assert check_spec("org/name@v1") is None and check_spec("classifier_tiny.test") is None
    assert "not found" in check_spec(str(tmp_path / "missing"))
    assert "not a registered detector" in check_spec("registry:nope_tiny.test")
    with pytest.raises(SpecError, match="a revision only applies to Hub repo ids"):
        load_detector(str(tmp_path), revision="abc")
    (tmp_path / "notes.txt").write_text("hi")
    with pytest.raises(SpecError, match="not an image classifier hubdet can load"):
        load_detector(str(tmp_path))
    assert default_name("hf-hub:org/some-model@abc") == "some-model" and default_name("onnx:/x/y.onnx") == "y"


def test_training_starts_from_a_resolved_checkpoint(saved: Path, tmp_path: Path) -> None:
    det = detector_for_training(str(saved), family="classifier")
    assert det.training and det.provenance is None
    init = det.config.metadata["init_from"]
    assert init["sha256"] == content_sha256(saved / "model.safetensors") and init["format"] == "hubdet"
    out = det.save_pretrained(tmp_path / "trained")
    card = (out / "README.md").read_text()
    assert f"trained from `{saved}`" in card and init["sha256"] in card
    manifest = json.loads((out / "config.json").read_text())["file_sha256"]
    assert f"SHA-256 `{weights_sha256(manifest)}`" in card
    with pytest.raises(Exception, match="not 'boxhead'"):
        detector_for_training(str(saved), family="boxhead")
