"""Runs an outbox relay that SIGKILLs its own process right after the Nth send was acknowledged,
i.e. in the middle of a batch: sent, but not yet deleted from the outbox."""
import asyncio
import os
import signal
import sys

from posint_common import db, kafka
from posint_common.outbox import OutboxRelay
from posint_common.settings import KafkaSettings


async def main(dsn: str, schema: str, bootstrap: str, batch: int, crash_after: int) -> None:
    pool = await db.create_pool(dsn, schema, max_size=2)
    producer = kafka.make_producer(KafkaSettings(kafka_bootstrap_servers=bootstrap), client_id="crashing-relay")
    await producer.start()
    sends = 0
    real_send = producer.send

    async def send(*args, **kwargs):
        nonlocal sends
        future = await real_send(*args, **kwargs)
        await future
        sends += 1
        if sends == crash_after:
            os.kill(os.getpid(), signal.SIGKILL)
        return future

    producer.send = send
    relay = OutboxRelay(dsn=dsn, pool=pool, producer=producer, schema=schema, batch_size=batch)
    while True:
        await relay.publish_batch()


if __name__ == "__main__":
    dsn, schema, bootstrap, batch, crash_after = sys.argv[1:]
    asyncio.run(main(dsn, schema, bootstrap, int(batch), int(crash_after)))
