"""Contract fuzzing: schemathesis (pinned in constraints.txt) runs against the e2e session's real
gateway and services, reading /api/v1/openapi.json, once with a valid key and once without. It fails
on any 5xx, any status, content type, header or body the document does not describe, and any error
that is not problem+json (the check below; schemathesis loads this module as its hooks).

A bounded number of examples per operation keeps the run around a minute on two cores; the seed is
fixed so a failure reproduces (the output shows a curl command for it). The keyed run uses a tenant
of its own: it creates integrations and webhooks with random contents."""
from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import schemathesis

from gateway.tenants import create_tenant
from posint_common.testing import unique

CHECKS = ("not_a_server_error,status_code_conformance,content_type_conformance,"
          "response_headers_conformance,response_schema_conformance,error_is_problem_json")
EXAMPLES_PER_OPERATION = 15
SEED = 20261128
RUN_TIMEOUT_S = 240
# One worker: with two, hypothesis parses lambda sources in two threads at once and CPython 3.11.7's
# ast.parse fails with "SystemError: AST constructor recursion depth mismatch" (seen here).
WORKERS = 1


@schemathesis.check
def error_is_problem_json(ctx, response, case):
    """Every 4xx/5xx is RFC 9457 problem+json with the status it was sent with."""
    if response.status_code < 400:
        return None
    content_type = (response.headers.get("content-type") or [""])[0]
    assert content_type.split(";")[0].strip() == "application/problem+json", f"{response.status_code} with {content_type!r}"
    assert response.json().get("status") == response.status_code, "problem status differs from the HTTP status"
    return None


async def fuzz(workdir: Path, base: str, *headers: str) -> tuple[int, str]:
    """``st run`` in a subprocess (the event loop keeps serving the in-process gateway meanwhile);
    in ``workdir``, where it keeps its cache."""
    here = Path(__file__).parent
    env = {**os.environ, "SCHEMATHESIS_HOOKS": Path(__file__).stem,
           "PYTHONPATH": os.pathsep.join(filter(None, [str(here), os.environ.get("PYTHONPATH")]))}
    process = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).with_name("st")), "run", f"{base}/api/v1/openapi.json", "--url", base, *headers,
        "--checks", CHECKS, "--phases", "examples,coverage,fuzzing", "--max-examples", str(EXAMPLES_PER_OPERATION),
        "--seed", str(SEED), "--workers", str(WORKERS), "--request-timeout", "20", "--generation-database", "none",
        "--no-color", "--suppress-health-check", "all",
        env=env, cwd=workdir, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )
    try:
        output, _ = await asyncio.wait_for(process.communicate(), RUN_TIMEOUT_S)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    return process.returncode, output.decode(errors="replace")


async def test_fuzz_with_a_valid_key(tmp_path, gateway_service, integrations_service, orders_service, webhooks_service):
    _tenant, key = await create_tenant(gateway_service.pool, unique("tenant-fuzz"))
    code, output = await fuzz(tmp_path, f"http://127.0.0.1:{gateway_service.ports['http']}", "-H", f"Authorization: Bearer {key}")
    assert code == 0, output[-12000:]


async def test_fuzz_without_a_key(tmp_path, gateway_service, integrations_service, orders_service, webhooks_service):
    code, output = await fuzz(tmp_path, f"http://127.0.0.1:{gateway_service.ports['http']}")
    assert code == 0, output[-12000:]
