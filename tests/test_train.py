"""hubdet.training and training/train.py: config precedence, every family end to end, kill-and-resume, two-process
CPU, Hub push."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file

from hubdet import training as train
from hubdet._core.errors import ConfigError
from tests.plugins.images import make_image

ROOT = Path(__file__).resolve().parents[1]
TRAIN_PY = ROOT / "training" / "train.py"
CONFIGS = ROOT / "training" / "configs"




@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """16 real (smooth) and 16 fake (noisy, with a box) 48x48 PNGs in the ``folder`` layout + boxes.csv."""
    root = tmp_path_factory.mktemp("tiny_data")
    rows = []
    for i in range(16):
        make_image(root / "real" / f"r{i:02d}.png", (48, 48), "gradient", seed=i)
        rows.append([f"real/r{i:02d}.png", "real", "", "", "", "", ""])
        make_image(root / "fake" / f"f{i:02d}.png", (48, 48), "noise", seed=100 + i)
        x0, y0 = 4 + i % 8, 6 + i % 5
        rows.append([f"fake/f{i:02d}.png", "fake", x0, y0, x0 + 24, y0 + 20, "tiny-gen"])
    with open(root / "boxes.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["file", "label", "xmin", "ymin", "xmax", "ymax", "generator"])
        for file, label, *box, gen in rows:
            w.writerow([file, label, *box, gen])
    return root


def _cfg(data_dir: Path, out: Path, name: str = "classifier_tiny.test", **overrides):
    base = {
        "data.source": "folder", "data.data_dir": str(data_dir), "data.validation_fraction": 0.25,
        "data.test_fraction": 0.25, "model.name": name, "train.output_dir": str(out), "train.epochs": 1,
        "train.batch_size": 8, "train.eval_batch_size": 16, "train.log_with": "none", "train.progress": False,
    }
    base.update(overrides)
    return train.load_config(None, base)


def _weights(folder: Path) -> dict[str, torch.Tensor]:
    return load_file(str(folder / "model.safetensors"))


# ------------------------------------------------------------------------------------------------ config
def test_config_precedence_yaml_then_command_line(tmp_path: Path) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"optim": {"lr": 0.5, "optimizer": "sgd"}, "train": {"epochs": 4}}))
    cfg = train.parse_args(["--config", str(path), "--optim.lr", "1e-3", "--batch_size", "7", "--resume",
                            "--augment.jpeg_quality", "[50, 70]", "--model.args.drop_rate", "0.1",
                            "--push-to-hub", "me/model", "--data.data_dir", "123"])
    assert cfg.optim.lr == pytest.approx(1e-3)  # command line beats YAML
    assert cfg.optim.optimizer == "sgd" and cfg.train.epochs == 4  # YAML beats defaults
    assert cfg.train.batch_size == 7 and cfg.optim.momentum == 0.9  # flat leaf name; untouched default
    assert cfg.train.resume == "latest" and cfg.train.push_to_hub == "me/model"
    assert cfg.augment.jpeg_quality == (50, 70) and cfg.model.args == {"drop_rate": 0.1}
    assert cfg.data.data_dir == "123"  # string fields stay strings


@pytest.mark.parametrize(
    ("argv", "match"),
    [(["--optim.lrr", "0.1"], "optim.lr"), (["--optimizer.lr", "1"], "unknown"), (["--lr", "abc"], "number"),
     (["--optim.scheduler", "linear"], "scheduler"), (["--data.balance", "up"], "balance")],
)
def test_bad_command_line_raises_with_suggestion(argv: list[str], match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        train.parse_args(argv)


def test_unknown_yaml_key_names_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("train:\n  epoch: 3\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml.*'epoch'.*did you mean 'epochs'"):
        train.parse_args(["--config", str(path)])


def test_every_shipped_config_parses() -> None:
    from hubdet.models import list_detectors

    files = sorted(CONFIGS.rglob("*.yaml"))  # the seed configs, their _tiny twins and defaults/
    assert len(files) >= 18 and any(f.parent.name == "defaults" for f in files)
    names = {f.stem for f in files}
    for f in files:
        if not f.stem.endswith("_tiny") and f.parent == CONFIGS:
            assert f"{f.stem}_tiny" in names, f"{f.name} has no _tiny variant"
        cfg = train.parse_args(["--config", str(f)])
        assert cfg.model.name in list_detectors(), f"{f.name}: unknown detector {cfg.model.name}"
        train.metric_mode(cfg.train.best_metric, cfg.train.best_mode)  # a monitor with a direction


# ------------------------------------------------------------------------------------------------ pieces
def test_epoch_sampler_is_seeded_per_epoch_and_weighted_balances() -> None:
    s = train.EpochSampler(10, seed=3)
    s.use_epoch(0)
    a = list(s)
    s.use_epoch(1)
    b = list(s)
    s.use_epoch(0)
    assert list(s) == a and sorted(a) == list(range(10)) and a != b
    labels = [0] * 10 + [1] * 90
    w = train.EpochSampler(100, seed=0, weights=train.class_weights(labels))
    drawn = np.asarray(labels)[list(w) + list(w)]
    assert 0.35 < drawn.mean() < 0.65  # balanced, where uniform sampling would give 0.9


def test_schedules_warmup_cosine_step_and_plateau() -> None:
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=1.0)
    cfg = train.OptimConfig(lr=1.0, scheduler="cosine", warmup_steps=2, min_lr=0.01)
    sched, plateau = train.build_schedulers(opt, cfg, steps_per_epoch=5, epochs=2)
    lrs = []
    for _ in range(10):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[0] == pytest.approx(0.5) and lrs[1] == pytest.approx(1.0) and plateau is None
    assert all(x >= y for x, y in zip(lrs[1:], lrs[2:], strict=False)) and lrs[-1] < 0.1
    opt = torch.optim.SGD([p], lr=1.0)
    _, plateau = train.build_schedulers(opt, train.OptimConfig(lr=1.0, scheduler="plateau", plateau_patience=2,
                                                                  plateau_factor=0.1, min_lr=1e-6), 5, 10)
    for _ in range(4):
        plateau.step(1.0)  # no improvement: after patience 2 the lr drops by 10
    assert opt.param_groups[0]["lr"] == pytest.approx(0.1)


def test_splits_are_carved_stratified_and_reproducible(tiny_data: Path) -> None:
    cfg = train.DataConfig(source="folder", data_dir=str(tiny_data), validation_fraction=0.25, test_fraction=0.25)
    a = train.load_splits(cfg)
    b = train.load_splits(cfg)
    assert {k: len(v) for k, v in a.items()} == {"train": 16, "validation": 8, "test": 8}
    assert sorted(a["validation"]["label"]) == [0] * 4 + [1] * 4
    assert a["validation"]["file"] == b["validation"]["file"]
    assert not set(a["train"]["file"]) & (set(a["validation"]["file"]) | set(a["test"]["file"]))
    down = train.load_splits(train.DataConfig(source="folder", data_dir=str(tiny_data), balance="downsample",
                                              max_train_samples=10))
    assert len(down["train"]) == 10


# ------------------------------------------------------------------------------------------------ end to end
#: Per-family extras for the end-to-end run (augmentation, schedules, optimizers); every tiny family is trained.
FAMILY_EXTRAS = {
    "classifier_tiny.test": {"augment.hflip": True, "augment.rotation": 20.0, "optim.scheduler": "cosine"},
    "boxhead_tiny.test": {"augment.hflip": True, "augment.shift": 0.1, "model.args": {"alpha": 100.0, "beta": 0.8}},
    "ensemble_tiny.test": {"optim.optimizer": "sgd", "optim.lr": 0.01},
    "probe_tiny.test": {"augment.jitter_p": 0.5, "augment.blur_p": 0.5},
}


def _tiny_families() -> list[str]:
    from hubdet.models import list_detectors

    return [n for n in list_detectors() if n.endswith(".test")]


@pytest.mark.parametrize("name", _tiny_families())
def test_family_trains_end_to_end_and_loads(tiny_data: Path, tmp_path: Path, name: str) -> None:
    import hubdet

    cfg = _cfg(tiny_data, tmp_path / "run", name, **FAMILY_EXTRAS.get(name, {}))
    result = train.train(cfg)
    model_dir = Path(result["model_dir"])
    detector = hubdet.from_pretrained(model_dir)
    assert detector.config.name == name
    assert detector.config.calibration.method == "temperature"
    assert "validation (n=8)" in detector.config.calibration.fitted_on
    assert result["test"]["accuracy"] is not None and len(result["history"]) == 1
    card = (model_dir / "README.md").read_text()
    assert "model-index" in card and f"{result['test']['accuracy']}"[:6] in card
    assert (model_dir / "training_config.yaml").is_file() and (model_dir / "training_curves.png").is_file()
    saved = yaml.safe_load((model_dir / "training_config.yaml").read_text())
    assert saved["model"]["name"] == name and saved["train"]["epochs"] == 1
    if detector.supports_boxes:
        assert "mean_iou" in result["test"] and "val_mean_iou" in result["history"][0]
    pred = detector.predict([make_image(tmp_path / "x.png", (48, 48), "noise")])[0]
    assert 0.0 <= pred.prob <= 1.0


@pytest.mark.parametrize(("accum", "every", "stop", "latest", "steps"),
                         [(1, 2, 3, 2, 8),   # killed 1 step after a mid-epoch checkpoint
                          (2, 1, 3, 3, 4)])  # gradient accumulation, resumed mid-epoch
def test_kill_and_resume_matches_uninterrupted_run(tiny_data: Path, tmp_path: Path, accum: int, every: int,
                                                   stop: int, latest: int, steps: int) -> None:
    common = {"train.epochs": 2, "train.batch_size": 4, "train.checkpoint_every_steps": every,
              "optim.scheduler": "cosine", "optim.warmup_steps": 2, "optim.grad_accum_steps": accum,
              "model.args": {"drop_rate": 0.3}, "augment.hflip": True, "augment.rotation": 15.0,
              "augment.jitter_p": 0.5, "data.balance": "weighted", "train.calibrate": False}
    full = train.train(_cfg(tiny_data, tmp_path / "full", **common))
    killed = train.train(_cfg(tiny_data, tmp_path / "resumed", **common, **{"train.stop_after_steps": stop}))
    assert killed["stopped_at_step"] == stop
    newest = train.latest_checkpoint(tmp_path / "resumed")  # accelerate's checkpoints/checkpoint_<i>
    assert train.TrainerState.load(newest).global_step == latest
    assert len(list((tmp_path / "resumed" / "checkpoints").iterdir())) <= 2  # train.keep_checkpoints
    assert not (tmp_path / "resumed" / "model").exists()
    resumed = train.train(_cfg(tiny_data, tmp_path / "resumed", **common, **{"train.resume": "latest"}))
    a, b = _weights(tmp_path / "full" / "model"), _weights(tmp_path / "resumed" / "model")
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    assert [h["train_loss"] for h in full["history"]] == pytest.approx([h["train_loss"] for h in resumed["history"]])
    assert [h["val_loss"] for h in full["history"]] == pytest.approx([h["val_loss"] for h in resumed["history"]])
    assert full["global_step"] == resumed["global_step"] == steps
    if accum == 1:  # the runs really differ from a run with another seed (the comparison can fail)
        other = train.train(_cfg(tiny_data, tmp_path / "other", **common, **{"train.seed": 1}))
        c = _weights(Path(other["model_dir"]))
        assert any(not torch.equal(a[k], c[k]) for k in a)


def test_early_stopping_and_misspelt_monitor(tiny_data: Path, tmp_path: Path) -> None:
    # no epoch can improve val_loss by 10: the first sets the reference, the second runs out of patience
    cfg = _cfg(tiny_data, tmp_path / "es", **{"train.epochs": 6, "train.early_stopping_patience": 1,
                                              "train.early_stopping_min_delta": 10.0, "data.test_fraction": 0.0})
    result = train.train(cfg)
    assert result["stopped_early"] and len(result["history"]) == 2 and result["test"] is None
    bad = _cfg(tiny_data, tmp_path / "bad", **{"optim.scheduler": "plateau", "optim.plateau_monitor": "val_los"})
    with pytest.raises(ConfigError, match="did you mean 'val_loss'"):
        train.train(bad)


# ------------------------------------------------------------------------------------------------ subprocesses
def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["OMP_NUM_THREADS"] = "1"
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    return env


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_processes_identical_weights_different_samples(tiny_data: Path, tmp_path: Path) -> None:
    log = tmp_path / "samples"
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
           "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
           "--main_process_port", str(_free_port()), str(TRAIN_PY),
           "--data.source", "folder", "--data.data_dir", str(tiny_data), "--data.validation_fraction", "0.25",
           "--data.test_fraction", "0.25", "--model.name", "classifier_tiny.test", "--train.epochs", "2",
           "--train.batch_size", "4", "--train.output_dir", str(tmp_path / "ddp"), "--train.log_with", "none",
           "--train.progress", "false", "--train.sample_log", str(log), "--augment.hflip", "true"]
    proc = subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=240, cwd=ROOT)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-6000:]
    ranks = [(tmp_path / f"samples.rank{r}").read_text().split("\n") for r in (0, 1)]
    weights = [[ln.split()[1] for ln in lines if ln.startswith("weights")] for lines in ranks]
    assert len(weights[0]) == 1 and weights[0] == weights[1]  # identical weights on both ranks
    for epoch in ("0", "1"):
        seen = [{int(ln.split()[1]) for ln in lines if ln.split()[:1] == [epoch]} for lines in ranks]
        assert len(seen[0]) == len(seen[1]) == 8  # 16 training images, shared out: 8 each
        assert not seen[0] & seen[1] and seen[0] | seen[1] == set(range(16))
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["global_step"] == 4  # 2 epochs x 2 steps of 2 x 4 images
    import hubdet

    assert hubdet.from_pretrained(tmp_path / "ddp" / "model").config.metadata["training"]["processes"] == 2


@pytest.mark.slow
def test_push_to_hub_uploads_weights_config_card_curves(tiny_data: Path, tmp_path: Path, hub_server) -> None:
    cmd = [sys.executable, str(TRAIN_PY), "--data.data_dir", str(tiny_data), "--model.name", "classifier_tiny.test",
           "--data.test_fraction", "0.25", "--train.batch_size", "8", "--train.output_dir", str(tmp_path / "run"),
           "--train.log_with", "none", "--train.progress", "false", "--push-to-hub", "hubdet-tester/tiny-cls"]
    env = hub_server.env()
    env["OMP_NUM_THREADS"] = "1"
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-4000:]
    files = hub_server.files("model", "hubdet-tester/tiny-cls")
    assert {"model.safetensors", "config.json", "README.md", "training_config.yaml", "training_curves.png"} <= set(
        files)
    assert b"model-index" in files["README.md"] and files["training_curves.png"][:4] == b"\x89PNG"
    from safetensors.torch import load as load_bytes

    pushed, local = load_bytes(files["model.safetensors"]), _weights(tmp_path / "run" / "model")
    assert pushed.keys() == local.keys() and all(torch.equal(pushed[k], local[k]) for k in local)


def test_cli_rejects_unknown_option() -> None:
    proc = subprocess.run([sys.executable, str(TRAIN_PY), "--optim.lrr", "1"], env=_env(), capture_output=True,
                          text=True, timeout=120, cwd=ROOT)
    assert proc.returncode == 2 and "did you mean --optim.lr" in proc.stderr


# ------------------------------------------------------------------------------------------------ seed-scale configs
def _seed_layouts(root: Path) -> dict[str, dict]:
    """For each seed-scale config, a tiny tree in its source's layout and the overrides pointing at it."""
    from tests.plugins import images as im

    cifake, dfa = im.write_cifake(root / "cifake", 4), im.write_deepfakeart(root / "dfa", 4)
    return {
        "cifake_densenet121": {"data.data_dir": str(cifake)},
        "deepfakeart_xception": {"data.data_dir": str(dfa)},
        "ensemble_seed000": {"data.data_dir": str(cifake), "data.also": [{"source": "deepfakeart",
                                                                          "data_dir": str(dfa)}],
                             "model.args": {"members": ["registry:classifier_densenet121.cifake",
                                                        "registry:classifier_xception.deepfakeart"]}},
        "places365_boxhead_resnet50": {"data.data_dir": str(im.write_inpaint_boxes(root / "boxes", 12))},
        "probe_clip_vit_b16_lda": {"data.data_dir": str(im.write_ufd(root / "ufd", 6)),
                                   "data.validation_fraction": 0.2, "data.test_fraction": 0.2},
        "faces_inception_v3": {"data.data_dir": str(im.write_deepfake_and_real(root / "dar", 3)),
                               "data.also": [{"source": "deepfake_faces", "data_dir": str(
                                   im.write_deepfake_faces(root / "dff")), "options": {"max_per_class": 6}}]},
        "vit_classifier": {"data.data_dir": str(im.write_genimage(root / "genimage", 3))},
    }


@pytest.mark.slow
@pytest.mark.parametrize("name", ["cifake_densenet121", "deepfakeart_xception", "ensemble_seed000",
                                  "places365_boxhead_resnet50", "probe_clip_vit_b16_lda", "faces_inception_v3",
                                  "vit_classifier"])
def test_seed_scale_config_starts_on_its_layout(name: str, tmp_path: Path) -> None:
    """The full-size recipe (random init: nothing is downloaded) runs its first optimizer step on a tree of the
    right layout; the probe, which takes no steps, fits and saves."""
    over = {"model.pretrained": False, "train.batch_size": 2, "train.eval_batch_size": 2,
            "train.stop_after_steps": 1, "train.output_dir": str(tmp_path / "run"), "train.log_with": "none",
            "train.progress": False, "data.num_workers": 0, **_seed_layouts(tmp_path / "data")[name]}
    cfg = train.load_config(CONFIGS / f"{name}.yaml", over)
    result = train.train(cfg)
    if cfg.model.name.startswith("probe"):
        assert (Path(result["model_dir"]) / "model.safetensors").is_file()
    else:
        assert result["stopped_at_step"] == 1
        assert train.latest_checkpoint(tmp_path / "run") is None  # stopped "killed" before any checkpoint
