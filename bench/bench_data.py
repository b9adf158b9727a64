#!/usr/bin/env python
"""Data speed: preparing a ``folder`` source and making a ``hubdet synth`` benchmark, against plain PIL decoding.

Side by side in ONE process, the contenders rotated every round (load from other processes falls on all alike):

- ``plain_pil_decode``: ``Image.open(path).convert("RGB")`` (fully decoded) for every file of the folder: the
  least any preparation must do;
- ``prepare_folder``: ``hubdet.data.load_source("folder", data_dir, cache_dir=<fresh dir>)`` (listing, decoding and
  validating every file through the shared decoder, the bad-file rules, the schema, writing the Arrow cache), a
  fresh cache directory every round so nothing is reused;
- ``synth_benchmark``: ``hubdet.data.synth.make_inpainting_benchmark`` (TELEA backend, half the photos inpainted,
  PNG output, masks and ``boxes.csv``) into a fresh folder;
- ``plain_synth_script``: what a user would script instead: PIL decode, a random rectangle on half the photos,
  ``cv2.inpaint`` TELEA (radius 3), PNG (compress level 1) of the image and of the mask, no validation, no CSV.

Target (issue 7): ``prepare_folder`` >= 0.8x ``plain_pil_decode`` (files/s).

    python bench/bench_data.py            # 128 640x480 JPEGs, 5 rounds
    python bench/bench_data.py --quick    # a few seconds
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine_info, make_jpegs, time_rotated  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--n-images", type=int, default=128, help="files in the folder (half real, half fake)")
    parser.add_argument("--image-size", type=int, nargs=2, default=[640, 480], metavar=("W", "H"))
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="smoke run: 16 small images, 1 round")
    args = parser.parse_args()
    if args.quick:
        args.n_images, args.rounds, args.image_size = 16, 1, [320, 240]
    logging.basicConfig(level=logging.WARNING)
    import cv2
    import datasets
    from PIL import Image

    from hubdet.data import load_source
    from hubdet.data.synth import make_inpainting_benchmark

    datasets.disable_progress_bars()
    datasets.logging.set_verbosity_error()
    cv2.setNumThreads(1)
    size = (int(args.image_size[0]), int(args.image_size[1]))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        data = root / "folder"
        half = args.n_images // 2
        reals = make_jpegs(data / "real", half, size, seed=0)
        fakes = make_jpegs(data / "fake", args.n_images - half, size, seed=1)
        files = reals + fakes
        photos = data / "real"
        counter = {"n": 0}

        def fresh(name: str) -> Path:
            counter["n"] += 1
            path = root / f"{name}_{counter['n']}"
            return path

        def plain_decode() -> None:
            for p in files:
                with Image.open(p) as im:
                    im.convert("RGB")

        def prepare() -> None:
            cache = fresh("cache")
            ds = load_source("folder", str(data), cache_dir=str(cache))
            if sum(len(s) for s in ds.values()) != len(files):
                raise SystemExit(f"prepare_folder: expected {len(files)} examples, got {ds}")
            shutil.rmtree(cache, ignore_errors=True)

        def synth() -> None:
            out = fresh("synth")
            make_inpainting_benchmark(photos, out, backend="telea", seed=0, progress=False)
            shutil.rmtree(out, ignore_errors=True)

        def plain_synth() -> None:
            out = fresh("plain_synth")
            (out / "real").mkdir(parents=True)
            (out / "fake").mkdir()
            rng = np.random.default_rng(0)
            for i, p in enumerate(reals):
                with Image.open(p) as im:
                    arr = np.asarray(im.convert("RGB"))
                if i % 2:
                    h, w = arr.shape[:2]
                    mw, mh = (int(rng.uniform(0.1, 0.5) * w), int(rng.uniform(0.1, 0.5) * h))
                    x, y = int(rng.integers(0, w - mw)), int(rng.integers(0, h - mh))
                    mask = np.zeros((h, w), np.uint8)
                    mask[y:y + mh, x:x + mw] = 255
                    arr = cv2.inpaint(arr, mask, 3.0, cv2.INPAINT_TELEA)
                    Image.fromarray(mask).save(out / "fake" / f"{i}_mask.png", compress_level=6)
                    Image.fromarray(arr).save(out / "fake" / f"{i}.png", compress_level=1)
                else:
                    Image.fromarray(arr).save(out / "real" / f"{i}.png", compress_level=1)
            shutil.rmtree(out, ignore_errors=True)

        load_before = os.getloadavg()
        timings = time_rotated({
            "plain_pil_decode": (plain_decode, len(files)),
            "prepare_folder": (prepare, len(files)),
            "synth_benchmark": (synth, len(reals)),
            "plain_synth_script": (plain_synth, len(reals)),
        }, args.rounds)
    for v in timings.values():
        v["files_per_s"] = v.pop("images_per_s")
        v["files_per_s_best"] = v.pop("images_per_s_best")
    rate = {k: v["files_per_s"] for k, v in timings.items()}
    prep_ratio = rate["prepare_folder"] / rate["plain_pil_decode"]
    out: dict[str, Any] = {
        "benchmark": "data",
        **machine_info(load_before),
        "n_files": len(files),
        "synth_photos": len(reals),
        "jpeg_size_wh": list(size),
        "rounds": args.rounds,
        "timings": timings,
        "prepare_vs_plain_decode": round(prep_ratio, 3),
        "target_prepare_met (>=0.8)": prep_ratio >= 0.8,
        "synth_vs_plain_decode": round(rate["synth_benchmark"] / rate["plain_pil_decode"], 3),
        "synth_vs_plain_synth_script": round(rate["synth_benchmark"] / rate["plain_synth_script"], 3),
    }
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
