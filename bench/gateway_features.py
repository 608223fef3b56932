"""Issue 9's benchmark: what idempotency keys, per-key rate limits and scopes cost the gateway.

Two more gateways on the same stack in the same run, started the same way (same environment, same
broker, Postgres and services, both new processes) but for one setting: one with the controls on, as
deployed (the bench's key gets a limit of 1,000,000/s, so the bucket is consulted on every request
but never refuses), one with ``REQUEST_CONTROLS=false`` (the foundation's gateway: no limit or scope
middleware, no Idempotency-Key store). The stack's own gateway is not used: in early runs it was
consistently faster at concurrency 1 than a gateway the bench started, whatever the controls. Both
are loaded the same way, in turn, at concurrency 1 and 32, on two paths:

- read: ``GET /api/v1/integrations`` (the issue's goal: within 10% of the foundation's, c1 and c32);
- write: ``POST /api/v1/external-orders/{id}/reject`` on one already rejected order, a fresh
  ``Idempotency-Key`` on every request (so the on gateway claims, stores and finishes a key each
  time), answered 200 by the orders service (a command through its inbox and outbox; nothing changes).

Besides req/s and latency, each gateway's own CPU per request (psutil, recorded window only) is
shown: on this shared box it moves far less from run to run than req/s.
"""
from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import aiohttp
from standardwebhooks import Webhook

from posint_common.devstack.processes import free_port

from bench import cpu, ingest, load, stack

ROOT = Path(__file__).resolve().parents[1]
READ = "/api/v1/integrations"
GOAL = 0.9  # controls on: at least 0.9x the req/s of controls off (within 10%)
REJECT_BODY = b'{"reason_code": "TOO_BUSY"}'


def start_gateway(info: stack.StackInfo, controls: bool) -> tuple[subprocess.Popen, str, Path]:
    """Another gateway on the stack's broker and Postgres, with REQUEST_CONTROLS as given."""
    port, health = free_port(), free_port()
    rolled = os.environ.get("KAFKA_ROLL_TOPICS", "true" if info.launcher is not None else "false")
    env = {**os.environ, "DATABASE_URL": info.database_url, "KAFKA_BOOTSTRAP_SERVERS": info.kafka_bootstrap,
           "GATEWAY_PORT": str(port), "HEALTH_PORT": str(health), "KAFKA_ROLL_TOPICS": rolled,
           "REQUEST_CONTROLS": "true" if controls else "false"}
    for name in ("RATE_LIMIT_PER_SECOND", "RATE_LIMIT_BURST"):  # as the stack's gateway got them (bench.stack)
        env.setdefault(name, "1000000")
    log_path = (info.run_dir or Path("/tmp")) / f"gateway-controls-{'on' if controls else 'off'}-{uuid.uuid4().hex[:6]}.log"
    with open(log_path, "ab") as log:
        process = subprocess.Popen([sys.executable, "-m", "gateway"], cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                                   stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return process, f"http://127.0.0.1:{port}", log_path
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError(f"a bench gateway did not start; see {log_path}")
            time.sleep(0.2)


async def rejected_order(base: str, database_url: str) -> tuple[int, str]:
    """An order of a new tenant's custom integration, pushed signed and rejected once; (order id, the
    tenant's key)."""
    (api_key,) = await ingest.new_tenant_keys(database_url, 1)
    async with aiohttp.ClientSession(timeout=ingest.TIMEOUT) as session:
        integration_id, secret = await ingest.custom_integration(session, base, api_key)
        external_id = f"bench-write-{uuid.uuid4().hex[:8]}"
        assert await ingest.push(session, base, integration_id, Webhook(secret), external_id) == 202
        poller = ingest.Poller(session, base, api_key, integration_id, 0.05)
        deadline = time.monotonic() + 30
        while external_id not in poller.ids:
            if time.monotonic() > deadline:
                raise RuntimeError("the bench's order never showed in /api/v1/external-orders")
            await poller.poll_once()
            await asyncio.sleep(0.05)
        order_id = poller.ids[external_id]
        async with session.post(f"{base}/api/v1/external-orders/{order_id}/reject", data=REJECT_BODY,
                                headers={"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}) as response:
            assert response.status == 200, await response.text()
        return order_id, api_key


async def closed_loop(url: str, api_key: str, concurrency: int, duration_s: float, warmup_s: float, post: bool,
                      on_window=None) -> load.LoadResult:
    """bench.load's closed loop, for a GET or a POST with a fresh Idempotency-Key per request."""
    if not post:
        return await load.run(url, api_key, concurrency, duration_s, warmup_s, on_window)
    headers = {"Authorization": f"Bearer {api_key}", "Content-Type": "application/json"}
    latencies: list[float] = []
    errors = 0
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=load.REQUEST_TIMEOUT_S),
                                     headers=headers) as session:
        prefix = uuid.uuid4().hex[:8]
        counter = 0

        async def worker(until: float, record: bool) -> None:
            nonlocal errors, counter
            while (start := time.perf_counter()) < until:
                counter += 1
                try:
                    async with session.post(url, data=REJECT_BODY, headers={"Idempotency-Key": f"{prefix}-{counter}"}) as response:
                        await response.read()
                        good = response.status == 200
                except (aiohttp.ClientError, asyncio.TimeoutError):
                    good = False
                if record:
                    if good:
                        latencies.append((time.perf_counter() - start) * 1000)
                    else:
                        errors += 1

        until = time.perf_counter() + warmup_s
        await asyncio.gather(*(worker(until, False) for _ in range(concurrency)))
        if on_window:
            on_window("start")
        began = time.perf_counter()
        await asyncio.gather(*(worker(began + duration_s, True) for _ in range(concurrency)))
        elapsed = time.perf_counter() - began
        if on_window:
            on_window("end")
    return load.LoadResult(concurrency, elapsed, len(latencies), errors, latencies)


def combine(first: load.LoadResult | None, second: load.LoadResult) -> load.LoadResult:
    if first is None:
        return second
    return load.LoadResult(second.concurrency, first.seconds + second.seconds, first.ok + second.ok,
                           first.errors + second.errors, first.latencies_ms + second.latencies_ms)


def check_switch(on_url: str, off_url: str, api_key: str) -> None:
    """The two gateways really differ: RateLimit-* headers from the one with controls, none from the other."""
    async def headers(url: str):
        async with aiohttp.ClientSession() as session, session.get(url + READ, headers={"Authorization": f"Bearer {api_key}"}) as r:
            return r.status, r.headers
    (on_status, on), (off_status, off) = asyncio.run(headers(on_url)), asyncio.run(headers(off_url))
    if on_status != 200 or off_status != 200 or "RateLimit-Limit" not in on or "RateLimit-Limit" in off:
        raise RuntimeError(f"controls switch not effective: on {on_status} {dict(on)}, off {off_status} {dict(off)}")


def report(results: dict, gateway_cpu: dict, duration: float, warmup: float) -> str:
    lines = [f"gateway features (idempotency keys, rate limits, scopes): two bench gateways on one stack, {duration:g} s per "
             f"path, concurrency and gateway, as two halves in the order on, off, off, on, each after {warmup:g} s warm-up", "",
             "| path | concurrency | controls | req/s | p50 ms | p99 ms | errors | gateway CPU ms/req |",
             "|---|---|---|---|---|---|---|---|"]
    for (path, concurrency, controls), r in results.items():
        used = gateway_cpu.get((path, concurrency, controls))
        lines.append(f"| {path} | {concurrency} | {controls} | {r.rps:.0f} | {r.percentile(50):.1f} | {r.percentile(99):.1f} | "
                     f"{r.errors} | {used / r.ok * 1000 if used is not None and r.ok else float('nan'):.2f} |")
    lines += ["", "| goal (controls on vs off) | req/s on/off | p50 on/off | gateway CPU/req on/off | status |",
              "|---|---|---|---|---|"]
    for path in ("read", "write"):
        for concurrency in (1, 32):
            on, off = results.get((path, concurrency, "on")), results.get((path, concurrency, "off"))
            if on is None or off is None:
                continue
            share = on.rps / off.rps if off.rps else float("nan")
            p50 = on.percentile(50) / off.percentile(50)
            cpu_on, cpu_off = gateway_cpu.get((path, concurrency, "on")), gateway_cpu.get((path, concurrency, "off"))
            cpu_ratio = (cpu_on / on.ok) / (cpu_off / off.ok) if cpu_on and cpu_off and on.ok and off.ok else float("nan")
            status = ("met" if share >= GOAL else "**missed**") + ("" if path == "read" else " (not an issue goal)")
            lines.append(f"| {path} c{concurrency}: req/s within 10% | {share:.2f}x | {p50:.2f}x | {cpu_ratio:.2f}x | {status} |")
    return "\n".join(lines)


def run(info: stack.StackInfo, duration: float, warmup: float) -> str:
    if not info.kafka_bootstrap:
        return "gateway features: skipped, the stack's broker is unknown (set BENCH_KAFKA_BOOTSTRAP_SERVERS)"
    print("gateway features: starting two gateways, REQUEST_CONTROLS true and false ...", flush=True)
    gateways = {}
    try:
        for controls, on in (("on", True), ("off", False)):
            gateways[controls] = start_gateway(info, on)
        urls = {controls: url for controls, (_, url, _) in gateways.items()}
        pids = {controls: process.pid for controls, (process, _, _) in gateways.items()}
        check_switch(urls["on"], urls["off"], info.api_key)
        order_id, writer_key = asyncio.run(rejected_order(info.gateway_url, info.database_url))
        results, gateway_cpu = {}, {}
        for concurrency in (1, 32):
            for path in ("read", "write"):
                # on, off, off, on: each half of the duration, so a drift of the box (or the order) favours neither
                for controls in ("on", "off", "off", "on"):
                    print(f"gateway features: {path} c{concurrency} controls {controls} ...", flush=True)
                    meter = cpu.Meter(lambda c=controls: {pids[c]: "gateway"})
                    target = urls[controls] + (READ if path == "read" else f"/api/v1/external-orders/{order_id}/reject")
                    part = asyncio.run(closed_loop(
                        target, writer_key if path == "write" else info.api_key, concurrency, duration / 2, warmup,
                        path == "write",
                        on_window=lambda edge, m=meter: m.start() if edge == "start" else m.stop()))
                    key = path, concurrency, controls
                    results[key] = combine(results.get(key), part)
                    gateway_cpu[key] = gateway_cpu.get(key, 0.0) + meter.seconds.get("gateway", 0.0)
        return report(results, gateway_cpu, duration, warmup)
    finally:
        for process, _, log_path in gateways.values():
            process.terminate()
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                process.kill()
            if info.run_dir is None:
                log_path.unlink(missing_ok=True)
