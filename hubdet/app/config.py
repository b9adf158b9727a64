"""Which detectors the app offers: ``defaults/detectors.yaml`` or the ``HUBDET_DETECTORS`` environment variable.

The YAML schema (``format_version: 1``)::

    detectors:
      - name: classifier            # unique label shown in the app
        model: classifier           # a detector spec (hubdet.load_detector): a folder relative to the YAML file,
        description: "..."          # one line shown in the app
      - name: someone-else
        model: org/repo@main        # ... a Hub repo (hubdet, transformers, timm or ONNX; network or a warm cache),
      - name: random-classifier
        model: registry:classifier_tiny.test   # ... or a registered variant with random weights (demos and tests)

The keys of the first version of this file (``path``, ``repo_id`` + ``revision``, ``registry``) are still read;
each becomes ``model``. ``HUBDET_DETECTORS`` is a comma-separated list that replaces the file: each item is a
detector spec, optionally prefixed by a label (``label=spec``). ``HUBDET_DETECTORS_CONFIG`` points at another YAML
file. Specs are parsed by the resolver (:mod:`hubdet.models.resolver`); nothing is loaded or downloaded here.
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hubdet._core.config import StrictConfig
from hubdet._core.errors import ConfigError, HubdetError

logger = logging.getLogger(__name__)

ENV_LIST = "HUBDET_DETECTORS"
ENV_CONFIG = "HUBDET_DETECTORS_CONFIG"
REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CONFIG = REPO_ROOT / "defaults" / "detectors.yaml"
_LABEL_RE = re.compile(r"^[\w.\-(), ]{1,64}$")


@dataclass
class DetectorSpec(StrictConfig):
    """One detector the app can offer: a label and a detector spec (``model``, :func:`hubdet.load_detector`'s
    grammar). The format-1 keys ``path``, ``repo_id`` (+ ``revision``) and ``registry`` are read into ``model``."""

    name: str
    model: str = ""
    description: str = ""
    path: str = ""
    repo_id: str = ""
    registry: str = ""
    revision: str = ""

    def validate(self) -> None:
        from hubdet.models.resolver import SpecError, parse_spec

        if not self.name or not _LABEL_RE.match(self.name):
            raise ConfigError(f"detector name {self.name!r}: use 1-64 letters, digits, spaces, '.', '_', '-', "
                              "',' or parentheses")
        given = [k for k in ("model", "path", "repo_id", "registry") if getattr(self, k)]
        if len(given) != 1:
            raise ConfigError(f"detector {self.name!r}: give exactly one of model, path, repo_id, registry "
                              f"(got {given})")
        if self.revision and not self.repo_id:
            raise ConfigError(f"detector {self.name!r}: revision is only meaningful with repo_id")
        try:
            if self.repo_id and not parse_spec(self.repo_id).is_hub:
                raise ConfigError(f"detector {self.name!r}: {self.repo_id!r} is not a Hub repo id like 'org/name'")
            if self.registry and not parse_spec(self.registry).is_registry:
                raise ConfigError(f"detector {self.name!r}: {self.registry!r} is not a registry name like 'arch.tag'")
        except SpecError as exc:
            raise ConfigError(f"detector {self.name!r}: {exc}") from None
        if not self.model:  # the format-1 keys: one representation from here on
            self.model = self.path or (f"registry:{self.registry}" if self.registry else
                                       self.repo_id + (f"@{self.revision}" if self.revision else ""))
            self.path = self.repo_id = self.registry = self.revision = ""
        try:
            parse_spec(self.model)
        except SpecError as exc:
            raise ConfigError(f"detector {self.name!r}: {exc}") from None

    @property
    def source(self) -> str:
        """Where it comes from, for display: the spec."""
        return self.model

    def problem(self) -> str | None:
        """A reason this detector cannot be offered right now (cheap checks only: no load, no download), or None."""
        from hubdet.models.integrity import PACKAGE_PREFIX, resolve_file
        from hubdet.models.resolver import SpecError, check_spec, detect_kind, parse_spec

        problem = check_spec(self.model)
        if problem is None:
            spec = parse_spec(self.model)
            if spec.is_local and spec.kind is None and not spec.target.startswith(PACKAGE_PREFIX):
                folder = Path(spec.target).expanduser()
                try:
                    if detect_kind(folder) == "hubdet":  # files it reads from installed packages must be there
                        manifest = json.loads((folder / "config.json").read_text()).get("file_sha256") or {}
                        for ref in (r for r in manifest if r.startswith(PACKAGE_PREFIX)):
                            resolve_file(folder, ref)
                except (SpecError, HubdetError, OSError, ValueError) as exc:
                    return str(exc)
        return problem


def _anchored(spec: str, base: Path) -> str:
    """``spec`` with a relative local target made absolute against ``base`` (where it exists there)."""
    from hubdet.models.resolver import SpecError, parse_spec

    try:
        parsed = parse_spec(spec)
    except SpecError as exc:
        raise ConfigError(str(exc)) from None
    target = Path(parsed.target).expanduser()
    if parsed.target.startswith("pkg:") or target.is_absolute() or not (base / target).exists():
        return spec
    prefix = spec.strip().split(":", 1)[0] + ":" if parsed.kind is not None else ""
    return prefix + str((base / target).resolve())


@dataclass
class AppDetectorsFile(StrictConfig):
    """The whole ``detectors.yaml``."""

    detectors: list[dict[str, Any]]
    format_version: int = 1

    def validate(self) -> None:
        if self.format_version != 1:
            raise ConfigError(f"detectors file format_version {self.format_version} is not supported (1 is)")


def read_detectors_file(path: str | os.PathLike) -> list[DetectorSpec]:
    """Parse a detectors YAML file; relative ``path`` entries resolve against the file's folder."""
    import yaml

    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"{file}: detectors file not found")
    try:
        data = yaml.safe_load(file.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{file}: invalid YAML ({exc})") from exc
    parsed = AppDetectorsFile.from_dict(data, where=str(file))
    specs = []
    for i, entry in enumerate(parsed.detectors):
        spec = DetectorSpec.from_dict(entry, where=f"{file}: detectors[{i}]")
        spec.model = _anchored(spec.model, file.parent)
        specs.append(spec)
    return _check_unique(specs, str(file))


def parse_detector_list(text: str, *, base: Path | None = None) -> list[DetectorSpec]:
    """Parse ``HUBDET_DETECTORS``: comma-separated ``[label=]spec`` items (any detector spec; relative folders
    against ``base``, default the working directory). A spec that cannot name a detector raises."""
    from hubdet.models.resolver import check_spec, default_name

    base = base or Path.cwd()
    specs = []
    for raw in text.split(","):
        item = raw.strip()
        if not item:
            continue
        label = ""
        if "=" in item:
            label, item = (s.strip() for s in item.split("=", 1))
        try:
            model = _anchored(item, base)
        except ConfigError as exc:
            raise ConfigError(f"{ENV_LIST}: {exc}") from None
        problem = check_spec(model)
        if problem:
            raise ConfigError(f"{ENV_LIST}: {problem}")
        specs.append(DetectorSpec(name=label or default_name(model), model=model))
    return _check_unique(specs, ENV_LIST)


def _check_unique(specs: list[DetectorSpec], where: str) -> list[DetectorSpec]:
    seen: set[str] = set()
    for spec in specs:
        if spec.name in seen:
            raise ConfigError(f"{where}: detector name {spec.name!r} appears twice; give each a unique label")
        seen.add(spec.name)
    return specs


def load_detector_specs(
    config: str | os.PathLike | None = None, *, detectors: str | None = None
) -> list[DetectorSpec]:
    """The detectors to offer. Precedence: ``detectors`` (same syntax as the env variable) > ``config`` file >
    ``HUBDET_DETECTORS`` > ``HUBDET_DETECTORS_CONFIG`` > ``defaults/detectors.yaml`` of the checkout.

    Returns an empty list (with a warning) if none of these exist.
    """
    if detectors:
        return parse_detector_list(detectors)
    if config:
        return read_detectors_file(config)
    env_list = os.environ.get(ENV_LIST, "").strip()
    if env_list:
        return parse_detector_list(env_list)
    env_config = os.environ.get(ENV_CONFIG, "").strip()
    if env_config:
        return read_detectors_file(env_config)
    if DEFAULT_CONFIG.is_file():
        return read_detectors_file(DEFAULT_CONFIG)
    logger.warning("no detectors configured: set %s or %s, or create %s", ENV_LIST, ENV_CONFIG, DEFAULT_CONFIG)
    return []


def results_dir() -> Path:
    """Where the leaderboard tab reads result files: ``HUBDET_RESULTS_DIR`` or ``leaderboard/`` of the checkout."""
    env = os.environ.get("HUBDET_RESULTS_DIR", "").strip()
    return Path(env).expanduser() if env else REPO_ROOT / "leaderboard"
