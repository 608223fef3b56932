"""The reference POS: one consumer group on pos.orders, answers on pos.order-events.

Durable enough without storage of its own: an inject-order's offset is committed only after its
answer was acknowledged by the broker, so a crash in between answers again after the restart; the
answer is the same (POS order number and ``ce_id`` derive from the order id and attempt), so
posint's inbox takes the repeat as a no-op.
"""
from __future__ import annotations

import asyncio
import uuid
from dataclasses import asdict, dataclass

from aiohttp import web
from aiokafka.structs import ConsumerRecord

from posint_common import kafka
from posint_common.contracts import pos, topics
from posint_common.envelope import Envelope, InvalidEnvelope
from posint_common.fetch_pacing import FetchPacer
from posint_common.log import get_logger

from sandbox.pos.settings import PosSettings

log = get_logger(__name__)

SOURCE = "posint-sandbox/reference-pos"
ANSWER_IDS = uuid.UUID("5d0f8a52-8f4e-4d8e-9a35-1c3f0b5e7a11")
SEND_TIMEOUT_S = 10
PROGRESS = {  # control API: POST /orders/{id}/{event}
    "preparing": (pos.ORDER_PREPARING, pos.PosOrderEvent),
    "ready": (pos.ORDER_READY, pos.PosOrderEvent),
    "completed": (pos.ORDER_COMPLETED, pos.PosOrderEvent),
    "cancelled": (pos.ORDER_CANCELLED, pos.PosOrderEvent),
    "payment_completed": (pos.PAYMENT_COMPLETED, pos.PosPaymentCompleted),
}


@dataclass
class Behaviour:
    delay_ms: int = 0
    fail_reason: str | None = None  # refuse injections with this reason
    fail_times: int | None = None  # with fail_reason: only the next N, then accept again (None: all)


@dataclass
class Ticket:
    order_id: int
    tenant_id: str
    attempt: int
    external_id: str
    pos_order_id: str | None = None
    status: str = "new"
    items: int = 0


@dataclass
class Counters:
    injected: int = 0
    failed: int = 0
    cancelled: int = 0
    commands: int = 0


class ReferencePos:
    def __init__(self, settings: PosSettings) -> None:
        self.settings = settings
        self.behaviour = Behaviour(delay_ms=settings.pos_delay_ms, fail_reason=settings.pos_fail_reason)
        self.tickets: dict[int, Ticket] = {}
        self.counters = Counters()
        self.port: int | None = None
        self.joined = asyncio.Event()
        self._consumer = kafka.make_consumer(settings, topics.POS_ORDERS, group_id=settings.pos_group,
                                             client_id=settings.pos_group)
        self._producer = kafka.make_producer(settings, client_id=settings.pos_group)
        self._task: asyncio.Task | None = None
        self._runner: web.AppRunner | None = None
        self._pacer: FetchPacer | None = None

    # --- lifecycle --------------------------------------------------------------------------------

    async def start(self) -> None:
        await self._producer.start()
        await self._consumer.start()
        self._pacer = FetchPacer(self._consumer, busy_ms=self.settings.kafka_fetch_wait_busy_ms,
                                 idle_ms=self.settings.kafka_fetch_wait_idle_ms,
                                 window_ms=self.settings.kafka_busy_window_ms)
        self._task = asyncio.create_task(self._run(), name="reference-pos")
        self._runner = web.AppRunner(self._control_app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.settings.pos_control_port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]
        if self.settings.health_port is not None:  # as a posint service: /readyz on HEALTH_PORT
            await web.TCPSite(self._runner, "127.0.0.1", self.settings.health_port).start()

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._pacer:
            self._pacer.close()
        if self._runner:
            await self._runner.cleanup()
        await self._consumer.stop()
        await self._producer.stop()

    @property
    def task(self) -> asyncio.Task | None:
        return self._task

    # --- pos.orders -------------------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            batch = await self._consumer.getmany(timeout_ms=1_000)
            if self._consumer.assignment():
                self.joined.set()
            if not batch:
                continue
            self._pacer.activity()
            # partitions in parallel, one partition's commands in order; the answers are sent without
            # waiting for each ack (the producer keeps their order) and the offsets committed once all
            # of them were acknowledged
            acks: list[asyncio.Future] = []
            await asyncio.gather(*(self._in_order(records, acks) for records in batch.values()))
            async with asyncio.timeout(SEND_TIMEOUT_S):
                await asyncio.gather(*acks)
            await self._consumer.commit({tp: records[-1].offset + 1 for tp, records in batch.items()})

    async def _in_order(self, records: list[ConsumerRecord], acks: list[asyncio.Future]) -> None:
        for record in records:
            await self._handle(record, acks)

    async def _handle(self, record: ConsumerRecord, acks: list[asyncio.Future]) -> None:
        try:
            command = Envelope.from_record(record.headers, record.value)
        except InvalidEnvelope as error:
            log.warning("pos_command_unreadable", offset=record.offset, error=str(error))
            return
        self.counters.commands += 1
        try:
            if command.type == pos.INJECT_ORDER:
                acks.append(await self._inject(command, command.parse(pos.InjectOrder)))
            elif command.type == pos.CANCEL_ORDER:
                acks.append(await self._cancel(command, command.parse(pos.CancelOrder)))
        except ValueError as error:  # an invalid payload: a real POS would park it; this one logs it
            log.warning("pos_command_invalid", type=command.type, error=str(error)[:300])

    async def _inject(self, command: Envelope, order: pos.InjectOrder) -> asyncio.Future:
        if self.behaviour.delay_ms:
            await asyncio.sleep(self.behaviour.delay_ms / 1000)
        ticket = Ticket(order.order_id, order.tenant_id, order.attempt, order.external_id, items=len(order.order.items))
        self.tickets[order.order_id] = ticket
        behaviour = self.behaviour
        if behaviour.fail_reason and behaviour.fail_times != 0:
            if behaviour.fail_times is not None:
                behaviour.fail_times -= 1
            ticket.status = "refused"
            self.counters.failed += 1
            answer = pos.PosOrderInjectionFailed(order_id=order.order_id, reason=behaviour.fail_reason, attempt=order.attempt)
            return await self._answer(command, pos.ORDER_INJECTION_FAILED, answer, f"{order.order_id}/{order.attempt}")
        ticket.pos_order_id, ticket.status = f"P{order.order_id:06d}-{order.attempt}", "injected"
        self.counters.injected += 1
        answer = pos.PosOrderInjected(order_id=order.order_id, pos_order_id=ticket.pos_order_id, attempt=order.attempt)
        return await self._answer(command, pos.ORDER_INJECTED, answer, f"{order.order_id}/{order.attempt}")

    async def _cancel(self, command: Envelope, order: pos.CancelOrder) -> asyncio.Future:
        ticket = self.tickets.get(order.order_id)
        if ticket is not None:
            ticket.status = "cancelled"
        self.counters.cancelled += 1
        return await self._answer(command, pos.ORDER_CANCELLED, pos.PosOrderEvent(order_id=order.order_id), f"{order.order_id}/cancel")

    async def _answer(self, cause: Envelope | None, type: str, message, identity: str | None,
                      tenant_id: str | None = None) -> asyncio.Future:
        """Queue the answer; the future is its ack. An answer's ce_id derives from what it answers, so
        answering a redelivered command again is the same message to posint's inbox."""
        attrs = {"id": str(uuid.uuid5(ANSWER_IDS, f"{type}/{identity}"))} if identity else {}
        if tenant_id:
            attrs["tenantid"] = tenant_id
        envelope = Envelope.wrap(message, source=SOURCE, type=type, cause=cause, subject=str(message.order_id), **attrs)
        return await self._producer.send(topics.POS_ORDER_EVENTS, envelope.value(), key=envelope.key,
                                         headers=envelope.headers())

    async def report(self, order_id: int, event: str, **fields) -> None:
        """The kitchen moved an order on (control API, demo): tell posint."""
        ticket = self.tickets[order_id]
        type, model = PROGRESS[event]
        ticket.status = event if event != "payment_completed" else ticket.status
        ack = await self._answer(None, type, model(order_id=order_id, **fields), None, tenant_id=ticket.tenant_id)
        async with asyncio.timeout(SEND_TIMEOUT_S):
            await ack

    # --- control API (127.0.0.1) ------------------------------------------------------------------

    def _control_app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/state", self._state)
        app.router.add_put("/behaviour", self._set_behaviour)
        app.router.add_post("/orders/{id:[0-9]+}/{event}", self._report)
        app.router.add_get("/readyz", self._ready)
        return app

    async def _state(self, request: web.Request) -> web.Response:
        return web.json_response({"behaviour": asdict(self.behaviour), "counters": asdict(self.counters),
                                  "orders": {str(k): asdict(v) for k, v in self.tickets.items()}})

    async def _set_behaviour(self, request: web.Request) -> web.Response:
        """``{"delay_ms"?, "fail_reason"?, "fail_times"?}``; fields left out keep their value."""
        try:
            changes = await request.json()
            assert isinstance(changes, dict) and set(changes) <= {"delay_ms", "fail_reason", "fail_times"}
            merged = Behaviour(**{**asdict(self.behaviour), **changes})
            assert isinstance(merged.delay_ms, int) and 0 <= merged.delay_ms <= 600_000
            assert merged.fail_reason is None or (isinstance(merged.fail_reason, str) and 0 < len(merged.fail_reason) <= 500)
            assert merged.fail_times is None or (isinstance(merged.fail_times, int) and merged.fail_times >= 0)
        except (ValueError, AssertionError, TypeError):
            return web.json_response({"error": "expected {delay_ms: 0..600000, fail_reason: text|null, fail_times: int|null}"},
                                     status=422)
        self.behaviour = merged
        return web.json_response(asdict(self.behaviour))

    async def _report(self, request: web.Request) -> web.Response:
        order_id, event = int(request.match_info["id"]), request.match_info["event"]
        if event not in PROGRESS:
            return web.json_response({"error": f"event must be one of {', '.join(PROGRESS)}"}, status=404)
        if order_id not in self.tickets:
            return web.json_response({"error": "no such order at this POS"}, status=404)
        await self.report(order_id, event)
        return web.json_response(asdict(self.tickets[order_id]))

    async def _ready(self, request: web.Request) -> web.Response:
        ok = self.joined.is_set() and self._task is not None and not self._task.done()
        return web.json_response({"ready": ok}, status=200 if ok else 503)
