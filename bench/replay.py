"""(f) Replay: a generated history imported with `handoffctl import` and replayed by an sla
worker on event time (SLA_CLOCK=event), timed from the import's start until the worker has
processed everything.

"Processed everything" is read from outside, as an operator would: the worker's consumer
group (handoff-sla) has committed the end of handoff.events.v1 and contacts.v1, and no SLA
event or repeat contact has appeared for a few seconds. The engine commits with every
batch; the time of the last output is reported beside it. The history is devstack.history's (the
one the replay test uses), on the shipped policies with their Berlin office calendars.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timezone
from pathlib import Path

from bench.cpu import cpu_seconds
from bench.probes import KafkaProbe, by_label, rss_bytes, scrape, total
from bench.sizing import events_in, sized_history
from common.topics import CONTACTS, HANDOFF_EVENTS, REPEAT_CONTACTS, SLA_APP, SLA_EVENTS
from devstack.history import month_of
from devstack.stack import Stack
from handoff_svc.entrypoints.importer import import_files

POLICY_FILE = Path(__file__).resolve().parent.parent / "config" / "sla-policies.yaml"
DAYS = 30
INPUTS = [HANDOFF_EVENTS.name, CONTACTS.name]
OUTPUTS = (SLA_EVENTS.name, REPEAT_CONTACTS.name)
SETTLE_S = 3.0
GOAL_EVENTS, GOAL_SECONDS = 1_000_000, 60.0


def history_start(today: datetime) -> datetime:
    """The first of the month two months back: the history (cases opened over 30 days, legs
    resolved up to ~13 days later) then lies wholly in the past, as the import requires."""
    months = today.year * 12 + today.month - 1 - 2
    return month_of(months // 12, months % 12 + 1)


def write_replay_history(directory: Path, events: int, prefix: str) -> tuple[Path, Path]:
    """handoffs.csv and contacts.csv that import as about `events` events."""
    directory.mkdir(parents=True, exist_ok=True)
    return sized_history(directory, history_start(datetime.now(timezone.utc)), DAYS, events, events_in, prefix)


def _outputs(probe: KafkaProbe) -> dict[str, int]:
    return {topic: probe.records(topic) for topic in OUTPUTS}


def _wait_caught_up(probe: KafkaProbe, started: float, time_limit: float) -> tuple[float | None, float]:
    """(seconds to lag 0 with quiet outputs or None, seconds to the last output growth), from `started`."""
    last, last_growth, caught_up = _outputs(probe), time.perf_counter(), None
    while time.perf_counter() - started < time_limit:
        time.sleep(0.5)
        now, outputs = time.perf_counter(), _outputs(probe)
        if outputs != last:
            last, last_growth = outputs, now
        if probe.lag(SLA_APP, INPUTS) > 0:
            caught_up = None  # the worker's own SLA events can put it behind again
        elif caught_up is None:
            caught_up = now
        if caught_up is not None and now - max(caught_up, last_growth) >= SETTLE_S:
            return caught_up - started, last_growth - started
    return None, last_growth - started


def replay(stack: Stack, handoffs: Path, contacts: Path, time_limit: float) -> dict:
    """Import the files into `stack` (an sla worker on event time, alone) and time the replay."""
    sla = stack.services["sla"]
    with KafkaProbe(stack.bootstrap) as probe:
        before = _outputs(probe)
        started, cpu = time.perf_counter(), cpu_seconds(sla.pid)
        report = asyncio.run(import_files(stack.bootstrap, handoffs, contacts, progress=False))
        written = time.perf_counter() - started
        caught_up, last_output = _wait_caught_up(probe, started, time_limit)
        cpu = (cpu_seconds(sla.pid) or 0) - (cpu or 0)
        after = _outputs(probe)
        lag = probe.lag(SLA_APP, INPUTS)
    samples = scrape(sla.endpoints["metrics"])
    result = {
        "scale": f"{report.events:,} events replayed",
        "legs": report.legs, "contacts": report.contacts, "events": report.events,
        "import_seconds": written, "import_checking_seconds": report.checking_seconds,
        "complete": caught_up is not None, "lag_at_end": lag,
        "seconds_to_caught_up": caught_up, "seconds_to_last_output": last_output, "sla_cpu_seconds": cpu,
        "sla_events": after[SLA_EVENTS.name] - before[SLA_EVENTS.name],
        "repeat_contacts": after[REPEAT_CONTACTS.name] - before[REPEAT_CONTACTS.name],
        "breaches": int(total(samples, "handoff_sla_breaches_total")),
        "warnings": int(total(samples, "handoff_sla_warnings_total")),
        "repeat_contacts_by_cause": {cause: int(n) for cause, n in
                                     by_label(samples, "handoff_repeat_contacts_total", "cause").items()},
        "running_clocks_at_end": int(total(samples, "handoff_sla_running_clocks")),
        "sla_rss_mb_at_end": (rss_bytes(sla.pid) or 0) / 2**20,
    }
    if caught_up:
        result["events_per_s"] = report.events / caught_up
        result["events_per_sla_cpu_s"] = report.events / cpu if cpu else None
        result["projected_seconds_for_1m_events"] = caught_up * GOAL_EVENTS / report.events
        result["goal_met_projected"] = result["projected_seconds_for_1m_events"] < GOAL_SECONDS
    return result
