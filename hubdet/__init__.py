"""hubdet: tell real images from AI-generated and inpainted ones, and show where an image was inpainted.

The public API is imported lazily so that ``import hubdet`` and ``hubdet --help`` stay fast.
"""

from __future__ import annotations

from hubdet._core.lazy import lazy_exports

__version__ = "0.1.0"

_LAZY = {
    # data
    "load_source": "hubdet.data",
    "list_sources": "hubdet.data",
    "load_image": "hubdet.data.imageio",
    "make_inpainting_benchmark": "hubdet.data.synth",
    # models
    "create_detector": "hubdet.models",
    "list_detectors": "hubdet.models",
    "register_detector": "hubdet.models",
    "from_pretrained": "hubdet.models",
    "load_detector": "hubdet.models",
    "DetectorOutput": "hubdet.models",
    "Detector": "hubdet.models",
    # eval
    "evaluate": "hubdet.eval",
}

__all__ = ["__version__", *_LAZY]


__getattr__, __dir__ = lazy_exports('hubdet', _LAZY, globals())
