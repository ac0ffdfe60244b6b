"""(g) Running clocks: many open legs in one wall-time sla worker, and what they cost.

`legs` legs whose targets lie weeks ahead (ack 30d, resolve 60d, so each runs two clocks to
the end of the run) are written straight to handoff.events.v1, as in (b), to an sla worker
running alone. With them loaded: the sla process's memory growth (VmRSS) per leg and per
clock; the handoff_sla_running_clocks gauge; the breach latency of a few legs with a target
of seconds among them (deadline -> breach record on sla.events.v1, by the record's broker
timestamp and by its arrival here); then a restart, stopped by pid through the Stack and
started again, timed to the ready line and until the gauge is back where it was.

The gauge counts running clocks (two per open leg: ack and resolve) of the partitions the
worker owns; memory is reported per leg and per clock. The goal's scale
(1,000,000 clocks) is out of reach while the sla worker handles ~1,000 events/s, so the
figures are measured at `legs` and extrapolated linearly, and say so.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from handoff.v1 import sla_events_pb2, types_pb2

from bench.cpu import cpu_seconds
from bench.latency import percentile
from bench.params import Parameters
from bench.probes import KafkaProbe, gauge, rss_bytes
from bench.slaburst import created_event
from common.kafkaio import topic_partitions
from common.topics import HANDOFF_EVENTS, SLA_APP, SLA_EVENTS
from devstack.stack import Stack

CLOCKS_PER_LEG = 2  # ack and resolve both start at creation (sla.domain.clocks.AT_CREATION)
GAUGE = "handoff_sla_running_clocks"
GOAL_CLOCKS = 1_000_000


async def write_legs(bootstrap: str, department: str, n: int, run_id: str) -> float:
    """Write n created legs of `department` as fast as aiokafka takes them; the seconds it took."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5, max_batch_size=256 * 1024)
    await producer.start()
    try:
        started = time.perf_counter()
        for number in range(n):
            # A customer of its own per leg: a customer holds a few legs, not hundreds.
            key, value, _ = created_event(department, number, run_id, customers=n)
            await producer.send(HANDOFF_EVENTS.name, value, key=key)
        await producer.flush()
        return time.perf_counter() - started
    finally:
        await producer.stop()


def _wait_loaded(probe: KafkaProbe, url: str, target: int, started: float, time_limit: float) -> float | None:
    """Seconds from `started` until the sla group has committed handoff.events.v1 and the gauge reads `target`."""
    while time.perf_counter() - started < time_limit:
        if probe.lag(SLA_APP, [HANDOFF_EVENTS.name]) == 0 and (gauge(url, GAUGE) or 0) >= target:
            return time.perf_counter() - started
        time.sleep(0.5)
    return None


def _seconds(stamp) -> float:
    return stamp.seconds + stamp.nanos / 1e9


async def breach_latency(bootstrap: str, department: str, legs: int, ack_s: float, spread_s: float,
                         grace_s: float, run_id: str) -> dict:
    """Create `legs` legs over `spread_s` whose ack target is `ack_s`; time each ack breach from its deadline."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False, fetch_max_wait_ms=20)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0)
    await consumer.start()
    await producer.start()
    emitted: dict[str, float] = {}  # handoff id -> broker timestamp - deadline
    arrived: dict[str, float] = {}  # handoff id -> arrival here - deadline
    duplicates = 0
    wanted: set[str] = set()

    async def collect() -> None:
        nonlocal duplicates
        while True:
            batches = await consumer.getmany(timeout_ms=100)
            now = time.time()
            for record in (r for batch in batches.values() for r in batch):
                event = sla_events_pb2.SlaEvent.FromString(record.value)
                if event.WhichOneof("change") != "breached" or event.handoff_id not in wanted \
                        or event.clock != types_pb2.CLOCK_KIND_ACK:
                    continue
                if event.handoff_id in emitted:
                    duplicates += 1
                    continue
                deadline = _seconds(event.breached.deadline)
                emitted[event.handoff_id] = record.timestamp / 1000 - deadline
                arrived[event.handoff_id] = now - deadline

    try:
        partitions = [TopicPartition(SLA_EVENTS.name, p) for p in await topic_partitions(bootstrap, SLA_EVENTS.name)]
        ends = await consumer.end_offsets(partitions)
        consumer.assign(partitions)
        for tp, offset in ends.items():
            consumer.seek(tp, offset)
        collector = asyncio.create_task(collect())
        for number in range(legs):
            key, value, handoff_id = created_event(department, number, run_id)
            wanted.add(handoff_id)
            await (await producer.send(HANDOFF_EVENTS.name, value, key=key))
            await asyncio.sleep(spread_s / legs)
        give_up = time.monotonic() + ack_s + grace_s
        while len(emitted) < legs and time.monotonic() < give_up:
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)  # a duplicate would show up now
        collector.cancel()
        await asyncio.gather(collector, return_exceptions=True)
    finally:
        await producer.stop()
        await consumer.stop()
    result = {"legs": legs, "received": len(emitted), "duplicates": duplicates}
    for name, lateness in (("emitted", emitted), ("arrived", arrived)):
        if lateness:
            late_ms = [seconds * 1000 for seconds in lateness.values()]
            result.update({f"{name}_p50_ms": percentile(late_ms, 0.5), f"{name}_p99_ms": percentile(late_ms, 0.99),
                           f"{name}_max_ms": max(late_ms)})
    return result


def restart(stack: Stack, target: int, time_limit: float) -> dict:
    """Stop the sla process by pid, start it again; time its ready line and its gauge's return to `target`."""
    started = time.perf_counter()
    exit_code = stack.services.pop("sla").stop()
    stopped = time.perf_counter() - started
    started = time.perf_counter()
    sla = stack.start_service("sla")
    ready = time.perf_counter() - started
    back, value = None, None
    while time.perf_counter() - started < time_limit:
        value = gauge(sla.endpoints["metrics"], GAUGE)
        if value is not None and value >= target:
            back = time.perf_counter() - started
            break
        time.sleep(0.2)
    time.sleep(1.0)
    return {"target_gauge": target, "stop_seconds": stopped, "exit_code": exit_code, "ready_seconds": ready,
            "seconds_to_clocks_back": back, "gauge_at_end": value, "rss_mb_after": (rss_bytes(sla.pid) or 0) / 2**20}


def measure_clocks(stack: Stack, params: Parameters, run_id: str, department: str, breach_department: str,
                   result: dict, step: Callable[[str], None] = lambda _: None) -> None:
    """Fill `result` step by step (load, memory, breach latency, restart) on the stack's lone sla worker."""
    clocks = params.running_legs * CLOCKS_PER_LEG
    result["scale"] = (f"{params.running_legs:,} open legs ({clocks:,} clocks) on top of the earlier phases' legs"
                       + ("" if clocks >= GOAL_CLOCKS else "; figures for 1,000,000 clocks are linear extrapolations"))
    bootstrap, sla = stack.bootstrap, stack.services["sla"]
    url, n = sla.endpoints["metrics"], params.running_legs
    with KafkaProbe(bootstrap) as probe:
        step("waiting for the sla worker to go quiet")
        probe.wait_for_lag([SLA_APP], [HANDOFF_EVENTS.name], 60.0)
        time.sleep(2.0)  # quiet: the timer has set the gauge, the allocator has settled
        before, rss_before = int(gauge(url, GAUGE) or 0), rss_bytes(sla.pid)
        result.update(legs=n, clocks=n * CLOCKS_PER_LEG, gauge_before=before, rss_mb_before=(rss_before or 0) / 2**20)
        step(f"writing {n:,} open legs and waiting for the sla worker to take them")
        started, cpu = time.perf_counter(), cpu_seconds(sla.pid)
        result["produce_seconds"] = asyncio.run(write_legs(bootstrap, department, n, f"{run_id}-g"))
        loaded = _wait_loaded(probe, url, before + n, started, params.clocks_load_time_limit_s)
        cpu = (cpu_seconds(sla.pid) or 0) - (cpu or 0)
    result.update(loaded=loaded is not None, load_seconds=loaded, legs_per_s=n / loaded if loaded else None,
                  sla_cpu_seconds=cpu, legs_per_sla_cpu_s=n / cpu if loaded and cpu else None)
    time.sleep(2.0)
    after, rss_after = int(gauge(url, GAUGE) or 0), rss_bytes(sla.pid)
    result.update(gauge_after=after, rss_mb_after=(rss_after or 0) / 2**20)
    if rss_before and rss_after:
        per_leg = (rss_after - rss_before) / n
        result.update(bytes_per_leg=per_leg, bytes_per_clock=per_leg / CLOCKS_PER_LEG,
                      projected_mb_for_1m_clocks=per_leg / CLOCKS_PER_LEG * GOAL_CLOCKS / 2**20)
    step(f"{params.clocks_breach_legs} legs left to breach among {after:,} running")
    result["breach"] = asyncio.run(breach_latency(
        bootstrap, breach_department, params.clocks_breach_legs, params.clocks_breach_ack_s,
        params.clocks_breach_spread_s, params.clocks_breach_grace_s, f"{run_id}-d"))
    stack.check_alive()
    target = int(gauge(url, GAUGE) or 0)
    step(f"restarting the sla worker with {target:,} clocks running")
    recovery = result["restart"] = restart(stack, target, params.recovery_time_limit_s)
    if back := recovery["seconds_to_clocks_back"]:
        # Linear in what is restored (the rebuild walks the whole table); `target` counts clocks.
        recovery["projected_seconds_for_1m_clocks"] = back * GOAL_CLOCKS / target
