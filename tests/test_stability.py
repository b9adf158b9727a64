"""predict(stability=True): degraded copies (JPEG 75, half size, mild blur) that disagree make the verdict uncertain."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import hubdet
from hubdet.models.base import STABILITY_CHECKS
from hubdet.models.output import Prediction


@pytest.fixture
def size_detector():
    """A detector whose verdict depends on the image size only: fake at 64 px and more, real below."""
    det = hubdet.create_detector("classifier_tiny.test")

    def by_size(batch):
        return [Prediction(prob=0.9 if im.width >= 64 else 0.1, logit=0.0, verdict="fake" if im.width >= 64 else "real",
                           width=im.width, height=im.height) for im in batch]

    det._predict_images = by_size
    return det


def _image(size: int) -> Image.Image:
    return Image.fromarray(np.random.default_rng(size).integers(0, 255, (size, size, 3), dtype=np.uint8))


def test_a_copy_that_flips_makes_the_answer_uncertain(size_detector):
    big, small = _image(80), _image(20)  # half of 80 is 40 (< 64): the downscaled copy says real
    plain = size_detector.predict([big, small])
    assert [p.verdict for p in plain] == ["fake", "real"] and all("stability" not in p.extra for p in plain)
    checked = size_detector.predict([big, small], stability=True)
    assert checked[0].verdict == "uncertain" and checked[0].prob == pytest.approx(0.9)
    info = checked[0].extra["stability"]
    assert info["stable"] is False and info["original_verdict"] == "fake"
    assert set(info["checks"]) == set(STABILITY_CHECKS)
    assert info["checks"]["downscale_0.5"]["verdict"] == "real" and info["checks"]["jpeg_q75"]["verdict"] == "fake"
    assert checked[1].verdict == "real" and checked[1].extra["stability"]["stable"] is True  # every copy agrees


def test_stability_through_predict_many(size_detector):
    from hubdet.models.predict import predict_many

    runs = predict_many({"a": size_detector}, [_image(80)], stability=True)
    assert runs["a"].predictions[0].verdict == "uncertain"


def test_cli_stability_flag_reports_every_copy(tmp_path, capsys):
    """``hubdet predict --stability --json``: each row carries the degraded copies' answers, and the verdict is
    "uncertain" exactly when a copy disagrees with the original verdict."""
    import json

    from hubdet.cli import main

    folder = tmp_path / "model"
    hubdet.create_detector("classifier_tiny.test").save_pretrained(folder, card=False)
    paths = []
    for size in (48, 96):
        paths.append(tmp_path / f"img{size}.png")
        _image(size).save(paths[-1])
    assert main(["predict", *map(str, paths), "--model", str(folder), "--json", "--stability"]) == 0
    rows = json.loads(capsys.readouterr().out)
    plain = hubdet.from_pretrained(folder).predict([Image.open(p).convert("RGB") for p in paths])
    for row, ref in zip(rows, plain, strict=True):
        info = row["extra"]["stability"]
        assert set(info["checks"]) == set(STABILITY_CHECKS) and info["original_verdict"] == ref.verdict
        assert row["prob_fake"] == pytest.approx(ref.prob, abs=1e-6)
        agree = all(c["verdict"] == ref.verdict for c in info["checks"].values())
        assert info["stable"] is agree and row["verdict"] == (ref.verdict if agree else "uncertain")


def test_app_compare_with_the_stability_switch(size_detector, tmp_path):
    """The app's compare runs the same check: the column carries the copies and the verdict turns uncertain."""
    from hubdet.app.compare import compare

    class OnePool:  # the pool's interface compare() uses, around one in-memory detector
        def check_selection(self, names):
            return ["sized"]

        def load(self, names):
            return {"sized": size_detector}, {}

        def weights_sha256(self, name):
            return None

        def lock(self, name):
            import contextlib

            return contextlib.nullcontext()

    path = tmp_path / "big.png"
    _image(80).save(path)
    plain = compare(OnePool(), str(path), ["sized"], explain_it=False)
    assert plain.results[0].verdict == "fake" and "stability" not in plain.results[0].to_dict()
    checked = compare(OnePool(), str(path), ["sized"], explain_it=False, stability=True).results[0].to_dict()
    assert checked["verdict"] == "uncertain" and checked["stability"]["original_verdict"] == "fake"
    assert checked["stability"]["checks"]["downscale_0.5"]["verdict"] == "real"
