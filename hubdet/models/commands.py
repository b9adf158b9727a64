"""``hubdet predict`` and ``hubdet models list`` (light module: heavy imports inside the handlers)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Add ``predict`` and ``models`` to the ``hubdet`` command."""
    p = subparsers.add_parser(
        "predict",
        help="real/fake verdict (and inpainted box) for images",
        description="Print the calibrated fake probability, the verdict and (for box-capable detectors) the box "
        "of the inpainted region, in pixels of the original image, for each image. A file that cannot be decoded "
        "gets an error line, an image the detector cannot judge (too small, extreme aspect ratio, unsupported "
        "sample format) a cannot_judge line with the reason, and a file in a folder that is not an image a "
        "skipped line; the others still get results and the exit status is 1. A folder without images, or no "
        "image at all, is an error (exit status 2). Notes on stderr say what the decoder normalised (e.g. only "
        "the first frame of an animated image is scored).",
    )
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files or folders of images")
    p.add_argument("--model", required=True, metavar="SPEC",
                   help="detector spec: a checkpoint folder of any kind (hubdet, transformers, timm, .onnx), a Hub "
                   "repo id org/name[@revision], or a registry name (untrained: for smoke tests); prefix "
                   "transformers:, timm:/hf-hub:, onnx: or hubdet: to force the kind")
    p.add_argument("--revision", default=None, help="Hub revision of --model")
    p.add_argument("--fake-label", action="append", default=None, metavar="LABEL",
                   help="for an outside classifier whose labels are ambiguous: a label that means fake (repeatable)")
    p.add_argument("--no-verify", action="store_true",
                   help="load the checkpoint without checking its file digests (only for weights you edited on "
                   "purpose)")
    p.add_argument("--json", action="store_true",
                   help="print a JSON array instead of a table; each row also carries a `provenance` object (C2PA, "
                   "IPTC source type, generator metadata: evidence beside the verdict, which it never changes)")
    p.add_argument("--batch-size", type=int, default=32, help="images per forward pass (default: 32)")
    p.add_argument("--stability", action="store_true",
                   help="also score a JPEG q75, a half-size and a blurred copy of each image; a verdict that any copy "
                        "disagrees with becomes 'uncertain' (3 more predictions per image; details under extra "
                        "in --json)")
    p.add_argument("--save-masks", default=None, metavar="DIR",
                   help="mask detectors: write each image's inpainting map as DIR/<name>_mask.png (8-bit, original "
                        "size; 255 = inpainted) and list its regions")
    p.set_defaults(func=_predict)

    m = subparsers.add_parser("models", help="registered detectors",
                              description="List the registered detector variants (`family_backbone.tag`).")
    msub = m.add_subparsers(dest="models_command", metavar="SUBCOMMAND")
    ls = msub.add_parser("list", help="list registered detectors")
    ls.add_argument("pattern", nargs="?", default=None, help="fnmatch pattern, e.g. 'classifier_*'")
    ls.add_argument("--family", default=None, help="only this family")
    ls.add_argument("--json", action="store_true", help="print JSON")
    ls.set_defaults(func=_models_list)
    m.set_defaults(func=_models_list, pattern=None, family=None, json=False)


def _out(text: str, *, err: bool = False) -> None:
    """Command output goes to stdout, per-file errors to stderr (the library itself logs)."""
    print(text, file=sys.stderr if err else sys.stdout)  # noqa: T201


def _expand(paths: list[str]) -> tuple[list[str], list[tuple[str, str]]]:
    """Files as given; folders expanded to their image files (sorted, recursive, hidden entries left out).

    Returns the files to score and the folder entries that will not be (``(path, reason)``: files without an image
    extension). Raises ValueError naming the folders when there is nothing at all to score."""
    from hubdet.data.imageio import IMAGE_EXTENSIONS, is_image_file

    out: list[str] = []
    skipped: list[tuple[str, str]] = []
    empty: list[str] = []
    for item in paths:
        path = Path(item)
        if not path.is_dir():
            out.append(item)
            continue
        entries = sorted(p for p in path.rglob("*")
                         if p.is_file() and not any(part.startswith(".") for part in p.relative_to(path).parts))
        images = [str(p) for p in entries if is_image_file(p)]
        skipped += [(str(p), f"not an image file (extension {p.suffix or 'none'!r}), skipped")
                    for p in entries if not is_image_file(p)]
        out += images
        if not images:
            others = f"; its {len(entries)} other file(s) are not images" if entries else ""
            empty.append(f"{path}: folder holds no image files{others}")
    if not out:
        known = ", ".join(sorted(IMAGE_EXTENSIONS))
        raise ValueError("no image to score: " + "; ".join(empty or ["no input"]) + f" (image extensions: {known})")
    skipped += [(e.split(": ", 1)[0], e.split(": ", 1)[1]) for e in empty]
    return out, skipped


def _fmt_box(box: list[float] | None) -> str:
    return "-" if box is None else "[" + ", ".join(f"{v:.0f}" for v in box) + "]"


def _predict(args: argparse.Namespace) -> int:
    from hubdet._core.errors import BadImageError, UnsupportedImageError
    from hubdet.data.imageio import open_image

    if args.batch_size < 1:
        raise ValueError("--batch-size must be >= 1")
    from hubdet.models.resolver import load_detector

    overrides = {"fake_labels": args.fake_label} if args.fake_label else {}
    detector = load_detector(args.model, revision=args.revision, verify=not args.no_verify, **overrides)
    files, skipped = _expand(args.images)
    rows: list[dict[str, Any]] = []
    failed = 0
    as_json = args.json
    if not as_json:
        _out(f"{'file':<40} {'prob_fake':>9}  {'verdict':<9}  box [xmin, ymin, xmax, ymax] px, or the reason")

    def emit(row: dict[str, Any]) -> None:
        rows.append(row)
        if as_json:
            from hubdet.provenance import inspect  # provenance sits beside the pixel verdict, never overrides it

            row["provenance"] = inspect(row["file"]).to_dict()
            return
        if "error" in row:
            _out(f"{row['file']:<40} {'-':>9}  {'error':<9}  {row['error']}")
        elif row["prob_fake"] is None:
            _out(f"{row['file']:<40} {'-':>9}  {row['verdict']:<9}  {row['reason']}")
        else:
            unstable = "" if row.get("extra", {}).get("stability", {}).get("stable", True) else (
                f"  (was {row['extra']['stability']['original_verdict']}; a degraded copy disagrees)")
            _out(f"{row['file']:<40} {row['prob_fake']:>9.4f}  {row['verdict']:<9}  {_fmt_box(row['box'])}{unstable}")

    for name, reason in skipped:
        failed += 1
        _out(f"hubdet predict: skipped: {name}: {reason}", err=True)
    for start in range(0, len(files), args.batch_size):
        chunk = files[start:start + args.batch_size]
        results: list[dict[str, Any] | None] = [None] * len(chunk)
        notes: dict[int, list[str]] = {}
        images, where = [], []
        for i, name in enumerate(chunk):
            try:
                img, info = open_image(name)
            except UnsupportedImageError as exc:  # readable, but its samples cannot be judged
                failed += 1
                _out(f"hubdet predict: cannot judge: {exc}", err=True)
                results[i] = {"file": name, "prob_fake": None, "logit": None, "verdict": "cannot_judge",
                              "reason": exc.reason}
                continue
            except BadImageError as exc:
                failed += 1
                _out(f"hubdet predict: error: {exc}", err=True)
                results[i] = {"file": name, "error": exc.reason}
                continue
            notes[i] = [f"animated image with {info.n_frames} frames: only the first frame was scored"
                        if n.startswith("animated") else n for n in info.notes]
            for note in notes[i]:
                _out(f"hubdet predict: note: {name}: {note}", err=True)
            images.append(img)
            where.append(i)
        if images:
            preds = detector.predict(images, batch_size=args.batch_size, stability=args.stability)
            for i, pred in zip(where, preds, strict=True):
                if not pred.judged:
                    failed += 1
                    _out(f"hubdet predict: cannot judge: {chunk[i]}: {pred.reason}", err=True)
                pred.notes = notes[i] + pred.notes
                results[i] = {"file": chunk[i], **pred.to_dict()}
                if args.save_masks and pred.mask is not None:
                    folder = Path(args.save_masks)
                    folder.mkdir(parents=True, exist_ok=True)
                    target = folder / f"{Path(chunk[i]).stem}_mask.png"
                    target.write_bytes(pred.mask_png() or b"")
                    results[i]["mask_file"] = str(target)
        for row in results:
            if row is not None:
                emit(row)
    for name, reason in skipped:
        emit({"file": name, "error": reason})
    if as_json:
        _out(json.dumps(rows, indent=2))
    return 1 if failed else 0


def _models_list(args: argparse.Namespace) -> int:
    from hubdet.models import DETECTORS, list_detectors

    names = list_detectors(args.pattern, family=args.family)
    entries = []
    for name in names:
        cfg = DETECTORS.get(name)()
        entries.append({"name": name, "family": cfg.family, "description": cfg.metadata.get("description", "")})
    if args.json:
        _out(json.dumps(entries, indent=2))
    else:
        for e in entries:
            _out(f"{e['name']:<40} {e['family']:<11} {e['description']}")
    return 0
