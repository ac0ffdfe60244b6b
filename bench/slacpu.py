"""CPU per handoff event in the sla worker, in process: no broker, no network, no neighbours.

Drives the real SlaProcessor (its `process` and `due`, as the stream engine calls them) with
synthetic legs: N created legs over K customers, optionally acknowledged and resolved
later, with contacts, on wall time (as the burst of phase (b)) or on event time (a
replay). Batches end as the engine's do: the stores' writes become timers, the due ones
fire, the stores commit. The sender only collects the outputs. With --fixed-clock (wall time
standing still at a fixed instant, recorded_at too) two digests, of the outputs and of every
store write, depend on the code alone: equal digests show two versions emit and store the
same bytes.

    python -m bench.slacpu --legs 20000
    python -m bench.slacpu --legs 20000 --lifecycle --contacts --clock event --calendar office --profile
    python -m bench.slacpu --legs 20000 --fixed-clock    # digests to compare two versions by
    python -m bench.slacpu --history 200000              # the replay's own history, phase (f)'s shape

With --history, the records are those `handoffctl import` writes for the history phase (f)
replays (devstack.history on the shipped policies), in the importer's order, then a
heartbeat per partition: the replay's work without the broker.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import hashlib
import heapq
import os
import pstats
import resource
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

from handoff.v1 import contacts_pb2, handoff_events_pb2, types_pb2

from bench.replay import write_replay_history
from common.clock import EventTime, WallClock
from common.codec import decode, new_envelope, to_timestamp
from common.kafkaio import key_partition
from common.streams.engine import GC_THRESHOLDS
from common.streams.store import due_of, partition_of
from common.ticks import heartbeat_value
from common.topics import CONTACTS, HANDOFF_EVENTS
from handoff_svc.adapters import csvimport
from handoff_svc.entrypoints.importer import kafka_record
from sla.adapters.policy_file import load_policies
from sla.entrypoints.app import SlaProcessor

PARTITIONS = 4
SHIPPED_POLICIES = Path(__file__).resolve().parent.parent / "config" / "sla-policies.yaml"
BATCH = 2_000
# A Monday morning before the spring DST change in Berlin: office hours, a weekend and a
# change of offset fall inside a replay of a few days.
EVENT_TIME_START = datetime(2026, 3, 23, 7, 0, tzinfo=timezone.utc)
POLICIES = """\
calendars:
  always:
    hours: 24x7
  office:
    timezone: Europe/Berlin
    hours:
      mon-fri: ["08:00-12:00", "13:00-17:00"]
    holidays:
      country: DE
      dates: [2026-03-25]
defaults:
  warning_fractions: [0.5, 0.8]
  pause_states: [WAITING_ON_CUSTOMER]
  max_pause: 5d
policies:
  - department: "slacpu-24x7"
    priority: "*"
    calendar: always
    ack: {ack}
    resolve: {resolve}
  - department: "slacpu-office"
    priority: "*"
    calendar: office
    ack: {ack}
    resolve: {resolve}
"""


# A pause and its end, for every fifth leg of a lifecycle.
PAUSES = {"waiting": types_pb2.LEG_STATUS_WAITING_ON_CUSTOMER, "working": types_pb2.LEG_STATUS_IN_PROGRESS}


class FixedClock:
    """Wall time (and recorded_at) for digests that do not depend on when the harness ran."""

    def now(self) -> datetime:
        return EVENT_TIME_START


def _handoff_event(number: int, change: str, at: datetime, customers: int, department: str) -> tuple[str, bytes]:
    customer_ref = f"slacpu-c{number % customers:06d}"
    message = handoff_events_pb2.HandoffEvent(
        envelope=new_envelope("slacpu", at, at, event_id=f"slacpu-{change}-{number}"),
        handoff_id=f"slacpu-leg-{number:08d}", case_id=f"CASE-{number:08d}", customer_ref=customer_ref,
        department=department, actor="slacpu",
    )
    if change == "created":
        message.created.priority = types_pb2.PRIORITY_NORMAL
        message.created.created_at.CopyFrom(to_timestamp(at))
    elif change in PAUSES:
        message.status_changed.to_status = PAUSES[change]
    else:
        getattr(message, change).SetInParent()
    return customer_ref, message.SerializeToString()


def _contact(number: int, at: datetime, customers: int) -> tuple[str, bytes]:
    customer_ref = f"slacpu-c{number % customers:06d}"
    message = contacts_pb2.ContactRecorded(
        envelope=new_envelope("slacpu", at, at, event_id=f"slacpu-contact-{number}"),
        contact_id=f"slacpu-contact-{number:08d}", customer_ref=customer_ref, case_id=f"CASE-{number:08d}",
        channel=types_pb2.CONTACT_CHANNEL_CALL, contacted_at=to_timestamp(at),
    )
    return customer_ref, message.SerializeToString()


def history_records(events: int) -> list[tuple[object, int, bytes]]:
    """(topic, partition, value) of the replay's history of about `events` events, as the
    importer writes them, and the heartbeats it sends after them."""
    # The history lies in the past of today (its month depends on the date); the records'
    # recorded_at is fixed, so the digests depend on the code and the month alone.
    recorded_at = EVENT_TIME_START
    with tempfile.TemporaryDirectory(prefix="slacpu-history-") as workdir:
        handoffs, contacts = write_replay_history(Path(workdir), events, "slacpu")
        plan = csvimport.validate(handoffs, contacts, datetime.now(timezone.utc))
    schedule = plan.schedule()
    specs = {HANDOFF_EVENTS.name: HANDOFF_EVENTS, CONTACTS.name: CONTACTS}
    found = []
    for moment in schedule:
        topic, key, value = kafka_record(plan.event(moment), recorded_at)
        found.append((specs[topic], key_partition(key, PARTITIONS), value))
    last = schedule[-1][0]
    return found + [(HANDOFF_EVENTS, p, heartbeat_value(last, p, "slacpu", recorded_at)) for p in range(PARTITIONS)]


def records(args: argparse.Namespace) -> list[tuple[object, int, bytes]]:
    """(topic, partition, value) in the order one worker would read them, time order on event time."""
    if args.history:
        return history_records(args.history)
    department = f"slacpu-{args.calendar}"
    start = EVENT_TIME_START if args.clock == "event" or args.fixed_clock else datetime.now(timezone.utc)
    step = timedelta(seconds=args.spacing_s)
    timed: list[tuple[datetime, int, object, str, bytes]] = []
    for number in range(args.legs):
        created = start + number * step
        key, value = _handoff_event(number, "created", created, args.customers, department)
        timed.append((created, 0, HANDOFF_EVENTS, key, value))
        if args.lifecycle:
            changes = [("acknowledged", 0.2), ("resolved", 3.0)]
            if number % 5 == 0:
                changes[1:1] = [("waiting", 0.5), ("working", 1.5)]
            for order, (change, after) in enumerate(changes):
                at = created + timedelta(hours=after * (1 + number % 7) / 4)
                timed.append((at, 1 + order, HANDOFF_EVENTS, *_handoff_event(number, change, at, args.customers,
                                                                             department)))
        if args.contacts and number % 4 == 0:
            at = created + timedelta(hours=1 + number % 5)
            timed.append((at, 9, CONTACTS, *_contact(number, at, args.customers)))
    if args.clock == "event":
        timed.sort(key=lambda item: (item[0], item[1]))
    return [(spec, key_partition(key.encode(), PARTITIONS), value) for _, _, spec, key, value in timed]


class Harness:
    """The processor, a collecting sender, and the engine's batch loop without Kafka."""

    def __init__(self, args: argparse.Namespace, policy_file: Path) -> None:
        self.outputs: list[tuple[str, bytes]] = []
        self._state = hashlib.sha256()
        clock = EventTime() if args.clock == "event" else FixedClock() if args.fixed_clock else WallClock()
        self.processor = SlaProcessor(load_policies(policy_file), clock, self._send)
        worker = self.processor.worker
        if args.fixed_clock:
            worker.engine._recorded = worker.tracker._recorded = FixedClock()
        self.processor.assigned(frozenset(range(PARTITIONS)))
        self._timers: dict[int, list[tuple[int, str, str]]] = {}
        self._stores = {store.name: store for store in self.processor.stores}

    def _send(self, topic: str, key: str, value: bytes) -> None:
        self.outputs.append((topic, value))

    def run(self, batch: list[tuple[object, int, bytes]]) -> None:
        for spec, partition, value in batch:
            self.processor.process(spec, decode(spec, value), partition)
        self._fire_due()
        self.processor.before_commit()
        for store in self.processor.stores:
            for partition, key, value in store.writes():
                self._state.update(f"{store.name}|{partition}|{key}|".encode() + (value or b"-"))
                if value is not None and due_of(value):
                    heapq.heappush(self._timers.setdefault(partition_of(value), []), (due_of(value), store.name, key))
            store.commit()

    def _fire_due(self) -> None:
        for partition, heap in self._timers.items():
            now = self.processor.now_us(partition)
            while heap and heap[0][0] <= now:
                instant, name, key = heapq.heappop(heap)
                store = self._stores[name]
                value = store.get(key)
                if value is not None and due_of(value) == instant:
                    self.processor.due(store, key, partition)

    def digest(self) -> str:
        return hashlib.sha256(b"".join(topic.encode() + value for topic, value in self.outputs)).hexdigest()[:16]

    def state_digest(self) -> str:
        """Of every store write (name, partition, key, value or deletion), in order."""
        return self._state.hexdigest()[:16]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.slacpu", description=__doc__.split("\n\n")[0])
    parser.add_argument("--legs", type=int, default=20_000, help="created legs (default 20000)")
    parser.add_argument("--customers", type=int, help="customers the legs spread over (default legs/20)")
    parser.add_argument("--calendar", choices=("24x7", "office"), default="24x7")
    parser.add_argument("--clock", choices=("wall", "event"), default="wall", help="event: a replay on event time")
    parser.add_argument("--lifecycle", action="store_true",
                        help="acknowledge and resolve every leg later, every fifth paused on the way")
    parser.add_argument("--contacts", action="store_true", help="a contact for every fourth leg")
    parser.add_argument("--ack", default="1d", help="ack target (default 1d: nothing due in a burst)")
    parser.add_argument("--resolve", default="5d")
    parser.add_argument("--spacing-s", type=float, default=0.001, help="event time between created legs")
    parser.add_argument("--fixed-clock", action="store_true",
                        help="wall time and recorded_at stand still: the digests depend on the code alone")
    parser.add_argument("--history", type=int, metavar="EVENTS",
                        help="replay about EVENTS events of phase (f)'s history on the shipped policies "
                             "(event time; the options that shape synthetic legs do not apply)")
    parser.add_argument("--profile", action="store_true", help="print the functions that took the most CPU")
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args(argv)
    if args.history:
        args.clock, args.fixed_clock = "event", True
    args.customers = args.customers or max(args.legs // 20, 1)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="slacpu-") as workdir:
        policy_file = Path(workdir) / "sla-policies.yaml"
        policy_file.write_text(POLICIES.format(ack=args.ack, resolve=args.resolve))
        harness = Harness(args, SHIPPED_POLICIES if args.history else policy_file)
    batches = records(args)
    # The collector as the stream engine sets it: its thresholds, what is held so far frozen.
    gc.set_threshold(*GC_THRESHOLDS)
    gc.freeze()
    profiler = cProfile.Profile() if args.profile else None
    started = time.process_time()
    if profiler:
        profiler.enable()
    for first in range(0, len(batches), BATCH):
        harness.run(batches[first:first + BATCH])
    if profiler:
        profiler.disable()
    spent = time.process_time() - started
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    shape = ("the replay's history, shipped policies" if args.history else
             f"{args.legs} legs, {args.customers} customers, {args.calendar}, {args.clock} "
             f"time{', lifecycle' if args.lifecycle else ''}{', contacts' if args.contacts else ''}")
    print(f"{len(batches)} records ({shape}): "
          f"{spent:.2f} CPU s, {spent / len(batches) * 1e6:.1f} µs per record, "
          f"{len(batches) / spent:,.0f} records per CPU-second{' (profiled)' if profiler else ''}")
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"outputs {len(harness.outputs)}, digest {harness.digest()}, state digest {harness.state_digest()}, "
          f"load average {load}, peak RSS {peak_mb:,.0f} MB")
    if profiler:
        pstats.Stats(profiler).sort_stats("tottime").print_stats(args.top)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
