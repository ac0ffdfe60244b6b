"""Escalation steps as they fall due: an `escalated` event for the notification's receiver
and a `requested` escalation notice for the step's receiver.

Runs on the timer, so it never writes tables: the agent reads each `escalated` event back
into the `escalations` table. Until it has, the step taken is kept here (`_ahead`), so the
next tick does not take it again; after a restart the steps come from the table, and a
step emitted but not yet read back is not taken again because the timer waits until the
agent has caught up with notifications.v1 (see Dispatcher.caught_up). Step ids derive from
the notification, the level and the reminder number, so even a repeat carries the same ids.
A step is stamped with the instant it fell due (recorded_at says when it was taken).

On event time the agent also takes steps (`catch_up`): an acknowledgement at T arrives
before the clock reaches T, and the steps due before T come first. A lock keeps the timer
and the agent from taking the same step at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime

from common.clock import Clock
from notify import metrics
from notify.adapters import codec
from notify.adapters.routing_file import RoutingConfig
from notify.adapters.state import escalation_from
from notify.domain import escalation
from notify.domain.dispatch import escalation_notice
from notify.domain.escalation import EscalationState
from notify.domain.notifications import Notification
from notify.entrypoints.timer_states import TimerStates

Send = Callable[[str, bytes], Awaitable[None]]
Entry = tuple[EscalationState, Notification]


class Escalator:
    def __init__(self, table: Mapping[str, dict], routing: RoutingConfig, send: Send, clock: Clock,
                 recorded: Clock) -> None:
        self._routing = routing
        self._send = send
        self._clock = clock
        self._recorded = recorded
        self._states: TimerStates[Entry] = TimerStates(table, lambda value: escalation_from(value, routing))
        self._lock = asyncio.Lock()

    def __len__(self) -> int:
        return len(self._states)

    def index(self, state: EscalationState) -> None:
        self._states.schedule(state.notification_id, escalation.due_at(state))

    def recorded(self, state: EscalationState) -> None:
        """The agent stored `state`: forget what was kept ahead of it once the table has caught up."""
        ahead = self._states.ahead(state.notification_id)
        if ahead is None or state.acknowledged_at is not None or \
                (state.level, state.reminded) >= (ahead[0].level, ahead[0].reminded):
            self._states.forget(state.notification_id)

    def clear(self) -> None:
        self._states.clear()

    async def tick(self, owned: frozenset[int]) -> None:
        """Take every step that has fallen due on the partitions this worker owns."""
        async with self._lock:
            now = self._clock.now()
            for notification_id, (state, notification), partition in self._states.due(now, owned):
                taken = await self._take_until(state, notification, now)
                if taken is not state:
                    self._states.keep(notification_id, (taken, notification), partition)
                self.index(taken)

    async def catch_up(self, state: EscalationState, notification: Notification, until: datetime) -> EscalationState:
        """Take the steps due by `until` that were not taken yet; the state after them."""
        async with self._lock:
            ahead = self._states.ahead(state.notification_id)
            if ahead is not None and (ahead[0].level, ahead[0].reminded) > (state.level, state.reminded):
                state = ahead[0]
            return await self._take_until(state, notification, until)

    async def _take_until(self, state: EscalationState, notification: Notification,
                          until: datetime) -> EscalationState:
        while (step := escalation.next_step(state, until)) is not None:
            await self._take(step, notification)
            state = escalation.taken(state, step)
        return state

    async def _take(self, step: escalation.Step, notification: Notification) -> None:
        receiver = self._routing.receivers.get(step.receiver)
        now = self._recorded.now()
        await self._send(notification.receiver, codec.encode_escalated(
            step.step_id, notification.notification_id, notification.receiver, step.level, step.reminder,
            step.receiver, step.due_at, now))
        if receiver is not None:
            notice = escalation_notice(notification, step)
            await self._send(step.receiver, codec.encode_requested(
                notice, [channel.name for channel in receiver.channels], now))
        metrics.ESCALATIONS.labels(str(step.level)).inc()
