"""Data: one ``datasets`` builder per public source, the example schema, image I/O and debiasing.

Entry points: :func:`load_source` (its result carries the report of skipped files as ``.report``) and
:func:`list_sources`. A new source is one module in this package that calls ``register_source`` (see
:mod:`hubdet.data._builder`). Attributes are imported lazily, so ``import hubdet.data.imageio`` (the app, the CLI)
does not pay for ``datasets`` and every builder.
"""

from __future__ import annotations

from hubdet._core.lazy import lazy_exports

_LAZY = {
    "load_source": "hubdet.data.loading",
    "list_sources": "hubdet.data._builder",
    "last_report": "hubdet.data.loading",  # deprecated: use the returned dataset's .report
    "get_source": "hubdet.data._builder",
    "PreparationReport": "hubdet.data.example",
    "make_example": "hubdet.data.example",
    "ColumnMap": "hubdet.data.schema",
    "HubdetBuilder": "hubdet.data._builder",
    "register_source": "hubdet.data._builder",
    "ReencodeConfig": "hubdet.data.debias",
    "reencode": "hubdet.data.debias",
    "features": "hubdet.data.schema",
    "LABEL_NAMES": "hubdet.data.schema",
    "load_image": "hubdet.data.imageio",
    "open_image": "hubdet.data.imageio",
    "BadFileReport": "hubdet.data.imageio",
    "InputPolicy": "hubdet.data.policy",
    "DATA_POLICY": "hubdet.data.policy",
    "load_from_hub": "hubdet.data.hub_sources",
    "push_dataset": "hubdet.data.push",
    "make_inpainting_benchmark": "hubdet.data.synth",
    "create_inpainter": "hubdet.data.inpainters",
    "register_inpainter": "hubdet.data.inpainters",
    "list_inpainters": "hubdet.data.inpainters",
}

__all__ = sorted(_LAZY)


__getattr__, __dir__ = lazy_exports('hubdet.data', _LAZY, globals())
