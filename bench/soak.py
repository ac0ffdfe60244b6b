"""(l) Soak: a steady mixed load on the whole stack for minutes, and whether anything grows.

The load is bench.soakload's: customers' stories through the public gRPC API, every leg
resolved, so the open legs stay steady and the services' state grows only by what they
keep of closed legs, for their retention period (days in production). So that forgetting
is part of the steady state within the run, handoff, sla and notify are restarted first
with that period compressed to `soak_retention_s` (see compress_retention), and the run
waits until they are idle again; their memory can then level off, where with days of
retention it could only rise for the whole run.

Every `soak_sample_s` (and at the start, and once more after the load has stopped and the
consumer groups have caught up) the bench reads each process's RSS and open descriptors
from /proc, each service's consumer-group lag from the broker, and the broker's GC log; the
p99 of the API calls (and of each method) and of breach deadline -> Subscribe arrival are
taken per window between samples.
bench.soakstats judges the series.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from pathlib import Path

from handoff.v1 import handoff_service_pb2_grpc as handoff_grpc
from handoff.v1 import notification_service_pb2_grpc as notify_grpc

from bench import soakstats
from bench.cpu import CpuMeter, stack_meter, stack_pids
from bench.latency import subscribe, warm_up
from bench.params import Parameters
from bench.probes import GcLog, KafkaProbe, open_fds, rss_bytes
from bench.soakload import CALL_TIMEOUT_S, EARLIER_CONTACT, HOLD_S, TRANSFER_GRACE_S, Api, Tally, pace, soak_departments
from bench.soakload import stories, summary
from common.grpcclient import aio_channel
from common.topics import (CATALOGUE, CONTACTS, HANDOFF_APP, HANDOFF_EVENTS, NOTIFICATIONS, NOTIFY_APP, REPEAT_CONTACTS,
                           SLA_APP, SLA_EVENTS)
from devstack.stack import ADMIN_TOKEN, Stack

GROUPS = (HANDOFF_APP, SLA_APP, NOTIFY_APP)
QUIET_CPU_FRACTION = 0.1  # of one core: a restarted service has finished restoring and forgetting
SERVICE_PROCESSES = ("handoff", "sla", "notify")


def compress_retention(stack: Stack, retention_s: int) -> None:
    """Restart sla with a repeat window, notify with a retention, and handoff (the command
    owner's closed legs and stored replies) of `retention_s`; the handoff and sla read models
    keep `retention_s` of history."""
    if retention_s <= TRANSFER_GRACE_S + EARLIER_CONTACT.total_seconds():
        raise ValueError(f"soak_retention_s must exceed {TRANSFER_GRACE_S + EARLIER_CONTACT.total_seconds():.0f} s: "
                         "an earlier contact must lie within the repeat window")
    policy = Path(stack.service_env("sla")["SLA_POLICY_FILE"])
    compressed = stack.workdir / "soak-sla-policies.yaml"
    compressed.write_text(policy.read_text() + "repeat_contacts:\n"
                          f"  window: {retention_s}s\n  transfer_grace: {TRANSFER_GRACE_S}s\n")
    period = f"{retention_s}s"
    settings = {
        "handoff": {"HANDOFF_REPEAT_WINDOW": period, "HANDOFF_REPLY_TTL": period, "READ_MODEL_HISTORY": period},
        "sla": {"SLA_POLICY_FILE": str(compressed), "READ_MODEL_HISTORY": period},
        "notify": {"NOTIFY_RETENTION": period},
    }
    for name, env in settings.items():
        stack.services.pop(name).stop()
        stack.start_service(name, env=env)


def wait_until_quiet(pids: dict[str, int], time_limit: float, interval: float = 5.0) -> float | None:
    """Seconds until each of `pids` spent under QUIET_CPU_FRACTION of a core over `interval`; None if not."""
    started = time.monotonic()
    while time.monotonic() - started < time_limit:
        meter = CpuMeter(pids)
        time.sleep(interval)
        if all(spent < QUIET_CPU_FRACTION * interval for spent in meter.spent().values()):
            return round(time.monotonic() - started, 1)
    return None


async def _sample(pids: dict[str, int], probe: KafkaProbe, began: float, gc_log: GcLog | None) -> dict:
    """One reading of every process and consumer group, stamped with seconds since the load began;
    for the broker also the lowest heap after a collection and the longest pause since the last reading."""
    processes = {}
    for name, pid in pids.items():
        rss = rss_bytes(pid)
        processes[name] = {"rss_mb": round(rss / 2**20, 1) if rss is not None else None, "fds": open_fds(pid)}
    if gc_log is not None and "kafka" in processes and (collections := gc_log.new()):
        processes["kafka"]["heap_after_gc_mb"] = min(c.after_mb for c in collections)
        processes["kafka"]["gc_pause_max_ms"] = max(c.pause_ms for c in collections)
    lags = await asyncio.to_thread(lambda: {group: probe.group_lag(group) for group in GROUPS})
    return {"t": round(time.time() - began, 1), "load_average_1m": round(os.getloadavg()[0], 2),
            "processes": processes, "lag": {group: lag for group, (lag, _) in lags.items()},
            "partitions": {group: partitions for group, (_, partitions) in lags.items()}}


async def _sample_every(interval: float, pids: dict[str, int], probe: KafkaProbe, began: float,
                        samples: list[dict], gc_log: GcLog | None) -> None:
    while True:
        await asyncio.sleep(interval - (time.time() - began) % interval)
        samples.append(await _sample(pids, probe, began, gc_log))


def _offsets(probe: KafkaProbe) -> dict[str, int]:
    """End offsets summed per topic the load feeds, and over every dead-letter topic."""
    ends = {spec.name: probe.records(spec.name) for spec in (CONTACTS, HANDOFF_EVENTS, SLA_EVENTS, REPEAT_CONTACTS,
                                                             NOTIFICATIONS)}
    return {**ends, "dead-letter topics": sum(probe.records(spec.dlq) for spec in CATALOGUE)}


async def _settled(probe: KafkaProbe, time_limit: float) -> float | None:
    """Seconds until every group's lag is at most one record per partition it reads; None if not within the limit."""
    started = time.monotonic()
    while time.monotonic() - started < time_limit:
        lags = await asyncio.to_thread(lambda: [probe.group_lag(group) for group in GROUPS])
        if all(lag <= partitions for lag, partitions in lags):
            return round(time.monotonic() - started, 1)
        await asyncio.sleep(1.0)
    return None


async def _soak(stack: Stack, params: Parameters, run_id: str, soak: dict) -> Tally:
    steady, breaching = soak_departments(run_id, params.soak_breach_departments)
    tally = Tally()
    pids = stack_pids(stack)
    samples: list[dict] = soak.setdefault("samples", [])
    gc_log = GcLog(stack.kafka.gc_log) if stack.kafka is not None else None
    async with aio_channel(stack.services["handoff"].grpc, ADMIN_TOKEN) as handoff_channel, \
            aio_channel(stack.services["notify"].grpc, ADMIN_TOKEN) as notify_channel:
        notify = notify_grpc.NotificationServiceStub(notify_channel)
        streams = [asyncio.create_task(subscribe(notify, number, department, tally.arrived))
                   for number, department in enumerate(breaching)]
        api = Api(handoff_channel, tally, run_id)
        with KafkaProbe(stack.bootstrap) as probe:
            try:
                await warm_up(handoff_grpc.HandoffServiceStub(handoff_channel), steady, run_id)
                await asyncio.sleep(3.0)  # Subscribe reads from now on: let each stream find its end
                ends_before = await asyncio.to_thread(_offsets, probe)
                began = tally.began = time.time()
                meter = stack_meter(stack)
                if gc_log is not None:
                    gc_log.new()  # what came before the load is not the load's
                samples.append(await _sample(pids, probe, began, gc_log))
                sampler = asyncio.create_task(_sample_every(params.soak_sample_s, pids, probe, began, samples, gc_log))
                finish_s = HOLD_S + params.soak_breach_ack_s + params.soak_breach_grace_s + CALL_TIMEOUT_S
                try:
                    await pace(stories(api, tally, params), params.soak_stories_per_s, params.soak_seconds, tally,
                                finish_s)
                    soak["load_seconds"] = round(time.time() - began, 1)
                finally:
                    sampler.cancel()
                    if not isinstance(failed := (await asyncio.gather(sampler, return_exceptions=True))[0],
                                      asyncio.CancelledError):
                        soak["sampler_error"] = repr(failed)  # the samples before it still stand
                    soak["cpu_seconds"] = meter.spent()
                soak["streams_ended"] = sum(task.done() for task in streams)
                soak["settled_after_s"] = await _settled(probe, params.soak_drain_limit_s)
                samples.append({**await _sample(pids, probe, began, gc_log), "after_load": True})
                ends_after = await asyncio.to_thread(_offsets, probe)
                # Transactional topics count a commit marker per transaction and partition too.
                soak["offsets_advanced"] = {topic: ends_after[topic] - ends_before[topic] for topic in ends_after}
            finally:
                for task in streams:
                    task.cancel()
                await asyncio.gather(*streams, return_exceptions=True)
    return tally


def _series(samples: list[dict], read: Callable[[dict], float | None]) -> soakstats.Series:
    return [(sample["t"], value) for sample in samples if (value := read(sample)) is not None]


def judge(samples: list[dict], calls: list[tuple[float, float]], breaches: list[tuple[float, float]],
          retention_s: float, by_method: dict[str, list[tuple[float, float]]] | None = None) -> dict:
    """Every metric's start, end, series and verdict; `calls` and `breaches` are (seconds since the load
    began, ms) of each answered call and each breach notification; memory is judged after `retention_s`.
    `by_method`: the calls of each method, whose windowed p99s are reported beside the judged one."""
    metrics: dict[str, dict] = {}
    for name in samples[0]["processes"] if samples else ():
        metrics[f"rss_mb {name}"] = soakstats.rss_bounded(_series(samples, lambda s: s["processes"][name]["rss_mb"]),
                                                          retention_s)
        metrics[f"fds {name}"] = soakstats.fds_bounded(_series(samples, lambda s: s["processes"][name]["fds"]))
        heap = _series(samples, lambda s: s["processes"][name].get("heap_after_gc_mb"))
        if heap:  # a JVM: its heap after collections and its longest pauses, beside its judged RSS
            metrics[f"heap_after_gc_mb {name}"] = soakstats.reported(heap)
            metrics[f"gc_pause_max_ms {name}"] = soakstats.reported(
                _series(samples, lambda s: s["processes"][name].get("gc_pause_max_ms")))
    for group in GROUPS:
        partitions = max((sample["partitions"][group] for sample in samples), default=0)
        metrics[f"lag {group}"] = soakstats.lag_settled(_series(samples, lambda s: s["lag"][group]), partitions)
    # Windows end at the samples taken while the load ran; the one after it has no calls of its own.
    edges = [sample["t"] for sample in samples if not sample.get("after_load")]
    for name, stamped, allowance in (("api_p99_ms", calls, soakstats.API_P99_ALLOWANCE_MS),
                                     ("breach_to_subscriber_p99_ms", breaches, soakstats.BREACH_P99_ALLOWANCE_MS)):
        windows = list(zip(edges[1:], soakstats.window_p99s(stamped, edges)))
        metrics[name] = soakstats.p99_not_worse([(t, round(v, 1) if v is not None else None) for t, v in windows],
                                                allowance)
    for method, stamped in sorted((by_method or {}).items()):
        windows = zip(edges[1:], soakstats.window_p99s(stamped, edges))
        metrics[f"api_p99_ms {method}"] = soakstats.reported([(t, round(v, 1)) for t, v in windows if v is not None])
    return metrics


def measure_soak(stack: Stack, params: Parameters, run_id: str, soak: dict) -> None:
    """Run the soak on the stack's handoff, sla and notify; fill `soak` as it goes (samples first)."""
    soak["stories_per_s"] = params.soak_stories_per_s
    soak["retention_s"] = params.soak_retention_s
    compress_retention(stack, params.soak_retention_s)
    services = {name: stack.services[name].pid for name in SERVICE_PROCESSES}
    soak["services_quiet_after_s"] = wait_until_quiet(services, params.soak_drain_limit_s)
    tally = asyncio.run(_soak(stack, params, run_id, soak))
    soak.update(summary(tally, params))
    calls = [(at - tally.began, ms) for at, _, ms in tally.calls]
    breaches = [(a.deadline + a.late_seconds - tally.began, a.late_seconds * 1000)
                for a in tally.arrivals.values() if a.handoff_id in tally.breaching_legs]
    by_method: dict[str, list[tuple[float, float]]] = {}
    for at, method, ms in tally.calls:
        by_method.setdefault(method, []).append((at - tally.began, ms))
    soak["metrics"] = judge(soak["samples"], calls, breaches, params.soak_retention_s, by_method)
    soak["passed"] = all(metric["passed"] is True for metric in soak["metrics"].values() if not metric.get("reported"))
