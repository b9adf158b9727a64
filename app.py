"""hubdet's Gradio app (also the Hugging Face Space entry point).

    python app.py --host 0.0.0.0 --port 7860

Detectors come from ``defaults/detectors.yaml`` unless ``--detectors``/``--config`` or the ``HUBDET_DETECTORS``
environment variable say otherwise (see ``hubdet/app/config.py``). Importing this module starts nothing.
"""

from __future__ import annotations

import argparse
import logging


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
    parser.add_argument("--concurrency", type=int, default=None,
                        help="analyses (compare, batch) run at once, all endpoints together; the others wait in the "
                             "queue (default: HUBDET_APP_CONCURRENCY or 1)")
    parser.add_argument("--max-queue", type=int, default=None,
                        help="requests waiting before new ones are refused (default: HUBDET_APP_MAX_QUEUE or 48)")
    parser.add_argument("--max-file-size", default=None,
                        help="largest upload accepted, e.g. 25mb (default: HUBDET_APP_MAX_UPLOAD or 25mb)")
    parser.add_argument("--max-pixels", type=int, default=None,
                        help="largest image accepted, refused before decoding (default: HUBDET_APP_MAX_PIXELS or "
                             "4096*4096)")
    parser.add_argument("--rate-limit", default=None,
                        help="analyses per client: N or N/seconds, 0 = off (default: HUBDET_APP_RATE_LIMIT or 30/60)")
    return parser


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from hubdet.app.config import load_detector_specs
    from hubdet.app.limits import AppLimits, parse_bytes, parse_rate
    from hubdet.app.ui import build_demo

    limits = AppLimits.from_env(
        heavy_jobs=args.concurrency, max_queue=args.max_queue, max_pixels=args.max_pixels,
        max_upload_bytes=parse_bytes(args.max_file_size) if args.max_file_size else None,
        **(parse_rate(args.rate_limit) if args.rate_limit else {}),
    )
    specs = load_detector_specs(args.config, detectors=args.detectors)
    demo = build_demo(specs, leaderboard_dir=args.results_dir, limits=limits)  # the queue follows the limits
    demo.launch(server_name=args.host, server_port=args.port, max_file_size=limits.max_upload_bytes)


if __name__ == "__main__":
    main()
