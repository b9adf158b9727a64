"""Data: one ``datasets`` builder per public source, the example schema, image I/O and debiasing.

Entry points: :func:`load_source` and :func:`list_sources`; :func:`last_report` gives the files skipped by the
last load. Attributes are imported lazily, so ``import hubdet.data.imageio`` (the app, the CLI) does not pay
for ``datasets`` and every builder.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "load_source": "hubdet.data._builder",
    "list_sources": "hubdet.data._builder",
    "last_report": "hubdet.data._builder",
    "get_source": "hubdet.data._builder",
    "PreparationReport": "hubdet.data._builder",
    "HubdetBuilder": "hubdet.data._builder",
    "register_source": "hubdet.data._builder",
    "ReencodeConfig": "hubdet.data.debias",
    "reencode": "hubdet.data.debias",
    "features": "hubdet.data.schema",
    "LABEL_NAMES": "hubdet.data.schema",
    "load_image": "hubdet.data.imageio",
    "open_image": "hubdet.data.imageio",
    "BadFileReport": "hubdet.data.imageio",
    "load_from_hub": "hubdet.data.hub_sources",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'hubdet.data' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
