"""Training data: the splits (carved, balanced, capped), the training samples a family makes from dataset rows,
and the per-epoch sampler."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from hubdet._core.errors import ConfigError
from hubdet.training.config import DataConfig

logger = logging.getLogger(__name__)


def load_splits(cfg: DataConfig) -> dict[str, Any]:
    """``{"train", "validation", "test"?}`` datasets from the source, carving missing splits from train."""
    import datasets

    from hubdet.data import load_source

    def load(source: str, data_dir: str | None, repo_id: str | None, options: dict[str, Any]) -> Any:
        ds = load_source(source, data_dir, repo_id=repo_id, reencode=cfg.reencode, cache_dir=cfg.cache_dir,
                         **options)
        return datasets.DatasetDict({"train": ds}) if isinstance(ds, datasets.Dataset) else ds

    ds = load(cfg.source, cfg.data_dir, cfg.repo_id, cfg.options)
    for extra in cfg.also:
        more = load(extra["source"], extra.get("data_dir"), extra.get("repo_id"), extra.get("options") or {})
        for split, part in more.items():
            ds[split] = datasets.concatenate_datasets([ds[split], part]) if split in ds else part
    if cfg.train_split not in ds:
        raise ConfigError(f"data.train_split {cfg.train_split!r} not in the source's splits {list(ds)}")
    train = ds[cfg.train_split]
    total = len(train)  # carved fractions are of the whole train split
    out: dict[str, Any] = {}
    carve = [("test", cfg.test_split, cfg.test_fraction),
             ("validation", cfg.validation_split, cfg.validation_fraction)]
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
    if n >= len(ds):
        raise ConfigError(f"cannot carve {n} examples from a split of {len(ds)}")
    labels = ds["label"]
    classes = len(set(labels))
    ok = classes > 1 and min(np.bincount(labels)) >= 2 and classes <= n <= len(ds) - classes
    parts = ds.train_test_split(test_size=n, seed=seed, stratify_by_column="label" if ok else None)
    return parts["train"], parts["test"]


def _downsample(ds: Any, seed: int) -> Any:
    labels = np.asarray(ds["label"])
    counts = np.bincount(labels, minlength=2)
    n = int(counts[counts > 0].min())
    rng = np.random.default_rng(seed)
    keep = np.concatenate([rng.choice(np.flatnonzero(labels == c), n, replace=False) for c in np.unique(labels)])
    return ds.select(sorted(keep.tolist()))


class TrainingSamples(torch.utils.data.Dataset):
    """Dataset rows -> the family's training samples (:meth:`hubdet.models.Detector.training_sample`).

    Only the columns the family asks for (``detector.train_columns``) are decoded. Every sample draws from
    ``numpy.random.default_rng([seed, epoch, index])``: the same sample gets the same augmentation whatever the
    worker, process count or resume point. Each sample also carries its ``index`` (for the sample log).
    """

    def __init__(self, hf_ds: Any, detector: Any, augmenter: Any, seed: int) -> None:
        self.ds = hf_ds.select_columns([c for c in detector.train_columns if c in hf_ds.column_names])
        self.make = detector.training_sample
        self.augmenter = augmenter
        self.seed = seed
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, index: int) -> dict[str, Any]:
        rng = np.random.default_rng([self.seed, self.epoch, int(index)])
        sample = self.make(self.ds[int(index)], augmenter=self.augmenter, rng=rng)
        return {**sample, "index": torch.tensor(int(index))}


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


def train_loader(samples: TrainingSamples, sampler: EpochSampler, *, batch_size: int, num_workers: int,
                 pin_memory: bool, seed: int) -> torch.utils.data.DataLoader:
    """The training DataLoader (the default collate stacks each key of the samples)."""
    return torch.utils.data.DataLoader(
        samples, batch_size=batch_size, sampler=sampler, num_workers=num_workers, pin_memory=pin_memory,
        drop_last=False, generator=torch.Generator().manual_seed(seed),  # workers draw their base seed here
    )
