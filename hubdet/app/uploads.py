"""Uploads: one image decoded by the shared decoder (:func:`decode_upload`), and a batch's files and zip archives
expanded under :class:`BatchLimits` (:func:`expand_uploads`).

Every image is decoded by :func:`hubdet.data.imageio.open_image` (the one decoder, with its bad-file rules).
"""

from __future__ import annotations

import os
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PIL import Image

from hubdet._core.errors import BadImageError


@dataclass
class DecodedImage:
    """An uploaded image decoded by the shared decoder, with notes on what was normalised."""

    name: str
    image: Image.Image
    format: str | None
    mode: str
    n_frames: int
    notes: list[str] = field(default_factory=list)

    def info(self) -> dict[str, Any]:
        return {"file": self.name, "width": self.image.width, "height": self.image.height, "format": self.format,
                "mode": self.mode, "frames": self.n_frames, "notes": self.notes}


def decode_upload(source: str | os.PathLike | bytes | None, *, name: str | None = None,
                  max_pixels: int | None = None) -> DecodedImage:
    """Decode an upload (a path or bytes) with at most ``max_pixels`` pixels (default: the decoder's limit; the app
    passes its own, lower one). Raises :class:`BadImageError` with a readable reason (naming the upload)."""
    from hubdet.data.imageio import open_image

    if source is None or (isinstance(source, str) and not source.strip()):
        raise BadImageError(name or "<upload>", "no file was uploaded")
    label = name or (Path(os.fspath(source)).name if not isinstance(source, bytes) else "<bytes>")
    try:
        img, info = open_image(source, max_pixels=max_pixels,
                               limit_name="this app's limit" if max_pixels is not None else None)
    except BadImageError as exc:
        raise type(exc)(label, exc.reason) from None
    return DecodedImage(label, img, info.format, info.mode, info.n_frames, list(info.notes))


@dataclass(frozen=True)
class BatchLimits:
    """Limits on one batch request (archives are checked before anything is decompressed)."""

    max_files: int = 200
    max_zip_members: int = 500
    max_zip_total_bytes: int = 512 * 1024 * 1024
    max_member_bytes: int = 64 * 1024 * 1024
    max_compression_ratio: float = 200.0


def expand_uploads(paths: Sequence[str | os.PathLike], limits: BatchLimits = BatchLimits()
                   ) -> Iterator[tuple[str, str | bytes | None, str | None]]:
    """Yield ``(name, source, error)`` for each uploaded file and each file inside uploaded zips.

    A zip over the member-count or total-size limit, or with an extreme compression ratio, is refused as a whole
    (one entry with the error) before any member is decompressed; members are read with a size cap, so an
    archive whose headers lie cannot inflate past the limit either.
    """
    count = 0
    for raw in paths:
        path = Path(os.fspath(raw))
        if path.suffix.lower() == ".zip" or (path.is_file() and path.stat().st_size > 0 and zipfile.is_zipfile(path)):
            entries = _zip_members(path, limits)
        else:
            entries = iter([(path.name, str(path), None)])
        for entry in entries:
            if count >= limits.max_files:
                yield (path.name, None, f"batch stopped: more than {limits.max_files} files in one request")
                return
            count += 1
            yield entry


def _zip_members(path: Path, limits: BatchLimits
                 ) -> Iterator[tuple[str, str | bytes | None, str | None]]:
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        yield (path.name, None, f"not a readable zip archive ({exc})")
        return
    with zf:
        infos = [i for i in zf.infolist() if not i.is_dir() and not _hidden(i.filename)]
        total = sum(i.file_size for i in infos)
        compressed = sum(i.compress_size for i in infos)
        if len(infos) > limits.max_zip_members:
            yield (path.name, None, f"zip refused: {len(infos)} files, over the limit of {limits.max_zip_members}")
            return
        if total > limits.max_zip_total_bytes:
            yield (path.name, None, f"zip refused: {total / 2**20:.1f} MiB uncompressed, over the limit of "
                                    f"{limits.max_zip_total_bytes / 2**20:.0f} MiB")
            return
        if compressed and total / compressed > limits.max_compression_ratio and total > 2**20:
            yield (path.name, None, f"zip refused: compression ratio {total / compressed:.0f}:1 looks like a zip bomb")
            return
        if not infos:
            yield (path.name, None, "zip archive holds no files")
            return
        read_total = 0
        for info in infos:
            label = f"{path.name}/{info.filename}"
            if info.file_size > limits.max_member_bytes:
                yield (label, None, f"file is {info.file_size / 2**20:.1f} MiB, over the per-file limit of "
                                    f"{limits.max_member_bytes / 2**20:.0f} MiB")
                continue
            try:
                with zf.open(info) as member:
                    data = member.read(limits.max_member_bytes + 1)
            except (zipfile.BadZipFile, RuntimeError, OSError, NotImplementedError, EOFError) as exc:
                yield (label, None, f"cannot read from the zip ({exc})")
                continue
            read_total += len(data)
            if len(data) > limits.max_member_bytes or read_total > limits.max_zip_total_bytes:
                yield (label, None, "zip refused: members inflate past the declared size limits")
                return
            yield (label, data, None)


def _hidden(name: str) -> bool:
    parts = Path(name).parts
    return any(p.startswith(".") or p == "__MACOSX" for p in parts)
