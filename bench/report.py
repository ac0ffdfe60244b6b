"""The bench's output: one rich table for people, bench/results.json for comparisons over time.

Every figure printed is read from the results document, so the table and the file can
never disagree, and a figure that was not measured shows as "-" rather than a guess.
"""

from __future__ import annotations

import json
import os
import platform
import sys
from datetime import datetime, timezone
from pathlib import Path

from rich.console import Console
from rich.table import Table

from devstack.compile import compiled_path


def machine() -> dict:
    """What the numbers were measured on."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cores": os.cpu_count(), "cpu": model, "load_average_1m_at_end": round(os.getloadavg()[0], 2), "python": sys.version.split()[0],
            "implementation": platform.python_implementation(), "platform": platform.platform(),
            # Whether the services ran sla's hot path compiled (devstack.compile) or its sources.
            "compiled_hot_path": compiled_path() is not None}


def document(parameters: dict, results: dict, runtime_s: float, error: str | None) -> dict:
    return {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "machine": machine(),
            "parameters": parameters, "results": results, "runtime_s": round(runtime_s, 1), "error": error}


def write(doc: dict, path: Path) -> Path:
    path.write_text(json.dumps(doc, indent=2, sort_keys=False) + "\n")
    return path


def _get(results: dict, *path: str):
    node = results
    for key in path:
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node


def _fmt(value, digits: int = 0) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    if isinstance(value, list):
        return ", ".join(_fmt(item, digits) for item in value)
    return f"{value:,}" if isinstance(value, int) else str(value)


ROWS = (
    ("(a)(i) Kafka ProducerPerformance", "records/s", ("raw", "producer_performance", "records_per_s"), 0),
    ("(a)(i) Kafka ProducerPerformance", "MB/s", ("raw", "producer_performance", "mb_per_s"), 2),
    ("(a)(ii) aiokafka pre-fill (produce only)", "records/s", ("raw", "prefill", "records_per_s"), 0),
    ("(a)(ii) aiokafka consume->produce copy", "records/s", ("raw", "copy", "records_per_s"), 0),
    ("(a)(ii) aiokafka copy per CPU-second", "records/s", ("raw", "copy", "records_per_cpu_s"), 0),
    ("(b) burst written to handoff.events.v1", "records/s", ("sla_burst", "produce_records_per_s"), 0),
    ("(b) sla: handoff events -> clock_started", "events/s", ("sla_burst", "events_per_s"), 0),
    ("(b) sla: same, middle 80 % of the burst", "events/s", ("sla_burst", "steady_events_per_s"), 0),
    ("(b) sla: time to last clock_started", "s", ("sla_burst", "seconds_to_last"), 1),
    ("(b) sla: received / legs", "count", ("sla_burst", "received_of_legs"), 0),
    ("(b) ratio sla / aiokafka copy", "x", ("sla_burst", "ratio_to_copy"), 3),
    ("(b) sla events per sla CPU-second", "events/s", ("sla_burst", "events_per_sla_cpu_s"), 0),
    ("(b) ratio per CPU-second sla / copy", "x", ("sla_burst", "cpu_ratio_to_copy"), 3),
    ("(b) CPU s during burst: sla", "s", ("sla_burst", "cpu_seconds", "sla"), 1),
    ("(b) CPU s during burst: notify", "s", ("sla_burst", "cpu_seconds", "notify"), 1),
    ("(b) CPU s during burst: handoff", "s", ("sla_burst", "cpu_seconds", "handoff"), 1),
    ("(b) CPU s during burst: kafka broker", "s", ("sla_burst", "cpu_seconds", "kafka"), 1),
    ("(b) CPU s during burst: bench", "s", ("sla_burst", "cpu_seconds", "bench"), 1),
    ("(b) dead-lettered during the burst", "count", ("sla_burst", "dead_lettered"), 0),
    ("(c) first CreateHandoff served after", "s", ("latency", "handoff_writes_after_s"), 2),
    ("(c) CreateHandoff call p50", "ms", ("latency", "create_handoff_p50_ms"), 1),
    ("(c) CreateHandoff call max", "ms", ("latency", "create_handoff_max_ms"), 1),
    ("(c) deadline -> notification p50", "ms", ("latency", "p50_ms"), 0),
    ("(c) deadline -> notification p99", "ms", ("latency", "p99_ms"), 0),
    ("(c) deadline -> notification max", "ms", ("latency", "max_ms"), 0),
    ("(c) received / expected", "count", ("latency", "received_of_expected"), 0),
    ("(c) duplicate notifications", "count", ("latency", "duplicates"), 0),
    ("(h)(i) Subscribe streams connected (gauge)", "streams", ("notify", "latency", "subscribers_connected"), 0),
    ("(h)(i) deadline -> subscriber p50", "ms", ("notify", "latency", "p50_ms"), 0),
    ("(h)(i) deadline -> subscriber p99 (goal < 200)", "ms", ("notify", "latency", "p99_ms"), 0),
    ("(h)(i) deadline -> subscriber max", "ms", ("notify", "latency", "max_ms"), 0),
    ("(h)(i) received / expected", "count", ("notify", "latency", "received_of_expected"), 0),
    ("(h)(i) duplicate notifications", "count", ("notify", "latency", "duplicates"), 0),
    ("(h)(i) deadline -> breach record (sla) p50 / p99", "ms", ("notify", "latency", "hops", "breached_p50_p99_ms"), 0),
    ("(h)(i) deadline -> requested (notify 1) p50 / p99", "ms", ("notify", "latency", "hops", "requested_p50_p99_ms"), 0),
    ("(h)(i) deadline -> delivered (notify 2) p50 / p99", "ms", ("notify", "latency", "hops", "delivered_p50_p99_ms"), 0),
    ("(h) notify run as", "", ("notify", "topology"), 0),
    ("(h)(i) CPU s of notify during the phase", "s", ("notify", "latency", "cpu_seconds", "notify"), 1),
    ("(h)(i) CPU s of notify-api during the phase", "s", ("notify", "latency", "cpu_seconds", "notify-api"), 1),
    ("(h)(i) CPU s of Kafka, of which its JIT compiler", "s", ("notify", "latency", "kafka_cpu_and_jit"), 1),
    ("(h)(i) sla GC pauses > 50 ms / all GC time", "count / s", ("notify", "latency", "gc", "sla"), 0),
    ("(h)(i) notify GC pauses > 50 ms / all GC time", "count / s", ("notify", "latency", "gc", "notify"), 0),
    ("(h)(i) notify-api GC pauses > 50 ms / all GC time", "count / s", ("notify", "latency", "gc", "notify-api"), 0),
    ("(h)(i) wall time of the phase", "s", ("notify", "latency", "wall_seconds"), 1),
    ("(h)(ii), (iii) services stopped meanwhile", "", ("notify", "stopped"), 0),
    ("(h)(ii) breaches written to sla.events.v1", "records/s", ("notify", "throughput", "produce_records_per_s"), 0),
    ("(h)(ii) delivered (subscription), end to end", "notif./s", ("notify", "throughput", "notifications_per_s"), 0),
    ("(h)(ii) same, middle 80 % (goal >= 5,000)", "notif./s", ("notify", "throughput", "steady_notifications_per_s"), 0),
    ("(h)(ii) delivered / written", "count", ("notify", "throughput", "delivered_of_notifications"), 0),
    ("(h)(ii) all delivered", "", ("notify", "throughput", "complete"), 0),
    ("(h)(ii) time to last delivered", "s", ("notify", "throughput", "seconds_to_last"), 1),
    ("(h)(ii) written -> delivered p50", "ms", ("notify", "throughput", "write_to_delivered_p50_ms"), 0),
    ("(h)(ii) written -> delivered p99", "ms", ("notify", "throughput", "write_to_delivered_p99_ms"), 0),
    ("(h)(ii) duplicates / failed / suppressed", "count", ("notify", "throughput", "anomalies"), 0),
    ("(h)(ii) CPU s: notify (the worker)", "s", ("notify", "throughput", "cpu_seconds", "notify"), 1),
    ("(h)(ii) CPU s: notify-api (reads every notification)", "s", ("notify", "throughput", "cpu_seconds", "notify-api"), 1),
    ("(h)(ii) CPU s: kafka broker", "s", ("notify", "throughput", "cpu_seconds", "kafka"), 1),
    ("(h)(ii) CPU s: bench", "s", ("notify", "throughput", "cpu_seconds", "bench"), 1),
    ("(h)(ii) delivered per notify CPU-second", "notif./s", ("notify", "throughput", "notifications_per_notify_cpu_s"), 0),
    ("(h)(ii) notify read back its output after", "s", ("notify", "throughput", "notify_drained_after_s"), 1),
    ("(h)(iii) stopped as well (not on its path)", "", ("notify", "log_gateway", "also_stopped"), 0),
    ("(h)(iii) log gateway: delivered, end to end", "notif./s", ("notify", "log_gateway", "notifications_per_s"), 0),
    ("(h)(iii) log gateway: middle 80 %", "notif./s", ("notify", "log_gateway", "steady_notifications_per_s"), 0),
    ("(h)(iii) log gateway: delivered / written", "count", ("notify", "log_gateway", "delivered_of_notifications"), 0),
    ("(h)(iii) log gateway: duplicates / failed / suppressed", "count", ("notify", "log_gateway", "anomalies"), 0),
    ("(h)(iii) log gateway: per notify CPU-second", "notif./s", ("notify", "log_gateway", "notifications_per_notify_cpu_s"), 0),
    ("(h)(iii) log gateway: CPU s of the gateway", "s", ("notify", "log_gateway", "cpu_seconds", "gateway-log"), 1),
    ("(h)(iii) log gateway: CPU s of notify / notify-api", "s", ("notify", "log_gateway", "cpu_split"), 0),
)
# After (d) and (e): the replay and the running clocks, measured below the goals' scale.
LATER_ROWS = (
    ("(f) replay: events imported (the run's scale)", "events", ("replay", "events"), 0),
    ("(f) replay: import written in", "s", ("replay", "import_seconds"), 1),
    ("(f) replay: sla caught up, from import start", "s", ("replay", "seconds_to_caught_up"), 1),
    ("(f) replay: last SLA event / repeat out after", "s", ("replay", "seconds_to_last_output"), 1),
    ("(f) replay: events replayed", "events/s", ("replay", "events_per_s"), 0),
    ("(f) replay: events per sla CPU-second", "events/s", ("replay", "events_per_sla_cpu_s"), 0),
    ("(f) replay: 1,000,000 events, extrapolated", "s", ("replay", "projected_seconds_for_1m_events"), 0),
    ("(f) replay: SLA events produced", "count", ("replay", "sla_events"), 0),
    ("(f) replay: breaches among them", "count", ("replay", "breaches"), 0),
    ("(f) replay: repeat contacts produced", "count", ("replay", "repeat_contacts"), 0),
    ("(f) replay: avoidable repeats (sla_breached)", "count", ("replay", "repeat_contacts_by_cause", "sla_breached"), 0),
    ("(f) replay: sla RSS at end", "MB", ("replay", "sla_rss_mb_at_end"), 0),
    ("(k) sla kill -9 and restart: to ready line", "s", ("failover", "restart", "seconds_to_ready_line"), 1),
    ("(k) sla kill -9 and restart: to first output", "s", ("failover", "restart", "seconds_to_first_output"), 1),
    ("(k) sla kill -9, second worker takes over: to first output", "s",
     ("failover", "takeover", "seconds_to_first_output"), 1),
    ("(g) open legs loaded (2 running clocks each)", "legs", ("running_clocks", "legs"), 0),
    ("(g) sla worker took them at", "legs/s", ("running_clocks", "legs_per_s"), 0),
    ("(g) same, per sla CPU-second", "legs/s", ("running_clocks", "legs_per_sla_cpu_s"), 0),
    ("(g) running_clocks gauge before / after load", "clocks", ("running_clocks", "gauge_before_after"), 0),
    ("(g) sla RSS before / after load", "MB", ("running_clocks", "rss_mb_before_after"), 0),
    ("(g) RSS growth per open leg", "bytes", ("running_clocks", "bytes_per_leg"), 0),
    ("(g) RSS growth per running clock", "bytes", ("running_clocks", "bytes_per_clock"), 0),
    ("(g) 1,000,000 clocks, extrapolated", "MB", ("running_clocks", "projected_mb_for_1m_clocks"), 0),
    ("(g) deadline -> breach record (broker ts) p50", "ms", ("running_clocks", "breach", "emitted_p50_ms"), 0),
    ("(g) deadline -> breach record (broker ts) p99", "ms", ("running_clocks", "breach", "emitted_p99_ms"), 0),
    ("(g) deadline -> breach record (broker ts) max", "ms", ("running_clocks", "breach", "emitted_max_ms"), 0),
    ("(g) deadline -> breach read by bench p99", "ms", ("running_clocks", "breach", "arrived_p99_ms"), 0),
    ("(g) breaches received / legs", "count", ("running_clocks", "breach", "received_of_legs"), 0),
    ("(g) restart: SIGTERM to exit", "s", ("running_clocks", "restart", "stop_seconds"), 1),
    ("(g) restart: start to ready line", "s", ("running_clocks", "restart", "ready_seconds"), 1),
    ("(g) restart: start to gauge back", "s", ("running_clocks", "restart", "seconds_to_clocks_back"), 1),
    ("(g) restart: running clocks restored (gauge)", "clocks", ("running_clocks", "restart", "target_gauge"), 0),
    ("(g) restart: 1,000,000 clocks, extrapolated", "s", ("running_clocks", "restart", "projected_seconds_for_1m_clocks"), 0),
    ("load average at start (1, 5, 15 min)", "", ("load_average_at_start",), 2),
    ("load average at end (1, 5, 15 min)", "", ("load_average_at_end",), 2),
)


PIPELINES = (("producer_performance", "ProducerPerformance (raw limit)"),
             ("copy", "aiokafka copy loop (raw limit)"), ("faust_agent", "faust agent, per record"),
             ("faust_take", "faust Stream.take batches"), ("aiokafka_batch", "aiokafka batched loop"),
             ("confluent_transactions", "confluent-kafka transactions"))


def _add_pipeline_rows(table: Table, pipelines: dict) -> None:
    """(i) one row per pipeline variant: end-to-end rate, CPU per record, and whether it checked out."""
    for name, title in PIPELINES:
        if not (figures := pipelines.get(name)):
            continue
        details = []
        if "us_cpu_per_record" in figures:
            details.append(f"{_fmt(figures['us_cpu_per_record'], 0)} µs CPU/record")
        if "broker_cpu_seconds" in figures:
            details.append(f"broker {_fmt(figures['broker_cpu_seconds'], 1)} CPU s")
        if "complete" in figures:
            details.append(f"{_fmt(figures.get('outputs'))} out, all: {_fmt(figures['complete'])}")
        if "checks_pass" in figures:
            details.append(f"each once in outputs and state: {_fmt(figures['checks_pass'])}")
        if "load_average_1m" in figures:
            details.append(f"load {_fmt(figures['load_average_1m'], 1)}")
        table.add_row(f"(i) {title}, {_fmt(pipelines.get('records'))} records",
                      f"{_fmt(figures.get('records_per_s'), 0)} records/s", ", ".join(details))


def _verdict(passed: bool | None) -> str:
    return {True: "bounded", False: "GROWS"}.get(passed, "not measured")


def _add_soak_rows(table: Table, soak: dict) -> None:
    """(l) the load the soak ran, then one row per metric: start -> end and its verdict under its rule."""
    if not soak:
        return
    table.add_row(f"(l) soak: {_fmt(soak.get('load_seconds'), 0)} s of mixed load",
                  f"{_fmt(soak.get('calls_per_s'), 1)} calls/s",
                  f"{_fmt(soak.get('stories'))} stories at {_fmt(soak.get('stories_per_s'), 1)}/s, "
                  f"p99 {_fmt(soak.get('api_p99_ms'), 1)} ms, {_fmt(soak.get('error_count'))} errors, "
                  f"breaches notified {_fmt(soak.get('breaches_notified'))} / {_fmt(soak.get('breaching_legs'))}, "
                  f"settled after {_fmt(soak.get('settled_after_s'), 1)} s")
    for name, metric in (soak.get("metrics") or {}).items():
        detail = (f"highest {_fmt(metric['figure'], 1)} (reported, not judged)" if metric.get("reported") else
                  f"{_verdict(metric['passed'])}: {metric['rule']} (judged on {_fmt(metric['figure'], 1)})")
        table.add_row(f"(l) soak: {name}, start -> end", f"{_fmt(metric['start'], 1)} -> {_fmt(metric['end'], 1)}",
                      detail)
    if "passed" in soak:
        verdicts = [metric["passed"] for metric in soak["metrics"].values() if not metric.get("reported")]
        table.add_row("(l) soak: every metric bounded", _fmt(soak["passed"]),
                      f"{verdicts.count(False)} growing, {verdicts.count(None)} not measured")


def _add_lifecycle_rows(table: Table, lifecycle: dict) -> None:
    """(m) the load, then per service its RSS and changelog bytes in the steady state -> at the end, and the verdict."""
    if not lifecycle:
        return
    table.add_row(f"(m) lifecycle: {_fmt(lifecycle.get('legs'))} legs created, acknowledged, resolved",
                  f"{_fmt(lifecycle.get('events_per_s'), 0)} events/s",
                  f"in {_fmt(lifecycle.get('load_seconds'), 0)} s, retention {_fmt(lifecycle.get('retention_s'))} s, "
                  f"all taken: {_fmt(lifecycle.get('complete'))}")
    for service, verdict in (lifecycle.get("verdicts") or {}).items():
        table.add_row(f"(m) lifecycle: {service} RSS, steady state -> end",
                      f"{_fmt(verdict['rss_mb_steady'], 0)} -> {_fmt(verdict['rss_mb_at_end'], 0)} MB",
                      f"from {_fmt(verdict['steady_state_legs_written'])} legs on; "
                      f"peak {_fmt(verdict['rss_mb_peak'], 0)} MB; changelogs {_fmt(verdict['changelog_mb_steady'], 1)}"
                      f" -> {_fmt(verdict['changelog_mb_at_end'], 1)} MB (peak {_fmt(verdict['changelog_mb_peak'], 1)});"
                      f" {'flat' if verdict['flat'] else 'GROWS'}")
    if "flat" in lifecycle:
        table.add_row("(m) lifecycle: state flat in every service", _fmt(lifecycle["flat"]), "")


# Throughput phases whose CPU per process is measured: (label, unit, path to the phase, what it carried).
CEILINGS = (
    ("(b) sla burst", "events/s", ("sla_burst",), "legs"),
    ("(h)(ii) subscription channel", "notif./s", ("notify", "throughput"), "delivered"),
    ("(h)(iii) log gateway", "notif./s", ("notify", "log_gateway"), "delivered"),
)


# The broker runs on many threads; every other process measured does its work on one (a
# Python thread holding the interpreter) and so cannot use more than one core for it.
MANY_THREADED = frozenset({"kafka"})


def ceiling(cpu_seconds: dict, units: int, cores: int) -> dict | None:
    """What a phase's CPU cost per unit allows: the rate at which it would keep every core of
    the machine busy (no process could go faster at this cost, however the work were shared),
    and the busiest one-threaded process with the rate at which it alone would fill one core.
    Bounds of the machine once it is busy; at a low rate the broker's idle polling inflates
    the cost per unit. None without CPU figures."""
    spent = {name: seconds for name, seconds in cpu_seconds.items() if seconds}
    one_threaded = {name: seconds for name, seconds in spent.items() if name not in MANY_THREADED}
    if not one_threaded or not units:
        return None
    busiest = max(one_threaded, key=one_threaded.get)
    return {"all_cores_per_s": cores * units / sum(spent.values()), "busiest": busiest,
            "busiest_core_per_s": units / spent[busiest]}


def _add_ceiling_rows(table: Table, results: dict, cores: int) -> None:
    """For each throughput phase: the rates its measured CPU per unit allows on this machine."""
    for label, unit, path, carried in CEILINGS:
        phase = _get(results, *path) or {}
        found = ceiling(phase.get("cpu_seconds") or {}, phase.get(carried) or 0, cores)
        if found:
            _add_ceiling_row(table, f"{label}: at its CPU per unit, all {cores} cores", found, unit)


def _add_ceiling_row(table: Table, label: str, found: dict, unit: str) -> None:
    table.add_row(f"{label} / {found['busiest']}'s core full at",
                  f"{_fmt(found['all_cores_per_s'], 0)} / {_fmt(found['busiest_core_per_s'], 0)}", unit)


def print_table(doc: dict, console: Console | None = None) -> None:
    console = console or Console()
    results = doc["results"]
    cores = doc["machine"]["cores"] or 1
    table = Table(title=f"handoff bench {doc['date']} — {doc['machine']['cores']} cores, "
                        f"Python {doc['machine']['python']}"
                        f"{', sla hot path compiled' if doc['machine'].get('compiled_hot_path') else ''}, {doc['runtime_s']} s")
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_column("unit")
    for label, unit, path, digits in ROWS:
        table.add_row(label, _fmt(_get(results, *path), digits), unit)
    for level in results.get("handoff_api") or ():
        name = f"(d) CreateHandoff, {level['replicas']} replica(s), concurrency {level['concurrency']}"
        errors = sum(level["errors"].values())
        table.add_row(name, f"{_fmt(level['calls_per_s'], 0)} calls/s", f"p50 {_fmt(level['p50_ms'], 1)} ms, "
                      f"p99 {_fmt(level['p99_ms'], 1)} ms, {level['calls']} calls, {errors} errors")
        if per_call := {name: ms for name, ms in (level.get("cpu_ms_per_call") or {}).items() if ms}:
            table.add_row("    CPU per call, all processes", f"{_fmt(sum(per_call.values()), 2)} ms",
                          ", ".join(f"{name} {_fmt(ms, 2)}" for name, ms in sorted(per_call.items(), key=lambda x: -x[1])))
            if found := ceiling(per_call, 1000, cores):
                _add_ceiling_row(table, "    at its CPU per call, all cores", found, "calls/s")
    _add_ceiling_rows(table, results, cores)
    _add_soak_rows(table, results.get("soak") or {})
    _add_lifecycle_rows(table, results.get("lifecycle") or {})
    if imported := results.get("import"):
        table.add_row("(e) historical import", f"{_fmt(imported.get('rows'), 0)} rows in "
                      f"{_fmt(imported.get('seconds'), 1)} s", f"{_fmt(imported.get('events_per_s'), 0)} events/s")
    _add_pipeline_rows(table, results.get("pipelines") or {})
    for label, unit, path, digits in LATER_ROWS:
        table.add_row(label, _fmt(_get(results, *path), digits), unit)
    console.print(table)
    for service, errors in (results.get("service_log_errors") or {}).items():
        if errors["error_lines"]:
            console.print(f"[yellow]{service} log: {errors['error_lines']} error line(s); first: {errors['first']}[/]")
    if doc.get("error"):
        console.print(f"[red]run ended early: {doc['error']}[/red]")
