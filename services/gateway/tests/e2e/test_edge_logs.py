"""The gateway process's own log (what `make run` writes to .run/logs/gateway.log): every line is one
JSON object, no header value ever appears in it, and each HTTP request leaves one access line."""
import asyncio
import json
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import aiohttp
import pytest

from gateway.tenants import create_tenant
from posint_common import db
from posint_common.testing import eventually, unique

KEY_SHAPED = f"pk_{uuid.uuid4().hex}{uuid.uuid4().hex}"


@pytest.fixture(scope="module")
async def gateway_process(infra, tmp_path_factory):
    log_path = tmp_path_factory.mktemp("gateway-log") / "gateway.log"
    env = {**os.environ, "DATABASE_URL": infra.database_url, "KAFKA_BOOTSTRAP_SERVERS": infra.bootstrap_servers,
           "GATEWAY_PORT": "0", "HEALTH_PORT": "0", "PYTHONUNBUFFERED": "1"}
    with log_path.open("wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "gateway"], stdout=out, stderr=subprocess.STDOUT, env=env)
    try:
        ports: dict = {}

        def started() -> bool:
            assert process.poll() is None, log_path.read_text()
            for line in log_path.read_text().splitlines():
                if '"service_started"' in line:
                    ports.update(json.loads(line)["ports"])
            return bool(ports)

        await eventually(started, 60, "the gateway process to start")
        yield process, ports, log_path
    finally:
        process.send_signal(signal.SIGTERM)
        await asyncio.get_running_loop().run_in_executor(None, process.wait, 30)


async def raw(port: int, data: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        return await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()


def log_lines(path: Path) -> list[str]:
    return [line for line in path.read_text(errors="backslashreplace").splitlines() if line.strip()]


async def test_no_header_value_reaches_the_log(gateway_process, infra):
    _process, ports, log_path = gateway_process
    pool = await db.create_pool(infra.database_url, "gateway", max_size=1)
    try:
        _tenant, good_key = await create_tenant(pool, unique("logs"))
    finally:
        await pool.close()
    secrets = [KEY_SHAPED, good_key, "pk_notutf8secret0123456789"]
    requests = [
        b"GET /api/v1/integrations HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer " + KEY_SHAPED.encode() + b"\x01\r\n\r\n",
        b"GET /api/v1/integrations HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer pk_notutf8secret0123456789\xff\r\n\r\n",
        b"GET /api/v1/integrations HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer " + KEY_SHAPED.encode() + b"\r\n\r\n",
        b"GET /api/v1/integrations?lmit=1 HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer " + good_key.encode() + b"\r\n\r\n",
        b"GET /api/v1/integrations HTTP/1.1\r\nHost: x\r\nX-Big: " + KEY_SHAPED.encode() * 300 + b"\r\n\r\n",
        b"DELETE /api/v1/integrations HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer " + good_key.encode() + b"\r\n\r\n",
    ]
    for request in requests:
        assert (await raw(ports["http"], request)).startswith(b"HTTP/1.")
    text = log_path.read_text(errors="backslashreplace")  # answered, so whatever the gateway logs about them is written
    for secret in secrets:
        assert secret[:24] not in text
    await eventually(lambda: sum('"http_request"' in line for line in log_lines(log_path)) >= len(requests), 10, "access lines")


async def test_every_line_is_one_json_object(gateway_process):
    _process, ports, log_path = gateway_process
    await raw(ports["http"], b"G@T / HTTP/1.1\r\n\r\n")
    await raw(ports["http"], b"GET / HTTP/1.1\r\nHost: x\r\nBad\x00Header: 1\r\n\r\n")
    lines = log_lines(log_path)
    assert lines
    for line in lines:
        event = json.loads(line)
        assert isinstance(event, dict) and event["event"] and event["level"] and event["service"] == "gateway", line


async def test_one_access_line_per_request_with_route_template_and_no_query_or_headers(gateway_process):
    _process, ports, log_path = gateway_process
    marker = unique("access")
    async with aiohttp.ClientSession() as session:
        async with session.get(f"http://127.0.0.1:{ports['http']}/api/v1/integrations?limit=7&secretq=1",
                               headers={"X-Request-Id": marker, "Authorization": f"Bearer {KEY_SHAPED}"}) as response:
            assert response.status == 401
    def ours() -> list[dict]:
        return [json.loads(line) for line in log_lines(log_path) if marker in line]
    await eventually(lambda: ours(), 10, "the access line")
    (line,) = [event for event in ours() if event["event"] == "http_request"]
    assert line["method"] == "GET" and line["route"] == "/api/v1/integrations" and line["status"] == 401
    assert line["request_id"] == marker and isinstance(line["duration_ms"], (int, float)) and "tenant_id" in line
    assert "secretq" not in json.dumps(line) and KEY_SHAPED not in json.dumps(line)
