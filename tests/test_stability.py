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
