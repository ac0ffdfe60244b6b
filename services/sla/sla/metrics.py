"""The sla service's metrics (listed with every service's in the README)."""

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
TIME_TO_RESOLVE = Histogram(
    "handoff_time_to_resolve_seconds", "Business time a resolve clock ran, from its start to its stop.",
    ["department", "priority"],
    buckets=(60, 900, 3600, 4 * 3600, 8 * 3600, 86400, 2 * 86400, 3 * 86400, 5 * 86400, 10 * 86400, 30 * 86400),
)
RUNNING_CLOCKS = Gauge("handoff_sla_running_clocks", "SLA clocks running on the partitions this worker owns.")
BREACH_LAG = Histogram(
    "handoff_sla_breach_emit_lag_seconds",
    "Time from a deadline to its breach being emitted (on the worker's clock: wall or event time).",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
UNCOVERED_LEGS = Counter(
    "handoff_sla_uncovered_legs_total", "Legs for which no SLA policy matched, by department.", ["department"]
)
REPEAT_CONTACTS = Counter(
    "handoff_repeat_contacts_total", "Repeat contacts, by the department they are attributed to, cause and channel.",
    ["department", "cause", "channel"],
)
FAILURE_DEMAND_COST = Counter(
    "handoff_failure_demand_cost_total",
    "Cost of avoidable repeat contacts (cause sla_breached) in major units of the currency, by department.",
    ["department", "channel", "currency"],
)
CONTACTS_SEEN = Counter("handoff_sla_contacts_total", "Contacts the sla service examined for repeats, by channel.", ["channel"])
EVENT_TIME_LAG = Gauge(
    "handoff_sla_event_time_lag_seconds", "Wall time minus the worker's clock (0 on wall time; the replay's distance on event time).",
)
