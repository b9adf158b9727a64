"""Detectors: one registry of families (discovered from their modules), save/load/push, cards.

Names are resolved lazily so that ``hubdet --help`` does not import torch.
"""

from __future__ import annotations

from hubdet._core.lazy import lazy_exports

_LAZY = {
    "DETECTORS": "hubdet.models._registry",
    "FAMILIES": "hubdet.models._registry",
    "create_detector": "hubdet.models._registry",
    "from_pretrained": "hubdet.models._registry",
    "load_detector": "hubdet.models.resolver",
    "weights_record": "hubdet.models.resolver",
    "detector_for_training": "hubdet.models.resolver",
    "list_families": "hubdet.models._registry",
    "list_detectors": "hubdet.models._registry",
    "register_detector": "hubdet.models._registry",
    "register_family": "hubdet.models._registry",
    "Detector": "hubdet.models.base",
    "CalibrationConfig": "hubdet.models.config",
    "DetectorConfig": "hubdet.models.config",
    "PreprocessConfig": "hubdet.models.config",
    "DetectorOutput": "hubdet.models.output",
    "Prediction": "hubdet.models.output",
}

__all__ = sorted(_LAZY)


__getattr__, __dir__ = lazy_exports('hubdet.models', _LAZY, globals())
