"""Imports every family module so that their families and named variants are registered."""

import importlib
import logging

logger = logging.getLogger(__name__)

FAMILY_MODULES = (
    "hubdet.models.classifier",
    "hubdet.models.boxhead",
    "hubdet.models.ensemble",
    "hubdet.models.probe",
    "hubdet.models.copymove",
)

for _name in FAMILY_MODULES:
    try:
        importlib.import_module(_name)
    except ModuleNotFoundError as exc:  # a family still being written; the others stay usable
        if exc.name != _name:
            raise
        logger.debug("family module %s not present", _name)
