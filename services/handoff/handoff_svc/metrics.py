"""The handoff service's metrics (DESIGN.md section 11)."""

from prometheus_client import Counter, Gauge

LEGS_CREATED = Counter(
    "handoff_legs_created_total", "Legs opened, by department and priority.", ["department", "priority"]
)
KNOWN_LEGS = Gauge("handoff_known_legs", "Legs held by this replica's read model.")
