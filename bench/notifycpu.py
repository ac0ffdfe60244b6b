"""notify's CPU per notification, in process: `python -m bench.notifycpu --notifications N`.

Drives notify's real processor (NotifyProcessor.process / before_commit / committed, as the
stream engine calls them) over N breaches to M receivers, without Kafka: the sender keeps
what it is given, each batch's store writes are taken and committed as the engine would,
and gateway calls are answered in process. Stage 1 turns the breaches (SlaEvents, decoded
as the engine decodes them) into `requested` records; stage 2 reads those back and delivers
them on the subscription channel (or, with --channel log, through a gateway answered at
once). Prints the process CPU time per notification of each stage and the top of a profile
of both, so a change on the hot path can be judged without a broker or a quiet machine.
With --inhibit the bench routing takes config/routing.yaml's inhibit rules, under which every
breach stays an inhibition source while open; --open-sources N breaches are taken first,
untimed, so each measured notification meets N open sources.
Stage 2 takes the requests of receivers on the same worker in stage 1's pass (all of them
here: one worker owns every partition), so its work on them counts as stage 1's; what is
left to stage 2 is reading its records back and the gateway outcomes.
Apart, the read model's share: every record both stages wrote to notifications.v1, decoded
and applied to a NotificationStore as each API replica's TopicFeed does (without the Kafka
client's part, which needs a broker). It runs in the same process as the stream engine, on
the service's event loop.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

from handoff.v1 import sla_events_pb2, types_pb2

from bench.notifybench import ROUTING_WITH_LOG
from common.clock import WallClock
from common.codec import decode, new_envelope, to_timestamp
from common.kafkaio import key_partition
from common.topics import NOTIFICATIONS, SLA_EVENTS
from notify.adapters.gateways import Outcome, deliver_batches
from notify.adapters.notification_store import NotificationStore
from notify.adapters.routing_file import load_routing
from notify.entrypoints.app import NotifyProcessor

PARTITIONS = 4
BATCH = 500
# The shipped routing file, whose inhibit rules --inhibit adds to the bench routing.
SHIPPED_ROUTING = Path(__file__).resolve().parent.parent / "config" / "routing.yaml"


class AnsweringGateways:
    """Every gateway configured, every call delivered at once (its request built, as a real call's is)."""

    def configured(self, kind: str) -> bool:
        return True

    async def deliver(self, kind: str, deliveries, timeout: float) -> list[Outcome]:
        for batch in deliver_batches(kind, deliveries):
            batch.SerializeToString()
        return [Outcome(True, receipt=d.delivery_id) for d in deliveries]


def run_at_once(coroutine) -> None:
    """The delivery loop: the call (which never waits) runs to its end here."""
    try:
        coroutine.send(None)
    except StopIteration:
        pass


def breaches(n: int, receivers: int, channel: str) -> list[tuple[int, bytes]]:
    """(partition, value) of n SlaEvent(breached) records over `receivers` departments, as sla
    writes them; their departments' names route them as the bench's routing text does."""
    prefix = "cpu-glog" if channel == "log" else "cpu-d"
    now = datetime.now(timezone.utc)
    records = []
    for number in range(n):
        department, deadline = f"bench-{prefix}{number % receivers}", now - timedelta(minutes=1, milliseconds=number)
        customer_ref = f"{department}-c{number}"
        message = sla_events_pb2.SlaEvent(
            envelope=new_envelope("sla", deadline, now, event_id=str(uuid.uuid4())),
            handoff_id=str(uuid.uuid4()), case_id=f"CPU-B{number}", customer_ref=customer_ref,
            department=department, priority=types_pb2.PRIORITY_NORMAL, clock=types_pb2.CLOCK_KIND_ACK,
            policy_version="cpu", clock_sequence=1,
            breached=sla_events_pb2.ClockBreached(deadline=to_timestamp(deadline), breached_at=to_timestamp(now)),
        )
        records.append((key_partition(customer_ref.encode(), PARTITIONS), message.SerializeToString()))
    return records


class Harness:
    """One processor, its outputs by topic, and the engine's part of a batch."""

    def __init__(self, workdir: Path, inhibit: bool = False) -> None:
        routing_file = workdir / "routing.yaml"
        routing_file.write_text(ROUTING_WITH_LOG)
        routing = load_routing(routing_file)
        if inhibit:
            routing = replace(routing, inhibit_rules=load_routing(SHIPPED_ROUTING).inhibit_rules)
        self.outputs: list[tuple[str, bytes, bytes]] = []
        self.processor = NotifyProcessor(routing, WallClock(), lambda at: [], AnsweringGateways(),
                                         run_at_once, self._send, partitions={NOTIFICATIONS.name: PARTITIONS})
        self.processor.assigned(frozenset(range(PARTITIONS)))

    def _send(self, topic: str, key, value: bytes, headers=None, partition: int | None = None) -> None:
        self.outputs.append((topic, key.encode() if isinstance(key, str) else key, value))

    def batch(self, spec, records: list[tuple[int, bytes]]) -> None:
        """What the engine does with one batch: decode, process, end of batch, commit."""
        for partition, value in records:
            self.processor.process(spec, decode(spec, value), partition)
        self.processor.before_commit()
        for store in self.processor.stores:
            store.writes()
            store.commit()
        self.processor.committed()

    def taken(self, topic: str) -> list[tuple[int, bytes]]:
        """(partition, value) of the outputs on `topic` since the last call (the rest are dropped)."""
        wanted = [(key_partition(key, PARTITIONS), value) for name, key, value in self.outputs if name == topic]
        self.outputs.clear()
        return wanted


def _batches(records: list, size: int = BATCH):
    for start in range(0, len(records), size):
        yield records[start:start + size]


def run(n: int, receivers: int, channel: str, workdir: Path, profiler: cProfile.Profile | None = None,
        inhibit: bool = False, open_sources: int = 0) -> dict:
    """Both stages over n breaches, after `open_sources` untimed ones: CPU seconds per stage and
    what stage 2 wrote."""
    harness = Harness(workdir, inhibit)
    for records in _batches(breaches(open_sources, receivers, channel)):
        harness.batch(SLA_EVENTS, records)
        harness.batch(NOTIFICATIONS, harness.taken(NOTIFICATIONS.name))
    inputs = breaches(n, receivers, channel)
    cpu = {"stage1": 0.0, "stage2": 0.0, "read model": 0.0}
    store = NotificationStore()

    def read(records: list[tuple[int, bytes]]) -> None:
        for _, value in records:
            store.apply(NOTIFICATIONS, decode(NOTIFICATIONS, value))
    written = {"stage1_records": 0, "stage2_records": 0}

    def timed(stage: str, work: Callable[[], None]) -> None:
        started = time.process_time()
        if profiler:
            profiler.enable()
        work()
        if profiler:
            profiler.disable()
        cpu[stage] += time.process_time() - started

    for records in _batches(inputs):
        timed("stage1", lambda: harness.batch(SLA_EVENTS, records))
        requested = harness.taken(NOTIFICATIONS.name)
        written["stage1_records"] += len(requested)
        timed("read model", lambda: read(requested))
        timed("stage2", lambda: harness.batch(NOTIFICATIONS, requested))
        # Gateway outcomes (answered at once) are recorded by the passes that follow, as in
        # the engine, a bounded number of calls at a time.
        deliverer = harness.processor.dispatcher.deliverer
        while len(deliverer) or deliverer.wake_s() == 0.0:
            timed("stage2", lambda: harness.batch(NOTIFICATIONS, []))
        outcomes = harness.taken(NOTIFICATIONS.name)
        written["stage2_records"] += len(outcomes)
        timed("read model", lambda: read(outcomes))
    return {"cpu": cpu, **written}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.notifycpu", description=__doc__.split("\n\n")[0])
    parser.add_argument("--notifications", type=int, default=20_000)
    parser.add_argument("--receivers", type=int, default=300)
    parser.add_argument("--channel", choices=("subscription", "log"), default="subscription")
    parser.add_argument("--top", type=int, default=25, help="profile lines to print (0: no profile)")
    parser.add_argument("--inhibit", action="store_true",
                        help="add config/routing.yaml's inhibit rules (every open breach a source)")
    parser.add_argument("--open-sources", type=int, default=0,
                        help="breaches taken, untimed, before the measured ones (open sources with --inhibit)")
    args = parser.parse_args(argv)
    options = {"inhibit": args.inhibit, "open_sources": args.open_sources}
    with tempfile.TemporaryDirectory(prefix="notifycpu-") as workdir:
        run(min(args.notifications, 2_000), args.receivers, args.channel, Path(workdir))  # warm-up
        result = run(args.notifications, args.receivers, args.channel, Path(workdir), **options)
        n = args.notifications
        print(f"{n:,} breaches to {args.receivers} receivers on {args.channel}, after {args.open_sources:,} "
              f"{'with' if args.inhibit else 'without'} inhibit rules; load average {os.getloadavg()[0]:.2f}")
        print(f"  records written to notifications.v1 by stage 1's passes {result['stage1_records']:,}, "
              f"by stage 2's {result['stage2_records']:,}")
        cpu = result["cpu"]
        for stage in ("stage1", "stage2"):
            print(f"  {stage}:     {cpu[stage] * 1e6 / n:7.1f} µs CPU per notification")
        total = cpu["stage1"] + cpu["stage2"]
        print(f"  both:       {total * 1e6 / n:7.1f} µs CPU per notification ({n / total:,.0f} per CPU-second)")
        print(f"  read model: {cpu['read model'] * 1e6 / n:7.1f} µs CPU per notification (decode and apply; "
              f"with both stages {n / (total + cpu['read model']):,.0f} per CPU-second)")
        if args.top:
            profiler = cProfile.Profile()
            run(args.notifications, args.receivers, args.channel, Path(workdir), profiler, **options)
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(args.top)
            print(out.getvalue())


if __name__ == "__main__":
    main()
