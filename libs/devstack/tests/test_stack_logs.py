"""Issue 10's log capture: the real stack as `make run` starts it (launcher, four service processes),
driven through a flow that hands every kind of secret to it (API keys, a provider credential, inbound
secrets and signatures, a webhook signing secret), then every line each service wrote is one JSON
object with `service`, `level`, `event` and `timestamp` (the access lines with their `request_id`,
and `tenant` once the key is known), and no secret appears in any log file, nor in the launcher's
console beyond the demo key it prints on purpose. The flow runs as a tenant of its own (`make tenant`)."""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import signal
import subprocess
import sys
import uuid
from datetime import datetime, timezone
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from standardwebhooks import Webhook

from posint_common.testing import eventually

STARTUP_TIMEOUT_S = 180
REPO = Path(__file__).resolve().parents[3]
SERVICES = ("gateway", "integrations", "orders", "webhook_dispatcher")
REQUIRED = ("service", "level", "event", "timestamp")


@pytest.fixture
def run_dir(tmp_path):
    yield tmp_path / "run"
    if (tmp_path / "run" / "pg" / "postmaster.pid").exists():  # a failed test must not leave a server behind
        from posint_common.devstack.postgres import EmbeddedPostgres

        EmbeddedPostgres(tmp_path / "run" / "pg").stop()


@pytest.fixture
def stack(run_dir):
    """`python -m posint_devstack` in its own session; yields (gateway url, demo key, console file), then
    Ctrl-C, so the services' stop lines are captured too."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "KAFKA_BOOTSTRAP_SERVERS")}
    env.update(POSINT_RUN_DIR=str(run_dir), GATEWAY_PORT="0")
    console = run_dir.parent / "console.txt"
    with open(console, "wb") as out:
        process = subprocess.Popen([sys.executable, "-m", "posint_devstack"], env=env, stdout=out, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
    try:
        yield process, console
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGINT)
            try:
                process.wait(90)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)


def stack_env(run_dir: Path) -> dict[str, str]:
    try:
        return dict(line.split("=", 1) for line in (run_dir / "stack.env").read_text().splitlines() if "=" in line)
    except FileNotFoundError:
        return {}


def signed(secret: str, body: bytes) -> dict[str, str]:
    msg_id, now = f"msg_{uuid.uuid4().hex}", datetime.now(timezone.utc)
    return {"Content-Type": "application/json", "webhook-id": msg_id, "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": Webhook(secret).sign(msg_id, now, body.decode())}


def order(external_id: str) -> bytes:
    return json.dumps({"external_id": external_id, "placed_at": "2026-01-04T18:00:00Z", "fulfillment": "pickup",
                       "items": [{"name": "Tea", "quantity": 1, "unit_price": "2.50"}],
                       "subtotal": "2.50", "tax": "0", "total": "2.50", "currency": "USD"}).encode()


def forms(secret: str) -> set[str]:
    """The secret and the forms a careless line could show it in (a whsec_ key's bytes as base64)."""
    shown = {secret}
    if secret.startswith("whsec_"):
        shown.add(secret.removeprefix("whsec_"))
    return {s for s in shown if len(s) >= 12}


async def test_every_line_of_every_service_is_json_and_no_secret_is_logged(stack, run_dir):
    process, console = stack

    def up() -> bool:
        assert process.poll() is None, console.read_text()
        return stack_env(run_dir).get("LAUNCHER_PID") == str(process.pid)

    await eventually(up, STARTUP_TIMEOUT_S, "the stack to come up")
    base = stack_env(run_dir)["GATEWAY_URL"]
    demo_key = (run_dir / "api-key").read_text().strip()
    made_tenant = subprocess.run(["make", "--no-print-directory", "-C", str(REPO), "tenant", "NAME=logs",
                                  f"POSINT_RUN_DIR={run_dir}"], capture_output=True, text=True, timeout=120)
    assert made_tenant.returncode == 0, made_tenant.stderr
    key = made_tenant.stdout.strip().splitlines()[-1]  # `make tenant` prints the new key last
    auth = {"Authorization": f"Bearer {key}"}
    secrets: set[str] = {demo_key, key}

    received: list[web.Request] = []

    async def hook(request: web.Request) -> web.Response:
        await request.read()
        received.append(request)
        return web.Response(status=204)

    receiver = web.Application()
    receiver.router.add_post("/hook", hook)
    runner = web.AppRunner(receiver, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    hook_url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/hook"
    try:
        async with aiohttp.ClientSession(base_url=base, timeout=aiohttp.ClientTimeout(total=30)) as api:
            # a provider credential (Uber Eats client secret) and two inbound secrets
            client_secret = f"ue-secret-{uuid.uuid4().hex}"
            secrets.add(client_secret)
            made = {}
            for provider, config, credentials in (
                ("custom", {}, {}),
                ("ubereats", {"store_id": "ue-logs"}, {"client_id": "ue-client-logs", "client_secret": client_secret}),
            ):
                document = {"name": f"logs {provider}", "integration_type": "delivery", "provider": provider,
                            "config": config, "credentials": credentials}
                async with api.post("/api/v1/integrations", json=document,
                                    headers={**auth, "Idempotency-Key": uuid.uuid4().hex}) as response:
                    assert response.status == 201, await response.text()
                    made[provider] = (await response.json())["data"]
                    secrets.add(made[provider]["inbound_secret"])
            custom = made["custom"]

            # signed pushes: a good one, a wrong signature, a redelivery; an Uber Eats push signed with the credential
            body = order(f"logs-{uuid.uuid4().hex[:8]}")
            headers = signed(custom["inbound_secret"], body)
            secrets.add(headers["webhook-signature"].removeprefix("v1,"))
            for sent in (headers, {**headers, "webhook-signature": "v1," + base64.b64encode(b"x" * 32).decode()}, headers):
                async with api.post(f"/api/v1/integrations/{custom['id']}/inbound", data=body, headers=sent) as response:
                    assert response.status in (202, 401, 200), await response.text()
            uber = json.dumps({"event_id": uuid.uuid4().hex, "order": {}}).encode()
            signature = hmac.new(client_secret.encode(), uber, hashlib.sha256).hexdigest()
            secrets.add(signature)
            async with api.post(f"/api/v1/integrations/{made['ubereats']['id']}/inbound", data=uber,
                                headers={"Content-Type": "application/json", "X-Uber-Signature": signature}) as response:
                assert response.status < 500, await response.text()

            # a webhook endpoint: its signing secret, and a signed test ping to a receiver on 127.0.0.1
            async with api.post("/api/v1/webhooks", json={"integration_id": custom["id"], "url": hook_url,
                                                          "events": ["order.created"]}, headers=auth) as response:
                assert response.status == 201, await response.text()
                webhook = (await response.json())["data"]
            secrets.add(webhook["secret"])
            async with api.post(f"/api/v1/webhooks/{webhook['id']}/test", headers=auth) as response:
                assert response.status == 200, await response.text()
            await eventually(lambda: bool(received), 30, "the test ping")
            secrets.add(received[0].headers["webhook-signature"].split(",", 1)[1].split(" ")[0])

            # bad credentials: a key-shaped unknown key and garbage
            for bad in (f"pk_{uuid.uuid4().hex}{uuid.uuid4().hex}", "not-a-key"):
                secrets.add(bad)
                async with api.get("/api/v1/integrations", headers={"Authorization": f"Bearer {bad}"}) as response:
                    assert response.status == 401
            for reader in (auth, {"Authorization": f"Bearer {demo_key}"}):
                async with api.get("/api/v1/external-orders", headers=reader) as response:
                    assert response.status == 200
    finally:
        await runner.cleanup()

    os.killpg(process.pid, signal.SIGINT)  # the services' stop lines are part of what is checked
    assert process.wait(90) == 0, console.read_text()

    access = 0
    for module in SERVICES:
        text = (run_dir / "logs" / f"{module}.log").read_text()
        lines = [line for line in text.splitlines() if line.strip()]
        assert lines, module
        for line in lines:
            event = json.loads(line)  # one JSON object per line, nothing else
            assert isinstance(event, dict), line
            missing = [field for field in REQUIRED if not event.get(field)]
            assert not missing, f"{module}: {missing} missing in {line}"
            if event["event"] == "http_request":
                access += 1
                assert event.get("request_id"), line
                if event["status"] < 400 and event["route"] not in (None, "/api/v1/integrations/{id}/inbound"):
                    assert event.get("tenant_id"), f"an authenticated request's access line names its tenant: {line}"
        assert any(json.loads(line)["event"] == "service_stopped" for line in lines), module
    assert access >= 10

    shown = {form for secret in secrets for form in forms(secret)}
    for path in sorted((run_dir / "logs").iterdir()):
        text = path.read_text(errors="replace")
        leaked = [form[:6] + "..." for form in shown if form in text]
        assert not leaked, f"{path.name} holds secrets: {leaked}"
    text = console.read_text(errors="replace").replace(demo_key, "")  # the demo key is printed for the developer
    assert not [form for form in shown if form in text], "the launcher's console holds a secret"
