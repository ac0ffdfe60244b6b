"""Escalation steps as they fall due: an `escalated` event for the notification's receiver
and a `requested` escalation notice for the step's receiver.

Runs on the stream engine's thread at the end of each batch, inside its transaction: the
step taken is written to the `escalations` table together with the records, so nothing is
read back and a restart resumes from the committed state. Step ids derive from the
notification, the level and the reminder number, so even a repeat carries the same ids. A
step is stamped with the instant it fell due (recorded_at says when it was taken).

On event time the Dispatcher also takes steps (`take_until`): an acknowledgement at T
arrives before the clock reaches T, and the steps due before T come first.
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from datetime import datetime

from common.clock import Clock
from notify import metrics
from notify.adapters import codec
from notify.adapters.routing_file import RoutingConfig
from notify.adapters.state import escalation_from, escalation_value
from notify.adapters.stores import Place
from notify.domain import escalation
from notify.domain.dispatch import escalation_notice
from notify.domain.escalation import EscalationState
from notify.domain.notifications import Notification
from notify.entrypoints.timer_states import TimerStates

Send = Callable[[str, bytes], None]
Entry = tuple[EscalationState, Notification]


class Escalator:
    def __init__(self, table: MutableMapping[str, dict], routing: RoutingConfig, send: Send, clock: Clock,
                 recorded: Clock, place: Place | None = None) -> None:
        self._table = table
        self._routing = routing
        self._send = send
        self._clock = clock
        self._recorded = recorded
        self._place = place or Place()
        self._states: TimerStates[Entry] = TimerStates(table, lambda value: escalation_from(value, routing))

    def __len__(self) -> int:
        return len(self._states)

    def index(self, state: EscalationState) -> None:
        self._states.schedule(state.notification_id, escalation.due_at(state))

    def clear(self) -> None:
        self._states.clear()

    def tick(self, owned: frozenset[int]) -> None:
        """Take every step that has fallen due on the partitions this worker owns."""
        now = self._clock.now()
        for notification_id, (state, notification), partition in self._states.due(now, owned):
            self._place.partition = partition
            taken = self.take_until(state, notification, now)
            if taken is not state:
                self._table[notification_id] = escalation_value(taken, notification, partition)
            self.index(taken)

    def take_until(self, state: EscalationState, notification: Notification, until: datetime) -> EscalationState:
        """Take the steps due by `until` that were not taken yet; the state after them."""
        while (step := escalation.next_step(state, until)) is not None:
            self._take(step, notification)
            state = escalation.taken(state, step)
        return state

    def _take(self, step: escalation.Step, notification: Notification) -> None:
        receiver = self._routing.receivers.get(step.receiver)
        now = self._recorded.now()
        self._send(notification.receiver, codec.encode_escalated(
            step.step_id, notification.notification_id, notification.receiver, step.level, step.reminder,
            step.receiver, step.due_at, now))
        if receiver is not None:
            notice = escalation_notice(notification, step)
            self._send(step.receiver, codec.encode_requested(
                notice, [channel.name for channel in receiver.channels], now))
        metrics.ESCALATIONS.labels(str(step.level)).inc()
