"""GET /api/v1/docs in a real headless Chromium, driven over the DevTools protocol (aiohttp's
websocket client, no browser package): the page loads from the gateway alone, without console
errors, and shows every operation's summary from openapi.json and the bearer "Authorize" button."""
from __future__ import annotations

import asyncio
import itertools
import json
from pathlib import Path

import aiohttp
import pytest

from posint_common.testing import eventually, required_tool

# Nothing may leave 127.0.0.1: every other host name fails to resolve, and background traffic is off.
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-extensions", "--remote-debugging-port=0",
         "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1")
SUMMARIES_JS = "JSON.stringify([...document.querySelectorAll('.opblock-summary-description')].map(e => e.textContent.trim()))"


def chromium_or_skip() -> str:
    return required_tool("chromium", ".ci/run installs it: apt-get install -y chromium")


class DevTools:
    """A page session over the DevTools protocol: commands with their answers, events kept in order."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws, self.ids, self.waiting, self.events = ws, itertools.count(1), {}, []
        self.session_id: str | None = None
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for message in self.ws:
            data = json.loads(message.data)
            if "id" in data:
                self.waiting.pop(data["id"]).set_result(data)
            else:
                self.events.append(data)

    async def send(self, method: str, **params) -> dict:
        id_ = next(self.ids)
        self.waiting[id_] = answer = asyncio.get_running_loop().create_future()
        await self.ws.send_json({"id": id_, "method": method, "params": params}
                                | ({"sessionId": self.session_id} if self.session_id else {}))
        data = await asyncio.wait_for(answer, 15)
        assert "error" not in data, f"{method}: {data['error']}"
        return data["result"]

    def errors(self) -> list[str]:
        found = []
        for event in self.events:
            method, params = event["method"], event.get("params", {})
            if method == "Runtime.consoleAPICalled" and params["type"] in ("error", "assert"):
                found.append(f"console.{params['type']}: {[arg.get('value', arg.get('description')) for arg in params['args']]}")
            elif method == "Runtime.exceptionThrown":
                found.append(f"exception: {params['exceptionDetails'].get('exception', {}).get('description')}")
            elif method == "Log.entryAdded" and params["entry"]["level"] == "error":
                found.append(f"log: {params['entry']['text']} {params['entry'].get('url', '')}")
        return found

    def requested(self) -> list[str]:
        return [event["params"]["request"]["url"] for event in self.events if event["method"] == "Network.requestWillBeSent"]


@pytest.fixture
async def browser(tmp_path: Path):
    chromium = chromium_or_skip()
    process = await asyncio.create_subprocess_exec(
        chromium, *FLAGS, f"--user-data-dir={tmp_path}", "about:blank",
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )
    port_file = tmp_path / "DevToolsActivePort"  # Chromium writes its port and browser path there
    try:
        await eventually(lambda: port_file.exists() and len(port_file.read_text().splitlines()) == 2, 30, "Chromium's DevTools port")
        port, path = port_file.read_text().splitlines()
        async with aiohttp.ClientSession() as http, http.ws_connect(f"ws://127.0.0.1:{port}{path}", max_msg_size=0) as ws:
            tools = DevTools(ws)
            target = await tools.send("Target.createTarget", url="about:blank")
            tools.session_id = (await tools.send("Target.attachToTarget", targetId=target["targetId"], flatten=True))["sessionId"]
            for domain in ("Runtime", "Log", "Network", "Page"):
                await tools.send(f"{domain}.enable")
            yield tools
            tools.reader.cancel()
    finally:
        process.terminate()
        try:
            await asyncio.wait_for(process.wait(), 10)
        except TimeoutError:
            process.kill()
            await process.wait()


async def test_docs_page_shows_every_summary_without_console_errors(api, browser, gateway_service):
    base = f"http://127.0.0.1:{gateway_service.ports['http']}"
    async with api.get("/api/v1/openapi.json") as response:
        document = await response.json()
    summaries = {operation["summary"] for item in document["paths"].values() for operation in item.values()}

    await browser.send("Page.navigate", url=base + "/api/v1/docs")
    shown: set[str] = set()

    async def all_shown() -> bool:
        result = await browser.send("Runtime.evaluate", expression=SUMMARIES_JS, returnByValue=True)
        shown.update(json.loads(result["result"].get("value") or "[]"))
        return summaries <= shown or bool(browser.errors())

    await eventually(all_shown, 30, "every summary on the page")
    assert browser.errors() == []
    assert summaries <= shown, f"not on the page: {sorted(summaries - shown)}"
    authorize = await browser.send("Runtime.evaluate", expression="!!document.querySelector('.auth-wrapper .authorize')", returnByValue=True)
    assert authorize["result"]["value"], "no Authorize button for the bearer scheme"
    outside = [url for url in browser.requested() if not url.startswith(base + "/")]
    assert outside == [], "the page loads only from the gateway"


async def test_docs_page_and_assets_need_no_key_and_unknown_asset_is_problem(api):
    for path in ("/api/v1/docs", "/api/v1/docs/assets/swagger-ui-bundle.js", "/api/v1/docs/assets/init.js"):
        async with api.get(path) as response:
            assert response.status == 200, path
            assert "default-src 'none'" in response.headers["Content-Security-Policy"]
    async with api.head("/api/v1/docs/assets/swagger-ui.css") as response:
        assert (response.status, response.content_type) == (200, "text/css")
    async with api.get("/api/v1/docs/assets/swagger-initializer.js") as response:  # in the wheel, not served
        assert (response.status, response.content_type) == (404, "application/problem+json")
