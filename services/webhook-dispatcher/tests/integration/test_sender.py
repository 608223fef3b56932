"""One delivery attempt against real receivers on 127.0.0.1: verified by the standardwebhooks
verifier, each outcome classified, redirects not followed, the egress guard in the way."""
from __future__ import annotations

import asyncio
import base64
import os

import pytest
from aiohttp import web
from standardwebhooks import Webhook

from posint_common.egress import EgressPolicy, parse_networks
from webhook_dispatcher.adapters.sender import ATTEMPTS, Sender

SECRET = "whsec_" + base64.b64encode(os.urandom(32)).decode()
LOOPBACK = EgressPolicy(parse_networks("127.0.0.0/8"), allow_only=True)


@pytest.fixture
async def receiver():
    seen: dict[str, list] = {"verified": [], "hits": []}
    release = asyncio.Event()

    async def ok(request: web.Request) -> web.Response:
        body = await request.read()
        seen["verified"].append(Webhook(SECRET).verify(body, dict(request.headers)))
        return web.Response(text="thanks " + "x" * 2000)

    async def fail(request: web.Request) -> web.Response:
        return web.Response(status=500, text="boom")

    async def moved(request: web.Request) -> web.Response:
        raise web.HTTPFound("/target")

    async def target(request: web.Request) -> web.Response:
        seen["hits"].append("target")
        return web.Response(text="followed")

    async def hang(request: web.Request) -> web.Response:
        await release.wait()
        return web.Response()

    app = web.Application()
    for path, handler in (("/ok", ok), ("/fail", fail), ("/moved", moved), ("/target", target), ("/hang", hang)):
        app.router.add_route("*", path, handler)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}", seen
    release.set()
    await runner.cleanup()


@pytest.fixture
async def sender():
    sender = Sender(LOOPBACK, connect_timeout_s=1, total_timeout_s=15)
    yield sender
    await sender.close()


async def test_a_signed_message_verifies_with_the_standard_verifier(receiver, sender):
    base, seen = receiver
    before = ATTEMPTS.labels("success")._value.get()
    attempt = await sender.send(base + "/ok", SECRET, "msg_1", "webhook.test", {"webhook_id": 1})
    assert attempt.outcome == "success" and attempt.status_code == 200 and attempt.error is None
    assert seen["verified"] == [{"type": "webhook.test", "timestamp": seen["verified"][0]["timestamp"], "data": {"webhook_id": 1}}]
    assert len(attempt.response_body) == 1024 and ATTEMPTS.labels("success")._value.get() == before + 1


async def test_a_5xx_is_an_http_error(receiver, sender):
    base, _ = receiver
    attempt = await sender.send(base + "/fail", SECRET, "msg_2", "webhook.test", {})
    assert (attempt.outcome, attempt.status_code, attempt.response_body) == ("http_error", 500, "boom")


async def test_a_redirect_is_not_followed_and_counts_as_failure(receiver, sender):
    base, seen = receiver
    attempt = await sender.send(base + "/moved", SECRET, "msg_3", "webhook.test", {})
    assert attempt.outcome == "http_error" and attempt.status_code == 302 and seen["hits"] == []


async def test_a_hanging_receiver_is_a_bounded_timeout(receiver, sender):
    base, _ = receiver
    attempt = await sender.send(base + "/hang", SECRET, "msg_4", "webhook.test", {}, total_timeout_s=0.3)
    assert attempt.outcome == "timeout" and attempt.latency_ms < 2000


async def test_nobody_listening_is_a_connect_error(sender):
    attempt = await sender.send("http://127.0.0.1:9/", SECRET, "msg_5", "webhook.test", {})
    assert attempt.outcome == "connect_error" and attempt.status_code is None


async def test_a_blocked_address_is_refused_before_connect(receiver):
    base, seen = receiver
    guarded = Sender(EgressPolicy())  # no allow-list: loopback is blocked like any private address
    try:
        attempt = await guarded.send(base + "/ok", SECRET, "msg_6", "webhook.test", {})
    finally:
        await guarded.close()
    assert attempt.outcome == "ssrf_blocked" and seen["verified"] == []
    names = Sender(LOOPBACK)
    try:
        attempt = await names.send("https://hooks.example.com/x", SECRET, "msg_7", "webhook.test", {})
    finally:
        await names.close()
    assert attempt.outcome == "ssrf_blocked"  # allow-only: the name is refused before any lookup
