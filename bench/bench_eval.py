"""Evaluation throughput (images/s) with and without the robustness protocol; prints JSON.

Writes a generated folder dataset (Real/ PNG, Fake/ JPEG) to a temporary directory, then runs
``hubdet.eval.evaluate`` on it. Two figures per setting:

- ``predictions_per_s``: perturbed-image predictions per second inside the evaluation loop (decode of the
  dataset rows excluded, perturbation + preprocessing + forward included): what ``timing.images_per_second``
  of a result reports;
- ``dataset_images_per_s``: dataset images per second of the whole call (wall clock, data preparation cached,
  model loading and metrics included): with the protocol each image is predicted 8 times.

    OMP_NUM_THREADS=2 python bench/bench_eval.py --model classifier_tiny.test --n 128 --size 64
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image


def write_folder(root: Path, n: int, size: int) -> Path:
    """``n // 2`` noise PNGs in ``Real/`` and as many JPEGs in ``Fake/``."""
    rng = np.random.default_rng(0)
    (root / "Real").mkdir(parents=True, exist_ok=True)
    (root / "Fake").mkdir(parents=True, exist_ok=True)
    for i in range(n // 2):
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(root / "Real" / f"r{i}.png")
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(root / "Fake" / f"f{i}.jpg",
                                                                                      quality=90)
    return root


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="classifier_tiny.test", help="folder, Hub id or registry name")
    parser.add_argument("--n", type=int, default=128, help="dataset images (half real, half fake)")
    parser.add_argument("--size", type=int, default=64, help="image side in pixels")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=2, help="timed runs per setting (best kept)")
    args = parser.parse_args()

    import torch

    from hubdet.eval import evaluate, load_model

    with tempfile.TemporaryDirectory() as tmp:
        data = write_folder(Path(tmp) / "data", args.n, args.size)
        detector, _ = load_model(args.model)
        evaluate(detector, "folder", data, batch_size=args.batch_size, cache_dir=Path(tmp) / "cache")  # warm-up
        out = {"model": args.model, "n_images": args.n, "size": args.size, "batch_size": args.batch_size,
               "device": "cuda" if torch.cuda.is_available() else "cpu", "torch_threads": torch.get_num_threads(),
               "cpu": platform.processor() or platform.machine(), "omp_num_threads": os.environ.get("OMP_NUM_THREADS")}
        for name, robust in (("clean", False), ("robustness", True)):
            best = None
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                res = evaluate(detector, "folder", data, batch_size=args.batch_size, robustness=robust,
                               cache_dir=Path(tmp) / "cache")
                wall = time.perf_counter() - t0
                run = {"predictions_per_s": res["timing"]["images_per_second"],
                       "dataset_images_per_s": round(args.n / wall, 2), "wall_s": round(wall, 3),
                       "n_forward": res["timing"]["n_forward"]}
                if best is None or run["wall_s"] < best["wall_s"]:
                    best = run
            out[name] = best
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
