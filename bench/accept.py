"""Issue 7's accept scenario: received orders accepted through the API at concurrency 1 and 32, with
the reference POS (sandbox.pos) injecting them, beside the read path's figures from the same run.

Each accept is ``POST /api/v1/external-orders/{id}/accept`` on an order of its own, answered once the
POS's ``injected`` came back (or the orders service's wait, ORDERS_ACCEPT_WAIT_MS, ran out:
``pending``). The orders are written as the hand-over leaves them (``received``, in the orders
schema, for the key's tenant) before the runs, so the load generator spends the runs accepting.
The read path is ``GET /api/v1/integrations``, as in the load part.

Env: BENCH_DURATION_S / BENCH_WARMUP_S as for the load part; ACCEPT_ORDERS (orders prepared per
concurrency, default 6000). Needs the reference POS: the launcher's (stack.env SANDBOX_POS_URL), else
one is started here on the stack's broker.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import aiohttp
import asyncpg

from bench import cpu, load, stages
from posint_common.contracts.inbound import NormalizedOrder

READ_PATH = "/api/v1/integrations"
THROUGHPUT_GOAL = 0.4  # accepts/s at c32 >= this share of the read path's req/s at c32
LATENCY_GOAL = 3.0  # accept p50 at c1 <= this many times the read path's p50 at c1
TIMEOUT = aiohttp.ClientTimeout(total=15)
NORMALIZED = NormalizedOrder.model_validate(  # as the hand-over stores it: every key, nulls included
    {"external_id": "bench", "placed_at": "2026-01-04T18:00:00Z", "fulfillment": "pickup",
     "items": [{"name": "Burger", "quantity": 1, "unit_price": "10.99"}],
     "subtotal": "10.99", "tax": "0.88", "total": "11.87", "currency": "USD"}).model_dump(mode="json")


def mark(ok: bool) -> str:
    return "met" if ok else "**missed**"


async def prepare(database_url: str, api_key: str, count: int, label: str) -> list[int]:
    """``count`` received orders of the key's tenant, on its first delivery integration."""
    conn = await asyncpg.connect(database_url)
    try:
        tenant_id = await conn.fetchval("SELECT tenant_id FROM gateway.api_keys WHERE key_hash = $1",
                                        hashlib.sha256(api_key.encode()).hexdigest())
        if tenant_id is None:
            raise RuntimeError("the bench's API key is unknown to the gateway schema")
        integration = await conn.fetchrow("SELECT id, provider FROM integrations.integrations WHERE tenant_id = $1"
                                          " AND integration_type = 'delivery' ORDER BY id LIMIT 1", tenant_id)
        if integration is None:
            raise RuntimeError("the bench's tenant has no delivery integration (make run seeds the demo ones)")
        async with conn.transaction():
            rows = await conn.fetch(
                "INSERT INTO orders.orders (tenant_id, integration_id, provider, external_id, status, normalized, raw_data,"
                " received_at, accept_by) SELECT $1, $5, $6, $2 || '-' || n, 'received', $3::jsonb, $3::jsonb, now(),"
                " now() + interval '1 hour' FROM generate_series(1, $4) AS n RETURNING id",
                tenant_id, f"bench-accept-{label}-{time.time_ns()}", json.dumps(NORMALIZED), count, integration["id"],
                integration["provider"])
            ids = [row["id"] for row in rows]
            await conn.execute("INSERT INTO orders.status_history (order_id, to_status, source)"
                               " SELECT unnest($1::bigint[]), 'received', 'platform'", ids)
        return ids
    finally:
        await conn.close()


# Where an accept's time goes: (label, stack.env health URL, metric, consumer) -> mean ms per record.
STAGES = (
    ("hop: accept command -> orders.commands", "ORDERS_HEALTH_URL", "posint_record_lag_seconds", "orders.commands"),
    ("orders: accept handled (one transaction)", "ORDERS_HEALTH_URL", "posint_handler_seconds", "orders.commands"),
    ("hop: POS answer -> orders.pos", "ORDERS_HEALTH_URL", "posint_record_lag_seconds", "orders.pos"),
    ("orders: POS answer handled (reply written)", "ORDERS_HEALTH_URL", "posint_handler_seconds", "orders.pos"),
    ("hop: reply -> gateway", "GATEWAY_HEALTH_URL", "posint_record_lag_seconds", None),
)


def stage_sums(urls: dict[str, str]) -> dict[str, tuple[float, float]]:
    """(sum, count) per stage from the services' /metrics (one consumer's series, or all of them)."""
    pages: dict[str, list[str]] = {}
    sums = {}
    for name, env, metric, consumer in STAGES:
        if env not in urls:
            continue
        if env not in pages:
            with urllib.request.urlopen(urls[env] + "/metrics", timeout=5) as response:  # loopback health port
                pages[env] = response.read().decode().splitlines()
        label = f'consumer="{consumer}"' if consumer else ""
        pick = lambda suffix: sum(float(line.split()[-1]) for line in pages[env]  # noqa: E731
                                  if line.startswith(metric + suffix) and label in line)
        sums[name] = (pick("_sum"), pick("_count"))
    return sums


async def accepts(base: str, api_key: str, ids: list[int], concurrency: int, duration_s: float,
                  warmup_s: float, on_window=None) -> tuple[load.LoadResult, int]:
    """Like load.run, but each request accepts the next prepared order; also counts ``injected`` answers."""
    queue = iter(ids)
    latencies: list[float] = []
    errors = injected = 0
    statuses: dict = {}
    connector = aiohttp.TCPConnector(limit=concurrency)
    headers = {"Authorization": f"Bearer {api_key}"}
    async with aiohttp.ClientSession(connector=connector, timeout=TIMEOUT, headers=headers) as session:

        async def worker(until: float, record: bool) -> None:
            nonlocal errors, injected
            while (start := time.perf_counter()) < until:
                order_id = next(queue, None)
                if order_id is None:
                    raise RuntimeError("out of prepared orders: raise ACCEPT_ORDERS")
                try:
                    async with session.post(f"{base}/api/v1/external-orders/{order_id}/accept") as response:
                        body = await response.json(content_type=None)
                        good = response.status == 200
                except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as error:
                    good, body = False, {"error": type(error).__name__}
                if not record:
                    continue
                if good:
                    latencies.append((time.perf_counter() - start) * 1000)
                    injected += body["data"]["injection_status"] == "injected"
                else:
                    errors += 1
                    why = body.get("title") or body.get("error") or "?"
                    statuses[why] = statuses.get(why, 0) + 1

        if warmup_s > 0:
            until = time.perf_counter() + warmup_s
            await asyncio.gather(*(worker(until, False) for _ in range(concurrency)))
        if on_window:
            on_window("start")
        began = time.perf_counter()
        await asyncio.gather(*(worker(began + duration_s, True) for _ in range(concurrency)))
        elapsed = time.perf_counter() - began
        if on_window:
            on_window("stop")
    if statuses:
        print(f"accept: errors at concurrency {concurrency}: {statuses}", flush=True)
    return load.LoadResult(concurrency, elapsed, len(latencies), errors, latencies), injected


def pos_url(run_dir: Path | None) -> str:
    env = run_dir / "stack.env" if run_dir else None
    if env and env.exists():
        values = dict(line.split("=", 1) for line in env.read_text().splitlines() if "=" in line)
        return values.get("SANDBOX_POS_URL", "")
    return ""


def start_pos(bootstrap: str) -> subprocess.Popen:
    if not bootstrap.startswith("127.0.0.1:"):
        raise SystemExit("accept: no reference POS in stack.env and the broker is unknown (BENCH_KAFKA_BOOTSTRAP_SERVERS)")
    return subprocess.Popen([sys.executable, "-m", "sandbox.pos"], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            env={**os.environ, "KAFKA_BOOTSTRAP_SERVERS": bootstrap, "POS_CONTROL_PORT": "0"})


def run(info, duration: float, warmup: float) -> str:
    count = int(os.environ.get("ACCEPT_ORDERS", 6000))
    own_pos = None if pos_url(info.run_dir) else start_pos(info.kafka_bootstrap)
    results: dict = {}
    urls = stages.health_urls(info.run_dir)
    breakdown: dict[int, dict[str, float]] = {}
    cpu_ms: dict[int, dict[str, float]] = {}
    try:
        for concurrency in (1, 32):
            print(f"accept: read path at concurrency {concurrency} ...", flush=True)
            results["read", concurrency] = asyncio.run(load.run(info.gateway_url + READ_PATH, info.api_key, concurrency,
                                                                duration, warmup))
            ids = asyncio.run(prepare(info.database_url, info.api_key, count, f"c{concurrency}"))
            print(f"accept: accepts at concurrency {concurrency} ({len(ids)} received orders prepared) ...", flush=True)
            meter = cpu.Meter(lambda: cpu.stack_processes(info.gateway_url, info.database_url))
            used: dict[str, float] = {}
            window = lambda edge: meter.start() if edge == "start" else used.update(meter.stop())  # noqa: E731
            before = stage_sums(urls) if urls else {}
            results["accept", concurrency] = asyncio.run(accepts(info.gateway_url, info.api_key, ids, concurrency,
                                                                 duration, warmup, window))
            if urls:
                breakdown[concurrency] = stages.means_ms(before, stage_sums(urls))
            done = results["accept", concurrency][0].ok
            if done:
                cpu_ms[concurrency] = {kind: seconds / done * 1000 for kind, seconds in used.items()}
    finally:
        if own_pos is not None:
            own_pos.terminate()
            own_pos.wait(10)
    return report(results, duration, warmup) + "\n" + details(breakdown, cpu_ms)


def details(breakdown: dict[int, dict[str, float]], cpu_ms: dict[int, dict[str, float]]) -> str:
    """Where an accept's time goes (mean ms per record, warm-up included) and CPU ms per accept per process."""
    lines = []
    if breakdown:
        lines += ["", "where an accept's time goes (mean ms per record, from the services' histograms, warm-up included):", "",
                  "| stage | " + " | ".join(f"c{c}" for c in breakdown) + " |", "|---|" + "---|" * len(breakdown)]
        lines += [f"| {name} | " + " | ".join(f"{breakdown[c].get(name, float('nan')):.1f}" for c in breakdown) + " |"
                  for name, *_ in STAGES]
    if cpu_ms:
        kinds = sorted({kind for used in cpu_ms.values() for kind in used})
        lines += ["", "CPU per accept (ms, psutil, measured window):", "",
                  "| process | " + " | ".join(f"c{c}" for c in cpu_ms) + " |", "|---|" + "---|" * len(cpu_ms)]
        lines += [f"| {kind} | " + " | ".join(f"{cpu_ms[c].get(kind, 0.0):.2f}" for c in cpu_ms) + " |" for kind in kinds]
        lines.append("| **total** | " + " | ".join(f"**{sum(cpu_ms[c].values()):.2f}**" for c in cpu_ms) + " |")
    return "\n".join(lines)


def report(results: dict, duration: float, warmup: float) -> str:
    lines = [f"accept: {duration:g} s per run after {warmup:g} s warm-up; reference POS injecting", "",
             "| path | concurrency | req/s | p50 ms | p99 ms | errors | answered injected |", "|---|---|---|---|---|---|---|"]
    for concurrency in (1, 32):
        read = results["read", concurrency]
        accepted, injected = results["accept", concurrency]
        share = injected / accepted.ok if accepted.ok else 0.0
        lines.append(f"| read (GET {READ_PATH}) | {concurrency} | {read.rps:.0f} | {read.percentile(50):.1f} | "
                     f"{read.percentile(99):.1f} | {read.errors} | |")
        lines.append(f"| accept (POST .../accept) | {concurrency} | {accepted.rps:.0f} | {accepted.percentile(50):.1f} | "
                     f"{accepted.percentile(99):.1f} | {accepted.errors} | {share:.1%} |")
    a32, r32 = results["accept", 32][0], results["read", 32]
    a1, r1 = results["accept", 1][0], results["read", 1]
    rps = a32.rps / r32.rps if r32.rps else 0.0
    p50 = a1.percentile(50) / r1.percentile(50) if r1.latencies_ms else float("nan")
    every = all(results["accept", c][1] == results["accept", c][0].ok and not results["accept", c][0].errors for c in (1, 32))
    lines += ["", "| goal | measured | status |", "|---|---|---|",
              f"| accepts/s at c32 >= {THROUGHPUT_GOAL}x read path | {rps:.2f}x ({a32.rps:.0f} vs {r32.rps:.0f}) | {mark(rps >= THROUGHPUT_GOAL)} |",
              f"| every accept answered injected (POS keeping up) | "
              f"{sum(results['accept', c][1] for c in (1, 32))} of {a1.ok + a32.ok}, {a1.errors + a32.errors} errors | {mark(every)} |",
              f"| accept p50 at c1 <= {LATENCY_GOAL:g}x read path p50 | {p50:.2f}x ({a1.percentile(50):.1f} vs "
              f"{r1.percentile(50):.1f} ms) | {mark(p50 <= LATENCY_GOAL)} |"]
    return "\n".join(lines)
