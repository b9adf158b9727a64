#!/usr/bin/env python
"""Train any hubdet detector (classifier, box head, ensemble, probe) with one linear Accelerate ``main()``.

    python training/train.py --config training/configs/vit_classifier_tiny.yaml [--optim.lr 0.01 ...]
    accelerate launch [--multi_gpu --num_processes N] training/train.py --config X.yaml

Configuration: dataclass defaults < YAML file < ``--section.key value`` overrides (a unique leaf name such as
``--lr`` works too; ``--resume`` alone means ``--train.resume latest``; dashes and underscores are the same).
Unknown keys raise with suggestions. The resolved config is written to ``<output_dir>/training_config.yaml`` and
travels with the final model.

The trainer never branches on family names: a family declares ``trains_with_gradients`` (False: the probe, fitted
once on frozen features gathered from every process), ``supports_boxes`` (boxes go to ``forward`` and box metrics
are reported) and ``train_crop`` (how one training sample is cut; the box head samples native-resolution tiles).
Validation, calibration and test use ``detector.predict`` on the original images, i.e. exactly what users get.

``main(config, epoch_callback=None) -> dict`` is importable: ``training/sweep.py`` calls it in-process, and its
callback may raise (e.g. ``optuna.TrialPruned``) to stop a trial.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import logging
import math
import os
import shutil
import sys
import time
import types
import typing
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
import yaml

from hubdet._core.config import StrictConfig
from hubdet._core.errors import ConfigError
from hubdet.data.augment import AugmentConfig, Augmenter

logger = logging.getLogger("hubdet.train")

CONFIG_FILE = "training_config.yaml"
CURVES_FILE = "training_curves.png"
HISTORY_FILE = "history.json"
STATE_FILE = "trainer_state.json"


# ====================================================================================================== config
@dataclass
class DataConfig(StrictConfig):
    """Where the images come from and how the splits are made.

    ``source``/``data_dir``/``repo_id``/``options``/``reencode`` go to :func:`hubdet.data.load_source`. A split
    the source lacks (or set to null) is carved from train with ``split_seed`` (stratified by label):
    ``validation_fraction`` always, ``test_fraction`` when > 0 (fractions of the whole train split).
    ``balance``: ``downsample`` (every class cut to the smallest, once, seed 003) or ``weighted`` (a sampler
    drawing classes equally often, with replacement). ``also``: more sources
    (``{source, data_dir | repo_id, options}`` each, same ``reencode``) whose splits are appended to the
    same-named splits before carving (seed 003 merged two face sets).
    """

    source: str = "folder"
    data_dir: str | None = None
    repo_id: str | None = None
    options: dict[str, Any] = field(default_factory=dict)
    reencode: dict[str, Any] | None = None
    cache_dir: str | None = None
    train_split: str = "train"
    validation_split: str | None = "validation"
    test_split: str | None = "test"
    validation_fraction: float = 0.15
    test_fraction: float = 0.0
    split_seed: int = 0
    also: list[dict[str, Any]] = field(default_factory=list)
    max_train_samples: int | None = None
    max_eval_samples: int | None = None
    balance: Literal["none", "downsample", "weighted"] = "none"
    num_workers: int = 0

    def validate(self) -> None:
        for name in ("validation_fraction", "test_fraction"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise ConfigError(f"data.{name} must be in [0, 1), got {getattr(self, name)}")
        if self.validation_fraction + self.test_fraction >= 1.0:
            raise ConfigError("data.validation_fraction + data.test_fraction must be < 1")
        if self.balance not in ("none", "downsample", "weighted"):
            raise ConfigError(f"data.balance: {self.balance!r} is not none/downsample/weighted")
        if self.num_workers < 0:
            raise ConfigError("data.num_workers must be >= 0")


@dataclass
class ModelConfig(StrictConfig):
    """The detector: a registry name (``hubdet list-detectors``) with family ``args`` and ``preprocess`` overrides.

    ``unfreeze_after_epochs``: from that epoch on every parameter trains (the family's freeze policy decides what
    is frozen before).
    """

    name: str = "classifier_tiny.test"
    pretrained: bool = False
    args: dict[str, Any] = field(default_factory=dict)
    preprocess: dict[str, Any] = field(default_factory=dict)
    unfreeze_after_epochs: int | None = None


@dataclass
class OptimConfig(StrictConfig):
    """Optimizer and learning-rate schedule.

    ``scheduler``: ``constant``, ``cosine`` (to ``min_lr``), ``step`` (times ``gamma`` every ``step_epochs``), each
    after ``warmup_steps`` of linear warm-up; or ``plateau`` (ReduceLROnPlateau on ``plateau_monitor`` once per
    epoch, seed 000: patience 2, factor 0.1, min_lr 1e-6). ``grad_clip``: max gradient norm (None: off).
    """

    optimizer: Literal["adamw", "adam", "sgd"] = "adamw"
    lr: float = 1e-3
    weight_decay: float = 0.0
    momentum: float = 0.9
    nesterov: bool = False
    betas: tuple[float, float] = (0.9, 0.999)
    scheduler: Literal["constant", "cosine", "step", "plateau"] = "constant"
    warmup_steps: int = 0
    min_lr: float = 1e-6
    step_epochs: int = 1
    gamma: float = 0.1
    plateau_monitor: str = "train_loss"
    plateau_patience: int = 2
    plateau_factor: float = 0.1
    grad_clip: float | None = 1.0
    grad_accum_steps: int = 1

    def validate(self) -> None:
        if self.optimizer not in ("adamw", "adam", "sgd"):
            raise ConfigError(f"optim.optimizer: {self.optimizer!r} is not adamw/adam/sgd")
        if self.scheduler not in ("constant", "cosine", "step", "plateau"):
            raise ConfigError(f"optim.scheduler: {self.scheduler!r} is not constant/cosine/step/plateau")
        if self.lr <= 0:
            raise ConfigError("optim.lr must be > 0")
        if self.grad_accum_steps < 1:
            raise ConfigError("optim.grad_accum_steps must be >= 1")
        if self.scheduler == "plateau" and self.warmup_steps:
            raise ConfigError("optim.warmup_steps is not supported with scheduler 'plateau'")


@dataclass
class TrainConfig(StrictConfig):
    """The run: epochs, batch size (per process), seeding, checkpoints, logging, early stopping, hub push.

    ``best_metric`` selects the best epoch (``best_mode`` ``auto``: min for ``*loss``, else max);
    ``early_stopping_patience`` epochs without improvement of ``early_stopping_monitor`` stop the run (seed 000: 3
    on the training loss). ``resume``: ``latest`` or a checkpoint folder. ``stop_after_steps`` and ``sample_log``
    are debugging aids: stop as if killed after that many optimizer steps; write each rank's sample ids.
    ``find_unused_parameters``: for DDP, when some parameters get no gradient in a step (set automatically with
    ``model.unfreeze_after_epochs``).
    """

    output_dir: str = "runs/hubdet"
    epochs: int = 1
    batch_size: int = 32
    eval_batch_size: int = 64
    seed: int = 0
    mixed_precision: Literal["auto", "no", "fp16", "bf16"] = "auto"
    cpu: bool = False
    best_metric: str = "val_loss"
    best_mode: Literal["auto", "min", "max"] = "auto"
    early_stopping_patience: int | None = None
    early_stopping_monitor: str = "val_loss"
    early_stopping_min_delta: float = 0.0
    checkpoint_every_steps: int | None = None
    keep_checkpoints: int = 2
    resume: str | None = None
    log_with: Literal["tensorboard", "none"] = "tensorboard"
    log_every_steps: int = 10
    calibrate: bool = True
    push_to_hub: str | None = None
    hub_private: bool = False
    stop_after_steps: int | None = None
    sample_log: str | None = None
    progress: bool = True
    find_unused_parameters: bool = False

    def validate(self) -> None:
        if self.epochs < 1 or self.batch_size < 1 or self.eval_batch_size < 1:
            raise ConfigError("train.epochs, train.batch_size and train.eval_batch_size must be >= 1")
        if self.checkpoint_every_steps is not None and self.checkpoint_every_steps < 1:
            raise ConfigError("train.checkpoint_every_steps must be >= 1 or null")
        if self.keep_checkpoints < 1:
            raise ConfigError("train.keep_checkpoints must be >= 1")


@dataclass
class Config(StrictConfig):
    """Everything a run needs; see the sections' docstrings."""

    data: DataConfig = field(default_factory=DataConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


#: Short flags: ``--resume`` (no value: latest), ``--push_to_hub REPO``, ``--output_dir DIR`` ...
_ALIASES = {"resume": "train.resume", "push_to_hub": "train.push_to_hub", "output_dir": "train.output_dir",
            "stop_after_steps": "train.stop_after_steps", "seed": "train.seed", "epochs": "train.epochs"}
_BARE_FLAG_VALUES = {"train.resume": "latest"}


def _leaf_types(cls: type = Config, prefix: str = "") -> dict[str, Any]:
    """Dotted key -> type annotation, for every field (recursing into nested configs)."""
    out: dict[str, Any] = {}
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        key = prefix + f.name
        if isinstance(tp, type) and issubclass(tp, StrictConfig):
            out.update(_leaf_types(tp, key + "."))
        else:
            out[key] = tp
    return out


def _union_args(tp: Any) -> tuple[Any, ...]:
    return typing.get_args(tp) if typing.get_origin(tp) in (typing.Union, types.UnionType) else (tp,)


def _wants_str(tp: Any) -> bool:
    args = _union_args(tp)
    return str in args and not ({int, float, bool} & set(args))


def _is_mapping(tp: Any) -> bool:
    return any(typing.get_origin(a) is dict or a is dict for a in _union_args(tp))


def _parse_value(raw: str, tp: Any) -> Any:
    if _wants_str(tp) and raw not in ("null", "None", "~"):
        return raw
    value = yaml.safe_load(raw)
    if isinstance(value, str):  # YAML 1.1 reads 1e-3 as a string
        try:
            return float(value)
        except ValueError:
            return value
    return value


def resolve_key(key: str) -> str:
    """Map a command-line key (dotted, a unique leaf name or an alias) to its dotted config path."""
    key = key.replace("-", "_")
    leaves = _leaf_types()
    if key in _ALIASES:
        return _ALIASES[key]
    if key in leaves:
        return key
    head = key.split(".")
    for n in range(len(head) - 1, 0, -1):  # free-form dict fields: --model.args.drop_rate 0.1
        base = ".".join(head[:n])
        if base in leaves and _is_mapping(leaves[base]):
            return key
    matches = [k for k in leaves if k.split(".")[-1] == key]
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise ConfigError(f"--{key} is ambiguous: use one of {['--' + m for m in matches]}")
    close = difflib.get_close_matches(key, list(leaves) + [k.split(".")[-1] for k in leaves], n=3)
    hint = f" (did you mean {', '.join('--' + c for c in close)}?)" if close else ""
    raise ConfigError(f"unknown option --{key}{hint}")


def _set_path(data: dict[str, Any], path: str, value: Any) -> None:
    parts = path.split(".")
    node = data
    for part in parts[:-1]:
        nxt = node.get(part)
        if not isinstance(nxt, dict):
            nxt = {}
            node[part] = nxt
        node = nxt
    node[parts[-1]] = value


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def load_config(path: str | os.PathLike | None = None, overrides: Sequence[str] | dict[str, Any] = ()) -> Config:
    """Defaults < YAML ``path`` < ``overrides`` (``["--optim.lr", "0.01", ...]`` or ``{"optim.lr": 0.01}``)."""
    data: dict[str, Any] = Config().to_dict()
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file {p} not found")
        loaded = yaml.safe_load(p.read_text()) or {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{p}: expected a mapping at the top level")
        Config.from_dict(_merge(Config().to_dict(), loaded), where=str(p))  # unknown keys name the file
        data = _merge(data, loaded)
    leaves = _leaf_types()
    pairs = overrides.items() if isinstance(overrides, dict) else _pairs(list(overrides))
    for key, value in pairs:
        dotted = resolve_key(key)
        if isinstance(value, str) and not isinstance(overrides, dict):
            value = _parse_value(value, leaves.get(dotted, Any))
        _set_path(data, dotted, value)
    return Config.from_dict(data, where=str(path) if path else "config")


def _pairs(argv: list[str]) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if not arg.startswith("--"):
            raise ConfigError(f"expected --key value, got {arg!r}")
        key = arg[2:]
        if "=" in key:
            key, value = key.split("=", 1)
            out.append((key, value))
            i += 1
            continue
        dotted = resolve_key(key)
        if i + 1 >= len(argv) or argv[i + 1].startswith("--"):
            value = _BARE_FLAG_VALUES.get(dotted, "true")
            out.append((key, value))
            i += 1
        else:
            out.append((key, argv[i + 1]))
            i += 2
    return out


def parse_args(argv: Sequence[str] | None = None) -> Config:
    """``--config FILE`` then ``--key value`` overrides."""
    argv = list(sys.argv[1:] if argv is None else argv)
    path = None
    if "--config" in argv:
        i = argv.index("--config")
        if i + 1 >= len(argv):
            raise ConfigError("--config needs a file")
        path = argv[i + 1]
        argv = argv[:i] + argv[i + 2:]
    else:
        for i, a in enumerate(argv):
            if a.startswith("--config="):
                path = a.split("=", 1)[1]
                argv = argv[:i] + argv[i + 1:]
                break
    if argv and argv[0] in ("-h", "--help"):
        print(__doc__)
        print("options (dotted; defaults shown):")
        for key, value in _flatten(Config().to_dict()).items():
            print(f"  --{key} {value!r}")
        raise SystemExit(0)
    return load_config(path, argv)


def _flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in d.items():
        if isinstance(v, dict) and prefix.count(".") < 1 and k in {f.name for f in dataclasses.fields(Config)}:
            out.update(_flatten(v, f"{k}."))
        else:
            out[prefix + k] = v
    return out


# ====================================================================================================== data
def load_splits(cfg: DataConfig) -> dict[str, Any]:
    """``{"train", "validation", "test"?}`` datasets from the source, carving missing splits from train."""
    import datasets

    from hubdet.data import load_source

    def load(source: str, data_dir: str | None, repo_id: str | None, options: dict[str, Any]) -> Any:
        ds = load_source(source, data_dir, repo_id=repo_id, reencode=cfg.reencode, cache_dir=cfg.cache_dir,
                         **options)
        return datasets.DatasetDict({"train": ds}) if isinstance(ds, datasets.Dataset) else ds

    ds = load(cfg.source, cfg.data_dir, cfg.repo_id, cfg.options)
    for i, extra in enumerate(cfg.also):
        unknown = set(extra) - {"source", "data_dir", "repo_id", "options"}
        if unknown or "source" not in extra:
            raise ConfigError(f"data.also[{i}]: needs 'source' (+ data_dir or repo_id, options); "
                              f"unknown keys {sorted(unknown)}")
        more = load(extra["source"], extra.get("data_dir"), extra.get("repo_id"), extra.get("options") or {})
        for split, part in more.items():
            ds[split] = datasets.concatenate_datasets([ds[split], part]) if split in ds else part
    if cfg.train_split not in ds:
        raise ConfigError(f"data.train_split {cfg.train_split!r} not in the source's splits {list(ds)}")
    train = ds[cfg.train_split]
    total = len(train)  # carved fractions are of the whole train split
    out: dict[str, Any] = {}
    carve = [("test", cfg.test_split, cfg.test_fraction), ("validation", cfg.validation_split,
                                                            cfg.validation_fraction)]
    for role, split_name, fraction in carve:
        if split_name is not None and split_name in ds and split_name != cfg.train_split:
            out[role] = ds[split_name]
        elif fraction > 0:
            train, out[role] = _carve(train, max(1, round(total * fraction)), cfg.split_seed)
    if "validation" not in out:
        raise ConfigError("no validation split: the source has none and data.validation_fraction is 0")
    if cfg.balance == "downsample":
        train = _downsample(train, cfg.split_seed)
    if cfg.max_train_samples is not None:
        train = train.shuffle(seed=cfg.split_seed).select(range(min(cfg.max_train_samples, len(train))))
    out["train"] = train
    if cfg.max_eval_samples is not None:
        for role in ("validation", "test"):
            if role in out:
                n = min(cfg.max_eval_samples, len(out[role]))
                out[role] = out[role].shuffle(seed=cfg.split_seed).select(range(n))
    return out


def _carve(ds: Any, n: int, seed: int) -> tuple[Any, Any]:
    """Split ``n`` examples off ``ds`` (stratified by label when both classes have two or more)."""
    labels = ds["label"]
    classes = len(set(labels))
    ok = classes > 1 and min(np.bincount(labels)) >= 2 and classes <= n <= len(ds) - classes
    stratify = "label" if ok else None
    if n >= len(ds):
        raise ConfigError(f"cannot carve {n} examples from a split of {len(ds)}")
    parts = ds.train_test_split(test_size=n, seed=seed, stratify_by_column=stratify)
    return parts["train"], parts["test"]


def _downsample(ds: Any, seed: int) -> Any:
    labels = np.asarray(ds["label"])
    counts = np.bincount(labels, minlength=2)
    n = int(counts[counts > 0].min())
    rng = np.random.default_rng(seed)
    keep = np.concatenate([rng.choice(np.flatnonzero(labels == c), n, replace=False) for c in np.unique(labels)])
    return ds.select(sorted(keep.tolist()))


def union_box(boxes: Sequence[Sequence[float]]) -> list[float] | None:
    """The one region a detector predicts: the bounding box of all boxes (``None`` without boxes)."""
    if not boxes:
        return None
    arr = np.asarray(boxes, dtype=np.float64)
    return [float(arr[:, 0].min()), float(arr[:, 1].min()), float(arr[:, 2].max()), float(arr[:, 3].max())]


class TrainingSamples(torch.utils.data.Dataset):
    """Training tensors: geometric augmentation -> ``detector.train_crop`` -> photometric augmentation -> tensor.

    Every sample draws from ``numpy.random.default_rng([seed, epoch, index])``: the same sample gets the same
    augmentation whatever the worker, process count or resume point.
    """

    def __init__(self, hf_ds: Any, detector: Any, augmenter: Augmenter | None, seed: int) -> None:
        wanted = ("image", "label", "boxes") if detector.supports_boxes else ("image", "label")
        self.ds = hf_ds.select_columns([c for c in wanted if c in hf_ds.column_names])
        self.train_crop = detector.train_crop
        self.preprocess = detector.config.preprocess
        self.augmenter = augmenter
        self.seed = seed
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, index: int) -> dict[str, Any]:
        from hubdet.models.preprocessing import to_tensor

        ex = self.ds[int(index)]
        rng = np.random.default_rng([self.seed, self.epoch, int(index)])
        image = ex["image"].convert("RGB") if ex["image"].mode != "RGB" else ex["image"]
        label = int(ex["label"])
        boxes = [list(b) for b in (ex.get("boxes") or [])]
        if self.augmenter is not None:
            image, boxes = self.augmenter.geometric(image, boxes, rng)
        image, box, label = self.train_crop(image, label=label, box=union_box(boxes) if label == 1 else None, rng=rng)
        if self.augmenter is not None:
            image = self.augmenter.photometric(image, rng)
        has_box = box is not None
        return {
            "pixel_values": to_tensor(image, self.preprocess),
            "labels": torch.tensor(float(label)),
            "boxes": torch.tensor(box if has_box else [0.0, 0.0, 0.0, 0.0], dtype=torch.float32),
            "has_box": torch.tensor(has_box),
            "index": torch.tensor(int(index)),
        }


class EpochSampler(torch.utils.data.Sampler[int]):
    """A permutation (or, with ``weights``, a class-balanced draw with replacement) seeded by (seed, epoch)."""

    def __init__(self, n: int, seed: int, weights: torch.Tensor | None = None) -> None:
        self.n, self.seed, self.weights, self.epoch = n, seed, weights, 0

    def use_epoch(self, epoch: int) -> None:
        """Draw the order of ``epoch``. (Not ``set_epoch``: accelerate calls that with its own iteration count,
        which restarts at 0 after a resume.)"""
        self.epoch = epoch

    def __len__(self) -> int:
        return self.n

    def __iter__(self) -> Any:
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + self.epoch)
        if self.weights is not None:
            return iter(torch.multinomial(self.weights, self.n, replacement=True, generator=g).tolist())
        return iter(torch.randperm(self.n, generator=g).tolist())


def class_weights(labels: Sequence[int]) -> torch.Tensor:
    """Per-sample weights ``1 / count(class)`` (each class drawn equally often)."""
    arr = np.asarray(labels)
    counts = np.bincount(arr, minlength=2).astype(np.float64)
    return torch.as_tensor(1.0 / counts[arr], dtype=torch.double)


class EvalImages(torch.utils.data.Dataset):
    """``(index, PIL image, label, boxes)`` of the indices one process evaluates."""

    def __init__(self, hf_ds: Any, indices: Sequence[int]) -> None:
        keep = [c for c in ("image", "label", "boxes") if c in hf_ds.column_names]
        self.ds, self.indices = hf_ds.select_columns(keep), list(indices)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> tuple[int, Any, int, list]:
        ex = self.ds[self.indices[i]]
        return self.indices[i], ex["image"], int(ex["label"]), [list(b) for b in (ex.get("boxes") or [])]


def _list_collate(items: list[Any]) -> list[Any]:
    return items


# ====================================================================================================== metrics
def compute_metrics(records: list[dict[str, Any]], *, with_boxes: bool, prefix: str) -> dict[str, float | None]:
    """Loss (image-level BCE of the raw logits), binary metrics of calibrated probs, box IoU when boxes."""
    from hubdet.eval.metrics import binary_metrics, box_metrics

    labels = np.asarray([r["label"] for r in records], dtype=np.float64)
    logits = torch.tensor([r["logit"] for r in records], dtype=torch.float64)
    probs = [r["prob"] for r in records]
    loss = float(torch.nn.functional.binary_cross_entropy_with_logits(logits, torch.from_numpy(labels)))
    binary = binary_metrics(labels, probs)
    out: dict[str, float | None] = {f"{prefix}loss": loss}
    for key in ("accuracy", "precision", "recall", "f1", "roc_auc", "average_precision", "eer", "ece"):
        out[prefix + key] = binary.get(key)
    if with_boxes:
        fakes = [r for r in records if r["label"] == 1 and r["box_true"] is not None]
        boxes = box_metrics([r["box_pred"] for r in fakes], [r["box_true"] for r in fakes])
        out[prefix + "mean_iou"] = boxes["mean_iou"]
        out[prefix + "hit_rate@0.5"] = boxes.get("hit_rate@0.5")
    return out


# ====================================================================================================== helpers
def _atomic_replace(tmp: Path, final: Path) -> None:
    """Move a finished ``tmp`` folder to ``final`` (rename is atomic; a previous ``final`` is removed after)."""
    old = final.with_name(final.name + ".old")
    if old.exists():
        shutil.rmtree(old)
    if final.exists():
        final.rename(old)
    tmp.rename(final)
    if old.exists():
        shutil.rmtree(old)


def _tmp_dir(final: Path) -> Path:
    tmp = final.with_name(final.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    return tmp


def latest_checkpoint(output_dir: Path) -> Path | None:
    """The newest complete checkpoint (one with its trainer state) under ``output_dir/checkpoints``."""
    root = output_dir / "checkpoints"
    done = sorted(p for p in root.glob("step_*") if p.is_dir() and (p / STATE_FILE).is_file()) if root.is_dir() else []
    return done[-1] if done else None


def _build_optimizer(params: list[torch.nn.Parameter], cfg: OptimConfig) -> torch.optim.Optimizer:
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov,
                               weight_decay=cfg.weight_decay)
    cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    return cls(params, lr=cfg.lr, betas=tuple(cfg.betas), weight_decay=cfg.weight_decay)


def _build_schedulers(optimizer: torch.optim.Optimizer, cfg: OptimConfig, steps_per_epoch: int,
                      epochs: int) -> tuple[torch.optim.lr_scheduler.LambdaLR, Any]:
    """A per-optimizer-step LambdaLR (warm-up, cosine, step) and an optional per-epoch ReduceLROnPlateau."""
    total = max(1, steps_per_epoch * epochs)
    floor = min(cfg.min_lr / cfg.lr, 1.0)

    def factor(step: int) -> float:
        if cfg.warmup_steps and step < cfg.warmup_steps:
            return (step + 1) / cfg.warmup_steps
        if cfg.scheduler == "cosine":
            progress = min(1.0, (step - cfg.warmup_steps) / max(1, total - cfg.warmup_steps))
            return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))
        if cfg.scheduler == "step":
            return cfg.gamma ** (step // max(1, steps_per_epoch * cfg.step_epochs))
        return 1.0

    per_step = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
    plateau = None
    if cfg.scheduler == "plateau":
        plateau = torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="max" if _mode(cfg.plateau_monitor, "auto") == "max" else "min",
            factor=cfg.plateau_factor, patience=cfg.plateau_patience, min_lr=cfg.min_lr,
        )
    return per_step, plateau


def _mode(metric: str, mode: str) -> str:
    if mode != "auto":
        return mode
    return "min" if metric.endswith("loss") or metric.endswith("eer") or metric.endswith("ece") else "max"


def _improved(value: float | None, best: float | None, mode: str, min_delta: float = 0.0) -> bool:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return False
    return best is None or (value < best - min_delta if mode == "min" else value > best + min_delta)


def _check_monitors(cfg: Config, metrics: dict[str, Any]) -> None:
    """A misspelt monitor must not silently stop a run or never pick a best epoch."""
    wanted = {"train.best_metric": cfg.train.best_metric}
    if cfg.train.early_stopping_patience is not None:
        wanted["train.early_stopping_monitor"] = cfg.train.early_stopping_monitor
    if cfg.optim.scheduler == "plateau":
        wanted["optim.plateau_monitor"] = cfg.optim.plateau_monitor
    for key, name in wanted.items():
        if name not in metrics:
            close = difflib.get_close_matches(name, list(metrics), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"{key}: {name!r} is not a reported metric{hint}; reported: {sorted(metrics)}")


def _hparams(cfg: Config) -> dict[str, Any]:
    """Flat scalar hyperparameters for TensorBoard."""
    out: dict[str, Any] = {}

    def walk(d: dict[str, Any], prefix: str) -> None:
        for k, v in d.items():
            if isinstance(v, dict) and k not in ("options", "args", "preprocess", "reencode"):
                walk(v, f"{prefix}{k}/")
            elif isinstance(v, (int, float, str, bool)):
                out[prefix + k] = v
            else:
                out[prefix + k] = json.dumps(v)

    walk(cfg.to_dict(), "")
    return out


def plot_curves(history: list[dict[str, Any]], path: Path) -> Path | None:
    """Loss, accuracy/ROC-AUC/IoU and learning rate per epoch, as one PNG (matplotlib, Agg)."""
    if not history:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] + 1 for h in history]
    panels = [("loss", ["train_loss", "val_loss"]),
              ("quality", ["train_accuracy", "val_accuracy", "val_roc_auc", "val_mean_iou"]),
              ("learning rate", ["lr"])]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    for ax, (title, keys) in zip(axes, panels, strict=True):
        for key in keys:
            ys = [h.get(key) for h in history]
            if any(y is not None for y in ys):
                ax.plot(epochs, [np.nan if y is None else y for y in ys], marker="o", label=key)
        ax.set_title(title)
        ax.set_xlabel("epoch")
        if title == "learning rate" and any(h.get("lr") for h in history):
            ax.set_yscale("log")
        if ax.lines:
            ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def weights_digest(module: torch.nn.Module) -> str:
    """SHA-256 of every tensor of ``module.state_dict()`` (names, shapes and bytes)."""
    import hashlib

    h = hashlib.sha256()
    for name, t in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(str(tuple(t.shape)).encode())
        h.update(t.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _mixed_precision(choice: str, cpu: bool) -> str:
    if choice != "auto":
        return choice
    if cpu or not torch.cuda.is_available():
        return "no"
    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


# ====================================================================================================== main
def main(config: Config, epoch_callback: Callable[[int, dict[str, Any]], None] | None = None) -> dict[str, Any]:
    """Train, validate every epoch, keep the best, calibrate, test, save (and push). Returns a summary dict.

    ``epoch_callback(epoch, metrics)`` runs on every process after each epoch's validation; raising from it
    stops the run (after a clean shutdown) and propagates.
    """
    from accelerate import Accelerator, DataLoaderConfiguration, DistributedDataParallelKwargs
    from accelerate.utils import ProjectConfiguration, gather_object, set_seed
    from tqdm.auto import tqdm

    from hubdet.models import create_detector
    from hubdet.models.base import WEIGHTS_NAME

    cfg = config
    tc, oc = cfg.train, cfg.optim
    out_dir = Path(tc.output_dir)
    cpu = tc.cpu or not torch.cuda.is_available()
    accelerator = Accelerator(
        cpu=cpu,
        mixed_precision=_mixed_precision(tc.mixed_precision, cpu),
        gradient_accumulation_steps=oc.grad_accum_steps,
        log_with="tensorboard" if tc.log_with == "tensorboard" else None,
        project_config=ProjectConfiguration(project_dir=str(out_dir), logging_dir=str(out_dir / "logs")),
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=False),
        kwargs_handlers=[DistributedDataParallelKwargs(
            find_unused_parameters=tc.find_unused_parameters or cfg.model.unfreeze_after_epochs is not None)],
    )
    main_proc = accelerator.is_main_process
    logging.basicConfig(level=logging.INFO if accelerator.is_local_main_process else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True)
    if not main_proc:
        logging.getLogger().setLevel(logging.WARNING)
    for noisy in ("accelerate.accelerator", "accelerate.checkpointing"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    set_seed(tc.seed)
    if main_proc:
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / CONFIG_FILE).write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    logger.info("%d process(es) on %s, mixed precision %s", accelerator.num_processes, accelerator.device,
                accelerator.mixed_precision)

    # ------------------------------------------------------------------ detector and data
    detector = create_detector(cfg.model.name, pretrained=cfg.model.pretrained, preprocess=cfg.model.preprocess or None,
                               **cfg.model.args)
    with accelerator.main_process_first():
        splits = load_splits(cfg.data)
    logger.info("splits: %s", {k: len(v) for k, v in splits.items()})
    augmenter = None if cfg.augment.is_identity else Augmenter(cfg.augment)
    train_samples = TrainingSamples(splits["train"], detector, augmenter, tc.seed)
    weights = class_weights(splits["train"]["label"]) if cfg.data.balance == "weighted" else None
    sampler = EpochSampler(len(train_samples), tc.seed, weights)
    train_loader = torch.utils.data.DataLoader(
        train_samples, batch_size=tc.batch_size, sampler=sampler, num_workers=cfg.data.num_workers,
        pin_memory=not cpu, drop_last=False,
        generator=torch.Generator().manual_seed(tc.seed),  # iterators draw their base seed here, not globally
    )

    trains = detector.trains_with_gradients
    params = list(detector.parameters())
    optimizer = _build_optimizer(params, oc) if trains else None
    if trains:
        unfreeze_later = cfg.model.unfreeze_after_epochs is not None and accelerator.num_processes > 1
        frozen = [p for p in params if not p.requires_grad] if unfreeze_later else []
        for p in frozen:  # DDP only syncs parameters that require grad when it is built
            p.requires_grad_(True)
        model, optimizer, train_loader = accelerator.prepare(detector, optimizer, train_loader)
        for p in frozen:
            p.requires_grad_(False)
    else:  # frozen-feature families: no DDP wrapper (nothing to synchronise), features gathered instead
        model = detector.to(accelerator.device)
        train_loader = accelerator.prepare(train_loader)
    steps_per_epoch = math.ceil(len(train_loader) / oc.grad_accum_steps)
    per_step_sched, plateau = _build_schedulers(optimizer, oc, steps_per_epoch, tc.epochs) if trains else (None, None)
    for obj in (per_step_sched, plateau):
        if obj is not None:
            accelerator.register_for_checkpointing(obj)
    unwrapped = accelerator.unwrap_model(model)

    best_mode = _mode(tc.best_metric, tc.best_mode)
    es_mode = _mode(tc.early_stopping_monitor, "auto")
    state: dict[str, Any] = {"epoch": 0, "batches_done": 0, "global_step": 0, "best_value": None, "best_epoch": None,
                             "es_best": None, "bad_epochs": 0, "history": [], "stopped_early": False,
                             "partial_sums": None}

    # ------------------------------------------------------------------ resume
    if tc.resume:
        ckpt = latest_checkpoint(out_dir) if tc.resume == "latest" else Path(tc.resume)
        if ckpt is None:
            logger.warning("resume=latest but no checkpoint under %s: starting fresh", out_dir / "checkpoints")
        else:
            if not (ckpt / STATE_FILE).is_file():
                raise ConfigError(f"{ckpt}: not a complete checkpoint (no {STATE_FILE})")
            accelerator.load_state(str(ckpt))
            state.update(json.loads((ckpt / STATE_FILE).read_text()))
            logger.info("resumed from %s (epoch %d, batch %d, step %d)", ckpt, state["epoch"],
                        state["batches_done"], state["global_step"])

    def save_checkpoint(sums: torch.Tensor | None = None) -> None:
        # mid-epoch: keep the epoch's running loss/accuracy sums (summed over processes) so a resumed epoch
        # reports the same training metrics
        state["partial_sums"] = accelerator.reduce(sums.clone(), reduction="sum").tolist() if sums is not None \
            else None
        final = out_dir / "checkpoints" / f"step_{state['global_step']:09d}"
        tmp = final.with_name(final.name + ".tmp")
        if main_proc:
            if tmp.exists():
                shutil.rmtree(tmp)
            tmp.mkdir(parents=True)
        accelerator.wait_for_everyone()
        accelerator.save_state(str(tmp))  # every rank writes its RNG state
        accelerator.wait_for_everyone()
        if main_proc:
            (tmp / STATE_FILE).write_text(json.dumps(state, indent=1))
            _atomic_replace(tmp, final)
            done = sorted(p for p in final.parent.glob("step_*") if p.is_dir() and not p.name.endswith(".tmp"))
            for old in done[: -tc.keep_checkpoints]:
                shutil.rmtree(old, ignore_errors=True)
        accelerator.wait_for_everyone()

    def save_best() -> None:
        if main_proc:
            final = out_dir / "best"
            tmp = _tmp_dir(final)
            unwrapped.save_pretrained(tmp, card=False)
            _atomic_replace(tmp, final)
        accelerator.wait_for_everyone()

    def load_best() -> None:
        folder = out_dir / "best"
        if (folder / WEIGHTS_NAME).is_file():
            unwrapped.load_extra(folder)
            unwrapped.load_weights(folder / WEIGHTS_NAME)

    def predict_split(hf_ds: Any) -> list[dict[str, Any]]:
        """``detector.predict`` on this process's share of the images, gathered and sorted on every process."""
        ids = list(range(len(hf_ds)))[accelerator.process_index:: accelerator.num_processes]
        loader = torch.utils.data.DataLoader(EvalImages(hf_ds, ids), batch_size=tc.eval_batch_size,
                                             num_workers=cfg.data.num_workers, collate_fn=_list_collate,
                                             generator=torch.Generator())
        records = []
        with accelerator.autocast():
            for batch in loader:
                preds = unwrapped.predict([b[1] for b in batch], batch_size=tc.eval_batch_size)
                for (idx, _img, label, boxes), pred in zip(batch, preds, strict=True):
                    records.append({"index": idx, "label": label, "logit": pred.logit, "prob": pred.prob,
                                    "box_pred": pred.box, "box_true": union_box(boxes)})
        unwrapped.train(trains)
        gathered = gather_object(records) if accelerator.num_processes > 1 else records
        return sorted(gathered, key=lambda r: r["index"])

    def log_samples(epoch: int, indices: torch.Tensor) -> None:
        if tc.sample_log:
            with open(f"{tc.sample_log}.rank{accelerator.process_index}", "a") as fh:
                fh.write("".join(f"{epoch} {int(i)}\n" for i in indices.tolist()))

    if tc.log_with == "tensorboard":
        accelerator.init_trackers("tensorboard", config=_hparams(cfg))
    stopped_at: int | None = None
    try:
        # -------------------------------------------------------------- training
        if trains:
            for epoch in range(state["epoch"], tc.epochs):
                if state["stopped_early"]:  # resumed from the checkpoint of the epoch that stopped the run
                    break
                if cfg.model.unfreeze_after_epochs is not None and epoch >= cfg.model.unfreeze_after_epochs:
                    frozen_now = [p for p in unwrapped.parameters() if not p.requires_grad]
                    for p in frozen_now:
                        p.requires_grad_(True)
                    if frozen_now:
                        logger.info("epoch %d: unfroze %d parameter tensors", epoch + 1, len(frozen_now))
                sampler.use_epoch(epoch)
                train_samples.epoch = epoch
                skip = state["batches_done"] if epoch == state["epoch"] else 0
                loader = accelerator.skip_first_batches(train_loader, skip) if skip else train_loader
                model.train()
                accelerator.step = 0
                sums = torch.zeros(3, device=accelerator.device)  # loss*n, correct, n (this process)
                if skip and main_proc and state.get("partial_sums"):
                    sums += torch.tensor(state["partial_sums"], device=accelerator.device)
                bar = tqdm(total=len(train_loader), initial=skip, desc=f"epoch {epoch + 1}/{tc.epochs}",
                           disable=not (accelerator.is_local_main_process and tc.progress), leave=False)
                state["batches_done"] = skip
                started = time.perf_counter()
                for batch in loader:
                    log_samples(epoch, batch["index"])
                    with accelerator.accumulate(model):
                        out = model(batch["pixel_values"], labels=batch["labels"],
                                    boxes=batch["boxes"] if unwrapped.supports_boxes else None)
                        accelerator.backward(out.loss)
                        if accelerator.sync_gradients and oc.grad_clip:
                            accelerator.clip_grad_norm_(model.parameters(), oc.grad_clip)
                        optimizer.step()
                        optimizer.zero_grad()
                    n = batch["labels"].numel()
                    sums += torch.stack([out.loss.detach().float() * n,
                                         ((out.logits.detach() >= 0).float() == batch["labels"]).sum().float(),
                                         torch.tensor(float(n), device=accelerator.device)])
                    state["batches_done"] += 1
                    bar.update(1)
                    if not accelerator.sync_gradients:
                        continue
                    per_step_sched.step()
                    state["global_step"] += 1
                    step = state["global_step"]
                    if step % tc.log_every_steps == 0:
                        bar.set_postfix(loss=f"{out.loss.item():.4f}")
                        accelerator.log({"train/loss_step": out.loss.item(),
                                         "train/lr": optimizer.param_groups[0]["lr"],
                                         **{f"train/{k}": float(v) for k, v in out.losses.items()}}, step=step)
                    last_batch = state["batches_done"] == len(train_loader)  # the epoch checkpoint follows
                    if tc.checkpoint_every_steps and step % tc.checkpoint_every_steps == 0 and not last_batch:
                        save_checkpoint(sums)
                    if tc.stop_after_steps is not None and step >= tc.stop_after_steps:
                        stopped_at = step
                        break
                bar.close()
                if stopped_at is not None:
                    logger.warning("stopping after %d steps (train.stop_after_steps)", stopped_at)
                    break
                seconds = time.perf_counter() - started
                totals = accelerator.reduce(sums, reduction="sum")
                fresh = float(totals[2]) - (state["partial_sums"][2] if skip and state.get("partial_sums") else 0.0)
                metrics: dict[str, Any] = {
                    "epoch": epoch, "step": state["global_step"], "lr": optimizer.param_groups[0]["lr"],
                    "train_loss": float(totals[0] / totals[2]), "train_accuracy": float(totals[1] / totals[2]),
                    "train_seconds": seconds, "train_images_per_s": fresh / max(seconds, 1e-9),
                }
                metrics.update(compute_metrics(predict_split(splits["validation"]),
                                               with_boxes=unwrapped.supports_boxes, prefix="val_"))
                _check_monitors(cfg, metrics)
                if plateau is not None:
                    plateau.step(metrics[oc.plateau_monitor])
                state["history"].append(metrics)
                accelerator.log({k.replace("_", "/", 1): v for k, v in metrics.items()
                                 if isinstance(v, (int, float)) and k not in ("epoch", "step")},
                                step=state["global_step"])
                logger.info("epoch %d: %s", epoch + 1, {k: round(v, 4) if isinstance(v, float) else v
                                                          for k, v in metrics.items()})
                if _improved(metrics.get(tc.best_metric), state["best_value"], best_mode):
                    state["best_value"], state["best_epoch"] = metrics[tc.best_metric], epoch
                    save_best()
                if _improved(metrics.get(tc.early_stopping_monitor), state["es_best"], es_mode,
                             tc.early_stopping_min_delta):
                    state["es_best"], state["bad_epochs"] = metrics[tc.early_stopping_monitor], 0
                else:
                    state["bad_epochs"] += 1
                state["epoch"], state["batches_done"] = epoch + 1, 0
                if tc.early_stopping_patience is not None and state["bad_epochs"] >= tc.early_stopping_patience:
                    state["stopped_early"] = True
                save_checkpoint()
                if epoch_callback is not None:
                    epoch_callback(epoch, metrics)
                if state["stopped_early"]:
                    logger.info("early stopping: %s did not improve for %d epochs", tc.early_stopping_monitor,
                                state["bad_epochs"])
                    break
        else:
            # -------------------------------------------------------------- frozen features: one pass, one fit
            model.eval()
            feats, labels = [], []
            with torch.no_grad(), accelerator.autocast():
                for batch in tqdm(train_loader, desc="features",
                                  disable=not (accelerator.is_local_main_process and tc.progress)):
                    log_samples(0, batch["index"])
                    f = unwrapped.extract_features(batch["pixel_values"])
                    feats.append(accelerator.gather_for_metrics(f.float()).cpu())
                    labels.append(accelerator.gather_for_metrics(batch["labels"]).cpu())
            fit: dict[str, Any] = {}
            if main_proc:
                fit = unwrapped.fit_head(torch.cat(feats).numpy(), torch.cat(labels).numpy().astype(int)) or {}
            save_best()
            load_best()  # every process now holds the head fitted on the main one
            metrics = {"epoch": 0, "step": 0, "lr": None, **{f"train_{k}": v for k, v in fit.items()}}
            metrics.update(compute_metrics(predict_split(splits["validation"]),
                                           with_boxes=unwrapped.supports_boxes, prefix="val_"))
            state["history"].append(metrics)
            state.update(epoch=1, best_value=metrics.get(tc.best_metric), best_epoch=0)
            accelerator.log({k.replace("_", "/", 1): v for k, v in metrics.items()
                             if isinstance(v, (int, float)) and k not in ("epoch", "step")}, step=0)
            if epoch_callback is not None:
                epoch_callback(0, metrics)

        if tc.sample_log:  # debugging aid: every rank records a digest of its final weights
            with open(f"{tc.sample_log}.rank{accelerator.process_index}", "a") as fh:
                fh.write(f"weights {weights_digest(unwrapped)}\n")
        if stopped_at is not None:
            return {"stopped_at_step": stopped_at, "output_dir": str(out_dir), "history": state["history"]}

        # -------------------------------------------------------------- best weights, calibration, test
        accelerator.wait_for_everyone()
        load_best()
        val_records = predict_split(splits["validation"])
        source_tag = f"{cfg.data.source}:{Path(cfg.data.data_dir).name if cfg.data.data_dir else cfg.data.repo_id}"
        if tc.calibrate:
            unwrapped.calibrate(torch.tensor([r["logit"] for r in val_records]),
                                torch.tensor([float(r["label"]) for r in val_records]),
                                fitted_on=f"{source_tag}/validation (n={len(val_records)})")
            for r in val_records:
                r["prob"] = float(unwrapped.calibrated_probs(torch.tensor([r["logit"]]))[0])
        val_metrics = compute_metrics(val_records, with_boxes=unwrapped.supports_boxes, prefix="")
        test_metrics = None
        if "test" in splits:
            test_metrics = compute_metrics(predict_split(splits["test"]), with_boxes=unwrapped.supports_boxes,
                                           prefix="")
        accelerator.log({f"final_val/{k}": v for k, v in val_metrics.items() if v is not None}
                        | {f"test/{k}": v for k, v in (test_metrics or {}).items() if v is not None},
                        step=state["global_step"])

        model_dir = out_dir / "model"
        if main_proc:
            (out_dir / HISTORY_FILE).write_text(json.dumps(state["history"], indent=1))
            curves = plot_curves(state["history"], out_dir / CURVES_FILE)
            unwrapped.config.metadata["training"] = {
                "config": cfg.to_dict(), "best_epoch": state["best_epoch"], "best_metric": tc.best_metric,
                "best_value": state["best_value"], "steps": state["global_step"],
                "processes": accelerator.num_processes, "validation": val_metrics, "test": test_metrics,
            }
            kwargs = card_kwargs(cfg, splits, val_metrics, test_metrics, {
                "epochs_run": len(state["history"]), "processes": accelerator.num_processes, "steps":
                state["global_step"], "best_epoch": state["best_epoch"], "best_value": state["best_value"]})
            tmp = _tmp_dir(model_dir)
            unwrapped.save_pretrained(tmp, card_kwargs=kwargs)
            shutil.copy(out_dir / CONFIG_FILE, tmp / CONFIG_FILE)
            if curves is not None:
                shutil.copy(curves, tmp / CURVES_FILE)
            _atomic_replace(tmp, model_dir)
            logger.info("saved %s", model_dir)
            if tc.push_to_hub:
                extra = {CONFIG_FILE: model_dir / CONFIG_FILE}
                if curves is not None:
                    extra[CURVES_FILE] = model_dir / CURVES_FILE
                url = unwrapped.push_to_hub(tc.push_to_hub, private=tc.hub_private, card_kwargs=kwargs,
                                            extra_files=extra)
                logger.info("pushed to %s", url)
        accelerator.wait_for_everyone()
        return {"output_dir": str(out_dir), "model_dir": str(model_dir), "best_metric": tc.best_metric,
                "best_value": state["best_value"], "best_epoch": state["best_epoch"], "history": state["history"],
                "validation": val_metrics, "test": test_metrics, "global_step": state["global_step"],
                "stopped_early": state["stopped_early"]}
    finally:
        accelerator.end_training()  # closes trackers and destroys the process group
        _reset_accelerate_state()


def split_revision(hf_ds: Any, cfg: DataConfig) -> str:
    """A content fingerprint of an evaluated split (its files and labels, and how it was carved) for the card."""
    import hashlib

    if cfg.repo_id and cfg.options.get("revision"):
        return str(cfg.options["revision"])
    h = hashlib.sha256()
    files = hf_ds["file"] if "file" in hf_ds.column_names else [str(i) for i in range(len(hf_ds))]
    for f, y in zip(files, hf_ds["label"], strict=True):
        h.update(f"{f}\0{y}\n".encode())
    h.update(json.dumps({"split_seed": cfg.split_seed, "reencode": cfg.reencode}, sort_keys=True).encode())
    return "sha256:" + h.hexdigest()[:16]


_CARD_METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc", "average_precision", "eer", "ece", "mean_iou",
                 "hit_rate@0.5")


def card_kwargs(cfg: Config, splits: dict[str, Any], val: dict[str, Any], test: dict[str, Any] | None,
                summary: dict[str, Any]) -> dict[str, Any]:
    """``render_card`` arguments: the test split's results (validation's when there is no test split), the
    training recipe and the data."""
    role, metrics = ("test", test) if test is not None else ("validation", val)
    dataset_id = cfg.data.repo_id or cfg.data.source
    dataset_name = f"{cfg.data.source} ({cfg.data.repo_id or Path(cfg.data.data_dir or '.').name})"
    results = [{
        "dataset": dataset_id, "dataset_name": dataset_name, "split": role,
        "revision": split_revision(splits[role], cfg.data),
        "metrics": {k: metrics[k] for k in _CARD_METRICS if metrics.get(k) is not None},
    }]
    training = {
        "trainer": "training/train.py (hubdet)", "detector": cfg.model.name, "pretrained": cfg.model.pretrained,
        "epochs": f"{summary['epochs_run']} of {cfg.train.epochs}", "batch size per process": cfg.train.batch_size,
        "processes": summary["processes"], "optimizer": f"{cfg.optim.optimizer} lr={cfg.optim.lr:g} "
        f"wd={cfg.optim.weight_decay:g}" + (f" momentum={cfg.optim.momentum:g}" if cfg.optim.optimizer == "sgd"
                                            else ""),
        "schedule": cfg.optim.scheduler + (f" (warm-up {cfg.optim.warmup_steps} steps)" if cfg.optim.warmup_steps
                                           else ""),
        "gradient accumulation": cfg.optim.grad_accum_steps, "augmentation": "none" if cfg.augment.is_identity
        else json.dumps({k: v for k, v in cfg.augment.to_dict().items() if v != getattr(AugmentConfig(), k)}),
        "class balance": cfg.data.balance, "seed": cfg.train.seed, "best epoch": summary["best_epoch"],
        f"best {cfg.train.best_metric}": summary["best_value"], "optimizer steps": summary["steps"],
    }
    dataset = {"name": dataset_name, "id": dataset_id, "revision": results[0]["revision"],
               "reencode": json.dumps(cfg.data.reencode) if cfg.data.reencode else "none (original files)",
               **{f"{k} images": len(v) for k, v in splits.items()}}
    return {"eval_results": results if results[0]["metrics"] else [], "training": training, "dataset": dataset}


def _reset_accelerate_state() -> None:
    """Let ``main`` run again in the same process (sweeps, tests) with other Accelerator settings."""
    from accelerate.state import AcceleratorState, GradientState

    distributed = torch.distributed.is_available() and torch.distributed.is_initialized()
    if not distributed:
        AcceleratorState._reset_state(reset_partial_state=True)
        GradientState._reset_state()


def cli(argv: Sequence[str] | None = None) -> int:
    """Entry point: parse, train, flush, and leave a distributed run without torch's occasional exit abort."""
    try:
        config = parse_args(argv)
    except ConfigError as exc:
        print(f"train.py: error: {exc}", file=sys.stderr)
        return 2
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    code = 0
    try:
        result = main(config)
        if int(os.environ.get("RANK", "0")) == 0:
            print(json.dumps({k: v for k, v in result.items() if k != "history"}, default=str))
    except Exception:
        logging.getLogger("hubdet.train").exception("training failed")
        code = 1
    if distributed:
        # torch 2.x can abort in its atexit/destructor path after a gloo/nccl run even when everything finished;
        # everything is written and the process group destroyed by now, so leave without running destructors.
        sys.stdout.flush()
        sys.stderr.flush()
        logging.shutdown()
        os._exit(code)
    return code


if __name__ == "__main__":
    sys.exit(cli())
