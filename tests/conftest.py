"""Test-wide settings: offline Hub, no Gradio analytics, small thread pools, shared fixtures."""

from __future__ import annotations

import os
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("OMP_NUM_THREADS", "2")

import pytest  # noqa: E402

pytest_plugins = ["tests.plugins.hub", "tests.plugins.images"]

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """``../shared/data`` beside the checkout; tests using it skip cleanly when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"{SHARED_DATA} is absent")
    return SHARED_DATA


@pytest.fixture(autouse=True)
def _isolated_hf_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep datasets/hub caches of each test session in a temporary folder."""
    cache = tmp_path_factory.getbasetemp() / "hf_cache"
    monkeypatch.setenv("HF_DATASETS_CACHE", str(cache / "datasets"))
    monkeypatch.setenv("HF_HUB_CACHE", str(cache / "hub"))


@pytest.fixture(scope="session")
def prov_dir(shared_data: Path) -> Path:
    """The C2PA fixtures of ../shared/data/provenance (signed, tampered, unsigned files and the CAI test key)."""
    folder = shared_data / "provenance"
    if not (folder / "C.jpg").is_file():
        pytest.skip(f"{folder} is absent")
    return folder
