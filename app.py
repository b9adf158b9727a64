"""hubdet's Gradio app (also the Hugging Face Space entry point).

    python app.py --host 0.0.0.0 --port 7860

Detectors come from ``defaults/detectors.yaml`` unless ``--detectors``/``--config`` or the ``HUBDET_DETECTORS``
environment variable say otherwise (see ``hubdet/app/config.py``). Importing this module starts nothing.
"""

from __future__ import annotations

import argparse
import logging
import os


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Compare real-vs-fake detectors side by side (Gradio app).")
    parser.add_argument("--host", default=None, help="interface to bind (default: GRADIO_SERVER_NAME or 127.0.0.1)")
    parser.add_argument("--port", type=int, default=None, help="port (default: GRADIO_SERVER_PORT or 7860)")
    parser.add_argument("--config", default=None, help="a detectors YAML file (default: defaults/detectors.yaml)")
    parser.add_argument("--detectors", default=None,
                        help="comma-separated [label=]folder, Hub id (org/name[@rev]) or registry name; "
                             "overrides --config and HUBDET_DETECTORS")
    parser.add_argument("--results-dir", default=None, help="leaderboard result files (default: HUBDET_RESULTS_DIR "
                                                            "or leaderboard/)")
    parser.add_argument("--concurrency", type=int, default=int(os.environ.get("HUBDET_APP_CONCURRENCY", "2")),
                        help="requests processed at once per event (queue concurrency limit; default 2)")
    parser.add_argument("--max-queue", type=int, default=64, help="queued requests before new ones are refused")
    parser.add_argument("--max-file-size", default="100mb", help="largest upload accepted (gradio syntax, e.g. 50mb)")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from hubdet.app.config import load_detector_specs
    from hubdet.app.ui import build_demo

    specs = load_detector_specs(args.config, detectors=args.detectors)
    demo = build_demo(specs, leaderboard_dir=args.results_dir)
    demo.queue(default_concurrency_limit=args.concurrency, max_size=args.max_queue)
    demo.launch(server_name=args.host, server_port=args.port, max_file_size=args.max_file_size)


if __name__ == "__main__":
    main()
