"""The sla service's metrics (DESIGN.md section 11)."""

from prometheus_client import Counter, Gauge, Histogram

CLOCKS_STARTED = Counter(
    "handoff_sla_clocks_started_total", "SLA clocks started, by department, priority and clock.",
    ["department", "priority", "clock"],
)
WARNINGS = Counter(
    "handoff_sla_warnings_total", "SLA warnings (a fraction of a target passed), by department, priority and clock.",
    ["department", "priority", "clock"],
)
BREACHES = Counter(
    "handoff_sla_breaches_total", "SLA clocks breached, by department, priority and clock.",
    ["department", "priority", "clock"],
)
MET = Counter(
    "handoff_sla_met_total", "SLA clocks stopped, by department, priority, clock and outcome (in_time, late).",
    ["department", "priority", "clock", "outcome"],
)
TIME_TO_ACKNOWLEDGE = Histogram(
    "handoff_time_to_acknowledge_seconds", "Business time from a leg's creation to its acknowledgement.",
    ["department", "priority"],
    buckets=(1, 5, 30, 60, 300, 900, 1800, 3600, 4 * 3600, 8 * 3600, 86400, 3 * 86400),
)
RUNNING_CLOCKS = Gauge("handoff_sla_running_clocks", "SLA clocks this worker is timing.")
BREACH_LAG = Histogram(
    "handoff_sla_breach_emit_lag_seconds", "Time from a deadline to its breach being emitted.",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
UNCOVERED_LEGS = Counter(
    "handoff_sla_uncovered_legs_total", "Legs for which no SLA policy matched, by department.", ["department"]
)
