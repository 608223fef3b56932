"""Successful attempts recorded in batches (group commit): each attempt's task hands its success
over and waits until the batch holding it is committed, so an attempt is finished only once its
outcome is in Postgres, as before, but a burst of successes costs one statement instead of one
per delivery. One batch is written at a time; what arrives meanwhile forms the next. Should a
batch fail (Postgres away, a deadlock), each success is tried on its own; one that still fails
fails its task, and its lease running out sends the message again (at least once)."""
from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import asyncpg

from webhook_dispatcher.adapters import messages
from webhook_dispatcher.adapters.sender import Attempt

MAX_BATCH = 500


@dataclass
class Successes:
    pool: asyncpg.Pool
    max_batch: int = MAX_BATCH
    _waiting: list[tuple[tuple[int, int, int, Attempt], asyncio.Future]] = field(default_factory=list)
    _wake: asyncio.Event = field(default_factory=asyncio.Event)

    async def record(self, message: int, endpoint_id: int, number: int, attempt: Attempt) -> None:
        """Returns once the success is committed."""
        done = asyncio.get_running_loop().create_future()
        self._waiting.append(((message, endpoint_id, number, attempt), done))
        self._wake.set()
        await done

    async def run_forever(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._waiting:
                batch, self._waiting = self._waiting[:self.max_batch], self._waiting[self.max_batch:]
                await self._write(batch)

    async def _write(self, batch: list[tuple[tuple[int, int, int, Attempt], asyncio.Future]]) -> None:
        try:
            async with self.pool.acquire() as conn:
                await messages.delivered_many(conn, [success for success, _done in batch])
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 -- each on its own below
            for success, done in batch:
                try:
                    async with self.pool.acquire() as conn:
                        await messages.delivered_many(conn, [success])
                except asyncio.CancelledError:
                    raise
                except Exception as error:  # noqa: BLE001 -- the attempt's task reports it
                    _settle(done, error)
                else:
                    _settle(done, None)
            return
        for _success, done in batch:
            _settle(done, None)


def _settle(done: asyncio.Future, error: Exception | None) -> None:
    if done.done():  # its task was cancelled (the dispatcher stopping)
        return
    if error is None:
        done.set_result(None)
    else:
        done.set_exception(error)
