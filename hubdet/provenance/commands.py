"""``hubdet provenance FILES...`` (light module: the readers and ``c2pa`` are imported inside the handler)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Add ``provenance`` to the ``hubdet`` command."""
    p = subparsers.add_parser(
        "provenance",
        help="what an image declares about its origin (C2PA, IPTC source type, generator metadata)",
        description="Read the provenance evidence of each file: C2PA Content Credentials (validated offline with "
        "c2pa-python; every validation code), the XMP/IPTC digital source type, EXIF fields that name software and "
        "the settings generator front-ends write (AUTOMATIC1111, ComfyUI, InvokeAI, NovelAI, Midjourney). Each file "
        "gets a conclusion: declared_ai, declared_ai_edit, declared_capture, no_claim or invalid_claim, with the "
        "reason. This is evidence, not a verdict: no_claim proves nothing (metadata is routinely stripped), and "
        "unsigned metadata can be written by anyone. Exit status 1 if a file could not be read.",
    )
    p.add_argument("files", nargs="+", metavar="FILE", help="files or folders (folders: their image files)")
    p.add_argument("--json", action="store_true", help="print a JSON array of the full records")
    p.add_argument("--trust-anchors", default=None, metavar="PEM",
                   help="PEM file of C2PA trust anchors (default: $HUBDET_C2PA_TRUST_ANCHORS, else none: every "
                   "signer is reported as not on a trust list)")
    p.set_defaults(func=_provenance)


def _out(text: str) -> None:
    print(text, file=sys.stdout)  # noqa: T201


def _expand(paths: list[str]) -> list[str]:
    from hubdet.data.imageio import is_image_file

    out: list[str] = []
    for item in paths:
        path = Path(item)
        if path.is_dir():
            out += sorted(str(p) for p in path.rglob("*") if p.is_file() and is_image_file(p))
        else:
            out.append(item)
    return out


def _provenance(args: argparse.Namespace) -> int:
    from hubdet.provenance import inspect

    records = [inspect(f, trust_anchors=args.trust_anchors) for f in _expand(args.files)]
    if args.json:
        _out(json.dumps([r.to_dict() for r in records], indent=2))
    else:
        _out("\n".join(r.details() for r in records))
    unreadable = [r for r in records if r.errors and not r.checked]
    return 1 if unreadable else 0
