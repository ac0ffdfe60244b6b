"""What the bench runs with: its parameters (each a --flag) and the SLA policy it writes.

Defaults are sized for a 2-core machine and a run of a few minutes; every loop in the
bench is bounded by a count from here and by a time limit. The policy gives this run's
latency departments a short ack target, the running-clocks department targets weeks
ahead, and everything else a long one, so nothing else breaches during the run.
"""

from __future__ import annotations

import argparse
from dataclasses import asdict, dataclass
from pathlib import Path


@dataclass(frozen=True)
class Parameters:
    perf_records: int = 300_000
    record_size: int = 200
    copy_records: int = 200_000
    copy_time_limit_s: float = 60.0
    burst_legs: int = 100_000
    burst_time_limit_s: float = 120.0
    latency_departments: int = 2
    streams_per_department: int = 2
    latency_legs: int = 80
    latency_ack_s: int = 3
    latency_spread_s: float = 4.0
    latency_grace_s: float = 20.0
    api_calls: int = 3000
    api_time_limit_s: float = 20.0
    api_concurrency: tuple[int, ...] = (1, 16, 64)
    import_rows: int = 1_000_000
    # (f) replay on event time; (g) open legs (two running clocks each) in one sla worker.
    replay_events: int = 1_000_000
    replay_time_limit_s: float = 900.0
    running_legs: int = 500_000  # 1,000,000 running clocks (ack and resolve each)
    clocks_load_time_limit_s: float = 900.0
    # A p99 of 100 samples is their maximum: 1,000 breaches make it a percentile.
    clocks_breach_legs: int = 1000
    clocks_breach_ack_s: int = 3
    clocks_breach_spread_s: float = 10.0
    clocks_breach_grace_s: float = 20.0
    recovery_time_limit_s: float = 180.0
    # (h) notify: (i) departments x streams Subscribe streams open while legs breach;
    # (ii) breaches written straight to sla.events.v1 over a few hundred departments;
    # (iii) the same through the log gateway (0: skip it, and do not start the gateway).
    notify_departments: int = 50
    notify_streams_per_department: int = 2
    # 20 legs/s (the subscribers are what is measured, not the rate), each to 2 streams, for
    # 20 s: 800 deliveries, so the p99 is not one slow batch's (over 200 it is the second highest)
    notify_latency_legs: int = 400
    notify_latency_spread_s: float = 20.0
    notify_latency_grace_s: float = 30.0
    notify_settle_s: float = 5.0
    notify_breaches: int = 20_000
    notify_breach_departments: int = 300
    notify_time_limit_s: float = 180.0
    notify_drain_limit_s: float = 60.0
    notify_log_breaches: int = 20_000
    notify_log_time_limit_s: float = 90.0
    # (i) one minimal pipeline four ways (faust per record and take, aiokafka, transactions).
    pipeline_records: int = 100_000
    pipeline_keys: int = 5000  # distinct customer_refs in the input
    pipeline_time_limit_s: float = 300.0  # per variant, after its first record
    # (l) soak: a steady mixed load (about 5.5 API calls per story, one story in four a leg
    # left to breach) for soak_seconds, sampled every soak_sample_s.
    soak_seconds: float = 600.0
    soak_stories_per_s: float = 4.0
    soak_sample_s: float = 30.0
    soak_breach_departments: int = 2
    soak_breach_ack_s: int = 3
    soak_breach_grace_s: float = 20.0
    soak_drain_limit_s: float = 60.0
    soak_retention_s: int = 180  # sla's repeat window and read-model history, notify's retention, during the soak
    # (m) lifecycle: legs created, acknowledged and resolved, written in chunks paced by the
    # readers, past a compressed retention; changelogs roll (and keep tombstones) every segment_s.
    lifecycle_legs: int = 1_000_000
    lifecycle_chunk_legs: int = 20_000
    lifecycle_lag_records: int = 60_000  # the next chunk waits until sla and notify are this close
    lifecycle_retention_s: int = 90
    lifecycle_segment_s: int = 30
    lifecycle_time_limit_s: float = 2400.0
    # Phases to run, comma-separated letters (a-m; "notify" is h, "soak" is l, "lifecycle" is m); empty: all.
    only: str = ""
    # Where the results go; empty: bench/results.json for a run of every phase, and
    # bench/results-partial.json with --only, which leaves the full run's file as it was.
    results: str = ""


_ALIASES = {"notify": "h", "soak": "l", "lifecycle": "m"}
BENCH_DIR = Path(__file__).resolve().parent
RESULTS_FILE = BENCH_DIR / "results.json"
PARTIAL_RESULTS_FILE = BENCH_DIR / "results-partial.json"
_RESULTS_HELP = (f"where the results go (default: {RESULTS_FILE.relative_to(BENCH_DIR.parent)} for a run of every "
                 f"phase, {PARTIAL_RESULTS_FILE.relative_to(BENCH_DIR.parent)} with --only: a partial run leaves the "
                 "full run's file as it was)")
PHASES = tuple("abcdefghiklm")
_ONLY_HELP = ("phases to run, comma-separated: letters among " + ", ".join(PHASES)
              + " (or notify, soak, lifecycle); e.g. --only a,b. Default: every phase")


def parse_args(argv: list[str] | None) -> Parameters:
    defaults = Parameters()
    parser = argparse.ArgumentParser(prog="python -m bench.run", description="Benchmarks of the handoff stack.")
    for name, value in asdict(defaults).items():
        flag = f"--{name.replace('_', '-')}"
        if name == "only":
            parser.add_argument(flag, default=value, help=_ONLY_HELP)
        elif name == "results":
            parser.add_argument(flag, default=value, metavar="PATH", help=_RESULTS_HELP)
        elif isinstance(value, tuple):
            parser.add_argument(flag, type=int, nargs="+", default=list(value), help="(default: %(default)s)")
        else:
            parser.add_argument(flag, type=type(value), default=value, help="(default: %(default)s)")
    values = vars(parser.parse_args(argv))
    unknown = sorted(set(_only_names(values["only"])) - set(PHASES) - set(_ALIASES))
    if unknown:
        parser.error(f"--only: no phase named {', '.join(map(repr, unknown))}; {_ONLY_HELP}")
    return Parameters(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


def _only_names(only: str) -> list[str]:
    return [name.strip().lower() for name in only.split(",") if name.strip()]


def results_path(params: Parameters) -> Path:
    """Where this run's results go: --results, else the full run's file or, with --only, the partial one."""
    if params.results:
        return Path(params.results)
    return PARTIAL_RESULTS_FILE if _only_names(params.only) else RESULTS_FILE


def runs(params: Parameters, phase: str) -> bool:
    """Whether `phase` (a letter among PHASES) is among those --only names (all when it names none)."""
    wanted = _only_names(params.only)
    return not wanted or phase in {_ALIASES.get(name, name) for name in wanted}


def write_departments(path: Path, names: list[str]) -> Path:
    """A departments file listing `names` (the bench's own departments), for handoff's DEPARTMENTS_FILE."""
    entries = "".join(f"  - {{name: {name}, display_name: {name}, cost_centre: CC-BENCH}}\n" for name in names)
    path.write_text("departments:\n" + entries)
    return path


def write_policy(path: Path, targets: dict[str, tuple[str, str]]) -> Path:
    """24x7 everywhere; `targets` maps a department ("*": any other) to its (ack, resolve) targets."""
    lines = ["calendars:", "  always:", "    hours: 24x7", "defaults:", "  calendar: always", "policies:"]
    for department, (ack, resolve) in targets.items():
        lines += [f'  - department: "{department}"', '    priority: "*"', f"    ack: {ack}", f"    resolve: {resolve}"]
    path.write_text("\n".join(lines) + "\n")
    return path

