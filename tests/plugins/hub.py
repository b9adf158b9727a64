"""Fixture ``hub_server``: a local HTTP server speaking the part of the Hugging Face Hub API that
``huggingface_hub`` 2.x uses to create repositories, commit files and download them back.

Endpoints (checked against huggingface_hub 2.4's ``hf_api.py``, ``_commit_api.py`` and ``file_download.py``):

- ``POST /api/repos/create``                      create_repo (409 when it exists, as the Hub does)
- ``POST /api/validate-yaml``                     README.md front-matter check before a commit
- ``POST /api/{type}s/{repo}/preupload/{rev}``    every file answered ``uploadMode: regular`` (content inline in
  the commit) by default; ``server.upload_mode = "auto"`` answers ``lfs`` for binary files and ``"lfs"`` for all,
  as ``datasets``' own ``push_to_hub`` needs (it deletes its shards after the pre-upload)
- ``POST /[datasets/|spaces/]{repo}.git/info/lfs/objects/batch`` + ``PUT /lfs-upload/{oid}``: the legacy LFS
  "basic" transfer (subprocesses run with ``HF_HUB_DISABLE_XET=1``; there is no Xet storage here)
- ``POST /api/{type}s/{repo}/commit/{rev}``       NDJSON: header, file (base64), lfsFile, deletedFile, deletedFolder
- ``GET  /api/{type}s/{repo}[/revision/{rev}]``   repo info with ``sha`` and ``siblings``
- ``GET  /api/{type}s/{repo}/tree/{rev}[/{path}]``, ``POST .../paths-info/{rev}``, ``GET .../refs``,
  ``GET .../commits/{rev}``, ``GET /api/whoami-v2``
- ``HEAD|GET /[datasets/|spaces/]{repo}/resolve/{rev}/{path}``   file download (hf_hub_download, snapshot_download)

Write endpoints require an ``Authorization`` header (any token). Committed files are kept in memory and
mirrored under ``server.root/{type}s/{repo}/``. huggingface_hub reads ``HF_ENDPOINT`` and ``HF_HUB_OFFLINE``
at import time and the test session runs offline, so talk to the server from a subprocess::

    def test_push(hub_server):
        run_with_hub(hub_server, "from huggingface_hub import HfApi; HfApi().create_repo('me/x')")
        assert hub_server.files("model", "me/x") == {}
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import pytest

REPO_TYPES = ("model", "dataset", "space")
_URL_PREFIX = {"model": "", "dataset": "datasets/", "space": "spaces/"}
USER = "hubdet-tester"
DUMMY_TOKEN = "hf_hubdet_dummy_token"


def git_blob_sha1(data: bytes) -> str:
    """The git blob id of ``data`` (what the Hub reports as a regular file's oid)."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


@dataclass
class Repo:
    repo_type: str
    repo_id: str
    private: bool = False
    files: dict[str, bytes] = field(default_factory=dict)  # head of main
    history: list[tuple[str, dict[str, bytes]]] = field(default_factory=list)  # (sha, snapshot), oldest first

    @property
    def sha(self) -> str:
        return self.history[-1][0]

    def snapshot(self, revision: str) -> dict[str, bytes] | None:
        if revision in ("main", "refs/heads/main"):
            return self.files
        for sha, files in self.history:
            if sha == revision or (len(revision) >= 7 and sha.startswith(revision)):
                return files
        return None


class HubServer:
    """State of the fake Hub; ``url`` is its endpoint (set ``HF_ENDPOINT`` to it)."""

    def __init__(self, root: Path, *, upload_mode: str = "regular") -> None:
        self.root = Path(root)
        self.upload_mode = upload_mode  # "regular" | "lfs" | "auto" (lfs for binary or big files)
        self.lfs: dict[str, bytes] = {}  # LFS objects by sha256
        self.repos: dict[tuple[str, str], Repo] = {}
        self.commits: list[dict[str, Any]] = []
        self.requests: list[tuple[str, str]] = []
        self.lock = threading.RLock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.hub = self  # type: ignore[attr-defined]
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="fake-hub", daemon=True)
        self._thread.start()

    # -- test-facing API ----------------------------------------------------------------------------------
    def files(self, repo_type: str, repo_id: str) -> dict[str, bytes]:
        """The files at the head of ``main`` of a repository (KeyError if it was never created)."""
        with self.lock:
            return dict(self.repos[(_check_type(repo_type), repo_id)].files)

    def repo(self, repo_type: str, repo_id: str) -> Repo:
        with self.lock:
            return self.repos[(_check_type(repo_type), repo_id)]

    def create_repo(
        self, repo_type: str, repo_id: str, files: dict[str, bytes] | None = None, *, private: bool = False
    ) -> Repo:
        """Create (or return) a repository, optionally seeded with ``files`` in a first commit."""
        with self.lock:
            key = (_check_type(repo_type), repo_id)
            if key not in self.repos:
                repo = Repo(repo_type, repo_id, private)
                repo.history.append((_new_sha(repo_id, 0), {}))
                self.repos[key] = repo
            repo = self.repos[key]
            if files:
                self.commit(repo, "seed", "", dict(files), [])
            return repo

    def commit(self, repo: Repo, summary: str, description: str, added: dict[str, bytes], deleted: list[str]) -> str:
        with self.lock:
            files = dict(repo.files)
            for path in deleted:
                if path.endswith("/"):
                    for p in [p for p in files if p.startswith(path)]:
                        del files[p]
                else:
                    files.pop(path, None)
            files.update(added)
            sha = _new_sha(repo.repo_id, len(repo.history))
            repo.history.append((sha, files))
            repo.files = files
            self.commits.append(
                {
                    "repo_type": repo.repo_type,
                    "repo_id": repo.repo_id,
                    "oid": sha,
                    "summary": summary,
                    "description": description,
                    "added": sorted(added),
                    "deleted": sorted(deleted),
                }
            )
            self._mirror(repo)
            return sha

    def _mirror(self, repo: Repo) -> None:
        import shutil

        base = self.root / f"{repo.repo_type}s" / repo.repo_id
        if base.exists():
            shutil.rmtree(base)
        for path, data in repo.files.items():
            target = base / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)

    def env(self, token: str | None = DUMMY_TOKEN) -> dict[str, str]:
        """An environment for a subprocess that talks to this server (online, endpoint set, dummy token)."""
        env = {k: v for k, v in os.environ.items() if k not in _OFFLINE_VARS}
        env["HF_ENDPOINT"] = self.url
        env["HF_HUB_DISABLE_TELEMETRY"] = "1"
        env["HF_HUB_DISABLE_XET"] = "1"  # no Xet storage here: large files use the legacy LFS transfer
        env["HF_HUB_DISABLE_IMPLICIT_TOKEN"] = "0"
        env["HF_HOME"] = str(self.root / "hf_home")
        env["HF_HUB_CACHE"] = str(self.root / "hf_home" / "hub")
        env["HF_DATASETS_CACHE"] = str(self.root / "hf_home" / "datasets")
        env.pop("HF_TOKEN", None)
        if token:
            env["HF_TOKEN"] = token
        repo_root = str(Path(__file__).resolve().parents[2])
        env["PYTHONPATH"] = os.pathsep.join(p for p in (repo_root, env.get("PYTHONPATH", "")) if p)
        return env

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)


_OFFLINE_VARS = ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_TOKEN")


def _check_type(repo_type: str) -> str:
    if repo_type not in REPO_TYPES:
        raise ValueError(f"repo_type must be one of {REPO_TYPES}, got {repo_type!r}")
    return repo_type


def _new_sha(repo_id: str, n: int) -> str:
    return hashlib.sha1(f"{repo_id}@{n}@{time.time_ns()}".encode()).hexdigest()


class _HTTPError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "hubdet-fake-hub/1.0"

    @property
    def hub(self) -> HubServer:
        return self.server.hub  # type: ignore[attr-defined]

    def log_message(self, format: str, *args: Any) -> None:  # silence the default stderr logging
        pass

    # -- plumbing -----------------------------------------------------------------------------------------
    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().strip().split(b";")[0], 16)
                if size == 0:
                    self.rfile.readline()
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None, head: bool = False) -> None:
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body and not head and self.command != "HEAD":  # a HEAD answer never has a body, errors included
            self.wfile.write(body)

    def _json(self, obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(obj).encode(), {"Content-Type": "application/json", **(headers or {})})

    def _dispatch(self, method: str) -> None:
        split = urlsplit(self.path)
        path, query = split.path, parse_qs(split.query)
        with self.hub.lock:
            self.hub.requests.append((method, path))
        try:
            if path.startswith("/api/"):
                self._api(method, path[len("/api/") :], query)
            elif path.startswith("/lfs-upload/") and method == "PUT":
                self._lfs_put(path[len("/lfs-upload/") :])
            elif path.endswith(".git/info/lfs/objects/batch") and method == "POST":
                self._lfs_batch(path.lstrip("/")[: -len(".git/info/lfs/objects/batch")])
            else:
                self._resolve(method, path.lstrip("/"))
        except _HTTPError as exc:
            headers = {"X-Error-Message": exc.message}
            if exc.code:
                headers["X-Error-Code"] = exc.code
            self._json({"error": exc.message}, exc.status, headers)

    def do_GET(self) -> None:  # noqa: N802
        self._dispatch("GET")

    def do_HEAD(self) -> None:  # noqa: N802
        self._dispatch("HEAD")

    def do_POST(self) -> None:  # noqa: N802
        self._dispatch("POST")

    def do_PUT(self) -> None:  # noqa: N802
        self._dispatch("PUT")

    def do_DELETE(self) -> None:  # noqa: N802
        self._dispatch("DELETE")

    def _require_auth(self) -> None:
        if not self.headers.get("Authorization", "").startswith("Bearer "):
            raise _HTTPError(401, "Invalid credentials in Authorization header")

    def _get_repo(self, repo_type: str, repo_id: str) -> Repo:
        repo = self.hub.repos.get((repo_type, repo_id))
        if repo is None:
            raise _HTTPError(404, f"Repository not found: {repo_type} {repo_id}", "RepoNotFound")
        return repo

    # -- API ----------------------------------------------------------------------------------------------
    def _api(self, method: str, rest: str, query: dict[str, list[str]]) -> None:
        if rest == "whoami-v2":
            self._require_auth()
            return self._json({"type": "user", "name": USER, "fullname": USER, "orgs": [],
                               "auth": {"type": "access_token", "accessToken": {"role": "write"}}})
        if rest == "repos/create" and method == "POST":
            return self._create(json.loads(self._body() or b"{}"))
        if rest == "validate-yaml" and method == "POST":
            return self._validate_yaml(json.loads(self._body() or b"{}"))
        parts = rest.split("/")
        if len(parts) < 3 or parts[0] not in ("models", "datasets", "spaces"):
            raise _HTTPError(404, f"no such endpoint: /api/{rest}")
        repo_type = parts[0][:-1]
        repo_id = unquote(f"{parts[1]}/{parts[2]}")
        action, args = (parts[3], [unquote(a) for a in parts[4:]]) if len(parts) > 3 else ("", [])
        with self.hub.lock:
            repo = self._get_repo(repo_type, repo_id)
            if action == "" and method == "GET":
                return self._json(self._info(repo, "main"))
            if action == "revision" and method == "GET":
                return self._json(self._info(repo, "/".join(args)))
            if action == "preupload" and method == "POST":
                self._require_auth()
                return self._preupload(repo, json.loads(self._body() or b"{}"))
            if action == "commit" and method == "POST":
                self._require_auth()
                return self._commit(repo, "/".join(args), self._body())
            if action == "tree" and method == "GET":
                rev, sub = (args[0] if args else "main"), "/".join(args[1:])
                recursive = query.get("recursive", ["false"])[0].lower() in ("1", "true")
                return self._json(self._tree(repo, rev, sub, recursive))
            if action == "paths-info" and method == "POST":
                return self._paths_info(repo, args[0] if args else "main")
            if action == "refs" and method == "GET":
                return self._json({"branches": [{"name": "main", "ref": "refs/heads/main", "targetCommit": repo.sha}],
                                   "tags": [], "converts": []})
            if action == "commits" and method == "GET":
                return self._json([{"id": sha, "title": "commit", "message": "", "authors": [{"user": USER}],
                                    "date": "2026-01-01T00:00:00.000Z"} for sha, _ in reversed(repo.history)])
        raise _HTTPError(404, f"no such endpoint: {method} /api/{rest}")

    def _create(self, payload: dict[str, Any]) -> None:
        self._require_auth()
        repo_type = payload.get("type") or "model"
        if repo_type not in REPO_TYPES:
            raise _HTTPError(400, f"invalid repo type {repo_type!r}")
        name = payload.get("name") or ""
        if not name:
            raise _HTTPError(400, "missing repository name")
        repo_id = f"{payload.get('organization') or USER}/{name}"
        url = f"{self.hub.url}/{_URL_PREFIX[repo_type]}{repo_id}"
        with self.hub.lock:
            if (repo_type, repo_id) in self.hub.repos:
                return self._json({"error": "You already created this repo", "url": url}, 409)
            private = payload.get("visibility") == "private" or bool(payload.get("private"))
            self.hub.create_repo(repo_type, repo_id, private=private)
        self._json({"url": url, "name": repo_id, "id": repo_id})

    def _validate_yaml(self, payload: dict[str, Any]) -> None:
        import yaml

        content = payload.get("content", "")
        if content.startswith("---"):
            end = content.find("\n---", 3)
            if end < 0:
                return self._json({"errors": [{"message": "unterminated YAML front matter"}]}, 400)
            try:
                meta = yaml.safe_load(content[3:end])
            except yaml.YAMLError as exc:
                return self._json({"errors": [{"message": f"invalid YAML: {exc}"}]}, 400)
            if meta is not None and not isinstance(meta, dict):
                return self._json({"errors": [{"message": "YAML front matter must be a mapping"}]}, 400)
        self._json({"errors": [], "warnings": []})

    def _info(self, repo: Repo, revision: str) -> dict[str, Any]:
        files = repo.snapshot(revision)
        if files is None:
            raise _HTTPError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        sha = repo.sha if revision in ("main", "refs/heads/main") else next(
            s for s, f in repo.history if f is files
        )
        info: dict[str, Any] = {
            "id": repo.repo_id, "_id": repo.repo_id, "author": repo.repo_id.split("/")[0], "sha": sha,
            "private": repo.private, "gated": False, "disabled": False, "downloads": 0, "likes": 0, "tags": [],
            "lastModified": "2026-01-01T00:00:00.000Z", "createdAt": "2026-01-01T00:00:00.000Z",
            "siblings": [
                {"rfilename": p, "size": len(d), "blobId": git_blob_sha1(d)} for p, d in sorted(files.items())
            ],
        }
        if repo.repo_type == "model":
            info["modelId"] = repo.repo_id
        if repo.repo_type == "space":
            info["sdk"] = "gradio"
        return info

    def _preupload(self, repo: Repo, payload: dict[str, Any]) -> None:
        answer = []
        for item in payload.get("files", []):
            existing = repo.files.get(item["path"])
            mode = self.hub.upload_mode
            if mode == "auto":
                binary = b"\0" in base64.b64decode(item.get("sample", ""))
                mode = "lfs" if binary or int(item.get("size", 0)) > 10 * 2**20 else "regular"
            if existing is None:
                oid = None
            else:
                oid = hashlib.sha256(existing).hexdigest() if mode == "lfs" else git_blob_sha1(existing)
            answer.append({"path": item["path"], "uploadMode": mode, "shouldIgnore": False, "oid": oid})
        self._json({"files": answer, "commitOid": repo.sha})

    def _commit(self, repo: Repo, revision: str, body: bytes) -> None:
        if revision not in ("main", "refs/heads/main"):
            raise _HTTPError(404, f"Invalid rev id: {revision} (the fake Hub only has main)", "RevisionNotFound")
        summary, description = "", ""
        added: dict[str, bytes] = {}
        deleted: list[str] = []
        for n, line in enumerate(body.splitlines()):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
                key, value = item["key"], item["value"]
            except (ValueError, KeyError, TypeError) as exc:
                raise _HTTPError(400, f"commit line {n}: bad NDJSON ({exc})") from exc
            if key == "header":
                summary, description = value.get("summary", ""), value.get("description", "")
            elif key == "file":
                if value.get("encoding") != "base64":
                    raise _HTTPError(400, f"commit line {n}: unsupported encoding {value.get('encoding')!r}")
                added[value["path"]] = base64.b64decode(value["content"])
            elif key == "lfsFile":
                data = self.hub.lfs.get(value.get("oid", ""))
                if data is None or len(data) != value.get("size"):
                    raise _HTTPError(400, f"commit line {n}: LFS object {value.get('oid')} was not uploaded")
                added[value["path"]] = data
            elif key == "deletedFile":
                if value["path"] not in repo.files:
                    raise _HTTPError(404, "A file with this name doesn't exist", "EntryNotFound")
                deleted.append(value["path"])
            elif key == "deletedFolder":
                deleted.append(value["path"].rstrip("/") + "/")
            else:  # copies (CommitOperationCopy) are not supported
                raise _HTTPError(400, f"commit line {n}: unsupported operation {key!r} in the fake Hub")
        if not summary:
            raise _HTTPError(400, "commit has no header with a summary")
        sha = self.hub.commit(repo, summary, description, added, deleted)
        url = f"{self.hub.url}/{_URL_PREFIX[repo.repo_type]}{repo.repo_id}/commit/{sha}"
        self._json({"success": True, "commitOid": sha, "commitUrl": url, "pullRequestUrl": None})

    def _entries(self, files: dict[str, bytes], sub: str, recursive: bool) -> list[dict[str, Any]]:
        prefix = sub.strip("/") + "/" if sub.strip("/") else ""
        out: dict[str, dict[str, Any]] = {}
        for path, data in sorted(files.items()):
            if not path.startswith(prefix):
                continue
            rest = path[len(prefix) :].split("/")
            for depth in range(1, len(rest)):
                folder = prefix + "/".join(rest[:depth])
                if recursive or depth == 1:
                    out.setdefault(folder, {"type": "directory", "oid": git_blob_sha1(folder.encode()), "path": folder})
                if not recursive:
                    break
            if recursive or len(rest) == 1:
                out[path] = {"type": "file", "oid": git_blob_sha1(data), "size": len(data), "path": path}
        return list(out.values())

    def _tree(self, repo: Repo, revision: str, sub: str, recursive: bool) -> list[dict[str, Any]]:
        files = repo.snapshot(revision)
        if files is None:
            raise _HTTPError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        entries = self._entries(files, sub, recursive)
        if sub and not entries:
            raise _HTTPError(404, f"{sub} does not exist on {revision}", "EntryNotFound")
        return entries

    def _paths_info(self, repo: Repo, revision: str) -> None:
        body = self._body()
        ctype = self.headers.get("Content-Type", "")
        if "json" in ctype:
            paths = json.loads(body or b"{}").get("paths", [])
        else:
            paths = parse_qs(body.decode()).get("paths", [])
        files = repo.snapshot(unquote(revision))
        if files is None:
            raise _HTTPError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
        out = []
        for p in paths:
            if p in files:
                out.append({"type": "file", "oid": git_blob_sha1(files[p]), "size": len(files[p]), "path": p})
            elif any(f.startswith(p.rstrip("/") + "/") for f in files):
                out.append({"type": "directory", "oid": git_blob_sha1(p.encode()), "path": p})
        self._json(out)

    # -- LFS (basic transfer) -------------------------------------------------------------------------------
    def _lfs_batch(self, repo_path: str) -> None:
        self._require_auth()
        repo_type = "model"
        for prefix in ("datasets/", "spaces/"):
            if repo_path.startswith(prefix):
                repo_type, repo_path = prefix[:-2], repo_path[len(prefix) :]
        with self.hub.lock:
            self._get_repo(repo_type, unquote(repo_path))
            stored = set(self.hub.lfs)
        payload = json.loads(self._body() or b"{}")
        objects = []
        for obj in payload.get("objects", []):
            entry = {"oid": obj["oid"], "size": int(obj["size"]), "authenticated": True}
            if obj["oid"] not in stored:
                entry["actions"] = {"upload": {"href": f"{self.hub.url}/lfs-upload/{obj['oid']}", "header": {}}}
            objects.append(entry)
        self._json({"transfer": "basic", "objects": objects, "hash_algo": "sha256"})

    def _lfs_put(self, oid: str) -> None:
        data = self._body()
        if hashlib.sha256(data).hexdigest() != oid:
            raise _HTTPError(400, f"LFS upload: content does not match oid {oid}")
        with self.hub.lock:
            self.hub.lfs[oid] = data
        self._send(200)

    # -- downloads ----------------------------------------------------------------------------------------
    def _resolve(self, method: str, rest: str) -> None:
        if method not in ("GET", "HEAD"):
            raise _HTTPError(405, f"{method} not allowed on /{rest}")
        parts = rest.split("/")
        repo_type = "model"
        if parts and parts[0] in ("datasets", "spaces"):
            repo_type, parts = parts[0][:-1], parts[1:]
        if len(parts) < 5 or parts[2] != "resolve":
            raise _HTTPError(404, f"no such page: /{rest}")
        repo_id = unquote(f"{parts[0]}/{parts[1]}")
        revision, path = unquote(parts[3]), unquote("/".join(parts[4:]))
        with self.hub.lock:
            repo = self._get_repo(repo_type, repo_id)
            files = repo.snapshot(revision)
            if files is None:
                raise _HTTPError(404, f"Invalid rev id: {revision}", "RevisionNotFound")
            if path not in files:
                raise _HTTPError(404, f"Entry not found: {path}", "EntryNotFound")
            data = files[path]
            sha = repo.sha if revision in ("main", "refs/heads/main") else next(
                s for s, f in repo.history if f is files
            )
        etag = f'"{git_blob_sha1(data)}"'
        self._send(200, data, {"Content-Type": "application/octet-stream", "ETag": etag, "X-Repo-Commit": sha},
                   head=method == "HEAD")


@pytest.fixture
def hub_server(tmp_path_factory: pytest.TempPathFactory):
    """A fresh fake Hub on 127.0.0.1 for one test: ``.url``, ``.files(type, repo_id)``, ``.commits``.

    Set ``hub_server.upload_mode = "auto"`` before pushing with ``datasets``' ``push_to_hub`` (LFS needed).
    """
    server = HubServer(tmp_path_factory.mktemp("fake_hub"))
    try:
        yield server
    finally:
        server.close()


def run_with_hub(
    server: HubServer,
    code: str,
    *,
    token: str | None = DUMMY_TOKEN,
    env: dict[str, str] | None = None,
    timeout: float = 180,
    check: bool = True,
    cwd: str | os.PathLike | None = None,
) -> subprocess.CompletedProcess:
    """Run ``python -c code`` online against ``server`` (HF_ENDPOINT set, offline flags dropped, dummy token).

    With ``check`` (the default) a non-zero exit fails the test with the subprocess's output.
    """
    full_env = server.env(token)
    full_env.update(env or {})
    proc = subprocess.run(
        [sys.executable, "-c", code], env=full_env, capture_output=True, text=True, timeout=timeout, cwd=cwd
    )
    if check and proc.returncode != 0:
        pytest.fail(
            f"subprocess failed with exit status {proc.returncode}\n"
            f"--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
        )
    return proc
