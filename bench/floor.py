"""The broker's floor: a bare request/reply ping-pong on the stack's own broker, nothing else.

One producer and one consumer each way, no database, no envelope, no validation: what any
request/reply over this broker costs at least. Fair to the stack by construction: the same client
factories (``posint_common.kafka``), the same fetch pacing (``FetchPacer`` with the KAFKA_* settings
the services read), the same topic rolling when ``KAFKA_ROLL_TOPICS`` is on (requests on
generations read by assignment and committed under a group, each client's replies on its own
generations), the same pipelining as the services' query consumer (the next fetch starts while a
batch's replies are sent; commits stay in fetch order), uvloop, fresh topics per run.

Two processes, as a service and the gateway would be:

- ``python -m bench.floor echo BOOTSTRAP PREFIX``: answers every request on ``PREFIX.requests`` by
  sending its value back to the topic in its ``replyto`` header; reports ``ready`` once reading. It
  stops when its stdin closes or on SIGTERM/SIGINT, deletes every ``PREFIX.*`` topic, and exits.
- ``python -m bench.floor client BOOTSTRAP PREFIX CONCURRENCY DURATION_S WARMUP_S``: closed loop
  like ``bench.load`` (warm-up unrecorded); reports ``start`` and ``end`` around the recorded window
  (so the bench can read CPU times there), then ``result`` with a JSON object.

Both report on the pipe named by ``BENCH_FLOOR_FD`` (``Floor`` below, the bench's side, sets it up).
"""
from __future__ import annotations

import asyncio
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Awaitable, Callable
from urllib.parse import urlsplit

import uvloop
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError

from bench import cpu
from posint_common import kafka, topic_roll
from posint_common.devstack.processes import die_with_parent
from posint_common.fetch_pacing import FetchPacer
from posint_common.log import configure_logging
from posint_common.runtime import pacer_settings
from posint_common.settings import KafkaSettings, load_settings

MAX_BATCHES_IN_FLIGHT = 4  # as posint_common.consumer
REPLY_TIMEOUT_S = 10.0
PAYLOAD = b"x" * 64
MAX_LIFETIME_S = 3_600  # the echo never outlives a forgotten bench by more than this
ROOT = Path(__file__).resolve().parents[1]
START_TIMEOUT_S = 60
REPORT_FD = "BENCH_FLOOR_FD"  # the pipe the floor's processes report on (their stdout carries logs)
_report = None


def say(line: str) -> None:
    """One line to the bench, on a pipe of its own: a log line (posint_common.log writes to stdout,
    a garbage-collected client may warn at any moment) can never land inside a report."""
    global _report
    if _report is None:
        _report = os.fdopen(int(os.environ[REPORT_FD]), "w", buffering=1)
    _report.write(line + "\n")


def requests_topic(prefix: str) -> str:
    return f"{prefix}.requests"


def replies_topic(prefix: str) -> str:
    return f"{prefix}.replies"


def settings(bootstrap: str) -> KafkaSettings:
    return load_settings(KafkaSettings, kafka_bootstrap_servers=bootstrap)


def admin_for(config: KafkaSettings) -> AIOKafkaAdminClient:
    return AIOKafkaAdminClient(bootstrap_servers=config.kafka_bootstrap_servers,
                               request_timeout_ms=config.kafka_request_timeout_ms)


def stop_on_eof_or_signal(stop: asyncio.Event) -> None:
    """Stop when the bench closes our stdin (or dies) or sends SIGTERM/SIGINT."""
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)

    def wait_eof() -> None:
        sys.stdin.buffer.read()
        loop.call_soon_threadsafe(stop.set)

    threading.Thread(target=wait_eof, daemon=True).start()
    loop.call_later(MAX_LIFETIME_S, stop.set)


async def echo(bootstrap: str, prefix: str, reply: Callable[[list], Awaitable[list[bytes]]] | None = None) -> None:
    """Answer every request with its own value, or with what ``reply`` makes of a batch's records
    (``bench.minimal``'s service: the query's rows), in the records' order."""
    config = settings(bootstrap)
    base = requests_topic(prefix)
    partitions = int(os.environ.get("KAFKA_TOPIC_PARTITIONS", kafka.DEFAULT_PARTITIONS))
    await kafka.ensure_topics(bootstrap, (base,), partitions)  # as the launcher creates the stack's
    group = f"{prefix}.echo"
    producer = kafka.make_producer(config, client_id=group)
    consumer = kafka.make_consumer(config, *(() if config.kafka_roll_topics else (base,)), group_id=group, client_id=group)
    admin = admin_for(config)
    await admin.start()
    await producer.start()
    await consumer.start()
    reader = pruning = None
    if config.kafka_roll_topics:
        reader = topic_roll.RollingReader(consumer, admin, (base,), roll_records=config.kafka_roll_records, include_base=True)
        await reader.start()
        pruning = asyncio.create_task(topic_roll.prune_metadata_forever(producer.client))
    else:
        while not consumer.assignment():  # group join: Tansu takes half the session timeout
            await consumer.getmany(timeout_ms=200)
    pacer = FetchPacer(consumer, **pacer_settings(config))
    stop = asyncio.Event()
    stop_on_eof_or_signal(stop)
    room = asyncio.Semaphore(MAX_BATCHES_IN_FLIGHT)
    last: asyncio.Task | None = None

    async def answer(batch: dict, previous: asyncio.Task | None) -> None:
        try:
            records = [record for records in batch.values() for record in records]
            values = await reply(records) if reply else [record.value for record in records]
            sent = [await producer.send(dict(record.headers)["replyto"].decode(), value, key=record.key)
                    for record, value in zip(records, values)]
            await asyncio.gather(*sent)
            if previous is not None:
                await asyncio.gather(previous, return_exceptions=True)
            await consumer.commit({tp: records[-1].offset + 1 for tp, records in batch.items()})
        finally:
            room.release()

    say("ready rolled" if config.kafka_roll_topics else "ready plain")
    try:
        while not stop.is_set():
            batch = await consumer.getmany(timeout_ms=500)
            if not batch:
                continue
            pacer.activity()
            await room.acquire()
            last = asyncio.create_task(answer(batch, last))
    finally:
        if last is not None:
            await asyncio.gather(last, return_exceptions=True)
        pacer.close()
        if reader is not None:
            await reader.stop()
        if pruning is not None:
            pruning.cancel()
        await consumer.stop()
        await producer.stop()
        try:
            ours = [t for t in await admin.list_topics() if t.startswith(prefix + ".")]
            await topic_roll.delete(admin, ours)  # leave the stack's broker as we found it
        except KafkaError as error:
            print(f"could not delete the floor's topics: {error!r}", file=sys.stderr)
        await admin.close()


class Requester:
    """The gateway's side of a bare request/reply, as the floor's client makes it: requests on the
    newest generation of ``PREFIX.requests``, replies on a topic (or generations) of its own, matched
    by key. ``bench.minimal``'s HTTP process makes its requests with it too."""

    def __init__(self, bootstrap: str, prefix: str) -> None:
        self.bootstrap, self.prefix = bootstrap, prefix
        self.config = settings(bootstrap)
        self.base = requests_topic(prefix)
        self.producer = kafka.make_producer(self.config, client_id=f"{prefix}.client")
        self.consumer = kafka.make_consumer(self.config, group_id=None, client_id=f"{prefix}.client")
        self.admin = admin_for(self.config)
        self.targets = self.replies = self.router = None
        self.reply_topic = ""
        self.pending: dict[bytes, asyncio.Future] = {}
        self.counter = iter(range(1 << 62))

    async def start(self) -> None:
        config, consumer = self.config, self.consumer
        await self.admin.start()
        await self.producer.start()
        await consumer.start()
        if config.kafka_roll_topics:  # as posint_common.requests: newest request generation, own reply generations
            self.targets = topic_roll.Targets(self.admin)
            await self.targets.start()
            self.replies = topic_roll.RollingReader(
                consumer, self.admin, (topic_roll.reply_base(replies_topic(self.prefix), uuid.uuid4().hex[:12]),),
                roll_records=config.kafka_roll_records, orphans_of=replies_topic(self.prefix))
            await self.replies.start()
        else:
            self.reply_topic = f"{replies_topic(self.prefix)}.{uuid.uuid4().hex[:12]}"
            await kafka.ensure_topics(self.bootstrap, (self.reply_topic,), 1)
            await consumer.topics()
            tp = TopicPartition(self.reply_topic, 0)
            consumer.assign([tp])
            await consumer.seek_to_end(tp)
            await consumer.position(tp)
        self.pacer = FetchPacer(consumer, **pacer_settings(config))
        self.router = asyncio.create_task(self._route())

    async def _route(self) -> None:
        while True:
            batch = await self.consumer.getmany(timeout_ms=1_000)
            if batch:
                self.pacer.activity()
            for records in batch.values():
                for record in records:
                    future = self.pending.pop(record.key, None)
                    if future is not None and not future.done():
                        future.set_result(record.value)

    async def request(self, value: bytes) -> bytes:
        """The reply's value; KafkaError or TimeoutError (after REPLY_TIMEOUT_S) when there is none."""
        key = next(self.counter).to_bytes(8, "big")
        future = self.pending[key] = asyncio.get_running_loop().create_future()
        reply_to = self.replies.current(self.replies.bases[0]) if self.replies else self.reply_topic
        topic = self.targets.topic_for(self.base) if self.targets else self.base
        try:
            self.pacer.activity()
            await self.producer.send_and_wait(topic, value, key=key, headers=[("replyto", reply_to.encode())])
            return await asyncio.wait_for(future, REPLY_TIMEOUT_S)
        finally:
            self.pending.pop(key, None)

    async def stop(self) -> None:
        if self.router is not None:
            self.router.cancel()
            await asyncio.gather(self.router, return_exceptions=True)
            self.pacer.close()
        for part in (self.replies, self.targets):
            if part is not None:
                await part.stop()
        await self.consumer.stop()
        await self.producer.stop()
        await self.admin.close()


async def client(bootstrap: str, prefix: str, concurrency: int, duration_s: float, warmup_s: float) -> dict:
    requester = Requester(bootstrap, prefix)
    latencies: list[float] = []
    errors = 0

    async def worker(until: float, record: bool) -> None:
        nonlocal errors
        while (start := time.perf_counter()) < until:
            try:
                await requester.request(PAYLOAD)
                good = True
            except (KafkaError, TimeoutError):
                good = False
            if not record:
                continue
            if good:
                latencies.append((time.perf_counter() - start) * 1000)
            else:
                errors += 1

    try:
        await requester.start()
        if warmup_s > 0:
            until = time.perf_counter() + warmup_s
            await asyncio.gather(*(worker(until, False) for _ in range(concurrency)))
        say("start")
        began = time.perf_counter()
        await asyncio.gather(*(worker(began + duration_s, True) for _ in range(concurrency)))
        elapsed = time.perf_counter() - began
        say("end")
    finally:
        await requester.stop()
    return {"concurrency": concurrency, "seconds": elapsed, "ok": len(latencies), "errors": errors, "latencies_ms": latencies}


class Floor:
    """The bench's side: one echo process for the whole run, one client process per load run."""

    def __init__(self, bootstrap: str, roll_topics: bool | None) -> None:
        if urlsplit(f"//{bootstrap}").hostname != "127.0.0.1":
            raise SystemExit("bench runs on loopback only: the broker must be on 127.0.0.1")
        self.bootstrap = bootstrap
        self.prefix = f"bench.floor.{uuid.uuid4().hex[:8]}"  # fresh topics every run
        self.env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": bootstrap}
        if roll_topics is not None:
            self.env["KAFKA_ROLL_TOPICS"] = "true" if roll_topics else "false"
        self.echo, self._echo_lines = spawn("bench.floor", self.env, "echo", bootstrap, self.prefix, stdin=subprocess.PIPE)
        try:
            self.rolled = expect(self._echo_lines, self.echo, "ready", START_TIMEOUT_S) == "ready rolled"
        except RuntimeError:
            self.echo.kill()
            raise

    def run(self, concurrency: int, duration_s: float, warmup_s: float) -> tuple[dict, cpu.Meter]:
        """One closed-loop run: the client's result, and the CPU each process used in its recorded window."""
        client, lines = spawn("bench.floor", self.env, "client", self.bootstrap, self.prefix, str(concurrency), str(duration_s), str(warmup_s))
        broker = cpu.listener(int(self.bootstrap.rsplit(":", 1)[1]))
        kinds = {self.echo.pid: "floor echo", client.pid: "floor client", **({broker.pid: "tansu"} if broker else {})}
        meter = cpu.Meter(lambda: dict(kinds))
        try:
            expect(lines, client, "start", START_TIMEOUT_S + warmup_s)
            meter.start()
            expect(lines, client, "end", duration_s + REPLY_TIMEOUT_S + 30)
            meter.stop()
            result = json.loads(expect(lines, client, "result ", 30).removeprefix("result "))
            client.wait(30)
            return result, meter
        finally:
            if client.poll() is None:
                client.kill()
                client.wait()

    def stop(self) -> None:
        """Close the echo's stdin: it stops reading, deletes the floor's topics and exits."""
        close(self.echo)


def spawn(module: str, env: dict[str, str], *args: str, stdin=subprocess.DEVNULL) -> tuple[subprocess.Popen, queue.Queue]:
    """Start ``python -m module args``; its report lines arrive on the returned queue (None: it closed the pipe)."""
    read_fd, write_fd = os.pipe()
    try:
        process = subprocess.Popen([sys.executable, "-m", module, *args], cwd=ROOT, stdin=stdin,
                                   stdout=sys.stderr, env={**env, REPORT_FD: str(write_fd)},
                                   pass_fds=(write_fd,), preexec_fn=die_with_parent)
    finally:
        os.close(write_fd)
    return process, _lines(os.fdopen(read_fd))


def close(process: subprocess.Popen) -> None:
    """Close a long-lived process's stdin (it stops and cleans up after itself); kill it if it takes over 30 s."""
    if process.poll() is None:
        process.stdin.close()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _lines(report) -> queue.Queue:
    """A report pipe's lines, read by a thread so that waiting for one can time out."""
    lines: queue.Queue = queue.Queue()

    def read() -> None:
        with report:
            for line in report:
                lines.put(line.rstrip("\n"))
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    return lines


def _next(lines: queue.Queue, process: subprocess.Popen, timeout_s: float) -> str:
    try:
        line = lines.get(timeout=timeout_s)
    except queue.Empty:
        raise RuntimeError(f"{process.args[2]} {process.args[3]} silent for {timeout_s:g} s") from None
    if line is None:
        raise RuntimeError(f"{process.args[2]} {process.args[3]} exited ({process.wait()})")
    return line


def expect(lines: queue.Queue, process: subprocess.Popen, wanted: str, timeout_s: float) -> str:
    line = _next(lines, process, timeout_s)
    if not line.startswith(wanted):
        raise RuntimeError(f"{process.args[2]} {process.args[3]}: expected {wanted!r}, got {line[:200]!r}")
    return line


def main(argv: list[str]) -> int:
    configure_logging("bench.floor", "WARNING")  # the roll's info lines are not news here
    if len(argv) >= 3 and argv[0] == "echo" and "127.0.0.1" in argv[1]:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(echo(argv[1], argv[2]))
        return 0
    if len(argv) == 6 and argv[0] == "client" and "127.0.0.1" in argv[1]:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            result = runner.run(client(argv[1], argv[2], int(argv[3]), float(argv[4]), float(argv[5])))
        say("result " + json.dumps(result))
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
