"""The Gradio app: compare detectors side by side, batch scoring, leaderboard.

- :mod:`hubdet.app.config`: which detectors the app offers (``defaults/detectors.yaml`` or ``HUBDET_DETECTORS``);
- :mod:`hubdet.app.service`: pure-python logic (lazy thread-safe model cache, compare, batch, heatmaps, boxes);
- :mod:`hubdet.app.ui`: builds the ``gr.Blocks`` from a list of detectors.

Importing this package imports neither gradio nor torch; nothing is downloaded at import time.
"""

from __future__ import annotations

__all__ = ["build_demo", "load_detector_specs"]


def __getattr__(name: str):  # noqa: ANN202
    if name == "build_demo":
        from hubdet.app.ui import build_demo

        return build_demo
    if name == "load_detector_specs":
        from hubdet.app.config import load_detector_specs

        return load_detector_specs
    raise AttributeError(f"module 'hubdet.app' has no attribute {name!r}")
