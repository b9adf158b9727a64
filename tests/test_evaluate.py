"""End to end: tiny detectors evaluated on generated folder datasets, with the robustness protocol, suites,
cross-dataset matrices, plots and the ``hubdet evaluate`` / ``hubdet cross-eval`` commands."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from hubdet.cli import main
from hubdet.eval import evaluate
from hubdet.eval.metrics import binary_metrics
from hubdet.eval.results import PROTOCOL_VERSION, validate_result
from hubdet.eval.robustness import PROTOCOL, Perturbation
from hubdet.eval.runner import run_predictions
from hubdet.models import Prediction, create_detector
from hubdet.models.integrity import content_sha256
from tests.plugins.images import make_image


def write_dataset(root: Path, n: int = 4, *, boxes: bool = False, generator: str = "gen-a") -> Path:
    """``Real/`` PNGs and ``Fake/`` JPEGs (24x20 / 28x20), with a boxes.csv naming the fake generator."""
    rows = ["file,label,generator,xmin,ymin,xmax,ymax"]
    for i in range(n):
        make_image(root / "Real" / f"r{i}.png", (24, 20), "gradient", seed=i)
        rows.append(f"Real/r{i}.png,real,natural,,,,")
        make_image(root / "Fake" / f"f{i}.jpg", (28, 20), "noise", seed=i)
        rows.append(f"Fake/f{i}.jpg,fake,{generator if i % 2 else 'gen-b'}," + ("2,4,14,16" if boxes else ",,,"))
    (root / "boxes.csv").write_text("\n".join(rows) + "\n")
    return root


@pytest.fixture(scope="module")
def dataset_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_dataset(tmp_path_factory.mktemp("evaldata"), boxes=True)


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    det = create_detector("classifier_tiny.test")
    det.config.metadata["training"] = {"source": "src-a"}
    return det.save_pretrained(tmp_path_factory.mktemp("model") / "tiny-a")


def test_tiny_detector_end_to_end_with_robustness(dataset_dir, saved_model, tmp_path):
    result = evaluate(str(saved_model), "folder", dataset_dir, robustness=True, batch_size=3,
                      plots_dir=tmp_path / "plots")
    checked = validate_result(json.loads(json.dumps(result)), where="e2e")  # JSON round trip, pinned
    assert checked.protocol_version == PROTOCOL_VERSION
    assert result["model"]["kind"] == "folder" and result["model"]["training_source"] == "src-a"
    # the weights' content digest, the one the checkpoint's manifest recorded when it was saved
    manifest = json.loads((saved_model / "config.json").read_text())["file_sha256"]
    assert result["model"]["weights_sha256"] == content_sha256(saved_model / "model.safetensors") \
        == manifest["model.safetensors"]
    assert result["dataset"]["fingerprint"] and result["dataset"]["n_images"] == 8
    assert list(result["perturbations"]) == [p.name for p in PROTOCOL[1:]]
    for pert in result["perturbations"].values():
        assert pert["metrics"]["n"] == 8
        assert pert["drop"]["roc_auc"] == pytest.approx(result["metrics"]["roc_auc"] - pert["metrics"]["roc_auc"])
    # per generator: each fake generator against all reals
    assert set(result["per_generator"]) == {"gen-a", "gen-b"}
    assert result["per_generator"]["gen-a"]["n_real"] == 4 and result["per_generator"]["gen-a"]["n_fake"] == 2
    assert set(result["per_source"]) == {"folder"}
    assert result["timing"]["n_forward"] == 8 * len(PROTOCOL) and result["timing"]["images_per_second"] > 0
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == sorted(
        f"tiny-a__folder_train_{k}.png" for k in ("confusion", "reliability", "roc"))

    # the clean metrics are those of predict() on the decoded images
    from hubdet.data import load_source
    from hubdet.models import from_pretrained

    ds = load_source("folder", dataset_dir, "train")
    preds = from_pretrained(saved_model).predict([row["image"] for row in ds])
    expected = binary_metrics(ds["label"], [p.prob for p in preds])
    assert result["metrics"]["roc_auc"] == pytest.approx(expected["roc_auc"])
    assert result["metrics"]["ece"] == pytest.approx(expected["ece"])


def test_box_detector_gets_box_metrics(dataset_dir):
    result = evaluate("boxhead_tiny.test", "folder", dataset_dir, perturbations=["jpeg_q75", "downscale_0.5"],
                      batch_size=8)
    assert result["model"]["random_init"] is True
    m = result["metrics"]
    assert m["n_boxes"] == 4 and 0.0 <= m["mean_iou"] <= 1.0 and "hit_rate@0.55" in m
    assert "mean_iou" in result["perturbations"]["jpeg_q75"]["drop"]
    # halved, the 24x20 images are under half a 32x32 tile: counted as "cannot judge", not scored
    assert result["cannot_judge"]["downscale_0.5"]["count"] == 8 and "clean" not in result["cannot_judge"]
    assert result["perturbations"]["downscale_0.5"]["metrics"] == {}
    with pytest.raises(ValueError, match="unpinned"):
        validate_result(result)  # a random init is never leaderboard material


class _HalfBox:
    """A stub detector: fake probability = mean red, box = the top-left quarter of the image it sees."""

    supports_boxes = True

    def predict(self, images, *, batch_size=32):
        return [Prediction(prob=float(np.asarray(im)[..., 0].mean() / 255), logit=0.0, verdict="real",
                           box=[0.0, 0.0, im.width / 2, im.height / 2], width=im.width, height=im.height)
                for im in images]


def test_boxes_map_back_to_the_unperturbed_frame():
    from PIL import Image

    rows = [{"image": Image.new("RGB", (40, 20), (200, 0, 0)), "label": 1, "boxes": [[0, 0, 20, 10]],
             "generator": "g", "source": "s", "file": "a.png"}]
    recs = run_predictions(_HalfBox(), rows, [Perturbation("clean"), Perturbation("d", kind="downscale")],
                           batch_size=4)
    assert recs["clean"].pred_boxes == [[0.0, 0.0, 20.0, 10.0]]
    assert recs["d"].pred_boxes == [[0.0, 0.0, 20.0, 10.0]]  # predicted on 20x10, reported on 40x20
    assert recs["clean"].probs == pytest.approx([200 / 255])


class _TopHalfMask(_HalfBox):
    """A stub that also predicts a mask: the top half of the image it sees."""

    predicts_masks = True

    def predict(self, images, *, batch_size=32):
        preds = super().predict(images, batch_size=batch_size)
        for pred, im in zip(preds, images, strict=True):
            mask = np.zeros((im.height, im.width), np.float32)
            mask[: im.height // 2] = 1.0
            pred.extra["mask"] = mask
        return preds


def test_pixel_metrics_for_mask_predicting_detectors():
    from PIL import Image

    from hubdet.eval.metric_table import compute_metrics

    truth = np.zeros((20, 40), np.uint8)
    truth[:, :20] = 255  # left half manipulated; the stub predicts the top half: IoU = 1/3
    rows = [{"image": Image.new("RGB", (40, 20), (200, 0, 0)), "label": 1, "boxes": [[0, 0, 20, 20]],
             "mask": Image.fromarray(truth, "L"), "generator": "g", "source": "s", "file": "a.png"},
            {"image": Image.new("RGB", (40, 20), (10, 0, 0)), "label": 0, "boxes": [], "mask": None,
             "generator": "natural", "source": "s", "file": "b.png"}]
    recs = run_predictions(_TopHalfMask(), rows, [Perturbation("clean"), Perturbation("d", kind="downscale")])
    for name in ("clean", "d"):  # the downscaled prediction is resized back to 40x20
        m = compute_metrics(recs[name], threshold=0.5, kinds=("binary", "boxes", "masks"))
        assert m["n_masks"] == 1  # the real has no mask and is not counted
        assert m["pixel_iou"] == pytest.approx(1 / 3) and m["pixel_f1"] == pytest.approx(0.5)
        assert m["mean_iou"] == pytest.approx(0.5)  # box [0, 0, 20, 10] in the true [0, 0, 20, 20]


def test_cli_evaluate_writes_json_and_plots(dataset_dir, saved_model, tmp_path, capsys):
    out = tmp_path / "res.json"
    rc = main(["evaluate", "--model", str(saved_model), "--model", "classifier_tiny.test", "--source", "folder",
               "--data-dir", str(dataset_dir), "--perturbation", "jpeg_q50", "--output", str(out),
               "--plots", str(tmp_path / "p"), "--batch-size", "4", "--limit", "6", "--per-generator"])
    assert rc == 0
    text = capsys.readouterr().out
    assert "jpeg_q50" in text and "(random init)" in text and "images/s" in text
    data = json.loads(out.read_text())
    assert isinstance(data, list) and len(data) == 2
    assert all(r["dataset"]["n_images"] == 6 and r["dataset"]["limit"] == 6 for r in data)
    assert len(list((tmp_path / "p").glob("*.png"))) == 6


def test_cli_evaluate_reports_user_errors(dataset_dir, capsys):
    assert main(["evaluate", "--model", "classifier_tiny.test", "--source", "folder"]) == 2
    assert "--data-dir" in capsys.readouterr().err
    assert main(["evaluate", "--model", "classifier_tiny.test", "--source", f"folder:{dataset_dir}",
                 "--perturbation", "blur_s9"]) == 2
    assert "blur_s1" in capsys.readouterr().err


def test_streaming_evaluation_matches_prepared(dataset_dir, saved_model):
    a = evaluate(str(saved_model), "folder", dataset_dir, batch_size=3)
    b = evaluate(str(saved_model), "folder", dataset_dir, "train", streaming=True, batch_size=3)
    assert b["dataset"]["streaming"] and b["dataset"]["fingerprint"].startswith("files:")
    assert b["metrics"]["roc_auc"] == pytest.approx(a["metrics"]["roc_auc"])
    assert b["metrics"]["n"] == a["metrics"]["n"] == 8


def test_suite_yaml_loads_strictly_and_runs(dataset_dir, saved_model, tmp_path):
    from hubdet.eval.suites import list_suites, load_suite, run_suite

    assert "hubdet-v1" in list_suites()
    v1 = load_suite("hubdet-v1")
    assert v1.primary_metric == "roc_auc" and len(v1.perturbations) == len(PROTOCOL)
    suite = tmp_path / "mini.yaml"
    suite.write_text(
        "name: mini\nversion: '0.1'\nprimary_metric: f1\nmetrics: [f1, roc_auc]\n"
        "perturbations: [clean, blur_s2]\nsources:\n  - {id: gen, source: folder, data_dir: data}\n"
    )
    (tmp_path / "data").symlink_to(dataset_dir, target_is_directory=True)
    results = run_suite(suite, [str(saved_model)], data_root=tmp_path, batch_size=4)
    assert len(results) == 1
    r = results[0]
    assert r["suite"] == {"name": "mini", "version": "0.1"} and r["primary_metric"] == "f1"
    assert list(r["perturbations"]) == ["blur_s2"] and r["dataset"]["name"] == "folder:gen"
    bad = tmp_path / "bad.yaml"
    bad.write_text(suite.read_text().replace("primary_metric: f1", "primary_metrik: f1"))
    with pytest.raises(ValueError, match="primary_metrik.*did you mean 'primary_metric'"):
        load_suite(bad)
    with pytest.raises(KeyError, match="hubdet-v1"):
        load_suite("hubdet-v2")


def test_cross_eval_matrix(tmp_path, saved_model, capsys):
    a = write_dataset(tmp_path / "A", n=3)
    b = write_dataset(tmp_path / "B", n=3, generator="gen-z")
    rc = main(["cross-eval", "--model", str(saved_model), "--model", "classifier_tiny.test",
               "--source", f"folder:{a}", "--source", f"folder:{b}", "--metric", "roc_auc",
               "--output", str(tmp_path / "m.json")])
    assert rc == 0
    out = capsys.readouterr().out
    assert "| src-a |" in out and "| classifier_tiny.test |" in out and "folder:A" in out and "folder:B" in out
    data = json.loads((tmp_path / "m.json").read_text())
    assert data["rows"] == ["src-a", "classifier_tiny.test"] and data["columns"] == ["folder:A", "folder:B"]
    assert len(data["results"]) == 4
    # results are ordered source by source, model by model
    assert data["values"][0][1] == pytest.approx(data["results"][2]["metrics"]["roc_auc"])
    assert data["results"][2]["dataset"]["data_dir"].endswith("B")


@pytest.mark.slow
def test_two_processes_give_the_single_process_result(dataset_dir, saved_model, tmp_path):
    """torchrun with 2 CPU processes: each evaluates a shard, gather_for_metrics joins them, rank 0 writes."""
    import os
    import subprocess
    import sys

    out = tmp_path / "dist.json"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29533",
           "-m", "hubdet.cli", "evaluate", "--model", str(saved_model), "--source", f"folder:{dataset_dir}",
           "--perturbation", "blur_s1", "--batch-size", "3", "--output", str(out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    dist = json.loads(out.read_text())
    single = evaluate(str(saved_model), "folder", dataset_dir, perturbations=["blur_s1"], batch_size=3)
    assert dist["timing"]["num_processes"] == 2 and dist["dataset"]["n_images"] == 8
    assert dist["metrics"] == single["metrics"]
    assert dist["perturbations"]["blur_s1"]["metrics"] == single["perturbations"]["blur_s1"]["metrics"]
