"""Live processing of a history, in-process: what the sla service emits when each event
arrives at its own time and the timer fires every clock exactly when it falls due.

The same engine and tracker the worker runs, on in-memory stores and a clock the feed
advances; the timer fires every due leg before each record. Everything at one instant
arrives at that instant, and the history ends as `handoffctl import` ends one: with a
heartbeat at its last instant on every partition.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from common.clock import EPOCH
from common.codec import decode
from common.kafkaio import partition_for
from common.ticks import heartbeat_value
from common.topics import CONTACTS, HANDOFF_EVENTS, REPEAT_CONTACTS, SLA_EVENTS
from handoff_svc.adapters.csvimport import ImportPlan
from handoff_svc.entrypoints.importer import kafka_record
from sla.domain.policy import PolicyBook
from sla.entrypoints.worker import SlaWorker

PARTITIONS = list(range(4))


@dataclass
class SteppedClock:
    at: datetime = EPOCH

    def now(self) -> datetime:
        return self.at


@dataclass
class LiveRun:
    sla_events: dict[str, object] = field(default_factory=dict)
    repeats: dict[str, object] = field(default_factory=dict)


def process_live(plan: ImportPlan, policies: PolicyBook, until: datetime) -> LiveRun:
    """Every SLA event and repeat contact live processing of `plan` emits by `until`."""
    run, clock = LiveRun(), SteppedClock()

    def send_sla(_: str, value: bytes) -> None:
        message = decode(SLA_EVENTS, value)
        run.sla_events[message.envelope.event_id] = message

    def send_repeat(_: str, value: bytes) -> None:
        message = decode(REPEAT_CONTACTS, value)
        run.repeats[message.envelope.event_id] = message

    worker = SlaWorker({}, {}, policies, clock, send_sla, send_repeat, recorded=clock)
    worker.assign(frozenset(PARTITIONS))

    def advance(to: datetime) -> None:
        clock.at = to
        worker.fire_due()

    for item in plan.events():
        advance(item.at)
        topic, key, value = kafka_record(item, item.at)
        partition = partition_for(key.decode(), PARTITIONS)
        if topic == HANDOFF_EVENTS.name:
            worker.on_handoff_event(decode(HANDOFF_EVENTS, value), partition)
        else:
            worker.on_contact(decode(CONTACTS, value), partition)
    advance(until)
    for partition in PARTITIONS:
        worker.on_handoff_event(decode(HANDOFF_EVENTS, heartbeat_value(until, partition, "import", until)), partition)
    return run
