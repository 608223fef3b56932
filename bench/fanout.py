"""Issue 8's fan-out scenario: 100 webhook endpoints of one tenant on local receivers (80 healthy,
10 hanging past the attempt timeout, 10 answering 500), events published onto integrations.events
(``sync-completed``, which only the dispatcher turns into webhooks), and in the same run a raw
aiohttp client posting the same signed bodies to the same healthy receivers.

- Throughput: a burst of FANOUT_EVENTS events (default 50: 4,000 healthy deliveries); healthy
  deliveries per second from the first publish to the last healthy arrival, against the raw client's
  rate for the same number of posts at the dispatcher's concurrency (256).
- Latency: FANOUT_PACED_EVENTS events (default 40) at FANOUT_RATE per second (default 4, i.e. 320
  healthy deliveries/s) while the bad endpoints keep misbehaving (their retries included); p99 of
  event publish -> arrival at a healthy receiver (the body carries the publish time).
- Peak RSS of the dispatcher process, sampled every 100 ms through both phases.
- CPU (psutil) of the dispatcher, Postgres and Tansu per healthy delivery in the burst, and of the
  raw client per post (this process): stabler than req/s on a shared box; judge changes by it.

Attempt timeouts are the dispatcher's defaults (connect 5 s, 15 s); the hanging receivers answer
after 60 s. The receivers run in a process of their own (``python -m bench.fanout receivers PORT``),
so the bench's own client does not share their CPU. Endpoints are deleted at the end.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from datetime import datetime, timezone

import aiohttp
import asyncpg
import psutil
from aiohttp import web
from aiokafka import AIOKafkaProducer
from standardwebhooks import Webhook

from posint_common.contracts import integrations, topics
from posint_common.devstack.processes import free_port
from posint_common.envelope import Envelope

from bench import cpu

HEALTHY, HANGING, FAILING = 80, 10, 10
RAW_CONCURRENCY = 256  # the dispatcher's first-attempt lane (WEBHOOKS_MAX_IN_FLIGHT)
THROUGHPUT_GOAL, P99_GOAL_MS, RSS_GOAL_MB = 0.7, 250, 150
TIMEOUT = aiohttp.ClientTimeout(total=30)


def mark(ok: bool) -> str:
    return "met" if ok else "**missed**"


# --- the receivers (their own process) -----------------------------------------------------------


def receivers(port: int) -> None:
    stats = {"count": 0, "first": None, "last": None, "latencies_ms": [], "raw": 0}

    async def ok(request: web.Request) -> web.Response:
        body = await request.read()
        now = time.time()
        if request.headers.get("x-bench-raw"):
            stats["raw"] += 1
            return web.Response(status=204)
        published = json.loads(body)["data"].get("bench_published_at")
        stats["count"] += 1
        stats["first"] = stats["first"] or now
        stats["last"] = now
        if published:
            stats["latencies_ms"].append((now - published) * 1000)
        return web.Response(status=204)

    async def hang(request: web.Request) -> web.Response:
        await asyncio.sleep(60)
        return web.Response(status=204)

    async def fail(request: web.Request) -> web.Response:
        await request.read()
        return web.Response(status=500, text="failing on purpose")

    async def read(request: web.Request) -> web.Response:
        return web.json_response(stats)

    async def reset(request: web.Request) -> web.Response:
        stats.update(count=0, first=None, last=None, latencies_ms=[], raw=0)
        return web.Response(status=204)

    app = web.Application()
    app.router.add_post("/ok/{n}", ok)
    app.router.add_post("/hang/{n}", hang)
    app.router.add_post("/fail/{n}", fail)
    app.router.add_get("/stats", read)
    app.router.add_post("/reset", reset)
    web.run_app(app, host="127.0.0.1", port=port, print=None, access_log=None, shutdown_timeout=0.5)


# --- the scenario --------------------------------------------------------------------------------


async def setup(gateway_url: str, api_key: str, database_url: str, base: str) -> tuple[str, int, list[dict]]:
    """The key's tenant, an integration the dispatcher knows, and the 100 endpoints (with secrets)."""
    auth = {"Authorization": f"Bearer {api_key}"}
    conn = await asyncpg.connect(database_url)
    try:
        tenant_id = await conn.fetchval("SELECT tenant_id FROM gateway.api_keys WHERE key_hash = $1",
                                        hashlib.sha256(api_key.encode()).hexdigest())
        async with aiohttp.ClientSession(gateway_url, timeout=TIMEOUT) as api:
            body = {"name": "Fan-out bench", "integration_type": "delivery", "provider": "custom", "config": {}, "credentials": {}}
            async with api.post("/api/v1/integrations", json=body, headers=auth) as response:
                created = response.status == 201 and (await response.json())["data"]["id"]
            integration_id = created or await conn.fetchval(
                "SELECT id FROM webhook_dispatcher.known_integrations WHERE tenant_id = $1 AND NOT deleted ORDER BY id LIMIT 1",
                tenant_id)
            deadline = time.monotonic() + 30
            while not await conn.fetchval("SELECT true FROM webhook_dispatcher.known_integrations WHERE id = $1", integration_id):
                if time.monotonic() > deadline:
                    raise RuntimeError("the dispatcher did not learn the bench's integration")
                await asyncio.sleep(0.1)
            paths = [f"/ok/{n}" for n in range(HEALTHY)] + [f"/hang/{n}" for n in range(HANGING)] + \
                    [f"/fail/{n}" for n in range(FAILING)]
            endpoints = []
            for path in paths:
                body = {"integration_id": integration_id, "url": base + path, "events": ["integration.sync.completed"]}
                async with api.post("/api/v1/webhooks", json=body, headers=auth) as response:
                    if response.status != 201:
                        raise RuntimeError(f"POST /webhooks: {response.status} {await response.text()}")
                    endpoints.append({**(await response.json())["data"], "path": path})
    finally:
        await conn.close()
    return tenant_id, integration_id, endpoints


async def teardown(gateway_url: str, api_key: str, endpoints: list[dict]) -> None:
    auth = {"Authorization": f"Bearer {api_key}"}
    async with aiohttp.ClientSession(gateway_url, timeout=TIMEOUT) as api:
        for endpoint in endpoints:
            async with api.delete(f"/api/v1/webhooks/{endpoint['id']}", headers=auth):
                pass


def event(tenant_id: str, integration_id: int) -> Envelope:
    payload = {"integration_id": integration_id, "provider": "custom",
               "completed_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"), "bench_published_at": time.time()}
    return Envelope.model_validate({"source": "posint/bench", "type": integrations.SYNC_COMPLETED, "tenantid": tenant_id,
                                    "subject": f"bench/{uuid.uuid4().hex}", "data": payload})


async def publish(producer: AIOKafkaProducer, envelope: Envelope) -> None:
    await producer.send_and_wait(topics.INTEGRATIONS_EVENTS, envelope.value(), key=envelope.key, headers=envelope.headers())


async def stats(base: str) -> dict:
    async with aiohttp.ClientSession(timeout=TIMEOUT) as session:
        async with session.get(base + "/stats") as response:
            return await response.json()


async def reset(base: str) -> None:
    async with aiohttp.ClientSession(timeout=TIMEOUT) as session:
        async with session.post(base + "/reset"):
            pass


async def wait_for(base: str, count: int, timeout_s: float) -> dict:
    deadline = time.monotonic() + timeout_s
    while True:
        seen = await stats(base)
        if seen["count"] >= count or time.monotonic() > deadline:
            return seen
        await asyncio.sleep(0.1)


async def raw_client(base: str, healthy: list[dict], events: int) -> float:
    """The same signed bodies to the same healthy receivers, at the dispatcher's concurrency; posts/s."""
    jobs = asyncio.Queue()
    for _ in range(events):
        body = json.dumps({"type": "integration.sync.completed", "timestamp": "2026-01-04T18:00:00Z",
                           "data": {"integration_id": 1, "provider": "custom", "completed_at": "2026-01-04T18:00:00Z"}})
        for endpoint in healthy:
            jobs.put_nowait((endpoint, body))

    async def worker(session: aiohttp.ClientSession) -> None:
        while not jobs.empty():
            endpoint, body = jobs.get_nowait()
            message_id, at = f"msg_{uuid.uuid4().hex}", datetime.now(timezone.utc)
            headers = {"webhook-id": message_id, "webhook-timestamp": str(int(at.timestamp())),
                       "webhook-signature": Webhook(endpoint["secret"]).sign(message_id, at, body),
                       "content-type": "application/json", "x-bench-raw": "1"}
            async with session.post(base + endpoint["path"], data=body.encode(), headers=headers, allow_redirects=False) as response:
                await response.read()

    started = time.monotonic()
    connector = aiohttp.TCPConnector(limit=1000)
    async with aiohttp.ClientSession(connector=connector, timeout=TIMEOUT) as session:
        await asyncio.gather(*(worker(session) for _ in range(RAW_CONCURRENCY)))
    return events * len(healthy) / (time.monotonic() - started)


class RssSampler:
    def __init__(self, pid: int | None) -> None:
        self.pid, self.peak, self._task = pid, 0, None

    async def _run(self) -> None:
        process = psutil.Process(self.pid)
        while True:
            self.peak = max(self.peak, process.memory_info().rss)
            await asyncio.sleep(0.1)

    def start(self) -> None:
        if self.pid is not None:
            self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)


def _stack_pids(gateway_url: str, database_url: str) -> dict[int, str]:
    try:
        return cpu.stack_processes(gateway_url, database_url)
    except RuntimeError:
        return {}


def dispatcher_pid(gateway_url: str, database_url: str) -> int | None:
    found = _stack_pids(gateway_url, database_url)
    return next((pid for pid, kind in found.items() if kind == "webhook_dispatcher"), None)


async def scenario(gateway_url: str, api_key: str, database_url: str, kafka_bootstrap: str) -> str:
    events = int(os.environ.get("FANOUT_EVENTS", 50))
    paced, rate = int(os.environ.get("FANOUT_PACED_EVENTS", 40)), float(os.environ.get("FANOUT_RATE", 4))
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "bench.fanout", "receivers", str(port)], stdin=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)  # their shutdown cancels the hanging handlers noisily
    base = f"http://127.0.0.1:{port}"
    endpoints: list[dict] = []
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, linger_ms=0)
    sampler = RssSampler(dispatcher_pid(gateway_url, database_url))
    burst_cpu = cpu.Meter(lambda: _stack_pids(gateway_url, database_url))  # CPU per delivery: stable where req/s is not
    raw_cpu = cpu.Meter(lambda: {os.getpid(): "raw client"})
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                await stats(base)
                break
            except aiohttp.ClientError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.1)
        tenant_id, integration_id, endpoints = await setup(gateway_url, api_key, database_url, base)
        healthy = [endpoint for endpoint in endpoints if endpoint["path"].startswith("/ok/")]
        await producer.start()
        sampler.start()

        print(f"fanout: burst of {events} events to {len(endpoints)} endpoints ...", flush=True)
        burst_cpu.start()
        started = time.time()
        for _ in range(events):
            await publish(producer, event(tenant_id, integration_id))
        burst = await wait_for(base, events * HEALTHY, 300)
        burst_cpu.stop()
        dispatcher_rate = burst["count"] / (burst["last"] - started) if burst["last"] else 0.0

        print(f"fanout: raw client, {events * HEALTHY} posts ...", flush=True)
        raw_cpu.start()
        raw_rate = await raw_client(base, healthy, events)
        raw_cpu.stop()

        print(f"fanout: {paced} events at {rate:g}/s for latency ...", flush=True)
        await reset(base)
        for _ in range(paced):
            await publish(producer, event(tenant_id, integration_id))
            await asyncio.sleep(1 / rate)
        latency = await wait_for(base, paced * HEALTHY, 120)
    finally:
        await sampler.stop()
        await producer.stop()
        if endpoints:
            await teardown(gateway_url, api_key, endpoints)
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
    lat = sorted(latency["latencies_ms"])
    p50 = statistics.median(lat) if lat else float("nan")
    p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))] if lat else float("nan")
    ratio = dispatcher_rate / raw_rate if raw_rate else 0.0
    per_delivery = {kind: seconds * 1e6 / burst["count"] for kind, seconds in burst_cpu.seconds.items()} if burst["count"] else {}
    raw_us = raw_cpu.seconds.get("raw client", 0.0) * 1e6 / (events * HEALTHY)
    rss_mb = sampler.peak / 2**20 if sampler.peak else float("nan")
    return "\n".join([
        f"fan-out: {HEALTHY} healthy, {HANGING} hanging (60 s, past the 15 s timeout), {FAILING} answering 500 endpoints; "
        f"burst of {events} events, then {paced} at {rate:g}/s",
        "",
        "| measure | value |", "|---|---|",
        f"| healthy deliveries (burst) | {burst['count']} of {events * HEALTHY} |",
        f"| dispatcher healthy deliveries/s | {dispatcher_rate:.0f} |",
        f"| raw aiohttp client posts/s (c{RAW_CONCURRENCY}) | {raw_rate:.0f} |",
        f"| healthy event -> delivery p50 / p99 (paced) | {p50:.1f} / {p99:.1f} ms ({latency['count']} of {paced * HEALTHY}) |",
        f"| dispatcher peak RSS | {rss_mb:.0f} MB |",
        f"| dispatcher CPU per healthy delivery (burst) | {per_delivery.get('webhook_dispatcher', float('nan')):.0f} µs |",
        f"| Postgres / Tansu CPU per healthy delivery (burst) | {per_delivery.get('postgres', float('nan')):.0f} / "
        f"{per_delivery.get('tansu', float('nan')):.0f} µs |",
        f"| raw client CPU per post (the bench's process) | {raw_us:.0f} µs |",
        "",
        "| goal | measured | status |", "|---|---|---|",
        f"| deliveries/s >= {THROUGHPUT_GOAL}x raw client | {ratio:.2f}x | {mark(ratio >= THROUGHPUT_GOAL)} |",
        f"| healthy p99 < {P99_GOAL_MS} ms | {p99:.1f} ms | {mark(p99 < P99_GOAL_MS)} |",
        f"| dispatcher RSS < {RSS_GOAL_MB} MB | {rss_mb:.0f} MB | {mark(rss_mb < RSS_GOAL_MB)} |",
    ])


def run(info) -> str:
    if not info.kafka_bootstrap:
        return "fanout: skipped, the stack's broker is unknown (set BENCH_KAFKA_BOOTSTRAP_SERVERS)"
    return asyncio.run(scenario(info.gateway_url, info.api_key, info.database_url, info.kafka_bootstrap))


if __name__ == "__main__":
    if sys.argv[1:2] == ["receivers"]:
        receivers(int(sys.argv[2]))
