#!/usr/bin/env python
"""Training throughput of training/train.py (1 and N processes) against a bare PyTorch loop; prints JSON.

    python bench/bench_train.py [--model classifier_tiny.test] [--images 256] [--size 64] [--batch-size 32]
                                [--epochs 4] [--processes 1 2] [--threads 1] [--workers 0] [--rounds 2]
    python bench/bench_train.py --quick      # smoke run: 64 images of 32 px, 2 epochs, 1 process, 1 round

Everything runs on generated images (a ``folder`` tree of ``--images`` PNGs of ``--size`` pixels, half real, half
fake) so that the figures are reproducible anywhere. Throughput is training images per second of an epoch's
training loop (data loading + forward + backward + step; validation, checkpoints and start-up excluded), as
train.py reports it in history.json (``train_images_per_s``): the best epoch after the first (and the median), since
a shared machine makes single epochs noisy. The bare loop takes the same training split (train.py's
``load_splits``), applies the detector's own transform and runs the same optimizer steps with plain PyTorch: no
Accelerate, no augmentation, no logging. ``overhead_pct``: how much slower train.py's loop is than the bare loop
(1 process, best epochs). Side by side: every round runs the bare loop and train.py on 1 and N processes, the order
rotated from round to round so that load from other processes falls on all alike; the figures are the medians over
rounds. Targets (issue 7): ``train_py_vs_bare`` >= 0.95; ``two_vs_one_process`` is reported.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine_info  # noqa: E402


def make_data(root: Path, n: int, size: int) -> Path:
    from PIL import Image

    rng = np.random.default_rng(0)
    for i in range(n):
        label = "real" if i % 2 == 0 else "fake"
        arr = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        if label == "real":
            arr = (arr // 4 + 96).astype(np.uint8)
        (root / label).mkdir(parents=True, exist_ok=True)
        Image.fromarray(arr).save(root / label / f"{i:05d}.png")
    return root


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_train_py(data: Path, out: Path, args: argparse.Namespace, processes: int) -> dict:
    flags = ["--data.source", "folder", "--data.data_dir", str(data), "--data.validation_fraction", "0.05",
             "--model.name", args.model, "--train.epochs", str(args.epochs), "--train.batch_size",
             str(args.batch_size // processes), "--train.output_dir", str(out), "--train.log_with", "none",
             "--train.progress", "false", "--train.calibrate", "false", "--optim.grad_clip", "null",
             "--data.num_workers", str(args.workers)]
    if processes == 1:
        cmd = [sys.executable, str(ROOT / "training" / "train.py"), *flags]
    else:
        cmd = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(processes),
               "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port",
               str(_port()), str(ROOT / "training" / "train.py"), *flags]
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), PYTHONPATH=str(ROOT))
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=ROOT)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"train.py failed ({processes} proc):\n{proc.stderr[-3000:]}")
    history = json.loads((out / "history.json").read_text())
    rates = [h["train_images_per_s"] for h in history[1:] or history]  # the first epoch warms up
    return {"processes": processes, "global_batch": args.batch_size // processes * processes,
            "images_per_s": round(max(rates), 2), "images_per_s_median": round(float(np.median(rates)), 2),
            "wall_seconds_total": round(wall, 1)}


def bare_loop(data: Path, args: argparse.Namespace) -> dict:
    """Plain PyTorch: the same prepared dataset, the detector's transform, AdamW, the same batch size."""
    import torch

    torch.set_num_threads(args.threads)
    from hubdet.models import create_detector

    torch.manual_seed(0)
    # the very split train.py trains on (validation carved off with the same seed)
    from hubdet.training import DataConfig, load_splits

    ds = load_splits(DataConfig(source="folder", data_dir=str(data), validation_fraction=0.05))["train"]
    ds = ds.select_columns(["image", "label"])
    detector = create_detector(args.model)
    transform = detector.transform

    class Samples(torch.utils.data.Dataset):
        def __len__(self) -> int:
            return len(ds)

        def __getitem__(self, i: int) -> tuple:
            ex = ds[i]
            return transform(ex["image"]), torch.tensor(float(ex["label"]))

    loader = torch.utils.data.DataLoader(Samples(), batch_size=args.batch_size, shuffle=True,
                                         num_workers=args.workers)
    opt = torch.optim.AdamW(detector.parameters(), lr=1e-3)
    detector.train()
    rates = []
    for _ in range(args.epochs):
        t0, seen = time.perf_counter(), 0
        for x, y in loader:
            out = detector(x, labels=y)
            out.loss.backward()
            opt.step()
            opt.zero_grad()
            seen += len(y)
        rates.append(seen / (time.perf_counter() - t0))
    rates = rates[1:] or rates  # the first epoch warms up
    return {"processes": 1, "global_batch": args.batch_size, "images_per_s": round(max(rates), 2),
            "images_per_s_median": round(float(np.median(rates)), 2)}


def _median_run(runs: list[dict]) -> dict:
    """The run with the median ``images_per_s`` over rounds, with every round's figure."""
    ordered = sorted(runs, key=lambda r: r["images_per_s"])
    mid = dict(ordered[(len(ordered) - 1) // 2])
    mid["images_per_s_rounds"] = [r["images_per_s"] for r in runs]
    mid["images_per_s"] = round(float(np.median([r["images_per_s"] for r in runs])), 2)
    return mid


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="classifier_tiny.test")
    p.add_argument("--images", type=int, default=256)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--batch-size", type=int, default=32, help="global batch (split across processes)")
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    p.add_argument("--threads", type=int, default=1, help="torch threads per process")
    p.add_argument("--workers", type=int, default=0, help="DataLoader workers")
    p.add_argument("--rounds", type=int, default=2, help="rounds of (bare loop, train.py per process count)")
    p.add_argument("--quick", action="store_true", help="smoke run: 64 images of 32 px, 2 epochs, 1 process, 1 round")
    args = p.parse_args()
    if args.quick:
        args.images, args.size, args.epochs, args.processes, args.rounds = 64, 32, 2, [1], 1
    import datasets

    datasets.disable_progress_bars()
    with tempfile.TemporaryDirectory() as tmp:
        data = make_data(Path(tmp) / "data", args.images, args.size)
        os.environ.setdefault("HF_DATASETS_CACHE", str(Path(tmp) / "cache"))
        load_before = os.getloadavg()
        contenders = [("bare_pytorch", lambda r: bare_loop(data, args))] + [
            (f"train_py_{n}", lambda r, n=n: run_train_py(data, Path(tmp) / f"run{n}_{r}", args, n))
            for n in args.processes
        ]
        runs: dict[str, list[dict]] = {key: [] for key, _ in contenders}
        for r in range(args.rounds):
            k = r % len(contenders)
            for key, fn in contenders[k:] + contenders[:k]:
                runs[key].append(fn(r))
        results = {"benchmark": "train", "model": args.model, "images": args.images, "size": args.size,
                   "epochs": args.epochs, "rounds": args.rounds, "threads_per_process": args.threads,
                   **machine_info(load_before)}
        results["bare_pytorch"] = _median_run(runs["bare_pytorch"])
        results["train_py"] = [_median_run(runs[f"train_py_{n}"]) for n in args.processes]
        one = next((r for r in results["train_py"] if r["processes"] == 1), None)
        if one:
            bare = results["bare_pytorch"]["images_per_s"]
            results["overhead_pct"] = round(100.0 * (bare - one["images_per_s"]) / bare, 1)
            results["train_py_vs_bare"] = round(one["images_per_s"] / bare, 3)
            results["target_met (>=0.95)"] = one["images_per_s"] / bare >= 0.95
            two = next((r for r in results["train_py"] if r["processes"] == 2), None)
            if two:
                results["two_vs_one_process"] = round(two["images_per_s"] / one["images_per_s"], 3)
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
