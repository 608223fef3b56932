"""Short-lived generations of request/reply topics, for a broker that never drops records.

The embedded Tansu (memory storage) keeps every record batch for ever, and every fetch that
returns data lists all the batches its partition ever stored (tansu-storage ``dynostore.rs``,
``DynoStore::fetch``: ``object_store.list`` over ``.../partitions/<p>/records/``), about 1 µs each.
A hop therefore slows down linearly with the partition's history, and once that listing outlasts
the fetch wait the partition returns nothing at all (the listing stops at the deadline, so the
fetch finds no batch at or after its offset). Tansu refuses DeleteRecords and ignores retention.ms,
but DeleteTopics drops a topic's batches. So, when ``KAFKA_ROLL_TOPICS`` is on, request and reply
traffic goes to generations ``<base>.g<creation unix ms>``:

- the consumer side owns a base: it opens the first generation, opens a new one every
  ``roll_records`` records or ``ROLL_AGE_S`` seconds, keeps reading the older ones, and stops
  reading and deletes a generation ``GRACE_S`` after its successor appeared, once it is drained
  (committed, or read, to its end); every topic it still reads costs a little on every fetch;
- the producer side sends to the newest generation it knows of (``Targets``, refreshed every
  ``REFRESH_S``), or to the base topic itself before any generation exists (the base is read as
  the permanent "generation 0" and never deleted);
- consumers read generations with ``assign()``: a group subscription would rebalance on every
  new topic, and a Tansu JoinGroup takes half the session timeout. Offsets are still committed
  under the group's name (a "simple consumer" commit, accepted while the group has no members),
  so the gateway can still tell a stopped service (nothing committed: 503) from a silent one (504).
- a generation's name carries its creation time; every reader rolls at least every ``ROLL_AGE_S``,
  so any reply generation older than ``ORPHAN_AGE_S`` belongs to a dead gateway and is deleted.

With a broker that applies retention (a real Kafka) leave it off: plain topics, group
subscriptions, nothing rolled.
"""
from __future__ import annotations

import asyncio
import functools
import re
import time
from dataclasses import dataclass, field

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError, UnknownTopicOrPartitionError

from posint_common.log import get_logger

log = get_logger(__name__)

ROLL_AGE_S = 120.0  # even an idle base rolls this often: a generation's age tells live from orphaned
GRACE_S = 15.0  # an old generation is read this long after its successor appeared: > REPLY_TIMEOUT_MS + REFRESH_S
ORPHAN_AGE_S = ROLL_AGE_S + GRACE_S + 60.0
REFRESH_S = 1.0
# Without traffic the topic list (a metadata request naming every topic, costly for the broker and
# the client alike) is fetched this often instead: a sender's view may be this old, well inside GRACE_S.
IDLE_REFRESH_S = 5.0
ROLL_RECORDS = 2_000  # at ~1 µs per stored batch, a fetch lists at most ~2 ms: well inside a 5 ms fetch wait
PARTITIONS = 1  # Tansu pays per partition on every fetch, and readers use assign(): one partition is enough
_GENERATION = re.compile(r"^(?P<base>.+)\.g(?P<ms>\d{13})$")


def now_ms() -> int:
    return int(time.time() * 1000)


def generation(base: str, created_ms: int | None = None) -> str:
    return f"{base}.g{created_ms if created_ms is not None else now_ms():013d}"


@functools.lru_cache(maxsize=4096)
def _parse(topic: str) -> tuple[str, int | None]:
    """(base, creation ms) of a topic name; names repeat on every message, so parse each once."""
    match = _GENERATION.match(topic)
    return (match["base"], int(match["ms"])) if match else (topic, None)


def base_of(topic: str) -> str:
    """The base topic a generation belongs to (a plain topic is its own base)."""
    return _parse(topic)[0]


def created_ms(topic: str) -> int | None:
    return _parse(topic)[1]


def generations(topics: set[str] | list[str], base: str) -> list[str]:
    """The generations of ``base`` among ``topics``, oldest first."""
    found = [t for t in topics if base_of(t) == base and created_ms(t) is not None]
    return sorted(found, key=lambda t: created_ms(t))


def newest_generations(topics: set[str] | list[str]) -> dict[str, str]:
    """The newest generation of every base among ``topics``: worked out once per topic list, so
    sending a request or a reply costs a dict lookup, not a scan of every topic name."""
    newest: dict[str, tuple[int, str]] = {}
    for topic in topics:
        base, created = _parse(topic)
        if created is not None and (base not in newest or created > newest[base][0]):
            newest[base] = (created, topic)
    return {base: topic for base, (_, topic) in newest.items()}


def gone(topic: str) -> bool:
    """A generation so old that its reader has deleted it, or soon will: nobody waits on it."""
    created = created_ms(topic)
    return created is not None and now_ms() - created > ORPHAN_AGE_S * 1000


def reply_base(root: str, instance: str) -> str:
    """One gateway instance's reply topics: ``gateway.replies.<instance>.g<ms>``."""
    return f"{root}.{instance}"


async def create(admin: AIOKafkaAdminClient, topics: list[str], partitions: int) -> None:
    if not topics:
        return
    try:
        await admin.create_topics([NewTopic(t, partitions, 1) for t in topics])
    except TopicAlreadyExistsError:
        pass


async def delete(admin: AIOKafkaAdminClient, topics: list[str]) -> None:
    if not topics:
        return
    try:
        await admin.delete_topics(topics)
    except UnknownTopicOrPartitionError:
        pass  # another instance deleted it first


class Targets:
    """Producer side: the generation to send to for each base, refreshed from the broker's topic list."""

    def __init__(self, admin: AIOKafkaAdminClient) -> None:
        self._admin = admin
        self._topics: set[str] = set()
        self._newest: dict[str, str] = {}
        self._task: asyncio.Task | None = None
        self._used = False  # topic_for was asked since the last refresh

    async def start(self) -> None:
        await self.refresh()
        self._task = asyncio.create_task(self._run(), name="topic-roll-targets")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    @property
    def task(self) -> asyncio.Task | None:
        return self._task

    async def refresh(self) -> None:
        self._topics = set(await self._admin.list_topics())
        self._newest = newest_generations(self._topics)

    def topic_for(self, base: str) -> str:
        self._used = True
        return self._newest.get(base, base)

    async def _run(self) -> None:
        refreshed = time.monotonic()
        while True:
            await asyncio.sleep(REFRESH_S)
            if not self._used and time.monotonic() - refreshed < IDLE_REFRESH_S:
                continue  # nothing sent: the list can wait
            self._used, refreshed = False, time.monotonic()
            try:
                await self.refresh()
            except (KafkaError, OSError) as error:
                log.warning("topic_roll_refresh_failed", error=repr(error))


@dataclass
class RollingReader:
    """Consumer side: reads every generation of ``bases`` by ``assign()``, rolls and deletes them.

    ``include_base`` also reads the base topic itself (producers fall back to it before the first
    generation exists). With a ``group_id`` on the consumer, a newly seen partition starts at the
    group's committed offset, and "drained" means committed to the end; without one, it starts at
    0 (generations are created empty) and "drained" means read to the end.
    """

    consumer: AIOKafkaConsumer
    admin: AIOKafkaAdminClient
    bases: tuple[str, ...]
    roll_records: int = ROLL_RECORDS
    partitions: int = PARTITIONS
    include_base: bool = False
    roll_age_s: float = ROLL_AGE_S
    grace_s: float = GRACE_S
    orphans_of: str | None = None  # e.g. "gateway.replies": delete other instances' generations older than ORPHAN_AGE_S
    _topics: set[str] = field(default_factory=set)
    _newest: dict[str, str] = field(default_factory=dict)  # newest_generations(_topics), kept in step by _set_topics
    _base_partitions: dict[str, int] = field(default_factory=dict)
    _task: asyncio.Task | None = None

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    @property
    def task(self) -> asyncio.Task | None:
        return self._task

    @property
    def grouped(self) -> bool:
        return self.consumer._group_id is not None  # aiokafka keeps no public accessor

    def current(self, base: str) -> str:
        """The newest generation of ``base``: where new requests (or replies) should go."""
        return self._newest.get(base, base)

    async def start(self) -> None:
        """Open a generation for any base without one, assign everything; then maintain in the background."""
        await self._refresh()
        await create(self.admin, [generation(b) for b in self.bases if not generations(self._topics, b)], self.partitions)
        await self._refresh()
        if self.include_base:
            described = await self.admin.describe_topics([b for b in self.bases if b in self._topics])
            self._base_partitions = {d["topic"]: len(d["partitions"]) for d in described if d.get("partitions")}
        await self._assign()
        self._task = asyncio.create_task(self._run(), name="topic-roll-reader")

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def maintain(self) -> None:
        """One round: roll full or old generations, delete drained old ones, then (re)assign once.

        Everything is decided before ``assign()``, which forgets the high watermarks it relies on.
        """
        await self._refresh()
        now = now_ms()
        rolled = []
        for base in self.bases:
            newest = self.current(base)
            age_s = (now - (created_ms(newest) or now)) / 1000
            if age_s >= self.roll_age_s or self._records(newest) >= self.roll_records:
                rolled.append(generation(base, max(now, (created_ms(newest) or 0) + 1)))
        expired = [t for base in self.bases for t in await self._expired(base, now)]
        if self.orphans_of:
            mine = set(self.bases)
            expired += [t for t in self._topics if base_of(t).startswith(self.orphans_of + ".") and base_of(t) not in mine
                        and now - (created_ms(t) or now) > ORPHAN_AGE_S * 1000]
        if rolled:
            await create(self.admin, rolled, self.partitions)
            log.info("topic_rolled", topics=rolled)
            await self._refresh()
        self._set_topics(self._topics - set(expired))
        await self._assign()  # stop reading before deleting: nothing asks for a deleted topic
        if expired:
            await delete(self.admin, expired)
            log.info("topic_generations_deleted", topics=sorted(expired))

    async def _run(self) -> None:
        """A round every ``REFRESH_S`` while records arrive (the high watermarks moved), every
        ``IDLE_REFRESH_S`` otherwise: rolls by age and deletions after the grace are not that urgent."""
        marks, maintained = None, time.monotonic()
        while True:
            await asyncio.sleep(REFRESH_S)
            now_marks = self._marks()
            if now_marks == marks and time.monotonic() - maintained < IDLE_REFRESH_S:
                continue
            marks, maintained = now_marks, time.monotonic()
            try:
                await self.maintain()
            except (KafkaError, OSError) as error:
                log.warning("topic_roll_failed", error=repr(error))

    def _marks(self) -> tuple[int | None, ...]:
        """The high watermarks of what is assigned, as far as fetched: they move only with traffic."""
        return tuple(self.consumer.highwater(tp) for tp in sorted(self.consumer.assignment()))

    async def _refresh(self) -> None:
        self._set_topics(set(await self.admin.list_topics()))

    def _set_topics(self, topics: set[str]) -> None:
        self._topics, self._newest = topics, newest_generations(topics)

    def _wanted(self) -> set[TopicPartition]:
        counts = {t: self.partitions for b in self.bases for t in generations(self._topics, b)}
        counts.update(self._base_partitions)
        return {TopicPartition(topic, p) for topic, n in counts.items() for p in range(n)}

    async def _assign(self) -> None:
        """assign() forgets every position, so keep the ones we have and start new partitions right."""
        wanted = self._wanted()
        current = self.consumer.assignment()
        if wanted == current:
            return
        kept = {tp: await self.consumer.position(tp) for tp in current & wanted}
        paused = bool(current) and self.consumer.paused() >= current  # a paused reader (FetchPacer) stays paused
        self.consumer.assign(sorted(wanted))
        if paused:
            self.consumer.pause(*wanted)
        for tp in wanted:
            if tp in kept:
                self.consumer.seek(tp, kept[tp])
            else:
                committed = await self.consumer.committed(tp) if self.grouped else None
                self.consumer.seek(tp, committed or 0)

    def _records(self, topic: str) -> int:
        """Records in a generation as far as this reader has fetched (its high watermarks)."""
        return sum(self.consumer.highwater(TopicPartition(topic, p)) or 0 for p in range(self.partitions)
                   if TopicPartition(topic, p) in self.consumer.assignment())

    async def _expired(self, base: str, now: int) -> list[str]:
        found = generations(self._topics, base)
        expired = []
        for older, newer in zip(found, found[1:]):
            if now - created_ms(newer) < self.grace_s * 1000:
                break
            if await self._drained(older):
                expired.append(older)
        return expired

    async def _drained(self, topic: str) -> bool:
        for p in range(self.partitions):
            tp = TopicPartition(topic, p)
            if tp not in self.consumer.assignment():
                return False
            end = self.consumer.highwater(tp)
            if end is None:
                return False
            done = await self.consumer.committed(tp) if self.grouped else await self.consumer.position(tp)
            if (done or 0) < end:
                return False
        return True


def prune_metadata(client, min_age_s: float = GRACE_S) -> list[str]:
    """Stop asking the broker about deleted generations this client once produced to.

    aiokafka keeps every topic it ever sent to in the metadata request and logs an error for each
    missing one on every refresh; a service replying to rolled reply topics would accumulate them.
    Only generations older than ``min_age_s`` that the last metadata no longer lists are dropped.
    """
    known = client.cluster.topics()
    cutoff = now_ms() - min_age_s * 1000
    gone = [t for t in client._topics if (created_ms(t) or cutoff) < cutoff and t not in known]  # private: pinned aiokafka
    for topic in gone:
        client._topics.discard(topic)
    return gone


async def prune_metadata_forever(client, every_s: float = 10.0) -> None:
    """``prune_metadata`` now and then, for a service's producer, which replies to rolled topics."""
    while True:
        await asyncio.sleep(every_s)
        prune_metadata(client)
