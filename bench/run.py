"""`python -m bench.run`: start a stack of our own, measure (a) to (m), print and save.

Kafka starts first and the raw limits (a) are measured before the services exist, so the
ceiling is not lowered by their idle polling. Then the services start and (c) runs before
(b): the burst leaves work behind in notify and the handoff leg feed that would otherwise
delay the breach notifications; notify's own phase (h) follows (c) for the same reason
and waits until notify has read back what it wrote. (g) runs on the sla worker alone
(handoff and notify would spend the CPU on the same legs), (e) and the pipelines (i) on the
broker alone. The soak (l) is the last phase with API load on the whole stack, after (d): its ten
minutes of legs, contacts and notifications would otherwise sit in the services' state
while (c), (h) and (d) measure, and it must be the only load while it watches memory,
descriptors, lag and latency; it resolves every leg it opens and waits for the consumer
groups to catch up. The lifecycle (m) follows it, a million legs written straight to
handoff.events.v1 and read by all three services, and waits until each leg has passed its
retention, so the sla phases after it start on a quiet worker. The replay (f)
needs topics and a consumer group that hold nothing else, so it gets a broker and an sla
worker of its own, started after the first stack has stopped (one JVM at a time on a
small machine).
Everything started here is stopped in a `finally`, also on Ctrl-C or SIGTERM; a failed run
keeps its work directory (service and broker logs). `--only c,h` runs some phases only, and
writes bench/results-partial.json: the full run's bench/results.json stays as it was.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import tempfile
import time
import traceback
from dataclasses import asdict
from pathlib import Path

from rich.console import Console

from bench import report
from bench.clocks import measure_clocks
from bench.cpu import metered
from bench.handoffapi import create_load, warm_up
from bench.importbench import import_rate
from bench.latency import breach_latency
from bench.lifecycle import measure_lifecycle
from bench.notifybench import ROUTING_WITH_LOG, latency_departments, measure_notify
from bench.notifybench import derive as derive_notify
from bench.params import Parameters, parse_args, results_path, runs, write_departments, write_policy
from bench.pipelinebench import measure_pipelines
from bench.rawkafka import copy_loop, create_bench_topics, delete_bench_topics, prefill, producer_performance
from bench.replay import POLICY_FILE, replay, write_replay_history
from bench.failover import measure_failover
from bench.slaburst import burst
from bench.soak import measure_soak, soak_departments
from devstack.routing import BREACHES_TO_DEPARTMENTS, write_routing
from devstack.stack import SERVICES, Stack


def _raise_interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def _note_load(results: dict, phase: str) -> None:
    """The 1-minute load average as a phase starts: others may share this machine."""
    results.setdefault("load_average_1m_by_phase", {})[phase] = round(os.getloadavg()[0], 2)


def measure(stack: Stack, params: Parameters, run_id: str, departments: list[str], console: Console,
            results: dict) -> None:
    """Fill `results` phase by phase, so a failure still leaves what was measured."""
    _note_load(results, "a")
    with console.status("starting Kafka..."):
        stack.start_kafka()
    bootstrap = stack.bootstrap
    perf_topic, source, sink = (f"bench.{run_id}.{name}" for name in ("perf", "source", "sink"))
    create_bench_topics(bootstrap, [perf_topic, source, sink])
    if runs(params, "a"):
        raw = results["raw"] = {}
        with console.status("(a)(i) ProducerPerformance..."):
            raw["producer_performance"] = producer_performance(bootstrap, perf_topic, params.perf_records,
                                                               params.record_size, stack.workdir)
        with console.status("(a)(ii) pre-filling the copy source..."):
            raw["prefill"] = asyncio.run(prefill(bootstrap, source, params.copy_records, params.record_size))
        with console.status("(a)(ii) aiokafka copy loop..."):
            raw["copy"] = asyncio.run(copy_loop(bootstrap, source, sink, params.copy_records,
                                                params.copy_time_limit_s))
    with console.status("starting the services..."):
        if _logs_through_gateway(params):  # before notify, which is told the gateway's address
            stack.start_gateway("log")
        for name, _module in SERVICES:
            stack.start_service(name)
    if runs(params, "c"):
        _note_load(results, "c")
        with console.status(f"(c) {params.latency_legs} legs left to breach..."):
            results["latency"] = asyncio.run(breach_latency(
                stack.services["handoff"].grpc, stack.services["notify"].grpc, departments,
                params.streams_per_department, params.latency_legs, params.latency_ack_s, params.latency_spread_s,
                params.latency_grace_s, run_id, f"bench-{run_id}-burst"))
        stack.check_alive()
    if runs(params, "h"):
        _note_load(results, "h")
        with console.status("(h) notify...") as status:
            measure_notify(stack, params, run_id, latency_departments(run_id, params.notify_departments),
                           results.setdefault("notify", {}), lambda text: status.update(f"{text}..."))
    if runs(params, "d"):
        _measure_api(stack, params, run_id, console, results)
    if runs(params, "l"):
        _note_load(results, "l")
        with console.status(f"(l) soak: {params.soak_seconds:.0f} s of steady mixed load..."):
            measure_soak(stack, params, run_id, results.setdefault("soak", {}))
        stack.check_alive()
    if runs(params, "m"):
        _note_load(results, "m")
        with console.status(f"(m) lifecycle of {params.lifecycle_legs:,} legs...") as status:
            measure_lifecycle(stack, params, run_id, f"bench-{run_id}-lifecycle", results.setdefault("lifecycle", {}),
                              lambda text: status.update(f"(m) {text}..."))
        stack.check_alive()
    for name in ("notify", "handoff"):
        stack.services.pop(name).stop()
    if runs(params, "b") or runs(params, "g") or runs(params, "k"):
        # (b) and (g) measure one sla worker: without the SlaService read model, which a
        # production deployment can run apart (SLA_ROLE=api), and with nothing else on its cores.
        with console.status("restarting sla as a worker alone..."):
            stack.services.pop("sla").stop()
            stack.start_service("sla", env={"SLA_ROLE": "worker"})
    if runs(params, "b"):
        _measure_burst(stack, params, run_id, console, results)
    if runs(params, "k"):
        _note_load(results, "k")
        with console.status("(k) killing the sla worker: restart, then takeover by a second worker..."):
            results["failover"] = measure_failover(stack, f"bench-{run_id}-failover", run_id)
        stack.check_alive()
    if runs(params, "g"):
        _note_load(results, "g")
        with console.status(f"(g) {params.running_legs:,} open legs into one sla worker...") as status:
            measure_clocks(stack, params, run_id, f"bench-{run_id}-clocks", f"bench-{run_id}-due",
                           results.setdefault("running_clocks", {}), lambda text: status.update(f"(g) {text}..."))
        stack.check_alive()
    # The import runs on the broker alone: with the services up, they would replay it meanwhile.
    for name in reversed(list(stack.services)):
        stack.services.pop(name).stop()
    if runs(params, "e"):
        _note_load(results, "e")
        (stack.workdir / "import").mkdir(exist_ok=True)
        with console.status(f"(e) importing {params.import_rows:,} generated rows..."):
            results["import"] = asyncio.run(import_rate(bootstrap, params.import_rows, stack.workdir / "import"))
    if runs(params, "i"):  # child processes on the broker alone, like (e)
        _note_load(results, "i")
        with console.status("(i) pipelines...") as status:
            measure_pipelines(bootstrap, params.pipeline_records, params.pipeline_keys, params.pipeline_time_limit_s,
                              stack.workdir / "pipelines", run_id, stack.kafka.pid if stack.kafka else None,
                              results.setdefault("pipelines", {}), lambda text: status.update(f"(i) {text}..."))


def _logs_through_gateway(params: Parameters) -> bool:
    return runs(params, "h") and params.notify_log_breaches > 0


def _measure_api(stack: Stack, params: Parameters, run_id: str, console: Console, results: dict) -> None:
    """(d) CreateHandoff calls/s on one replica, then on two, with each process's CPU per call."""
    api_department = f"bench-{run_id}-api"
    api = results["handoff_api"] = []
    address = stack.services["handoff"].grpc
    asyncio.run(warm_up(address, api_department))

    def level(addresses: list[str], concurrency: int) -> dict:
        with console.status(f"(d) CreateHandoff, {len(addresses)} replica(s), concurrency {concurrency}..."):
            measured = metered(stack, lambda: asyncio.run(create_load(
                addresses, concurrency, params.api_calls, params.api_time_limit_s, api_department)))
        calls = measured["calls"]
        measured["cpu_ms_per_call"] = {name: round(seconds * 1000 / calls, 3) if calls else None
                                       for name, seconds in measured["cpu_seconds"].items()}
        return measured

    for concurrency in params.api_concurrency:
        api.append(level([address], concurrency))
    with console.status("(d) starting a second handoff replica..."):
        second = stack.start_service("handoff", instance="handoff-2")
        asyncio.run(warm_up(second.grpc, api_department))
    for concurrency in params.api_concurrency:
        api.append(level([address, second.grpc], concurrency))
    stack.services.pop("handoff-2").stop()
    stack.check_alive()


def _measure_burst(stack: Stack, params: Parameters, run_id: str, console: Console, results: dict) -> None:
    """(b) the sla worker's pace on a burst of created legs, with the CPU each process spent."""
    _note_load(results, "b")
    with console.status(f"(b) burst of {params.burst_legs} legs through sla..."):
        results["sla_burst"] = metered(stack, lambda: burst(stack.bootstrap, f"bench-{run_id}-burst", params.burst_legs,
                                                            run_id, params.burst_time_limit_s))
    stack.check_alive()


def measure_replay(params: Parameters, workdir: Path, external: str | None, run_id: str, console: Console,
                   results: dict) -> None:
    """(f) on a broker and an sla worker (event time) of its own, stopped afterwards."""
    if not runs(params, "f"):
        return
    if external:
        # A shared broker's topics hold every earlier phase's records, which the worker would replay too.
        results["replay"] = {"skipped": "needs a broker of its own; not run with KAFKA_BOOTSTRAP"}
        return
    with console.status(f"(f) generating about {params.replay_events:,} events of history..."):
        handoffs, contacts = write_replay_history(workdir / "history", params.replay_events, f"r{run_id}")
    stack = Stack(workdir / "replay", POLICY_FILE, env={"SLA_CLOCK": "event"})
    try:
        with console.status("(f) starting a broker and an sla worker on event time..."):
            stack.start_kafka()
            # One worker, as in (b) and (g): the SlaService read model runs apart in production.
            stack.start_service("sla", env={"SLA_ROLE": "worker"})
        _note_load(results, "f")
        with console.status("(f) importing the history and waiting for the sla worker to replay it..."):
            results["replay"] = replay(stack, handoffs, contacts, params.replay_time_limit_s)
        stack.check_alive()
    finally:
        with console.status("(f) stopping the replay's broker and worker..."):
            stack.stop()


def _derive(results: dict) -> None:
    """Figures computed from measured ones (ratios, counts as text)."""
    sla, copy, latency = results.get("sla_burst"), results.get("raw", {}).get("copy"), results.get("latency")
    if sla:
        sla["received_of_legs"] = f"{sla['clock_started_received']} / {sla['legs']}"
        if copy and copy["records_per_s"]:
            sla["ratio_to_copy"] = sla["events_per_s"] / copy["records_per_s"]
        if sla_cpu := sla.get("cpu_seconds", {}).get("sla"):
            sla["events_per_sla_cpu_s"] = sla["clock_started_received"] / sla_cpu
            if copy and copy.get("records_per_cpu_s"):
                sla["cpu_ratio_to_copy"] = sla["events_per_sla_cpu_s"] / copy["records_per_cpu_s"]
    if latency:
        latency["received_of_expected"] = f"{latency['received']} / {latency['expected']}"
    clocks = results.get("running_clocks") or {}
    if "gauge_after" in clocks:
        clocks["gauge_before_after"] = f"{clocks['gauge_before']:,} / {clocks['gauge_after']:,}"
        clocks["rss_mb_before_after"] = f"{clocks['rss_mb_before']:,.0f} / {clocks['rss_mb_after']:,.0f}"
    if breach := clocks.get("breach"):
        breach["received_of_legs"] = f"{breach['received']} / {breach['legs']}"
    derive_notify(results.get("notify") or {})


def _log_errors(workdir: Path) -> dict:
    """Error lines per service log: a batch can fail and be retried while its process stays up."""
    found = {}
    for prefix, logs in (("", workdir / "logs"), ("replay-", workdir / "replay" / "logs")):
        for log in sorted(logs.glob("*.log")):
            lines = [line for line in log.read_text(errors="replace").splitlines()
                     if '"level": "error"' in line or "Crashed" in line or "Traceback" in line]
            found[prefix + log.stem] = {"error_lines": len(lines), "first": lines[0][:300] if lines else None}
    return found


def main(argv: list[str] | None = None) -> int:
    params = parse_args(argv)
    signal.signal(signal.SIGTERM, _raise_interrupt)  # stop children as Ctrl-C does
    console = Console(highlight=False)
    started = time.monotonic()
    run_id = f"{int(time.time()):x}"
    workdir = Path(tempfile.mkdtemp(prefix="handoff-bench-"))
    external = os.environ.get("KAFKA_BOOTSTRAP") or None
    departments = [f"bench-{run_id}-lat{n}" for n in range(params.latency_departments)]
    soaked, soak_breaching = soak_departments(run_id, params.soak_breach_departments)
    short = departments + latency_departments(run_id, params.notify_departments)
    policy = write_policy(workdir / "sla-policies.yaml", {
        **{department: (f"{params.latency_ack_s}s", "1h") for department in short},
        **{department: (f"{params.soak_breach_ack_s}s", "1h") for department in soak_breaching},
        f"bench-{run_id}-due": (f"{params.clocks_breach_ack_s}s", "1h"),
        f"bench-{run_id}-clocks": ("30d", "60d"),  # open for the whole run: running clocks
        "*": ("1d", "5d"),  # the burst and the rest: nothing else may breach during the run
    })
    routing = ROUTING_WITH_LOG if _logs_through_gateway(params) else BREACHES_TO_DEPARTMENTS
    # handoff accepts only the departments of its file: the bench's are its own.
    named = [*short, soaked, *soak_breaching,
             *(f"bench-{run_id}-{name}" for name in ("burst", "api", "due", "clocks", "failover", "lifecycle"))]
    departments_file = write_departments(workdir / "departments.yaml", named)
    stack = Stack(workdir, policy, external, routing_file=write_routing(workdir / "routing.yaml", routing),
                  env={"DEPARTMENTS_FILE": str(departments_file)})
    results: dict = {"load_average_at_start": [round(load, 2) for load in os.getloadavg()]}
    error = None
    try:
        try:
            measure(stack, params, run_id, departments, console, results)
        finally:
            with console.status("stopping everything the bench started..."):
                if external:
                    delete_bench_topics(external, [f"bench.{run_id}.{n}" for n in ("perf", "source", "sink")])
                stack.stop()
        measure_replay(params, workdir, external, run_id, console, results)
    except KeyboardInterrupt:
        error = "interrupted"
    except Exception as failure:  # reported with what was measured so far
        error = f"{type(failure).__name__}: {failure}"
        console.print(traceback.format_exc())
    results["load_average_at_end"] = [round(load, 2) for load in os.getloadavg()]
    _derive(results)
    results["service_log_errors"] = _log_errors(workdir)
    parameters = {**asdict(params), "run_id": run_id, "external_kafka": bool(external),
                  "latency_department_names": departments}
    doc = report.document(parameters, results, time.monotonic() - started, error)
    path = report.write(doc, results_path(params))
    report.print_table(doc, console)
    console.print(f"results: {path}")
    if error:
        console.print(f"work directory kept for its logs: {workdir}")
        return 1
    shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
