"""The sync worker: a supervised loop that runs the sync runs the start command recorded.

Every ``SYNC_POLL_INTERVAL_MS`` it (1) takes runs nobody runs yet, up to ``SYNC_MAX_CONCURRENT`` at
once, each on its own pooled connection holding a session advisory lock on the run, and (2) finds
runs taken by a worker that is gone: ``running``, claimed, and nobody holds their lock (Postgres
drops a session's locks when its process dies). Those were cut off by a crash and are finished as
``failed`` (with ``sync-failed``), never left running. Several replicas may run the loop; the claim
(an UPDATE of an unclaimed row) and the lock keep each run on one worker."""
from __future__ import annotations

import asyncio
import uuid

import asyncpg

from posint_common.log import get_logger
from posint_common.waits import wait_and_clear

from integrations.adapters import sync_repository as runs
from integrations.service_layer.sync import INTERRUPTED, SyncRunner

log = get_logger(__name__)


class SyncWorker:
    def __init__(self, pool: asyncpg.Pool, runner: SyncRunner, *, poll_interval_s: float, max_concurrent: int) -> None:
        self.pool = pool
        self.runner = runner
        self.poll_interval_s = poll_interval_s
        self.max_concurrent = max_concurrent
        self.worker_id = f"{uuid.uuid4().hex[:12]}"
        self.task: asyncio.Task | None = None
        self._active: dict[int, asyncio.Task] = {}
        self._wake = asyncio.Event()

    async def start(self) -> None:
        self.task = asyncio.create_task(self._loop(), name="sync-worker")

    async def stop(self) -> None:
        """Cut the runs in progress off and finish them as failed now, rather than at the next start."""
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
        active = list(self._active.values())
        for task in active:
            task.cancel()
        await asyncio.gather(*active, return_exceptions=True)
        self._active.clear()
        try:
            await self.sweep()
        except Exception as error:  # noqa: BLE001 - stopping anyway; the next start sweeps
            log.warning("sync_sweep_failed", error=repr(error))

    def wake(self) -> None:
        self._wake.set()

    async def _loop(self) -> None:
        while True:
            try:
                await self.sweep()
                await self._take()
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
                log.warning("sync_poll_failed", error=repr(error))  # Postgres away: try again next round
            await wait_and_clear(self._wake, self.poll_interval_s)

    async def _take(self) -> None:
        free = self.max_concurrent - len(self._active)
        if free <= 0:
            return
        async with self.pool.acquire() as conn:
            waiting = await runs.unclaimed(conn, free)
        for run_id in waiting:
            if run_id not in self._active:
                task = asyncio.create_task(self._execute(run_id), name=f"sync-run-{run_id}")
                self._active[run_id] = task
                task.add_done_callback(lambda _, run_id=run_id: self._done(run_id))

    def _done(self, run_id: int) -> None:
        self._active.pop(run_id, None)
        self._wake.set()  # a slot is free: look for waiting runs now

    async def _execute(self, run_id: int) -> None:
        try:
            async with self.pool.acquire() as conn:
                if not await runs.try_lock(conn, run_id):
                    return
                try:
                    await self._run(conn, run_id)
                finally:
                    await runs.unlock(conn, run_id)
        except asyncio.CancelledError:
            raise
        except Exception as error:  # noqa: BLE001 - e.g. the connection is gone: the run stays claimed, the sweep fails it
            log.warning("sync_run_lost", run_id=run_id, error=repr(error))

    async def _run(self, conn: asyncpg.Connection, run_id: int) -> None:
        run = await runs.claim(conn, run_id, self.worker_id)
        if run is None:
            return
        log.info("sync_run_taken", run_id=run_id, integration_id=run.integration_id, worker=self.worker_id)
        try:
            await self.runner.run(conn, run)
        except (asyncio.CancelledError, OSError, asyncpg.InterfaceError, asyncpg.PostgresConnectionError):
            raise  # stopped, or Postgres is away: nothing can be written now; the sweep finishes the run
        except Exception as error:  # noqa: BLE001 - a bug must fail the run, not the worker
            log.exception("sync_run_crashed", run_id=run_id, error=repr(error))
            await self.runner.finish(conn, run, f"internal error ({type(error).__name__}); see the service log")

    async def sweep(self) -> int:
        """Finish as failed every claimed run whose worker is gone; returns how many."""
        async with self.pool.acquire() as conn:
            claimed = [run_id for run_id in await runs.claimed(conn) if run_id not in self._active]
            interrupted = 0
            for run_id in claimed:
                if not await runs.try_lock(conn, run_id):
                    continue  # its worker is alive
                try:
                    run = await runs.running_by_id(conn, run_id)
                    if run is not None and run.claimed_by is not None:
                        await self.runner.finish(conn, run, INTERRUPTED)
                        log.warning("sync_run_interrupted", run_id=run_id, integration_id=run.integration_id,
                                    worker=run.claimed_by)
                        interrupted += 1
                finally:
                    await runs.unlock(conn, run_id)
        return interrupted
