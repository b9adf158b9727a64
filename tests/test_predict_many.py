"""predict_many: several detectors on the same images, an ensemble reusing its members' stand-alone predictions."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image

from hubdet.models import create_detector, from_pretrained
from hubdet.models.predict import predict_many, share_plan
from hubdet.models.resolver import weights_record


def _noise(width: int, height: int, seed: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A saved ensemble (tempered classifier + box head, most-confident box) and its members' folders."""
    root = tmp_path_factory.mktemp("predict_many")
    torch.manual_seed(2)
    clf = create_detector("classifier_tiny.test")
    clf.config.calibration = clf.config.calibration.replace(temperature=1.5)
    box = create_detector("boxhead_tiny.test")
    members = [clf.save_pretrained(root / "clf", card=False), box.save_pretrained(root / "box", card=False)]
    ens = create_detector("ensemble_tiny.test", members=[str(p) for p in members], box_from="most_confident")
    with torch.no_grad():
        ens.fusion.weight.copy_(torch.tensor([[0.9, -0.6]]))
        ens.fusion.bias.fill_(-0.1)
    ens_dir = ens.save_pretrained(root / "ens", card=False)
    return {"clf": ens_dir / "members" / "0", "box": ens_dir / "members" / "1", "ens": ens_dir,
            "clf_alone": members[0], "box_alone": members[1]}


def _load(folders: dict[str, Path], names: list[str]) -> tuple[dict[str, Any], dict[str, str]]:
    detectors = {n: from_pretrained(folders[n]) for n in names}
    return detectors, {n: weights_record(d).sha256 for n, d in detectors.items()}


def _count(detector: Any, counts: dict[str, int], key: str) -> None:
    run = detector._predict_images

    def counted(images: Any) -> Any:
        counts[key] = counts.get(key, 0) + 1
        return run(images)

    detector._predict_images = counted


IMAGES = [_noise(90, 70, 0), _noise(64, 96, 1), _noise(50, 50, 2)]


def test_ensemble_reuses_members_and_matches_its_own_predict(folders: dict[str, Path]) -> None:
    detectors, digests = _load(folders, ["ens", "box", "clf"])  # the ensemble first: it still runs last
    own = {n: [p.to_dict() for p in d.predict(IMAGES, batch_size=len(IMAGES))] for n, d in detectors.items()}
    assert share_plan(detectors, digests) == {"ens": {0: "clf", 1: "box"}}
    counts: dict[str, int] = {}
    for name in ("clf", "box"):
        _count(detectors[name], counts, name)
    for k, member in enumerate(detectors["ens"].members):
        _count(member, counts, f"member{k}")
    runs = predict_many(detectors, IMAGES, digests=digests)
    assert list(runs) == ["ens", "box", "clf"]  # the caller's order
    assert counts == {"clf": 1, "box": 1}  # each member ran once, stand-alone; never inside the ensemble
    for name, run in runs.items():
        assert run.error is None and run.seconds >= 0
        assert [p.to_dict() for p in run.predictions] == own[name]  # identical, extra["members"] included
    assert runs["ens"].shared_members == {"0:classifier_tiny.test": "clf", "1:boxhead_tiny.test": "box"}
    assert runs["clf"].shared_members == {}


def test_without_digests_nothing_is_shared(folders: dict[str, Path]) -> None:
    detectors, digests = _load(folders, ["clf", "ens"])
    counts: dict[str, int] = {}
    for k, member in enumerate(detectors["ens"].members):
        _count(member, counts, f"member{k}")
    runs = predict_many(detectors, IMAGES)
    assert counts == {"member0": 1, "member1": 1} and runs["ens"].shared_members == {}
    assert share_plan(detectors, {**digests, "clf": None}) == {}
    assert share_plan(detectors, {**digests, "clf": "0" * 64}) == {}  # other weights


def test_a_failing_detector_is_reported_and_the_ensemble_runs_that_member_itself(folders: dict[str, Path]) -> None:
    detectors, digests = _load(folders, ["clf", "box", "ens"])
    own = [p.to_dict() for p in detectors["ens"].predict(IMAGES, batch_size=len(IMAGES))]

    def broken(images: Any) -> Any:
        raise RuntimeError("out of memory")

    detectors["clf"]._predict_images = broken
    entered: list[str] = []

    class Lock:
        def __init__(self, name: str) -> None:
            self.name, self.lock = name, threading.Lock()

        def __enter__(self) -> None:
            entered.append(self.name)
            self.lock.acquire()

        def __exit__(self, *exc: Any) -> None:
            self.lock.release()

    runs = predict_many(detectors, IMAGES, digests=digests, locks={n: Lock(n) for n in detectors})
    assert runs["clf"].predictions is None and runs["clf"].error == "RuntimeError: out of memory"
    assert runs["box"].error is None and runs["ens"].error is None
    assert runs["ens"].shared_members == {"1:boxhead_tiny.test": "box"}
    assert [p.to_dict() for p in runs["ens"].predictions] == own
    assert entered == ["clf", "box", "ens"]  # every detector predicted under its own lock, providers first


def test_two_saves_of_the_same_detector_share(folders: dict[str, Path]) -> None:
    """The members were saved twice (on their own, then inside the ensemble): the two files differ in nothing but
    possibly the safetensors header's layout, and their weights digests agree, so the ensemble reuses them."""
    detectors, digests = _load(folders, ["ens", "clf_alone", "box_alone"])
    assert digests["clf_alone"] == detectors["ens"].member_sha256()[0]
    assert share_plan(detectors, digests) == {"ens": {0: "clf_alone", 1: "box_alone"}}
    runs = predict_many(detectors, IMAGES, digests=digests)
    assert [p.to_dict() for p in runs["ens"].predictions] == [p.to_dict() for p in detectors["ens"].predict(IMAGES)]
