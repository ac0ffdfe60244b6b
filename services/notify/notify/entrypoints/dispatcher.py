"""Stage 2: the agent on notifications.v1 (keyed by receiver), which also reads back its own output.

`requested`: held back by a silence or an inhibit rule (a `suppressed` event), put in its
group (flushed later by the Grouper as a digest record), or sent now: the subscription
channel by a `delivered` event that carries the notification (the Subscribe stream reads
those), the other channels by the Deliverer through their gateways; and, when the
receiver's policy says so, its escalation starts (the Escalator takes the steps).
`delivered` / `failed` / `suppressed` / `escalated` / `acknowledged` read back are recorded
in tables, so nothing is delivered, flushed or escalated twice across restarts.

On event time (`clock` a MergedEventTime, NOTIFY_CLOCK=event) a notification counts from
its own instant, `heartbeat` records move the clock (kept in the `marks` table, so a
restart resumes from them), and an acknowledgement at T first takes the escalation steps
due before T that the clock had not reached yet: the timeline is the one wall time would
have produced. Deliveries through gateways always run on wall time.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, MutableMapping
from datetime import datetime

import faust

from common.clock import Clock, MergedEventTime
from notify import metrics
from notify.adapters import codec
from notify.adapters.routing_file import RoutingConfig
from notify.adapters.state import (
    Job, escalation_from, escalation_value, group_from, group_value, job_from, job_value, new_group,
)
from notify.domain import escalation, grouping
from notify.domain.delivery import delivery_id
from notify.domain.dispatch import (
    delivered_as, escalates, flush_of, is_grouped, is_inhibition_source, route_for, suppression,
)
from notify.domain.notifications import DIGEST, Notification
from notify.domain.silences import Silence
from notify.entrypoints.deliverer import Deliverer
from notify.entrypoints.escalator import Escalator
from notify.entrypoints.grouper import Grouper

ActiveSilences = Callable[[datetime], list[Silence]]
Tables = Mapping[str, MutableMapping]


class Dispatcher:
    def __init__(self, tables: Tables, routing: RoutingConfig, silences: ActiveSilences, send, clock: Clock,
                 deliverer: Deliverer, escalator: Escalator, grouper: Grouper, recorded: Clock | None = None) -> None:
        self._deliveries = tables["deliveries"]    # delivery id (or "suppressed:<id>") -> outcome
        self._pending = tables["pending"]          # delivery id -> a Job to deliver through a gateway
        self._escalations = tables["escalations"]  # notification id -> escalation state
        self._groups = tables["groups"]            # group key -> group state
        self._sources = tables["sources"]          # notification id -> labels of an open inhibition source
        self._grouped = tables["grouped"]          # notification id -> [group key, notification key]
        self._marks = tables["marks"]              # "<partition>:<source>" -> event time a source reached
        self._routing = routing
        self._silences = silences
        self._send = send
        self._clock = clock
        self._recorded = recorded or clock
        self._event_time = clock if isinstance(clock, MergedEventTime) else None
        self.deliverer, self.escalator, self.grouper = deliverer, escalator, grouper
        self._read: dict[int, int] = {}
        self._targets: dict[int, int] = {}
        self.indexed_partitions: frozenset[int] = frozenset()

    # --- the agent ---------------------------------------------------------------------

    async def on_event(self, message, partition: int) -> None:
        event = faust.current_event()
        offset = event.message.offset if event is not None else -1
        self._read[partition] = max(self._read.get(partition, -1), offset)
        change = message.WhichOneof("change")
        if change == "requested":
            notification = codec.notification_from(message.requested.notification)
            acknowledged = codec.acknowledged_with(message.requested)
            await self._requested(notification, list(message.requested.channels), partition, offset,
                                  acknowledged is None)
            if acknowledged is not None:  # its leg ended before the notice was read: as if in time
                await self._acknowledged(notification.notification_id, acknowledged[1], acknowledged[0])
        elif change in ("delivered", "failed"):
            done = getattr(message, change)
            self._deliveries[done.delivery_id or f"{done.notification_id}:{done.channel}"] = change
            self._pending.pop(done.delivery_id, None)
            self.deliverer.recorded(done.delivery_id)
        elif change == "suppressed":
            self._deliveries[f"suppressed:{message.suppressed.notification_id}"] = "suppressed"
        elif change == "escalated":
            self._escalated(message.escalated)
        elif change == "acknowledged":
            # On event time a leg's acknowledgement counts at its own instant (the clock has not
            # passed it); one over the API, stamped with the API's clock, at least now.
            at = max(codec.occurred_at(message), self._clock.now()) if self._event_time else self._clock.now()
            await self._acknowledged(message.acknowledged.notification_id, message.acknowledged.acknowledged_by, at)
        elif change == "heartbeat":
            self._heartbeat(message, partition)

    def _handled_at(self, notification: Notification) -> datetime:
        """When a notification counts as handled: now, or on event time its own instant."""
        return notification.occurred_at if self._event_time else self._clock.now()

    def _heartbeat(self, message, partition: int) -> None:
        """Event time reached by one partition of handoff.events.v1 (ignored on wall time)."""
        if self._event_time is None:
            return
        beat, at = message.heartbeat, codec.occurred_at(message)
        mark = self._event_time.advance(partition, beat.source_partition, beat.source_partitions, at)
        key = f"{partition}:{beat.source_partition}"
        if mark == at:
            self._marks[key] = {"partition": partition, "source": beat.source_partition,
                                "sources": beat.source_partitions, "at": at.isoformat()}

    async def _requested(self, notification: Notification, channels: list[str], partition: int, offset: int,
                         escalate: bool = True) -> None:
        """`escalate`: index its escalation for the timer (not when an acknowledgement follows at once)."""
        if notification.kind == DIGEST:
            await self._flushed(notification, partition, offset)
            return
        if notification.origin_id and notification.notification_id not in self._escalations:
            # An escalation notice: acknowledging it acknowledges the original.
            self._escalations[notification.notification_id] = {
                "origin": [notification.origin_id, notification.origin_receiver]}
        rules = self._routing.inhibit_rules
        if is_inhibition_source(notification, rules) and notification.notification_id not in self._sources:
            self._sources[notification.notification_id] = notification.labels
        now = self._handled_at(notification)
        held = suppression(notification.labels, self._silences(now), self._sources.values(), rules, now)
        if held is not None:
            await self._suppress(notification, held.reason, held.silence_id, now)
            return
        match = route_for(self._routing.route(notification.labels), notification.receiver)
        if is_grouped(notification, match):
            key = grouping.group_key(match, notification.labels)
            value = self._groups.get(key)
            state = grouping.add(group_from(value) if value else new_group(key, match), notification, now)
            self._groups[key] = group_value(state, partition)
            self._grouped[notification.notification_id] = [key, notification.key]
            self.grouper.index(state)
            return
        await self._deliver(notification, channels, partition, offset)
        self._start_escalation(notification, partition, now, escalate)

    async def _suppress(self, notification: Notification, reason: str, silence_id: str, now: datetime) -> None:
        marker = f"suppressed:{notification.notification_id}"
        if self._deliveries.get(marker):
            return
        await self._send(notification.receiver, codec.encode_suppressed(notification, reason, silence_id, now))
        self._deliveries[marker] = "suppressed"
        metrics.SUPPRESSED.labels(reason).inc()
        for channel in self._channels(notification.receiver, None):
            metrics.NOTIFICATIONS.labels(channel.kind, "suppressed").inc()

    async def _flushed(self, digest: Notification, partition: int, offset: int) -> None:
        """A group's flush read back: the group remembers it, the receiver gets it, members escalate."""
        value = self._groups.get(digest.group_key)
        if value:
            state = grouping.flushed(group_from(value), flush_of(digest))
            self._groups[digest.group_key] = group_value(state, partition)
            self.grouper.recorded(state)
        if digest.notification_id not in self._escalations:
            # Acknowledging a digest acknowledges its members.
            self._escalations[digest.notification_id] = {"members": [item.notification_id for item in digest.items]}
        channels = [channel.name for channel in self._channels(digest.receiver, None)]
        await self._deliver(delivered_as(digest), channels, partition, offset)
        for item in digest.items:
            self._start_escalation(item, partition, digest.occurred_at)

    def _channels(self, receiver: str, names: list[str] | None) -> list:
        known = self._routing.receivers.get(receiver)
        if known is None:
            return []
        return [channel for channel in known.channels if names is None or channel.name in names]

    async def _deliver(self, notification: Notification, names: list[str], partition: int, offset: int) -> None:
        """Every channel of the receiver once: subscription now, the others through their gateway."""
        now = self._recorded.now()
        for channel in self._channels(notification.receiver, names):
            delivery = delivery_id(notification.key, notification.receiver, channel.name)
            if self._deliveries.get(delivery) or self._pending.get(delivery):
                metrics.NOTIFICATIONS.labels(channel.kind, "duplicate").inc()
                continue
            if channel.kind == "subscription":
                await self._send(notification.receiver, codec.encode_delivered(
                    delivery, notification, channel.name, 1, now, carry=True))
                self._deliveries[delivery] = "delivered"
                metrics.NOTIFICATIONS.labels(channel.kind, "delivered").inc()
                metrics.DELIVERY_LATENCY.labels(channel.kind).observe(
                    max((now - notification.occurred_at).total_seconds(), 0.0))
                continue
            job = Job(delivery, notification, channel.name, partition, offset, now)
            self._pending[delivery] = job_value(job)
            self.deliverer.schedule(job)

    def _start_escalation(self, notification: Notification, partition: int, now: datetime,
                          index: bool = True) -> None:
        receiver = self._routing.receivers.get(notification.receiver)
        if not escalates(notification, receiver) or notification.notification_id in self._escalations:
            return
        match = route_for(self._routing.route(notification.labels), notification.receiver)
        state = escalation.start(notification.notification_id, notification.receiver, now, receiver.escalation,
                                 match.timing.repeat_interval if match else None)
        self._escalations[notification.notification_id] = escalation_value(state, notification, partition)
        if index:
            self.escalator.index(state)

    def _escalated(self, step) -> None:
        value = self._escalations.get(step.notification_id)
        parsed = escalation_from(value, self._routing) if value else None
        if parsed is None:
            return
        state, notification = parsed
        action = escalation.REMIND if step.reminder else escalation.ESCALATE
        taken = escalation.taken(state, escalation.Step("", action, step.level, step.to_receiver,
                                                        self._clock.now(), step.reminder))
        if taken is not state:
            self._escalations[step.notification_id] = escalation_value(taken, notification, value["partition"])
        self.escalator.recorded(taken)

    async def _acknowledged(self, notification_id: str, by: str, at: datetime) -> None:
        value = self._escalations.get(notification_id)
        if value and "origin" in value:
            origin_id, origin_receiver = value["origin"]
            await self._send(origin_receiver, codec.encode_acknowledged(origin_id, origin_receiver, by, at,
                                                                        self._recorded.now()))
            return
        if value and "members" in value:
            for member in value["members"]:
                await self._acknowledged(member, by, at)
            return
        parsed = escalation_from(value, self._routing) if value else None
        if parsed is None:
            # Acknowledged before it escalated (or was even sent): it never starts.
            self._escalations[notification_id] = {"acked": at.isoformat(), "by": by}
        elif parsed[0].acknowledged_at is None:
            state = parsed[0]
            if self._event_time is not None:  # the steps due before `at` happened before it
                state = await self.escalator.catch_up(state, parsed[1], at)
            state = escalation.acknowledge(state, by, at)
            self._escalations[notification_id] = escalation_value(state, parsed[1], value["partition"])
            self.escalator.recorded(state)
        self._sources.pop(notification_id, None)
        self._ungroup(notification_id)

    def _ungroup(self, notification_id: str) -> None:
        """An acknowledged notification leaves its group: no later flush or repeat carries it."""
        grouped = self._grouped.pop(notification_id, None)
        value = self._groups.get(grouped[0]) if grouped else None
        if value:
            state = grouping.discard(group_from(value), {grouped[1]})
            self._groups[grouped[0]] = group_value(state, value["partition"])
            self.grouper.discarded(state.key, {grouped[1]})

    # --- the timer -----------------------------------------------------------------------

    def rebuild(self, owned: frozenset[int], targets: Mapping[int, int]) -> None:
        """Re-index the due work of the partitions this worker now owns, from the tables.

        `targets`: each partition's end offset now; the timer acts once the agent has read
        that far (`caught_up`), so what it emitted before a restart is read back first.
        """
        for due in (self.deliverer, self.escalator, self.grouper):
            due.clear()
        for key, value in list(self._pending.items()):
            if value["partition"] in owned and not self._deliveries.get(key):
                self.deliverer.schedule(job_from(key, value))
        for value in list(self._escalations.values()):
            parsed = escalation_from(value, self._routing) if "n" in value else None
            if parsed and value["partition"] in owned:
                self.escalator.index(parsed[0])
        for value in list(self._groups.values()):
            if value["partition"] in owned:
                self.grouper.index(group_from(value))
        if self._event_time is not None:
            self._event_time.own(owned)
            for value in list(self._marks.values()):
                if value["partition"] in owned:
                    self._event_time.advance(value["partition"], value["source"], value["sources"],
                                             datetime.fromisoformat(value["at"]))
        self._targets = {p: targets.get(p, 0) for p in owned}
        self.indexed_partitions = owned

    def caught_up(self, committed: Callable[[int], int | None]) -> bool:
        """Whether the agent has read every record that was on the owned partitions at the
        rebuild: read by this worker, or committed (next offset) before it started."""
        return all(end <= 0 or self._read.get(p, -1) >= end - 1 or (committed(p) or 0) >= end
                   for p, end in self._targets.items())

    async def tick(self) -> None:
        owned = self.indexed_partitions
        self.deliverer.tick(owned)
        await self.escalator.tick(owned)
        await self.grouper.tick(owned)
