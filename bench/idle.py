"""CPU used by an idle stack, per process kind, from psutil CPU-time deltas.

The stack is found by listening ports, so it works for a stack we started and for a reused one:
the gateway's listener's parent is the launcher, whose children are the four services and Tansu;
Postgres is daemonized by pg_ctl (not a launcher child), so its tree is found from the listener on
the DATABASE_URL port (postmaster plus backends, checkpointer, walwriter, ...).
"""
from __future__ import annotations

import time
from collections import defaultdict
from urllib.parse import urlsplit

import psutil


def _listener(port: int) -> psutil.Process | None:
    for conn in psutil.net_connections(kind="tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.laddr.port == port and conn.pid:
            return psutil.Process(conn.pid)
    return None


def _kind(process: psutil.Process, postgres_pids: set[int]) -> str:
    if process.pid in postgres_pids:
        return "postgres"
    cmdline = process.cmdline()
    if "-m" in cmdline:
        return cmdline[cmdline.index("-m") + 1]
    return "tansu" if any("tansu" in part or "broker" in part for part in cmdline[:2]) else process.name()


def stack_processes(gateway_url: str, database_url: str) -> dict[int, str]:
    """pid -> kind for every process of the stack (the launcher itself excluded)."""
    gateway = _listener(urlsplit(gateway_url).port)
    postmaster = _listener(urlsplit(database_url).port)
    if gateway is None or postmaster is None:
        raise RuntimeError("cannot find the gateway or Postgres listener (need permission to see other users' sockets)")
    launcher = gateway.parent()
    members = [p for p in launcher.children(recursive=True)] if launcher and launcher.pid != 1 else [gateway]
    postgres = [postmaster, *postmaster.children(recursive=True)]
    postgres_pids = {p.pid for p in postgres}
    return {p.pid: _kind(p, postgres_pids) for p in [*members, *postgres]}


def _cpu_seconds(pids: dict[int, str]) -> dict[int, float]:
    used = {}
    for pid in pids:
        try:
            times = psutil.Process(pid).cpu_times()
            used[pid] = times.user + times.system
        except psutil.NoSuchProcess:
            pass
    return used


def measure(gateway_url: str, database_url: str, seconds: float) -> dict[str, float]:
    """Percent of one core per kind over ``seconds`` (plus "total"); processes started meanwhile
    (e.g. a new Postgres backend) are counted from zero."""
    pids = stack_processes(gateway_url, database_url)
    before = _cpu_seconds(pids)
    started = time.monotonic()
    time.sleep(seconds)
    elapsed = time.monotonic() - started
    pids.update(stack_processes(gateway_url, database_url))
    after = _cpu_seconds(pids)
    by_kind: dict[str, float] = defaultdict(float)
    for pid, used in after.items():
        by_kind[pids[pid]] += (used - before.get(pid, 0.0)) / elapsed * 100
    by_kind["total"] = sum(by_kind.values())
    return dict(by_kind)
