#!/usr/bin/env python
"""Train any hubdet detector (classifier, box head, copy-move, ensemble, probe) with Accelerate.

    python training/train.py --config training/configs/vit_classifier_tiny.yaml [--optim.lr 0.01 ...]
    accelerate launch [--multi_gpu --num_processes N] training/train.py --config X.yaml

Configuration: dataclass defaults < YAML file < ``--section.key value`` (a unique field name such as ``--lr``
works too; ``--resume`` alone means ``--train.resume latest``; dashes and underscores are the same; ``--help``
lists every flag). Unknown keys raise with suggestions. The resolved config is written to
``<output_dir>/training_config.yaml`` and travels with the final model.

What a run does is :func:`hubdet.training.train`, one function that reads top to bottom (hubdet/training/run.py):
Accelerator -> detector and splits -> training samples (the family's ``training_sample``) -> optimizer, schedules,
``accelerator.prepare`` -> resume (accelerate ``load_state``) -> per epoch: gradient steps (``model(**batch).loss``)
or, for ``trains_with_gradients = False`` families, one frozen-feature fit; validation with the metric table (the
numbers ``hubdet evaluate`` gives); best epoch, early stopping, checkpoint (``save_state``) -> best weights,
temperature calibration on validation, test -> ``model/`` with its card (test metrics in ``model-index``),
TensorBoard, ``training_curves.png`` -> ``--push-to-hub``.
"""

from __future__ import annotations

import json
import logging
import os
import sys

from hubdet._core.errors import ConfigError
from hubdet.training import parse_args, train


def main(argv: list[str] | None = None) -> int:
    """Parse the command line, train, print the summary (rank 0) and return the exit code."""
    try:
        config = parse_args(argv)
    except ConfigError as exc:
        print(f"train.py: error: {exc}", file=sys.stderr)
        return 2
    try:
        result = train(config)
    except Exception:
        logging.getLogger("hubdet.train").exception("training failed")
        return 1
    if int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps({k: v for k, v in result.items() if k != "history"}, default=str))
    return 0


if __name__ == "__main__":
    code = main()
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        # torch 2.x can abort in its atexit/destructor path after a gloo/nccl run even when everything finished;
        # everything is written and the process group destroyed by now, so leave without running destructors.
        sys.stdout.flush()
        sys.stderr.flush()
        logging.shutdown()
        os._exit(code)
    sys.exit(code)
