"""Open the schedule's asset page in headless Chromium, open its chart and check the image is there.

    source scripts/env.sh && python scripts/ui_screenshot.py [--url http://127.0.0.1:3000] [--out schedule.png]

Needs a running webserver (`./scripts/ui`) whose instance holds a materialization of ev_charging_schedule (run
`./scripts/demo` first) and Debian's `chromium` (`apt-get install chromium`; not a project dependency). Chromium
is driven over its DevTools protocol (the `websockets` package the project already has): load the asset page,
click "Show Markdown" on the `horizon_chart` row, wait for the PNG, screenshot the page with the chart open.
Prints the image's size and exits 0 when it is shown, 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import itertools
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import websockets

OPEN_CHART = """(() => {
  const row = [...document.querySelectorAll('tr')].find(r => r.textContent.startsWith('horizon_chart'));
  if (!row) return 'no horizon_chart row yet';
  const button = [...row.querySelectorAll('button, a')].find(b => b.textContent.includes('Show Markdown'));
  if (!button) return 'no Show Markdown button on the row';
  button.click();
  return 'clicked';
})()"""
FIND_IMAGE = """(() => {
  const image = document.querySelector('img[src^="data:image/png;base64,"]');
  return image && image.complete && image.naturalWidth ? [image.naturalWidth, image.naturalHeight, image.alt] : null;
})()"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class DevTools:
    """One page of a Chromium, spoken to over the DevTools protocol."""

    def __init__(self, connection: Any) -> None:
        self.connection = connection
        self.ids = itertools.count(1)

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        message_id = next(self.ids)
        await self.connection.send(json.dumps({"id": message_id, "method": method, "params": params}))
        while True:
            answer = json.loads(await self.connection.recv())
            if answer.get("id") == message_id:
                if "error" in answer:
                    raise RuntimeError(f"DevTools {method}: {answer['error']}")
                return answer["result"]

    async def evaluate(self, expression: str) -> Any:
        result = await self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        return result["result"].get("value")

    async def until(self, expression: str, accept: Any, timeout: float, what: str) -> Any:
        deadline = time.monotonic() + timeout
        value = None
        while time.monotonic() < deadline:
            value = await self.evaluate(expression)
            if accept(value):
                return value
            await asyncio.sleep(0.5)
        raise TimeoutError(f"{what} within {timeout:.0f} s (last: {value!r})")


async def look(url: str, out: Path, timeout: float) -> tuple[int, int, str]:
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        raise SystemExit("chromium not found: apt-get install chromium")
    port = _free_port()
    with tempfile.TemporaryDirectory(ignore_cleanup_errors=True) as profile:  # chromium helpers may linger
        browser = subprocess.Popen(
            [chromium, "--headless", "--no-sandbox", "--disable-gpu", f"--remote-debugging-port={port}",
             f"--user-data-dir={profile}", "--window-size=1600,1400", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            target = None
            for _ in range(50):
                with contextlib.suppress(httpx.TransportError):
                    pages = httpx.get(f"http://127.0.0.1:{port}/json/list", timeout=2).json()
                    target = next((page for page in pages if page["type"] == "page"), None)
                if target:
                    break
                await asyncio.sleep(0.2)
            if target is None:
                raise RuntimeError("chromium did not open a page")
            async with websockets.connect(target["webSocketDebuggerUrl"], max_size=None) as connection:
                page = DevTools(connection)
                await page.call("Page.enable")
                await page.call("Page.navigate", url=f"{url.rstrip('/')}/assets/ev_charging_schedule")
                await page.until(OPEN_CHART, lambda value: value == "clicked", timeout, "the chart's button")
                width, height, alt = await page.until(FIND_IMAGE, bool, timeout, "the chart image")
                shot = await page.call("Page.captureScreenshot", format="png")
                out.write_bytes(base64.b64decode(shot["data"]))
                return width, height, alt
        finally:
            browser.terminate()
            browser.wait(timeout=10)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:3000", help="the running webserver")
    parser.add_argument("--out", type=Path, default=Path("schedule_asset_page.png"))
    parser.add_argument("--timeout", type=float, default=60.0)
    args = parser.parse_args()
    try:
        width, height, alt = asyncio.run(look(args.url, args.out, args.timeout))
    except (TimeoutError, RuntimeError) as error:
        print(f"the chart is not shown: {error}", file=sys.stderr)
        return 1
    print(f"chart shown: {width}x{height} px PNG ({alt}); screenshot {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
