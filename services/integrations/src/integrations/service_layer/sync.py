"""Sync runs: the start command, the two queries, and the run itself.

``POST /integrations/{id}/sync`` is a command: in its transaction it records a ``running`` run (or
finds the one already running: one per integration, a partial unique index), emits ``sync-started``
and answers. The run is then executed by the sync worker (entrypoints/sync_worker.py), outside any
command's transaction: fetch the platform's orders new or changed since the integration's watermark
and hand each over exactly as a pushed order is (``inbound.hand_over``: a known order with the same
content is a duplicate, so syncing twice creates nothing twice), one short transaction per order
with the run's counts; then finish the run with ``sync-completed`` or ``sync-failed``. An order the
platform lists as cancelled is also handed over as a cancellation (``inbound.hand_over_cancellation``,
once per order), in the same transaction, behind its ``order-received``.
"""
from __future__ import annotations

import asyncio
import dataclasses
import json
from dataclasses import dataclass

import asyncpg

from posint_common import outbox
from posint_common.consumer import MessageContext
from posint_common.contracts import integrations as contract, topics
from posint_common.contracts.problem import problem
from posint_common.contracts.replies import Reply
from posint_common.envelope import Envelope
from posint_common.log import get_logger

from integrations.adapters import inbound_repository, metrics, push_repository as pushes, sync_repository as runs
from integrations.adapters.providers.base import Cancellation, Parsed
from integrations.adapters.providers.client import FetchResult, ProviderError
from integrations.adapters.repository import IntegrationRepository
from integrations.domain.model import Integration
from integrations.service_layer.clients import Clients, describe
from integrations.service_layer.handlers import not_found
from integrations.service_layer.inbound import (
    CANCELLED, DUPLICATE, RECEIVED, UPDATED, OrderTooLarge, hand_over, hand_over_cancellation,
)

log = get_logger(__name__)

COUNT_OF = {RECEIVED: "created", UPDATED: "updated", DUPLICATE: "duplicates"}
RESULT_OF = {RECEIVED: "created", UPDATED: "updated", DUPLICATE: "duplicate"}  # posint_sync_orders_total{result}
INTERRUPTED = "interrupted: the worker running it stopped before it finished"


def run_view(run: runs.Run) -> contract.SyncRun:
    return contract.SyncRun(id=run.id, integration_id=run.integration_id, status=run.status,
                            counts=contract.SyncCounts(**run.counts), error=run.error, started_at=run.started_at,
                            finished_at=run.finished_at)


def run_not_found(run_id: int) -> Reply:
    return Reply(status=404, problem=problem(404, "not-found", "Not Found", f"No sync run {run_id}."))


# --- Command and queries ------------------------------------------------------------------------

async def start_sync(ctx: MessageContext, command: contract.IntegrationRef) -> Reply:
    integration = await IntegrationRepository(ctx.conn, ctx.envelope.tenantid).get(command.id, for_update=True)
    if integration is None:
        return not_found(command.id)
    if not integration.is_active:
        return Reply(status=409, problem=problem(
            409, "integration-inactive", "Conflict",
            f"Integration {integration.id} is inactive; set it active (PATCH is_active) to sync it."))
    run = await runs.running(ctx.conn, integration.id)
    if run is None:
        run = await runs.start(ctx.conn, integration.tenant_id, integration.id,
                               ctx.envelope.correlationid or ctx.envelope.id)
        await ctx.emit(topics.INTEGRATIONS_EVENTS, contract.SYNC_STARTED,
                       contract.SyncStarted(id=run.id, integration_id=integration.id, provider=integration.provider,
                                            started_at=run.started_at),
                       subject=str(integration.id))
        log.info("sync_started", integration_id=integration.id, run_id=run.id, tenant=integration.tenant_id)
    started = contract.SyncRunStarted(id=run.id, integration_id=run.integration_id, status=run.status,
                                      started_at=run.started_at)
    return Reply(status=200, body=contract.SyncRunStartedDocument(data=started).model_dump(mode="json"))


async def list_sync_runs(ctx: MessageContext, query: contract.ListSyncRuns) -> Reply:
    integration = await IntegrationRepository(ctx.conn, ctx.envelope.tenantid).get(query.integration_id)
    if integration is None:
        return not_found(query.integration_id)
    page = await runs.page(ctx.conn, integration.id, query.limit, query.after_id)
    return Reply(status=200, body=contract.SyncRunList(data=[run_view(run) for run in page]).model_dump(mode="json"))


async def get_sync_run(ctx: MessageContext, query: contract.SyncRunRef) -> Reply:
    run = await runs.get(ctx.conn, ctx.envelope.tenantid, query.id)
    if run is None:
        return run_not_found(query.id)
    return Reply(status=200, body=contract.SyncRunDocument(data=run_view(run)).model_dump(mode="json"))


# --- The run ------------------------------------------------------------------------------------

@dataclass
class SyncRunner:
    """Executes one claimed run on the worker's connection (which holds the run's lock)."""

    schema: str
    source: str
    clients: Clients
    fetch_timeout_s: float

    async def run(self, conn: asyncpg.Connection, run: runs.Run) -> runs.Run:
        integration = await inbound_repository.live_integration(conn, run.integration_id)
        if integration is None:
            return await self.finish(conn, run, "the integration was deleted")
        if integration.integration_type == "accounting":
            # A ledger has nothing to fetch: its sync tries the bookings that failed again (push worker).
            requeued = await pushes.requeue_failed_sales(conn, integration.id)
            log.info("sync_requeued_sales", integration_id=integration.id, run_id=run.id, requeued=requeued)
            return await self.finish(conn, run, None, integration)
        try:
            since = await runs.watermark(conn, integration.id)
            client = self.clients.for_integration(integration)
            async with asyncio.timeout(self.fetch_timeout_s):
                result = await client.fetch_orders(since)
        except ProviderError as error:
            return await self.finish(conn, run, describe(error), integration)
        except TimeoutError:
            return await self.finish(conn, run, f"the platform did not answer within {self.fetch_timeout_s:g} s", integration)
        failed = await self._hand_over(conn, run, integration, result)
        # An order that failed is fetched again next time: the watermark moves only past a clean run.
        return await self.finish(conn, run, None, integration, result.watermark, keep_watermark=failed > 0 or result.watermark is None)

    async def _hand_over(self, conn: asyncpg.Connection, run: runs.Run, integration: Integration,
                         result: FetchResult) -> int:
        failed = 0
        for fetched in result.orders:
            document = fetched.raw if isinstance(fetched.raw, dict) else {"raw": fetched.raw}
            body = json.dumps(document, separators=(",", ":")).encode()
            try:
                async with conn.transaction():
                    handed = await hand_over(conn, self.schema, self.source, integration,
                                             Parsed(fetched.normalized, None), body, document,
                                             correlationid=run.correlation_id)
                    if fetched.cancelled:  # behind its order-received, on the same key
                        cancelled = await hand_over_cancellation(
                            conn, self.schema, self.source, integration,
                            Cancellation(fetched.normalized.external_id, None, fetched.cancel_reason),
                            correlationid=run.correlation_id)
                        if cancelled is not None and cancelled.kind == CANCELLED and handed.kind == DUPLICATE:
                            handed = dataclasses.replace(handed, kind=UPDATED)  # a known order, now cancelled
                    await runs.add_counts(conn, run.id, fetched=1, **{COUNT_OF[handed.kind]: 1})
                metrics.SYNC_ORDERS.labels(integration.provider, RESULT_OF[handed.kind]).inc()
            except asyncpg.DataError as error:  # content Postgres refuses (e.g. a NUL): that order's fault
                failed += 1
                await self._reject(conn, run, integration, fetched.normalized.external_id, f"not storable: {error}", body)
            except OrderTooLarge as error:  # would not fit the broker's record: refused, never stuck in the outbox
                failed += 1
                await self._reject(conn, run, integration, fetched.normalized.external_id, str(error), body)
        for bad in result.failed:
            failed += 1
            raw = json.dumps(bad.raw, separators=(",", ":"), default=str).encode()
            await self._reject(conn, run, integration, bad.external_id, bad.error, raw)
        return failed

    async def _reject(self, conn: asyncpg.Connection, run: runs.Run, integration: Integration, external_id: str | None,
                      error: str, body: bytes) -> None:
        """Keep the order the platform listed but we cannot take, for inspection (inbound_rejections)."""
        async with conn.transaction():
            await inbound_repository.add_rejection(conn, integration, None, f"sync run {run.id}: {error}", body)
            await runs.add_counts(conn, run.id, fetched=1, failed=1)
        metrics.SYNC_ORDERS.labels(integration.provider, "failed").inc()
        log.info("sync_order_failed", integration_id=integration.id, run_id=run.id, external_id=external_id, error=error)

    async def finish(self, conn: asyncpg.Connection, run: runs.Run, error: str | None,
                     integration: Integration | None = None, watermark=None, keep_watermark: bool = True) -> runs.Run:
        """Finish the run and report it (``sync-completed`` or ``sync-failed``) in one transaction."""
        async with conn.transaction():
            current = await runs.running_by_id(conn, run.id)
            if current is None:  # finished meanwhile (interrupted by a sweep): nothing to do
                return run
            finished = await runs.finish(conn, current, error, watermark, keep_watermark)
            provider = integration.provider if integration else await conn.fetchval(
                "SELECT provider FROM integrations WHERE id = $1", run.integration_id)
            counts = contract.SyncCounts(**finished.counts)
            if error is None:
                event, type = contract.SyncCompleted(
                    id=run.id, integration_id=run.integration_id, provider=provider, started_at=finished.started_at,
                    completed_at=finished.finished_at, counts=counts), contract.SYNC_COMPLETED
            else:
                event, type = contract.SyncFailed(
                    id=run.id, integration_id=run.integration_id, provider=provider, error=error,
                    started_at=finished.started_at, failed_at=finished.finished_at, counts=counts), contract.SYNC_FAILED
            envelope = Envelope.wrap(event, source=self.source, type=type, subject=str(run.integration_id),
                                     tenantid=run.tenant_id, correlationid=run.correlation_id)
            await outbox.add(conn, self.schema, topics.INTEGRATIONS_EVENTS, envelope)
        metrics.SYNC_RUNS.labels(provider, finished.status).inc()  # committed: counted once, whoever finished it
        log.info("sync_finished", integration_id=run.integration_id, run_id=run.id, status=finished.status,
                 error=error, tenant=run.tenant_id, **finished.counts)
        return finished

