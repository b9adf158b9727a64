"""Which detectors the app offers: ``defaults/detectors.yaml`` or the ``HUBDET_DETECTORS`` environment variable.

The YAML schema (``format_version: 1``)::

    detectors:
      - name: classifier            # unique label shown in the app
        path: classifier            # a checkpoint folder, relative to the YAML file ...
        description: "..."          # one line shown in the app
      - name: someone-else
        repo_id: org/repo           # ... or a Hugging Face Hub model repo (needs the network or a warm cache)
        revision: main              # optional, Hub only
      - name: random-classifier
        registry: classifier_tiny.test   # ... or a registered variant with random weights (demos and tests)

``HUBDET_DETECTORS`` is a comma-separated list that replaces the file: each item is a folder, a Hub id
(``org/repo`` or ``org/repo@revision``) or a registry name, optionally prefixed by a label (``label=source``).
``HUBDET_DETECTORS_CONFIG`` points at another YAML file. Nothing is loaded or downloaded here.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hubdet._core.config import StrictConfig
from hubdet._core.errors import ConfigError

logger = logging.getLogger(__name__)

ENV_LIST = "HUBDET_DETECTORS"
ENV_CONFIG = "HUBDET_DETECTORS_CONFIG"
REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CONFIG = REPO_ROOT / "defaults" / "detectors.yaml"
_REGISTRY_RE = re.compile(r"^[a-z0-9_]+\.[a-z0-9_]+$")
_REPO_RE = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$")
_LABEL_RE = re.compile(r"^[\w.\- ]{1,64}$")


@dataclass
class DetectorSpec(StrictConfig):
    """One detector the app can offer: a label and exactly one of ``path``, ``repo_id`` or ``registry``."""

    name: str
    path: str = ""
    repo_id: str = ""
    registry: str = ""
    revision: str = ""
    description: str = ""

    def validate(self) -> None:
        if not self.name or not _LABEL_RE.match(self.name):
            raise ConfigError(f"detector name {self.name!r}: use 1-64 letters, digits, spaces, '.', '_' or '-'")
        given = [k for k in ("path", "repo_id", "registry") if getattr(self, k)]
        if len(given) != 1:
            raise ConfigError(f"detector {self.name!r}: give exactly one of path, repo_id, registry (got {given})")
        if self.repo_id and not _REPO_RE.match(self.repo_id):
            raise ConfigError(f"detector {self.name!r}: {self.repo_id!r} is not a Hub repo id like 'org/name'")
        if self.registry and not _REGISTRY_RE.match(self.registry):
            raise ConfigError(f"detector {self.name!r}: {self.registry!r} is not a registry name like 'arch.tag'")
        if self.revision and not self.repo_id:
            raise ConfigError(f"detector {self.name!r}: revision is only meaningful with repo_id")

    @property
    def source(self) -> str:
        """Where it comes from, for display."""
        if self.path:
            return self.path
        if self.repo_id:
            return f"hf://{self.repo_id}" + (f"@{self.revision}" if self.revision else "")
        return f"registry:{self.registry} (random weights)"

    def problem(self) -> str | None:
        """A reason this detector cannot be offered right now (cheap checks only), or None."""
        if self.path:
            folder = Path(self.path)
            if not folder.is_dir():
                return f"{folder}: checkpoint folder not found"
            if not (folder / "config.json").is_file():
                return f"{folder}: no config.json (not a hubdet checkpoint folder)"
        return None


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
        if spec.path and not Path(spec.path).expanduser().is_absolute():
            spec.path = str((file.parent / spec.path).resolve())
        specs.append(spec)
    return _check_unique(specs, str(file))


def parse_detector_list(text: str, *, base: Path | None = None) -> list[DetectorSpec]:
    """Parse ``HUBDET_DETECTORS``: comma-separated ``[label=]source`` items (folder, Hub id or registry name)."""
    base = base or Path.cwd()
    specs = []
    for raw in text.split(","):
        item = raw.strip()
        if not item:
            continue
        label = ""
        if "=" in item:
            label, item = (s.strip() for s in item.split("=", 1))
        specs.append(_spec_from_source(item, label=label, base=base))
    return _check_unique(specs, ENV_LIST)


def _spec_from_source(source: str, *, label: str, base: Path) -> DetectorSpec:
    path = Path(source).expanduser()
    path = path if path.is_absolute() else base / path
    if path.is_dir():
        return DetectorSpec(name=label or path.name, path=str(path.resolve()))
    if _REGISTRY_RE.match(source):
        return DetectorSpec(name=label or source, registry=source)
    repo, _, revision = source.partition("@")
    if _REPO_RE.match(repo) and not source.startswith((".", "/", "~")):
        return DetectorSpec(name=label or repo.split("/")[-1], repo_id=repo, revision=revision)
    raise ConfigError(
        f"{ENV_LIST}: {source!r} is neither an existing folder, a Hub repo id (org/name[@revision]) "
        "nor a registry name (arch.tag)"
    )


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
