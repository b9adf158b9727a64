"""Where card templates (``model_cards/*.md``) are found: the one lookup for model, dataset and result cards."""

from __future__ import annotations

import importlib.resources
import os
from pathlib import Path


def card_template(name: str) -> Path:
    """Locate a card template: ``$HUBDET_MODEL_CARDS`` (a folder, for custom templates), then the package data
    ``hubdet/model_cards/`` of an installed wheel, else the top-level ``model_cards/`` of the checkout."""
    tried: list[str] = []
    env = os.environ.get("HUBDET_MODEL_CARDS")
    candidates: list[Path] = [Path(env) / name] if env else []
    try:
        packaged = importlib.resources.files("hubdet") / "model_cards" / name
        if packaged.is_file():
            with importlib.resources.as_file(packaged) as p:
                candidates.append(Path(p))
        else:
            tried.append(str(packaged))
    except (ModuleNotFoundError, FileNotFoundError, NotADirectoryError):  # pragma: no cover - odd installs
        pass
    candidates.append(Path(__file__).resolve().parents[2] / "model_cards" / name)
    for path in candidates:
        if path.is_file():
            return path
        tried.append(str(path))
    raise FileNotFoundError(f"card template {name!r} not found; looked in: {', '.join(tried)}")
