"""Delivery workers against real receivers on 127.0.0.1 and the session's Postgres, each test in a
schema of its own (so no other dispatcher of the session takes its messages): signed messages
verified by the standardwebhooks verifier, retries on a compressed schedule, 410, redirects,
Retry-After, isolation of a hanging receiver, a worker killed mid-delivery, rotation, recovery, and
the SSRF guard refusing before any connect."""
from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field

import pytest
from aiohttp import web
from aiohttp.abc import AbstractResolver
from standardwebhooks import Webhook

from posint_common import db
from posint_common.egress import EgressPolicy, parse_networks
from posint_common.envelope import utcnow
from posint_common.testing import eventually
from posint_common.vault import new_key_entry
from webhook_dispatcher.adapters import messages
from webhook_dispatcher.adapters.repository import EndpointRepository
from webhook_dispatcher.adapters.sender import Sender, message
from webhook_dispatcher.adapters.vault import KeyRing, associated_data
from webhook_dispatcher.domain.model import new_secret
from webhook_dispatcher.domain.retry import RetryPolicy
from webhook_dispatcher.seed import seed_endpoint
from webhook_dispatcher.service_layer.delivery import DISABLED, OLDEST_PENDING, PENDING, Deliverer
from webhook_dispatcher.service_layer.fanout import record_for_endpoints

KEYS = KeyRing.parse(new_key_entry("t1"))
LOOPBACK = EgressPolicy(parse_networks("127.0.0.0/8"), allow_only=True)
TENANT = "tenant-delivery"


@dataclass
class Receiver:
    """An aiohttp receiver: per path a script of answers (the last one repeats), every request kept."""

    base: str = ""
    scripts: dict[str, list] = field(default_factory=dict)
    hits: dict[str, list] = field(default_factory=lambda: defaultdict(list))
    release: asyncio.Event = field(default_factory=asyncio.Event)
    ends: dict[str, list] = field(default_factory=lambda: defaultdict(list))

    def url(self, path: str) -> str:
        return self.base + path

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.hits[request.path].append((time.monotonic(), dict(request.headers), body))
        script = self.scripts.get(request.path, [200])
        answer = script.pop(0) if len(script) > 1 else script[0]
        if answer == "hang":
            await self.release.wait()
            return web.Response(status=200)
        if answer == "slow":
            await asyncio.sleep(0.05)
            self.ends[request.path].append(time.monotonic())
            return web.Response(status=200)
        if isinstance(answer, tuple):
            return web.Response(status=answer[0], headers=answer[1])
        if answer == 302:
            raise web.HTTPFound("/target")
        return web.Response(status=answer, text=f"answer {answer}")


@pytest.fixture
async def receiver():
    made = Receiver()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", made.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    made.base = f"http://127.0.0.1:{runner.addresses[0][1]}"
    yield made
    made.release.set()
    await runner.cleanup()


def deliverer(pool, infra, *, schedule=(0.1, 0.1, 0.1), timeout_s=2.0, per_endpoint=4, lease_s=30.0,
              sender: Sender | None = None, disable_after_s=3600.0) -> Deliverer:
    return Deliverer(pool=pool, dsn=infra.database_url, keys=KEYS,
                     sender=sender or Sender(LOOPBACK, connect_timeout_s=1, total_timeout_s=timeout_s),
                     policy=RetryPolicy(schedule, 0.2, 3600, disable_after_s), per_endpoint=per_endpoint,
                     poll_interval_s=0.05, lease_s=lease_s)


@pytest.fixture
async def running(pool, infra):
    started: list[Deliverer] = []

    async def start(**options) -> Deliverer:
        made = deliverer(pool, infra, **options)
        await made.start()
        started.append(made)
        return made

    yield start
    for made in started:
        async with asyncio.timeout(10):  # a stop that hangs is a bug: fail, do not hang the session
            await made.stop()
        await made.sender.close()


async def endpoint(pool, url: str, events=("order.created",), integration_id: int = 7) -> tuple[int, str]:
    return await seed_endpoint(pool, KEYS, TENANT, integration_id, "custom", url, list(events))


async def publish(pool, name: str = "order.created", data: dict | None = None, order_key: str | None = None,
                  integration_id: int = 7) -> str:
    """What the fan-out records for one event; returns the event's key."""
    key = f"posint/test/{uuid.uuid4().hex}"
    body = message(name, data or {"id": 1, "status": "received"}, utcnow())
    async with pool.acquire() as conn, conn.transaction():
        await record_for_endpoints(conn, TENANT, integration_id, name, key, order_key, body)
    return key


async def statuses(pool) -> dict[str, str]:
    return {row["message_id"]: row["status"] for row in await pool.fetch("SELECT message_id, status FROM messages")}


def verified(secret: str, hit) -> dict:
    _at, headers, body = hit
    return Webhook(secret).verify(body, headers)


async def test_retries_until_success_with_one_webhook_id_each_attempt_verified(pool, receiver, running):
    endpoint_id, secret = await endpoint(pool, receiver.url("/flaky"))
    receiver.scripts["/flaky"] = [500, 500, 200]
    await publish(pool, data={"id": 42, "status": "received"})
    await running()
    await eventually(lambda: len(receiver.hits["/flaky"]) == 3, 15, "three attempts")
    hits = receiver.hits["/flaky"]
    assert len({headers["webhook-id"] for _at, headers, _body in hits}) == 1
    assert all(verified(secret, hit)["data"] == {"id": 42, "status": "received"} for hit in hits)
    async def delivered() -> bool:
        return list((await statuses(pool)).values()) == ["delivered"]

    await eventually(delivered, 5, "the message marked delivered")
    logged = await pool.fetch("SELECT attempt, outcome, status_code FROM attempts ORDER BY id")
    assert [tuple(row) for row in logged] == [(1, "http_error", 500), (2, "http_error", 500), (3, "success", 200)]
    assert await pool.fetchval("SELECT failing_since FROM endpoints WHERE id = $1", endpoint_id) is None


async def test_gives_up_after_the_schedule(pool, receiver, running):
    await endpoint(pool, receiver.url("/down"))
    receiver.scripts["/down"] = [500]
    await publish(pool)
    await running(schedule=(0.05, 0.05))

    async def failed() -> bool:
        return list((await statuses(pool)).values()) == ["failed"]

    await eventually(failed, 10, "the message given up")
    assert len(receiver.hits["/down"]) == 3  # the first attempt and two retries


async def test_410_disables_at_once_and_tells_the_other_endpoints(pool, receiver, running):
    gone_id, _ = await endpoint(pool, receiver.url("/gone"))
    _, watcher_secret = await endpoint(pool, receiver.url("/watcher"), events=("webhook.disabled",))
    receiver.scripts["/gone"] = [410]
    await publish(pool)
    await running()
    await eventually(lambda: len(receiver.hits["/watcher"]) == 1, 10, "webhook.disabled at the other endpoint")
    told = verified(watcher_secret, receiver.hits["/watcher"][0])
    assert told["type"] == "webhook.disabled" and told["data"]["webhook_id"] == gone_id
    row = await pool.fetchrow("SELECT is_active, disabled_reason FROM endpoints WHERE id = $1", gone_id)
    assert row["is_active"] is False and "410" in row["disabled_reason"]
    assert len(receiver.hits["/gone"]) == 1  # never retried
    await publish(pool)  # nothing more is recorded for a disabled endpoint
    await asyncio.sleep(0)
    assert await pool.fetchval("SELECT count(*) FROM messages WHERE endpoint_id = $1", gone_id) == 1


async def test_failing_too_long_disables(pool, receiver, running):
    failing_id, _ = await endpoint(pool, receiver.url("/failing"))
    receiver.scripts["/failing"] = [500]
    await running(schedule=(0.05,) * 20, disable_after_s=0.3)
    await publish(pool)

    async def disabled() -> bool:
        return not await pool.fetchval("SELECT is_active FROM endpoints WHERE id = $1", failing_id)

    await eventually(disabled, 10, "the endpoint disabled")
    assert "failed since" in await pool.fetchval("SELECT disabled_reason FROM endpoints WHERE id = $1", failing_id)


async def test_a_redirect_is_not_followed(pool, receiver, running):
    await endpoint(pool, receiver.url("/moved"))
    receiver.scripts["/moved"] = [302]
    await publish(pool)
    await running(schedule=(0.05,))

    async def failed() -> bool:
        return list((await statuses(pool)).values()) == ["failed"]

    await eventually(failed, 10)
    assert receiver.hits["/target"] == [] and len(receiver.hits["/moved"]) == 2
    assert {row["status_code"] for row in await pool.fetch("SELECT status_code FROM attempts")} == {302}


async def test_retry_after_is_honoured(pool, receiver, running):
    await endpoint(pool, receiver.url("/busy"))
    receiver.scripts["/busy"] = [(503, {"Retry-After": "1"}), 200]
    await publish(pool)
    await running(schedule=(30,))  # without the header the retry would wait 30 s
    await eventually(lambda: len(receiver.hits["/busy"]) == 2, 10, "the retry after Retry-After")
    waited = receiver.hits["/busy"][1][0] - receiver.hits["/busy"][0][0]
    assert 0.9 <= waited < 3


async def test_a_hanging_receiver_does_not_delay_a_healthy_one(pool, receiver, running):
    await endpoint(pool, receiver.url("/hang"), integration_id=8)
    await endpoint(pool, receiver.url("/healthy"), integration_id=9)
    receiver.scripts["/hang"] = ["hang"]
    for _ in range(20):
        await publish(pool, integration_id=8)
    await running(timeout_s=10, per_endpoint=2)
    await eventually(lambda: len(receiver.hits["/hang"]) == 2, 10, "the hanging endpoint to hold its two slots")
    published = time.monotonic()
    await publish(pool, integration_id=9)
    await eventually(lambda: len(receiver.hits["/healthy"]) == 1, 5, "the healthy delivery")
    assert receiver.hits["/healthy"][0][0] - published < 0.5
    assert len(receiver.hits["/hang"]) == 2  # its cap held


async def test_one_orders_messages_arrive_in_order(pool, receiver, running):
    await endpoint(pool, receiver.url("/ordered"), events=("order.created", "order.accepted", "order.ready"))
    names = ["order.created", "order.accepted", "order.ready"] * 5
    for index, name in enumerate(names):
        await publish(pool, name, data={"id": 5, "n": index}, order_key="5")
    receiver.scripts["/ordered"] = ["slow"]
    await running()  # up to 4 attempts in flight per endpoint, but one order's go one after the other
    await eventually(lambda: len(receiver.ends["/ordered"]) == len(names), 10)
    hits = receiver.hits["/ordered"]
    assert [json.loads(body)["data"]["n"] for _at, _headers, body in hits] == list(range(len(names)))
    assert all(start >= end for (start, _h, _b), end in zip(hits[1:], receiver.ends["/ordered"]))


async def test_killed_mid_delivery_every_message_arrives_once_per_webhook_id(pool, receiver, running, infra):
    await endpoint(pool, receiver.url("/dedup"))
    receiver.scripts["/dedup"] = ["hang", "hang", 200]
    for _ in range(6):
        await publish(pool)
    expected = set(await statuses(pool))
    own_pool = await db.create_pool(infra.database_url, await pool.fetchval("SELECT current_schema()"), max_size=4)
    doomed = deliverer(own_pool, infra, lease_s=1.0)
    await doomed.start()
    await eventually(lambda: len(receiver.hits["/dedup"]) >= 2, 10, "two attempts under way")
    # killed: its tasks stop where they are and its connections drop, nothing is recorded
    for task in [*doomed.tasks, *(t for lane in doomed.lanes for t in lane.tasks)]:
        task.cancel()
    own_pool.terminate()
    await doomed.sender.close()
    await running(lease_s=1.0)

    async def all_delivered() -> bool:
        return set((await statuses(pool)).values()) == {"delivered"}

    await eventually(all_delivered, 15, "every message delivered after the restart")
    seen = [headers["webhook-id"] for _at, headers, _body in receiver.hits["/dedup"]]
    assert set(seen) == expected and len(seen) >= len(expected)  # the receiver, deduplicating, sees each once


async def test_rotation_signs_with_both_secrets(pool, receiver, running):
    endpoint_id, old_secret = await endpoint(pool, receiver.url("/rotated"))
    new = new_secret()
    async with pool.acquire() as conn, conn.transaction():
        await EndpointRepository(conn, TENANT).rotate(endpoint_id, KEYS.seal(new.encode(), associated_data(TENANT, endpoint_id)), 60)
    await publish(pool)
    await running()
    await eventually(lambda: len(receiver.hits["/rotated"]) == 1, 10)
    hit = receiver.hits["/rotated"][0]
    assert len(hit[1]["webhook-signature"].split(" ")) == 2
    assert verified(new, hit) == verified(old_secret, hit)


async def test_recover_resends_exactly_the_failed_ones(pool, receiver, running):
    endpoint_id, _ = await endpoint(pool, receiver.url("/recover"))
    receiver.scripts["/recover"] = [200, 200, 500]
    since = utcnow()
    for _ in range(5):
        await publish(pool, order_key="same")  # one order: sent one after the other
    await running(schedule=())

    async def settled() -> bool:
        return "pending" not in (await statuses(pool)).values()

    await eventually(settled, 10)
    before = await statuses(pool)
    failed = {message_id for message_id, status in before.items() if status == "failed"}
    assert len(failed) == 3
    receiver.scripts["/recover"] = [200]
    receiver.hits.clear()
    async with pool.acquire() as conn, conn.transaction():
        job = await messages.open_recovery(conn, endpoint_id, since)
    assert job["messages"] == 3

    async def all_delivered() -> bool:
        return set((await statuses(pool)).values()) == {"delivered"}

    await eventually(all_delivered, 10)
    assert {headers["webhook-id"] for _at, headers, _body in receiver.hits["/recover"]} == failed
    assert len(receiver.hits["/recover"]) == 3


async def test_recover_works_in_batches(pool, receiver, running, monkeypatch):
    endpoint_id, _ = await endpoint(pool, receiver.url("/many"))
    receiver.scripts["/many"] = [500]
    since = utcnow()
    for _ in range(7):
        await publish(pool)
    await running(schedule=())

    async def all_failed() -> bool:
        return set((await statuses(pool)).values()) == {"failed"}

    await eventually(all_failed, 10)
    receiver.scripts["/many"] = [200]
    monkeypatch.setattr("webhook_dispatcher.service_layer.delivery.RECOVER_BATCH", 2)
    async with pool.acquire() as conn, conn.transaction():
        await messages.open_recovery(conn, endpoint_id, since)

    async def all_delivered() -> bool:
        return set((await statuses(pool)).values()) == {"delivered"}

    await eventually(all_delivered, 10)
    assert await pool.fetchval("SELECT after FROM recoveries") == await pool.fetchval("SELECT max(id) FROM messages")


class Resolver(AbstractResolver):
    """The only resolver the guarded session asks: no real lookup happens."""

    def __init__(self, address: str) -> None:
        self.address, self.asked = address, []

    async def resolve(self, host: str, port: int = 0, family=0):
        self.asked.append(host)
        return [{"hostname": host, "host": self.address, "port": port, "family": 2, "proto": 0, "flags": 0}]

    async def close(self) -> None:
        pass


@pytest.mark.parametrize("address", ["10.1.2.3", "169.254.169.254", "127.0.0.1"])
async def test_a_name_resolving_to_a_blocked_address_is_refused_before_connect(pool, running, address):
    resolver = Resolver(address)
    guarded = Sender(EgressPolicy(), connect_timeout_s=1, total_timeout_s=2, resolver=resolver)  # nothing allowed beyond public
    await endpoint(pool, "https://hooks.example.test/in")
    await publish(pool)
    await running(schedule=(), sender=guarded)

    async def logged() -> bool:
        return await pool.fetchval("SELECT outcome FROM attempts") == "ssrf_blocked"

    await eventually(logged, 10, "the refused attempt logged")
    assert resolver.asked == ["hooks.example.test"]


async def test_backlog_metrics(pool, receiver, infra):
    await endpoint(pool, receiver.url("/later"))
    await publish(pool)
    made = deliverer(pool, infra)
    await made.measure()
    assert PENDING._value.get() == 1 and OLDEST_PENDING._value.get() >= 0 and DISABLED._value.get() == 0
    await made.sender.close()
