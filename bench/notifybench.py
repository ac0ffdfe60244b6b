"""(h) Notify at the issue's scale: breach -> subscriber latency with 100 streams open, and
how many breaches per second one notify replica turns into delivered notifications.

(i) is (c)'s whole product path (bench.latency.breach_latency) with many departments and
two Subscribe streams each, so this is also what 100 idle subscribers cost the api
replica. Its tail is the machine's: on two shared cores, the broker's CPU during (i) is
reported with the part its JIT compiler took (a broker started minutes earlier still compiles
the paths the services' transactions and consumers use, up to half a core meanwhile, which a
long-running broker no longer does). (ii) bypasses handoff and the sla timer on
purpose: breached SlaEvents (deadlines in the past) are written straight to sla.events.v1,
as the sla codec writes them, so the figure is notify's own: stage 1 routes and requests,
stage 2 delivers. It counts what Subscribe streams, the `delivered` events of the
subscription channel on notifications.v1. With a log receiver in the routing text the
same is measured through the log gateway (ChannelGateway.DeliverBatch, the deliveries
that fall due together in one call).

notify runs as deploy/workloads.py deploys it: a worker (NOTIFY_ROLE=worker) runs the
pipeline, and the per-replica figures are the worker's; an api replica (NOTIFY_ROLE=api)
serves the Subscribe streams from its read model of notifications.v1. The CPU of both is
reported. (ii) and (iii) measure them as (b) measures the sla worker, with nothing else on
their cores: handoff and sla, which (i) needs and (ii) does not (each would read every
breach into its read model, on pods of their own in production), are stopped meanwhile
and started again afterwards; so is the api replica during (iii), whose deliveries the
worker makes through the gateway and records on notifications.v1 without it.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta, timezone

from aiokafka import AIOKafkaConsumer, TopicPartition
from handoff.v1 import notifications_pb2, sla_events_pb2, types_pb2

from bench.cpu import metered
from bench.latency import breach_latency, percentile
from bench.params import Parameters
from bench.probes import KafkaProbe, gauge, gc_pauses
from bench.burstio import BurstWriter, Watcher, end_offsets
from common.codec import new_envelope, to_timestamp
from common.kafkaio import topic_partitions
from common.topics import NOTIFICATIONS, NOTIFY_APP, SLA_EVENTS
from devstack.processes import ServiceProcess
from devstack.stack import Stack

LOG_RECEIVER = "bench-log"
API_REPLICA = "notify-api"
# devstack.routing.BREACHES_TO_DEPARTMENTS plus one receiver with a log channel, which the
# breaches of departments named like bench-<run>-glog<n> reach instead of their own.
ROUTING_WITH_LOG = f"""
receivers:
  - name: "{{department}}"
    channels: [{{type: subscription}}]
  - name: elsewhere
    channels: [{{type: subscription}}]
  - name: {LOG_RECEIVER}
    channels: [{{type: log}}]
route:
  receiver: "{{department}}"
  group_wait: 0s
  routes:
    - matchers: ["kind!=breach"]
      receiver: elsewhere
    - matchers: ["department=~bench-.+-glog.+"]
      receiver: {LOG_RECEIVER}
"""


def latency_departments(run_id: str, n: int) -> list[str]:
    """The departments whose Subscribe streams (i) opens; the policy gives them a short ack target."""
    return [f"bench-{run_id}-n{number}" for number in range(n)]


def breached_event(department: str, number: int, run_id: str, deadline: datetime) -> tuple[bytes, bytes, str]:
    """(key, value, handoff_id) of one SlaEvent(breached) of an ack clock, as the sla codec writes it."""
    now = datetime.now(timezone.utc)
    handoff_id = str(uuid.uuid4())
    customer_ref = f"{department}-c{number}"
    message = sla_events_pb2.SlaEvent(
        envelope=new_envelope("sla", deadline, now, event_id=str(uuid.uuid4())),
        handoff_id=handoff_id, case_id=f"BENCH-{run_id}-B{number}", customer_ref=customer_ref,
        department=department, priority=types_pb2.PRIORITY_NORMAL, clock=types_pb2.CLOCK_KIND_ACK,
        policy_version="bench", clock_sequence=1,
        breached=sla_events_pb2.ClockBreached(deadline=to_timestamp(deadline), breached_at=to_timestamp(now)),
    )
    return customer_ref.encode(), message.SerializeToString(), handoff_id


def _collector(sent: dict[str, float], channel: str, arrivals: dict[str, float],
               counts: dict[str, int]) -> Callable[[bytes, float], None]:
    """Records the first `delivered` (on `channel`) of each wanted leg.

    A gateway's `delivered` does not carry the notification, only its id: the `requested`
    event before it (same receiver, same partition) tells which leg that id is about."""
    legs: dict[str, str] = {}  # notification id -> handoff id, for the legs written here

    def handle(value: bytes, now: float) -> None:
        event = notifications_pb2.NotificationEvent.FromString(value)
        change = event.WhichOneof("change")
        if change == "requested":
            note = event.requested.notification
            if note.handoff_id in sent:
                legs[note.notification_id] = note.handoff_id
        elif change == "delivered" and event.delivered.channel == channel:
            handoff_id = legs.get(event.delivered.notification_id)
            if handoff_id in arrivals:
                counts["duplicates"] += 1
            elif handoff_id is not None:
                arrivals[handoff_id] = now
        elif change in ("failed", "suppressed") and getattr(event, change).notification_id in legs:
            counts[change] += 1

    return handle


def _dead_lettered(bootstrap: str) -> int:
    with KafkaProbe(bootstrap) as probe:
        return probe.records(SLA_EVENTS.dlq) + probe.records(NOTIFICATIONS.dlq)


def throughput(bootstrap: str, departments: list[str], n: int, run_id: str, channel: str,
               time_limit: float) -> dict:
    """Write n breaches over `departments`; time until n are delivered on `channel`.

    The breaches are built, and the producer connected, before the clock starts, and
    notifications.v1 is watched on a thread of its own (bench.burstio): the bench's own
    work stays out of notify's way."""
    # Distinct deadlines a minute or more in the past: every record is a breach already due.
    past = datetime.now(timezone.utc) - timedelta(minutes=1)
    built = [breached_event(departments[number % len(departments)], number, run_id, past - timedelta(milliseconds=number))
             for number in range(n)]
    sent: dict[str, float] = dict.fromkeys((handoff_id for _, _, handoff_id in built), 0.0)
    arrivals: dict[str, float] = {}
    counts = {"duplicates": 0, "failed": 0, "suppressed": 0}
    dlq_before = _dead_lettered(bootstrap)
    writer = BurstWriter(bootstrap, SLA_EVENTS.name)
    watcher = Watcher(bootstrap, NOTIFICATIONS.name, end_offsets(bootstrap, NOTIFICATIONS.name),
                      _collector(sent, channel, arrivals, counts), lambda: len(arrivals) >= n,
                      time.perf_counter() + time_limit)
    started = time.perf_counter()

    def stamped():
        for key, value, handoff_id in built:
            sent[handoff_id] = time.perf_counter()
            yield key, value

    writer.write(stamped())
    produced = time.perf_counter() - started
    watcher.join()
    return {**_summary(n, started, produced, sent, arrivals), **counts, "channel": channel,
            "departments": len(departments), "dead_lettered": _dead_lettered(bootstrap) - dlq_before}


def _summary(n: int, started: float, produced: float, sent: dict[str, float], arrivals: dict[str, float]) -> dict:
    times = sorted(arrivals.values())
    received = len(times)
    elapsed = (times[-1] - started) if times else 0.0
    result = {
        "notifications": n, "delivered": received, "complete": received >= n,
        "produce_seconds": produced, "produce_records_per_s": n / produced if produced else None,
        "seconds_to_last": elapsed, "notifications_per_s": received / elapsed if elapsed else 0.0,
        "first_arrival_seconds": (times[0] - started) if times else None,
    }
    if received >= 10:  # the middle 80 %: notify's pace once its batches are flowing
        low, high = times[received // 10], times[received * 9 // 10]
        steady = (received * 9 // 10 - received // 10) / (high - low) if high > low else None
        # Written -> delivered read back: mostly queueing behind the records written before it.
        delays = [(at - sent[handoff_id]) * 1000 for handoff_id, at in arrivals.items()]
        result.update(steady_notifications_per_s=steady, write_to_delivered_p50_ms=percentile(delays, 0.5),
                      write_to_delivered_p99_ms=percentile(delays, 0.99))
    return result


async def _ends(bootstrap: str, topics: list[str]) -> dict[TopicPartition, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        return await consumer.end_offsets([TopicPartition(topic, p) for topic in topics
                                           for p in await topic_partitions(bootstrap, topic)])
    finally:
        await consumer.stop()


def _hop(tp: TopicPartition, value: bytes) -> tuple[str, object] | None:
    """(hop, message naming the leg) of a record on sla.events.v1 or notifications.v1, if one counted."""
    if tp.topic == SLA_EVENTS.name:
        event = sla_events_pb2.SlaEvent.FromString(value)
        return ("breached", event) if event.WhichOneof("change") == "breached" else None
    event = notifications_pb2.NotificationEvent.FromString(value)
    change = event.WhichOneof("change")
    if change not in ("requested", "delivered"):
        return None
    note = getattr(event, change).notification
    return (change, note) if note.kind == notifications_pb2.NOTIFICATION_KIND_BREACH else None


async def hops(bootstrap: str, departments: set[str], since: dict[TopicPartition, int]) -> dict:
    """Deadline -> record timestamp of the breach (sla), the `requested` (notify stage 1) and the
    `delivered` (stage 2) of (i)'s legs, read back from `since`: where the time goes."""
    until = await _ends(bootstrap, sorted({tp.topic for tp in since}))
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    seen: dict[str, dict[str, tuple[float, object]]] = {"breached": {}, "requested": {}, "delivered": {}}
    try:
        consumer.assign(list(since))
        for tp, offset in since.items():
            consumer.seek(tp, offset)
        give_up = time.monotonic() + 30
        while any([await consumer.position(tp) < until[tp] for tp in since]) and time.monotonic() < give_up:
            for tp, batch in (await consumer.getmany(timeout_ms=500)).items():
                for record in batch:
                    if (found := _hop(tp, record.value)) and found[1].department in departments:
                        seen[found[0]].setdefault(found[1].handoff_id, (record.timestamp / 1000, found[1]))
    finally:
        await consumer.stop()
    deadlines = {leg: event.breached.deadline.ToMicroseconds() / 1e6 for leg, (_, event) in seen["breached"].items()}
    result = {}
    for hop, stamps in seen.items():
        late = [(at - deadlines[leg]) * 1000 for leg, (at, _) in stamps.items() if leg in deadlines]
        if late:
            result[f"{hop}_p50_p99_ms"] = [percentile(late, 0.5), percentile(late, 0.99)]
    return result


def _drained(bootstrap: str, time_limit: float) -> float | None:
    """Seconds until notify has committed everything on its input topics (its read-back included)."""
    with KafkaProbe(bootstrap) as probe:
        return probe.wait_for_lag([NOTIFY_APP], [SLA_EVENTS.name, NOTIFICATIONS.name], time_limit)


@contextmanager
def as_deployed(stack: Stack) -> Iterator[ServiceProcess]:
    """notify as production runs it (deploy/workloads.py): a worker (NOTIFY_ROLE=worker, the
    pipeline) and an api replica (NOTIFY_ROLE=api, NotificationService), which is yielded;
    afterwards one replica of role `all` again, as the other phases use it."""
    stack.services["notify"].stop()
    try:
        stack.start_service("notify", env={"NOTIFY_ROLE": "worker"})
        yield stack.start_service("notify", instance=API_REPLICA, env={"NOTIFY_ROLE": "api"})
    finally:
        if API_REPLICA in stack.services:
            stack.services.pop(API_REPLICA).stop()
        stack.services["notify"].stop()
        stack.start_service("notify", env={})


def measure_notify(stack: Stack, params: Parameters, run_id: str, departments: list[str], results: dict,
                   status: Callable[[str], None]) -> None:
    """(i) latency with many subscribers, (ii) throughput on subscription and, if wanted, log;
    notify as deployed (`as_deployed`)."""
    status("(h) notify as deployed: a worker and an api replica")
    with as_deployed(stack) as api:
        _measure(stack, api, params, run_id, departments, results, status)
    results["topology"] = "worker + api"


def _measure(stack: Stack, notify: ServiceProcess, params: Parameters, run_id: str, departments: list[str],
             results: dict, status: Callable[[str], None]) -> None:
    bootstrap = stack.bootstrap
    streams = len(departments) * params.notify_streams_per_department
    status(f"(h)(i) {streams} Subscribe streams, {params.notify_latency_legs} legs left to breach")
    since = asyncio.run(_ends(bootstrap, [SLA_EVENTS.name, NOTIFICATIONS.name]))
    paused = {name: gc_pauses(stack.services[name].endpoints["metrics"]) for name in ("sla", "notify", API_REPLICA)}
    results["latency"] = metered(stack, lambda: asyncio.run(breach_latency(
        stack.services["handoff"].grpc, notify.grpc, departments, params.notify_streams_per_department,
        params.notify_latency_legs, params.latency_ack_s, params.notify_latency_spread_s,
        params.notify_latency_grace_s, run_id, f"bench-{run_id}-burst", settle_seconds=params.notify_settle_s,
        count_subscribers=lambda: gauge(notify.endpoints["metrics"], "handoff_subscribers"))))
    results["latency"]["hops"] = asyncio.run(hops(bootstrap, set(departments), since))
    results["latency"]["gc"] = {}
    for name, (long_before, seconds_before) in paused.items():
        long_after, seconds_after = gc_pauses(stack.services[name].endpoints["metrics"])
        results["latency"]["gc"][name] = f"{long_after - long_before:.0f} / {seconds_after - seconds_before:.2f} s"
    stack.check_alive()
    with _without(stack, ("handoff", "sla")) as stopped:
        results["stopped"] = ", ".join(stopped)
        _measure_throughput(stack, params, run_id, results, status)


@contextmanager
def _without(stack: Stack, names: tuple[str, ...]) -> Iterator[list[str]]:
    """The stack with the services `names` stopped (those that ran are yielded); started again
    afterwards, with the settings they had (the stack keeps them)."""
    stopped = [name for name in names if name in stack.services]
    for name in stopped:
        stack.services.pop(name).stop()
    try:
        yield stopped
    finally:
        for name in stopped:
            stack.restart_service(name)


def _measure_throughput(stack: Stack, params: Parameters, run_id: str, results: dict,
                        status: Callable[[str], None]) -> None:
    """(ii), and (iii) if a log gateway runs."""
    bootstrap = stack.bootstrap
    targets = [f"bench-{run_id}-t{number}" for number in range(params.notify_breach_departments)]
    status(f"(h)(ii) {params.notify_breaches:,} breaches through notify to the subscription channel")
    results["throughput"] = metered(stack, lambda: throughput(
        bootstrap, targets, params.notify_breaches, run_id, "subscription", params.notify_time_limit_s))
    status("(h)(ii) waiting for notify to read back what it wrote")
    results["throughput"]["notify_drained_after_s"] = _drained(bootstrap, params.notify_drain_limit_s)
    stack.check_alive()
    if params.notify_log_breaches and "gateway-log" in stack.services:
        status(f"(h)(iii) {params.notify_log_breaches:,} breaches through notify and the log gateway")
        logged = [f"bench-{run_id}-glog{number}" for number in range(params.notify_breach_departments)]
        # The api replica serves Subscribe and lists; nothing of a log delivery passes through it.
        with _without(stack, (API_REPLICA,)) as stopped:
            results["log_gateway"] = metered(stack, lambda: throughput(
                bootstrap, logged, params.notify_log_breaches, run_id, "log", params.notify_log_time_limit_s))
            results["log_gateway"]["also_stopped"] = ", ".join(stopped)
            results["log_gateway"]["notify_drained_after_s"] = _drained(bootstrap, params.notify_drain_limit_s)
        stack.check_alive()


def derive(notify: dict) -> None:
    """Counts as text and notifications per notify CPU-second, in place."""
    if latency := notify.get("latency"):
        latency["received_of_expected"] = f"{latency['received']} / {latency['expected']}"
        if (kafka := latency.get("cpu_seconds", {}).get("kafka")) is not None and "kafka_jit_cpu_seconds" in latency:
            latency["kafka_cpu_and_jit"] = [kafka, latency["kafka_jit_cpu_seconds"]]
    for name in ("throughput", "log_gateway"):
        if run := notify.get(name):
            run["delivered_of_notifications"] = f"{run['delivered']:,} / {run['notifications']:,}"
            run["anomalies"] = f"{run['duplicates']} / {run['failed']} / {run['suppressed']}"
            spent = run.get("cpu_seconds", {})
            if cpu := spent.get("notify"):
                run["notifications_per_notify_cpu_s"] = run["delivered"] / cpu
                run["cpu_split"] = f"{cpu:.1f} / {spent.get(API_REPLICA, 0):.1f}"
