"""The Gradio app: compare detectors side by side, batch scoring, leaderboard.

- :mod:`hubdet.app.config`: which detectors the app offers (``defaults/detectors.yaml`` or ``HUBDET_DETECTORS``);
- :mod:`hubdet.app.pool`: the lazy, thread-safe detector cache (one lock per detector) and the app's error types;
- :mod:`hubdet.app.uploads`: decoding an upload, expanding a batch's files and zips under :class:`BatchLimits`;
- :mod:`hubdet.app.limits`: the app's own limits (:class:`AppLimits`: pixels, upload bytes, analyses at once, queue,
  per-client rate), each refusal a message;
- :mod:`hubdet.app.compare` / :mod:`hubdet.app.batch`: the two ways of scoring, both over
  :func:`hubdet.models.predict.predict_many` (ensemble member sharing lives with the models);
- :mod:`hubdet.app.rendering`: display copies, boxes and heatmap overlays (heatmaps: :mod:`hubdet.models.explain`);
- :mod:`hubdet.app.examples`, :mod:`hubdet.app.leaderboard`: the example images and the leaderboard tab's data;
- :mod:`hubdet.app.ui`: builds the ``gr.Blocks``, one function per tab. Only this module imports gradio.

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
