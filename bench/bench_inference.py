#!/usr/bin/env python
"""Inference speed: ``Detector.predict`` on JPEG files against a bare timm forward and transformers' pipeline.

For each classifier (default: EfficientNet-Lite0 with its offline ImageNet weights, and the tiny test variant), side
by side in ONE process, the contenders rotated every round so that load from other processes hits all alike:

- ``predict_files``: ``det.predict(paths, batch_size=B)`` on N JPEG files on disk (hubdet's decoder, resize,
  normalise, forward, calibration, verdict): what a hubdet user runs;
- ``bare_timm_forward``: the same timm module (``det.model``) on ready ``[B, 3, H, W]`` tensors, no decoding, no
  preprocessing (the practical limit), in the default memory format; ``bare_timm_forward_channels_last``: the same
  on a ``channels_last`` copy of the model and tensors. The limit used for the ratio is the faster of the two;
- ``transformers_pipeline``: ``pipeline("image-classification")`` on the same file paths, ``batch_size=B``, running
  the same weights through transformers' timm wrapper (``TimmWrapperForImageClassification`` + its image
  processor). The wrapper is built offline: the timm model is saved in timm's Hub format (``timm.models.save_for_hf``
  -> ``config.json`` + ``model.safetensors``) with the detector's own preprocessing in ``pretrained_cfg``, and the
  folder is loaded with ``pipeline("image-classification", model=folder)``. Both paths then see the same pixels
  (``agreement_max_abs_prob_diff`` checks it: sigmoid of the pipeline's logit vs hubdet's uncalibrated prob).

Throughput is images/s of the median round (ratios of medians are the headline; ``best_rounds`` gives the ratios of
the fastest rounds, the least disturbed by other processes on a shared machine).
Targets (issue 7): predict >= 0.8x the bare limit, >= 1.5x the pipeline.

    HF_HUB_OFFLINE=1 python bench/bench_inference.py            # 32 640x480 JPEGs, batch 32, 7 rounds
    HF_HUB_OFFLINE=1 python bench/bench_inference.py --quick    # a few seconds
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import os
import platform
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine_info, make_jpegs, time_rotated  # noqa: E402


def build_pipeline(det: Any, folder: Path) -> Any:
    """transformers' image-classification pipeline on the detector's timm module, loaded from a local folder."""
    import timm.models
    from transformers import pipeline

    timm.models.save_for_hf(det.model, str(folder), safe_serialization=True,
                            model_args=dict(det.args.model_args) or None)
    cfg_path = folder / "config.json"
    cfg = json.loads(cfg_path.read_text())
    pre = det.config.preprocess
    h, w = pre.input_size
    # the detector's preprocessing: a plain resize ("squash") to input_size, its interpolation and normalisation
    cfg["pretrained_cfg"].update(input_size=[3, h, w], crop_pct=1.0, crop_mode="squash",
                                 interpolation=pre.interpolation, mean=list(pre.mean), std=list(pre.std))
    cfg["pretrained_cfg"].pop("test_input_size", None)
    # timm records its factory arguments; the wrapper passes num_classes itself (from num_classes / label_names)
    model_args = {k: v for k, v in cfg.get("model_args", {}).items() if k not in ("num_classes", "pretrained")}
    if model_args:
        cfg["model_args"] = model_args
    else:
        cfg.pop("model_args", None)
    cfg["label_names"] = ["fake"]
    cfg_path.write_text(json.dumps(cfg, indent=2))
    return pipeline("image-classification", model=str(folder), device="cpu")


def bench_model(name: str, paths: list[Path], batch_size: int, rounds: int, work: Path) -> dict[str, Any]:
    import torch

    import hubdet
    from hubdet._core.errors import ConfigError

    try:
        det = hubdet.create_detector(name, pretrained=True).eval()
    except ConfigError:  # no offline weights for this backbone (the tiny test variant): speed does not depend on them
        det = hubdet.create_detector(name, pretrained=False).eval()
    if det.config.preprocess.resize != "resize":
        raise SystemExit(f"{name}: the pipeline comparison needs a detector with resize='resize' preprocessing")
    h, w = det.config.preprocess.input_size
    n_batches = max(1, len(paths) // batch_size)
    n_tensor = n_batches * batch_size
    x = torch.randn(batch_size, 3, h, w)
    bare = det.model
    bare_cl = copy.deepcopy(det.model).to(memory_format=torch.channels_last).eval()
    x_cl = x.contiguous(memory_format=torch.channels_last)
    pipe = build_pipeline(det, work / f"timm_{name.replace('.', '_')}")
    str_paths = [str(p) for p in paths]

    def predict_files() -> None:
        det.predict(paths, batch_size=batch_size)

    def bare_forward() -> None:
        with torch.inference_mode():
            for _ in range(n_batches):
                bare(x)

    def bare_forward_cl() -> None:
        with torch.inference_mode():
            for _ in range(n_batches):
                bare_cl(x_cl)

    def run_pipeline() -> None:
        pipe(str_paths, batch_size=batch_size)

    fns: dict[str, tuple[Callable[[], object], int]] = {
        "predict_files": (predict_files, len(paths)),
        "bare_timm_forward": (bare_forward, n_tensor),
        "bare_timm_forward_channels_last": (bare_forward_cl, n_tensor),
        "transformers_pipeline": (run_pipeline, len(paths)),
    }
    timings = time_rotated(fns, rounds)
    # same pixels, same weights: the pipeline's sigmoid score must match hubdet's uncalibrated probability
    k = min(len(paths), 8)
    preds = det.predict(paths[:k], batch_size=batch_size)
    piped = pipe(str_paths[:k], batch_size=batch_size, function_to_apply="sigmoid", top_k=1)
    diff = max(abs(1 / (1 + np.exp(-p.logit)) - r[0]["score"]) for p, r in zip(preds, piped, strict=True))
    rate = {key: v["images_per_s"] for key, v in timings.items()}
    best = {key: v["images_per_s_best"] for key, v in timings.items()}
    limit_key = max(("bare_timm_forward", "bare_timm_forward_channels_last"), key=lambda key: rate[key])
    vs_bare = rate["predict_files"] / rate[limit_key]
    vs_pipe = rate["predict_files"] / rate["transformers_pipeline"]
    best_limit = max(best["bare_timm_forward"], best["bare_timm_forward_channels_last"])
    return {
        "model": name,
        "backbone": det.args.backbone,
        "input_size": [h, w],
        "weights": det.config.weights_source,
        "params_m": round(sum(p.numel() for p in det.parameters()) / 1e6, 3),
        "timings": timings,
        "bare_limit": limit_key,
        "predict_vs_bare_limit": round(vs_bare, 3),
        "predict_vs_pipeline": round(vs_pipe, 3),
        "predict_vs_bare_default_format": round(rate["predict_files"] / rate["bare_timm_forward"], 3),
        "best_rounds": {"predict_vs_bare_limit": round(best["predict_files"] / best_limit, 3),
                        "predict_vs_pipeline": round(best["predict_files"] / best["transformers_pipeline"], 3)},
        "target_vs_bare_met (>=0.8)": vs_bare >= 0.8,
        "target_vs_pipeline_met (>=1.5)": vs_pipe >= 1.5,
        "agreement_max_abs_prob_diff": float(f"{diff:.2e}"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--models", nargs="+",
                        default=["classifier_efficientnet_lite0.in1k", "classifier_tiny.test"])
    parser.add_argument("--n-images", type=int, default=32)
    parser.add_argument("--image-size", type=int, nargs=2, default=[640, 480], metavar=("W", "H"),
                        help="size of the JPEG files (default: VGA, a typical web photo)")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=7, help="timed rounds (after one warm-up round)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--quick", action="store_true",
                        help="smoke run: the tiny test variant, 32 320x240 images, 1 round")
    args = parser.parse_args()
    if args.quick:
        args.n_images, args.rounds, args.image_size = 32, 1, [320, 240]
        args.models = ["classifier_tiny.test"]
    logging.basicConfig(level=logging.WARNING)
    import torch
    import transformers

    transformers.logging.set_verbosity_error()
    if args.threads:
        torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        paths = make_jpegs(work / "jpegs", args.n_images, tuple(args.image_size))
        load_before = os.getloadavg()
        results = [bench_model(m, paths, args.batch_size, args.rounds, work) for m in args.models]
    print(json.dumps({
        "benchmark": "inference",
        **machine_info(load_before),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
        "n_images": args.n_images,
        "jpeg_size_wh": args.image_size,
        "batch_size": args.batch_size,
        "rounds": args.rounds,
        "results": results,
    }, indent=2))


if __name__ == "__main__":
    main()
