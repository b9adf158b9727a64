"""``inspect``: every kind of provenance evidence in one file, and the conclusion it supports."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from hubdet.provenance.conclusion import conclude
from hubdet.provenance.manifest import read_c2pa
from hubdet.provenance.metadata import PILLOW_MIME, read_metadata
from hubdet.provenance.record import C2paEvidence, Provenance

logger = logging.getLogger(__name__)

#: Files larger than this are not read (bytes); override with ``HUBDET_PROVENANCE_MAX_BYTES``.
MAX_FILE_BYTES = int(os.environ.get("HUBDET_PROVENANCE_MAX_BYTES", 512 << 20))

PathOrBytes = str | os.PathLike | bytes | bytearray | memoryview


def _read(source: PathOrBytes, name: str | None) -> tuple[str, bytes | None, str | None]:
    """``(name, bytes, error)``: the file's bytes, or why there are none."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        where = name or "<bytes>"
    else:
        path = Path(os.fspath(source))
        where = name or str(path)
        try:
            size = path.stat().st_size
            if path.is_dir():
                return where, None, "is a directory, not a file"
            if size > MAX_FILE_BYTES:
                return where, None, f"file is {size} bytes, over the {MAX_FILE_BYTES}-byte limit"
            data = path.read_bytes()
        except FileNotFoundError:
            return where, None, "file does not exist"
        except OSError as exc:
            return where, None, f"cannot read the file ({exc.strerror or exc})"
    if not data:
        return where, None, "file is empty (0 bytes)"
    if len(data) > MAX_FILE_BYTES:
        return where, None, f"{len(data)} bytes, over the {MAX_FILE_BYTES}-byte limit"
    return where, data, None


def inspect(source: PathOrBytes, *, name: str | None = None, trust_anchors: str | None = None) -> Provenance:
    """Read the provenance evidence of one file (a path or the encoded bytes) into a :class:`Provenance`.

    - C2PA Content Credentials with ``c2pa-python`` (offline; validation state and every validation code);
    - XMP / IPTC ``DigitalSourceType``, EXIF fields that name software, generator text chunks (AUTOMATIC1111,
      ComfyUI, InvokeAI, NovelAI, Midjourney...), with Pillow, header only;
    - a conclusion (``declared_ai``, ``declared_ai_edit``, ``declared_capture``, ``no_claim``, ``invalid_claim``) and
      its reason.

    Never raises for a bad file: what could not be read is listed in ``errors``. ``name`` labels bytes input;
    ``trust_anchors`` is a PEM file of C2PA trust anchors (default: ``HUBDET_C2PA_TRUST_ANCHORS``, else none, so
    signers are reported as not on a trust list).
    """
    where, data, error = _read(source, name)
    if data is None:
        errors = [f"{where}: {error}"]
        conclusion, reason, signed = conclude(C2paEvidence(), [], [], errors, [])
        return Provenance(source=where, conclusion=conclusion, reason=reason, signed=signed, errors=errors)
    meta = read_metadata(data, where)
    mime = PILLOW_MIME.get(meta.format or "")
    c2pa, c2pa_claims, c2pa_errors = read_c2pa(data, mime, trust_anchors=trust_anchors)
    checked = (["c2pa"] if c2pa.checked else []) + meta.checked
    errors = meta.errors + c2pa_errors
    if meta.format is None and c2pa.present:
        errors.append(f"{where}: not an image; only its C2PA manifest was read")
    claims = c2pa_claims + meta.source_types
    conclusion, reason, signed = conclude(c2pa, claims, meta.generators, errors, checked)
    record = Provenance(
        source=where, conclusion=conclusion, reason=reason, signed=signed, format=meta.format, c2pa=c2pa,
        source_types=claims, software=meta.software, generators=meta.generators, checked=checked, errors=errors,
    )
    logger.debug("%s: %s", where, record.summary())
    return record
