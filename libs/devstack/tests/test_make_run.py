"""What `make run` promises, against the real launcher: embedded Postgres and broker, four
services, the demo tenant and its key, `make tenant`, a clean Ctrl-C, and data kept across runs."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import psutil
import pytest

from posint_common.devstack.processes import free_port
from posint_common.testing import eventually

STARTUP_TIMEOUT_S = 180
REPO = Path(__file__).resolve().parents[3]


def parse_env(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)


def launch(run_dir: Path, port: int) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS")}
    env.update(POSINT_RUN_DIR=str(run_dir), GATEWAY_PORT=str(port))
    return subprocess.Popen([sys.executable, "-m", "posint_devstack"], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


async def until_up(launcher: subprocess.Popen, run_dir: Path) -> dict[str, str]:
    def up() -> bool:
        assert launcher.poll() is None, f"launcher exited: {launcher.stdout.read()}"
        return (run_dir / "stack.env").exists()

    await eventually(up, STARTUP_TIMEOUT_S, "the stack to come up")
    return parse_env(run_dir / "stack.env")


def make_tenant(name: str, run_dir: Path) -> subprocess.CompletedProcess:
    """`make tenant NAME=...` against the stack running from ``run_dir``."""
    return subprocess.run(["make", "--no-print-directory", "-C", str(REPO), "tenant", f"NAME={name}", f"POSINT_RUN_DIR={run_dir}"],
                          capture_output=True, text=True, timeout=120)


def stop(launcher: subprocess.Popen) -> tuple[int, str]:
    launcher.send_signal(signal.SIGINT)
    output, _ = launcher.communicate(timeout=90)
    return launcher.returncode, output


async def get_json(session, url, key=None):
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with session.get(url, headers=headers) as response:
        return response.status, await response.json()


@pytest.fixture
def run_dir(tmp_path):
    yield tmp_path / "run"
    pid_file = tmp_path / "run" / "pg" / "postmaster.pid"
    if pid_file.exists():  # a failed test must not leave a server behind
        from posint_common.devstack.postgres import EmbeddedPostgres

        EmbeddedPostgres(tmp_path / "run" / "pg").stop()


async def test_make_run_serves_the_demo_then_stops_cleanly_and_keeps_data(run_dir):
    port = free_port()
    launcher = launch(run_dir, port)
    try:
        env = await until_up(launcher, run_dir)
        children = psutil.Process(launcher.pid).children(recursive=True)
        api_key = (run_dir / "api-key").read_text().strip()
        rival = launch(run_dir, free_port())
        rival_output, _ = rival.communicate(timeout=60)
        assert rival.returncode == 1 and "already running" in rival_output
        assert env["GATEWAY_URL"] == f"http://127.0.0.1:{port}"
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15)) as session:
            status, body = await get_json(session, env["GATEWAY_URL"] + "/api/v1/integrations", api_key)
            assert status == 200
            assert [(i["name"], i["integration_type"], i["provider"]) for i in body["data"]] == [
                ("DoorDash", "delivery", "doordash"), ("QuickBooks", "accounting", "quickbooks")]
            assert "last_sync_at" in body["data"][0] and "last_sync_at" not in body["data"][1]

            tenant = make_tenant("acme", run_dir)
            assert tenant.returncode == 0, tenant.stderr
            acme_key = tenant.stdout.strip().splitlines()[-1]
            again = make_tenant("acme", run_dir)
            assert again.returncode != 0 and "already exists" in again.stderr
            assert acme_key.startswith("pk_") and acme_key != api_key
            assert await get_json(session, env["GATEWAY_URL"] + "/api/v1/integrations", acme_key) == (200, {"data": []})

            for name in ("INTEGRATIONS", "ORDERS", "WEBHOOK_DISPATCHER", "GATEWAY"):
                health = env[f"{name}_HEALTH_URL"]
                assert (await get_json(session, health + "/healthz"))[0] == 200
                status, ready = await get_json(session, health + "/readyz")
                assert status == 200 and all(ready["checks"].values()), ready
                async with session.get(health + "/metrics") as response:
                    assert "posint_" in await response.text()
    finally:
        code, output = stop(launcher)
    assert code == 0, output
    assert api_key not in output.split("API key", 1)[0], "the key is printed only where announced"
    assert not [p for p in children if p.is_running() and p.status() != psutil.STATUS_ZOMBIE], "orphaned processes"
    assert not (run_dir / "pg" / "postmaster.pid").exists(), "postgres still running"
    assert not (run_dir / "stack.env").exists()

    second = launch(run_dir, port)
    try:
        env = await until_up(second, run_dir)
        assert (run_dir / "api-key").read_text().strip() == api_key, "the first run's key is kept"
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15)) as session:
            status, body = await get_json(session, env["GATEWAY_URL"] + "/api/v1/integrations", api_key)
        assert status == 200 and len(body["data"]) == 2, "data survives a restart and is not seeded twice"
    finally:
        code, output = stop(second)
    assert code == 0, output
