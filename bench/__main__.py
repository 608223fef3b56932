"""``make bench``: start (or reuse) the stack and a baseline, load both, measure idle CPU, report.

Env: BENCH_DURATION_S (per load run, default 10), BENCH_WARMUP_S (default 2), BENCH_IDLE_S
(default 60); SOAK_DURATION_S (default 300), SOAK_WINDOW_S (default 30), SOAK_CONCURRENCY (default
32); BENCH_ONLY picks parts (comma list of load, idle, soak; default all three, in that order);
BENCH_GATEWAY_URL + BENCH_API_KEY + BENCH_DATABASE_URL reuse a running stack. The KAFKA_* variables
are passed through to the services the launcher starts.
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

from bench import idle, load, stack, stages

ROOT = Path(__file__).resolve().parents[1]
PATH = "/api/v1/integrations"
PACING = ("kafka_fetch_wait_busy_ms", "kafka_fetch_wait_idle_ms", "kafka_busy_window_ms")
PARTS = ("load", "idle", "soak")
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


def report(results: dict, settings: dict[str, int], duration: float) -> str:
    lines = [f"{duration:g} s per run", "",
             "| target | concurrency | req/s | p50 ms | p99 ms | errors |", "|---|---|---|---|---|---|"]
    for (target, concurrency), r in results.items():
        lines.append(f"| {target} | {concurrency} | {r.rps:.0f} | {r.percentile(50):.1f} | {r.percentile(99):.1f} | {r.errors} |")
    lines.append("")
    lines.append("| concurrency | stack/baseline req/s | stack/baseline p50 |")
    lines.append("|---|---|---|")
    for concurrency in sorted({c for _, c in results}):
        s, b = results["stack", concurrency], results["baseline", concurrency]
        lines.append(f"| {concurrency} | {s.rps / b.rps if b.rps else 0:.2f}x | {s.percentile(50) / b.percentile(50):.1f}x |")
    ratio32 = results["stack", 32].rps / results["baseline", 32].rps if results["baseline", 32].rps else 0
    p50 = results["stack", 1].percentile(50)
    lines += ["", "| goal | measured | status |", "|---|---|---|",
              f"| throughput at concurrency 32 >= 0.5x baseline | {ratio32:.2f}x | {mark(ratio32 >= 0.5)} |",
              f"| p50 at concurrency 1 <= 5 ms | {p50:.1f} ms | {mark(p50 <= 5)} |"]
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


def run_load(info: stack.StackInfo, settings: dict[str, int], duration: float, warmup: float) -> str:
    baseline, baseline_url = start_baseline(info.database_url)
    try:
        targets = {"stack": info.gateway_url + PATH, "baseline": baseline_url + PATH}
        results = {}
        urls = stages.health_urls(info.run_dir)
        breakdown = {}
        for concurrency in (1, 32):
            for target, url in targets.items():
                print(f"load: {target} at concurrency {concurrency} ...", flush=True)
                before = stages.snapshot(urls) if target == "stack" else {}
                results[target, concurrency] = asyncio.run(load.run(url, info.api_key, concurrency, duration, warmup))
                if target == "stack" and urls:
                    breakdown[concurrency] = stages.means_ms(before, stages.snapshot(urls))
    finally:
        baseline.terminate()
        try:
            baseline.wait(10)
        except subprocess.TimeoutExpired:
            baseline.kill()
    lines = [report(results, settings, duration)]
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
            if part not in chosen:
                continue
            if part == "load":
                sections.append(run_load(info, settings, duration, warmup))
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
