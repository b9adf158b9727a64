"""Detectors: one registry of families (classifier, box head, ensemble, probe), save/load/push, cards."""

from hubdet.models._registry import (
    DETECTORS,
    FAMILIES,
    create_detector,
    from_pretrained,
    list_detectors,
    register_detector,
    register_family,
)
from hubdet.models.base import Detector
from hubdet.models.config import CalibrationConfig, DetectorConfig, PreprocessConfig
from hubdet.models.output import DetectorOutput, Prediction

__all__ = [
    "DETECTORS",
    "FAMILIES",
    "CalibrationConfig",
    "Detector",
    "DetectorConfig",
    "DetectorOutput",
    "Prediction",
    "PreprocessConfig",
    "create_detector",
    "from_pretrained",
    "list_detectors",
    "register_detector",
    "register_family",
]
