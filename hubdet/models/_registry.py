"""The registry of detectors (``arch.tag`` names -> configs) and of families (family -> class).

Both are filled by discovery (:class:`~hubdet._core.registry.ModuleDiscovery`): every module directly in
``hubdet/models/`` (or sub-package ``hubdet/models/<name>/``), whose name does not start with ``_`` and whose code
calls ``register_family`` or ``register_detector``, is imported on the first lookup. A new family is one such file
(plus its ``*_tiny.test`` variant and test); a module that fails to import raises.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hubdet._core.errors import ConfigError
from hubdet._core.registry import ModuleDiscovery, Registry
from hubdet.models.config import CalibrationConfig, DetectorConfig, PreprocessConfig

#: The family modules: found by the names they call, imported on the first lookup of either registry.
FAMILY_DISCOVERY = ModuleDiscovery("hubdet.models", markers=("register_family", "register_detector"))
FAMILIES: Registry[type] = Registry("detector family", lister="hubdet.models.list_families()",
                                    discovery=FAMILY_DISCOVERY)
DETECTORS: Registry[Callable[[], DetectorConfig]] = Registry("detector", lister="hubdet.list_detectors()",
                                                             discovery=FAMILY_DISCOVERY)
_NAME_RE = re.compile(r"^[a-z0-9_]+\.[a-z0-9_]+$")


def register_family(cls: type) -> type:
    """Class decorator: register a :class:`~hubdet.models.base.Detector` subclass under ``cls.family``."""
    FAMILIES.register(cls.family, cls)
    return cls


def register_detector(
    name: str,
    *,
    family: str,
    args: dict[str, Any] | None = None,
    preprocess: dict[str, Any] | None = None,
    calibration: dict[str, Any] | None = None,
    description: str = "",
) -> None:
    """Register a named variant ``arch.tag`` (e.g. ``classifier_vit_b16.in1k``) of a family.

    Duplicate names raise :class:`~hubdet._core.errors.DuplicateNameError`.
    """
    if not _NAME_RE.match(name):
        raise ConfigError(f"detector name {name!r} must look like 'arch.tag' (lowercase, digits, underscores)")
    frozen = json.dumps({"args": args or {}, "preprocess": preprocess or {}, "calibration": calibration or {}})

    def factory() -> DetectorConfig:
        data = json.loads(frozen)
        return DetectorConfig(
            family=family,
            name=name,
            args=data["args"],
            preprocess=PreprocessConfig.from_dict(data["preprocess"], where=f"{name}.preprocess"),
            calibration=CalibrationConfig.from_dict(data["calibration"], where=f"{name}.calibration"),
            metadata={"description": description} if description else {},
        )

    factory.__doc__ = description
    DETECTORS.register(name, factory)


def list_families() -> list[str]:
    """Names of the registered detector families (``classifier``, ``boxhead``, ...)."""
    return FAMILIES.names()


def list_detectors(pattern: str | None = None, *, family: str | None = None) -> list[str]:
    """Registered detector names, optionally filtered by an fnmatch ``pattern`` and/or ``family``."""
    names = DETECTORS.names(pattern)
    if family is not None:
        names = [n for n in names if DETECTORS.get(n)().family == family]
    return names


def create_detector(name: str, *, pretrained: bool = False, preprocess: dict[str, Any] | None = None,
                    **args: Any) -> Any:
    """Build a registered detector; keyword ``args`` override the family's config (unknown keys raise)."""
    config = DETECTORS.get(name)()
    if args:
        merged = copy.deepcopy(config.args)
        merged.update(args)
        config.args = merged
    if preprocess:
        config.preprocess = config.preprocess.replace(**preprocess)
    cls = FAMILIES.get(config.family)
    return cls(config, pretrained=pretrained)


def from_pretrained(path_or_repo_id: str | Path, *, revision: str | None = None, verify: bool = True) -> Any:
    """Load a checkpoint from a local folder or a Hub repo id through :func:`hubdet.load_detector` (any family, and
    outside transformers/timm/ONNX models): strict, safetensors only, no remote code, the file manifest checked
    unless ``verify=False``."""
    from hubdet.models.resolver import from_pretrained as resolve

    return resolve(path_or_repo_id, revision=revision, verify=verify)
