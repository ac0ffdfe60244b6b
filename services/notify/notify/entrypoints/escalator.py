"""Escalation steps as they fall due: an `escalated` event for the notification's receiver
and a `requested` escalation notice for the step's receiver.

Runs on the timer, so it never writes tables: the agent reads each `escalated` event back
into the `escalations` table. Until it has, the step taken is kept here (`_ahead`), so the
next tick does not take it again; after a restart the steps come from the table, and a
step emitted but not yet read back is not taken again because the timer waits until the
agent has caught up with notifications.v1 (see Dispatcher.caught_up). Step ids derive from
the notification, the level and the reminder number, so even a repeat carries the same ids.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from common.clock import Clock
from notify import metrics
from notify.adapters import codec
from notify.adapters.routing_file import RoutingConfig
from notify.adapters.state import escalation_from
from notify.domain import escalation
from notify.domain.dispatch import escalation_notice
from notify.domain.due import DueQueue
from notify.domain.escalation import EscalationState
from notify.domain.notifications import Notification

Send = Callable[[str, bytes], Awaitable[None]]
Entry = tuple[EscalationState, Notification, int]


class Escalator:
    def __init__(self, table: Mapping[str, dict], routing: RoutingConfig, send: Send, clock: Clock,
                 recorded: Clock) -> None:
        self._table = table
        self._routing = routing
        self._send = send
        self._clock = clock
        self._recorded = recorded
        self._queue = DueQueue()
        self._ahead: dict[str, Entry] = {}

    def __len__(self) -> int:
        return len(self._queue)

    def index(self, state: EscalationState) -> None:
        at = escalation.due_at(state)
        if at is not None:
            self._queue.add(at, state.notification_id)

    def recorded(self, state: EscalationState) -> None:
        """The agent stored `state`: forget what was kept ahead of it once the table has caught up."""
        ahead = self._ahead.get(state.notification_id)
        if ahead is None or state.acknowledged_at is not None or \
                (state.level, state.reminded) >= (ahead[0].level, ahead[0].reminded):
            self._ahead.pop(state.notification_id, None)

    def clear(self) -> None:
        self._queue.clear()
        self._ahead.clear()

    def _load(self, notification_id: str) -> Entry | None:
        if notification_id in self._ahead:
            return self._ahead[notification_id]
        value = self._table.get(notification_id)
        parsed = escalation_from(value, self._routing) if value else None
        return (*parsed, value["partition"]) if parsed else None

    async def tick(self, owned: frozenset[int]) -> None:
        """Take every step that has fallen due on the partitions this worker owns."""
        now = self._clock.now()
        for notification_id in dict.fromkeys(self._queue.pop_due(now)):
            entry = self._load(notification_id)
            if entry is None or entry[2] not in owned:
                continue
            state, notification, partition = entry
            taken = False
            while (step := escalation.next_step(state, now)) is not None:
                await self._take(step, notification)
                state, taken = escalation.taken(state, step), True
            if taken:
                self._ahead[notification_id] = (state, notification, partition)
            self.index(state)

    async def _take(self, step: escalation.Step, notification: Notification) -> None:
        receiver = self._routing.receivers.get(step.receiver)
        now = self._recorded.now()
        await self._send(notification.receiver, codec.encode_escalated(
            step.step_id, notification.notification_id, notification.receiver, step.level, step.reminder,
            step.receiver, now))
        if receiver is not None:
            notice = escalation_notice(notification, step)
            await self._send(step.receiver, codec.encode_requested(
                notice, [channel.name for channel in receiver.channels], now))
        metrics.ESCALATIONS.labels(str(step.level)).inc()
