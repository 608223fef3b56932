"""Issue 6's ingest scenario: signed ``custom`` inbound orders at a fixed offered rate, stepped up.

Open loop: each order has its send time fixed in advance (``t0 + i / rate``) and its latency is
counted from that time, so a slow answer does not slow the next sends (no coordinated omission).
Bounded: at most ``INGEST_MAX_IN_FLIGHT`` requests outstanding; an order that finds no room is not
sent and counts as an error, like a refused or failed one. Bodies and Standard Webhooks signatures
(the ``standardwebhooks`` package, as the README's worked example) are made before each step, so the
load generator spends the step sending. Loopback only.

"Visible" is the first time a poller (``GET /api/v1/external-orders?integration_id=...``, newest
first, pages followed until a known order) sees the order; inbound -> visible counts from the
order's send time, so it includes up to one poll period (``INGEST_POLL_MS`` plus a list's own time).

Env: INGEST_RATES (orders/s per step, comma list, default 5,10,20,40,80,160,320), INGEST_STEP_S
(default 30), INGEST_MAX_IN_FLIGHT (default 256), INGEST_POLL_MS (default 25), INGEST_DRAIN_S (how
long to wait for the last orders to become visible, default 15), INGEST_INTEGRATIONS (custom integrations,
one per new tenant the bench makes, the orders spread round-robin: inbound commands are keyed by integration id, so one
integration is one partition; default 1), INGEST_PROFILE_S (when > 0 and a step
missed the 202 goal: that rate once more with py-spy recording the stack's processes for this many
seconds, raw stacks in /tmp/bench-ingest-profiles/; py-spy from PATH or PY_SPY; default 0).
"""
from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone

import aiohttp
from standardwebhooks import Webhook

from bench import cpu, load, stages

ACCEPT_P99_MS = 100  # goal: highest rate with 202 p99 under this and no errors ...
READ_SHARE_GOAL = 0.6  # ... at least this share of the read path's c32 throughput
VISIBLE_P99_MS = 250  # goal: inbound -> visible p99 at half that rate
STOP_AFTER_P99_MS = 1000  # a step this bad ends the stepping (higher rates only cost time)
TIMEOUT = aiohttp.ClientTimeout(total=10)
READ_PATH = "/api/v1/integrations"
POLL_PAGE = 20  # small pages: the poller's own load on the orders service stays small (100 per page, every 20 ms,
# was ~17% of the orders process in a py-spy profile at 25 orders/s)


# Where an order's time goes, from the services' own histograms (mean ms per stage over a step's send
# window; the gateway.replies hop and the orders consumer also carry the poller's list queries).
STAGES = (
    ("gateway: inbound request, end to end", "GATEWAY_HEALTH_URL", "posint_http_request_seconds",
     'route="/api/v1/integrations/{id}/inbound"'),
    ("hop: gateway -> integrations.commands", "INTEGRATIONS_HEALTH_URL", "posint_record_lag_seconds",
     'consumer="integrations.commands"'),
    ("integrations: inbound command handled (one transaction)", "INTEGRATIONS_HEALTH_URL", "posint_handler_seconds",
     'consumer="integrations.commands"'),
    ("hop: reply (via outbox relay) -> gateway", "GATEWAY_HEALTH_URL", "posint_record_lag_seconds", 'consumer="gateway.replies"'),
    ("hop: order-received (via outbox relay) -> orders", "ORDERS_HEALTH_URL", "posint_record_lag_seconds",
     'consumer="orders.events"'),
    ("orders: order-received handled", "ORDERS_HEALTH_URL", "posint_handler_seconds", 'consumer="orders.events"'),
)


def stage_sums(urls: dict[str, str]) -> dict[str, tuple[float, float]]:
    """(sum, count) per stage; stages whose service is unknown are left out."""
    import urllib.request

    sums = {}
    for name, env, metric, label in STAGES:
        if env not in urls:
            continue
        with urllib.request.urlopen(urls[env] + "/metrics", timeout=5) as response:  # loopback health port
            lines = [line for line in response.read().decode().splitlines() if label in line]
        total = sum(float(line.split()[-1]) for line in lines if line.startswith(metric + "_sum"))
        count = sum(float(line.split()[-1]) for line in lines if line.startswith(metric + "_count"))
        sums[name] = (total, count)
    return sums


def env_list(name: str, default: str) -> list[float]:
    return [float(v) for v in os.environ.get(name, default).split(",") if v.strip()]


def order_body(external_id: str) -> bytes:
    """A small order in the normalized (``custom``) shape."""
    return json.dumps({"external_id": external_id, "placed_at": "2026-01-04T18:00:00Z", "fulfillment": "pickup",
                       "items": [{"name": "Burger", "quantity": 1, "unit_price": "10.99"}],
                       "subtotal": "10.99", "tax": "0.88", "total": "11.87", "currency": "USD"}).encode()


def signed_headers(webhook: Webhook, body: bytes) -> dict[str, str]:
    msg_id, now = f"msg_{uuid.uuid4().hex}", datetime.now(timezone.utc)
    return {"Content-Type": "application/json", "webhook-id": msg_id, "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": webhook.sign(msg_id, now, body.decode())}


async def custom_integration(session: aiohttp.ClientSession, base: str, api_key: str) -> tuple[int, str]:
    """A ``custom`` integration of the key's tenant (a tenant of the bench's own: one live integration per
    provider and tenant): (id, inbound secret)."""
    document = {"name": "bench", "integration_type": "delivery", "provider": "custom", "config": {}, "credentials": {}}
    async with session.post(base + "/api/v1/integrations", json=document,
                            headers={"Authorization": f"Bearer {api_key}"}) as response:
        if response.status != 201:
            raise RuntimeError(f"creating the bench's custom integration: {response.status} {await response.text()}")
        data = (await response.json())["data"]
        return data["id"], data["inbound_secret"]


async def push(session: aiohttp.ClientSession, base: str, integration_id: int, webhook: Webhook, external_id: str) -> int:
    body = order_body(external_id)
    async with session.post(f"{base}/api/v1/integrations/{integration_id}/inbound", data=body,
                            headers=signed_headers(webhook, body)) as response:
        await response.read()
        return response.status


class Poller:
    """Records when each order of one integration first shows in the list (newest first)."""

    def __init__(self, session: aiohttp.ClientSession, base: str, api_key: str, integration_id: int, period_s: float) -> None:
        self._session, self._period_s = session, period_s
        self._url = f"{base}/api/v1/external-orders?integration_id={integration_id}&limit={POLL_PAGE}"
        self._auth = {"Authorization": f"Bearer {api_key}"}
        self.first_seen: dict[str, float] = {}  # external id -> perf_counter time
        self.expected: set[str] = set()  # every order answered 202 so far
        self.ids: dict[str, int] = {}  # external id -> order id
        self.polls = 0
        self.errors = 0
        self._newest = 0

    async def poll_once(self) -> None:
        url, newest = self._url, self._newest
        while url:
            async with self._session.get(url, headers=self._auth) as response:
                if response.status != 200:
                    self.errors += 1
                    return
                page = await response.json()
                link = response.links.get("next")
            now = time.perf_counter()
            orders = page["data"]
            for order in orders:
                self.first_seen.setdefault(order["external_id"], now)
                self.ids.setdefault(order["external_id"], order["id"])
                self._newest = max(self._newest, order["id"])
            known = not orders or orders[-1]["id"] <= newest
            url = None if known or link is None else str(link["url"])
        self.polls += 1

    async def run(self, until: asyncio.Event) -> None:
        while not until.is_set():
            started = time.perf_counter()
            try:
                await self.poll_once()
            except (aiohttp.ClientError, asyncio.TimeoutError):
                self.errors += 1
            await asyncio.sleep(max(0.0, self._period_s - (time.perf_counter() - started)))

    async def wait_for(self, external_ids: list[str], timeout_s: float) -> None:
        deadline = time.perf_counter() + timeout_s
        while time.perf_counter() < deadline and any(e not in self.first_seen for e in external_ids):
            await asyncio.sleep(self._period_s)


@dataclass
class Step:
    rate: float
    seconds: float
    offered: int = 0
    accepted: int = 0  # 202
    errors: int = 0  # any other status, a failure, or no room to send
    statuses: dict[str, int] = field(default_factory=dict)
    accept_ms: list[float] = field(default_factory=list)
    visible_ms: list[float] = field(default_factory=list)
    not_visible: int = 0
    stage_ms: dict[str, float] = field(default_factory=dict)
    cpu_ms: dict[str, float] = field(default_factory=dict)  # CPU ms per accepted order, per process kind

    @property
    def achieved(self) -> float:
        return self.accepted / self.seconds if self.seconds else 0.0

    def p(self, which: list[float], q: float) -> float:
        return load.LoadResult(0, 0, 0, 0, which).percentile(q)

    @property
    def ok(self) -> bool:
        return self.errors == 0 and self.p(self.accept_ms, 99) < ACCEPT_P99_MS


async def step(base: str, targets: list[tuple[int, str]], poller: Poller, rate: float, seconds: float,
               max_in_flight: int, drain_s: float, urls: dict[str, str] | None = None,
               find=None) -> Step:
    """Orders go round-robin to ``targets`` (integration id, inbound secret); only the first one's are
    watched for visibility (the poller lists that integration)."""
    webhooks = [Webhook(secret) for _, secret in targets]
    count = max(1, int(rate * seconds))
    prefix = f"bench-{int(rate)}-{uuid.uuid4().hex[:6]}"
    prepared = []
    for i in range(count):
        external_id = f"{prefix}-{i}"
        body = order_body(external_id)
        target = i % len(targets)
        prepared.append((external_id, body, signed_headers(webhooks[target], body),
                         f"{base}/api/v1/integrations/{targets[target][0]}/inbound", target == 0))
    result = Step(rate, seconds, offered=count)
    sent_at: dict[str, float] = {}
    connector = aiohttp.TCPConnector(limit=max_in_flight)
    in_flight = 0
    async with aiohttp.ClientSession(connector=connector, timeout=TIMEOUT) as session:

        async def send(external_id: str, body: bytes, headers: dict, url: str, due: float) -> None:
            nonlocal in_flight
            try:
                async with session.post(url, data=body, headers=headers) as response:
                    await response.read()
                    status = response.status
            except (aiohttp.ClientError, asyncio.TimeoutError) as error:
                status = type(error).__name__
            finally:
                in_flight -= 1
            result.statuses[str(status)] = result.statuses.get(str(status), 0) + 1
            if status == 202:
                result.accepted += 1
                result.accept_ms.append((time.perf_counter() - due) * 1000)
            else:
                result.errors += 1
                sent_at.pop(external_id, None)

        tasks = []
        before = stage_sums(urls) if urls else {}
        meter = cpu.Meter(find or dict)
        meter.start()
        t0 = time.perf_counter() + 0.05
        for i, (external_id, body, headers, url, watched) in enumerate(prepared):
            due = t0 + i / rate
            delay = due - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            if in_flight >= max_in_flight:
                result.errors += 1
                result.statuses["not sent (bound)"] = result.statuses.get("not sent (bound)", 0) + 1
                continue
            in_flight += 1
            if watched:
                sent_at[external_id] = due
            tasks.append(asyncio.create_task(send(external_id, body, headers, url, due)))
        await asyncio.gather(*tasks)
        result.seconds = max(seconds, time.perf_counter() - t0)
        used = meter.stop()
        if result.accepted:
            result.cpu_ms = {kind: seconds_used / result.accepted * 1000 for kind, seconds_used in used.items()}
        if urls:
            result.stage_ms = stages.means_ms(before, stage_sums(urls))
    poller.expected.update(sent_at)
    await poller.wait_for(list(sent_at), drain_s)
    for external_id, due in sent_at.items():
        seen = poller.first_seen.get(external_id)
        if seen is None:
            result.not_visible += 1
        else:
            result.visible_ms.append(max(0.0, seen - due) * 1000)
    return result


def profile(pids: dict[int, str], seconds: float) -> list[subprocess.Popen]:
    """py-spy (raw collapsed stacks) on each process for ``seconds``, if py-spy is there."""
    spy = os.environ.get("PY_SPY") or shutil.which("py-spy")
    if not spy or seconds <= 0:
        return []
    os.makedirs("/tmp/bench-ingest-profiles", exist_ok=True)
    return [subprocess.Popen([spy, "record", "-p", str(pid), "-d", str(int(seconds)), "-r", "100", "--nonblocking",
                              "-f", "raw", "-o", f"/tmp/bench-ingest-profiles/{kind}.txt"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL) for pid, kind in pids.items()]


def report(steps: list[Step], read: load.LoadResult, half: Step | None, step_s: float) -> str:
    lines = [f"ingest: signed custom orders, open loop, {step_s:g} s per step; read path c32 in the same run: "
             f"{read.rps:.0f} req/s (p50 {read.percentile(50):.1f} ms, {read.errors} errors)", "",
             "| offered/s | achieved/s | 202 p50 ms | 202 p99 ms | errors | visible p50 ms | visible p99 ms | not visible | statuses |",
             "|---|---|---|---|---|---|---|---|---|"]
    for s in [*steps, *([half] if half else [])]:
        statuses = ", ".join(f"{k}: {v}" for k, v in sorted(s.statuses.items()))
        lines.append(f"| {s.rate:g}{' (half)' if s is half else ''} | {s.achieved:.0f} | {s.p(s.accept_ms, 50):.1f} | "
                     f"{s.p(s.accept_ms, 99):.1f} | {s.errors} | {s.p(s.visible_ms, 50):.1f} | {s.p(s.visible_ms, 99):.1f} | "
                     f"{s.not_visible} | {statuses} |")
    good = [s for s in steps if s.ok]
    best = max((s.rate for s in good), default=0.0)
    target = READ_SHARE_GOAL * read.rps
    mark = lambda ok: "met" if ok else "**missed**"  # noqa: E731
    goals = [f"| highest rate with 202 p99 < {ACCEPT_P99_MS} ms and no errors >= {READ_SHARE_GOAL}x read c32 "
             f"({target:.0f}/s) | {best:g}/s ({best / read.rps if read.rps else 0:.2f}x) | {mark(best >= target and best > 0)} |"]
    if half is not None:
        p99 = half.p(half.visible_ms, 99)
        ok = p99 < VISIBLE_P99_MS and half.not_visible == 0
        goals.append(f"| inbound -> visible p99 < {VISIBLE_P99_MS} ms at half that rate ({half.rate:g}/s) | "
                     f"{p99:.1f} ms ({half.not_visible} not visible) | {mark(ok)} |")
    lines += ["", "| goal | measured | status |", "|---|---|---|", *goals]
    measured = [*steps, *([half] if half else [])]
    names = [name for name, *_ in STAGES if any(name in s.stage_ms for s in measured)]
    if names:
        lines += ["", "where an order's time goes (mean ms per stage, from the services' histograms, send window only):", "",
                  "| stage | " + " | ".join(f"{s.rate:g}/s" for s in measured) + " |", "|---|" + "---|" * len(measured)]
        lines += [f"| {name} | " + " | ".join(f"{s.stage_ms.get(name, float('nan')):.1f}" for s in measured) + " |"
                  for name in names]
    kinds = sorted({kind for s in measured for kind in s.cpu_ms})
    if kinds:
        lines += ["", "CPU per accepted order (ms, psutil, send window; the poller's list queries included):", "",
                  "| process | " + " | ".join(f"{s.rate:g}/s" for s in measured) + " |", "|---|" + "---|" * len(measured)]
        lines += [f"| {kind} | " + " | ".join(f"{s.cpu_ms.get(kind, float('nan')):.2f}" for s in measured) + " |" for kind in kinds]
        lines.append("| **total** | " + " | ".join(f"**{sum(s.cpu_ms.values()):.2f}**" for s in measured) + " |")
    return "\n".join(lines)


async def new_tenant_keys(database_url: str, count: int) -> list[str]:
    """API keys of ``count`` new tenants (made straight in the gateway's schema, as `make tenant` does), so
    the bench never touches the data of a stack it reuses."""
    from gateway import SCHEMA
    from gateway.tenants import create_tenant
    from posint_common import db

    pool = await db.create_pool(database_url, SCHEMA, max_size=1, application="bench-ingest")
    try:
        return [(await create_tenant(pool, f"bench-{uuid.uuid4().hex[:8]}"))[1] for _ in range(count)]
    finally:
        await pool.close()


async def scenario(base: str, api_key: str, database_url: str, find=None, urls: dict[str, str] | None = None) -> str:
    """``api_key`` for the read path; orders go to integrations of new tenants. ``find``: pid -> kind of
    the stack's processes (CPU per order, py-spy), ``urls``: the services' health URLs by stack.env name
    (where the time goes); both optional (a reused stack)."""
    rates = env_list("INGEST_RATES", "5,10,20,40,80,160,320")
    step_s = float(os.environ.get("INGEST_STEP_S", 30))
    max_in_flight = int(os.environ.get("INGEST_MAX_IN_FLIGHT", 256))
    period_s = float(os.environ.get("INGEST_POLL_MS", 25)) / 1000
    drain_s = float(os.environ.get("INGEST_DRAIN_S", 15))
    profile_s = float(os.environ.get("INGEST_PROFILE_S", 0))
    integrations = int(os.environ.get("INGEST_INTEGRATIONS", 1))
    if "127.0.0.1" not in base:
        raise SystemExit("ingest runs on loopback only")
    print("ingest: read path at concurrency 32 ...", flush=True)
    read = await load.run(base + READ_PATH, api_key, 32, min(step_s, 10), 2)
    async with aiohttp.ClientSession(timeout=TIMEOUT) as session:
        keys = await new_tenant_keys(database_url, max(1, integrations))
        targets = [await custom_integration(session, base, key) for key in keys]
        integration_id, secret = targets[0]
        # warm the path (first order, first list) outside any step
        assert await push(session, base, integration_id, Webhook(secret), f"warm-{uuid.uuid4().hex[:8]}") == 202
        poller = Poller(session, base, keys[0], integration_id, period_s)
        stop = asyncio.Event()
        polling = asyncio.create_task(poller.run(stop))
        steps: list[Step] = []
        spies: list[subprocess.Popen] = []
        half = None
        try:
            for rate in rates:
                print(f"ingest: {rate:g} orders/s for {step_s:g} s ...", flush=True)
                s = await step(base, targets, poller, rate, step_s, max_in_flight, drain_s, urls, find)
                steps.append(s)
                print(f"  achieved {s.achieved:.0f}/s, 202 p99 {s.p(s.accept_ms, 99):.1f} ms, errors {s.errors}, "
                      f"visible p99 {s.p(s.visible_ms, 99):.1f} ms", flush=True)
                if s.errors > s.offered / 10 or s.p(s.accept_ms, 99) > STOP_AFTER_P99_MS:
                    print("  past saturation: no higher steps", flush=True)
                    break
            missed = next((s for s in steps if not s.ok), None)
            settle_s = max(drain_s, 60)  # an overloaded step leaves a backlog: let it drain before measuring again
            await poller.wait_for(list(poller.expected), settle_s)
            pids = {pid: kind for pid, kind in find().items() if kind in ("gateway", "integrations", "orders")} if find else {}
            if missed is not None and profile_s > 0 and pids:  # evidence: the first missing rate again, under py-spy
                spies = profile(pids, min(profile_s, step_s))
                if spies:
                    print(f"ingest: {missed.rate:g} orders/s again under py-spy ...", flush=True)
                    await step(base, targets, poller, missed.rate, step_s, max_in_flight, drain_s)
            best = max((s.rate for s in steps if s.ok), default=min(rates))
            await poller.wait_for(list(poller.expected), settle_s)
            print(f"ingest: half the best rate, {best / 2:g} orders/s ...", flush=True)
            half = await step(base, targets, poller, best / 2, step_s, max_in_flight, drain_s, urls, find)
        finally:
            stop.set()
            await polling
            for spy in spies:
                spy.wait(60)
    text = report(steps, read, half, step_s)
    if integrations > 1:
        text += (f"\n\n{integrations} custom integrations (one per tenant), orders round-robin; visibility measured on"
                 " the first one's orders")
    if spies:
        text += "\n\npy-spy raw profiles in /tmp/bench-ingest-profiles/ (" + ", ".join(sorted(pids.values())) + ")"
    return text + f"\n\nvisibility poller: {poller.polls} polls, {poller.errors} failed, every {period_s * 1000:g} ms"
