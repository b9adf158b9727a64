"""``hubdet predict`` and ``hubdet models list``."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from hubdet.cli import main
from hubdet.models import create_detector


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("model")
    create_detector("classifier_tiny.test").save_pretrained(folder, card=False)
    return folder


@pytest.fixture
def images(tmp_path):
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, size=(40, 56, 3), dtype=np.uint8)
    paths = {"jpeg": tmp_path / "photo.jpg", "alpha": tmp_path / "alpha.png", "gray": tmp_path / "gray.png"}
    Image.fromarray(rgb).save(paths["jpeg"], quality=90)
    rgba = np.dstack([rgb, np.linspace(0, 255, 56, dtype=np.uint8)[None, :].repeat(40, 0)])
    Image.fromarray(rgba, mode="RGBA").save(paths["alpha"])
    Image.fromarray(rgb[..., 0], mode="L").save(paths["gray"])
    paths["bad"] = tmp_path / "broken.jpg"
    paths["bad"].write_bytes(paths["jpeg"].read_bytes()[:300])  # a truncated JPEG
    return paths


def test_predict_json_on_jpeg_alpha_png_and_grayscale(model_dir, images, capsys):
    argv = ["predict", str(images["jpeg"]), str(images["alpha"]), str(images["gray"]), "--model", str(model_dir),
            "--json", "--batch-size", "2"]
    assert main(argv) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["file"] for r in rows] == [str(images[k]) for k in ("jpeg", "alpha", "gray")]
    for r in rows:
        assert 0.0 < r["prob_fake"] < 1.0 and r["verdict"] in {"real", "fake", "uncertain"}
        assert (r["width"], r["height"]) == (56, 40) and r["box"] is None and "logit" in r
    assert len({round(r["prob_fake"], 6) for r in rows}) == 3  # three different images, three different scores


def test_bad_file_gets_an_error_line_and_nonzero_exit(model_dir, images, capsys):
    argv = ["predict", str(images["jpeg"]), str(images["bad"]), str(images["gray"]), "--model", str(model_dir)]
    assert main(argv) == 1
    out, err = capsys.readouterr()
    lines = out.strip().splitlines()
    assert lines[0].split()[:3] == ["file", "prob_fake", "verdict"]
    assert len(lines) == 4  # header + three files, in input order
    assert lines[1].startswith(str(images["jpeg"])) and lines[3].startswith(str(images["gray"]))
    assert str(images["bad"]) in lines[2] and "error" in lines[2]
    assert str(images["bad"]) in err and "error" in err


def test_predict_on_a_folder_json_lists_errors(model_dir, images, capsys):
    assert main(["predict", str(images["jpeg"].parent), "--model", str(model_dir), "--json"]) == 1
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 4
    assert [r for r in rows if "error" in r][0]["file"] == str(images["bad"])


def test_missing_model_is_a_clear_error(images, tmp_path, capsys):
    assert main(["predict", str(images["jpeg"]), "--model", str(tmp_path / "nope")]) == 2
    assert "nope" in capsys.readouterr().err


def test_models_list(capsys):
    assert main(["models", "list", "classifier_*", "--json"]) == 0
    entries = json.loads(capsys.readouterr().out)
    names = [e["name"] for e in entries]
    assert "classifier_tiny.test" in names and all(e["family"] == "classifier" for e in entries)
    assert main(["models", "list"]) == 0
    assert "classifier_vit_b16.in1k" in capsys.readouterr().out
