"""Stage 1: SLA events, repeat contacts and handoff events -> NotificationRequested, once each.

All three sources are keyed by customer_ref, so a leg's events and its `legs` table entry
share a partition. Each notice is routed; every receiver reached gets a `requested` event
on notifications.v1 keyed by the receiver. A leg remembers every id requested about it, so
a re-read source asks nothing twice, and which of those are still open, so its
acknowledgement or resolution acknowledges them (which stops their escalation).

The three topics are read independently, so a leg's acknowledgement can be read before a
breach or warning that happened earlier (sla writes those later; in a replay, much later).
The leg remembers when it ended, and such a late notice is requested as acknowledged at
that instant (a late breach of a leg since resolved also earns its resolution notice):
what is requested never depends on which topic was read first.

On event time (NOTIFY_CLOCK=event) a heartbeat on handoff.events.v1 is passed on to every
partition of notifications.v1 once everything before it has been requested and
acknowledged, so stage 2's clock never runs ahead of an acknowledgement still on its way.

On the stream engine each batch's requests, acknowledgements, forwarded heartbeats and
table writes are committed with the input offsets in one transaction; the handlers run one
record at a time on the engine's thread, so a leg's read-send-write never interleaves.
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from datetime import datetime

from common.clock import Clock
from notify import metrics
from notify.adapters import codec
from notify.adapters.routing_file import RoutingConfig
from notify.domain.notifications import Notification
from notify.domain.requests import (
    End, Leg, breach_notice, end_after, ended, new_leg_notice, opened, remembered, repeat_notice, requests,
    resolution_after, resolved_notice, warning_notice,
)
from notify.domain.values import evolve

Send = Callable[[str, bytes], None]
# Writes one request: (notification, channel names, acknowledged (when, by whom) or None,
# deliver however old).
Request = Callable[[Notification, list[str], "tuple[datetime, str] | None", bool], None]
# Passes event time on: (instant, partition of handoff.events.v1 that reached it).
Forward = Callable[[datetime, int], None]
# A leg's change -> what its open notifications are acknowledged as.
ENDS_ESCALATION = {"acknowledged": "leg acknowledged", "resolved": "leg resolved",
                   "transferred": "leg transferred", "cancelled": "leg cancelled"}


def leg_value(leg: Leg) -> dict:
    # Field by field (dataclasses.asdict deep-copies every value: the costliest step of a breach).
    return {"handoff_id": leg.handoff_id, "case_id": leg.case_id, "customer_ref": leg.customer_ref,
            "department": leg.department, "priority": leg.priority, "category": leg.category,
            "breached": leg.breached, "open": [list(pair) for pair in leg.open],
            "ends": [[end.at.isoformat(), end.by, end.resolution_id] for end in leg.ends],
            "notify_history": leg.notify_history, "requested": list(leg.requested)}


def leg_from(value: dict) -> Leg:
    ends = tuple(End(datetime.fromisoformat(at), by, resolution) for at, by, resolution in value.get("ends", ()))
    return Leg(**{**value, "open": tuple(tuple(pair) for pair in value.get("open", ())), "ends": ends,
                  "requested": tuple(value.get("requested", ()))})


class Requester:
    def __init__(self, legs: MutableMapping[str, dict], routing: RoutingConfig, send: Send, recorded: Clock,
                 forward: Forward | None = None, request: Request | None = None) -> None:
        self._legs = legs
        self._routing = routing
        self._send = send
        self._recorded = recorded
        self._forward = forward
        self._write_request = request or self._send_request

    def _send_request(self, notification: Notification, channels: list[str],
                      acknowledged: tuple[datetime, str] | None, deliver_history: bool) -> None:
        self._send(notification.receiver, codec.encode_requested(notification, channels, self._recorded.now(),
                                                                 acknowledged, deliver_history))

    def _leg(self, handoff_id: str) -> Leg | None:
        value = self._legs.get(handoff_id)
        return leg_from(value) if value else None

    def _save(self, leg: Leg) -> None:
        self._legs[leg.handoff_id] = leg_value(leg)

    def _request(self, notice: Notification, leg: Leg, end: End | None = None) -> list[Notification]:
        """Route `notice` (about `leg`) and request it of every receiver reached that was not
        asked before; `end`: the leg's end that acknowledges it already (a late notice)."""
        acknowledged = (end.at, end.by) if end else None
        known = set(leg.requested)  # the caller remembers what is sent on the leg it saves
        sent = []
        for notification in requests(notice, self._routing.route(notice.labels), self._routing.root):
            receiver = self._routing.receivers[notification.receiver]
            kinds = [channel.kind for channel in receiver.channels]
            if notification.notification_id in known:
                for kind in kinds:
                    metrics.notifications(kind, "duplicate").inc()
                continue
            channels = [channel.name for channel in receiver.channels]
            self._write_request(notification, channels, acknowledged, leg.notify_history)
            known.add(notification.notification_id)
            for kind in kinds:
                metrics.notifications(kind, "requested").inc()
            sent.append(notification)
        return sent

    def on_sla_event(self, message, partition: int) -> None:
        change = message.WhichOneof("change")
        if change not in ("warning", "breached"):
            return
        leg = codec.leg_of(message, self._leg(message.handoff_id))
        clock = codec.clock_of(message)
        if change == "warning":
            fraction, deadline = codec.warning_of(message)
            self._notice(leg, warning_notice(leg, clock, fraction, deadline, codec.occurred_at(message)))
            return
        notice = breach_notice(leg, clock, codec.breach_deadline(message))
        resolution = resolution_after(leg, notice.occurred_at)
        if resolution is None:
            leg = evolve(leg, breached=True)
        leg = self._notice(leg, notice)
        if resolution is not None:  # resolved since: the notice the resolution would have sent
            self._save(remembered(leg, self._request(resolved_notice(leg, resolution.resolution_id, resolution.at),
                                                     leg)))

    def on_repeat_contact(self, message, partition: int) -> None:
        if not codec.is_avoidable(message):
            return
        leg = codec.leg_of(message, self._leg(message.handoff_id))
        self._notice(leg, repeat_notice(leg, message.contact_id, codec.contacted_at(message)))

    def _notice(self, leg: Leg, notice: Notification) -> Leg:
        """Request `notice`: open on the leg, or acknowledged at once if the leg ended since."""
        end = end_after(leg, notice.occurred_at)
        requested = self._request(notice, leg, end)
        leg = remembered(leg if end is not None else opened(leg, requested), requested)
        self._save(leg)
        return leg

    def on_handoff_event(self, message, partition: int) -> None:
        change = message.WhichOneof("change")
        if change == "heartbeat":
            if self._forward is not None:  # on event time: behind everything requested before it
                self._forward(codec.occurred_at(message), partition)
            return
        known = self._leg(message.handoff_id)
        leg = codec.leg_of(message, known)
        at = codec.occurred_at(message)
        if change == "created" and known is None:
            requested = self._request(new_leg_notice(leg, at), leg)
            leg = remembered(opened(leg, requested), requested)
        if change in ENDS_ESCALATION:
            resolution = message.envelope.event_id if change == "resolved" else ""
            leg = self._acknowledge(leg, End(at, ENDS_ESCALATION[change], resolution))
        if change == "resolved" and leg.breached:
            leg = remembered(leg, self._request(resolved_notice(leg, message.envelope.event_id, at), leg))
        if change == "reopened":  # a new resolve clock: a notice follows only if it breaches too
            leg = evolve(leg, breached=False)
        self._save(leg)

    def _acknowledge(self, leg: Leg, end: End) -> Leg:
        """Acknowledge every open notification of the leg at its end (ids derived: a repeat is harmless)."""
        for notification_id, receiver in leg.open:
            self._send(receiver, codec.encode_acknowledged(notification_id, receiver, end.by, end.at,
                                                           self._recorded.now()))
        return ended(leg, end)
