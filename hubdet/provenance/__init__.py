"""Provenance evidence: C2PA Content Credentials, IPTC digital source type, generator metadata.

Evidence beside the pixel detectors, never a score and never a verdict of "authentic"::

    from hubdet.provenance import inspect
    record = inspect("image.jpg")           # or the encoded bytes
    record.conclusion, record.reason        # 'declared_ai', 'A C2PA manifest made by ... validates ...'
    record.to_dict()                        # JSON-ready; Provenance.from_dict reads it back
    record.summary()                        # one line for a table or a panel

Imports are lazy: ``c2pa`` and Pillow load on the first :func:`inspect`.
"""

from __future__ import annotations

from hubdet._core.lazy import lazy_exports

_LAZY = {
    "inspect": "hubdet.provenance.reader",
    "Provenance": "hubdet.provenance.record",
    "C2paEvidence": "hubdet.provenance.record",
    "C2paAction": "hubdet.provenance.record",
    "C2paIngredient": "hubdet.provenance.record",
    "GeneratorInfo": "hubdet.provenance.record",
    "SourceTypeClaim": "hubdet.provenance.record",
    "ValidationCode": "hubdet.provenance.record",
    "CONCLUSIONS": "hubdet.provenance.record",
    "c2pa_available": "hubdet.provenance.manifest",
}

__all__ = list(_LAZY)

__getattr__, __dir__ = lazy_exports("hubdet.provenance", _LAZY, globals())
