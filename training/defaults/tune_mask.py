"""Choose the mask detector's map bias, region rule and calibration on the VALIDATION split only (never the test).

    python training/defaults/tune_mask.py --model runs/defaults/mask/model --data-dir work_data/mask/train_val --write

The pixel logits of every validation image are computed once (``MaskDetector.predict_maps``); then, for each
``map_bias`` of the grid, the per-image pixel F1 at 0.5 (what ``pixel_f1`` reports), the best region's box IoU and
the image ROC-AUC are measured, the bias with the best mean pixel F1 is kept (ties: box IoU), ``min_region`` is chosen
the same way, the image score's quantile (``topk_fraction``) by image ROC-AUC, and the temperature is refitted
on the image logits the shipped rule gives. With ``--copymove
defaults/copymove`` the late fusion with that detector's duplicate density (``MaskArgs.copymove_weight``) is tried
too (weight 0 = off is in the grid: it is kept only if it helps on validation). ``--write`` saves the
model folder with the new ``args`` (its config.json records what was chosen and on what).
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import numpy as np
import torch

import hubdet
from hubdet.eval.metric_table import Records, compute_metrics
from hubdet.models.mask import image_logit, map_regions

logger = logging.getLogger("tune_mask")


def measure(maps: list[np.ndarray], labels: list[int], truths: list, true_boxes: list, bias: float,
            min_region: float, close: int, topk: float, densities: list | None = None, weight: float = 0.0,
            threshold: float = 0.5) -> dict:
    rec = Records()
    for i, (m, y, t, tb) in enumerate(zip(maps, labels, truths, true_boxes, strict=True)):
        logits = m + bias
        if weight > 0 and densities is not None:
            logits = np.maximum(logits, weight * (densities[i] - threshold))
        prob = 1.0 / (1.0 + np.exp(-np.clip(logits, -30, 30)))
        img_logit = float(image_logit(torch.from_numpy(logits)[None], topk)[0])
        regions = map_regions(prob, min_area=min_region, close=close, keep_one=img_logit >= 0)
        rec.labels.append(y)
        rec.probs.append(float(1 / (1 + np.exp(-img_logit))))
        rec.logits.append(img_logit)
        rec.pred_boxes.append(regions[0]["box"] if regions else None)
        rec.true_boxes.append(tb)
        rec.pred_masks.append(prob)
        rec.true_masks.append(t)
    return compute_metrics(rec, threshold=0.5, kinds=("binary", "boxes", "masks"))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--split", default="validation")
    parser.add_argument("--limit", type=int, default=None)
    parser.add_argument("--biases", default="-2,-1.5,-1,-0.5,0,0.5,1,1.5,2,3")
    parser.add_argument("--min-regions", default="0,0.0005,0.001,0.002,0.005")
    parser.add_argument("--topk-fractions", default="0.0005,0.002,0.01,0.05,0.2")
    parser.add_argument("--copymove", type=Path, default=None,
                        help="a copy-move checkpoint whose analysis settings the late fusion would use")
    parser.add_argument("--copymove-weights", default="0,4,8,16")
    parser.add_argument("--copymove-thresholds", default="0.2,0.35,0.5")
    parser.add_argument("--write", action="store_true", help="save the chosen rule into the model folder")
    parser.add_argument("--out", type=Path, default=None, help="where to write the chosen numbers (JSON)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    det = hubdet.from_pretrained(args.model)
    base_bias = det.args.map_bias
    ds = hubdet.load_source("folder", str(args.data_dir), split=args.split)
    if args.limit:
        ds = ds.shuffle(seed=0).select(range(min(args.limit, len(ds))))
    cm_args = None
    if args.copymove is not None:
        import json as _json

        cm_args = _json.loads((args.copymove / "config.json").read_text())["args"]
    maps, labels, truths, true_boxes, densities = [], [], [], [], []
    det.eval()
    det.args = det.args.replace(copymove_weight=0.0)  # the CNN's own map; the fusion is applied below
    with torch.inference_mode():
        for i, row in enumerate(ds):
            (logit_map, _note), = det.predict_maps([row["image"].convert("RGB")])
            maps.append(logit_map - base_bias)
            if cm_args is not None:
                from hubdet.models.mask import copymove_density

                densities.append(copymove_density(np.asarray(row["image"].convert("RGB")), cm_args))
            labels.append(int(row["label"]))
            truths.append(None if row["mask"] is None else np.asarray(row["mask"].convert("L")) >= 128)
            true_boxes.append([list(map(float, b)) for b in row["boxes"] or []])
            if i % 20 == 0:
                logger.info("%d/%d images", i + 1, len(ds))
    a = det.args
    fusions = [(0.0, 0.5)]
    if cm_args is not None:
        fusions += [(float(w), float(t)) for w in args.copymove_weights.split(",") if float(w) > 0
                    for t in args.copymove_thresholds.split(",")]
    table = []
    for w, t in fusions:
        for b in [float(v) for v in args.biases.split(",")]:
            m = measure(maps, labels, truths, true_boxes, b, a.min_region, a.close, a.topk_fraction, densities, w, t)
            table.append({"map_bias": b, "copymove_weight": w, "copymove_threshold": t,
                          **{k: m[k] for k in ("pixel_f1", "pixel_iou", "mean_iou", "hit_rate@0.5", "roc_auc",
                                               "pixel_f1_best")}})
            logger.info("%s", table[-1])
    best = max(table, key=lambda r: (round(r["pixel_f1"], 3), r["mean_iou"] or 0, -r["copymove_weight"]))
    fuse = (densities, best["copymove_weight"], best["copymove_threshold"])
    regions = []
    for mr in [float(v) for v in args.min_regions.split(",")]:
        m = measure(maps, labels, truths, true_boxes, best["map_bias"], mr, a.close, a.topk_fraction, *fuse)
        regions.append({"min_region": mr, "mean_iou": m["mean_iou"], "hit_rate@0.5": m["hit_rate@0.5"]})
        logger.info("%s", regions[-1])
    best_region = max(regions, key=lambda r: (round(r["mean_iou"] or 0, 3), -r["min_region"]))
    topks = []
    for k in [float(v) for v in args.topk_fractions.split(",")]:  # the image score's quantile: image ROC-AUC
        m = measure(maps, labels, truths, true_boxes, best["map_bias"], best_region["min_region"], a.close, k, *fuse)
        topks.append({"topk_fraction": k, "roc_auc": m["roc_auc"], "pixel_f1": m["pixel_f1"]})
        logger.info("%s", topks[-1])
    best_topk = max(topks, key=lambda r: (round(r["roc_auc"] or 0, 3), r["topk_fraction"]))
    a = a.replace(topk_fraction=best_topk["topk_fraction"])
    chosen = {"map_bias": best["map_bias"], "min_region": best_region["min_region"],
              "topk_fraction": best_topk["topk_fraction"],
              "copymove_weight": best["copymove_weight"], "copymove_threshold": best["copymove_threshold"]}
    if chosen["copymove_weight"] > 0:
        chosen["copymove_args"] = cm_args
    final = measure(maps, labels, truths, true_boxes, chosen["map_bias"], chosen["min_region"], a.close,
                    a.topk_fraction, *fuse)
    logger.info("chosen %s on %s/%s (n=%d): %s", chosen, args.data_dir.name, args.split, len(maps),
                {k: final[k] for k in ("pixel_f1", "pixel_iou", "mean_iou", "hit_rate@0.5", "roc_auc")})
    summary = {"chosen": chosen, "split": f"{args.data_dir.name}/{args.split}", "n": len(maps), "grid": table,
               "regions": regions, "topk": topks, "validation": final}
    if args.out:
        args.out.write_text(json.dumps(summary, indent=1, default=float))
    if args.write:
        det.args = det.args.replace(**chosen)
        det.config.args = {**det.config.args, **chosen}
        fused = [m + chosen["map_bias"] if not chosen["copymove_weight"] else np.maximum(
            m + chosen["map_bias"], chosen["copymove_weight"] * (d - chosen["copymove_threshold"]))
            for m, d in zip(maps, densities or [None] * len(maps), strict=True)]
        logits = torch.tensor([image_logit(torch.from_numpy(f)[None], a.topk_fraction)[0] for f in fused])
        det.calibrate(logits, torch.tensor(labels, dtype=torch.float32),
                      fitted_on=f"folder:{args.data_dir.name}/{args.split} (n={len(maps)})")
        det.config.metadata["map_rule"] = {**chosen, "chosen_on": summary["split"], "validation": {
            k: final[k] for k in ("pixel_f1", "pixel_iou", "pixel_f1_best", "mean_iou", "hit_rate@0.5", "roc_auc")}}
        training = det.config.metadata.get("training")
        det.save_pretrained(args.model, card_kwargs=None)
        if training is not None:
            logger.info("saved %s (training metadata kept)", args.model)


if __name__ == "__main__":
    main()
