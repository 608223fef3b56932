"""A real service process (``runtime.main``) whose long-running task is made to die once the service
is ready: its consumer loop (the broker client is closed under it), its outbox relay or the
gateway's reply router (cancelled). The test expects exit status 1 and one ``task_died`` line.

usage: dying_service.py consumer|relay|reply-router SCHEMA TOPIC MIGRATIONS_DIR
"""
import asyncio
import sys
from pathlib import Path

from posint_common.runtime import ServiceRuntime, main
from posint_common.settings import ServiceSettings, load_settings
from posint_common.testing import wait_ready

_kept: set[asyncio.Task] = set()


async def build(victim: str, schema: str, topic: str, migrations: Path) -> ServiceRuntime:
    if victim == "reply-router":
        from gateway.bootstrap import bootstrap
        from gateway.config import GatewaySettings

        runtime = await bootstrap(load_settings(GatewaySettings))
    else:
        runtime = ServiceRuntime(name="dying", schema=schema, settings=load_settings(ServiceSettings), migrations=migrations)
        await runtime.start_core()
        runtime.add_consumer("notes", (topic,), {})

    async def kill_when_ready() -> None:
        await wait_ready(runtime)
        if victim == "consumer":
            await runtime.consumers[0].consumer.stop()
            return
        name = "gateway-reply-router" if victim == "reply-router" else f"outbox-relay-{schema}"
        [task] = [task for task in asyncio.all_tasks() if task.get_name() == name]
        task.cancel()

    async def schedule_kill() -> None:
        _kept.add(asyncio.create_task(kill_when_ready()))

    runtime.extra_start.append(schedule_kill)
    return runtime


if __name__ == "__main__":
    victim, schema, topic, migrations = sys.argv[1:]
    settings = load_settings(ServiceSettings)
    main("dying", lambda: build(victim, schema, topic, Path(migrations)), settings)
