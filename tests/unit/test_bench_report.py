"""What the bench table derives from a phase's measured CPU: the rates the machine allows."""

from __future__ import annotations

import json

import pytest
from rich.console import Console

from bench.report import ceiling, print_table


def test_the_ceiling_is_where_the_cost_fills_every_core_and_where_the_busiest_python_process_fills_one() -> None:
    # given a phase that carried 20,000 notifications on 2 cores, its CPU seconds by process
    cpu = {"notify": 5.0, "notify-api": 2.0, "kafka": 8.0, "bench": 1.0, "gateway-log": 0.0}
    # when its ceiling is taken
    found = ceiling(cpu, 20_000, cores=2)
    # then 16 CPU-seconds for 20,000 fill two cores at 2,500/s, and notify, the busiest process
    # that works on one thread (not the broker, which has many), fills its core at 4,000/s
    assert found == {"all_cores_per_s": pytest.approx(2_500), "busiest": "notify",
                     "busiest_core_per_s": pytest.approx(4_000)}


def test_no_ceiling_without_cpu_figures() -> None:
    # given phases that measured no CPU, or nothing carried, or only the broker's
    # then there is no ceiling to tell
    assert ceiling({}, 100, cores=2) is None
    assert ceiling({"sla": 1.0}, 0, cores=2) is None
    assert ceiling({"kafka": 3.0}, 100, cores=2) is None


def test_the_table_prints_each_phase_ceiling_from_the_results_document() -> None:
    # given a results document with a burst and a CreateHandoff level
    doc = {"date": "2026-12-06T00:00:00+00:00", "runtime_s": 1.0, "error": None,
           "machine": {"cores": 2, "python": "3.11.7"},
           "results": {"sla_burst": {"legs": 100_000, "cpu_seconds": {"sla": 20.0, "kafka": 5.0}},
                       "handoff_api": [{"replicas": 1, "concurrency": 64, "calls": 3000, "calls_per_s": 400.0,
                                        "p50_ms": 1.0, "p99_ms": 2.0, "errors": {},
                                        "cpu_ms_per_call": {"handoff": 2.0, "kafka": 2.0}}]}}
    console = Console(width=250, record=True)
    # when the table is printed
    print_table(json.loads(json.dumps(doc)), console)
    text = console.export_text()
    # then the burst's ceiling reads 8,000 events/s on both cores, 5,000 on sla's one core
    assert "(b) sla burst: at its CPU per unit, all 2 cores / sla's core full at" in text
    assert "8,000 / 5,000" in text
    # and the CreateHandoff level's reads 500 calls/s on both cores, 500 on handoff's one core
    assert "500 / 500" in text


def test_the_latency_phase_shows_how_much_of_the_brokers_cpu_went_to_its_jit_compiler() -> None:
    # given (h)(i)'s figures as measured: the broker's CPU and its compiler threads' share of it
    from bench.notifybench import derive

    notify = {"latency": {"received": 800, "expected": 800, "cpu_seconds": {"kafka": 24.68, "sla": 5.5},
                          "kafka_jit_cpu_seconds": 7.18}}
    # when the figures are derived and printed
    derive(notify)
    doc = {"date": "2026-12-07T00:00:00+00:00", "runtime_s": 1.0, "error": None,
           "machine": {"cores": 2, "python": "3.11.7"}, "results": {"notify": notify}}
    console = Console(width=250, record=True)
    print_table(json.loads(json.dumps(doc)), console)
    # then the row carries both, the whole first
    assert notify["latency"]["kafka_cpu_and_jit"] == [24.68, 7.18]
    row = next(line for line in console.export_text().splitlines() if "of which its JIT compiler" in line)
    assert "24.7, 7.2" in row
