"""Rebuild the training data of the mask (inpainting localisation) detector from inputs that exist offline.

Inputs:

- ``--extra``: the real photos of ``/work/data/extra`` (rebuilt by ``training/defaults/sources/build_extra.py`` from
  its manifest; ``labels.csv`` names each photo's source and near-duplicate ``group``). Photos whose source also
  appears in ``--shared-data`` (its ``labels.csv`` files) are left out, so no photo of the shared sets, and none of
  the test split's tool or photos, is ever seen;
- the inpainting backends of ``hubdet synth`` (:mod:`hubdet.data.inpainters`): TELEA, NS, xphoto FSR, PatchMatch and
  the exemplar (copied patches) fill.

Photos are split by near-duplicate group (a hash of the group name, so the split never depends on the order or on
other photos): ``train`` (70%), ``validation`` (15%, to choose everything) and ``fresh`` (15%, a second test set made
with the same tools from photos never used in training or validation). Every photo becomes one or more views whose
longer side is 640-1024 pixels (large photos: random crops, area-downscaled; small ones keep their size), stored
losslessly; each (split, backend, format) group of views then goes through ``make_inpainting_benchmark``: half the
views get 1-3 regions (rectangle, brush or object-shaped mask: ``mask_kind="varied"``) filled by that backend, and
BOTH classes are saved as PNG or as JPEG at one quality (75, 85 or 95).

Outputs (outside the repository):

- ``OUT/train_val/``: a ``folder`` source (``Real/``, ``Fake/``, ``masks/``, ``boxes.csv`` with a ``split`` column:
  ``train`` and ``validation``; one box row per region);
- ``OUT/fresh/``: the same layout, split ``test`` only.

Run: ``python training/defaults/prepare_inpaint.py --extra /work/data/extra --shared-data ../shared/data
--out /work/data/mask``.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import logging
import random
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

from hubdet._core.errors import BadImageError
from hubdet.data.imageio import load_image

sys.path.insert(0, str(Path(__file__).resolve().parent))
from prepare_data import _merge_rows, _write_boxes  # noqa: E402  (the same merge as the box head's data)

logger = logging.getLogger("prepare_inpaint")

#: Every ``hubdet synth`` backend that runs offline (fsr-best: the same algorithm as fsr-fast, 20x slower).
BACKENDS = ["telea", "ns", "fsr-fast", "patchmatch", "exemplar"]
FORMATS = [("png", 100), ("jpeg", 75), ("jpeg", 85), ("jpeg", 95)]
SPLITS = (("train", 0.70), ("validation", 0.15), ("fresh", 0.15))


def shared_sources(shared: Path) -> set[str]:
    """Source repositories of the photos in the shared sample sets."""
    out: set[str] = set()
    for labels in shared.glob("*/labels.csv"):
        for row in csv.DictReader(labels.open()):
            if row.get("source_repo"):
                out.add(row["source_repo"])
    return out


def split_of(group: str) -> str:
    """``train`` / ``validation`` / ``fresh`` from a hash of the near-duplicate group."""
    u = int(hashlib.sha256(group.encode()).hexdigest()[:8], 16) / 2**32
    edge = 0.0
    for name, share in SPLITS:
        edge += share
        if u < edge:
            return name
    return SPLITS[-1][0]


def photos(extra: Path, shared: Path) -> list[dict[str, str]]:
    """Real photos of ``extra`` whose source is not in the shared sets, with their split."""
    excluded = shared_sources(shared)
    rows = [r for r in csv.DictReader((extra / "labels.csv").open())
            if r["label"] == "real" and r["source_repo"] not in excluded]
    logger.info("%d real photos (sources left out, also in %s: %s)", len(rows), shared, sorted(excluded & {
        r["source_repo"] for r in csv.DictReader((extra / "labels.csv").open())}))
    for r in rows:
        r["split"] = split_of(r["group"])
    return rows


def views(path: Path, rng: random.Random, n: int) -> list[Image.Image]:
    """``n`` views with the longer side in [640, 1024]: random crops of large photos (area downscaling), the photo
    itself when it is small."""
    import cv2

    img = np.asarray(load_image(path))
    h, w = img.shape[:2]
    out = []
    for _ in range(n):
        target = rng.randint(640, 1024)
        if max(h, w) <= target:
            out.append(Image.fromarray(img))
            continue
        frac = rng.uniform(0.5, 1.0) if max(h, w) > 1.6 * target else 1.0
        cw, ch = max(64, round(w * frac)), max(64, round(h * frac))
        x0, y0 = rng.randint(0, w - cw), rng.randint(0, h - ch)
        crop = img[y0 : y0 + ch, x0 : x0 + cw]
        s = target / max(cw, ch)
        size = (max(32, round(cw * s)), max(32, round(ch * s)))
        out.append(Image.fromarray(cv2.resize(crop, size, interpolation=cv2.INTER_AREA if s < 1 else cv2.INTER_LINEAR)))
    return out


def build(rows: list[dict[str, str]], extra: Path, out: Path, *, seed: int, workers: int, max_views: int) -> None:
    from hubdet.data.synth import make_inpainting_benchmark

    rng = random.Random(seed)
    for sub in ("train_val", "fresh"):
        if (out / sub).exists():
            shutil.rmtree(out / sub)
        for d in ("Real", "Fake", "masks"):
            (out / sub / d).mkdir(parents=True)
    merged: dict[str, list[dict]] = {"train_val": [], "fresh": []}
    with tempfile.TemporaryDirectory() as tmp:
        groups: dict[tuple[str, str, int], Path] = {}
        for i, row in enumerate(sorted(rows, key=lambda r: r["file"])):
            try:
                big = max(int(row["orig_width"]), int(row["orig_height"])) > 1600
                vs = views(extra / row["file"], rng, max_views if big else 1)
            except (BadImageError, OSError, ValueError) as exc:
                logger.warning("skipped %s: %s", row["file"], exc)
                continue
            for v, view in enumerate(vs):
                backend = BACKENDS[rng.randrange(len(BACKENDS))]
                fmt = rng.randrange(len(FORMATS))
                key = (row["split"], backend, fmt)
                folder = groups.setdefault(key, Path(tmp) / f"in_{row['split']}_{backend}_{fmt}")
                folder.mkdir(exist_ok=True)
                view.save(folder / f"{i:04d}_{v}.png")
        for (split, backend, fmt), src in sorted(groups.items()):
            fmt_name, quality = FORMATS[fmt]
            dst = Path(tmp) / f"out_{split}_{backend}_{fmt}"
            make_inpainting_benchmark(
                src, dst, backend=backend, seed=seed + 7 * fmt + BACKENDS.index(backend), fraction=0.5,
                mask_kind="varied", regions=(1, 3), min_frac=0.06, max_frac=0.3, size=None, format=fmt_name,
                quality=quality, workers=workers, progress=False,
            )
            sub = "fresh" if split == "fresh" else "train_val"
            merged[sub] += _merge_rows(dst, out / sub, f"{split}_{backend}_{fmt_name}{quality}_",
                                       "test" if split == "fresh" else split)
            logger.info("%s %s %s%d: %d rows", split, backend, fmt_name, quality, len(merged[sub]))
    for sub, sub_rows in merged.items():
        counts = _write_boxes(out / sub, sub_rows)
        logger.info("%s: %s", sub, counts)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--extra", type=Path, default=Path("/work/data/extra"))
    parser.add_argument("--shared-data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--out", type=Path, default=Path("/work/data/mask"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--views", type=int, default=2, help="views of photos larger than 1600 px")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    rows = photos(args.extra, args.shared_data)
    logger.info("photos per split: %s", {s: sum(r["split"] == s for r in rows) for s, _ in SPLITS})
    build(rows, args.extra, args.out, seed=args.seed, workers=args.workers, max_views=args.views)


if __name__ == "__main__":
    main()
