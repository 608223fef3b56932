"""Starts the whole stack in order, restarts a service that crashes (with a growing delay, as
Kubernetes would), and stops it all in reverse order on Ctrl-C; every child dies with the launcher.

Children run in their own sessions, so a terminal's Ctrl-C (SIGINT to the foreground process
group) reaches only the launcher, which then stops the services, the broker and Postgres in that
order. Settings are checked before anything starts; a problem is one console line naming it."""
from __future__ import annotations

import asyncio
import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Mapping
from urllib.parse import urlsplit

import aiohttp
import asyncpg

from integrations.adapters.vault import KeyRing as IntegrationsKeyRing
from integrations.keys import ensure_dev_keys
from posint_common import vault
from posint_common.contracts import topics
from posint_common.devstack.broker import EmbeddedBroker
from posint_common.envelope import TransportKeyRing
from posint_common.devstack.postgres import EmbeddedPostgres
from posint_common.devstack.processes import free_port, spawn, terminate
from posint_common.kafka import DEFAULT_PARTITIONS, ensure_topics
from posint_common.settings import postgres_location
from webhook_dispatcher.adapters.vault import KeyRing as WebhooksKeyRing

from posint_devstack.files import write_private
from posint_devstack.seed import seed_demo

SERVICES = ("integrations", "orders", "webhook_dispatcher", "gateway")
READY_TIMEOUT_S = 90
SERVICE_STOP_TIMEOUT_S = 25  # a service bounds its own stop at 20 s
PREFLIGHT_TIMEOUT_S = 10
FIRST_RESTART_DELAY_S = 1  # then doubled after each quick exit ...
MAX_RESTART_DELAY_S = 30  # ... up to this
STABLE_AFTER_S = 60  # a service that ran this long starts again from the first delay
CRASH_LOOP_EXITS = 5  # quick exits in a row before the launcher shows the service's log
LOG_TAIL_LINES = 15
LOCK_FILE = "launcher.lock"
ENV_FILE = "stack.env"


class StartError(Exception):
    """The stack cannot start until the operator fixes something; the message says what."""


class ConfigError(StartError):
    """A bad setting; the message names the variable."""


@dataclass(frozen=True)
class Config:
    run_dir: Path
    gateway_host: str
    gateway_port: int
    topic_partitions: int
    database_url: str  # empty: start the embedded Postgres
    bootstrap_servers: str  # empty: start the embedded broker
    sandbox_port: int = 0  # the fake platforms (sandbox.platforms); 0: a free port, shown and in stack.env

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> Config:
        return cls(
            run_dir=Path(env.get("POSINT_RUN_DIR") or ".run").resolve(),
            gateway_host=env.get("GATEWAY_HOST") or "127.0.0.1",
            gateway_port=whole_number(env, "GATEWAY_PORT", 8080, 0, 65535),
            topic_partitions=whole_number(env, "KAFKA_TOPIC_PARTITIONS", DEFAULT_PARTITIONS, 1, 1000),
            database_url=env.get("DATABASE_URL", ""),
            bootstrap_servers=env.get("KAFKA_BOOTSTRAP_SERVERS", ""),
            sandbox_port=whole_number(env, "SANDBOX_PLATFORMS_PORT", 0, 0, 65535),
        )


def whole_number(env: Mapping[str, str], variable: str, default: int, low: int, high: int) -> int:
    text = env.get(variable, "").strip() or str(default)
    try:
        value = int(text)
    except ValueError:
        value = None
    if value is None or not low <= value <= high:
        raise ConfigError(f"{variable} must be a whole number from {low} to {high}, not {text!r}")
    return value


def check_port_free(host: str, port: int, service: str, variable: str) -> None:
    """Fail now, naming the port, rather than after everything else has started."""
    if port == 0:
        return
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the service's own listener does
        try:
            probe.bind((host, port))
        except OSError as error:
            raise StartError(f"the {service} port {host}:{port} ({variable}) is already in use or not available: "
                             f"{error.strerror or error}; stop what uses it or set {variable}") from None


async def check_postgres(database_url: str) -> None:
    """An external DATABASE_URL must answer before anything is started."""
    try:
        connection = await asyncpg.connect(database_url, timeout=PREFLIGHT_TIMEOUT_S)
    except Exception as error:
        raise StartError(f"cannot reach Postgres at {postgres_location(database_url)} (DATABASE_URL): "
                         f"{without_password(error, database_url)}") from None
    await connection.close()


def without_password(error: BaseException, database_url: str) -> str:
    text = str(error) or type(error).__name__
    try:
        password = urlsplit(database_url).password
    except ValueError:
        password = None
    return text.replace(password, "[redacted]") if password else text


def exit_status(code: int) -> str:
    return f"signal {signal.Signals(-code).name}" if code < 0 else f"status {code}"


@dataclass
class Service:
    """One service process, restarted in place: same health port, same log file (appended)."""

    module: str
    log_path: Path
    env: dict[str, str]
    health_port: int = field(default_factory=free_port)
    process: subprocess.Popen | None = None
    started_at: float = 0.0
    log_offset: int = 0

    @property
    def health_url(self) -> str:
        return f"http://127.0.0.1:{self.health_port}"

    def start(self) -> None:
        self.log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        self.process = spawn([sys.executable, "-m", self.module], self.log_path, {**self.env, "HEALTH_PORT": str(self.health_port)})
        self.started_at = time.monotonic()

    def output(self) -> list[str]:
        """What this run of the service has written so far."""
        if not self.log_path.exists():
            return []
        with open(self.log_path, "rb") as log:
            log.seek(self.log_offset)
            return [line for line in log.read().decode(errors="replace").splitlines() if line.strip()]

    def last_words(self) -> str:
        """The service's own one-line account of a failed start, else its last line."""
        lines = self.output()
        for line in reversed(lines):
            if line.startswith("configuration error:"):
                return line
            if logged(line).get("event") == "service_failed":
                return logged(line).get("error", line)
        return lines[-1] if lines else "no output"

    def bound_ports(self) -> dict[str, int]:
        """The ports this run listens on, from its `service_started` line (GATEWAY_PORT=0 picks one)."""
        for line in self.output():
            if logged(line).get("event") == "service_started":
                return logged(line).get("ports", {})
        return {}


def logged(line: str) -> dict:
    try:
        event = json.loads(line)
    except ValueError:
        return {}
    return event if isinstance(event, dict) else {}


class Stack:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.run_dir = config.run_dir
        self.gateway_port = config.gateway_port
        self.database_url = config.database_url
        self.bootstrap_servers = config.bootstrap_servers
        self.postgres: EmbeddedPostgres | None = None
        self.broker: EmbeddedBroker | None = None
        self.services: list[Service] = []
        self.sandbox: Service | None = None
        self.pos: Service | None = None  # the reference POS (sandbox.pos)

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    async def preflight(self) -> None:
        check_port_free(self.config.gateway_host, self.gateway_port, "gateway", "GATEWAY_PORT")
        check_port_free("127.0.0.1", self.config.sandbox_port, "sandbox platforms", "SANDBOX_PLATFORMS_PORT")
        if self.database_url:
            await check_postgres(self.database_url)

    def start_infrastructure(self) -> None:
        if not self.database_url:
            self.postgres = EmbeddedPostgres(self.run_dir / "pg")
            self.database_url = self.postgres.start()
            say(f"embedded postgres on 127.0.0.1:{self.postgres.port} (data in {self.postgres.data_dir})")
        if not self.bootstrap_servers:
            self.broker = EmbeddedBroker(self.run_dir / "logs" / "tansu.log")
            self.bootstrap_servers = self.broker.start()
            say(f"embedded tansu broker on {self.bootstrap_servers}")

    async def create_topics(self) -> None:
        try:
            await ensure_topics(self.bootstrap_servers, topics.ALL, self.config.topic_partitions)
        except Exception as error:
            where = "the embedded broker" if self.broker else "the Kafka broker (KAFKA_BOOTSTRAP_SERVERS)"
            raise StartError(f"cannot reach {where} at {self.bootstrap_servers}: {error}") from None

    async def start_sandbox(self) -> None:
        """The fake delivery and accounting platforms the demo integrations talk to (sandbox/)."""
        self.sandbox = Service("sandbox.platforms", self.run_dir / "logs" / "sandbox-platforms.log",
                               {"SANDBOX_PLATFORMS_PORT": str(self.config.sandbox_port)})
        self.sandbox.start()
        if not await until_ready(self.sandbox, READY_TIMEOUT_S):
            raise StartError(f"the sandbox platforms did not start: {self.sandbox.last_words()} (log: {self.sandbox.log_path})")
        self.sandbox.env["SANDBOX_PLATFORMS_PORT"] = str(self.sandbox.bound_ports()["http"])  # kept across restarts
        say(f"sandbox platforms on {self.sandbox_url} (control: {self.sandbox_url}/<provider>/_control/state)")

    @property
    def sandbox_url(self) -> str:
        return f"http://127.0.0.1:{self.sandbox.env['SANDBOX_PLATFORMS_PORT']}" if self.sandbox else ""

    def start_pos(self) -> None:
        """The reference POS: injects accepted orders from pos.orders, answers on pos.order-events."""
        self.pos = Service("sandbox.pos", self.run_dir / "logs" / "sandbox-pos.log",
                           {"KAFKA_BOOTSTRAP_SERVERS": self.bootstrap_servers,
                            "POS_CONTROL_PORT": os.environ.get("POS_CONTROL_PORT", "0")})
        self.pos.start()

    async def pos_ready(self) -> None:
        if not await until_ready(self.pos, READY_TIMEOUT_S):
            raise StartError(f"the reference POS did not start: {self.pos.last_words()} (log: {self.pos.log_path})")
        self.pos.env["POS_CONTROL_PORT"] = str(self.pos.bound_ports()["control"])  # kept across restarts
        say(f"reference POS: control {self.pos_url}/state (PUT /behaviour, POST /orders/<id>/ready|completed ...)")

    @property
    def pos_url(self) -> str:
        return f"http://127.0.0.1:{self.pos.env['POS_CONTROL_PORT']}" if self.pos else ""

    def integrations_keys(self) -> str:
        return os.environ.get("INTEGRATIONS_ENCRYPTION_KEYS") or ensure_dev_keys(self.run_dir / "integrations-keys")

    def transport_keys(self) -> str:
        """TRANSPORT_KEYS, one ring for every service, kept in ``.run/transport-keys`` (0600) across runs."""
        return os.environ.get("TRANSPORT_KEYS") or vault.ensure_dev_keys(self.run_dir / "transport-keys", TransportKeyRing)

    def start_services(self) -> None:
        keys = self.integrations_keys()
        env = {"DATABASE_URL": self.database_url, "KAFKA_BOOTSTRAP_SERVERS": self.bootstrap_servers,
               "GATEWAY_PORT": str(self.gateway_port), "INTEGRATIONS_ENCRYPTION_KEYS": keys,
               # outbound HTTP (webhooks) may reach only this machine's receivers (posint_common.egress)
               "EGRESS_ALLOW": os.environ.get("EGRESS_ALLOW", "127.0.0.0/8"),
               "EGRESS_ALLOW_ONLY": os.environ.get("EGRESS_ALLOW_ONLY", "true"),
               "WEBHOOKS_ENCRYPTION_KEYS": os.environ.get("WEBHOOKS_ENCRYPTION_KEYS")
               or vault.ensure_dev_keys(self.run_dir / "webhooks-keys", WebhooksKeyRing),
               "WEBHOOKS_ALLOW_HTTP": os.environ.get("WEBHOOKS_ALLOW_HTTP", "true"),  # receivers on 127.0.0.1
               # seals the messages that carry secrets on the broker (posint_common.envelope)
               "TRANSPORT_KEYS": self.transport_keys()}
        if self.broker:  # the embedded Tansu never drops a record: roll request/reply topics
            env["KAFKA_ROLL_TOPICS"] = os.environ.get("KAFKA_ROLL_TOPICS", "true")
        for module in SERVICES:
            service = Service(module, self.run_dir / "logs" / f"{module}.log", env)
            service.start()
            self.services.append(service)

    async def wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        for service in self.services:
            if not await until_ready(service, deadline - time.monotonic()):
                why = service.last_words() if service.process.poll() is not None else f"not ready after {READY_TIMEOUT_S} s"
                raise StartError(f"{service.module} did not start: {why} (log: {service.log_path})")
        if self.gateway_port == 0:  # keep the port it picked, also across its restarts
            self.gateway_port = self.services[-1].bound_ports()["http"]
            for service in self.services:
                service.env = {**service.env, "GATEWAY_PORT": str(self.gateway_port)}

    async def keep_running(self, service: Service) -> None:
        """Restart ``service`` whenever it exits: after 1, 2, 4 ... 30 s, from 1 s again once it
        has run for a while; a crash loop shows the end of the service's log."""
        delay, quick_exits = FIRST_RESTART_DELAY_S, 0
        while True:
            while service.process.poll() is None:
                await asyncio.sleep(0.5)
            if time.monotonic() - service.started_at >= STABLE_AFTER_S:
                delay, quick_exits = FIRST_RESTART_DELAY_S, 0
            quick_exits += 1
            say(f"{service.module} exited ({exit_status(service.process.returncode)}); restarting in {delay} s")
            if quick_exits == CRASH_LOOP_EXITS:
                tail = "\n".join(f"    {line}" for line in service.output()[-LOG_TAIL_LINES:])
                say(f"{service.module} keeps crashing ({quick_exits} exits within {STABLE_AFTER_S} s of starting); "
                    f"last lines of its log ({service.log_path}):\n{tail}")
            await asyncio.sleep(delay)
            delay = min(delay * 2, MAX_RESTART_DELAY_S)
            service.start()
            if await until_ready(service, READY_TIMEOUT_S):
                say(f"{service.module} is ready again")

    def write_env(self) -> None:
        lines = [f"LAUNCHER_PID={os.getpid()}", f"DATABASE_URL={self.database_url}",
                 f"KAFKA_BOOTSTRAP_SERVERS={self.bootstrap_servers}", f"GATEWAY_URL={self.gateway_url}"]
        lines += [f"{s.module.upper()}_HEALTH_URL={s.health_url}" for s in self.services]
        lines += [f"SANDBOX_PLATFORMS_URL={self.sandbox_url}"] if self.sandbox else []
        lines += [f"SANDBOX_POS_URL={self.pos_url}"] if self.pos else []
        write_private(self.run_dir / ENV_FILE, "\n".join(lines) + "\n")  # a DATABASE_URL may hold a password

    def stop(self) -> None:
        (self.run_dir / ENV_FILE).unlink(missing_ok=True)
        for service in reversed(self.services):
            terminate(service.process, SERVICE_STOP_TIMEOUT_S)
        if self.pos and self.pos.process:
            terminate(self.pos.process, SERVICE_STOP_TIMEOUT_S)
        if self.sandbox and self.sandbox.process:
            terminate(self.sandbox.process, SERVICE_STOP_TIMEOUT_S)
        if self.broker:
            self.broker.stop()
        if self.postgres:
            self.postgres.stop()


async def until_ready(service: Service, timeout_s: float) -> bool:
    """Poll the service's /readyz; False if it exits or the time runs out."""
    deadline = time.monotonic() + timeout_s
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
        while service.process.poll() is None and time.monotonic() < deadline:
            try:
                async with session.get(service.health_url + "/readyz") as response:
                    if response.status == 200:
                        return True
            except (aiohttp.ClientError, asyncio.TimeoutError):
                pass
            await asyncio.sleep(0.2)
    return False


def say(message: str) -> None:
    print(f"[posint] {message}", flush=True)


async def run(stack: Stack) -> None:
    await stack.preflight()
    stack.start_infrastructure()
    await stack.create_topics()
    await stack.start_sandbox()
    api_key = await seed_demo(stack.database_url, stack.run_dir / "api-key", stack.sandbox_url,
                              IntegrationsKeyRing.parse(stack.integrations_keys()))
    if api_key:
        say(f"seeded demo tenant 'demo'; API key (also in {stack.run_dir / 'api-key'}):")
        print(api_key, flush=True)
    stack.start_services()
    stack.start_pos()
    await stack.wait_ready()
    await stack.pos_ready()
    stack.write_env()
    say(f"logs in {stack.run_dir / 'logs'}; connection details in {stack.run_dir / ENV_FILE}")
    say(f"gateway ready: {stack.gateway_url}  (try: curl -H \"Authorization: Bearer $(cat {stack.run_dir}/api-key)\" {stack.gateway_url}/api/v1/integrations)")
    await asyncio.gather(*(stack.keep_running(service) for service in [*stack.services, stack.sandbox, stack.pos]))


def hold_run_dir(run_dir: Path) -> IO | None:
    """One launcher per run directory: a second one would stop the first one's Postgres. The lock
    is held for the launcher's life and released by the kernel if it is killed."""
    run_dir.mkdir(parents=True, exist_ok=True)
    lock = open(run_dir / LOCK_FILE, "w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        return None
    return lock


def stack_running(run_dir: Path) -> bool:
    """True when a launcher holds ``run_dir`` and has written stack.env (the stack is ready); a
    stack.env left by a killed launcher does not count."""
    if not (run_dir / ENV_FILE).exists() or not (run_dir / LOCK_FILE).exists():
        return False
    with open(run_dir / LOCK_FILE, "rb") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
    return False


def main() -> int:
    try:
        config = Config.from_env(os.environ)
    except ConfigError as error:
        say(str(error))
        return 2
    lock = hold_run_dir(config.run_dir)
    if lock is None:
        say(f"a stack is already running from {config.run_dir}; stop it first (Ctrl-C) or set POSINT_RUN_DIR")
        return 1
    (config.run_dir / ENV_FILE).unlink(missing_ok=True)  # left by a killed launcher
    stack = Stack(config)

    async def until_signal() -> None:
        task = asyncio.current_task()
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            asyncio.get_running_loop().add_signal_handler(sig, task.cancel)
        await run(stack)

    try:
        asyncio.run(until_signal())
        return 0
    except (asyncio.CancelledError, KeyboardInterrupt):
        return 0
    except StartError as error:
        say(str(error))
        return 1
    except Exception as error:
        say(f"failed: {error}")
        return 1
    finally:
        if stack.services or stack.broker or stack.postgres or stack.sandbox:
            say("stopping")
            stack.stop()
            say("stopped")
        lock.close()
