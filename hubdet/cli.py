"""The ``hubdet`` command: thin argument parsing that calls the public API.

Each area contributes its sub-commands from a light module (no heavy imports at module level):
``hubdet.data.commands``, ``hubdet.models.commands``, ``hubdet.eval.commands``,
``hubdet.provenance.commands``.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from hubdet._core.errors import HubdetError

COMMAND_MODULES = (
    "hubdet.data.commands", "hubdet.models.commands", "hubdet.eval.commands", "hubdet.provenance.commands",
)


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser, with every area's sub-commands."""
    from hubdet import __version__

    parser = argparse.ArgumentParser(
        prog="hubdet",
        description="Tell real images from AI-generated and inpainted ones; localize inpainting.",
    )
    parser.add_argument("--version", action="version", version=f"hubdet {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more logging (-vv for debug)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise
            continue
        module.add_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING - 10 * min(args.verbose + 1, 2),
        format="%(levelname)s %(name)s: %(message)s",
    )
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except (HubdetError, FileNotFoundError, ValueError, KeyError) as exc:
        print(f"hubdet {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
