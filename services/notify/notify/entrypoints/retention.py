"""Bounded state: each of notify's table entries is forgotten a retention period after it
is finished (README, "Retention").

An entry is *finished* when nothing that may still come needs more of it than the dedup of
its id: a delivery's outcome, an ended leg (with the ids requested about it), an
acknowledged escalation, an emptied group. At the end of each batch (`stamp`) every finished entry the batch wrote gets
a forget instant, wall time plus the retention, in its store header: the engine's timers,
which the engine indexes when the batch is committed and again from the changelog after an
assignment (no scan of notify's own). When the instant comes (`forget`) the entry is
deleted, and the engine writes its tombstone in that batch's transaction. Any later write
of an entry (a late breach on an ended leg, a group that fills again) frames it without an
instant, so it is judged afresh: the period runs from the entry's last change.

Within the period every dedup by id holds as before; after it a record naming a forgotten
id is taken as new.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any

from common.clock import Clock, epoch_us
from common.streams.store import ChangelogStore, due_of, forget_due, framed, partition_of, payload_of
from notify.adapters.state import group_from
from notify.adapters.stores import decoded
from notify.domain import grouping

# A leg is over once its latest end closes it (an acknowledgement does not).
CLOSING_ENDS = frozenset({"leg resolved", "leg transferred", "leg cancelled"})


def leg_is_over(value: dict) -> bool:
    """Resolved, transferred or cancelled (and not acknowledged or changed since)."""
    ends = value.get("ends") or ()
    # The latest end by its instant; of ends at one instant (a leg acknowledged and resolved
    # at once), the one read last, as ends are kept in the order they were read.
    return bool(ends) and max(reversed(ends), key=lambda end: datetime.fromisoformat(end[0]))[1] in CLOSING_ENDS


def escalation_is_over(value: dict) -> bool:
    """Acknowledged, or a pointer (an escalation notice's origin, a digest's members)."""
    return "n" not in value or bool(value.get("acked"))


def group_is_over(value: dict) -> bool:
    """Flushed and emptied: no member left to flush or repeat."""
    return grouping.due_at(group_from(value)) is None


# Table -> whether an entry is finished; a table not named keeps its entries (`pending`: a
# delivery leaves it when it ends; `grouped`: a member leaves it when acknowledged, and a
# group empties only so; `marks`: one per partition and source, bounded).
# None: finished when written (judged without decoding the value).
# A leg holds the ids requested about it, so the dedup of its notices holds as long as the
# leg is known.
RULES: dict[str, Callable[[Any], bool] | None] = {
    "deliveries": None,
    "sources": None,
    "legs": leg_is_over,
    "escalations": escalation_is_over,
    "groups": group_is_over,
}


class Retention:
    def __init__(self, stores: Iterable[ChangelogStore], period: timedelta, wall: Clock) -> None:
        self._stores = [(store, RULES[store.name]) for store in stores if store.name in RULES]
        self._period_us = int(period.total_seconds() * 1_000_000)
        self._wall = wall

    def stamp(self) -> int:
        """Give every finished entry this batch wrote its forget instant; returns how many."""
        until = forget_due(epoch_us(self._wall.now()) + self._period_us)
        stamped = 0
        for store, rule in self._stores:
            for _, key, value in store.writes():
                if value is None or due_of(value):
                    continue
                payload = payload_of(value)
                if rule is None or rule(decoded(payload)):
                    store[key] = framed(partition_of(value), payload, until)
                    stamped += 1
        return stamped

    def forget(self, store: ChangelogStore, key: str) -> None:
        """The entry's instant has come (the engine checked it still asks for it): delete it."""
        if key in store:
            del store[key]
