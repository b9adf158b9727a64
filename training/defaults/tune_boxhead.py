"""Choose the box head's region rule (``tile_threshold``, ``merge_iou``) on the VALIDATION split.

The tiles of each validation photo go through the network once; every rule is then scored by the mean IoU of the
predicted region with the true box on the inpainted photos. The test split is never read. Prints JSON; with
``--write`` stores the best rule in the checkpoint's config.json (``args``), which is what predict uses.

    python training/defaults/tune_boxhead.py --model runs/defaults/boxhead/model --data-dir work_data/defaults/inpaint
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch

import hubdet
from hubdet.eval.metrics import box_metrics


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--split", default="validation")
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args(argv)

    ds = hubdet.load_source("folder", str(args.data_dir), split=args.split)
    fakes = [ex for ex in ds if ex["label"] == 1 and ex["boxes"]]
    det = hubdet.from_pretrained(args.model)
    base = det.args
    results = []
    # the rules only change post-processing: run the tiles through the network once and replay the outputs
    recorded: list = []
    replay = iter(())
    real_forward = det.forward

    def cached_forward(pixel_values: torch.Tensor, labels: None = None, boxes: None = None):  # noqa: ANN202
        out = next(replay, None)
        if out is None:
            out = real_forward(pixel_values)
            recorded.append(out)
        return out

    det.forward = cached_forward
    for threshold in (0.5, 0.7, 0.9):
        for merge_iou in (0.0, 0.3, 1.0):
            det.args = base.replace(tile_threshold=threshold, merge_iou=merge_iou)
            replay = iter(list(recorded))
            preds = det.predict([ex["image"] for ex in fakes], batch_size=8)
            m = box_metrics([p.box for p in preds], [ex["boxes"][0] for ex in fakes])
            results.append({"tile_threshold": threshold, "merge_iou": merge_iou, **{
                k: m[k] for k in ("mean_iou", "hit_rate@0.5") if k in m}})
            print(json.dumps(results[-1]), flush=True)
    best = max(results, key=lambda r: r["mean_iou"] or 0.0)
    print(json.dumps({"best": best, "n_images": len(fakes), "split": args.split}))
    if args.write:
        det.args = base.replace(tile_threshold=best["tile_threshold"], merge_iou=best["merge_iou"])
        det.config.args = det.args.to_dict()
        det.config.metadata["region_rule"] = {"chosen_on": args.split, **best}
        cfg_path = args.model / "config.json"
        cfg_path.write_text(json.dumps(det.config.to_dict(), indent=2, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
