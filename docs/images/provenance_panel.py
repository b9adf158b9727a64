#!/usr/bin/env python
"""Remake ``docs/images/provenance_panel.png``: the Compare tab on a file whose C2PA manifest declares AI generation.

Signs ``../shared/data/provenance/A.jpg`` (a camera photo) offline with the CAI test certificate and a ``c2pa.created``
action declaring ``trainedAlgorithmicMedia``, serves the app with that file as its only example, opens
``?example=0`` in headless Debian chromium (driven over DevTools as in ``tests/test_app_browser.py``) and saves the
top of the page. Run from the repository root::

    HUBDET_DETECTORS="classifier=defaults/classifier,sahu65=defaults/sahu65" HF_HUB_OFFLINE=1 \\
        python docs/images/provenance_panel.py
"""

from __future__ import annotations

import asyncio
import base64
import io
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
SHARED = ROOT.parent / "shared" / "data" / "provenance"
OUT = Path(__file__).resolve().parent / "provenance_panel.png"
DST = "http://cv.iptc.org/newscodes/digitalsourcetype/"


def sign_generated(folder: Path) -> Path:
    import c2pa

    manifest = {"claim_generator_info": [{"name": "ExampleImageGen", "version": "3.1"}],
                "assertions": [{"label": "c2pa.actions", "data": {"actions": [
                    {"action": "c2pa.created", "digitalSourceType": DST + "trainedAlgorithmicMedia",
                     "softwareAgent": {"name": "ExampleDiffusion", "version": "2"}}]}}]}
    signer = c2pa.Signer.from_info(c2pa.C2paSignerInfo(
        alg=b"es256", sign_cert=(SHARED / "es256_certs.pem").read_bytes(),
        private_key=(SHARED / "es256_private.key").read_bytes(), ta_url=None))
    out = io.BytesIO()
    with c2pa.Builder(manifest) as builder:
        builder.sign(signer, "image/jpeg", io.BytesIO((SHARED / "A.jpg").read_bytes()), out)
    path = folder / "generated.jpg"
    path.write_bytes(out.getvalue())
    return path


async def capture(url: str, port: int, n_columns: int, timeout: float = 600) -> bytes:
    import aiohttp

    from tests.test_app_browser import DevTools

    async with aiohttp.ClientSession() as session:
        for _ in range(150):
            try:
                async with session.get(f"http://127.0.0.1:{port}/json/list") as resp:
                    pages = [t for t in await resp.json() if t["type"] == "page"]
                if pages:
                    break
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)
        async with session.ws_connect(pages[0]["webSocketDebuggerUrl"], max_msg_size=0) as ws:
            tools = DevTools(ws)
            await tools.call("Page.enable")
            await tools.call("Page.navigate", url=url)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                text = await tools.evaluate("document.body ? document.body.innerText : ''") or ""
                if "Provenance:" in text and text.count("fake probability") >= n_columns:
                    break
                await asyncio.sleep(1.0)
            else:
                raise TimeoutError("the comparison did not render")
            await asyncio.sleep(2.0)
            shot = await tools.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)
            return base64.b64decode(shot["data"])


def main() -> None:
    from hubdet.app.config import load_detector_specs
    from hubdet.app.limits import AppLimits
    from hubdet.app.pool import MAX_SIDES
    from hubdet.app.ui import build_demo
    from tests.test_app_browser import CHROMIUM, FLAGS
    from tests.test_app_server import free_port

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        example = sign_generated(folder)
        specs = load_detector_specs()
        demo = build_demo(specs, examples=[str(example)], leaderboard_dir=folder, limits=AppLimits(rate_limit=0))
        port = free_port()
        demo.launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, quiet=True)
        profile = folder / "profile"
        proc = subprocess.Popen([str(CHROMIUM), *FLAGS, f"--user-data-dir={profile}", "--remote-debugging-port=0",
                                 "about:blank"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            port_file = profile / "DevToolsActivePort"
            while not port_file.is_file() or not port_file.read_text().strip():
                time.sleep(0.2)
            devtools = int(port_file.read_text().split()[0])
            png = asyncio.run(capture(f"http://127.0.0.1:{port}/?example=0", devtools,
                                      min(len(specs), MAX_SIDES)))
        finally:
            proc.terminate()
            proc.wait(timeout=10)
            demo.close()
            shutil.rmtree(profile, ignore_errors=True)
    page = Image.open(io.BytesIO(png)).convert("RGB")
    top = page.crop((0, 0, page.width, min(page.height, 1500)))
    top = top.resize((top.width * 3 // 4, top.height * 3 // 4), Image.Resampling.LANCZOS)
    top.quantize(colors=128, method=Image.Quantize.MEDIANCUT).save(OUT, optimize=True)
    print(f"wrote {OUT} ({OUT.stat().st_size // 1024} KB, {top.width}x{top.height})")


if __name__ == "__main__":
    main()
