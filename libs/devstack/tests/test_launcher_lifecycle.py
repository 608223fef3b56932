"""What `make run` promises, against the real launcher as a terminal runs it, on one stack started
twice to keep the suite fast: embedded Postgres and broker, four services, the demo tenant and its
key, `make tenant` (which never lets make or a shell evaluate its NAME), one launcher per run dir,
GATEWAY_PORT=0 reporting the port bound, a clean start that warns about nothing, private secret
files, a crashed service restarted, a SIGKILLed launcher whose stack.env `make tenant` refuses and
whose stack the next start recovers with its data, and Ctrl-C to the whole process group stopping
everything in order with a clean `service_stopped` from each service and no orphan."""
import json
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import aiohttp
import asyncpg
import psutil
import pytest

from posint_common.testing import eventually

STARTUP_TIMEOUT_S = 180
REPO = Path(__file__).resolve().parents[3]
SERVICES = ("integrations", "orders", "webhook_dispatcher", "gateway")


class Launcher:
    """`python -m posint_devstack` in its own process group, as a terminal's foreground job; its
    console is read by a thread so the test can look at it while the launcher runs."""

    def __init__(self, run_dir: Path, gateway_port: int) -> None:
        env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS")}
        env.update(POSINT_RUN_DIR=str(run_dir), GATEWAY_PORT=str(gateway_port))
        self.run_dir = run_dir
        self.process = subprocess.Popen([sys.executable, "-m", "posint_devstack"], env=env, stdout=subprocess.PIPE,
                                        stderr=subprocess.STDOUT, text=True, start_new_session=True)
        self.lines: list[str] = []
        self._reader = threading.Thread(target=lambda: self.lines.extend(iter(self.process.stdout.readline, "")), daemon=True)
        self._reader.start()

    @property
    def console(self) -> str:
        return "".join(self.lines)

    def stack_env(self) -> dict[str, str]:
        try:
            text = (self.run_dir / "stack.env").read_text()
        except FileNotFoundError:
            return {}
        return dict(line.split("=", 1) for line in text.splitlines() if "=" in line)

    async def until_up(self) -> dict[str, str]:
        """Until this launcher wrote stack.env (one left by a killed launcher does not count)."""
        def up() -> bool:
            assert self.process.poll() is None, f"launcher exited: {self.console}"
            return self.stack_env().get("LAUNCHER_PID") == str(self.process.pid)

        await eventually(up, STARTUP_TIMEOUT_S, "the stack to come up")
        return self.stack_env()

    def service(self, module: str) -> psutil.Process:
        matches = [p for p in psutil.Process(self.process.pid).children()
                   if p.is_running() and p.cmdline()[-2:] == ["-m", module]]
        assert len(matches) == 1, matches
        return matches[0]

    def signal_group(self, sig: int) -> None:
        os.killpg(self.process.pid, sig)

    def wait(self, timeout_s: float = 90) -> int:
        code = self.process.wait(timeout_s)
        self._reader.join(10)
        return code


def make_tenant(name: str, run_dir: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["make", "--no-print-directory", "-C", str(REPO), "tenant", f"NAME={name}", f"POSINT_RUN_DIR={run_dir}"],
                          capture_output=True, text=True, timeout=120)


def log_text(run_dir: Path, module: str, offset: int = 0) -> str:
    with open(run_dir / "logs" / f"{module}.log", "rb") as log:
        log.seek(offset)
        return log.read().decode(errors="replace")


def log_sizes(run_dir: Path) -> dict[str, int]:
    return {m: (run_dir / "logs" / f"{m}.log").stat().st_size for m in SERVICES}


def warnings_in(text: str) -> list[str]:
    return [line for line in text.splitlines() if "warning" in line.lower()]


async def ready(session: aiohttp.ClientSession, url: str) -> bool:
    try:
        async with session.get(url + "/readyz") as response:
            return response.status == 200
    except aiohttp.ClientError:
        return False


async def get_json(session: aiohttp.ClientSession, url: str, key: str | None = None) -> tuple[int, dict]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with session.get(url, headers=headers) as response:
        return response.status, await response.json()


async def integrations(session: aiohttp.ClientSession, gateway_url: str, key: str) -> tuple[int, dict]:
    return await get_json(session, gateway_url + "/api/v1/integrations", key)


def running(processes: list[psutil.Process]) -> list[psutil.Process]:
    return [p for p in processes if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]


@pytest.fixture
def run_dir(tmp_path):
    yield tmp_path / "run"
    if (tmp_path / "run" / "pg" / "postmaster.pid").exists():  # a failed test must not leave a server behind
        from posint_common.devstack.postgres import EmbeddedPostgres

        EmbeddedPostgres(tmp_path / "run" / "pg").stop()


async def test_make_run_serves_restarts_recovers_and_stops_on_ctrl_c(run_dir):
    first = Launcher(run_dir, gateway_port=0)
    second = None
    marker = Path(f"/tmp/pwned-{os.getpid()}")  # short: a tenant name has at most 100 characters
    timeout = aiohttp.ClientTimeout(total=15)
    try:
        env = await first.until_up()
        gateway_url = env["GATEWAY_URL"]
        assert not gateway_url.endswith(":0")
        # stack.env can be written a moment before the console line is read: wait for the line
        await eventually(lambda: f"gateway ready: {gateway_url}" in first.console, 10, "the port it bound on the console")
        key = (run_dir / "api-key").read_text().strip()
        assert key not in first.console.split("API key", 1)[0], "the key is printed only where announced"
        logs = "".join(log_text(run_dir, m) for m in SERVICES)
        assert not warnings_in(first.console + logs), "a clean start warns about nothing"
        for secret in ("api-key", "stack.env"):
            assert stat.S_IMODE((run_dir / secret).stat().st_mode) == 0o600, secret
        rival = subprocess.run([sys.executable, "-m", "posint_devstack"], capture_output=True, text=True, timeout=60,
                               env={**os.environ, "POSINT_RUN_DIR": str(run_dir), "GATEWAY_PORT": "0"})
        assert rival.returncode == 1 and "already running" in rival.stdout, "one launcher per run dir"

        async with aiohttp.ClientSession(timeout=timeout) as session:
            status, body = await integrations(session, gateway_url, key)
            assert status == 200
            assert [(i["name"], i["integration_type"], i["provider"]) for i in body["data"]] == [
                ("DoorDash", "delivery", "doordash"), ("QuickBooks", "accounting", "quickbooks")]
            assert "last_sync_at" in body["data"][0] and "last_sync_at" not in body["data"][1]
            for module in SERVICES:
                health = env[f"{module.upper()}_HEALTH_URL"]
                assert (await get_json(session, health + "/healthz"))[0] == 200
                status, readiness = await get_json(session, health + "/readyz")
                assert status == 200 and all(readiness["checks"].values()), readiness
                async with session.get(health + "/metrics") as response:
                    assert "posint_" in await response.text()

            tenant = make_tenant("acme", run_dir)
            assert tenant.returncode == 0, tenant.stderr
            acme_key = tenant.stdout.strip().splitlines()[-1]
            assert acme_key.startswith("pk_") and acme_key != key
            again = make_tenant("acme", run_dir)
            assert again.returncode != 0 and "already exists" in again.stderr
            assert await integrations(session, gateway_url, acme_key) == (200, {"data": []})
            names = (f"x$(touch {marker})`touch {marker}`\"q", f"y$(shell touch {marker}) `touch {marker}` 'q")
            for name in names:
                created = make_tenant(name, run_dir)
                assert not marker.exists(), f"make tenant ran NAME={name}"
                assert created.returncode == 0, created.stderr
            connection = await asyncpg.connect(env["DATABASE_URL"])
            try:
                assert await connection.fetchval("SELECT count(*) FROM gateway.tenants WHERE name = ANY($1)", list(names)) == 2, \
                    "stored as typed"
            finally:
                await connection.close()

            crashed = first.service("integrations")
            crashed.kill()
            await eventually(lambda: "integrations exited (signal SIGKILL); restarting in 1 s" in first.console, 30,
                             "the launcher to announce the restart")
            await eventually(lambda: ready(session, env["INTEGRATIONS_HEALTH_URL"]), 90, "integrations to be ready again")
            assert first.service("integrations").pid != crashed.pid
            assert (await integrations(session, gateway_url, key))[0] == 200
            assert first.process.poll() is None, "the stack survives a crashed service"

        children = psutil.Process(first.process.pid).children(recursive=True)
        first.signal_group(signal.SIGKILL)
        first.wait()
        await eventually(lambda: not running(children), 60, "the killed launcher's children to exit")
        stale = make_tenant("after-the-kill", run_dir)
        assert stale.returncode != 0 and "not running" in stale.stderr, (stale.stdout, stale.stderr)

        offsets = log_sizes(run_dir)
        port = int(gateway_url.rsplit(":", 1)[1])
        second = Launcher(run_dir, gateway_port=port)
        env = await second.until_up()
        assert env["GATEWAY_URL"] == f"http://127.0.0.1:{port}"
        assert (run_dir / "api-key").read_text().strip() == key and key not in second.console, "the first key is kept"
        async with aiohttp.ClientSession(timeout=timeout) as session:
            status, body = await integrations(session, env["GATEWAY_URL"], key)
        assert status == 200 and len(body["data"]) == 2, "the next start recovers; data kept and not seeded twice"
        children = psutil.Process(second.process.pid).children(recursive=True)
        second.signal_group(signal.SIGINT)  # what a terminal's Ctrl-C does
        assert second.wait() == 0, second.console
    finally:
        marker.unlink(missing_ok=True)
        for launcher in (first, second):
            if launcher and launcher.process.poll() is None:
                launcher.signal_group(signal.SIGKILL)
                launcher.wait()
    assert second.console.index("stopping") < second.console.index("stopped")
    for module in SERVICES:
        lines = log_text(run_dir, module, offsets[module]).strip().splitlines()
        assert json.loads(lines[-1])["event"] == "service_stopped", (module, lines[-3:])
        assert not [line for line in lines if '"level": "warning"' in line or '"level": "error"' in line], (module, lines)
    assert not running(children), "orphaned processes"
    assert not (run_dir / "pg" / "postmaster.pid").exists(), "postgres still running"
    assert not (run_dir / "stack.env").exists()
