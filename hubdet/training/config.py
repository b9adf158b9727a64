"""The training configuration: five strict dataclass sections, read as defaults < YAML file < command line.

Command-line flags are generated from the dataclasses with :mod:`argparse`: ``--section.key value`` for every
field, ``--key`` alone where the field name is unique (``--lr``, ``--batch_size``, ``--resume``), dashes or
underscores (``--push-to-hub``), ``--key=value``; values are read as YAML (``--augment.jpeg_quality "[50, 90]"``);
keys inside free-form mapping fields extend the path (``--model.args.drop_rate 0.1``). ``--resume`` alone means
``latest``; a bool alone means true. Unknown keys, in the YAML or on the command line, raise
:class:`~hubdet._core.errors.ConfigError` with close matches.

Why not ``transformers.HfArgumentParser`` or ``simple-parsing``: the first has no nested sections and cannot parse
mapping or tuple fields; the second (checked: 0.1.9) needs a prefix per section, rejects the mapping fields
(``model.args``, ``data.options``), has no unique-leaf aliases and gives no suggestions. Both would still need the
glue below, so the parser is argparse built from the dataclasses, and validation stays with
:class:`~hubdet._core.config.StrictConfig` (types, ``Literal`` choices, unknown keys).
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import os
import types
import typing
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from hubdet._core.config import StrictConfig
from hubdet._core.errors import ConfigError
from hubdet.data.augment import AugmentConfig

CONFIG_FILE = "training_config.yaml"


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
        if self.num_workers < 0:
            raise ConfigError("data.num_workers must be >= 0")
        for i, extra in enumerate(self.also):
            unknown = set(extra) - {"source", "data_dir", "repo_id", "options"}
            if unknown or "source" not in extra:
                raise ConfigError(f"data.also[{i}]: needs 'source' (+ data_dir or repo_id, options); "
                                  f"unknown keys {sorted(unknown)}")


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
        if self.lr <= 0:
            raise ConfigError("optim.lr must be > 0")
        if self.grad_accum_steps < 1:
            raise ConfigError("optim.grad_accum_steps must be >= 1")
        if self.scheduler == "plateau" and self.warmup_steps:
            raise ConfigError("optim.warmup_steps is not supported with scheduler 'plateau'")


@dataclass
class TrainConfig(StrictConfig):
    """The run: epochs, batch size (per process), seeding, checkpoints, logging, early stopping, hub push.

    ``best_metric`` selects the best epoch (``best_mode`` ``auto``: the metric table's direction);
    ``early_stopping_patience`` epochs without improvement of ``early_stopping_monitor`` stop the run (seed 000: 3
    on the training loss). Checkpoints (accelerate ``save_state``) go to ``<output_dir>/checkpoints/checkpoint_<i>``
    every ``checkpoint_every_steps`` optimizer steps and after every epoch; the newest ``keep_checkpoints`` are
    kept. ``resume``: ``latest`` or a checkpoint folder. ``stop_after_steps`` and ``sample_log`` are debugging
    aids: stop as if killed after that many optimizer steps; write each rank's sample ids.
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
    calibration_method: Literal["temperature", "platt"] = "temperature"
    # with a value, the shipped threshold: at most this share of the validation reals called fake (and of the
    # fakes called real below the uncertain band); None keeps the default 0.5 with its uncertain band
    threshold_fpr: float | None = None
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
        if self.threshold_fpr is not None and not 0.0 < self.threshold_fpr < 0.5:
            raise ConfigError(f"TrainConfig.threshold_fpr must be in (0, 0.5), got {self.threshold_fpr}")
        if self.keep_checkpoints < 1:
            raise ConfigError("train.keep_checkpoints must be >= 1")


@dataclass
class TrainingConfig(StrictConfig):
    """Everything a run needs; see the sections' docstrings."""

    data: DataConfig = field(default_factory=DataConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def flat(self) -> dict[str, Any]:
        """``{"optim.lr": 0.001, ...}``: every field by its dotted key (mapping fields stay whole)."""
        return {f"{section}.{k}": v for section, values in self.to_dict().items() for k, v in values.items()}


#: Values a flag takes when given without one.
BARE_VALUES = {"train.resume": "latest"}


# --------------------------------------------------------------------------- flags from the dataclasses


def leaf_types() -> dict[str, Any]:
    """Dotted key -> type annotation of every field of every section."""
    out: dict[str, Any] = {}
    for section in dataclasses.fields(TrainingConfig):
        cls = section.default_factory
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            out[f"{section.name}.{f.name}"] = hints[f.name]
    return out


def _union_args(tp: Any) -> tuple[Any, ...]:
    return typing.get_args(tp) if typing.get_origin(tp) in (typing.Union, types.UnionType) else (tp,)


def _is_mapping(tp: Any) -> bool:
    return any(typing.get_origin(a) is dict or a is dict for a in _union_args(tp))


def _value_parser(tp: Any) -> Any:
    """Command-line text -> value: strings stay strings (``null`` is None where allowed), the rest is YAML."""
    args = _union_args(tp)
    if str in args and not ({int, float, bool} & set(args)):
        def as_str(raw: str) -> str | None:
            return None if type(None) in args and raw in ("null", "None", "~") else raw
        return as_str

    def as_yaml(raw: str) -> Any:
        try:
            value = yaml.safe_load(raw)
        except yaml.YAMLError as exc:
            raise argparse.ArgumentTypeError(f"not valid YAML: {raw!r}") from exc
        if isinstance(value, str):  # YAML 1.1 reads 1e-3 as a string
            try:
                return float(value)
            except ValueError:
                return value
        return value
    return as_yaml


def _flag_names() -> dict[str, str]:
    """Every accepted flag name (without dashes, underscores as written) -> dotted key."""
    leaves = leaf_types()
    counts = Counter(k.rsplit(".", 1)[-1] for k in leaves)
    names: dict[str, str] = {}
    for dotted in leaves:
        leaf = dotted.rsplit(".", 1)[-1]
        for name in (dotted, leaf) if counts[leaf] == 1 else (dotted,):
            names[name] = dotted
    return names


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> typing.NoReturn:
        raise ConfigError(message)


def build_parser() -> argparse.ArgumentParser:
    """The command-line parser of ``training/train.py`` (``--help`` lists every field and its default)."""
    parser = _Parser(prog="train.py", allow_abbrev=False,
                     description="Train a hubdet detector: defaults < --config YAML < --section.key value.")
    parser.add_argument("--config", metavar="YAML", help="training config file (see training/configs/)")
    defaults = TrainingConfig().flat()
    aliases: dict[str, list[str]] = {}
    for name, dotted in _flag_names().items():
        aliases.setdefault(dotted, []).append(name)
    for dotted, tp in leaf_types().items():
        flags = [f"--{n}" for name in aliases[dotted] for n in dict.fromkeys((name, name.replace("_", "-")))]
        kwargs: dict[str, Any] = {"dest": dotted, "default": argparse.SUPPRESS, "type": _value_parser(tp),
                                  "help": f"default: {defaults[dotted]!r}", "metavar": "VALUE"}
        if tp is bool or dotted in BARE_VALUES:
            kwargs.update(nargs="?", const=BARE_VALUES.get(dotted, True))
        parser.add_argument(*flags, **kwargs)
    return parser


def resolve_key(key: str) -> str:
    """A command-line key (dotted, a unique field name, dashes or underscores) -> its dotted config path; keys
    inside mapping fields (``model.args.drop_rate``) are kept. Unknown keys raise with close matches."""
    key = key.lstrip("-").replace("-", "_")
    names = _flag_names()
    if key in names:
        return names[key]
    leaves = leaf_types()
    head = key.split(".")
    for n in range(len(head) - 1, 1, -1):  # free-form mapping fields: model.args.drop_rate
        base = ".".join(head[:n])
        if base in leaves and _is_mapping(leaves[base]):
            return key
    close = difflib.get_close_matches(key, list(names), n=3)
    hint = f" (did you mean {', '.join('--' + c for c in close)}?)" if close else ""
    raise ConfigError(f"unknown option --{key}{hint}")


def _set_path(data: dict[str, Any], path: str, value: Any) -> None:
    *parents, last = path.split(".")
    node = data
    for part in parents:
        if not isinstance(node.get(part), dict):
            node[part] = {}
        node = node[part]
    node[last] = value


def _merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def _read_yaml(path: str | os.PathLike) -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"config file {p} not found")
    try:
        loaded = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{p}: invalid YAML ({exc})") from exc
    if not isinstance(loaded, dict):
        raise ConfigError(f"{p}: expected a mapping at the top level")
    TrainingConfig.from_dict(_merge(TrainingConfig().to_dict(), loaded), where=str(p))  # errors name the file
    return loaded


def _extra_pairs(tokens: Sequence[str]) -> list[tuple[str, str]]:
    """``--model.args.drop_rate 0.1`` pairs that argparse left over (mapping keys, or unknown flags)."""
    pairs: list[tuple[str, str]] = []
    i = 0
    while i < len(tokens):
        token = tokens[i]
        if not token.startswith("--"):
            raise ConfigError(f"expected --key value, got {token!r}")
        key, sep, value = token[2:].partition("=")
        if sep:
            i += 1
        elif i + 1 < len(tokens) and not tokens[i + 1].startswith("--"):
            value, i = tokens[i + 1], i + 2
        else:
            value, i = "true", i + 1
        pairs.append((resolve_key(key), value))
    return pairs


def load_config(path: str | os.PathLike | None = None,
                overrides: Sequence[str] | Mapping[str, Any] = ()) -> TrainingConfig:
    """Defaults < YAML ``path`` < ``overrides``: command-line tokens (``["--optim.lr", "0.01", ...]``) or a
    mapping of keys to values (``{"optim.lr": 0.01}``, keys as on the command line)."""
    data = TrainingConfig().to_dict()
    if path is not None:
        data = _merge(data, _read_yaml(path))
    if isinstance(overrides, Mapping):
        pairs = [(resolve_key(k), v) for k, v in overrides.items()]
    else:
        namespace, rest = build_parser().parse_known_args(list(overrides))
        if getattr(namespace, "config", None):
            raise ConfigError("--config is given twice (the file and the overrides)")
        pairs = [(k, v) for k, v in vars(namespace).items() if k != "config"]
        pairs += [(k, _value_parser(Any)(v)) for k, v in _extra_pairs(rest)]
    for dotted, value in pairs:
        _set_path(data, dotted, value)
    return TrainingConfig.from_dict(data, where=str(path) if path else "config")


def parse_args(argv: Sequence[str] | None = None) -> TrainingConfig:
    """``[--config FILE] [--key value ...]`` (``sys.argv[1:]`` by default); ``--help`` prints every flag."""
    import sys

    argv = list(sys.argv[1:] if argv is None else argv)
    namespace, _ = build_parser().parse_known_args(argv)  # --help exits here; --config is found anywhere
    path = getattr(namespace, "config", None)
    rest = [a for i, a in enumerate(argv) if not _is_config_token(argv, i)]
    return load_config(path, rest)


def _is_config_token(argv: Sequence[str], i: int) -> bool:
    a = argv[i]
    return a == "--config" or a.startswith("--config=") or (i > 0 and argv[i - 1] == "--config")


def save_config(config: TrainingConfig, folder: str | os.PathLike) -> Path:
    """Write the resolved config as ``<folder>/training_config.yaml`` (a complete config for ``--config``)."""
    path = Path(folder) / CONFIG_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(config.to_dict(), sort_keys=False))
    return path
