"""``hubdet evaluate``, ``hubdet cross-eval`` and ``hubdet leaderboard`` (light module: heavy imports in handlers)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from typing import Any


def add_commands(subparsers: argparse._SubParsersAction) -> None:
    """Add ``evaluate``, ``cross-eval`` and ``leaderboard`` to the ``hubdet`` command."""
    p = subparsers.add_parser(
        "evaluate",
        help="evaluate detectors on a source (metrics, robustness, JSON result, plots)",
        description="Batch inference of one or more detectors on a source (any builder, or a folder of images with "
        "--source folder), metrics overall, per generator and per source, optionally under the robustness protocol "
        "(JPEG 95/75/50, blur sigma 1/2, colour jitter, downscale x0.5; drops against clean data). Writes a "
        "versioned JSON result (--output) and ROC/reliability/confusion PNGs (--plots). Launch with "
        "`accelerate launch -m hubdet.cli evaluate ...` to shard the data over processes.",
    )
    p.add_argument("--model", action="append", required=True, metavar="SPEC",
                   help="detector spec: a checkpoint folder of any kind (hubdet, transformers, timm, .onnx), a Hub "
                   "repo id org/name[@revision], or a registry name (random init, flagged); prefix transformers:, "
                   "timm:/hf-hub:, onnx: or hubdet: to force the kind; repeatable")
    p.add_argument("--revision", default=None, help="Hub revision (commit) of the --model repo ids")
    p.add_argument("--fake-label", action="append", default=None, metavar="LABEL",
                   help="for an outside classifier whose labels are ambiguous: a label that means fake (repeatable)")
    p.add_argument("--no-verify", action="store_true",
                   help="load checkpoints without checking their file digests (only for weights you edited on "
                   "purpose)")
    p.add_argument("--source", action="append", default=None, metavar="NAME[:DIR]",
                   help="source name (with --data-dir), or NAME:DIR; repeatable. With --suite: suite source ids, "
                   "optionally ID:DIR to override their folders")
    p.add_argument("--data-dir", default=None, help="data folder of a single --source NAME")
    p.add_argument("--split", default=None, help="split (default: test, else validation, else train)")
    p.add_argument("--repo-id", default=None, help="load the source from this Hub dataset copy instead of a folder")
    p.add_argument("--dataset-revision", default=None, help="Hub revision (commit) of --repo-id")
    p.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="source option (value parsed as JSON when possible); repeatable")
    p.add_argument("--streaming", action="store_true", help="stream the data instead of preparing it")
    p.add_argument("--robustness", action="store_true", help="run the whole robustness protocol")
    p.add_argument("--perturbation", action="append", default=None, metavar="NAME",
                   help="one perturbation of the protocol (repeatable; clean is always included)")
    p.add_argument("--suite", default=None, metavar="YAML_OR_NAME",
                   help="benchmark suite (built-in name such as hubdet-v1, or a YAML file)")
    p.add_argument("--data-root", default=None, help="folder the suite's data_dir entries are relative to")
    p.add_argument("--output", default=None, help="write the JSON result(s) here")
    p.add_argument("--plots", default=None, metavar="DIR", help="write ROC, reliability and confusion PNGs here")
    p.add_argument("--batch-size", type=int, default=32, help="images per forward pass (default: 32)")
    p.add_argument("--limit", type=int, default=None, help="evaluate a deterministic random subset of N images")
    p.add_argument("--per-generator", action="store_true", help="also print the per-generator table")
    p.add_argument("--no-provenance", action="store_true",
                   help="do not record what the files declare (C2PA, digital source type, generator metadata); by "
                   "default each image's original bytes are inspected (headers only) and the result flags "
                   "provenance_shortcut when half the fakes or more carry AI metadata a reader alone would use (a few "
                   "ms per image; more with --streaming, where it is a second pass over the data)")
    p.set_defaults(func=_evaluate)

    c = subparsers.add_parser(
        "cross-eval",
        help="train-source x test-source matrix of several models",
        description="Evaluate every model on every source and print the matrix of one metric: rows are the "
        "models' training sources (config metadata training.source, else the model name), columns the test sources.",
    )
    c.add_argument("--model", action="append", required=True, metavar="M", help="model (repeatable)")
    c.add_argument("--source", action="append", required=True, metavar="NAME:DIR[:SPLIT]",
                   help="test source (repeatable)")
    c.add_argument("--metric", default="accuracy", help="metric of the matrix (default: accuracy, as seed 002)")
    c.add_argument("--batch-size", type=int, default=32)
    c.add_argument("--limit", type=int, default=None, help="deterministic random subset of N images per source")
    c.add_argument("--output", default=None, help="write the matrix and all results as JSON")
    c.set_defaults(func=_cross_eval)

    lb = subparsers.add_parser(
        "leaderboard",
        help="validate result files, rank them, push them to a Hub dataset",
        description="Validate result files (schema, protocol version, duplicates, pinned model and dataset "
        "revisions), aggregate them into a table ranked by the primary metric, and optionally push them to a "
        "leaderboard dataset repository (results/<org>/<model>/results_<date>.json + requests/...). "
        "See docs/leaderboard.md.",
    )
    lb.add_argument("results", nargs="+", metavar="RESULTS", help="result JSON files or folders of them")
    lb.add_argument("--format", choices=("markdown", "csv"), default="markdown")
    lb.add_argument("--metric", default=None, help="rank by this metric (default: the results' primary metric)")
    lb.add_argument("--source", action="append", default=None, help="only this dataset name (repeatable)")
    lb.add_argument("--perturbation", default="clean", help="rank on this perturbation's metrics (default: clean)")
    lb.add_argument("--suite", default=None, help="only results of this suite name")
    lb.add_argument("--allow-unpinned", action="store_true",
                    help="keep results with unpinned revisions (flagged pinned=False; never pushed)")
    lb.add_argument("--output", default=None, help="write the table to this file as well")
    lb.add_argument("--push", default=None, metavar="REPO_ID", help="push the results to this Hub dataset repo")
    lb.add_argument("--token", default=None, help="Hub token for --push (default: the logged-in one)")
    lb.set_defaults(func=_leaderboard)


def _out(text: str) -> None:
    sys.stdout.write(text if text.endswith("\n") else text + "\n")


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    return f"{v:.4f}" if isinstance(v, float) else str(v)


def summary_table(results: Sequence[Mapping[str, Any]]) -> str:
    """Markdown: one row per model x source x perturbation, with the drop of the primary metric."""
    from hubdet.eval.metric_table import DEFAULT_PRIMARY, metric_names

    keys = [k for k in metric_names(headline=True) if any(k in r["metrics"] for r in results)]
    head = ["model", "source", "split", "perturbation", *keys, "drop", "n"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in results:
        model = r["model"]["id"] + (" (random init)" if r["model"].get("random_init") else "")
        primary = r.get("primary_metric", DEFAULT_PRIMARY)
        rows = [("clean", r["metrics"], None)]
        rows += [(name, p["metrics"], p["drop"].get(primary)) for name, p in r.get("perturbations", {}).items()]
        for name, m, drop in rows:
            cells = [model, r["dataset"]["name"], str(r["dataset"].get("split")), name,
                     *[_fmt(m.get(k)) for k in keys], _fmt(drop), _fmt(m.get("n"))]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def generator_table(result: Mapping[str, Any]) -> str:
    """Markdown: per fake generator (against all reals) and per source."""
    lines = [f"{result['model']['id']} on {result['dataset']['name']}:",
             "| group | name | roc_auc | accuracy | recall | n_fake |", "|---|---|---|---|---|---|"]
    for group in ("per_generator", "per_source"):
        for name, m in result.get(group, {}).items():
            lines.append(f"| {group[4:]} | {name} | {_fmt(m.get('roc_auc'))} | {_fmt(m.get('accuracy'))} | "
                         f"{_fmt(m.get('recall'))} | {_fmt(m.get('n_fake'))} |")
    return "\n".join(lines)


def _parse_options(items: Sequence[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError(f"--option {item!r}: expected KEY=VALUE")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def _split_spec(text: str) -> tuple[str, str | None]:
    name, sep, rest = text.partition(":")
    return name, (rest or None) if sep else None


def _is_main_process() -> bool:
    import os

    return int(os.environ.get("RANK", os.environ.get("LOCAL_RANK", "0")) or 0) == 0


def _evaluate(args: argparse.Namespace) -> int:
    from hubdet.eval.results import write_results

    if args.batch_size < 1:
        raise ValueError("--batch-size must be >= 1")
    results: list[dict[str, Any]] = []
    if args.suite:
        from hubdet.eval.suites import load_suite, run_suite

        clash = [flag for flag, used in (("--robustness", args.robustness), ("--perturbation", args.perturbation),
                                         ("--data-dir", args.data_dir), ("--repo-id", args.repo_id),
                                         ("--split", args.split), ("--option", args.option)) if used]
        if clash:
            raise ValueError(f"--suite fixes sources, splits and perturbations; drop {', '.join(clash)} "
                             "(use --data-root and --source ID:DIR for folders)")
        suite = load_suite(args.suite)
        only, dirs = [], {}
        for spec in args.source or []:
            sid, folder = _split_spec(spec)
            only.append(sid)
            if folder:
                dirs[sid] = folder
        results = run_suite(suite, args.model, data_root=args.data_root, data_dirs=dirs, only=only or None,
                            batch_size=args.batch_size, limit=args.limit, plots_dir=args.plots,
                            streaming=args.streaming, provenance=not args.no_provenance)
    else:
        from hubdet.eval.robustness import PROTOCOL
        from hubdet.eval.runner import evaluate_detector, load_eval_data, load_model, provenance_section

        if not args.source:
            raise ValueError("evaluate: give --source NAME --data-dir DIR (or NAME:DIR), or --suite")
        specs = [_split_spec(s) for s in args.source]
        if len(specs) > 1 and args.data_dir:
            raise ValueError("--data-dir goes with a single --source; use --source NAME:DIR for several")
        perturbations = args.perturbation or ([p.name for p in PROTOCOL] if args.robustness else None)
        options = _parse_options(args.option)
        overrides = {"fake_labels": args.fake_label} if args.fake_label else {}
        loaded = [load_model(m, revision=args.revision, verify=not args.no_verify, **overrides) for m in args.model]
        for name, folder in specs:
            data_dir = folder or args.data_dir
            if data_dir is None and args.repo_id is None:
                raise ValueError(f"--source {name}: give --data-dir DIR, {name}:DIR or --repo-id")
            ds, info = load_eval_data(name, data_dir, args.split, repo_id=args.repo_id,
                                      revision=args.dataset_revision, streaming=args.streaming, limit=args.limit,
                                      options=options)
            audit = False if args.no_provenance else provenance_section(ds, info)  # once per dataset
            for detector, minfo in loaded:
                results.append(evaluate_detector(detector, ds, model=minfo, dataset_info=info,
                                                 perturbations=perturbations, batch_size=args.batch_size,
                                                 plots_dir=args.plots, provenance=audit))
    if not _is_main_process():
        return 0
    _out(summary_table(results))
    if args.per_generator:
        for r in results:
            _out("\n" + generator_table(r))
    for r in results:
        t = r["timing"]
        _out(f"{r['model']['id']} on {r['dataset']['name']}: {t['n_forward']} predictions in {t['seconds']:.2f} s "
             f"({t['images_per_second']:.1f} images/s, {t['device']})")
        if not args.no_provenance:
            from hubdet.eval.provenance_audit import describe

            _out("  " + describe(r.get("provenance")))
        for name, unjudged in (r.get("cannot_judge") or {}).items():
            first = unjudged["files"][0]
            _out(f"  {name}: {unjudged['count']} image(s) the detector cannot judge, not scored (e.g. "
                 f"{first['file']}: {first['reason']})")
    if args.output:
        path = write_results(results, args.output)
        _out(f"wrote {path}")
    if args.plots:
        _out(f"plots in {args.plots}")
    return 0


def _cross_eval(args: argparse.Namespace) -> int:
    from hubdet.eval.crossdataset import cross_evaluate

    matrix = cross_evaluate(args.model, args.source, metric=args.metric, batch_size=args.batch_size,
                            limit=args.limit)
    if not _is_main_process():
        return 0
    _out(f"{matrix.metric} (rows: training source, columns: test source)")
    _out(matrix.to_markdown())
    if args.output:
        from pathlib import Path

        Path(args.output).write_text(json.dumps(matrix.to_dict(), indent=2, allow_nan=False) + "\n")
        _out(f"wrote {args.output}")
    return 0


def _leaderboard(args: argparse.Namespace) -> int:
    from hubdet.eval.leaderboard import leaderboard_table, load_results, push_results, render_table

    results = load_results(args.results, allow_unpinned=args.allow_unpinned)
    rows = leaderboard_table(results, args.metric, source=args.source, perturbation=args.perturbation,
                             suite=args.suite)
    text = render_table(rows, args.format)
    metric = rows[0]["metric"] if rows else (args.metric or "-")
    if args.format == "markdown":
        _out(f"Ranked by {metric} on {args.perturbation} data ({len(rows)} of {len(results)} results)\n")
    _out(text)
    if args.output:
        from pathlib import Path

        Path(args.output).write_text(text)
    if args.push:
        url = push_results(results, args.push, token=args.token)
        _out(f"pushed {len(results)} result(s) to dataset {args.push}: {url}")
    return 0
