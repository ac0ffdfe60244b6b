"""The handoff service's metrics: `handoff_` names, base units, bounded labels (never an id)."""

from prometheus_client import REGISTRY, Counter, Gauge
from prometheus_client.core import GaugeMetricFamily

from handoff_svc.domain.legs import UNRESOLVED

LEGS_CREATED = Counter(
    "handoff_legs_created_total", "Legs opened, by department and priority.", ["department", "priority"]
)
LEG_CHANGES = Counter(
    "handoff_leg_changes_total", "Changes to legs, by department and change (acknowledged, resolved, ...).",
    ["department", "change"],
)
KNOWN_LEGS = Gauge("handoff_known_legs", "Legs held by this replica's read model.")
CONTACTS_RECORDED = Counter("handoff_contacts_recorded_total", "Contacts recorded, by channel.", ["channel"])
COMMANDS = Counter(
    "handoff_owner_commands_total",
    "Commands this replica's owner took: from the command topic (topic), handed over by its own edge (local), "
    "or handed over and sent on to the partition's new owner (forwarded).",
    ["route"],
)


class _OpenLegs:
    """Counts unresolved legs per department at scrape time, from the read model."""

    def __init__(self, store) -> None:
        self._store = store

    def collect(self):
        family = GaugeMetricFamily(
            "handoff_open_legs", "Unresolved legs, by department (this replica's read model).", labels=["department"]
        )
        counts: dict[str, int] = {}
        for leg in self._store.legs():
            if leg.status in UNRESOLVED:
                counts[leg.department] = counts.get(leg.department, 0) + 1
        for department, count in sorted(counts.items()):
            family.add_metric([department], count)
        yield family


def watch_open_legs(store) -> None:
    """Publish handoff_open_legs computed from `store` on every scrape."""
    REGISTRY.register(_OpenLegs(store))
