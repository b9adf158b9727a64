"""Batch evaluation of one detector on one dataset, under the robustness protocol, into a versioned result.

The data flow is the project's: dataset rows (decoded images) -> perturbation (same for both classes) ->
``Detector.predict`` (the detector's own preprocessing, calibration and box mapping) -> metrics. Launched with
``accelerate launch`` (or ``torchrun``), each process evaluates its shard
(``datasets.distributed.split_dataset_by_node``) and the per-image records are gathered with
``Accelerator.gather_for_metrics``; only the main process writes files.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import logging
import os
import time
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from hubdet._core.errors import NonFiniteOutputError
from hubdet.eval.metric_table import DEFAULT_PRIMARY, Kind, Records, compute_metrics, metric_drops, model_kinds
from hubdet.eval.results import PROTOCOL_VERSION, SCHEMA_NAME, DatasetInfo, ModelInfo, validate_result
from hubdet.eval.robustness import Perturbation, resolve_perturbations

logger = logging.getLogger(__name__)

SPLIT_PREFERENCE = ("test", "validation", "val", "train")


# --------------------------------------------------------------------------- models


def _training_source(config: Any) -> str | None:
    training = (config.metadata or {}).get("training")
    if isinstance(training, Mapping):
        src = training.get("source") or training.get("dataset")
        return str(src) if src else None
    return None


def model_info(detector: Any) -> ModelInfo:
    """Describe a detector for a result: where its weights came from and which they are
    (:func:`hubdet.models.resolver.weights_record`: repo or folder, resolved commit, sha256), calibration, training
    source."""
    from hubdet.models.resolver import weights_record

    record = weights_record(detector)
    cal = detector.config.calibration
    return ModelInfo(
        id=record.id, kind=record.kind, name=detector.config.name, family=detector.family, revision=record.revision,
        weights_sha256=record.sha256, random_init=record.kind == "registry",
        training_source=_training_source(detector.config), threshold=float(cal.threshold),
        calibration={"method": cal.method, "temperature": cal.temperature, "fitted_on": cal.fitted_on},
    )


def load_model(spec: Any, *, revision: str | None = None, verify: bool = True,
               **overrides: Any) -> tuple[Any, ModelInfo]:
    """Resolve ``spec`` to ``(detector, ModelInfo)`` with :func:`hubdet.load_detector`.

    ``spec``: a loaded detector, or any detector spec (a checkpoint folder of any kind, a Hub repo id with
    ``revision`` or ``@revision`` (the resolved commit is recorded), or a registry name: random init, flagged
    ``random_init`` and refused by the leaderboard).
    """
    from hubdet.models.resolver import load_detector

    detector = load_detector(spec, revision=revision, verify=verify, **overrides)
    return detector, model_info(detector)


# --------------------------------------------------------------------------- data


def _pick_split(ds: Any, source: str) -> tuple[Any, str]:
    names = list(ds.keys())
    for want in [*SPLIT_PREFERENCE, *names]:
        if want in names:
            if want != "test" and len(names) > 1:
                logger.warning("source %r has no test split; evaluating on %r (of %s)", source, want, names)
            else:
                logger.info("source %r: evaluating split %r", source, want)
            return ds[want], want
    raise ValueError(f"source {source!r} has no splits")


def load_eval_data(
    source: str,
    data_dir: str | os.PathLike[str] | None = None,
    split: str | None = None,
    *,
    repo_id: str | None = None,
    revision: str | None = None,
    streaming: bool = False,
    limit: int | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    reencode: Mapping[str, Any] | None = None,
    options: Mapping[str, Any] | None = None,
) -> tuple[Any, DatasetInfo]:
    """Load one split of a source for evaluation; without ``split`` the first of test/validation/train.

    ``limit`` keeps a deterministic random subset (shuffle with seed 0), so both classes are represented.
    """
    from hubdet.data import load_source

    if limit is not None and limit < 1:
        raise ValueError(f"limit must be >= 1, got {limit}")
    ds = load_source(source, data_dir, split, repo_id=repo_id, streaming=streaming, cache_dir=cache_dir,
                     reencode=dict(reencode) if reencode else None, **dict(options or {}))
    import datasets

    chosen = split
    if isinstance(ds, (datasets.DatasetDict, datasets.IterableDatasetDict)):
        ds, chosen = _pick_split(ds, source)
    if limit is not None:
        if streaming:
            ds = ds.shuffle(seed=0, buffer_size=max(1000, 4 * limit)).take(limit)
        elif limit < len(ds):
            ds = ds.shuffle(seed=0).select(range(limit))
    n = None if streaming else len(ds)
    info = DatasetInfo(
        name=source, split=chosen, data_dir=str(Path(data_dir).expanduser().resolve()) if data_dir else None,
        repo_id=repo_id, revision=revision, fingerprint=getattr(ds, "_fingerprint", None), n_images=n or 0,
        limit=limit, streaming=streaming, reencode=dict(reencode) if reencode else None,
    )
    return ds, info


# --------------------------------------------------------------------------- evaluation


def _distributed() -> Any | None:
    """An ``Accelerator`` when launched with several processes, else ``None``."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return None
    import torch
    from accelerate import Accelerator

    return Accelerator(cpu=not torch.cuda.is_available())  # cpu=True: gloo process group for CPU-only runs


def _rescale_box(box: list[float] | None, from_size: tuple[int, int], to_size: tuple[int, int]) -> list[float] | None:
    if box is None or from_size == to_size:
        return box
    from hubdet.data.debias import rescale_boxes

    return rescale_boxes([box], from_size, to_size)[0]


def run_predictions(
    detector: Any,
    dataset: Iterable[Mapping[str, Any]] | Any,
    perturbations: Sequence[Perturbation],
    *,
    batch_size: int = 32,
) -> dict[str, Records]:
    """Predict every image of ``dataset`` under every perturbation; return records by perturbation name.

    Predicted boxes are mapped back to the unperturbed image's pixels (the frame of the dataset's boxes).
    Detectors that set ``predicts_masks = True`` and return ``Prediction.mask`` (or ``extra["mask"]``: a 2-D array of
    the image they saw) get pixel metrics against the dataset's ``mask`` column: a map predicted on a resized
    (perturbed) image is resized back to the original with bilinear interpolation (a probability map; nearest for
    binary masks would shift region edges by up to a pixel of the smaller image).
    """
    want_masks = bool(getattr(detector, "predicts_masks", False))
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    out = {p.name: Records() for p in perturbations}
    if hasattr(dataset, "select_columns") and hasattr(dataset, "column_names") and dataset.column_names:
        wanted = ("image", "label", "boxes", "generator", "source", "file") + (("mask",) if want_masks else ())
        keep = [c for c in wanted if c in dataset.column_names]
        dataset = dataset.select_columns(keep)
    batches = dataset.iter(batch_size=batch_size) if hasattr(dataset, "iter") else _batched(dataset, batch_size)
    index = 0
    for batch in batches:
        images = batch["image"]
        n = len(images)
        files = list(batch.get("file") or [f"#{index + i}" for i in range(n)])
        index += n
        for p in perturbations:
            t0 = time.perf_counter()
            perturbed = [p(img.convert("RGB"), key=files[i]) for i, img in enumerate(images)]
            try:
                preds = detector.predict(perturbed, batch_size=batch_size)
            except NonFiniteOutputError as exc:  # name the dataset file, not its position in the batch
                index = getattr(exc, "image_index", None)
                raise NonFiniteOutputError(f"{exc}" + (f" = {files[index]}" if index is not None else "")
                                           + f" ({p.name})") from None
            rec = out[p.name]
            rec.seconds += time.perf_counter() - t0
            for i, pred in enumerate(preds):
                if not pred.judged:  # counted separately, never scored
                    rec.cannot_judge.append((files[i], str(pred.reason)))
                    continue
                rec.files.append(files[i])
                rec.labels.append(int(batch["label"][i]))
                rec.probs.append(float(pred.prob))
                rec.logits.append(float(pred.logit))
                rec.generators.append(str((batch.get("generator") or [""] * n)[i] or "unknown"))
                rec.sources.append(str((batch.get("source") or [""] * n)[i] or ""))
                rec.pred_boxes.append(_rescale_box(pred.box, perturbed[i].size, images[i].size))
                rec.true_boxes.append([list(map(float, b)) for b in (batch.get("boxes") or [[]] * n)[i] or []])
                if want_masks:
                    true_mask = (batch.get("mask") or [None] * n)[i]
                    rec.true_masks.append(_true_mask(true_mask, images[i].size, files[i]))
                    pred_mask = pred.mask if getattr(pred, "mask", None) is not None else pred.extra.get("mask")
                    rec.pred_masks.append(_resize_mask(pred_mask, images[i].size))
    return out


def _true_mask(mask: Any, size: tuple[int, int] | None = None, file: str = "") -> Any:
    """The true mask as a bool array of the image's ``size`` (width, height), ``None`` where the image has none
    (reals, fully generated fakes): pixel metrics count only images with a mask. A mask of another size (a source
    that did not check) is brought to the image with nearest neighbour, and the file is named in a warning."""
    import numpy as np
    from PIL import Image

    if mask is None:
        return None
    if size is not None and mask.size != tuple(size):
        logger.warning("%s: true mask is %sx%s, image is %sx%s; resizing the mask", file, *mask.size, *size)
        mask = mask.resize(tuple(size), Image.Resampling.NEAREST)
    return np.asarray(mask.convert("L")) >= 128


def _resize_mask(mask: Any, size: tuple[int, int]) -> Any:
    """A predicted mask (array in [0, 1]) resized to ``size`` (width, height), bilinear (a 0/1 mask stays 0/1 away
    from region edges)."""
    import numpy as np
    from PIL import Image

    if mask is None:
        return None
    arr = np.asarray(mask.detach().cpu().numpy() if hasattr(mask, "detach") else mask, dtype=np.float32)
    if arr.shape != (size[1], size[0]):
        arr = np.asarray(Image.fromarray(np.clip(arr, 0, 1).astype(np.float32), "F").resize(
            size, Image.Resampling.BILINEAR), dtype=np.float32)
    return arr


def _batched(rows: Iterable[Mapping[str, Any]], size: int) -> Iterable[dict[str, list[Any]]]:
    batch: dict[str, list[Any]] = defaultdict(list)
    count = 0
    for row in rows:
        for k, v in row.items():
            batch[k].append(v)
        count += 1
        if count == size:
            yield dict(batch)
            batch, count = defaultdict(list), 0
    if count:
        yield dict(batch)


def breakdowns(rec: Records, *, threshold: float, kinds: Sequence[Kind]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Per fake generator (its fakes against ALL reals, so ROC-AUC is defined) and per source."""
    reals = [i for i, y in enumerate(rec.labels) if y == 0]
    per_gen: dict[str, Any] = {}
    pairs = list(zip(rec.generators, rec.labels, strict=True))
    for gen in sorted({g for g, y in pairs if y == 1}):
        idx = reals + [i for i, (g, y) in enumerate(pairs) if y == 1 and g == gen]
        per_gen[gen] = compute_metrics(rec.subset(sorted(idx)), threshold=threshold, kinds=kinds)
    per_src: dict[str, Any] = {}
    for src in sorted(set(rec.sources)):
        idx = [i for i, s in enumerate(rec.sources) if s == src]
        per_src[src or "unknown"] = compute_metrics(rec.subset(idx), threshold=threshold, kinds=kinds)
    return per_gen, per_src


def _stream_fingerprint(rec: Records) -> str:
    h = hashlib.sha256()
    for f, y in sorted(zip(rec.files, rec.labels, strict=True)):
        h.update(f"{f}\0{y}\n".encode())
    return "files:" + h.hexdigest()[:16]


def predict_records(
    detector: Any,
    dataset: Any,
    perturbations: Sequence[Perturbation],
    *,
    batch_size: int = 32,
    accelerator: Any = None,
) -> dict[str, Records]:
    """:func:`run_predictions` on this process's shard of ``dataset``, gathered on every process in dataset order.

    With an ``accelerator`` of several processes each evaluates a contiguous shard
    (``datasets.distributed.split_dataset_by_node``); without one (or with one process) everything runs here.
    The detector is moved to the accelerator's device (else the GPU when there is one) and predicts in eval mode.
    Training's validation and test use this too, so they see exactly what ``hubdet evaluate`` sees.
    """
    import torch

    distributed = accelerator is not None and accelerator.num_processes > 1
    if distributed:
        from datasets.distributed import split_dataset_by_node

        dataset = split_dataset_by_node(dataset, rank=accelerator.process_index,
                                        world_size=accelerator.num_processes)
    device = accelerator.device if accelerator is not None else torch.device(
        "cuda" if torch.cuda.is_available() else "cpu")
    detector.to(device)
    records = run_predictions(detector, dataset, perturbations, batch_size=batch_size)
    if not distributed:
        return records
    gathered: dict[str, Records] = {}
    for name, rec in records.items():
        rows = accelerator.gather_for_metrics(rec.rows(), use_gather_object=True)
        secs = accelerator.gather_for_metrics([rec.seconds], use_gather_object=True)
        gathered[name] = Records.from_rows(rows, seconds=max(secs))
        gathered[name].cannot_judge = accelerator.gather_for_metrics(rec.cannot_judge, use_gather_object=True)
    return gathered


def build_result(
    records: Mapping[str, Records],
    perturbations: Sequence[Perturbation],
    *,
    model: ModelInfo,
    dataset: DatasetInfo,
    kinds: Sequence[Kind],
    batch_size: int,
    device: str,
    num_processes: int = 1,
    suite: Mapping[str, str] | None = None,
    primary_metric: str = DEFAULT_PRIMARY,
    provenance: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Assemble (and validate, without the pinning rule) the JSON result of one evaluation: the metric table's
    metrics of ``kinds`` (see :func:`hubdet.eval.metric_table.model_kinds`) at the model's calibrated threshold, and
    the data set's ``provenance`` section (:func:`hubdet.eval.provenance_audit.audit_dataset`) when given."""
    from hubdet import __version__

    clean_name = perturbations[0].name
    clean = records[clean_name]
    if not clean.labels and clean.cannot_judge:
        file, reason = clean.cannot_judge[0]
        raise ValueError(f"{model.id} cannot judge any of the {len(clean.cannot_judge)} image(s) of {dataset.name} "
                         f"(e.g. {file}: {reason})")
    threshold = model.threshold
    metrics = compute_metrics(clean, threshold=threshold, kinds=kinds)
    per_gen, per_src = breakdowns(clean, threshold=threshold, kinds=kinds)
    perturbed: dict[str, Any] = {}
    for p in perturbations[1:]:
        if not records[p.name].labels:  # the perturbation left nothing the detector can judge (see cannot_judge)
            perturbed[p.name] = {"spec": p.describe(), "metrics": {}, "drop": {}}
            continue
        m = compute_metrics(records[p.name], threshold=threshold, kinds=kinds)
        perturbed[p.name] = {"spec": p.describe(), "metrics": m, "drop": metric_drops(metrics, m)}
    seconds = sum(r.seconds for r in records.values())
    n_forward = sum(len(r.labels) for r in records.values())
    ds = dataset.to_dict()
    ds["n_images"] = len(clean.labels)
    if not ds.get("fingerprint"):
        ds["fingerprint"] = _stream_fingerprint(clean)
    result = {
        "schema": SCHEMA_NAME,
        "protocol_version": PROTOCOL_VERSION,
        "hubdet_version": __version__,
        "date": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(),
        "model": model.to_dict(),
        "dataset": ds,
        "suite": dict(suite) if suite else None,
        "primary_metric": primary_metric,
        "metrics": metrics,
        "per_generator": per_gen,
        "per_source": per_src,
        "perturbations": perturbed,
        "timing": {
            "seconds": round(seconds, 4),
            "images_per_second": round(n_forward / seconds, 3) if seconds > 0 else 0.0,
            "n_forward": n_forward,
            "batch_size": batch_size,
            "device": device,
            "num_processes": num_processes,
        },
    }
    unjudged = {p.name: records[p.name].cannot_judge for p in perturbations if records[p.name].cannot_judge}
    if unjudged:  # images the detector cannot judge (too small, extreme aspect ratio...): counted, not scored
        result["cannot_judge"] = {name: {"count": len(rows), "files": [{"file": f, "reason": r} for f, r in rows[:50]]}
                                  for name, rows in unjudged.items()}
    result["provenance"] = dict(provenance) if provenance is not None else None
    validate_result(result, where=f"result of {model.id} on {dataset.name}", require_pinned=False)
    return result


def evaluate_detector(
    detector: Any,
    dataset: Any,
    *,
    model: ModelInfo,
    dataset_info: DatasetInfo,
    perturbations: Sequence[str | Mapping[str, Any] | Perturbation] | None = None,
    batch_size: int = 32,
    suite: Mapping[str, str] | None = None,
    primary_metric: str = DEFAULT_PRIMARY,
    plots_dir: str | os.PathLike[str] | None = None,
    provenance: bool | Mapping[str, Any] = True,
) -> dict[str, Any]:
    """Evaluate a loaded detector on a loaded dataset; see :func:`evaluate`. ``provenance``: True audits what the
    files declare (:func:`hubdet.eval.provenance_audit.audit_dataset`, headers only), False skips it, a section
    already computed for this dataset is reused (several models on one dataset)."""
    perts = resolve_perturbations(perturbations)
    accelerator = _distributed()
    detector.eval()
    section = provenance_section(dataset, dataset_info) if provenance is True else (provenance or None)
    records = predict_records(detector, dataset, perts, batch_size=batch_size, accelerator=accelerator)
    device = accelerator.device if accelerator is not None else detector.device
    num_processes = accelerator.num_processes if accelerator is not None else 1
    result = build_result(
        records, perts, model=model, dataset=dataset_info, kinds=model_kinds(detector),
        batch_size=batch_size, device=str(device), num_processes=num_processes, suite=suite,
        primary_metric=primary_metric, provenance=section,
    )
    if plots_dir is not None and (accelerator is None or accelerator.is_main_process):
        from hubdet.eval.plots import write_plots

        clean = records[perts[0].name]
        write_plots(clean.labels, clean.probs, plots_dir, prefix=plot_prefix(result), threshold=model.threshold)
    return result


def provenance_section(dataset: Any, dataset_info: DatasetInfo) -> dict[str, Any]:
    """The result's ``provenance`` section for ``dataset`` (every item, whatever the process: it reads headers only;
    re-encoded data sets are audited on their original files under ``dataset_info.data_dir``)."""
    from hubdet.eval.provenance_audit import audit_dataset

    return audit_dataset(dataset, data_dir=dataset_info.data_dir)


def plot_prefix(result: Mapping[str, Any]) -> str:
    """A file-name-safe ``<model>__<source>_<split>`` for plots and result files."""
    import re

    model = result["model"]
    name = Path(str(model["id"]).rstrip("/")).name if model["kind"] == "folder" else str(model["id"])
    raw = f"{name}__{result['dataset']['name']}_{result['dataset'].get('split') or 'all'}"
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", raw)


def evaluate(
    model: Any,
    source: str | None = None,
    data_dir: str | os.PathLike[str] | None = None,
    split: str | None = None,
    *,
    dataset: Any = None,
    repo_id: str | None = None,
    revision: str | None = None,
    dataset_revision: str | None = None,
    streaming: bool = False,
    robustness: bool = False,
    perturbations: Sequence[str | Mapping[str, Any] | Perturbation] | None = None,
    batch_size: int = 32,
    limit: int | None = None,
    plots_dir: str | os.PathLike[str] | None = None,
    suite: Mapping[str, str] | None = None,
    primary_metric: str = DEFAULT_PRIMARY,
    source_options: Mapping[str, Any] | None = None,
    reencode: Mapping[str, Any] | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    provenance: bool = True,
) -> dict[str, Any]:
    """Evaluate one detector on one source/split and return the versioned JSON result (a dict).

    ``model``: a detector, a checkpoint folder, a Hub id (``revision``) or a registry name (random init).
    Data: ``source`` + ``data_dir`` (or ``repo_id``) through :func:`hubdet.data.load_source`, or an already
    loaded ``dataset`` (then ``source`` only names it); ``source_options`` and ``reencode`` (re-encode both
    classes alike, see :class:`hubdet.data.ReencodeConfig`) go to ``load_source``. ``robustness=True`` runs the
    whole protocol of :data:`hubdet.eval.robustness.PROTOCOL`; ``perturbations`` picks some (clean is always
    included).
    ``plots_dir`` writes ROC, reliability and confusion-matrix PNGs. ``provenance`` (default True) records what the
    files declare (C2PA, source type, generator metadata) and flags a data set whose fakes a metadata reader alone
    would catch (``result["provenance"]["provenance_shortcut"]``); it reads only file headers.
    """
    from hubdet.eval.robustness import PROTOCOL

    detector, info = load_model(model, revision=revision)
    if dataset is None:
        if source is None:
            raise ValueError("evaluate: give a source name (with data_dir or repo_id) or a loaded dataset")
        dataset, ds_info = load_eval_data(source, data_dir, split, repo_id=repo_id, revision=dataset_revision,
                                          streaming=streaming, limit=limit, cache_dir=cache_dir,
                                          reencode=reencode, options=source_options)
    else:
        if limit is not None and hasattr(dataset, "select") and limit < len(dataset):
            dataset = dataset.shuffle(seed=0).select(range(limit))
        ds_info = DatasetInfo(name=source or getattr(getattr(dataset, "info", None), "dataset_name", None) or
                              "dataset", split=split or (str(dataset.split) if getattr(dataset, "split", None)
                                                         else None),
                              fingerprint=getattr(dataset, "_fingerprint", None), repo_id=repo_id,
                              revision=dataset_revision, limit=limit, streaming=not hasattr(dataset, "__len__"))
    if robustness and perturbations is None:
        perturbations = [p.name for p in PROTOCOL]
    return evaluate_detector(detector, dataset, model=info, dataset_info=ds_info, perturbations=perturbations,
                             batch_size=batch_size, suite=suite, primary_metric=primary_metric, plots_dir=plots_dir,
                             provenance=provenance)
