"""The app served on a free port and driven through gradio_client, as scripts and the Space's users would."""

from __future__ import annotations

import csv
import socket
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from hubdet.app.config import DetectorSpec
from hubdet.app.limits import AppLimits
from hubdet.app.pool import DetectorPool
from tests.test_app_service import (
    EXPECTED_NOTES,
    EXPECTED_REASONS,
    bad_inputs,
    odd_inputs,
    photo_like,
    save_tiny_detectors,
    write_leaderboard,
)

REPO = Path(__file__).resolve().parents[1]
NAMES = ["classifier", "boxhead", "ensemble"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def launch_app(root: Path, *, concurrency: int = 2) -> tuple[Any, str, DetectorPool]:
    """Build the app for tiny detectors saved under ``root`` and serve it on a free port."""
    from hubdet.app.ui import build_demo

    folders = save_tiny_detectors(root / "detectors")
    write_leaderboard(root / "leaderboard")
    pool = DetectorPool([DetectorSpec(name=name, path=str(folders[name])) for name in NAMES])
    demo = build_demo(pool, examples=None, leaderboard_dir=root / "leaderboard",
                      limits=AppLimits(rate_limit=0, heavy_jobs=concurrency))  # rate limits: test_reliability
    port = free_port()
    demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
    return demo, f"http://127.0.0.1:{port}/", pool


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, DetectorPool]]:
    demo, url, pool = launch_app(tmp_path_factory.mktemp("app_server"))
    try:
        yield url, pool
    finally:
        demo.close()


@pytest.fixture(scope="module")
def client(served: tuple[str, DetectorPool]) -> Any:
    from gradio_client import Client

    return Client(served[0], verbose=False)


def compare(client: Any, path: Path, names: list[str] = NAMES, explain: bool = False) -> dict[str, Any]:
    from gradio_client import handle_file

    return client.predict(handle_file(str(path)), names, explain, api_name="/compare")


def test_named_endpoints_are_published(client: Any) -> None:
    endpoints = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    assert {"/compare", "/detectors", "/batch", "/leaderboard"} <= set(endpoints)


def test_detectors_endpoint_lists_the_configured_detectors(client: Any) -> None:
    rows = client.predict(api_name="/detectors")
    assert [r["name"] for r in rows] == NAMES and all(r["available"] for r in rows)


def test_compare_returns_each_detectors_result(client: Any, served: tuple[str, DetectorPool], tmp_path: Path) -> None:
    image = photo_like(tmp_path / "photo.jpg")
    payload = compare(client, image, explain=True)
    assert payload["ok"] and payload["error"] is None
    assert payload["image"]["file"] == "photo.jpg" and payload["image"]["width"] == 96
    results = {r["detector"]: r for r in payload["results"]}
    assert list(results) == NAMES
    pool = served[1]
    for name, result in results.items():
        direct = pool.get(name).predict([image])[0]
        assert result["error"] is None
        assert result["prob_fake"] == pytest.approx(direct.prob, abs=1e-5)
        assert result["verdict"] == direct.verdict
        assert result["explanation"]
    assert results["boxhead"]["supports_boxes"] and len(results["boxhead"]["box"]) == 4
    assert results["classifier"]["box"] is None
    assert set(payload["summary"]["verdicts"]) == set(NAMES)


@pytest.mark.parametrize("kind", sorted(EXPECTED_REASONS))
def test_bad_inputs_get_a_clear_message_and_the_app_keeps_serving(client: Any, tmp_path: Path, kind: str) -> None:
    path = bad_inputs(tmp_path)[kind]
    payload = compare(client, path)
    assert payload["ok"] is False and payload["results"] == []
    assert path.name in payload["error"] and EXPECTED_REASONS[kind] in payload["error"]
    after = compare(client, photo_like(tmp_path / "after.png", fmt="PNG"), ["classifier", "boxhead"])
    assert after["ok"] and all(r["error"] is None for r in after["results"])


@pytest.mark.parametrize("kind", sorted(EXPECTED_NOTES))
def test_unusual_encodings_give_results(client: Any, tmp_path: Path, kind: str) -> None:
    payload = compare(client, odd_inputs(tmp_path)[kind], ["classifier", "boxhead"])
    assert payload["ok"] and all(0.0 <= r["prob_fake"] <= 1.0 for r in payload["results"])
    assert any(EXPECTED_NOTES[kind] in n for n in payload["image"]["notes"])


def test_selection_outside_two_to_four_is_refused(client: Any, tmp_path: Path) -> None:
    payload = compare(client, photo_like(tmp_path / "p.jpg"), ["classifier"])
    assert payload["ok"] is False and "choose 2 to 4" in payload["error"]


def test_concurrent_requests(served: tuple[str, DetectorPool], tmp_path: Path) -> None:
    from gradio_client import Client

    images = [photo_like(tmp_path / f"p{i}.jpg", seed=i) for i in range(4)]
    expected = {i: compare(Client(served[0], verbose=False), p)["results"] for i, p in enumerate(images)}

    def one(i: int) -> list[dict[str, Any]]:
        return compare(Client(served[0], verbose=False), images[i % 4], explain=i % 2 == 0)["results"]

    with ThreadPoolExecutor(max_workers=8) as pool:
        outcomes = list(pool.map(one, range(8)))
    for i, results in enumerate(outcomes):
        assert [r["error"] for r in results] == [None] * 3
        assert [r["prob_fake"] for r in results] == pytest.approx([r["prob_fake"] for r in expected[i % 4]], abs=1e-6)


def test_batch_endpoint_returns_table_and_csv(client: Any, tmp_path: Path) -> None:
    from gradio_client import handle_file

    good = photo_like(tmp_path / "good.jpg")
    archive = tmp_path / "more.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("x.jpg", photo_like(tmp_path / "x.jpg", seed=3).read_bytes())
        zf.writestr("empty.png", b"")
    files = [handle_file(str(p)) for p in (good, bad_inputs(tmp_path / "bad")["non_image"], archive)]
    table, csv_file, note = client.predict(files, ["classifier", "boxhead"], api_name="/batch")
    assert table["headers"] == ["file", "detector", "prob_fake", "verdict", "box", "box_score", "inpainted_share",
                                "regions", "error", "provenance", "provenance_reason", "c2pa_validation",
                                "digital_source_type", "provenance_generator"]
    rows = [dict(zip(table["headers"], row, strict=True)) for row in table["data"]]
    assert [(r["file"], r["detector"]) for r in rows] == [
        (f, d) for f in ("good.jpg", "notes.jpg", "more.zip/x.jpg", "more.zip/empty.png")
        for d in ("classifier", "boxhead")
    ]
    errors = {r["file"]: r["error"] for r in rows}
    assert errors["good.jpg"] == "" and "not an image" in errors["notes.jpg"]
    assert "empty" in errors["more.zip/empty.png"]
    assert "2 file(s) with errors" in note
    with open(csv_file, newline="") as f:
        assert len(list(csv.DictReader(f))) == len(rows)


def test_leaderboard_endpoint_filters(client: Any) -> None:
    table, message = client.predict("other", "clean", "roc_auc", api_name="/leaderboard")
    assert "3 result(s)" in message
    rows = [dict(zip(table["headers"], row, strict=True)) for row in table["data"]]
    assert [(r["model"], r["source"]) for r in rows] == [("models/mid", "other")]
    table, _ = client.predict("All", "clean", "roc_auc", api_name="/leaderboard")
    assert [row[table["headers"].index("rank")] for row in table["data"]] == [1, 2, 3]


def test_import_app_starts_no_server_and_cli_help_works() -> None:
    code = "import app, threading; assert threading.active_count() == 1, threading.enumerate(); print('ok')"
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr
    out = subprocess.run([sys.executable, "app.py", "--help"], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "--port" in out.stdout and "--host" in out.stdout
