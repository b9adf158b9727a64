#!/usr/bin/env python
"""Hyperparameter search over any training-config field with Optuna, pruning bad trials after each epoch.

    python training/sweep.py --config training/configs/vit_classifier_tiny.yaml --space space.yaml --trials 20 \
        [--storage sqlite:///runs/sweep/study.db] [--study-name NAME] [--jobs K] [--output-dir runs/sweep] \
        [--metric val_roc_auc] [--direction maximize] [--pruner median|hyperband|none] [--key value ...]

``space.yaml`` maps config fields (dotted, or a unique leaf name as on train.py's command line) to distributions::

    optim.lr: {type: float, low: 1.0e-5, high: 1.0e-2, log: true}
    train.batch_size: {type: categorical, choices: [8, 16, 32]}
    augment.rotation: {type: int, low: 0, high: 30, step: 5}

Every trial runs :func:`hubdet.training.train` (what ``training/train.py`` runs) in-process (one process per
trial) with its own output folder ``<output-dir>/trial_<n>``; after each epoch the trial reports ``--metric``
(default: the config's ``train.best_metric``) and the pruner may stop it. ``--jobs K`` starts K worker processes
on one shared study storage (SQLite by default; any Optuna RDB URL works, so workers on other machines can join
with the same ``--storage`` and ``--study-name``). The trial count is shared: the study stops at ``--trials``
finished trials in total.

Outputs in ``--output-dir``: ``results.csv`` and ``results.md`` (one row per trial: number, state, value, params,
duration) and ``best_config.yaml`` (the full resolved config of the best trial, ready for train.py).
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml

logger = logging.getLogger("hubdet.sweep")

_SPACE_KEYS = {"type", "low", "high", "log", "step", "choices"}


def load_space(path: str | os.PathLike | dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Read and check a search space: ``{dotted.key: {type, low, high, log, step, choices}}``."""
    from hubdet._core.errors import ConfigError
    from hubdet.training import resolve_key

    raw = path if isinstance(path, dict) else yaml.safe_load(Path(path).read_text()) or {}
    where = "space" if isinstance(path, dict) else str(path)
    if not isinstance(raw, dict) or not raw:
        raise ConfigError(f"{where}: expected a non-empty mapping of config fields to distributions")
    space: dict[str, dict[str, Any]] = {}
    for key, spec in raw.items():
        if not isinstance(spec, dict):
            raise ConfigError(f"{where}: {key}: expected a mapping like {{type: float, low: ..., high: ...}}")
        unknown = set(spec) - _SPACE_KEYS
        if unknown:
            raise ConfigError(f"{where}: {key}: unknown key(s) {sorted(unknown)}; valid: {sorted(_SPACE_KEYS)}")
        kind = spec.get("type")
        if kind in ("float", "int"):
            if "low" not in spec or "high" not in spec:
                raise ConfigError(f"{where}: {key}: type {kind} needs low and high")
            if float(spec["low"]) > float(spec["high"]):
                raise ConfigError(f"{where}: {key}: low > high")
        elif kind == "categorical":
            if not isinstance(spec.get("choices"), list) or not spec["choices"]:
                raise ConfigError(f"{where}: {key}: type categorical needs a non-empty choices list")
        else:
            raise ConfigError(f"{where}: {key}: type must be float, int or categorical, got {kind!r}")
        space[resolve_key(str(key))] = dict(spec)
    return space


def suggest(trial: Any, space: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Draw one value per field from ``trial``."""
    values: dict[str, Any] = {}
    for key, spec in space.items():
        if spec["type"] == "float":
            values[key] = trial.suggest_float(key, float(spec["low"]), float(spec["high"]), log=bool(spec.get("log")),
                                              step=spec.get("step"))
        elif spec["type"] == "int":
            values[key] = trial.suggest_int(key, int(spec["low"]), int(spec["high"]), log=bool(spec.get("log")),
                                            step=int(spec.get("step", 1)))
        else:
            values[key] = trial.suggest_categorical(key, spec["choices"])
    return values


def _pruner(name: Any) -> Any:
    import optuna

    if not isinstance(name, str):
        return name
    if name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0)
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner()
    if name == "none":
        return optuna.pruners.NopPruner()
    from hubdet._core.errors import ConfigError

    raise ConfigError(f"--pruner: {name!r} is not median, hyperband or none")


def run_worker(
    config: str | None, space: dict[str, dict[str, Any]], n_trials: int, *, storage: str | None, study_name: str,
    output_dir: Path, metric: str, direction: str, pruner: Any = "median", overrides: Sequence[str] = (),
    seed: int = 0, worker: int = 0,
) -> Any:
    """Run trials in this process until the study has ``n_trials`` finished trials."""
    import optuna
    from optuna.study import MaxTrialsCallback
    from optuna.trial import TrialState

    from hubdet.training import load_config, train

    study = optuna.create_study(
        study_name=study_name, storage=storage, direction=direction, load_if_exists=True,
        sampler=optuna.samplers.TPESampler(seed=seed + worker), pruner=_pruner(pruner),
    )

    def objective(trial: optuna.Trial) -> float:
        values = suggest(trial, space)
        run_dir = output_dir / f"trial_{trial.number:04d}"
        cfg = load_config(config, list(overrides))
        cfg = load_config(None, {**cfg.flat(), **values, "train.output_dir": str(run_dir)})
        trial.set_user_attr("output_dir", str(run_dir))
        trial.set_user_attr("pid", os.getpid())
        best: list[float] = []

        def report(epoch: int, metrics: dict[str, Any]) -> None:
            value = metrics.get(metric)
            if value is None or (isinstance(value, float) and math.isnan(value)):
                raise optuna.TrialPruned(f"{metric} not reported at epoch {epoch}")
            best.append(float(value))
            trial.report(float(value), epoch)
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned at epoch {epoch} ({metric}={value:.4g})")

        result = train(cfg, epoch_callback=report)
        if result.get("test"):
            trial.set_user_attr("test", {k: v for k, v in result["test"].items() if isinstance(v, (int, float))})
        if not best:
            raise optuna.TrialPruned(f"{metric} was never reported")
        return min(best) if direction == "minimize" else max(best)

    study.optimize(
        objective, n_trials=n_trials, catch=(RuntimeError,),  # e.g. out of memory: record FAIL, go on
        callbacks=[MaxTrialsCallback(n_trials, states=(TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL))],
    )
    return study


def write_results(study: Any, output_dir: Path, config: str | None, overrides: Sequence[str]) -> dict[str, Path]:
    """``results.csv``, ``results.md`` and ``best_config.yaml`` (if any trial completed)."""
    from optuna.trial import TrialState

    from hubdet.training import load_config

    output_dir.mkdir(parents=True, exist_ok=True)
    trials = sorted(study.get_trials(deepcopy=False), key=lambda t: t.number)
    keys = sorted({k for t in trials for k in t.params})
    header = ["number", "state", "value", *keys, "epochs_reported", "seconds"]
    rows = []
    for t in trials:
        secs = (t.datetime_complete - t.datetime_start).total_seconds() if t.datetime_complete and t.datetime_start \
            else None
        rows.append([t.number, t.state.name, t.value, *[t.params.get(k) for k in keys], len(t.intermediate_values),
                     None if secs is None else round(secs, 1)])
    import csv

    paths = {"csv": output_dir / "results.csv", "md": output_dir / "results.md"}
    with open(paths["csv"], "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)

    def cell(v: Any) -> str:
        return "" if v is None else f"{v:.6g}" if isinstance(v, float) else str(v)

    lines = [f"# Sweep {study.study_name}: {study.direction.name.lower()} ", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    if complete:
        best = study.best_trial
        lines += ["", f"Best: trial {best.number}, value {cell(best.value)}, params {best.params}"]
        cfg = load_config(config, list(overrides))
        cfg = load_config(None, {**cfg.flat(), **best.params, "train.output_dir": str(output_dir / "best")})
        paths["best_config"] = output_dir / "best_config.yaml"
        paths["best_config"].write_text(
            f"# best of sweep {study.study_name!r}: trial {best.number}, value {best.value}\n"
            + yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    paths["md"].write_text("\n".join(lines) + "\n")
    return paths


def parse(argv: Sequence[str] | None = None) -> tuple[argparse.Namespace, list[str]]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", help="training config YAML (train.py's)")
    p.add_argument("--space", required=True, help="search space YAML")
    p.add_argument("--trials", type=int, default=20, help="finished trials in total (all workers)")
    p.add_argument("--storage", default=None, help="Optuna storage URL (default: SQLite in --output-dir)")
    p.add_argument("--study-name", "--study_name", default="hubdet-sweep")
    p.add_argument("--jobs", type=int, default=1, help="worker processes sharing the study")
    p.add_argument("--output-dir", "--output_dir", default="runs/sweep")
    p.add_argument("--metric", default=None, help="per-epoch metric to optimise (default: train.best_metric)")
    p.add_argument("--direction", choices=["minimize", "maximize"], default=None)
    p.add_argument("--pruner", default="median", choices=["median", "hyperband", "none"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--worker", type=int, default=0, help=argparse.SUPPRESS)
    return p.parse_known_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args, overrides = parse(argv)
    from hubdet._core.errors import ConfigError
    from hubdet.training import load_config, metric_mode

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        space = load_space(args.space)
        base = load_config(args.config, overrides)  # fail fast on a bad config or override
        metric = args.metric or base.train.best_metric
        direction = args.direction or ("minimize" if metric_mode(metric) == "min" else "maximize")
    except ConfigError as exc:
        print(f"sweep.py: error: {exc}", file=sys.stderr)
        return 2
    out = Path(args.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    storage = args.storage or f"sqlite:///{(out / 'study.db').resolve()}"
    common = dict(storage=storage, study_name=args.study_name, output_dir=out, metric=metric, direction=direction,
                  pruner=args.pruner, overrides=overrides, seed=args.seed)
    if args.worker:  # a worker started by the coordinator below
        run_worker(args.config, space, args.trials, worker=args.worker, **common)
        return 0
    import optuna

    optuna.create_study(study_name=args.study_name, storage=storage, direction=direction, load_if_exists=True)
    workers = []
    for w in range(1, args.jobs):
        cmd = [sys.executable, str(Path(__file__).resolve()), *(argv if argv is not None else sys.argv[1:]),
               "--worker", str(w)]
        workers.append(subprocess.Popen(cmd))
    study = run_worker(args.config, space, args.trials, worker=0, **common)
    codes = [p.wait() for p in workers]
    paths = write_results(optuna.load_study(study_name=args.study_name, storage=storage), out, args.config,
                          overrides)
    print(paths["md"].read_text())
    if any(codes):
        print(f"sweep.py: {sum(1 for c in codes if c)} worker(s) failed", file=sys.stderr)
        return 1
    return 0 if study is not None else 1


if __name__ == "__main__":
    sys.exit(main())
