"""`make order` end to end, as a newcomer runs it: `make run` (the real launcher, with the sandbox
platforms), then `make order` places an order on the sandbox DoorDash, which pushes it signed to the
stack's inbound URL; the order is then listed by the API. Without a running stack it says so."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import aiohttp
import pytest

from posint_common.testing import eventually

REPO = Path(__file__).resolve().parents[2]
STARTUP_TIMEOUT_S = 180


def make_order(run_dir: Path) -> subprocess.CompletedProcess:
    return subprocess.run(["make", "--no-print-directory", "-C", str(REPO), "order", f"POSINT_RUN_DIR={run_dir}"],
                          capture_output=True, text=True, timeout=120)


@pytest.fixture
def run_dir(tmp_path):
    yield tmp_path / "run"
    if (tmp_path / "run" / "pg" / "postmaster.pid").exists():  # a failed test must not leave a server behind
        from posint_common.devstack.postgres import EmbeddedPostgres

        EmbeddedPostgres(tmp_path / "run" / "pg").stop()


def test_make_order_without_a_running_stack_says_to_start_one(tmp_path):
    result = make_order(tmp_path / "nothing")
    assert result.returncode != 0
    assert "not running" in result.stderr and "make run" in result.stderr


async def test_make_order_pushes_a_signed_order_that_the_running_stack_lists(run_dir):
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS")}
    env.update(POSINT_RUN_DIR=str(run_dir), GATEWAY_PORT="0", SANDBOX_PLATFORMS_PORT="0")
    launcher = subprocess.Popen([sys.executable, "-m", "posint_devstack"], env=env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, start_new_session=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(launcher.stdout.readline, "")), daemon=True)
    reader.start()
    try:
        def up() -> bool:
            assert launcher.poll() is None, "".join(lines)
            return (run_dir / "stack.env").exists() and f"LAUNCHER_PID={launcher.pid}" in (run_dir / "stack.env").read_text()

        await eventually(up, STARTUP_TIMEOUT_S, "the stack to come up")
        stack = dict(line.split("=", 1) for line in (run_dir / "stack.env").read_text().splitlines())
        assert any(f"sandbox platforms on {stack['SANDBOX_PLATFORMS_URL']}" in line for line in lines)
        demo = json.loads((run_dir / "demo-integrations.json").read_text())["integrations"]["doordash"]
        assert oct((run_dir / "demo-integrations.json").stat().st_mode & 0o777) == "0o600"

        result = make_order(run_dir)
        assert result.returncode == 0, result.stdout + result.stderr
        placed, pushed, listed = result.stdout.splitlines()[-3:]
        order_id = placed.split()[2]
        assert placed.startswith("placed order DD-") and "sandbox doordash" in placed
        assert f"{stack['GATEWAY_URL']}/api/v1/integrations/{demo['id']}/inbound: HTTP 202" in pushed
        assert "listed by GET" in listed and "status received" in listed
        assert demo["inbound_secret"] not in result.stdout + result.stderr

        api_key = (run_dir / "api-key").read_text().strip()
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{stack['GATEWAY_URL']}/api/v1/external-orders",
                                   headers={"Authorization": f"Bearer {api_key}"}) as response:
                orders = (await response.json())["data"]
            async with session.get(f"{stack['SANDBOX_PLATFORMS_URL']}/doordash/_control/state") as response:
                state = await response.json()
        assert [order["external_id"] for order in orders if order["integration_id"] == demo["id"]] == [order_id]
        assert state["pushes"][-1]["order_id"] == order_id and state["pushes"][-1]["status"] == 202
    finally:
        if launcher.poll() is None:
            os.killpg(launcher.pid, signal.SIGINT)
        launcher.wait(90)
        reader.join(10)
    assert launcher.returncode == 0
