"""Stage 2: notifications.v1 (keyed by receiver) -> suppressed, grouped, delivered, escalated.

`requested`: recorded only when it is history (on wall time, older than NOTIFY_HISTORY_AGE
when read, unless its import asked for delivery: a `suppressed` event, reason `history`),
held back by a silence or an inhibit rule (a `suppressed` event), put in its
group (flushed later by the Grouper as a digest), or sent now: the subscription channel by
a `delivered` event that carries the notification (the Subscribe stream reads those), the
other channels by the Deliverer through their gateways; and, when the receiver's policy says
so, its escalation starts (the Escalator takes the steps). `acknowledged` stops escalations.

On the stream engine every decision is written to the tables in the same transaction as
the records that announce it, so stage 2 never reads its own outcomes back: the
`delivered`, `failed`, `suppressed` and `escalated` records, its digests, and the requests
it took when they were written (`dispatched`, see app.py) are skipped when read. Escalation notices are read, as `requested` records of the step's receiver (on
that receiver's partition). `tick` runs at the end of every batch, inside its transaction:
outcomes of gateway calls, due escalation steps and group flushes.

On event time (`clock` a MergedEventTime, NOTIFY_CLOCK=event) a notification counts from
its own instant, `heartbeat` records move the clock (kept in the `marks` table, so a
restart resumes from them), and an acknowledgement at T first takes the escalation steps
due before T that the clock had not reached yet: the timeline is the one wall time would
have produced. Deliveries through gateways always run on wall time.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, MutableMapping
from datetime import datetime, timedelta

from common.clock import Clock, MergedEventTime
from notify import metrics
from notify.adapters import codec
from notify.adapters.routing_file import RoutingConfig
from notify.adapters.state import (
    Job, escalation_from, escalation_value, group_from, group_value, job_value, new_group,
)
from notify.domain import escalation, grouping
from notify.domain.delivery import delivery_id
from notify.domain.dispatch import (
    delivered_as, escalates, is_grouped, is_inhibition_source, route_for, suppression,
)
from notify.domain.inhibition import InhibitionSources
from notify.domain.notifications import DIGEST, Notification
from notify.adapters.stores import Place
from notify.domain.silences import Silence
from notify.entrypoints.deliverer import Deliverer
from notify.entrypoints.escalator import Escalator
from notify.entrypoints.grouper import Grouper

ActiveSilences = Callable[[datetime], list[Silence]]
# The `suppressed` reason of a notification too old to deliver (NOTIFY_HISTORY_AGE).
HISTORY = "history"
Tables = Mapping[str, MutableMapping]


class Dispatcher:
    def __init__(self, tables: Tables, routing: RoutingConfig, silences: ActiveSilences, send, clock: Clock,
                 deliverer: Deliverer, escalator: Escalator, grouper: Grouper, recorded: Clock | None = None,
                 place: Place | None = None, history_age: timedelta | None = None) -> None:
        self._deliveries = tables["deliveries"]    # delivery id (or "suppressed:<id>") -> outcome
        self._pending = tables["pending"]          # delivery id -> a Job to deliver through a gateway
        self._escalations = tables["escalations"]  # notification id -> escalation state
        self._groups = tables["groups"]            # group key -> group state
        self._sources = tables["sources"]          # notification id -> labels of an open inhibition source
        self._grouped = tables["grouped"]          # notification id -> [group key, notification key]
        self._marks = tables["marks"]              # "<partition>:<source>" -> event time a source reached
        # The open sources of `sources`, by rule and `equal` values: follows every write of the
        # table here, Retention's deletions (app.py) and rebuild.
        self.inhibition = InhibitionSources(routing.inhibit_rules)
        self._routing = routing
        self._silences = silences
        self._send = send
        self._clock = clock
        self._recorded = recorded or clock
        self._event_time = clock if isinstance(clock, MergedEventTime) else None
        self._place = place or Place()
        # On wall time, a notification older than this when read is history: recorded, not delivered.
        self._history_age = history_age if self._event_time is None else None
        self.deliverer, self.escalator, self.grouper = deliverer, escalator, grouper
        grouper.deliver = self._digest
        self.indexed_partitions: frozenset[int] = frozenset()

    # --- records -----------------------------------------------------------------------

    def on_event(self, message, partition: int, offset: int = -1) -> None:
        self._place.partition = partition
        change = message.WhichOneof("change")
        if change == "requested":
            if message.requested.dispatched:  # taken when written: what it decided is committed with it
                return
            notification = codec.notification_from(message.requested.notification)
            if notification.kind == DIGEST:  # written, and delivered, by this stage's own flush
                return
            self.take(notification, list(message.requested.channels), partition,
                      codec.acknowledged_with(message.requested), message.requested.deliver_history, offset)
        elif change == "acknowledged":
            # On event time a leg's acknowledgement counts at its own instant (the clock has not
            # passed it); one over the API, stamped with the API's clock, at least now.
            at = max(codec.occurred_at(message), self._clock.now()) if self._event_time else self._clock.now()
            self._acknowledged(message.acknowledged.notification_id, message.acknowledged.acknowledged_by, at)
        elif change == "heartbeat":
            self._heartbeat(message, partition)
        # delivered, failed, suppressed, escalated: this stage's own outcomes, already in its tables

    def take(self, notification: Notification, channels: list[str], partition: int,
             acknowledged: tuple[datetime, str] | None = None, deliver_history: bool = False,
             offset: int = -1) -> None:
        """A request for a receiver on `partition`: read from notifications.v1, or handed over
        by stage 1 in the pass that writes it. `acknowledged`: (when, by whom) its leg ended."""
        self._place.partition = partition
        if self._is_history(notification, deliver_history):
            self._suppress(notification, HISTORY, "", self._clock.now())
            return
        self._requested(notification, channels, partition, offset, acknowledged is None)
        if acknowledged is not None:  # its leg ended before the notice was read: as if in time
            self._acknowledged(notification.notification_id, acknowledged[1], acknowledged[0])

    def _is_history(self, notification: Notification, deliver_history: bool) -> bool:
        """Whether a notification is too old to page anyone (an import of last month's breaches):
        older than the history age when read, on wall time, and its import did not ask for it."""
        return (self._history_age is not None and not deliver_history
                and self._clock.now() - notification.occurred_at > self._history_age)

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

    def _requested(self, notification: Notification, channels: list[str], partition: int, offset: int,
                   escalate: bool = True) -> None:
        """`escalate`: index its escalation for the timer (not when an acknowledgement follows at once)."""
        if notification.origin_id and notification.notification_id not in self._escalations:
            # An escalation notice: acknowledging it acknowledges the original.
            self._escalations[notification.notification_id] = {
                "origin": [notification.origin_id, notification.origin_receiver]}
        labels = notification.labels  # built anew each time it is asked for; read-only here
        rules = self._routing.inhibit_rules
        if is_inhibition_source(labels, rules) and notification.notification_id not in self._sources:
            self._sources[notification.notification_id] = labels
            self.inhibition.add(notification.notification_id, labels)
        now = self._handled_at(notification)
        held = suppression(labels, self._silences(now), self.inhibition, now)
        if held is not None:
            self._suppress(notification, held.reason, held.silence_id, now)
            return
        match = route_for(self._routing.route(labels), notification.receiver)
        if is_grouped(notification, match):
            key = grouping.group_key(match, labels)
            value = self._groups.get(key)
            state = grouping.add(group_from(value) if value else new_group(key, match), notification, now)
            self._groups[key] = group_value(state, partition)
            self._grouped[notification.notification_id] = [key, notification.key]
            self.grouper.index(state)
            return
        self._deliver(notification, channels, partition, offset)
        self._start_escalation(notification, partition, now, escalate)

    def _suppress(self, notification: Notification, reason: str, silence_id: str, now: datetime) -> None:
        marker = f"suppressed:{notification.notification_id}"
        if self._deliveries.get(marker):
            return
        self._send(notification.receiver, codec.encode_suppressed(notification, reason, silence_id, now))
        self._deliveries[marker] = "suppressed"
        metrics.SUPPRESSED.labels(reason).inc()
        for channel in self._channels(notification.receiver, None):
            metrics.notifications(channel.kind, "suppressed").inc()

    def _digest(self, digest: Notification, channels: list[str], partition: int) -> None:
        """A group flushed (its table entry says so): the receiver gets the digest, members escalate."""
        if digest.notification_id not in self._escalations:
            # Acknowledging a digest acknowledges its members.
            self._escalations[digest.notification_id] = {"members": [item.notification_id for item in digest.items]}
        self._deliver(delivered_as(digest), channels, partition, -1)
        for item in digest.items:
            self._start_escalation(item, partition, digest.occurred_at)

    def _channels(self, receiver: str, names: list[str] | None) -> list:
        known = self._routing.receivers.get(receiver)
        if known is None:
            return []
        return [channel for channel in known.channels if names is None or channel.name in names]

    def _deliver(self, notification: Notification, names: list[str], partition: int, offset: int) -> None:
        """Every channel of the receiver once: subscription now, the others through their gateway."""
        now = self._recorded.now()
        for channel in self._channels(notification.receiver, names):
            delivery = delivery_id(notification.key, notification.receiver, channel.name)
            if self._deliveries.get(delivery) or delivery in self._pending:
                metrics.notifications(channel.kind, "duplicate").inc()
                continue
            if channel.kind == "subscription":
                self._send(notification.receiver, codec.encode_delivered(
                    delivery, notification, channel.name, 1, now, carry=True))
                self._deliveries[delivery] = "delivered"
                metrics.notifications(channel.kind, "delivered").inc()
                metrics.delivery_latency(channel.kind).observe(
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

    def _acknowledged(self, notification_id: str, by: str, at: datetime) -> None:
        value = self._escalations.get(notification_id)
        if value and "origin" in value:
            origin_id, origin_receiver = value["origin"]
            self._send(origin_receiver, codec.encode_acknowledged(origin_id, origin_receiver, by, at,
                                                                  self._recorded.now()))
            return
        if value and "members" in value:
            for member in value["members"]:
                self._acknowledged(member, by, at)
            return
        parsed = escalation_from(value, self._routing) if value else None
        if parsed is None:
            # Acknowledged before it escalated (or was even sent): it never starts.
            self._escalations[notification_id] = {"acked": at.isoformat(), "by": by}
        elif parsed[0].acknowledged_at is None:
            state = parsed[0]
            if self._event_time is not None:  # the steps due before `at` happened before it
                state = self.escalator.take_until(state, parsed[1], at)
            state = escalation.acknowledge(state, by, at)
            self._escalations[notification_id] = escalation_value(state, parsed[1], value["partition"])
        self._sources.pop(notification_id, None)
        self.inhibition.discard(notification_id)
        self._ungroup(notification_id)

    def _ungroup(self, notification_id: str) -> None:
        """An acknowledged notification leaves its group: no later flush or repeat carries it."""
        grouped = self._grouped.pop(notification_id, None)
        value = self._groups.get(grouped[0]) if grouped else None
        if value:
            state = grouping.discard(group_from(value), {grouped[1]})
            self._groups[grouped[0]] = group_value(state, value["partition"])

    # --- the timer -----------------------------------------------------------------------

    def rebuild(self, owned: frozenset[int], targets: Mapping[int, int] | None = None) -> None:
        """Re-index the due work of the partitions this worker now owns, and the open inhibition
        sources, from the tables (after an assignment, a revocation or an aborted batch: the
        tables hold what was committed)."""
        for due in (self.escalator, self.grouper):
            due.clear()
        self.inhibition.clear()
        for notification_id, labels in list(self._sources.items()):
            self.inhibition.add(notification_id, labels)
        self.deliverer.restore(owned)
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
        self.indexed_partitions = owned

    def tick(self) -> None:
        """The end of a batch: gateway outcomes, then due steps and flushes; what this batch
        decided is attempted once it is committed."""
        owned = self.indexed_partitions
        self.deliverer.tick(owned)
        self.escalator.tick(owned)
        self.grouper.tick(owned)
        self.deliverer.seal()
