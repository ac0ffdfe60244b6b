"""`handoffctl import`: check CSV files completely, then write their events to Kafka.

Nothing is written unless every row is good (`ImportRejected` lists the problems). The
events go out in event-time order, keyed by customer_ref, so each customer's events reach
consumers in the order they happened; each carries its original time as occurred_at and
source "import", which the handoff service folds into its legs. (Kafka's own record
timestamp stays the time of writing: months-old timestamps would put the records straight
out of the topic's time-based retention.) If writing stops part-way (a broker failure,
Ctrl-C), the count Kafka acknowledged is reported (`ImportInterrupted`); re-running is safe
because every event id derives from its row and consumers skip ids they have applied. When all is written, an event-time heartbeat at the last
imported instant goes to every partition of handoff.events.v1, so sla workers on event time
fire what fell due by then.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from aiokafka import AIOKafkaProducer
from aiokafka.codec import has_lz4
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, Task, TextColumn, TimeElapsedColumn
from rich.text import Text

from common.clock import Clock, WallClock
from common.codec import decode
from common.kafkaio import partition_for, topic_partitions
from common.kafkasecurity import PLAINTEXT, KafkaSecurity
from common.ticks import send_heartbeats
from common.topics import CONTACTS, HANDOFF_EVENTS
from handoff_svc.adapters import codec, csvimport
from handoff_svc.adapters.csvimport import Imported, RowError
from handoff_svc.domain.contacts import ContactRecorded
from handoff_svc.entrypoints.owner import IMPORT_SOURCE

ERRORS_SHOWN = 50


class ImportRejected(Exception):
    """Some rows are bad; nothing was written."""

    def __init__(self, errors: list[RowError]) -> None:
        super().__init__(f"{len(errors)} problem{'s' if len(errors) != 1 else ''} found; nothing was written")
        self.errors = errors

    def listing(self, limit: int = ERRORS_SHOWN) -> list[str]:
        """The first `limit` problems as `file:line: column: reason`, then a count of the rest."""
        lines = [str(error) for error in self.errors[:limit]]
        if len(self.errors) > limit:
            lines.append(f"... and {len(self.errors) - limit} more")
        return lines


class ImportInterrupted(Exception):
    """Writing stopped part-way: `written` of `total` events were acknowledged by Kafka."""

    def __init__(self, written: int, total: int, cause: BaseException) -> None:
        reason = "interrupted" if isinstance(cause, asyncio.CancelledError) else f"{type(cause).__name__}: {cause}"
        super().__init__(
            f"import stopped after {written} of {total} events were written ({reason}); "
            "re-running the same import is safe: event ids derive from the rows, so consumers skip "
            "the events already written"
        )
        self.written, self.total = written, total


@dataclass(frozen=True)
class ImportReport:
    legs: int
    contacts: int
    events: int
    seconds: float
    checking_seconds: float

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0

    def __str__(self) -> str:
        return (f"imported {self.legs} legs and {self.contacts} contacts: {self.events} events in "
                f"{self.seconds:.1f} s ({self.events_per_s:,.0f} events/s; "
                f"checking took {self.checking_seconds:.1f} s)")


async def import_files(
    bootstrap: str,
    handoffs: Path | None,
    contacts: Path | None,
    *,
    customer_ref_key: bytes | None = None,
    progress: bool = True,
    clock: Clock = WallClock(),
    security: KafkaSecurity = PLAINTEXT,
    notify: bool = False,
) -> ImportReport:
    """Check both files, then write their events; ImportRejected when any row is bad.
    `notify`: notify delivers the imported legs' notifications however old (else it records them)."""
    if handoffs is None and contacts is None:
        raise ValueError("nothing to import: give a handoffs file, a contacts file or both")
    started = time.perf_counter()
    console = Console()
    with _progress(console, enabled=progress and console.is_terminal) as bar, _collector_paused():
        checking = bar.add_task("checking rows", total=None, unit="rows")
        plan = csvimport.validate(handoffs, contacts, clock.now(), customer_ref_key,
                                  on_rows=lambda count: bar.advance(checking, count))
        if plan.errors:
            raise ImportRejected(plan.errors)
        schedule = plan.schedule()
        bar.update(checking, total=bar.tasks[checking].completed)
        checked = time.perf_counter()
        writing = bar.add_task("writing events", total=len(schedule), unit="events")
        written = await _write(bootstrap, security, plan, schedule, clock.now(), lambda count: bar.advance(writing, count),
                               notify)
    return ImportReport(len(plan.legs), len(plan.contacts), written, time.perf_counter() - started,
                        checked - started)


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Pause the cycle collector: an import holds millions of acyclic objects, and its
    passes over them all cost a quarter of the import's time at a million rows, for nothing."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def kafka_record(item: Imported, recorded_at: datetime, notify: bool = False) -> tuple[str, bytes, bytes]:
    """(topic, key, value) of one imported event: the service's encoding, source "import";
    `notify` marks each created leg as one whose old notifications notify should deliver."""
    if isinstance(item.event, ContactRecorded):
        # The codec has no message-level contact encoder; decoding its bytes is the public way in.
        message = decode(CONTACTS, codec.encode_contact(item.event, item.event_id, recorded_at))
        topic = CONTACTS.name
    else:
        message = codec.event_message(item.event, item.event_id, recorded_at)
        topic = HANDOFF_EVENTS.name
        if notify and message.WhichOneof("change") == "created":
            message.created.notify_history = True
    message.envelope.source = IMPORT_SOURCE
    return topic, item.customer_ref.encode(), message.SerializeToString()


async def _write(bootstrap: str, security: KafkaSecurity, plan: csvimport.ImportPlan, schedule: list[csvimport.Moment],
                 recorded_at: datetime, advance: Callable[[int], None], notify: bool = False) -> int:
    topics = [topic for topic, rows in ((HANDOFF_EVENTS.name, plan.legs), (CONTACTS.name, plan.contacts)) if rows]
    # MissingTopic before anything is written; the partition lists key the batches.
    partitions = {topic: await topic_partitions(bootstrap, topic, security) for topic in topics}
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=20,
        max_batch_size=512 * 1024, compression_type="lz4" if has_lz4() else None, **security.aiokafka(),
    )
    await producer.start()
    try:
        records = (kafka_record(plan.event(moment), recorded_at, notify) for moment in schedule)
        written = await send_all(producer, records, partitions, len(schedule), advance)
        if schedule:
            # Everything up to the last imported instant is written: a heartbeat behind it on
            # every partition lets sla workers on event time fire what fell due by then.
            await send_heartbeats(bootstrap, schedule[-1][0], IMPORT_SOURCE, recorded_at, producer, security)
        return written
    finally:
        await producer.stop()


async def send_all(producer: AIOKafkaProducer, records: Iterable[tuple[str, bytes, bytes]],
                   partitions: dict[str, list[int]], total: int, advance: Callable[[int], None]) -> int:
    """Send every record in per-partition batches; the number of records Kafka acknowledged.

    Batches built here, rather than one `send` per record, spare a future per record.
    Records keep their order within a partition (the producer is idempotent), so each
    customer's events keep theirs. On a failure or a cancellation, waits for the batches
    already handed over, then raises ImportInterrupted with the exact count written.
    """
    building: dict[tuple[str, int], list] = {}  # (topic, partition) -> [batch, records in it]
    in_flight: deque[tuple[asyncio.Future, int]] = deque()
    partition_of: dict[tuple[str, bytes], int] = {}
    written = 0

    async def hand_over(where: tuple[str, int]) -> None:
        batch, count = building.pop(where)
        in_flight.append((await producer.send_batch(batch, where[0], partition=where[1]), count))

    def settle(future: asyncio.Future, count: int) -> None:
        nonlocal written
        if future.cancelled():
            raise asyncio.CancelledError()
        if future.exception() is not None:
            raise future.exception()
        written += count
        advance(count)

    try:
        for topic, key, value in records:
            partition = partition_of.get((topic, key))
            if partition is None:
                partition = partition_of[topic, key] = partition_for(key.decode(), partitions[topic])
            where = (topic, partition)
            entry = building.get(where)
            if entry is not None and entry[0].append(key=key, value=value, timestamp=None) is None:
                await hand_over(where)  # full; waits while the partition's previous batch is queued
                entry = None
            if entry is None:
                entry = building[where] = [producer.create_batch(), 0]
                entry[0].append(key=key, value=value, timestamp=None)
            entry[1] += 1
            while in_flight and in_flight[0][0].done():
                settle(*in_flight.popleft())
        for where in list(building):
            await hand_over(where)
        while in_flight:
            await asyncio.wait([in_flight[0][0]])
            settle(*in_flight.popleft())
    except (Exception, asyncio.CancelledError) as error:
        for future, count in in_flight:
            await asyncio.wait([future])  # unlike gather, leaves the batch alone if we are cancelled
            if not future.cancelled() and future.exception() is None:
                written += count
        raise ImportInterrupted(written, total, error) from error
    return written


class _Rate(ProgressColumn):
    """Items per second of a task since it started, in its own unit (steadier than rich's
    sampled speed, which jumps when two batches are acknowledged together)."""

    def render(self, task: Task) -> Text:
        elapsed = task.finished_time or task.elapsed or 0.0
        rate = f"{task.completed / elapsed:,.0f} {task.fields['unit']}/s" if elapsed >= 0.5 else ""
        return Text(rate, style="progress.data.speed")


def _progress(console: Console, enabled: bool) -> Progress:
    return Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[unit]}"),
        _Rate(), TimeElapsedColumn(), console=console, disable=not enabled,
    )
