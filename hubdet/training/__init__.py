"""Training: strict configs from YAML and the command line, data and samplers, the gradient loop and the
frozen-feature fit, accelerate checkpoints, and :func:`train`, one run top to bottom.

``training/train.py`` is the command line (``python training/train.py --config X.yaml [--section.key value]``,
or under ``accelerate launch``); ``training/sweep.py`` calls :func:`train` in-process. Validation and test use the
metric table of :mod:`hubdet.eval.metric_table`, so their numbers are those of ``hubdet evaluate``. Nothing else in
``hubdet`` imports this package. Names are resolved lazily.
"""

from __future__ import annotations

from hubdet._core.lazy import lazy_exports

_LAZY = {
    "CONFIG_FILE": "hubdet.training.config",
    "DataConfig": "hubdet.training.config",
    "ModelConfig": "hubdet.training.config",
    "OptimConfig": "hubdet.training.config",
    "TrainConfig": "hubdet.training.config",
    "TrainingConfig": "hubdet.training.config",
    "build_parser": "hubdet.training.config",
    "load_config": "hubdet.training.config",
    "parse_args": "hubdet.training.config",
    "resolve_key": "hubdet.training.config",
    "save_config": "hubdet.training.config",
    "EpochSampler": "hubdet.training.data",
    "TrainingSamples": "hubdet.training.data",
    "class_weights": "hubdet.training.data",
    "load_splits": "hubdet.training.data",
    "TrainerState": "hubdet.training.checkpoint",
    "latest_checkpoint": "hubdet.training.checkpoint",
    "build_optimizer": "hubdet.training.optim",
    "build_schedulers": "hubdet.training.optim",
    "metric_mode": "hubdet.training.optim",
    "fit_frozen": "hubdet.training.loop",
    "predict_split": "hubdet.training.loop",
    "split_metrics": "hubdet.training.loop",
    "train_epoch": "hubdet.training.loop",
    "weights_digest": "hubdet.training.report",
    "train": "hubdet.training.run",
}

__all__ = sorted(_LAZY)

__getattr__, __dir__ = lazy_exports("hubdet.training", _LAZY, globals())
