"""CPU seconds per process kind between two moments, from psutil CPU-time deltas.

Processes are found by their listening ports, so this works for a stack we started and for a
reused one: the gateway's listener's parent is the launcher, whose children are the services and
Tansu; Postgres is daemonized by pg_ctl (not a launcher child), so its tree is found from the
listener on the DATABASE_URL port (postmaster plus backends, checkpointer, walwriter, ...).
Unlike req/s on a shared box, CPU per request is stable from run to run: judge changes by it.
"""
from __future__ import annotations

import time
from collections import defaultdict
from typing import Callable
from urllib.parse import urlsplit

import psutil


def listener(port: int) -> psutil.Process | None:
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


def postgres_processes(database_url: str) -> dict[int, str]:
    """pid -> "postgres" for the postmaster on the DATABASE_URL port and all its children."""
    postmaster = listener(urlsplit(database_url).port)
    if postmaster is None:
        raise RuntimeError("cannot find the Postgres listener (need permission to see other users' sockets)")
    return {p.pid: "postgres" for p in [postmaster, *postmaster.children(recursive=True)]}


def stack_processes(gateway_url: str, database_url: str) -> dict[int, str]:
    """pid -> kind for every process of the stack (the launcher itself excluded)."""
    gateway = listener(urlsplit(gateway_url).port)
    postmaster = listener(urlsplit(database_url).port)
    if gateway is None or postmaster is None:
        raise RuntimeError("cannot find the gateway or Postgres listener (need permission to see other users' sockets)")
    launcher = gateway.parent()
    members = [p for p in launcher.children(recursive=True)] if launcher and launcher.pid != 1 else [gateway]
    postgres = [postmaster, *postmaster.children(recursive=True)]
    postgres_pids = {p.pid for p in postgres}
    return {p.pid: _kind(p, postgres_pids) for p in [*members, *postgres]}


def cpu_seconds(pids: dict[int, str]) -> dict[int, float]:
    used = {}
    for pid in pids:
        try:
            times = psutil.Process(pid).cpu_times()
            used[pid] = times.user + times.system
        except psutil.NoSuchProcess:
            pass
    return used


class Meter:
    """CPU seconds per kind between ``start()`` and ``stop()``. ``find`` (pid -> kind) is asked at
    both ends; a process that appeared meanwhile (e.g. a new Postgres backend) counts from zero."""

    def __init__(self, find: Callable[[], dict[int, str]]) -> None:
        self._find = find
        self._pids: dict[int, str] = {}
        self._before: dict[int, float] = {}
        self._started = 0.0
        self.seconds: dict[str, float] = {}
        self.elapsed = 0.0

    def start(self) -> None:
        self._pids = self._find()
        self._before = cpu_seconds(self._pids)
        self._started = time.monotonic()

    def stop(self) -> dict[str, float]:
        self.elapsed = time.monotonic() - self._started
        self._pids.update(self._find())
        by_kind: dict[str, float] = defaultdict(float)
        for pid, used in cpu_seconds(self._pids).items():
            by_kind[self._pids[pid]] += used - self._before.get(pid, 0.0)
        self.seconds = dict(by_kind)
        return self.seconds
