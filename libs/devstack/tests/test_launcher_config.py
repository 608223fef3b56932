"""Bad settings stop `make run` (and a service started by hand) at once, with one console line
that names the variable or the cause, before anything is started, and never print a password."""
import json
import os
import socket
import subprocess
import sys

import pytest

from posint_common.devstack.processes import free_port

PASSWORD = "s3cret-pw"


def launch(run_dir, timeout_s: float = 60, **settings: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS")}
    env.update(POSINT_RUN_DIR=str(run_dir), **settings)
    return subprocess.run([sys.executable, "-m", "posint_devstack"], env=env, capture_output=True, text=True, timeout=timeout_s)


def service(module: str, timeout_s: float = 60, **settings: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS")}
    env.update(settings)
    return subprocess.run([sys.executable, "-m", module], env=env, capture_output=True, text=True, timeout=timeout_s)


def console_lines(result: subprocess.CompletedProcess) -> list[str]:
    return [line for line in (result.stdout + result.stderr).splitlines() if line.strip()]


def the_failure(result: subprocess.CompletedProcess) -> str:
    """The launcher's one line saying why it did not start (it may also say it stopped)."""
    lines = [line for line in console_lines(result) if line not in ("[posint] stopping", "[posint] stopped")]
    assert len(lines) == 1, lines
    return lines[0]


@pytest.mark.parametrize("value", ["eighty", "70000", "-1"])
def test_a_bad_gateway_port_is_named_before_anything_starts(tmp_path, value):
    result = launch(tmp_path / "run", GATEWAY_PORT=value)
    assert result.returncode == 2
    line = the_failure(result)
    assert "GATEWAY_PORT" in line and value in line
    assert not (tmp_path / "run" / "pg").exists(), "nothing was started"


def test_a_gateway_port_in_use_is_named_before_anything_starts(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = launch(tmp_path / "run", GATEWAY_PORT=str(port))
    assert result.returncode == 1
    line = the_failure(result)
    assert "gateway" in line and str(port) in line and "in use" in line and "GATEWAY_PORT" in line
    assert not (tmp_path / "run" / "pg").exists(), "nothing was started"


def test_an_unreachable_database_is_named_without_its_password(tmp_path):
    port = free_port()
    result = launch(tmp_path / "run", GATEWAY_PORT=str(free_port()),
                    DATABASE_URL=f"postgresql://posint:{PASSWORD}@127.0.0.1:{port}/posint")
    assert result.returncode == 1
    line = the_failure(result)
    assert "Postgres" in line and f"127.0.0.1:{port}" in line and "DATABASE_URL" in line
    assert PASSWORD not in result.stdout + result.stderr
    assert not (tmp_path / "run" / "logs").exists(), "nothing was started"


def failure_of(result: subprocess.CompletedProcess) -> str:
    """A service's start failure is its last output: one JSON log line, `service_failed`, with the
    cause in words (no traceback before it)."""
    lines = console_lines(result)
    event = json.loads(lines[-1])
    assert event["event"] == "service_failed" and event["level"] == "error", event
    assert all(json.loads(line)["level"] == "info" for line in lines[:-1]), lines
    return event["error"]


def test_a_service_names_an_unreachable_postgres_without_its_password():
    port = free_port()
    result = service("orders", DATABASE_URL=f"postgresql://posint:{PASSWORD}@127.0.0.1:{port}/posint",
                     KAFKA_BOOTSTRAP_SERVERS=f"127.0.0.1:{free_port()}")
    assert result.returncode == 1
    error = failure_of(result)
    assert "Postgres" in error and f"127.0.0.1:{port}" in error and "DATABASE_URL" in error
    assert PASSWORD not in result.stdout + result.stderr


def test_a_service_names_its_port_in_use(infra):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = service("orders", DATABASE_URL=infra.database_url, KAFKA_BOOTSTRAP_SERVERS=infra.bootstrap_servers,
                         HEALTH_PORT=str(port))
    assert result.returncode == 1
    error = failure_of(result)
    assert "HEALTH_PORT" in error and str(port) in error and "in use" in error
