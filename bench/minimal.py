"""The architecture with nothing of ours in it: ``GET /api/v1/integrations`` as an HTTP process and
a service process that talk only over the stack's broker, doing the least that path must do.

The stack pays for its guarantees (envelopes, validation, inbox, logging, metrics, ...); the floor
(``bench.floor``) pays for nothing but the two broker hops; the baseline (``bench.baseline``) skips
the broker. None of them says what anything laid out like the product can reach on this box. This
does: the floor's request/reply (``floor.Requester`` and ``floor.echo``: same client factories,
pacing, topic rolling, pipelining, fresh topics) carrying the tenant id, with the baseline's work
at each end (its key check before the request, its query and row shaping as the reply). Whatever
the stack does beyond this is ours to make cheaper; what this cannot reach, nothing built this way
can.

- ``python -m bench.minimal service BOOTSTRAP PREFIX DATABASE_URL``: ``floor.echo`` whose reply to
  each request (a tenant id) is the baseline's query for it, shaped as the baseline shapes it; a
  batch's queries run concurrently on a pool of 10, as the services' query consumer runs them.
- ``python -m bench.minimal http BOOTSTRAP PREFIX DATABASE_URL``: aiohttp on 127.0.0.1 (free port,
  no access log); checks the bearer key as the baseline does, makes one request and returns the
  reply's bytes as the JSON body (200, X-Request-Id; 401 unknown key, 503 broker error, 504 no
  reply in time). Reports ``ready PORT``.

Both run on uvloop, report on the floor's pipe (``floor.say``), stop when their stdin closes or on
SIGTERM/SIGINT; the service deletes every ``PREFIX.*`` topic as it goes (so the HTTP process is
stopped first). ``Minimal`` below is the bench's side (it starts and stops both); the load is
``bench.load``'s, as for the stack and the baseline.
"""
from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from urllib.parse import urlsplit

import asyncpg
import uvloop
from aiohttp import web
from aiokafka.errors import KafkaError

from bench import baseline, cpu, floor
from posint_common import db
from posint_common.log import configure_logging

PATH = "/api/v1/integrations"
POOL_SIZE = 10  # as the baseline and the services


async def service(bootstrap: str, prefix: str, database_url: str) -> None:
    # the services' own pool: released without asyncpg's RESET ALL round trip (posint_common.db)
    pool = await db.create_pool(database_url, "integrations", max_size=POOL_SIZE, application="bench-minimal")

    async def answer(record) -> bytes:
        return baseline.body(await pool.fetch(baseline.QUERY, record.value.decode())).encode()

    async def reply(records: list) -> list[bytes]:
        return await asyncio.gather(*(answer(record) for record in records))

    try:
        await floor.echo(bootstrap, prefix, reply)
    finally:
        await pool.close()


async def http(bootstrap: str, prefix: str, database_url: str) -> None:
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)  # key lookups only, cached
    tenant_of = baseline.authenticator(pool)
    requester = floor.Requester(bootstrap, prefix)

    async def list_integrations(request: web.Request) -> web.Response:
        tenant = await tenant_of(request)
        if tenant is None:
            return web.json_response({"title": "Unauthorized", "status": 401}, status=401)
        try:
            reply = await requester.request(str(tenant).encode())
        except KafkaError:
            return web.json_response({"title": "Service Unavailable", "status": 503}, status=503)
        except TimeoutError:
            return web.json_response({"title": "Gateway Timeout", "status": 504}, status=504)
        return web.Response(body=reply, content_type="application/json", headers={"X-Request-Id": uuid.uuid4().hex})

    app = web.Application()
    app.router.add_get(PATH, list_integrations)
    runner = web.AppRunner(app, access_log=None)
    stop = asyncio.Event()
    try:
        await requester.start()
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        floor.stop_on_eof_or_signal(stop)
        floor.say(f"ready {runner.addresses[0][1]}")
        await stop.wait()
    finally:
        await runner.cleanup()
        await requester.stop()
        await pool.close()


class Minimal:
    """The bench's side: the service and the HTTP process for the whole run, loaded by ``bench.load``."""

    def __init__(self, bootstrap: str, database_url: str, roll_topics: bool | None) -> None:
        if urlsplit(f"//{bootstrap}").hostname != "127.0.0.1" or urlsplit(database_url).hostname != "127.0.0.1":
            raise SystemExit("bench runs on loopback only: the broker and Postgres must be on 127.0.0.1")
        self.bootstrap, self.database_url = bootstrap, database_url
        prefix = f"bench.minimal.{uuid.uuid4().hex[:8]}"  # fresh topics every run
        env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": bootstrap}
        if roll_topics is not None:
            env["KAFKA_ROLL_TOPICS"] = "true" if roll_topics else "false"
        self.http = None
        self.service, lines = floor.spawn("bench.minimal", env, "service", bootstrap, prefix, database_url,
                                          stdin=subprocess.PIPE)
        try:
            self.rolled = floor.expect(lines, self.service, "ready", floor.START_TIMEOUT_S) == "ready rolled"
            self.http, lines = floor.spawn("bench.minimal", env, "http", bootstrap, prefix, database_url,
                                           stdin=subprocess.PIPE)
            port = floor.expect(lines, self.http, "ready ", floor.START_TIMEOUT_S).removeprefix("ready ")
        except BaseException:
            self.stop()
            raise
        self.url = f"http://127.0.0.1:{int(port)}{PATH}"

    def processes(self) -> dict[int, str]:
        """pid -> kind for ``cpu.Meter``: our two processes, the broker and Postgres (whose backends come and go)."""
        broker = cpu.listener(int(self.bootstrap.rsplit(":", 1)[1]))
        return {self.http.pid: "minimal http", self.service.pid: "minimal service",
                **({broker.pid: "tansu"} if broker else {}), **cpu.postgres_processes(self.database_url)}

    def stop(self) -> None:
        """The HTTP process first (its reply topics are the service's to delete), then the service."""
        for process in (self.http, self.service):
            if process is not None:
                floor.close(process)


def main(argv: list[str]) -> int:
    configure_logging("bench.minimal", "WARNING")
    if len(argv) == 4 and argv[0] in ("service", "http") and "127.0.0.1" in argv[1] and "127.0.0.1" in argv[3]:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run((service if argv[0] == "service" else http)(*argv[1:]))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
