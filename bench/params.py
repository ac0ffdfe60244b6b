"""What the bench runs with: its parameters (each a --flag) and the SLA policy it writes.

Defaults are sized for a 2-core machine and a run of a few minutes; every loop in the
bench is bounded by a count from here and by a time limit. The policy gives this run's
latency departments a short ack target and everything else a long one, so the burst and
any other department never breach during the run.
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
    burst_legs: int = 30_000
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


def parse_args(argv: list[str] | None) -> Parameters:
    defaults = Parameters()
    parser = argparse.ArgumentParser(prog="python -m bench.run", description="Benchmarks of the handoff stack.")
    for name, value in asdict(defaults).items():
        if isinstance(value, tuple):
            parser.add_argument(f"--{name.replace('_', '-')}", type=int, nargs="+", default=list(value))
        else:
            parser.add_argument(f"--{name.replace('_', '-')}", type=type(value), default=value)
    values = vars(parser.parse_args(argv))
    return Parameters(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})


def write_policy(path: Path, latency_departments: list[str], burst_department: str, ack_s: int) -> Path:
    """24x7 everywhere; a short ack target only for this run's latency departments."""
    lines = ["calendars:", "  always:", "    hours: 24x7", "defaults:", "  calendar: always", "policies:"]
    for department in latency_departments:
        lines += [f"  - department: {department}", '    priority: "*"', f"    ack: {ack_s}s", "    resolve: 1h"]
    for department in (burst_department, "*"):  # long targets: nothing else may breach during the run
        lines += [f'  - department: "{department}"', '    priority: "*"', "    ack: 1d", "    resolve: 5d"]
    path.write_text("\n".join(lines) + "\n")
    return path
