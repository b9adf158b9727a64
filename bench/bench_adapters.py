#!/usr/bin/env python
"""The transformers adapter (``hubdet.load_detector`` on a transformers image classifier) against
``pipeline("image-classification")`` on the same JPEG files, same weights, batch 32; prints JSON.

The model is a small ViT built here (no download): ViT-Tiny-sized (hidden 192, 12 layers, 3 heads, patch 16,
224x224 input, two classes ``real``/``artificial``), random weights, saved the transformers way
(``save_pretrained``: ``config.json``, ``model.safetensors``, ``preprocessor_config.json``). Contenders, timed in ONE
process with the order rotated every round (``bench/_common.time_rotated``):

- ``hubdet_adapter``: ``det.predict(paths, batch_size=32)`` (hubdet's decoder in threads, the image processor's
  preprocessing reproduced by hubdet's batch transform, one forward per batch, the fake logit, calibration, verdict);
- ``transformers_pipeline``: ``pipeline("image-classification", model=folder, batch_size=32)`` on the same paths
  (its own image loading, the default image processor, postprocessing to label scores).

``agreement_max_abs_prob_diff``: hubdet's P(artificial) against the pipeline's score of ``artificial`` (the
pipeline's default processor is transformers' torchvision backend; hubdet reproduces the PIL backend exactly, so the
two differ by resampling rounding only). Target (issue 12): >= 1.5x the pipeline.

    HF_HUB_OFFLINE=1 python bench/bench_adapters.py            # 64 640x480 JPEGs, batch 32, 5 rounds
    HF_HUB_OFFLINE=1 python bench/bench_adapters.py --quick    # a tiny ViT, a few seconds
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine_info, make_jpegs, time_rotated  # noqa: E402

parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
parser.add_argument("--n", type=int, default=64, help="JPEG files (default 64)")
parser.add_argument("--batch-size", type=int, default=32)
parser.add_argument("--rounds", type=int, default=5)
parser.add_argument("--quick", action="store_true", help="a tiny ViT (32x32), 16 files, 2 rounds")
args = parser.parse_args()
if args.quick:
    args.n, args.rounds = 16, 2

import torch  # noqa: E402
from transformers import ViTConfig, ViTForImageClassification, ViTImageProcessor, pipeline  # noqa: E402

import hubdet  # noqa: E402

load_before = os.getloadavg()
tmp = Path(tempfile.mkdtemp(prefix="bench_adapters_"))
files = [str(p) for p in make_jpegs(tmp / "jpegs", args.n, (640, 480))]

# 1. a small ViT image classifier, saved the transformers way
size = 32 if args.quick else 224
dims = dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, patch_size=8) \
    if args.quick else dict(hidden_size=192, num_hidden_layers=12, num_attention_heads=3, intermediate_size=768,
                            patch_size=16)
torch.manual_seed(0)
config = ViTConfig(image_size=size, id2label={0: "real", 1: "artificial"}, label2id={"real": 0, "artificial": 1},
                   **dims)
folder = tmp / "vit"
ViTForImageClassification(config).eval().save_pretrained(folder)
ViTImageProcessor(size={"height": size, "width": size}, image_mean=[0.5] * 3, image_std=[0.5] * 3).save_pretrained(
    folder)

# 2. the two contenders on the same files
det = hubdet.load_detector(str(folder))
pipe = pipeline("image-classification", model=str(folder), device=-1)
n_params = sum(p.numel() for p in det.parameters())


def run_hubdet() -> list[float]:
    return [p.prob for p in det.predict(files, batch_size=args.batch_size)]


def run_pipeline() -> list[float]:
    out = pipe(files, batch_size=args.batch_size, top_k=2)
    return [next(s["score"] for s in row if s["label"] == "artificial") for row in out]


ours, theirs = run_hubdet(), run_pipeline()
timing = time_rotated({"hubdet_adapter": (run_hubdet, len(files)), "transformers_pipeline": (run_pipeline, len(files))},
                      args.rounds)
result = {
    "model": {"architecture": "ViTForImageClassification", "input": f"{size}x{size}", "params": n_params, **dims},
    "files": {"n": len(files), "size": "640x480", "format": "JPEG q90"},
    "batch_size": args.batch_size, "rounds": args.rounds, "torch_threads": torch.get_num_threads(),
    "timing": timing,
    "speedup_median": round(timing["hubdet_adapter"]["images_per_s"] / timing["transformers_pipeline"]["images_per_s"],
                            2),
    "speedup_best": round(timing["hubdet_adapter"]["images_per_s_best"]
                          / timing["transformers_pipeline"]["images_per_s_best"], 2),
    "agreement_max_abs_prob_diff": max(abs(a - b) for a, b in zip(ours, theirs, strict=True)),
    "hubdet_preprocessing": "hubdet batch transform (reproduces the PIL processor)" if det._exact
    else "the image processor",
    "pipeline_processor": type(pipe.image_processor).__name__,
    "machine": machine_info(load_before),
}
print(json.dumps(result, indent=2))
