"""Attempt outcomes recorded in batches (group commit): each attempt's task hands its outcome over
and waits until the batch holding it is committed, so an attempt is finished only once its outcome
is in Postgres, as before, but a burst of outcomes costs one statement instead of a transaction per
delivery. One batch is written at a time per writer; what arrives meanwhile forms the next. Should a
batch fail (Postgres away, a deadlock), each outcome is tried on its own; one that still fails
fails its task, and its lease running out sends the message again (at least once).

Successes go through ``successes`` (``messages.delivered_many``); the deliverer keeps a second
writer for failures (retry schedule, failure clocks, disabling)."""
from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable

import asyncpg

from webhook_dispatcher.adapters import messages

MAX_BATCH = 500

Write = Callable[[asyncpg.Connection, list[tuple]], Awaitable[Any]]


class GroupCommit:
    """Outcomes (tuples) written ``max_batch`` at a time by ``write(conn, outcomes)``."""

    def __init__(self, pool: asyncpg.Pool, write: Write, max_batch: int = MAX_BATCH) -> None:
        self.pool, self.write, self.max_batch = pool, write, max_batch
        self._waiting: list[tuple[tuple, asyncio.Future]] = []
        self._wake = asyncio.Event()

    async def record(self, *outcome: Any) -> None:
        """Returns once the outcome is committed."""
        done = asyncio.get_running_loop().create_future()
        self._waiting.append((outcome, done))
        self._wake.set()
        await done

    async def run_forever(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._waiting:
                batch, self._waiting = self._waiting[:self.max_batch], self._waiting[self.max_batch:]
                await self._write(batch)

    async def _write(self, batch: list[tuple[tuple, asyncio.Future]]) -> None:
        try:
            async with self.pool.acquire() as conn:
                await self.write(conn, [outcome for outcome, _done in batch])
        except asyncio.CancelledError:
            raise
        except Exception:  # noqa: BLE001 -- each on its own below
            for outcome, done in batch:
                try:
                    async with self.pool.acquire() as conn:
                        await self.write(conn, [outcome])
                except asyncio.CancelledError:
                    raise
                except Exception as error:  # noqa: BLE001 -- the attempt's task reports it
                    _settle(done, error)
                else:
                    _settle(done, None)
            return
        for _outcome, done in batch:
            _settle(done, None)


def successes(pool: asyncpg.Pool, max_batch: int = MAX_BATCH) -> GroupCommit:
    """Successes ``(message, endpoint id, attempt number, attempt)``: one statement per batch."""
    return GroupCommit(pool, messages.delivered_many, max_batch)


def _settle(done: asyncio.Future, error: Exception | None) -> None:
    if done.done():  # its task was cancelled (the dispatcher stopping)
        return
    if error is None:
        done.set_result(None)
    else:
        done.set_exception(error)
