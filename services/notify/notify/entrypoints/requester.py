"""Stage 1: SLA events, repeat contacts and handoff events -> NotificationRequested, once each.

All three sources are keyed by customer_ref, so a leg's events and its `legs` table entry
share a partition. Each notice is routed; every receiver reached gets a `requested` event
on notifications.v1 keyed by the receiver. A leg remembers what was requested about it,
so its acknowledgement or resolution acknowledges those (which stops their escalation).
A lock keeps the three agents' read-send-write of one leg from interleaving.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable, MutableMapping

from common.clock import Clock
from notify import metrics
from notify.adapters import codec
from notify.adapters.routing_file import RoutingConfig
from notify.domain.notifications import Notification
from notify.domain.requests import (
    Leg, breach_notice, new_leg_notice, opened, repeat_notice, requests, resolved_notice, warning_notice,
)

Send = Callable[[str, bytes], Awaitable[None]]
# A leg's change -> what its open notifications are acknowledged as.
ENDS_ESCALATION = {"acknowledged": "leg acknowledged", "resolved": "leg resolved",
                   "transferred": "leg transferred", "cancelled": "leg cancelled"}


def leg_value(leg: Leg) -> dict:
    return {**dataclasses.asdict(leg), "open": [list(pair) for pair in leg.open]}


def leg_from(value: dict) -> Leg:
    return Leg(**{**value, "open": tuple(tuple(pair) for pair in value.get("open", ()))})


class Requester:
    def __init__(self, legs: MutableMapping[str, dict], requested: MutableMapping[str, bool],
                 routing: RoutingConfig, send: Send, recorded: Clock) -> None:
        self._legs = legs
        self._requested = requested
        self._routing = routing
        self._send = send
        self._recorded = recorded
        self._lock = asyncio.Lock()

    def _leg(self, handoff_id: str) -> Leg | None:
        value = self._legs.get(handoff_id)
        return leg_from(value) if value else None

    def _save(self, leg: Leg) -> None:
        self._legs[leg.handoff_id] = leg_value(leg)

    async def _request(self, notice: Notification) -> list[Notification]:
        """Route `notice` and request it of every receiver reached that was not asked before."""
        sent = []
        for notification in requests(notice, self._routing.route(notice.labels), self._routing.root):
            receiver = self._routing.receivers[notification.receiver]
            kinds = [channel.kind for channel in receiver.channels]
            if self._requested.get(notification.notification_id):
                for kind in kinds:
                    metrics.NOTIFICATIONS.labels(kind, "duplicate").inc()
                continue
            channels = [channel.name for channel in receiver.channels]
            await self._send(notification.receiver,
                             codec.encode_requested(notification, channels, self._recorded.now()))
            self._requested[notification.notification_id] = True
            for kind in kinds:
                metrics.NOTIFICATIONS.labels(kind, "requested").inc()
            sent.append(notification)
        return sent

    async def on_sla_event(self, message, partition: int) -> None:
        change = message.WhichOneof("change")
        if change not in ("warning", "breached"):
            return
        async with self._lock:
            leg = codec.leg_of(message, self._leg(message.handoff_id))
            clock = codec.clock_of(message)
            if change == "warning":
                fraction, deadline = codec.warning_of(message)
                notice = warning_notice(leg, clock, fraction, deadline, codec.occurred_at(message))
            else:
                leg = dataclasses.replace(leg, breached=True)
                notice = breach_notice(leg, clock, codec.breach_deadline(message))
            self._save(opened(leg, await self._request(notice)))

    async def on_repeat_contact(self, message, partition: int) -> None:
        if not codec.is_avoidable(message):
            return
        async with self._lock:
            leg = codec.leg_of(message, self._leg(message.handoff_id))
            notice = repeat_notice(leg, message.contact_id, codec.contacted_at(message))
            self._save(opened(leg, await self._request(notice)))

    async def on_handoff_event(self, message, partition: int) -> None:
        change = message.WhichOneof("change")
        if change == "heartbeat":  # event time only; notify runs on its own clock
            return
        async with self._lock:
            known = self._leg(message.handoff_id)
            leg = codec.leg_of(message, known)
            at = codec.occurred_at(message)
            if change == "created" and known is None:
                leg = opened(leg, await self._request(new_leg_notice(leg, at)))
            if change in ENDS_ESCALATION:
                leg = await self._acknowledge(leg, ENDS_ESCALATION[change])
            if change == "resolved" and leg.breached:
                await self._request(resolved_notice(leg, message.envelope.event_id, at))
            if change == "reopened":  # a new resolve clock: a notice follows only if it breaches too
                leg = dataclasses.replace(leg, breached=False)
            self._save(leg)

    async def _acknowledge(self, leg: Leg, by: str) -> Leg:
        """Acknowledge every open notification of the leg (ids derived: a repeat is harmless)."""
        for notification_id, receiver in leg.open:
            await self._send(receiver, codec.encode_acknowledged(notification_id, receiver, by, self._recorded.now()))
        return dataclasses.replace(leg, open=())
