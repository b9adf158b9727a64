"""The fake Hub of tests/plugins/hub.py answers huggingface_hub's real client (run in a subprocess)."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request

import pytest

from tests.plugins.hub import git_blob_sha1, run_with_hub


def _post(url: str, body: bytes, *, token: str | None = "hf_x", ctype: str = "application/json") -> tuple[int, dict]:
    headers = {"Content-Type": ctype}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def test_commit_ndjson_by_hand(hub_server):
    """The commit endpoint parses header, base64 file lines and deletions, and downloads give the bytes back."""
    status, body = _post(f"{hub_server.url}/api/repos/create", json.dumps({"name": "r", "organization": "org",
                                                                           "type": "dataset"}).encode())
    assert status == 200 and body["url"].endswith("/datasets/org/r")
    # a second create is a conflict, as on the Hub
    assert _post(f"{hub_server.url}/api/repos/create", json.dumps({"name": "r", "organization": "org",
                                                                   "type": "dataset"}).encode())[0] == 409

    def file_line(path: str, data: bytes) -> dict:
        content = base64.b64encode(data).decode()
        return {"key": "file", "value": {"path": path, "encoding": "base64", "content": content}}

    lines = [{"key": "header", "value": {"summary": "first", "description": ""}},
             file_line("a/b.txt", b"hi"), file_line("c.bin", b"\0\1")]
    ndjson = b"".join(json.dumps(x).encode() + b"\n" for x in lines)
    url = f"{hub_server.url}/api/datasets/org/r/commit/main"
    assert _post(url, ndjson, token=None, ctype="application/x-ndjson")[0] == 401  # writes need a token
    status, body = _post(url, ndjson, ctype="application/x-ndjson")
    assert status == 200 and body["commitOid"] == hub_server.commits[-1]["oid"]
    assert hub_server.files("dataset", "org/r") == {"a/b.txt": b"hi", "c.bin": b"\0\1"}
    assert (hub_server.root / "datasets" / "org" / "r" / "a" / "b.txt").read_bytes() == b"hi"

    status, body = _post(f"{hub_server.url}/api/datasets/org/r/preupload/main",
                         json.dumps({"files": [{"path": "c.bin", "sample": "", "size": 2}]}).encode())
    assert body["files"] == [{"path": "c.bin", "uploadMode": "regular", "shouldIgnore": False,
                              "oid": git_blob_sha1(b"\0\1")}]

    delete = [{"key": "header", "value": {"summary": "rm"}}, {"key": "deletedFile", "value": {"path": "c.bin"}}]
    _post(url, b"".join(json.dumps(x).encode() + b"\n" for x in delete), ctype="application/x-ndjson")
    assert hub_server.files("dataset", "org/r") == {"a/b.txt": b"hi"}
    with urllib.request.urlopen(f"{hub_server.url}/datasets/org/r/resolve/main/a/b.txt") as resp:
        assert resp.read() == b"hi" and resp.headers["X-Repo-Commit"] == hub_server.commits[-1]["oid"]
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(f"{hub_server.url}/datasets/org/r/resolve/main/c.bin")
    assert err.value.code == 404 and err.value.headers["X-Error-Code"] == "EntryNotFound"
    # bad YAML front matter is refused
    status, body = _post(f"{hub_server.url}/api/validate-yaml",
                         json.dumps({"content": "---\na: [1,\n---\n# x", "repoType": "dataset"}).encode())
    assert status == 400 and body["errors"]


CLIENT_ROUND_TRIP = r"""
import json, pathlib, sys, tempfile
from huggingface_hub import HfApi, hf_hub_download, snapshot_download
api = HfApi()
out = {}
for repo_type, extra in (("model", {}), ("dataset", {}), ("space", {"space_sdk": "gradio"})):
    repo_id = f"org/{repo_type}-repo"
    url = api.create_repo(repo_id, repo_type=repo_type, exist_ok=True, **extra)
    api.create_repo(repo_id, repo_type=repo_type, exist_ok=True, **extra)  # 409 swallowed by exist_ok
    folder = pathlib.Path(tempfile.mkdtemp())
    (folder / "sub").mkdir()
    (folder / "README.md").write_text("---\nlicense: mit\n---\n# hello\n")
    (folder / "sub" / "data.bin").write_bytes(bytes(range(256)) * 3)
    info = api.upload_folder(folder_path=str(folder), repo_id=repo_id, repo_type=repo_type, commit_message="up")
    again = api.upload_folder(folder_path=str(folder), repo_id=repo_id, repo_type=repo_type)  # no change
    api.delete_file("README.md", repo_id=repo_id, repo_type=repo_type)
    api.upload_file(path_or_fileobj=b"v2", path_in_repo="README.md", repo_id=repo_id, repo_type=repo_type)
    path = hf_hub_download(repo_id, "sub/data.bin", repo_type=repo_type)
    snap = snapshot_download(repo_id, repo_type=repo_type)
    out[repo_type] = {
        "url": str(url), "commit_oid": info.oid, "unchanged_oid": again.oid,
        "files": sorted(api.list_repo_files(repo_id, repo_type=repo_type)),
        "sha": api.repo_info(repo_id, repo_type=repo_type).sha,
        "download_ok": pathlib.Path(path).read_bytes() == bytes(range(256)) * 3,
        "snapshot_readme": (pathlib.Path(snap) / "README.md").read_text(),
    }
out["whoami"] = api.whoami()["name"]
print(json.dumps(out))
"""


def test_huggingface_hub_client_round_trip(hub_server):
    """create_repo, upload_folder, delete_file, upload_file, list files, repo_info, downloads: all three types."""
    proc = run_with_hub(hub_server, CLIENT_ROUND_TRIP)
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    for repo_type in ("model", "dataset", "space"):
        got = out[repo_type]
        repo_id = f"org/{repo_type}-repo"
        assert got["files"] == ["README.md", "sub/data.bin"]
        assert got["download_ok"] and got["snapshot_readme"] == "v2"
        assert got["unchanged_oid"] == got["commit_oid"]  # unchanged files: no new commit
        assert got["sha"] == hub_server.repo(repo_type, repo_id).sha
        assert hub_server.files(repo_type, repo_id) == {"README.md": b"v2", "sub/data.bin": bytes(range(256)) * 3}
        summaries = [c["summary"] for c in hub_server.commits if c["repo_id"] == repo_id]
        assert summaries[0] == "up" and len(summaries) == 3
    assert out["model"]["url"].endswith("/org/model-repo") and "/datasets/" in out["dataset"]["url"]
    assert out["whoami"]


def test_client_without_token_is_refused(hub_server):
    proc = run_with_hub(hub_server, "from huggingface_hub import HfApi; HfApi().create_repo('org/x')", token=None,
                        check=False)
    assert proc.returncode != 0 and "401" in proc.stderr
    assert ("model", "org/x") not in hub_server.repos


def test_datasets_push_to_hub_round_trip(hub_server):
    """``datasets``' own push_to_hub / load_dataset work against the fake Hub too (through LFS uploads)."""
    hub_server.upload_mode = "auto"
    code = (
        "import datasets, json; datasets.Dataset.from_dict({'a': [1, 2, 3]}).push_to_hub('org/plain'); "
        "print(json.dumps(list(datasets.load_dataset('org/plain', split='train')['a'])))"
    )
    proc = run_with_hub(hub_server, code)
    assert proc.stdout.strip().splitlines()[-1] == "[1, 2, 3]"
    files = hub_server.files("dataset", "org/plain")
    assert "README.md" in files and any(p.startswith("data/train-") and p.endswith(".parquet") for p in files)
    assert any(hub_server.lfs.get(k) for k in hub_server.lfs)  # the parquet shard went through LFS
