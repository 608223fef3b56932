"""Starts and stops the whole stack in order; every child dies with the launcher."""
from __future__ import annotations

import asyncio
import fcntl
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from posint_common.contracts import topics
from posint_common.devstack.broker import EmbeddedBroker
from posint_common.devstack.postgres import EmbeddedPostgres
from posint_common.devstack.processes import free_port, spawn, terminate
from posint_common.kafka import DEFAULT_PARTITIONS, ensure_topics

from posint_devstack.seed import seed_demo

SERVICES = ("integrations", "orders", "webhook_dispatcher", "gateway")
READY_TIMEOUT_S = 90


@dataclass
class RunningService:
    module: str
    health_port: int
    process: subprocess.Popen


class Stack:
    def __init__(self, run_dir: Path, gateway_port: int) -> None:
        self.run_dir = run_dir
        self.gateway_port = gateway_port
        self.postgres: EmbeddedPostgres | None = None
        self.broker: EmbeddedBroker | None = None
        self.services: list[RunningService] = []
        self.database_url = os.environ.get("DATABASE_URL", "")
        self.bootstrap_servers = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "")

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    def start_infrastructure(self) -> None:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if not self.database_url:
            self.postgres = EmbeddedPostgres(self.run_dir / "pg")
            self.database_url = self.postgres.start()
            say(f"embedded postgres on 127.0.0.1:{self.postgres.port} (data in {self.postgres.data_dir})")
        if not self.bootstrap_servers:
            self.broker = EmbeddedBroker(self.run_dir / "logs" / "tansu.log")
            self.bootstrap_servers = self.broker.start()
            say(f"embedded tansu broker on {self.bootstrap_servers}")

    def start_services(self) -> None:
        env = {"DATABASE_URL": self.database_url, "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap_servers,
               "GATEWAY_PORT": str(self.gateway_port)}
        for module in SERVICES:
            port = free_port()
            process = spawn([sys.executable, "-m", module], self.run_dir / "logs" / f"{module}.log",
                            {**env, "HEALTH_PORT": str(port)})
            self.services.append(RunningService(module, port, process))

    async def wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        timeout = aiohttp.ClientTimeout(total=2)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            for service in self.services:
                while True:
                    if service.process.poll() is not None:
                        raise RuntimeError(f"{service.module} exited ({service.process.returncode}); see {self.log_of(service)}")
                    try:
                        async with session.get(f"http://127.0.0.1:{service.health_port}/readyz") as response:
                            if response.status == 200:
                                break
                    except (aiohttp.ClientError, asyncio.TimeoutError):
                        pass
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"{service.module} not ready after {READY_TIMEOUT_S}s; see {self.log_of(service)}")
                    await asyncio.sleep(0.2)

    def log_of(self, service: RunningService) -> Path:
        return self.run_dir / "logs" / f"{service.module}.log"

    def write_env(self) -> None:
        lines = [f"DATABASE_URL={self.database_url}", f"KAFKA_BOOTSTRAP_SERVERS={self.bootstrap_servers}",
                 f"GATEWAY_URL={self.gateway_url}"]
        lines += [f"{s.module.upper()}_HEALTH_URL=http://127.0.0.1:{s.health_port}" for s in self.services]
        (self.run_dir / "stack.env").write_text("\n".join(lines) + "\n")

    def stop(self) -> None:
        for service in reversed(self.services):
            terminate(service.process)
        if self.broker:
            self.broker.stop()
        if self.postgres:
            self.postgres.stop()
        env_file = self.run_dir / "stack.env"
        if env_file.exists():
            env_file.unlink()


def say(message: str) -> None:
    print(f"[posint] {message}", flush=True)


async def run(stack: Stack) -> None:
    stack.start_infrastructure()
    await ensure_topics(stack.bootstrap_servers, topics.ALL, int(os.environ.get("KAFKA_TOPIC_PARTITIONS", DEFAULT_PARTITIONS)))
    api_key = await seed_demo(stack.database_url, stack.run_dir / "api-key")
    if api_key:
        say(f"seeded demo tenant 'demo'; API key (also in {stack.run_dir / 'api-key'}):")
        print(api_key, flush=True)
    stack.start_services()
    await stack.wait_ready()
    stack.write_env()
    say(f"logs in {stack.run_dir / 'logs'}; connection details in {stack.run_dir / 'stack.env'}")
    say(f"gateway ready: {stack.gateway_url}  (try: curl -H \"Authorization: Bearer $(cat {stack.run_dir}/api-key)\" {stack.gateway_url}/api/v1/integrations)")
    while True:
        for service in stack.services:
            if service.process.poll() is not None:
                raise RuntimeError(f"{service.module} exited ({service.process.returncode}); see {stack.log_of(service)}")
        await asyncio.sleep(1.0)


def hold_run_dir(run_dir: Path):
    """One launcher per run directory: a second one would stop the first one's Postgres."""
    run_dir.mkdir(parents=True, exist_ok=True)
    lock = open(run_dir / "launcher.lock", "w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        return None
    return lock


def main() -> int:
    run_dir = Path(os.environ.get("POSINT_RUN_DIR", ".run")).resolve()
    lock = hold_run_dir(run_dir)
    if lock is None:
        say(f"a stack is already running from {run_dir}; stop it first (Ctrl-C) or set POSINT_RUN_DIR")
        return 1
    stack = Stack(run_dir, int(os.environ.get("GATEWAY_PORT", "8080")))

    async def until_signal() -> None:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, task.cancel)
        await run(stack)

    try:
        asyncio.run(until_signal())
        return 0
    except (asyncio.CancelledError, KeyboardInterrupt):
        return 0
    except Exception as error:
        say(f"failed: {error}")
        return 1
    finally:
        say("stopping")
        stack.stop()
        say("stopped")
