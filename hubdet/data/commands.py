"""``hubdet synth`` and ``hubdet data info|push``: thin parsing; heavy imports only inside the handlers."""

from __future__ import annotations

import argparse
import json
from typing import Any

SYNTH_BACKENDS_HELP = "telea, ns, fsr-fast, fsr-best, patchmatch, exemplar, or a registered learned backend"


def _echo(text: str) -> None:
    """Command output goes to stdout (the library itself logs)."""
    print(text)  # noqa: T201


def _key_value(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` with VALUE read as JSON when it parses (numbers, true/false, lists), else as a string."""
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    key, value = text.split("=", 1)
    try:
        return key.strip(), json.loads(value)
    except ValueError:
        return key.strip(), value


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Add ``synth`` and ``data`` to the ``hubdet`` command."""
    p = subparsers.add_parser(
        "synth",
        help="make an inpainting benchmark from a folder of photos",
        description="Inpaint random rectangle, brush or object-shaped regions in a fraction of the photos (the others "
        "stay "
        "untouched), encode both classes the same way, and write Real/, Fake/, masks/ and boxes.csv "
        "(read by the `folder` source). Deterministic for a seed.",
    )
    p.add_argument("--input-dir", help="folder of photos (searched recursively)")
    p.add_argument("--output-dir", help="new or empty output folder")
    p.add_argument("--backend", default="telea", help=f"inpainter: {SYNTH_BACKENDS_HELP} (default: telea)")
    p.add_argument("--backend-option", action="append", type=_key_value, default=[], metavar="KEY=VALUE",
                   help="option of the backend, e.g. patch_size=5 or weights=/path (repeatable)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    p.add_argument("--fraction", type=float, default=0.5, help="share of images that are inpainted (default: 0.5)")
    p.add_argument("--mask", dest="mask_kind", choices=["rect", "brush", "object", "mixed", "varied"],
                   default="rect", help="mask shape: rect, brush, object (blob/polygon outline), mixed (rect or "
                   "brush), varied (rect, brush or object) (default: rect)")
    p.add_argument("--regions", default="1", help="regions per inpainted photo: N or LO-HI (default: 1)")
    p.add_argument("--min-frac", type=float, default=0.1, help="smallest rectangle side / image side (default: 0.1)")
    p.add_argument("--max-frac", type=float, default=0.5, help="largest rectangle side / image side (default: 0.5)")
    p.add_argument("--size", help="output size N or WxH (default: keep the photo's size)")
    p.add_argument("--resize", choices=["cover", "stretch", "longest"], default="cover",
                   help="how to reach --size: cover = centre crop to its aspect then scale; stretch; "
                   "longest = longer side to N (default: cover)")
    p.add_argument("--format", choices=["png", "jpeg"], default="png", help="encoding of BOTH classes (default: png)")
    p.add_argument("--quality", type=int, default=90, help="JPEG quality (default: 90)")
    p.add_argument("--crops-per-image", type=int, default=1, help="random crops per photo (default: 1)")
    p.add_argument("--crop-size", help="crop size N or WxH (default: --size)")
    p.add_argument("--workers", type=int, default=1, help="worker processes (default: 1)")
    p.add_argument("--overwrite", action="store_true", help="replace a previous synth output in --output-dir")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--list-backends", action="store_true", help="list the backends and whether they run here")
    p.set_defaults(func=_synth)

    data = subparsers.add_parser("data", help="inspect or push a prepared source",
                                 description="Inspect a source through hubdet.load_source, or push it to the Hub.")
    dsub = data.add_subparsers(dest="data_command", metavar="ACTION")
    data.set_defaults(func=lambda args: data.print_help() or 0)

    info = dsub.add_parser("info", help="counts per split, label and generator, and the skipped files",
                           description="Load a source and print its counts and the bad-file report.")
    _source_args(info)
    info.add_argument("--json", action="store_true", help="print the summary as JSON")
    info.set_defaults(func=_info)

    push = dsub.add_parser("push", help="push a source to a Hub dataset repository (parquet + dataset card)",
                           description="Load a source and push it as parquet shards with a dataset card.")
    _source_args(push)
    push.add_argument("--repo-id", required=True, help="Hub dataset repository, e.g. user/name")
    push.add_argument("--private", action="store_true", help="create the repository as private")
    push.add_argument("--token", default=None, help="Hub token (default: HF_TOKEN or the saved login)")
    push.add_argument("--pretty-name", default=None, help="title of the dataset card")
    push.add_argument("--license", default="other", help="licence id for the card (default: other)")
    push.add_argument("--save-dir", default=None,
                      help="also keep the exact files that were pushed (parquet + README.md) in this folder")
    push.set_defaults(func=_push)


def _source_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--source", required=True, help="source name (see hubdet.list_sources())")
    p.add_argument("--data-dir", required=True, help="local folder in the layout the source publishes")
    p.add_argument("--split", default=None, help="one split only (default: all)")
    p.add_argument("--option", action="append", type=_key_value, default=[], metavar="KEY=VALUE",
                   help="option of the source's builder (repeatable; values read as JSON when they parse)")
    p.add_argument("--reencode", action="append", type=_key_value, default=[], metavar="KEY=VALUE",
                   help="re-encode both classes the same way, e.g. --reencode format=JPEG --reencode quality=90 "
                   "--reencode resize=[256,256] (fields of hubdet.data.ReencodeConfig)")
    p.add_argument("--cache-dir", default=None, help="datasets cache folder (default: HF_DATASETS_CACHE)")


# -------------------------------------------------------------------------------------------------- synth


def _synth(args: argparse.Namespace) -> int:
    if args.list_backends:
        from hubdet.data.inpainters import available_inpainters

        for name, status in available_inpainters().items():
            _echo(f"{name:12s} {status}")
        return 0
    if not args.input_dir or not args.output_dir:
        raise ValueError("--input-dir and --output-dir are required")
    from hubdet.data.synth import make_inpainting_benchmark

    report = make_inpainting_benchmark(
        args.input_dir,
        args.output_dir,
        backend=args.backend,
        backend_options=dict(args.backend_option),
        seed=args.seed,
        fraction=args.fraction,
        mask_kind=args.mask_kind,
        regions=tuple(int(v) for v in str(args.regions).split("-")) if "-" in str(args.regions)
        else int(args.regions),
        min_frac=args.min_frac,
        max_frac=args.max_frac,
        size=args.size,
        resize=args.resize,
        format=args.format,
        quality=args.quality,
        crops_per_image=args.crops_per_image,
        crop_size=args.crop_size,
        workers=args.workers,
        overwrite=args.overwrite,
        progress=not args.no_progress,
    )
    _echo(report.summary())
    return 0 if report.n_images else 1


# --------------------------------------------------------------------------------------------------- data


def _load(args: argparse.Namespace) -> Any:
    from hubdet.data import load_source

    return load_source(args.source, args.data_dir, split=args.split, reencode=dict(args.reencode) or None,
                       cache_dir=args.cache_dir, **dict(args.option))


def _summary(ds: Any) -> dict[str, Any]:
    from collections import Counter

    from hubdet.data.push import _as_dict, _find_bad_files, _label_name

    out: dict[str, Any] = {"splits": {}}
    for name, part in _as_dict(ds, None).items():
        labels = [_label_name(part, v) for v in part["label"]]
        gens = list(part["generator"]) if "generator" in part.column_names else ["?"] * len(labels)
        out["splits"][name] = {
            "total": len(part),
            "labels": dict(sorted(Counter(labels).items())),
            "generators": {
                f"{g} ({lab})": n for (g, lab), n in sorted(Counter(zip(gens, labels, strict=True)).items())
            },
        }
    out["bad_files"] = _find_bad_files(ds)
    return out


def _info(args: argparse.Namespace) -> int:
    summary = _summary(_load(args))
    if args.json:
        _echo(json.dumps(summary, indent=2))
        return 0
    for name, s in summary["splits"].items():
        labels = ", ".join(f"{k} {v}" for k, v in s["labels"].items())
        _echo(f"{name}: {s['total']} examples ({labels})")
        for gen, n in s["generators"].items():
            _echo(f"  {gen}: {n}")
    bad = summary["bad_files"]
    if bad is None:
        _echo("bad files: not reported by this source")
    else:
        _echo(f"bad files: {len(bad)} skipped" + (":" if bad else ""))
        for item in bad:
            _echo(f"  {item['path']}: {item['reason']}")
    return 0


def _push(args: argparse.Namespace) -> int:
    from pathlib import Path

    from hubdet.data.push import push_dataset, save_dataset_folder

    ds = _load(args)
    card: dict[str, Any] = {}
    synth = Path(args.data_dir) / "synth.json"
    if synth.is_file():  # made by `hubdet synth`: record how in the card
        manifest = json.loads(synth.read_text())
        card["synth_config"] = {"generator": manifest.get("generator"), **manifest.get("config", {})}
    options = dict(card_data={"license": args.license}, split=args.split, pretty_name=args.pretty_name, **card)
    if args.save_dir:
        save_dataset_folder(ds, args.save_dir, repo_id=args.repo_id, **options)
    url = push_dataset(ds, args.repo_id, private=args.private, token=args.token, **options)
    _echo(f"pushed {args.source} to {args.repo_id}: {url}")
    return 0
