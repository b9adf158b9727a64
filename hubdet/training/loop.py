"""The two ways a family learns, and validation with the metric table.

- :func:`train_epoch`: one epoch of gradient steps, ``model(**batch).loss`` whatever the family (the batch holds
  what :meth:`hubdet.models.Detector.training_sample` returned), with accumulation, clipping, the per-step
  schedule, step logging, mid-epoch checkpoints and resuming inside an epoch;
- :func:`fit_frozen`: families with ``trains_with_gradients = False`` extract frozen features of every training
  sample on every process, gather them and fit their head once on the main process;
- :func:`predict_split` and :func:`split_metrics`: ``detector.predict`` on the original images of a split, shared
  over the processes (the path of ``hubdet evaluate``), and the metric table's metrics at the calibrated threshold.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import torch

from hubdet.training.checkpoint import TrainerState, save_checkpoint
from hubdet.training.config import TrainingConfig

logger = logging.getLogger(__name__)

SampleLog = Callable[[int, torch.Tensor], None]


def train_epoch(accelerator: Any, model: Any, optimizer: Any, scheduler: Any, loader: Any, state: TrainerState,
                cfg: TrainingConfig, *, epoch: int, log_samples: SampleLog) -> dict[str, float] | None:
    """Train epoch ``epoch`` from batch ``state.batches_done`` on; update ``state``; return the epoch's training
    numbers (``train_loss``, ``train_accuracy`` at logit 0 on the training samples, lr, throughput), or ``None``
    when ``train.stop_after_steps`` stopped the run as if killed."""
    from tqdm.auto import tqdm

    tc, oc = cfg.train, cfg.optim
    skip = state.batches_done
    batches = accelerator.skip_first_batches(loader, skip) if skip else loader
    sums = torch.zeros(3, device=accelerator.device)  # loss * n, correct, n on this process
    resumed_n = state.partial_sums[2] if skip and state.partial_sums else 0.0
    if skip and state.partial_sums and accelerator.is_main_process:  # the sums were reduced over processes
        sums += torch.tensor(state.partial_sums, device=accelerator.device)
    bar = tqdm(total=len(loader), initial=skip, desc=f"epoch {epoch + 1}/{tc.epochs}", leave=False,
               disable=not (accelerator.is_local_main_process and tc.progress))
    model.train()
    started = time.perf_counter()
    for batch in batches:
        log_samples(epoch, batch.pop("index"))
        with accelerator.accumulate(model):
            out = model(**batch)
            accelerator.backward(out.loss)
            if accelerator.sync_gradients and oc.grad_clip:
                accelerator.clip_grad_norm_(model.parameters(), oc.grad_clip)
            optimizer.step()
            optimizer.zero_grad()
        labels = batch["labels"]
        correct = ((out.logits.detach() >= 0).float() == labels).sum().float()
        sums += torch.stack([out.loss.detach().float() * labels.numel(), correct,
                             torch.tensor(float(labels.numel()), device=sums.device)])
        state.batches_done += 1
        bar.update(1)
        if not accelerator.sync_gradients:
            continue
        scheduler.step()
        state.global_step += 1
        step = state.global_step
        if step % tc.log_every_steps == 0:
            bar.set_postfix(loss=f"{out.loss.item():.4f}")
            accelerator.log({"train/loss_step": out.loss.item(), "train/lr": optimizer.param_groups[0]["lr"],
                             **{f"train/{k}": float(v) for k, v in out.losses.items()}}, step=step)
        if tc.checkpoint_every_steps and step % tc.checkpoint_every_steps == 0 and state.batches_done < len(loader):
            state.partial_sums = accelerator.reduce(sums.clone(), reduction="sum").tolist()
            save_checkpoint(accelerator, state)  # (the epoch's last batch is followed by the epoch checkpoint)
        if tc.stop_after_steps is not None and step >= tc.stop_after_steps:
            bar.close()
            logger.warning("stopping after %d steps (train.stop_after_steps)", step)
            return None
    bar.close()
    seconds = time.perf_counter() - started
    loss_sum, correct_sum, n = accelerator.reduce(sums, reduction="sum").tolist()
    return {"train_loss": loss_sum / n, "train_accuracy": correct_sum / n, "lr": optimizer.param_groups[0]["lr"],
            "train_seconds": seconds, "train_images_per_s": (n - resumed_n) / max(seconds, 1e-9)}


def fit_frozen(accelerator: Any, detector: Any, loader: Any, cfg: TrainingConfig, *,
               log_samples: SampleLog) -> dict[str, float]:
    """Frozen features of every training sample (each process its share, gathered), the head fitted once on the
    main process; returns its training numbers as ``train_<name>`` (the caller shares the head)."""
    from tqdm.auto import tqdm

    detector.eval()
    feats, labels = [], []
    with torch.no_grad(), accelerator.autocast():
        for batch in tqdm(loader, desc="features",
                          disable=not (accelerator.is_local_main_process and cfg.train.progress)):
            log_samples(0, batch["index"])
            f = detector.extract_features(batch["pixel_values"])
            feats.append(accelerator.gather_for_metrics(f.float()).cpu())
            labels.append(accelerator.gather_for_metrics(batch["labels"]).cpu())
    fit: dict[str, float] = {}
    if accelerator.is_main_process:
        fit = detector.fit_head(torch.cat(feats).numpy(), torch.cat(labels).numpy().astype(int)) or {}
    return {"lr": None, **{f"train_{k}": v for k, v in fit.items()}}


def predict_split(detector: Any, dataset: Any, accelerator: Any, *, batch_size: int) -> Any:
    """:class:`hubdet.eval.metric_table.Records` of ``detector.predict`` on the split's original images: each
    process predicts its shard, every process gets all records in dataset order (as ``hubdet evaluate``)."""
    from hubdet.eval.robustness import resolve_perturbations
    from hubdet.eval.runner import predict_records

    clean = resolve_perturbations(["clean"])
    return predict_records(detector, dataset, clean, batch_size=batch_size, accelerator=accelerator)["clean"]


def split_metrics(detector: Any, records: Any) -> dict[str, Any]:
    """The metric table's metrics of the detector's kinds at its calibrated threshold (what evaluate reports)."""
    from hubdet.eval.metric_table import compute_metrics, model_kinds

    return compute_metrics(records, threshold=detector.config.calibration.threshold, kinds=model_kinds(detector))
