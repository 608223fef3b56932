"""``make bench``: start (or reuse) the stack and a baseline, load both beside the broker's floor
(``bench.floor``) and the architecture's least (``bench.minimal``), measure idle CPU, report.

Env: BENCH_DURATION_S (per load run, default 10), BENCH_WARMUP_S (default 2), BENCH_IDLE_S
(default 60); SOAK_DURATION_S (default 300), SOAK_WINDOW_S (default 30), SOAK_CONCURRENCY (default
32); BENCH_ONLY picks parts (comma list of load, floor, gateway, ingest, idle, soak; default all, in
that order; gateway: bench.gateway_features, ingest: bench.ingest with its INGEST_* variables; load
and floor run together, stack, floor, minimal and baseline in turn at each concurrency, so that
their ratios compare the same minutes); BENCH_GATEWAY_URL + BENCH_API_KEY + BENCH_DATABASE_URL reuse a
running stack (+ BENCH_KAFKA_BOOTSTRAP_SERVERS for the floor and minimal). The KAFKA_* variables
are passed through to the services the launcher starts and to the floor's and minimal's processes.
"""
from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from posint_common.devstack.processes import free_port
from posint_common.settings import KafkaSettings

from bench import accept, cpu, fanout, floor, gateway_features, idle, ingest, load, minimal, stack, stages

ROOT = Path(__file__).resolve().parents[1]
PATH = "/api/v1/integrations"
PACING = ("kafka_fetch_wait_busy_ms", "kafka_fetch_wait_idle_ms", "kafka_busy_window_ms")
PARTS = ("load", "floor", "gateway", "ingest", "accept", "fanout", "idle", "soak")  # accept: bench.accept (ACCEPT_* there); fanout: bench.fanout (FANOUT_* there)
TARGETS = ("stack", "floor", "minimal", "baseline")  # printed (and run) in this order
FLOOR_THROUGHPUT_GOAL = 0.8  # stack/floor req/s at concurrency 32 (issue 11)
FLOOR_LATENCY_GOAL = 1.3  # stack/floor p50 at concurrency 1
LOAD_GENERATOR = "load generator (HTTP client)"
CPU_ORDER = ("gateway", "integrations", "orders", "webhook_dispatcher", "floor client", "floor echo", "minimal http", "minimal service", "tansu", "postgres")
SOAK_GOAL = 0.8  # last window's req/s at least this share of the first's


def env_float(name: str, default: float) -> float:
    return float(os.environ.get(name, default))


def pacing() -> dict[str, int]:
    """The pacing the services run with: the environment, else the settings' defaults."""
    return {name: int(os.environ.get(name.upper(), KafkaSettings.model_fields[name].default)) for name in PACING}


def start_baseline(database_url: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    process = subprocess.Popen([sys.executable, "-m", "bench.baseline", database_url, str(port)], cwd=ROOT,
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return process, f"http://127.0.0.1:{port}"
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError("baseline did not start")
            time.sleep(0.1)


def mark(ok: bool) -> str:
    return "met" if ok else "**missed**"


def ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


def report(results: dict, settings: dict[str, int], duration: float, warmup: float, rolled: bool | None) -> str:
    targets = [t for t in TARGETS if any(t == target for target, _ in results)]
    concurrencies = sorted({c for _, c in results})
    topics = "" if rolled is None else f"; floor topics {'rolled' if rolled else 'plain'} like the stack's"
    lines = [f"{duration:g} s per run after {warmup:g} s warm-up; pacing busy {settings['kafka_fetch_wait_busy_ms']} ms, "
             f"idle {settings['kafka_fetch_wait_idle_ms']} ms, window {settings['kafka_busy_window_ms']} ms{topics}", "",
             "| target | concurrency | req/s | p50 ms | p99 ms | errors |", "|---|---|---|---|---|---|"]
    for concurrency in concurrencies:
        for target in targets:
            r = results[target, concurrency]
            lines.append(f"| {target} | {concurrency} | {r.rps:.0f} | {r.percentile(50):.1f} | {r.percentile(99):.1f} | {r.errors} |")
    others = [t for t in targets if t != "stack"]
    if "stack" in targets and others:
        lines += ["", "| concurrency | " + " | ".join(f"stack/{t} req/s | stack/{t} p50" for t in others) + " |",
                  "|---|" + "---|---|" * len(others)]
        for concurrency in concurrencies:
            s = results["stack", concurrency]
            cells = [f"{ratio(s.rps, results[t, concurrency].rps):.2f}x | "
                     f"{ratio(s.percentile(50), results[t, concurrency].percentile(50)):.2f}x" for t in others]
            lines.append(f"| {concurrency} | " + " | ".join(cells) + " |")
    goals = []
    if "stack" in targets:
        s32, s1 = results["stack", 32], results["stack", 1]
        if "floor" in targets:
            f32, f1 = results["floor", 32], results["floor", 1]
            rps, p50 = ratio(s32.rps, f32.rps), ratio(s1.percentile(50), f1.percentile(50))
            goals += [f"| throughput at concurrency 32 >= {FLOOR_THROUGHPUT_GOAL}x floor | {rps:.2f}x ({s32.rps:.0f} vs "
                      f"{f32.rps:.0f} req/s) | {mark(rps >= FLOOR_THROUGHPUT_GOAL)} |",
                      f"| p50 at concurrency 1 <= {FLOOR_LATENCY_GOAL}x floor | {p50:.2f}x ({s1.percentile(50):.1f} vs "
                      f"{f1.percentile(50):.1f} ms) | {mark(p50 <= FLOOR_LATENCY_GOAL)} |"]
        if "baseline" in targets:
            rps = ratio(s32.rps, results["baseline", 32].rps)
            goals += [f"| throughput at concurrency 32 >= 0.5x baseline | {rps:.2f}x | {mark(rps >= 0.5)} |",
                      f"| p50 at concurrency 1 <= 5 ms | {s1.percentile(50):.1f} ms | {mark(s1.percentile(50) <= 5)} |"]
    if goals:
        lines += ["", "| goal | measured | status |", "|---|---|---|", *goals]
    return "\n".join(lines + architecture(results, targets))


def architecture(results: dict, targets: list[str]) -> list[str]:
    """What anything laid out like the product can reach on this box (bench.minimal against the
    floor), and how far the stack is from it: whether the floor goals are reachable at all."""
    if "minimal" not in targets or "floor" not in targets:
        return []
    m32, f32, m1, f1 = results["minimal", 32], results["floor", 32], results["minimal", 1], results["floor", 1]
    lines = ["", f"what the architecture allows: minimal c32 = {m32.rps:.0f} req/s = {ratio(m32.rps, f32.rps):.2f}x the floor "
             f"(goal for the stack: {FLOOR_THROUGHPUT_GOAL}x); minimal c1 p50 = {m1.percentile(50):.1f} ms = "
             f"{ratio(m1.percentile(50), f1.percentile(50)):.2f}x the floor's (goal: {FLOOR_LATENCY_GOAL}x)"]
    if "stack" in targets:
        s32, s1 = results["stack", 32], results["stack", 1]
        lines.append(f"stack / minimal c32 = {ratio(s32.rps, m32.rps):.2f}x req/s; "
                     f"stack / minimal c1 p50 = {ratio(s1.percentile(50), m1.percentile(50)):.2f}x")
    return lines


def cpu_report(results: dict, meters: dict) -> str:
    """ms of CPU per request served, per process kind, for every measured run (recorded window only)."""
    runs = [key for key in results if key in meters]
    if not runs:
        return ""
    kinds = sorted({kind for key in runs for kind in meters[key].seconds if kind != LOAD_GENERATOR},
                   key=lambda kind: (CPU_ORDER.index(kind) if kind in CPU_ORDER else len(CPU_ORDER), kind))

    def per_request(key, kind) -> str:
        used = meters[key].seconds.get(kind)
        return "" if used is None or not results[key].ok else f"{used / results[key].ok * 1000:.2f}"

    lines = ["CPU per request (ms of CPU per request served, psutil, recorded window only):", "",
             "| process | " + " | ".join(f"{t} c{c}" for t, c in runs) + " |", "|---|" + "---|" * len(runs)]
    lines += [f"| {kind} | " + " | ".join(per_request(key, kind) for key in runs) + " |" for kind in kinds]
    totals = {key: sum(v for k, v in meters[key].seconds.items() if k != LOAD_GENERATOR) for key in runs}
    lines.append("| **total** | " + " | ".join(f"**{totals[key] / results[key].ok * 1000:.2f}**" if results[key].ok else ""
                                                for key in runs) + " |")
    lines.append("| cores busy (total) | " + " | ".join(f"{totals[key] / meters[key].elapsed:.2f}" for key in runs) + " |")
    if any(LOAD_GENERATOR in meters[key].seconds for key in runs):
        lines.append(f"| {LOAD_GENERATOR} (not in total) | " + " | ".join(per_request(key, LOAD_GENERATOR) for key in runs) + " |")
    if any(target in ("floor", "minimal") for target, _ in runs):
        lines += ["", "The floor's and minimal's Tansu (and minimal's Postgres) columns also serve the idle stack's "
                  "paced fetches (a few ms of CPU per second)."]
    return "\n".join(lines)


def idle_report(idle_cpu: dict[str, float], idle_s: float) -> str:
    idle_total = idle_cpu["total"]
    lines = [f"idle over {idle_s:g} s", "", "| goal | measured | status |", "|---|---|---|",
             f"| idle stack < 10% of one core | {idle_total:.1f}% | {mark(idle_total < 10)} |",
             "", "| idle process kind | % of one core |", "|---|---|"]
    lines += [f"| {kind} | {pct:.1f} |" for kind, pct in sorted(idle_cpu.items(), key=lambda kv: -kv[1]) if kind != "total"]
    lines.append(f"| **total** | **{idle_total:.1f}** |")
    return "\n".join(lines)


def parts() -> tuple[str, ...]:
    chosen = tuple(p.strip() for p in os.environ.get("BENCH_ONLY", ",".join(PARTS)).split(",") if p.strip())
    unknown = set(chosen) - set(PARTS)
    if unknown:
        raise SystemExit(f"BENCH_ONLY: unknown part(s) {sorted(unknown)}; choose from {', '.join(PARTS)}")
    return chosen


def soak_report(windows: list[load.LoadResult], window_s: float) -> str:
    """One row per window; the goal compares the last window's throughput with the first's."""
    first = windows[0].rps
    lines = [f"soak: concurrency {windows[0].concurrency}, {len(windows)} windows of {window_s:g} s", "",
             "| window | req/s | p50 ms | p99 ms | errors | req/s vs first |", "|---|---|---|---|---|---|"]
    for i, w in enumerate(windows):
        lines.append(f"| {i + 1} | {w.rps:.0f} | {w.percentile(50):.1f} | {w.percentile(99):.1f} | {w.errors} | "
                     f"{w.rps / first if first else 0:.2f}x |")
    ratio = windows[-1].rps / first if first else 0
    lines += ["", "| goal | measured | status |", "|---|---|---|",
              f"| soak: last window >= {SOAK_GOAL}x the first | {ratio:.2f}x | {mark(ratio >= SOAK_GOAL)} |"]
    return "\n".join(lines)


def run_load(info: stack.StackInfo, settings: dict[str, int], duration: float, warmup: float, chosen: tuple[str, ...]) -> str:
    """Stack, floor, minimal and baseline in turn at each concurrency (whichever of them ``chosen``
    asks for; minimal runs with the floor, on the same broker)."""
    with_stack = "load" in chosen
    with_floor = "floor" in chosen and bool(info.kafka_bootstrap)
    if "floor" in chosen and not with_floor:
        print("floor: skipped, the stack's broker is unknown (set BENCH_KAFKA_BOOTSTRAP_SERVERS)", flush=True)
    if not (with_stack or with_floor):
        return "load: nothing to measure"
    results, meters, breakdown = {}, {}, {}
    urls = stages.health_urls(info.run_dir)
    baseline = baseline_url = bench_floor = bench_minimal = None
    try:
        if with_stack:
            baseline, baseline_url = start_baseline(info.database_url)
        if with_floor:
            print("floor: starting the echo process on the stack's broker ...", flush=True)
            # the launcher turns rolling on for the Tansu it starts unless KAFKA_ROLL_TOPICS says otherwise
            own_broker = info.launcher is not None and "KAFKA_ROLL_TOPICS" not in os.environ
            bench_floor = floor.Floor(info.kafka_bootstrap, True if own_broker else None)
            print("minimal: starting its service and HTTP processes on the stack's broker ...", flush=True)
            bench_minimal = minimal.Minimal(info.kafka_bootstrap, info.database_url, True if own_broker else None)
        for concurrency in (1, 32):
            if with_stack:
                print(f"load: stack at concurrency {concurrency} ...", flush=True)
                before = stages.snapshot(urls)
                meter = cpu.Meter(lambda: {**cpu.stack_processes(info.gateway_url, info.database_url), os.getpid(): LOAD_GENERATOR})
                results["stack", concurrency] = asyncio.run(load.run(
                    info.gateway_url + PATH, info.api_key, concurrency, duration, warmup,
                    on_window=lambda edge: meter.start() if edge == "start" else meter.stop()))
                meters["stack", concurrency] = meter
                if urls:
                    breakdown[concurrency] = stages.means_ms(before, stages.snapshot(urls))
            if with_floor:
                print(f"load: floor at concurrency {concurrency} ...", flush=True)
                result, meters["floor", concurrency] = bench_floor.run(concurrency, duration, warmup)
                results["floor", concurrency] = load.LoadResult(**result)
                print(f"load: minimal at concurrency {concurrency} ...", flush=True)
                meter = cpu.Meter(lambda: {**bench_minimal.processes(), os.getpid(): LOAD_GENERATOR})
                results["minimal", concurrency] = asyncio.run(load.run(
                    bench_minimal.url, info.api_key, concurrency, duration, warmup,
                    on_window=lambda edge: meter.start() if edge == "start" else meter.stop()))
                meters["minimal", concurrency] = meter
            if with_stack:
                print(f"load: baseline at concurrency {concurrency} ...", flush=True)
                results["baseline", concurrency] = asyncio.run(load.run(baseline_url + PATH, info.api_key, concurrency, duration, warmup))
    finally:
        if bench_minimal is not None:
            bench_minimal.stop()
        if bench_floor is not None:
            bench_floor.stop()
        if baseline is not None:
            baseline.terminate()
            try:
                baseline.wait(10)
            except subprocess.TimeoutExpired:
                baseline.kill()
    lines = [report(results, settings, duration, warmup, bench_floor.rolled if bench_floor else None), "", cpu_report(results, meters)]
    if breakdown:
        lines.append("\nwhere the time goes (stack, mean ms per stage, warm-up included):\n")
        lines.append("| stage | " + " | ".join(f"concurrency {c}" for c in breakdown) + " |")
        lines.append("|---|" + "---|" * len(breakdown))
        for name, _env, _metric in stages.STAGES:
            lines.append(f"| {name} | " + " | ".join(f"{breakdown[c].get(name, float('nan')):.1f}" for c in breakdown) + " |")
    return "\n".join(lines)


def run_idle(info: stack.StackInfo, settings: dict[str, int], idle_s: float) -> str:
    settle = settings["kafka_busy_window_ms"] / 1000 + settings["kafka_fetch_wait_idle_ms"] / 1000 + 3
    print(f"waiting {settle:.1f} s for the busy window to pass, then measuring idle CPU for {idle_s:g} s ...", flush=True)
    time.sleep(settle)
    idle_cpu = idle.measure(info.gateway_url, info.database_url, idle_s)
    cold = asyncio.run(load.one(info.gateway_url + PATH, info.api_key))
    return idle_report(idle_cpu, idle_s) + f"\n\nfirst request after idle (pays the in-flight idle fetch waits): {cold:.0f} ms"


def run_ingest(info: stack.StackInfo) -> str:
    """bench.ingest, with the stack's processes (CPU per order, py-spy) and health URLs (stages) when known."""
    try:
        cpu.stack_processes(info.gateway_url, info.database_url)
        find = lambda: cpu.stack_processes(info.gateway_url, info.database_url)  # noqa: E731
    except RuntimeError:
        find = None
    return asyncio.run(ingest.scenario(info.gateway_url, info.api_key, info.database_url, find,
                                       stages.health_urls(info.run_dir)))


def run_soak(info: stack.StackInfo) -> str:
    duration, window = env_float("SOAK_DURATION_S", 300), env_float("SOAK_WINDOW_S", 30)
    concurrency = int(env_float("SOAK_CONCURRENCY", 32))
    print(f"soak: concurrency {concurrency} for {duration:g} s in {window:g} s windows ...", flush=True)
    windows = asyncio.run(load.soak(info.gateway_url + PATH, info.api_key, concurrency, duration, window))
    return soak_report(windows, window)


def main() -> int:
    duration, warmup, idle_s = env_float("BENCH_DURATION_S", 10), env_float("BENCH_WARMUP_S", 2), env_float("BENCH_IDLE_S", 60)
    chosen = parts()
    settings = pacing()
    info = stack.from_env()
    if info is None:
        print("starting the stack (launcher, temporary run dir) ...", flush=True)
        info = stack.start()
        print(f"stack ready: {info.gateway_url} (run dir {info.run_dir})", flush=True)
    try:
        print(f"pacing: busy {settings['kafka_fetch_wait_busy_ms']} ms, idle {settings['kafka_fetch_wait_idle_ms']} ms, "
              f"window {settings['kafka_busy_window_ms']} ms", flush=True)
        sections = []
        for part in PARTS:
            if part not in chosen or part == "floor" and "load" in chosen:  # load runs the floor beside the stack
                continue
            if part in ("load", "floor"):
                sections.append(run_load(info, settings, duration, warmup, chosen))
            elif part == "gateway":
                sections.append(gateway_features.run(info, duration, warmup))
            elif part == "accept":
                sections.append(accept.run(info, duration, warmup))
            elif part == "fanout":
                sections.append(fanout.run(info))
            elif part == "ingest":
                sections.append(run_ingest(info))
            elif part == "idle":
                sections.append(run_idle(info, settings, idle_s))
            else:
                sections.append(run_soak(info))
        print()
        print("\n\n".join(sections))
        return 0
    finally:
        print("stopping the stack ...", flush=True)
        stack.stop(info)
        stack.cleanup(info)


if __name__ == "__main__":
    sys.exit(main())
