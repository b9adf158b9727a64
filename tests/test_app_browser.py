"""A real browser renders a comparison: headless Debian chromium, driven over the DevTools protocol.

Chromium's ``--dump-dom``/``--screenshot`` flags alone do not wait for Gradio's client-side rendering (the queue
streams results and ``--virtual-time-budget`` runs ahead of it), so the test starts chromium with
``--remote-debugging-port`` and polls the page through the DevTools websocket (aiohttp, already installed) until
the detectors' columns are rendered, then takes the DOM dump and a screenshot. The page is opened with
``?example=0``, which makes the app compare its first example image on load.

Install the browser with ``apt-get install -y chromium`` (Debian); without ``/usr/bin/chromium`` the test skips.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from tests.test_app_server import NAMES, launch_app

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--window-size=1280,1600"]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="needs Debian chromium (/usr/bin/chromium)"),
]


class DevTools:
    """The few DevTools calls the test needs, over one page websocket."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.next_id = 0

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        await self.ws.send_str(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            msg = json.loads((await self.ws.receive()).data)
            if msg.get("id") == self.next_id:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg["result"]

    async def evaluate(self, expression: str) -> Any:
        result = await self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result["result"].get("value")


async def render(url: str, port: int, timeout: float) -> tuple[str, str, bytes]:
    """Open ``url`` in the browser on DevTools ``port``; wait for the columns; return (text, DOM, PNG)."""
    import aiohttp

    async with aiohttp.ClientSession() as session:
        deadline = time.monotonic() + 30
        while True:
            try:
                async with session.get(f"http://127.0.0.1:{port}/json/list") as resp:
                    pages = [t for t in await resp.json() if t["type"] == "page"]
                if pages:
                    break
            except aiohttp.ClientError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError("chromium did not open its DevTools port")
            await asyncio.sleep(0.2)
        async with session.ws_connect(pages[0]["webSocketDebuggerUrl"], max_msg_size=0) as ws:
            tools = DevTools(ws)
            await tools.call("Page.enable")
            await tools.call("Page.navigate", url=url)
            deadline = time.monotonic() + timeout
            text = ""
            while time.monotonic() < deadline:
                text = await tools.evaluate("document.body ? document.body.innerText : ''") or ""
                if text.count("fake probability") >= len(NAMES):
                    break
                await asyncio.sleep(0.5)
            await asyncio.sleep(1.0)  # let the images in the columns paint
            dom = await tools.evaluate("document.documentElement.outerHTML")
            shot = await tools.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
            return text, dom, base64.b64decode(shot["data"])


@pytest.fixture(scope="module")
def app_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    demo, url, _pool = launch_app(tmp_path_factory.mktemp("app_browser"))
    try:
        yield url
    finally:
        demo.close()


def test_browser_renders_a_comparison(app_url: str, tmp_path: Path) -> None:
    pytest.importorskip("aiohttp")
    profile = tmp_path / "profile"
    proc = subprocess.Popen([str(CHROMIUM), *FLAGS, f"--user-data-dir={profile}", "--remote-debugging-port=0",
                             "about:blank"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not port_file.is_file() or not port_file.read_text().strip():
            if time.monotonic() > deadline or proc.poll() is not None:
                pytest.fail("chromium did not start")
            time.sleep(0.2)
        port = int(port_file.read_text().split()[0])
        text, dom, png = asyncio.run(render(app_url + "?example=0", port, timeout=90))
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(profile, ignore_errors=True)
    (tmp_path / "page.png").write_bytes(png)
    (tmp_path / "page.html").write_text(dom)
    # the comparison rendered one column per detector, with its verdict
    assert text.count("fake probability") == len(NAMES), text[:2000]
    for name in NAMES:
        assert re.search(rf"<h3[^>]*>\s*{name}\s*</h3>", dom), f"no column heading for {name}"
    assert re.search(r"(agree|disagree)", text)
    # the provenance panel sits above the columns, with what the file itself declares
    assert "Provenance: " in text and text.index("Provenance: ") < text.index("fake probability")
    # the screenshot is a page, not a blank canvas
    pixels = np.asarray(Image.open(io.BytesIO(png)).convert("L"), dtype=np.float32)
    assert pixels.shape[1] >= 1000 and pixels.std() > 10.0
