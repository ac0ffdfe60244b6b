"""The clock engine and the repeat tracker wired together: what each record, each due leg
and each change of assignment does to them. The stream engine, the in-process live
reference and the tests all drive this one wiring.
"""

from __future__ import annotations

from collections.abc import MutableMapping

from common.clock import EPOCH, Clock, EventTime, WallClock, epoch_us, from_epoch_us
from common.streams.store import framed, payload_of
from sla.adapters import codec
from sla.domain.clocks import ClockEvent
from sla.domain.policy import PolicyBook
from sla.entrypoints.engine import ClockEngine, Send
from sla.entrypoints.repeat_tracker import RepeatTracker


class SlaWorker:
    """`clock` decides what is due: a WallClock, or an EventTime for replay; `recorded`
    stamps recorded_at (wall time unless given). `marks` keeps each partition's event-time
    watermark, so a restarted worker goes on from where it was."""

    def __init__(self, clock_table: MutableMapping[str, bytes], customers: MutableMapping[str, bytes],
                 policies: PolicyBook, clock: Clock, send_sla: Send, send_repeat: Send,
                 recorded: Clock | None = None, marks: MutableMapping[str, bytes] | None = None) -> None:
        recorded = recorded or WallClock()
        self.event_time = clock if isinstance(clock, EventTime) else None
        # On event time, how far each partition's contacts have been read (contacts.v1 is
        # read apart from handoff.events.v1, and either may run ahead of the other).
        self.contacts_read = EventTime() if self.event_time is not None else None
        self.engine = ClockEngine(clock_table, policies, clock, send_sla, recorded=recorded)
        self.tracker = RepeatTracker(customers, self.engine.breached_by, policies.repeats, send_repeat, recorded,
                                     self.event_time, clock, self.contacts_read)
        self._marks = {} if marks is None else marks
        self._moved: set[int] = set()

    def on_handoff_event(self, message, partition: int) -> list[ClockEvent]:
        """The watermark, the leg's clocks, the customer's legs, then the contacts it releases."""
        at = codec.occurred_at(message)
        if self.event_time is not None:
            self._advance(self.event_time, partition, at)
        events: list[ClockEvent] = []
        if message.WhichOneof("change") != "heartbeat":
            events = self.engine.on_handoff_event(message, partition, at)
            self.tracker.on_leg_change(message, events, partition, at)
        else:
            self.tracker.seal(partition, at)
        self.tracker.settle(partition)
        return events

    def on_contact(self, message, partition: int) -> None:
        """The contact waits for its instant, then the customers held for contacts up to it go."""
        contacted_at = self.tracker.on_contact(message, partition)
        if self.contacts_read is not None:
            self._advance(self.contacts_read, partition, contacted_at)
            self.tracker.forget_held(partition)

    def on_due(self, key: str, partition: int) -> list[ClockEvent]:
        """A leg's clocks (`key` a handoff id) have something due: emit it, and the customer's
        legs remember breaches; or a customer's contacts (`key` a customer ref) have waited
        long enough: examine them."""
        events = self.engine.on_due(key, partition)
        self.tracker.on_breaches(events, partition)
        self.tracker.settle(partition)
        return events

    def on_customer_due(self, customer_ref: str, partition: int) -> None:
        """A customer's record asked for the timer: its waiting contacts, or its time to be forgotten."""
        self.tracker.settle(partition)
        self.tracker.forget_if_due(customer_ref, partition)

    def fire_due(self) -> list[ClockEvent]:
        """Every due leg at once, then the contacts time has passed (in-memory runs and tests;
        the stream engine fires per leg)."""
        events = [event for handoff_id, partition in self.engine.due_legs()
                  for event in self.on_due(handoff_id, partition)]
        self.tracker.settle_all()
        return events

    def _times(self) -> tuple[tuple[str, EventTime], ...]:
        """The event times whose marks are stored, by the prefix of their keys (none on wall time)."""
        if self.event_time is None or self.contacts_read is None:
            return ()
        return ("mark", self.event_time), ("contacts", self.contacts_read)

    def _advance(self, time: EventTime, partition: int, instant) -> None:
        before = time.mark(partition)
        if time.advance(partition, instant) != before:
            self._moved.add(partition)

    def save_marks(self) -> None:
        """Store the marks of the partitions whose marks moved since the last call (once per batch)."""
        for prefix, time in self._times():
            for partition in self._moved:
                mark = epoch_us(time.mark(partition))
                self._marks[f"{prefix}-{partition}"] = framed(partition, mark.to_bytes(8, "big"))
        self._moved.clear()

    def load_marks(self, partitions: frozenset[int]) -> None:
        """Take the stored marks of `partitions` (after an assignment or a rollback); a mark
        never stored goes back to the epoch."""
        for prefix, time in self._times():
            for partition in partitions:
                raw = self._marks.get(f"{prefix}-{partition}")
                time.reset(partition, EPOCH if raw is None else from_epoch_us(int.from_bytes(payload_of(raw), "big")))
        self._moved -= partitions

    def assign(self, partitions: frozenset[int]) -> None:
        """The worker now owns `partitions`: watermarks, running clocks and waiting contacts."""
        if self.event_time is not None:
            self.event_time.own(partitions)
            self.load_marks(partitions)
        self.engine.rebuild(partitions)
        self.tracker.rebuild(partitions)

    @property
    def assigned(self) -> frozenset[int]:
        return self.engine.indexed_partitions

