#!/usr/bin/env python
"""Explanations of a probe on a foundation tower (the bundled CLIP classifier): how long each method takes and how
faithful its map is, side by side on the same images.

Methods: ``occlusion`` (captum ``Occlusion``, the 5x5 grid every model without its own map gets), and token
gradient x activation (captum ``LayerGradientXActivation``) read after the embeddings (``block0``), after block
``depth // 3`` (``block4`` of 12, what the probe's ``explain_map`` uses) and after block ``2 * depth // 3``
(``block8``); ``random`` is the baseline.

Faithfulness is a deletion test: the 14x14 patches of the model input are blurred (Gaussian, radius 8, the same
crop) in the order a map ranks them, most evidence for the predicted class first, 0-100% in steps of 10%; the
area under the curve of the predicted class's logit minus its value at 0% is the score (more negative: the map
found the evidence sooner). Use images outside the test splits (validation).

    python bench/bench_explanations.py --model defaults/classifier --labels DATA/labels.csv --split validation

Prints one JSON object.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine_info  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="defaults/classifier")
    parser.add_argument("--labels", type=Path, required=True, help="a labels.csv with file and split columns")
    parser.add_argument("--split", default="validation")
    parser.add_argument("-n", type=int, default=24, help="images drawn (seeded) from the split")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from PIL import Image, ImageFilter

    import hubdet
    from hubdet.models.explain import occlusion

    det = hubdet.load_detector(args.model).eval()
    backbone = det.backbone
    if not hasattr(backbone, "relevance_layer"):
        raise SystemExit(f"{args.model}: not a probe on a foundation tower")
    w, b = det.affine_head()
    blocks = backbone.model.vision_model.encoder.layers
    depth = len(blocks)
    layers = {"block0": backbone.model.vision_model.pre_layrnorm, f"block{depth // 3}": blocks[depth // 3 - 1],
              f"block{2 * depth // 3}": blocks[2 * depth // 3 - 1]}

    def logit(x: torch.Tensor) -> torch.Tensor:
        return backbone(x).float() @ w + b

    rows = [r for r in csv.DictReader(args.labels.open()) if r["split"] == args.split]
    rng = np.random.default_rng(args.seed)
    chosen = [rows[i] for i in rng.choice(len(rows), min(args.n, len(rows)), replace=False)]
    side = backbone.arch.input_size // backbone.patch_size
    steps = np.linspace(0.0, 1.0, 11)
    scores: dict[str, list[float]] = {k: [] for k in ["occlusion", *layers, "random"]}
    seconds: dict[str, list[float]] = {k: [] for k in ["occlusion", *layers]}
    for row in chosen:
        img = Image.open(args.labels.parent / row["file"]).convert("RGB")
        x = det.batch_transform([img]).contiguous()
        blurred = det.batch_transform([img.filter(ImageFilter.GaussianBlur(8))]).contiguous()
        with torch.no_grad():
            sign = 1.0 if float(logit(x)[0]) > 0 else -1.0  # the evidence for the predicted class
        maps: dict[str, np.ndarray] = {}
        start = time.perf_counter()
        heat = occlusion(det, x).numpy()
        seconds["occlusion"].append(time.perf_counter() - start)
        p = backbone.patch_size
        maps["occlusion"] = heat.reshape(side, p, side, p).mean((1, 3))
        for name, layer in layers.items():
            start = time.perf_counter()
            maps[name] = det.token_relevance(x, layer).numpy()
            seconds[name].append(time.perf_counter() - start)
        maps["random"] = rng.random((side, side))
        for name, relevance in maps.items():
            order = np.argsort(-(relevance if name == "random" else relevance * sign).ravel())
            batch = []
            for s in steps:
                keep = np.zeros(side * side, bool)
                keep[order[: int(round(s * side * side))]] = True
                mask = torch.from_numpy(np.kron(keep.reshape(side, side), np.ones((p, p)))).bool()
                batch.append(torch.where(mask[None, None], blurred, x))
            with torch.no_grad():
                curve = logit(torch.cat(batch)).numpy() * sign
            scores[name].append(float(np.trapezoid(curve - curve[0], steps)))
    out: dict[str, Any] = {
        "model": args.model, "images": len(chosen), "split": args.split, "seed": args.seed,
        "deletion_auc_mean": {k: round(float(np.mean(v)), 3) for k, v in scores.items()},
        "deletion_auc_median": {k: round(float(np.median(v)), 3) for k, v in scores.items()},
        "images_better_than_random": {k: int(sum(a < r for a, r in zip(v, scores["random"], strict=True)))
                                      for k, v in scores.items() if k != "random"},
        "seconds_median": {k: round(float(np.median(v)), 3) for k, v in seconds.items()},
        "machine": machine_info(),
    }
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
