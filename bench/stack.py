"""Start the whole stack with the ``make run`` launcher in a temporary run dir, or reuse one.

The launcher writes ``<run dir>/stack.env`` only once every service answered /readyz, so the file's
appearance is the readiness signal; SIGINT makes it stop the services, the broker and Postgres.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from posint_common.devstack.processes import free_port

READY_TIMEOUT_S = 180
STOP_TIMEOUT_S = 60


@dataclass
class StackInfo:
    gateway_url: str
    api_key: str
    database_url: str
    launcher: subprocess.Popen | None = None  # None when reusing a stack someone else runs
    run_dir: Path | None = None
    kafka_bootstrap: str = ""  # the stack's broker, for the floor ("" when unknown: no floor)


def from_env() -> StackInfo | None:
    """A running stack named by BENCH_GATEWAY_URL + BENCH_API_KEY + BENCH_DATABASE_URL, if all are set
    (and its broker by BENCH_KAFKA_BOOTSTRAP_SERVERS, for the floor)."""
    names = ("BENCH_GATEWAY_URL", "BENCH_API_KEY", "BENCH_DATABASE_URL")
    values = [os.environ.get(name, "") for name in names]
    if not all(values):
        return None
    url, key, dsn = values
    bootstrap = os.environ.get("BENCH_KAFKA_BOOTSTRAP_SERVERS", "")
    if "127.0.0.1" not in url or "127.0.0.1" not in dsn or (bootstrap and not bootstrap.startswith("127.0.0.1:")):
        raise SystemExit("bench runs on loopback only: BENCH_GATEWAY_URL, BENCH_DATABASE_URL and "
                         "BENCH_KAFKA_BOOTSTRAP_SERVERS must use 127.0.0.1")
    return StackInfo(url.rstrip("/"), key.strip(), dsn, kafka_bootstrap=bootstrap)


def start() -> StackInfo:
    run_dir = Path(tempfile.mkdtemp(prefix="posint-bench-"))
    env = {**os.environ, "POSINT_RUN_DIR": str(run_dir), "GATEWAY_PORT": str(free_port())}
    for name in ("DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS"):  # always our own embedded infrastructure
        env.pop(name, None)
    for name in ("RATE_LIMIT_PER_SECOND", "RATE_LIMIT_BURST"):  # the bench's one key measures the path, not the limiter's 429s
        env.setdefault(name, "1000000")
    log = open(run_dir / "launcher.log", "ab")
    launcher = subprocess.Popen([sys.executable, "-m", "posint_devstack"], stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=env)
    log.close()
    env_file = run_dir / "stack.env"
    deadline = time.monotonic() + READY_TIMEOUT_S
    while not env_file.exists():
        if launcher.poll() is not None:
            raise RuntimeError(f"launcher exited ({launcher.returncode}); see {run_dir / 'launcher.log'}")
        if time.monotonic() > deadline:
            stop(StackInfo("", "", "", launcher, run_dir))
            raise RuntimeError(f"stack not ready after {READY_TIMEOUT_S}s; see {run_dir / 'launcher.log'}")
        time.sleep(0.25)
    values = dict(line.split("=", 1) for line in env_file.read_text().splitlines() if "=" in line)
    api_key = (run_dir / "api-key").read_text().strip()
    return StackInfo(values["GATEWAY_URL"], api_key, values["DATABASE_URL"], launcher, run_dir, values["KAFKA_BOOTSTRAP_SERVERS"])


def stop(info: StackInfo) -> None:
    """SIGINT the launcher and wait; it stops its children, the broker and Postgres itself."""
    launcher = info.launcher
    if launcher is None or launcher.poll() is not None:
        return
    launcher.send_signal(signal.SIGINT)
    try:
        launcher.wait(STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        launcher.kill()  # children die with it (PR_SET_PDEATHSIG); Postgres may be left behind
        launcher.wait(5)


def cleanup(info: StackInfo) -> None:
    """Remove our temporary run dir once the launcher is gone (kept if it is still running)."""
    if info.run_dir is not None and info.launcher is not None and info.launcher.poll() is not None:
        shutil.rmtree(info.run_dir, ignore_errors=True)
