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
        "gets an error line; the others still get results and the exit status is 1.",
    )
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files or folders of images")
    p.add_argument("--model", required=True, metavar="NAME_OR_PATH",
                   help="checkpoint folder, Hub repo id, or registry name (untrained: for smoke tests)")
    p.add_argument("--revision", default=None, help="Hub revision of --model")
    p.add_argument("--json", action="store_true",
                   help="print a JSON array instead of a table; each row also carries a `provenance` object (C2PA, "
                   "IPTC source type, generator metadata: evidence beside the verdict, which it never changes)")
    p.add_argument("--batch-size", type=int, default=32, help="images per forward pass (default: 32)")
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


def _expand(paths: list[str]) -> list[str]:
    """Files as given; folders expanded to their image files (sorted, recursive)."""
    from hubdet.data.imageio import is_image_file

    out: list[str] = []
    for item in paths:
        path = Path(item)
        if path.is_dir():
            out += sorted(str(p) for p in path.rglob("*") if p.is_file() and is_image_file(p))
        else:
            out.append(item)
    return out


def load_detector(name_or_path: str, *, revision: str | None = None) -> Any:
    """A checkpoint folder or Hub repo id (``from_pretrained``), or a registry name (untrained)."""
    import logging

    from hubdet.models import DETECTORS, create_detector, from_pretrained, list_detectors

    list_detectors()  # registers the families
    if name_or_path in DETECTORS and not Path(name_or_path).exists():
        logging.getLogger(__name__).warning(
            "%s is a registry name: an UNTRAINED detector (random head), its verdicts mean nothing", name_or_path
        )
        return create_detector(name_or_path)
    return from_pretrained(name_or_path, revision=revision)


def _fmt_box(box: list[float] | None) -> str:
    return "-" if box is None else "[" + ", ".join(f"{v:.0f}" for v in box) + "]"


def _predict(args: argparse.Namespace) -> int:
    from hubdet._core.errors import BadImageError
    from hubdet.data.imageio import load_image

    if args.batch_size < 1:
        raise ValueError("--batch-size must be >= 1")
    detector = load_detector(args.model, revision=args.revision)
    files = _expand(args.images)
    rows: list[dict[str, Any]] = []
    failed = 0
    as_json = args.json
    if not as_json:
        _out(f"{'file':<40} {'prob_fake':>9}  {'verdict':<9}  box [xmin, ymin, xmax, ymax] px")

    def emit(row: dict[str, Any]) -> None:
        rows.append(row)
        if as_json:
            from hubdet.provenance import inspect  # provenance sits beside the pixel verdict, never overrides it

            row["provenance"] = inspect(row["file"]).to_dict()
            return
        if "error" in row:
            _out(f"{row['file']:<40} {'-':>9}  {'error':<9}  {row['error']}")
        else:
            _out(f"{row['file']:<40} {row['prob_fake']:>9.4f}  {row['verdict']:<9}  {_fmt_box(row['box'])}")

    for start in range(0, len(files), args.batch_size):
        chunk = files[start:start + args.batch_size]
        results: list[dict[str, Any] | None] = [None] * len(chunk)
        images, where = [], []
        for i, name in enumerate(chunk):
            try:
                images.append(load_image(name))
                where.append(i)
            except BadImageError as exc:
                failed += 1
                _out(f"hubdet predict: error: {exc}", err=True)
                results[i] = {"file": name, "error": exc.reason}
        if images:
            for i, pred in zip(where, detector.predict(images, batch_size=args.batch_size), strict=True):
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
