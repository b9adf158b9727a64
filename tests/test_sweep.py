"""training/sweep.py: space checking, trials of the real trainer, pruning, results table, best config, workers."""

from __future__ import annotations

import csv
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from hubdet._core.errors import ConfigError
from tests.plugins.images import make_image

ROOT = Path(__file__).resolve().parents[1]
SWEEP_PY = ROOT / "training" / "sweep.py"


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


sweep = _load("hubdet_sweep_script", SWEEP_PY)


@pytest.fixture(scope="module")
def sweep_setup(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A tiny folder dataset (12 real, 12 fake 32x32 PNGs) and a training config on it."""
    root = tmp_path_factory.mktemp("sweep")
    data = root / "data"
    for i in range(12):
        make_image(data / "real" / f"r{i}.png", (32, 32), "gradient", seed=i)
        make_image(data / "fake" / f"f{i}.png", (32, 32), "noise", seed=50 + i)
    config = root / "config.yaml"
    config.write_text(yaml.safe_dump({
        "data": {"source": "folder", "data_dir": str(data), "validation_fraction": 0.25},
        "model": {"name": "classifier_tiny.test"},
        "train": {"epochs": 2, "batch_size": 6, "log_with": "none", "progress": False, "calibrate": False},
    }))
    return data, config


def test_space_is_checked_strictly(tmp_path: Path) -> None:
    ok = sweep.load_space({"lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True},
                           "train.batch_size": {"type": "categorical", "choices": [4, 8]}})
    assert set(ok) == {"optim.lr", "train.batch_size"}  # leaf names resolve like train.py's flags
    for bad, match in [({"optim.lr": {"type": "float", "low": 1}}, "low and high"),
                       ({"optim.lr": {"type": "normal", "low": 0, "high": 1}}, "float, int or categorical"),
                       ({"optim.lr": {"type": "float", "low": 1, "high": 2, "logg": True}}, "logg"),
                       ({"optim.lrr": {"type": "float", "low": 1, "high": 2}}, "did you mean"),
                       ({"optim.lr": {"type": "categorical", "choices": []}}, "choices")]:
        with pytest.raises(ConfigError, match=match):
            sweep.load_space(bad)


def test_sweep_runs_trials_and_writes_results(sweep_setup: tuple[Path, Path], tmp_path: Path) -> None:
    _, config = sweep_setup
    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump({"optim.lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True},
                                     "train.batch_size": {"type": "categorical", "choices": [4, 6]}}))
    out = tmp_path / "out"
    code = sweep.main(["--config", str(config), "--space", str(space), "--trials", "3", "--output-dir", str(out),
                       "--pruner", "none", "--train.epochs", "1"])
    assert code == 0
    rows = list(csv.DictReader(open(out / "results.csv")))
    assert len(rows) == 3 and {r["state"] for r in rows} == {"COMPLETE"}
    assert all(r["epochs_reported"] == "1" for r in rows)  # the --train.epochs override reached every trial
    best_row = min(rows, key=lambda r: float(r["value"]))  # val_loss is minimised
    best = yaml.safe_load((out / "best_config.yaml").read_text())
    assert best["optim"]["lr"] == pytest.approx(float(best_row["optim.lr"]))
    assert best["train"]["batch_size"] == int(best_row["train.batch_size"]) and best["train"]["epochs"] == 1
    assert "| number | state | value |" in (out / "results.md").read_text()
    for r in rows:  # each trial trained a real model in its own folder
        assert (out / f"trial_{int(r['number']):04d}" / "model" / "model.safetensors").is_file()
    from hubdet.training import load_config

    load_config(out / "best_config.yaml")  # the best config is a valid train.py config


def test_pruner_stops_trials_after_an_epoch(sweep_setup: tuple[Path, Path], tmp_path: Path) -> None:
    import optuna

    _, config = sweep_setup
    space = sweep.load_space({"optim.lr": {"type": "float", "low": 1e-4, "high": 1e-3}})
    study = sweep.run_worker(str(config), space, 2, storage=None, study_name="p", output_dir=tmp_path,
                             metric="val_loss", direction="minimize", pruner=optuna.pruners.ThresholdPruner(upper=0.0))
    trials = study.get_trials()
    assert len(trials) == 2 and all(t.state == optuna.trial.TrialState.PRUNED for t in trials)
    assert all(list(t.intermediate_values) == [0] for t in trials)  # stopped after epoch 1 of 2
    assert not (tmp_path / "trial_0000" / "model").exists()


@pytest.mark.slow
def test_parallel_workers_share_one_study(sweep_setup: tuple[Path, Path], tmp_path: Path) -> None:
    _, config = sweep_setup
    space = tmp_path / "space.yaml"
    space.write_text(yaml.safe_dump({"optim.lr": {"type": "float", "low": 1e-4, "high": 1e-2, "log": True}}))
    out = tmp_path / "par"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, str(SWEEP_PY), "--config", str(config), "--space", str(space), "--trials",
                           "2", "--jobs", "2", "--output-dir", str(out), "--pruner", "none", "--train.epochs", "1"],
                          env=env, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-4000:]
    import optuna

    study = optuna.load_study(study_name="hubdet-sweep", storage=f"sqlite:///{(out / 'study.db').resolve()}")
    done = [t for t in study.get_trials() if t.state == optuna.trial.TrialState.COMPLETE]
    assert len(done) >= 2 and len({t.user_attrs["pid"] for t in done}) == 2  # two processes ran trials
    assert (out / "best_config.yaml").is_file()
