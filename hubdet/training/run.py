"""One training run, top to bottom: Accelerator, detector, data, prepare, resume, the epochs (gradient steps or one
frozen-feature fit, then validation with the metric table), the best weights, calibration on validation, test,
the model folder with its card, and the Hub push. ``training/train.py`` calls :func:`train` from the command
line; ``training/sweep.py`` calls it in-process with an ``epoch_callback``.

The loop never branches on a family's name: a family says what it needs with ``trains_with_gradients``,
``supports_boxes``/``predicts_masks`` (which metrics it gets) and ``training_sample`` (the keyword arguments of
its ``forward``, which returns the loss).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from hubdet.training import checkpoint as ckpt
from hubdet.training.config import CONFIG_FILE, TrainingConfig, save_config
from hubdet.training.data import EpochSampler, TrainingSamples, class_weights, load_splits, train_loader
from hubdet.training.loop import fit_frozen, predict_split, split_metrics, train_epoch
from hubdet.training.optim import (
    build_optimizer,
    build_schedulers,
    check_monitors,
    improved,
    metric_mode,
    prepare_trainable,
    unfreeze,
)
from hubdet.training.report import (
    CURVES_FILE,
    HISTORY_FILE,
    card_kwargs,
    hparams,
    plot_curves,
    scalars,
    weights_digest,
)

logger = logging.getLogger("hubdet.train")

EpochCallback = Callable[[int, dict[str, Any]], None]


def train(config: TrainingConfig, *, epoch_callback: EpochCallback | None = None) -> dict[str, Any]:
    """Train, validate every epoch, keep the best, calibrate, test, save (and push); return a summary.

    ``epoch_callback(epoch, metrics)`` runs on every process after each epoch's validation; raising from it
    stops the run (after a clean shutdown) and propagates. A run stopped by ``train.stop_after_steps`` returns
    ``{"stopped_at_step", "output_dir", "history"}``.
    """
    from accelerate import Accelerator, DataLoaderConfiguration, DistributedDataParallelKwargs
    from accelerate.utils import set_seed

    from hubdet.data.augment import Augmenter
    from hubdet.models import create_detector

    cfg, tc = config, config.train
    best_mode = metric_mode(tc.best_metric, tc.best_mode)  # fail fast on a monitor without a direction
    es_mode = metric_mode(tc.early_stopping_monitor)
    out_dir = Path(tc.output_dir)
    cpu = tc.cpu or not torch.cuda.is_available()
    accelerator = Accelerator(
        cpu=cpu, mixed_precision=_mixed_precision(tc.mixed_precision, cpu),
        gradient_accumulation_steps=cfg.optim.grad_accum_steps,
        log_with="tensorboard" if tc.log_with == "tensorboard" else None,
        project_config=ckpt.project_configuration(out_dir, keep=tc.keep_checkpoints),
        dataloader_config=DataLoaderConfiguration(use_seedable_sampler=False),  # our EpochSampler orders
        kwargs_handlers=[DistributedDataParallelKwargs(
            find_unused_parameters=tc.find_unused_parameters or cfg.model.unfreeze_after_epochs is not None)],
    )
    _setup_logging(accelerator)
    set_seed(tc.seed)
    if accelerator.is_main_process:
        save_config(cfg, out_dir)
    logger.info("%d process(es) on %s, mixed precision %s", accelerator.num_processes, accelerator.device,
                accelerator.mixed_precision)

    # ------------------------------------------------------------------ detector and data
    detector = create_detector(cfg.model.name, pretrained=cfg.model.pretrained,
                               preprocess=cfg.model.preprocess or None, **cfg.model.args)
    with accelerator.main_process_first():
        splits = load_splits(cfg.data)
    logger.info("splits: %s", {k: len(v) for k, v in splits.items()})
    samples = TrainingSamples(splits["train"], detector, Augmenter(cfg.augment) if not cfg.augment.is_identity
                              else None, tc.seed)
    sampler = EpochSampler(len(samples), tc.seed, class_weights(splits["train"]["label"])
                           if cfg.data.balance == "weighted" else None)
    loader = train_loader(samples, sampler, batch_size=tc.batch_size, num_workers=cfg.data.num_workers,
                          pin_memory=not cpu, seed=tc.seed)

    # ------------------------------------------------------------------ optimizer, schedules, prepare, resume
    trains = detector.trains_with_gradients
    optimizer = scheduler = plateau = None
    if trains:
        optimizer = build_optimizer(detector.parameters(), cfg.optim)
        model, optimizer, loader = prepare_trainable(accelerator, detector, optimizer, loader,
                                                     unfreeze_later=cfg.model.unfreeze_after_epochs is not None)
        scheduler, plateau = build_schedulers(optimizer, cfg.optim, math.ceil(len(loader) / cfg.optim.grad_accum_steps),
                                              tc.epochs)
        accelerator.register_for_checkpointing(*[s for s in (scheduler, plateau) if s is not None])
    else:  # frozen features: no DDP wrapper (nothing to synchronise); features are gathered instead
        model, loader = detector.to(accelerator.device), accelerator.prepare(loader)
    detector = accelerator.unwrap_model(model)
    state = ckpt.resume(accelerator, tc.resume, out_dir)
    if tc.log_with == "tensorboard":
        accelerator.init_trackers("tensorboard", config=hparams(cfg))

    def log_samples(epoch: int, indices: torch.Tensor) -> None:  # debugging aid: train.sample_log
        if tc.sample_log:
            with open(f"{tc.sample_log}.rank{accelerator.process_index}", "a") as fh:
                fh.write("".join(f"{epoch} {int(i)}\n" for i in indices.tolist()))

    try:
        # -------------------------------------------------------------- epochs
        for epoch in range(state.epoch, tc.epochs if trains else 1):
            if state.stopped_early:  # resumed from the checkpoint of the epoch that stopped the run
                break
            sampler.use_epoch(epoch)
            samples.epoch = epoch
            if trains:
                if cfg.model.unfreeze_after_epochs is not None and epoch >= cfg.model.unfreeze_after_epochs:
                    if n := unfreeze(detector):
                        logger.info("epoch %d: unfroze %d parameter tensors", epoch + 1, n)
                metrics = train_epoch(accelerator, model, optimizer, scheduler, loader, state, cfg, epoch=epoch,
                                      log_samples=log_samples)
                if metrics is None:  # train.stop_after_steps: stopped as if killed
                    _log_digest(tc.sample_log, accelerator, detector)
                    return {"stopped_at_step": state.global_step, "output_dir": str(out_dir),
                            "history": state.history}
            else:
                metrics = fit_frozen(accelerator, detector, loader, cfg, log_samples=log_samples)
                ckpt.save_best(accelerator, detector, out_dir)
                ckpt.load_best(detector, out_dir)  # every process now holds the head fitted on the main one
            val = split_metrics(detector, predict_split(detector, splits["validation"], accelerator,
                                                        batch_size=tc.eval_batch_size))
            metrics = {"epoch": epoch, "step": state.global_step, **metrics, **{f"val_{k}": v for k, v in val.items()}}
            check_monitors(cfg, metrics)
            if plateau is not None:
                plateau.step(metrics[cfg.optim.plateau_monitor])
            state.history.append(metrics)
            accelerator.log(scalars("", metrics), step=state.global_step)
            logger.info("epoch %d: %s", epoch + 1, {k: round(v, 4) if isinstance(v, float) else v
                                                      for k, v in metrics.items() if not isinstance(v, list)})
            if improved(metrics.get(tc.best_metric), state.best_value, best_mode):
                state.best_value, state.best_epoch = metrics[tc.best_metric], epoch
                ckpt.save_best(accelerator, detector, out_dir)
            if improved(metrics.get(tc.early_stopping_monitor), state.es_best, es_mode, tc.early_stopping_min_delta):
                state.es_best, state.bad_epochs = metrics[tc.early_stopping_monitor], 0
            else:
                state.bad_epochs += 1
            state.stopped_early = (tc.early_stopping_patience is not None
                                   and state.bad_epochs >= tc.early_stopping_patience)
            state.epoch, state.batches_done, state.partial_sums = epoch + 1, 0, None
            if trains:
                ckpt.save_checkpoint(accelerator, state)
            if epoch_callback is not None:
                epoch_callback(epoch, metrics)
            if state.stopped_early:
                logger.info("early stopping: %s did not improve for %d epochs", tc.early_stopping_monitor,
                            state.bad_epochs)
        _log_digest(tc.sample_log, accelerator, detector)

        # -------------------------------------------------------------- best weights, calibration, test
        accelerator.wait_for_everyone()
        ckpt.load_best(detector, out_dir)
        val_records = predict_split(detector, splits["validation"], accelerator, batch_size=tc.eval_batch_size)
        if tc.calibrate:
            logits = torch.tensor(val_records.logits)
            source = f"{cfg.data.source}:{Path(cfg.data.data_dir).name if cfg.data.data_dir else cfg.data.repo_id}"
            detector.calibrate(logits, torch.tensor(val_records.labels, dtype=torch.float32),
                               fitted_on=f"{source}/validation (n={len(val_records)})",
                               method=tc.calibration_method, max_fpr=tc.threshold_fpr)
            val_records.probs = detector.calibrated_probs(logits).tolist()  # = what predict now returns
        results = {"validation": split_metrics(detector, val_records)}
        if "test" in splits:
            results["test"] = split_metrics(detector, predict_split(detector, splits["test"], accelerator,
                                                                    batch_size=tc.eval_batch_size))
        accelerator.log({**scalars("final_val/", results["validation"]), **scalars("test/", results.get("test", {}))},
                        step=state.global_step)

        # -------------------------------------------------------------- model folder, card, push
        model_dir = out_dir / "model"
        summary = {"epochs_run": len(state.history), "processes": accelerator.num_processes,
                   "steps": state.global_step, "best_epoch": state.best_epoch, "best_value": state.best_value}
        if accelerator.is_main_process:
            (out_dir / HISTORY_FILE).write_text(json.dumps(state.history, indent=1))
            curves = plot_curves(state.history, out_dir / CURVES_FILE)
            detector.config.metadata["training"] = {
                "config": cfg.to_dict(), "best_metric": tc.best_metric, **summary,
                "validation": results["validation"], "test": results.get("test")}
            card = card_kwargs(cfg, splits, results, summary)
            extra = {CONFIG_FILE: out_dir / CONFIG_FILE, **({CURVES_FILE: curves} if curves else {})}
            ckpt.write_folder(model_dir, lambda tmp: _save_model(detector, tmp, card, extra))
            logger.info("saved %s", model_dir)
            if tc.push_to_hub:
                url = detector.push_to_hub(tc.push_to_hub, private=tc.hub_private, card_kwargs=card,
                                           extra_files={name: model_dir / name for name in extra})
                logger.info("pushed to %s", url)
        accelerator.wait_for_everyone()
        return {"output_dir": str(out_dir), "model_dir": str(model_dir), "best_metric": tc.best_metric,
                "best_value": state.best_value, "best_epoch": state.best_epoch, "history": state.history,
                "validation": results["validation"], "test": results.get("test"),
                "global_step": state.global_step, "stopped_early": state.stopped_early}
    finally:
        accelerator.end_training()  # closes the trackers and destroys the process group


def _mixed_precision(choice: str, cpu: bool) -> str:
    if choice != "auto":
        return choice
    if cpu or not torch.cuda.is_available():
        return "no"
    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


def _setup_logging(accelerator: Any) -> None:
    logging.basicConfig(level=logging.INFO if accelerator.is_local_main_process else logging.WARNING,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", force=True)
    if not accelerator.is_main_process:
        logging.getLogger().setLevel(logging.WARNING)
    for noisy in ("accelerate.accelerator", "accelerate.checkpointing"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def _save_model(detector: Any, folder: Path, card: dict[str, Any], extra: dict[str, Path]) -> None:
    detector.save_pretrained(folder, card_kwargs=card)
    for name, src in extra.items():
        (folder / name).write_bytes(Path(src).read_bytes())


def _log_digest(sample_log: str | None, accelerator: Any, detector: Any) -> None:
    """Debugging aid (``train.sample_log``): every rank records a digest of its final weights."""
    if sample_log:
        with open(f"{sample_log}.rank{accelerator.process_index}", "a") as fh:
            fh.write(f"weights {weights_digest(detector)}\n")
