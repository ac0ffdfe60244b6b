"""(m) Lifecycle: a million legs through their whole life, and whether the state stays flat.

Each leg's life (created, acknowledged, resolved) is written straight to handoff.events.v1,
as (b) and (g) write theirs, in chunks: the next chunk waits until sla and notify are
within `lifecycle_lag_records` of the end, so event time stays near wall time and the
load runs at the pace of the slowest of them. handoff (its read model), sla and notify all
read it, with their retention compressed to `lifecycle_retention_s` (as the soak does), so
the first legs are forgotten while later ones are still written. The command owner's
tables are not on this path (no command is sent): the soak and the e2e retention tests
cover them.

The broker's log cleaner compacts only closed segments, and the changelogs roll theirs
hourly (common.topics.CHANGELOG_CONFIGS). For the phase, each changelog rolls every
`lifecycle_segment_s`, keeps a tombstone as long and is cleaned once a tenth of it is new
(CLEANABLE_RATIO), so what forgotten entries leave behind compacts away within the run; the
catalogue's settings are put back afterwards.

After every chunk, and once more when the last leg has passed its retention (and a few
more legs have moved event time on): each service's RSS, the legs the handoff read model
holds, sla's running clocks, and the bytes of each service's changelogs on the broker's
disk (this run's own broker: `*.log` files, so segments the cleaner has replaced and not
yet deleted do not count). The state is flat when, from the steady state (the first
sample twice the retention into the load: the first legs have been forgotten for a while)
to the end, no service's RSS grew by more than FLAT_RSS_ALLOWANCE and no service's
changelogs by more than FLAT_CHANGELOG_ALLOWANCE.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

from confluent_kafka import Producer
from handoff.v1 import handoff_events_pb2, types_pb2
from kafka import KafkaAdminClient
from kafka.admin import ConfigResource, ConfigResourceType

from bench.params import Parameters
from bench.probes import KafkaProbe, gauge, rss_bytes
from bench.soak import compress_retention, wait_until_quiet
from common.codec import new_envelope, to_timestamp
from common.topics import CHANGELOG_CONFIGS, HANDOFF_APP, HANDOFF_EVENTS, NOTIFY_APP, SLA_APP, TABLES, changelog_name
from devstack.stack import Stack

SERVICES = ("handoff", "sla", "notify")
READERS = (SLA_APP, NOTIFY_APP)  # the consumer groups that read handoff.events.v1 (the read model has none)
GOAL_LEGS = 1_000_000
# Growth allowed from the steady state to the end: the allocator's and the broker's noise, far
# below what a million legs kept would take (sla alone holds ~240 bytes per running clock).
FLAT_RSS_ALLOWANCE = 0.10  # of the service's RSS in the steady state, and at least FLAT_RSS_FLOOR_MB
FLAT_RSS_FLOOR_MB = 32.0
FLAT_CHANGELOG_ALLOWANCE = 0.25  # of the changelogs' bytes in the steady state, and at least FLAT_CHANGELOG_FLOOR_MB
FLAT_CHANGELOG_FLOOR_MB = 16.0
TRAILING_LEGS = 200
CLEANER_PASS_S = 45.0  # log.cleaner.backoff.ms (15 s) and a pass over every changelog
# A tombstone is far smaller than the value it deletes, so at Kafka's default of 0.5 a
# changelog whose entries are forgotten is cleaned only once its dirty part has grown as
# large as the rest (bounded, at about twice what it holds); the phase has it cleaned sooner.
CLEANABLE_RATIO = 0.1


def leg_events(number: int, run_id: str, department: str, customers: int) -> list[tuple[bytes, bytes]]:
    """(key, value) of one leg's created, acknowledged and resolved events, on event time now."""
    now = datetime.now(timezone.utc)
    stamp = to_timestamp(now)
    handoff_id = str(uuid.uuid4())
    customer_ref = f"bench-{run_id}-m{number % customers:07d}"
    key = customer_ref.encode()
    common = {"handoff_id": handoff_id, "case_id": f"BENCH-{run_id}-m{number}", "customer_ref": customer_ref,
              "department": department, "actor": "bench"}
    changes = (
        {"created": handoff_events_pb2.HandoffCreated(priority=types_pb2.PRIORITY_NORMAL, summary="bench lifecycle",
                                                      created_by="bench", created_at=stamp)},
        {"acknowledged": handoff_events_pb2.HandoffAcknowledged(acknowledged_by="bench")},
        {"resolved": handoff_events_pb2.HandoffResolved(resolution="done")},
    )
    return [(key, handoff_events_pb2.HandoffEvent(envelope=new_envelope("bench", now, now, event_id=str(uuid.uuid4())),
                                                  **common, **change).SerializeToString())
            for change in changes]


def _write(producer: Producer, numbers: range, run_id: str, department: str, customers: int) -> None:
    for number in numbers:
        for key, value in leg_events(number, run_id, department, customers):
            producer.produce(HANDOFF_EVENTS.name, value, key)
            producer.poll(0)
    if producer.flush(60):
        raise RuntimeError("the lifecycle producer could not deliver its records within 60 s")


def changelog_bytes(data_dir: Path) -> dict[str, int]:
    """Bytes of each changelog on the broker's disk (closed and active segments)."""
    names = {changelog_name(app, table) for app, tables in TABLES.items() for table in tables}
    sizes = dict.fromkeys(sorted(names), 0)
    for directory in data_dir.iterdir():
        if (name := directory.name.rpartition("-")[0]) in names:
            sizes[name] += sum(segment.stat().st_size for segment in directory.glob("*.log"))
    return sizes


def _changelog_configs(bootstrap: str, segment_ms: int | None) -> None:
    """Every changelog rolls a segment and keeps a tombstone `segment_ms`, and is cleaned once a
    tenth of it is dirty (None: the catalogue's settings again)."""
    configs = {"segment.ms": str(segment_ms), "delete.retention.ms": str(segment_ms),
               "min.cleanable.dirty.ratio": str(CLEANABLE_RATIO)} if segment_ms is not None else \
        {"segment.ms": CHANGELOG_CONFIGS["segment.ms"], "delete.retention.ms": CHANGELOG_CONFIGS["delete.retention.ms"],
         "min.cleanable.dirty.ratio": ("DELETE", None)}
    resources = [ConfigResource(ConfigResourceType.TOPIC, changelog_name(app, table), configs=dict(configs))
                 for app, tables in TABLES.items() for table in tables]
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30_000)
    try:
        answers = admin.alter_configs(resources)
    finally:
        admin.close()
    refused = {name: answer for name, answer in answers.get("topic", {}).items() if answer != "OK"}
    if refused:
        raise RuntimeError(f"changelog settings refused: {refused}")
    time.sleep(3.0)  # the brokers apply a change from the metadata log, a moment later


class _Sampler:
    def __init__(self, stack: Stack, probe: KafkaProbe, data_dir: Path, began: float) -> None:
        self._stack, self._probe, self._data_dir, self._began = stack, probe, data_dir, began
        self.samples: list[dict] = []

    def take(self, legs: int, **extra: object) -> dict:
        services = self._stack.services
        by_name = changelog_bytes(self._data_dir)
        sample = {
            "t": round(time.time() - self._began, 1), "legs_written": legs,
            "rss_mb": {name: round((rss_bytes(services[name].pid) or 0) / 2**20, 1) for name in SERVICES},
            "changelog_mb": {app: round(sum(by_name[changelog_name(app, table)] for table in tables) / 2**20, 1)
                             for app, tables in TABLES.items()},
            "changelog_mb_by_table": {name: round(size / 2**20, 2) for name, size in by_name.items()},
            "handoff_known_legs": gauge(services["handoff"].endpoints["metrics"], "handoff_known_legs"),
            "sla_running_clocks": gauge(services["sla"].endpoints["metrics"], "handoff_sla_running_clocks"),
            "lag": {group: self._probe.lag(group, [HANDOFF_EVENTS.name]) for group in READERS},
            **extra,
        }
        self.samples.append(sample)
        return sample


def _wait_for_readers(probe: KafkaProbe, behind: int, time_limit: float) -> bool:
    """Whether every reader came within `behind` records of the end within `time_limit` seconds."""
    return probe.wait_for_lag(READERS, [HANDOFF_EVENTS.name], time_limit, behind, poll=1.0) is not None


def reference(samples: list[dict], retention_s: float) -> dict:
    """The first sample of the steady state: taken twice the retention after the load began, when
    the first legs have been forgotten for a while (the last sample of the load if none was)."""
    during = [sample for sample in samples if not sample.get("after_retention")]
    return next((sample for sample in during if sample["t"] >= 2 * retention_s), during[-1])


def judge(samples: list[dict], retention_s: float) -> dict:
    """Per service, its RSS and changelog bytes in the steady state, at the end and at their peak, and whether flat."""
    verdicts, steady, end = {}, reference(samples, retention_s), samples[-1]
    for name, app in zip(SERVICES, (HANDOFF_APP, SLA_APP, NOTIFY_APP)):
        rss = (steady["rss_mb"][name], end["rss_mb"][name], max(s["rss_mb"][name] for s in samples))
        logs = (steady["changelog_mb"][app], end["changelog_mb"][app], max(s["changelog_mb"][app] for s in samples))
        rss_flat = rss[1] - rss[0] <= max(FLAT_RSS_ALLOWANCE * rss[0], FLAT_RSS_FLOOR_MB)
        logs_flat = logs[1] - logs[0] <= max(FLAT_CHANGELOG_ALLOWANCE * logs[0], FLAT_CHANGELOG_FLOOR_MB)
        verdicts[name] = {"steady_state_at_s": steady["t"], "steady_state_legs_written": steady["legs_written"],
                          "rss_mb_steady": rss[0], "rss_mb_at_end": rss[1], "rss_mb_peak": rss[2],
                          "changelog_mb_steady": logs[0], "changelog_mb_at_end": logs[1],
                          "changelog_mb_peak": logs[2], "flat": rss_flat and logs_flat}
    return verdicts


def measure_lifecycle(stack: Stack, params: Parameters, run_id: str, department: str, result: dict,
                      step: Callable[[str], None] = lambda _: None) -> None:
    """Fill `result` as the phase goes: settings, samples, then the verdicts."""
    if stack.kafka is None:
        result["skipped"] = "needs a broker of its own (its changelog files are read from disk)"
        return
    legs, chunk = params.lifecycle_legs, params.lifecycle_chunk_legs
    result.update(legs=legs, events=3 * legs, retention_s=params.lifecycle_retention_s,
                  changelog_segment_s=params.lifecycle_segment_s,
                  scale=f"{legs:,} legs, each created, acknowledged and resolved"
                        + ("" if legs >= GOAL_LEGS else f" (the goal's scale is {GOAL_LEGS:,})"))
    step("restarting handoff, sla and notify with their retention compressed")
    compress_retention(stack, params.lifecycle_retention_s)
    result["services_quiet_after_s"] = wait_until_quiet({name: stack.services[name].pid for name in SERVICES},
                                                        params.soak_drain_limit_s)
    _changelog_configs(stack.bootstrap, params.lifecycle_segment_s * 1000)
    producer = Producer({"bootstrap.servers": stack.bootstrap, "acks": "all", "linger.ms": 5,
                         "partitioner": "murmur2_random", "queue.buffering.max.messages": 1_000_000})
    try:
        with KafkaProbe(stack.bootstrap) as probe:
            began = time.time()
            sampler = _Sampler(stack, probe, stack.kafka.workdir / "data", began)
            result["samples"] = sampler.samples
            sampler.take(0)
            customers = max(legs // 4, 1)  # a customer comes back about every quarter of the run
            written = 0
            while written < legs:
                _write(producer, range(written, min(written + chunk, legs)), run_id, department, customers)
                written = min(written + chunk, legs)
                step(f"{written:,} of {legs:,} legs written")
                if not _wait_for_readers(probe, params.lifecycle_lag_records,
                                         params.lifecycle_time_limit_s - (time.time() - began)):
                    result["complete"] = False
                    return
                sampler.take(written)
            result["load_seconds"] = round(time.time() - began, 1)
            result["events_per_s"] = round(3 * legs / result["load_seconds"], 1)
            step("waiting until every reader has caught up and the last legs have passed their retention")
            _wait_for_readers(probe, 0, params.lifecycle_time_limit_s)
            caught_up = time.time()
            # Forgetting is due a retention after each leg's end, rounded up to the second; the
            # cleaner then needs a segment roll and a pass of its own (log.cleaner.backoff.ms 15 s).
            time.sleep(max(0.0, params.lifecycle_retention_s + params.lifecycle_segment_s + 5
                           - (time.time() - caught_up)))
            # Life goes on: a few more legs, over every partition, move the read model's event time
            # past the last legs' retention and make each changelog roll the segment holding their
            # tombstones, which the cleaner can then compact.
            step("a few more legs, then the cleaner's pass")
            _write(producer, range(legs, legs + TRAILING_LEGS), run_id, department, TRAILING_LEGS)
            _wait_for_readers(probe, 0, params.lifecycle_time_limit_s)
            time.sleep(CLEANER_PASS_S)
            sampler.take(legs, after_retention=True)
            result["complete"] = True
    finally:
        producer.flush(30)
        _changelog_configs(stack.bootstrap, None)
    result["verdicts"] = judge(sampler.samples, params.lifecycle_retention_s)
    result["flat"] = all(verdict["flat"] for verdict in result["verdicts"].values())
