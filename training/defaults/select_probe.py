"""Choose the bundled classifier's probe recipe on frozen CLIP features, never on the test splits.

Every image of the ``train``, ``validation`` and ``validation_web`` splits of a prepare_data.py ``classify`` folder
goes once through the backbone of ``--detector`` (its own preprocessing; ``HUBDET_FEATURE_CACHE`` keeps the
summaries, so a second run and the training run reuse them). Each recipe (which CLIP blocks' CLS tokens, or the
projected embedding; logistic regression C) is scored by:

- ``val``: fitted on train, ROC-AUC on validation;
- ``web``: the same fit, ROC-AUC on validation_web (whole web files);
- ``G``: 5-fold cross-validation over train+validation, folds grouped by generator (fakes) and source image (reals);
- ``S``: the same with folds grouped by generator and by real source (the harder, more honest estimate).

Run: ``HUBDET_FEATURE_CACHE=work_data/featcache python training/defaults/select_probe.py work_data/v4/classify``
"""

from __future__ import annotations

import argparse
import csv
import logging
import zlib
from pathlib import Path

import numpy as np
import torch

import hubdet
from hubdet.data.imageio import load_image
from hubdet.models.preprocessing import thread_map

logger = logging.getLogger("select_probe")

#: Feature sets: (name, CLS blocks) or ("embed", None) for the projected image embedding.
RECIPES = [("embed", None), ("cls_4_8_12", (4, 8, 12)), ("cls_4_6_8_10_12", (4, 6, 8, 10, 12)),
           ("cls_all", tuple(range(1, 13)))]
C_GRID = (0.003, 0.01, 0.03)


def summaries(det: object, files: list[Path], batch: int = 16) -> dict[str, np.ndarray]:
    """The backbone's embedding and per-block CLS tokens for ``files`` (cached by ``HUBDET_FEATURE_CACHE``)."""
    parts: dict[str, list[np.ndarray]] = {"embed": [], "cls": []}
    for i in range(0, len(files), batch):
        with torch.inference_mode():
            s = det.backbone.summaries(det.batch_transform(thread_map(load_image, files[i:i + batch])))
        for k in parts:
            parts[k].append(s[k].float().numpy())
        logger.info("features %d/%d", min(i + batch, len(files)), len(files))
    return {k: np.concatenate(v) for k, v in parts.items()}


def features(s: dict[str, np.ndarray], blocks: tuple[int, ...] | None) -> np.ndarray:
    if blocks is None:
        return s["embed"]
    return np.concatenate([s["cls"][:, b] / np.linalg.norm(s["cls"][:, b], axis=1, keepdims=True) for b in blocks], 1)


def main() -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("data_dir", type=Path)
    parser.add_argument("--detector", default="probe_clip_vit_b16.rine", help="a registered CLIP probe variant")
    parser.add_argument("--folds", type=int, default=5)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    rows = [r for r in csv.DictReader((args.data_dir / "labels.csv").open())
            if r["split"] in ("train", "validation", "validation_web")]
    det = hubdet.create_detector(args.detector, pretrained=True).eval()
    s = summaries(det, [args.data_dir / r["file"] for r in rows])
    split = np.array([r["split"] for r in rows])
    y = np.array([r["label"] == "fake" for r in rows], dtype=int)

    def fold(key: str) -> int:
        return zlib.crc32(key.encode()) % args.folds

    fold_g = np.array([fold("g:" + r["generator"]) if r["label"] == "fake" else fold("r:" + r["group"]) for r in rows])
    fold_s = np.array([fold("g:" + r["generator"]) if r["label"] == "fake" else fold("o:" + r["origin"]) for r in rows])
    tr, va, web = split == "train", split == "validation", split == "validation_web"
    tv = tr | va

    def model(c: float):  # noqa: ANN202
        return make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=3000, class_weight="balanced"))

    def grouped(x: np.ndarray, folds: np.ndarray, c: float) -> float:
        scores = []
        for k in range(args.folds):
            test = tv & (folds == k)
            fit = tv & (folds != k)
            if len(set(y[test])) == 2:
                scores.append(roc_auc_score(y[test], model(c).fit(x[fit], y[fit]).decision_function(x[test])))
        return float(np.mean(scores))

    print(f"{'recipe':18s} {'C':>6s} {'val':>6s} {'web':>6s} {'G':>6s} {'S':>6s}")
    for name, blocks in RECIPES:
        x = features(s, blocks)
        for c in C_GRID:
            m = model(c).fit(x[tr], y[tr])
            val = roc_auc_score(y[va], m.decision_function(x[va]))
            wv = roc_auc_score(y[web], m.decision_function(x[web])) if web.any() else float("nan")
            print(f"{name:18s} {c:6.3f} {val:6.3f} {wv:6.3f} {grouped(x, fold_g, c):6.3f} "
                  f"{grouped(x, fold_s, c):6.3f}", flush=True)


if __name__ == "__main__":
    main()
