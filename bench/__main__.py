"""``make bench``: start (or reuse) the stack and a baseline, load both, measure idle CPU, report.

Env: BENCH_DURATION_S (per load run, default 10), BENCH_WARMUP_S (default 2), BENCH_IDLE_S
(default 60); BENCH_GATEWAY_URL + BENCH_API_KEY + BENCH_DATABASE_URL reuse a running stack. The
KAFKA_* pacing variables are passed through to the services the launcher starts.
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


def report(results: dict, idle_cpu: dict[str, float], settings: dict[str, int], duration: float, idle_s: float) -> str:
    lines = [f"pacing: busy {settings['kafka_fetch_wait_busy_ms']} ms, idle {settings['kafka_fetch_wait_idle_ms']} ms, "
             f"window {settings['kafka_busy_window_ms']} ms; {duration:g} s per run, idle over {idle_s:g} s", "",
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
    idle_total = idle_cpu["total"]
    lines += ["", "| goal | measured | status |", "|---|---|---|",
              f"| throughput at concurrency 32 >= 0.5x baseline | {ratio32:.2f}x | {mark(ratio32 >= 0.5)} |",
              f"| p50 at concurrency 1 <= 5 ms | {p50:.1f} ms | {mark(p50 <= 5)} |",
              f"| idle stack < 10% of one core | {idle_total:.1f}% | {mark(idle_total < 10)} |",
              "", "| idle process kind | % of one core |", "|---|---|"]
    lines += [f"| {kind} | {pct:.1f} |" for kind, pct in sorted(idle_cpu.items(), key=lambda kv: -kv[1]) if kind != "total"]
    lines.append(f"| **total** | **{idle_total:.1f}** |")
    return "\n".join(lines)


def main() -> int:
    duration, warmup, idle_s = env_float("BENCH_DURATION_S", 10), env_float("BENCH_WARMUP_S", 2), env_float("BENCH_IDLE_S", 60)
    settings = pacing()
    info = stack.from_env()
    if info is None:
        print("starting the stack (launcher, temporary run dir) ...", flush=True)
        info = stack.start()
        print(f"stack ready: {info.gateway_url} (run dir {info.run_dir})", flush=True)
    baseline = None
    try:
        baseline, baseline_url = start_baseline(info.database_url)
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
        baseline.terminate()
        baseline.wait(10)
        settle = settings["kafka_busy_window_ms"] / 1000 + settings["kafka_fetch_wait_idle_ms"] / 1000 + 3
        print(f"waiting {settle:.1f} s for the busy window to pass, then measuring idle CPU for {idle_s:g} s ...", flush=True)
        time.sleep(settle)
        idle_cpu = idle.measure(info.gateway_url, info.database_url, idle_s)
        cold = asyncio.run(load.one(targets["stack"], info.api_key))
        print()
        print(report(results, idle_cpu, settings, duration, idle_s))
        print(f"\nfirst request after idle (pays the in-flight idle fetch waits): {cold:.0f} ms")
        if breakdown:
            print("\nwhere the time goes (stack, mean ms per stage, warm-up included):\n")
            print("| stage | " + " | ".join(f"concurrency {c}" for c in breakdown) + " |")
            print("|---|" + "---|" * len(breakdown))
            for name, _env, _metric in stages.STAGES:
                print(f"| {name} | " + " | ".join(f"{breakdown[c].get(name, float('nan')):.1f}" for c in breakdown) + " |")
        return 0
    finally:
        if baseline is not None and baseline.poll() is None:
            baseline.kill()
        print("stopping the stack ...", flush=True)
        stack.stop(info)
        stack.cleanup(info)


if __name__ == "__main__":
    sys.exit(main())
