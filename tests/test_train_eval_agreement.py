"""Training's validation and test numbers are the numbers ``hubdet evaluate`` gives on the same splits.

A tiny detector is trained with ``training/train.py`` (the command line, as users run it) on generated data with
explicit train/validation/test folders; then ``hubdet evaluate`` runs on the saved model and each split. Every
scored metric of the metric table that training wrote (the summary's ``test``, the card's ``model-index``, the
checkpoint's ``metadata.training.validation``) must equal evaluate's to 1e-6, and the card must carry exactly the
scored metrics evaluate reports.
"""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from huggingface_hub import ModelCard

from hubdet.cli import main as hubdet_main
from hubdet.eval.metric_table import get_metric, metric_names
from tests.plugins.images import make_image

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def split_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``{train,validation,test}/{real,fake}`` 40x40 PNGs (smooth reals, noisy fakes, some of each the other way so
    the metrics are not all perfect) and a boxes.csv with one or two boxes per fake."""
    root = tmp_path_factory.mktemp("agreement")
    rows = [["file", "label", "xmin", "ymin", "xmax", "ymax"]]
    for split, n in (("train", 12), ("validation", 8), ("test", 10)):
        for i in range(n):
            seed = zlib.crc32(f"{split}{i}".encode()) % 10_000
            make_image(root / split / "real" / f"r{i}.png", (40, 40), "gradient" if i % 5 else "noise", seed=seed)
            fake = root / split / "fake" / f"f{i}.png"
            make_image(fake, (40, 40), "noise" if i % 4 else "gradient", seed=seed + 1)
            x0, y0 = 2 + i % 9, 3 + i % 7
            rows.append([fake.relative_to(root).as_posix(), "fake", x0, y0, x0 + 20, y0 + 16])
            if i % 3 == 0:  # a second region: IoU is with the best-matching box, not with their union
                rows.append([fake.relative_to(root).as_posix(), "fake", 30, 30, 38, 38])
    with open(root / "boxes.csv", "w", newline="") as fh:
        csv.writer(fh).writerows(rows)
    return root


def _evaluate(model_dir: Path, data: Path, split: str, out: Path) -> dict:
    assert hubdet_main(["evaluate", "--model", str(model_dir), "--source", "folder", "--data-dir", str(data),
                        "--split", split, "--batch-size", "4", "--output", str(out)]) == 0
    result = json.loads(out.read_text())
    return result[0]["metrics"] if isinstance(result, list) else result["metrics"]


def _assert_same(trained: dict, evaluated: dict, where: str) -> None:
    scored = [k for k in metric_names(scored=True) if k in evaluated]
    assert scored, where
    for k in scored:
        a, b = trained.get(k), evaluated[k]
        if b is None:
            assert a is None, f"{where}: {k} trained {a} vs evaluate None"
        else:
            assert a == pytest.approx(b, abs=1e-6), f"{where}: {k} trained {a} vs evaluate {b}"


@pytest.mark.parametrize("name", ["classifier_tiny.test", "boxhead_tiny.test"])
def test_training_metrics_equal_hubdet_evaluate(split_data: Path, tmp_path: Path, name: str) -> None:
    out = tmp_path / "run"
    cmd = [sys.executable, str(ROOT / "training" / "train.py"), "--data.source", "folder",
           "--data.data_dir", str(split_data), "--model.name", name, "--train.epochs", "2", "--train.batch_size", "8",
           "--train.eval_batch_size", "4", "--train.output_dir", str(out), "--train.log_with", "none",
           "--train.progress", "false", "--optim.lr", "0.01"]
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH",
                                                                                                        "")]))
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-4000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    model_dir = Path(summary["model_dir"])

    test = _evaluate(model_dir, split_data, "test", tmp_path / "test.json")
    _assert_same(summary["test"], test, "test (training summary)")
    card = {r.metric_type: r.metric_value for r in ModelCard.load(model_dir / "README.md").data.eval_results}
    assert set(card) == {k for k in metric_names(scored=True) if test.get(k) is not None}  # nothing more or less
    _assert_same(card, {k: v for k, v in test.items() if k in card}, "test (card model-index)")

    validation = _evaluate(model_dir, split_data, "validation", tmp_path / "val.json")
    saved = json.loads((model_dir / "config.json").read_text())["metadata"]["training"]
    _assert_same(saved["validation"], validation, "validation (config.json metadata)")
    assert saved["validation"]["threshold"] == validation["threshold"]  # the calibrated threshold, not a default
    if name.startswith("boxhead"):  # box metrics travel too
        assert get_metric("mean_iou").kind == "boxes" and test["mean_iou"] is not None and "mean_iou" in card
