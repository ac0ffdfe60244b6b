"""What the live view shows, read from the services' own APIs: each department's scorecard
(SlaService.GetScorecard) and what departments are told (NotificationService.
ListNotifications, with each notification's deliveries per channel and escalation level).

Nothing here computes a figure the engine computes; it asks, as an operator's screen would.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import grpc
from handoff.v1 import notification_service_pb2 as notify_pb2
from handoff.v1 import notification_service_pb2_grpc as notify_grpc
from handoff.v1 import notifications_pb2, sla_service_pb2, sla_service_pb2_grpc, types_pb2

from common.codec import from_timestamp, to_timestamp
from common.grpcclient import aio_channel

ADMIN_TOKEN = "dev-token-admin"
KIND_NAMES = {value: notifications_pb2.NotificationKind.Name(value).removeprefix("NOTIFICATION_KIND_").lower()
              for value in notifications_pb2.NotificationKind.values()}
CLOCK_NAMES = {value: types_pb2.ClockKind.Name(value).removeprefix("CLOCK_KIND_").lower()
               for value in types_pb2.ClockKind.values()}
CAUSE_NAMES = {value: types_pb2.RepeatCause.Name(value).removeprefix("REPEAT_CAUSE_").lower()
               for value in types_pb2.RepeatCause.values()}
PAGE = 200


@dataclass(frozen=True)
class Told:
    """One line of the feed: a notification delivered (or held back), or escalated."""

    at: datetime
    kind: str
    department: str
    case_id: str
    clock: str
    receiver: str
    channels: tuple[str, ...]
    escalation_level: int = 0
    suppressed: str = ""
    handoff_id: str = ""
    items: int = 0
    detail: str = ""


@dataclass
class Snapshot:
    """The latest answers: scorecards by department ("" = whole centre) and the feed."""

    scorecards: dict[str, sla_service_pb2.Scorecard] = field(default_factory=dict)
    feed: list[Told] = field(default_factory=list)
    # handoff_id -> the latest SLA kind told about it (warning, breach).
    leg_alerts: dict[str, str] = field(default_factory=dict)
    error: str = ""


class Monitor:
    """Polls SlaService and NotificationService for `departments` over [start, now())."""

    def __init__(self, sla_address: str, notify_address: str, departments: list[str], start: datetime) -> None:
        self._sla_address, self._notify_address = sla_address, notify_address
        self.departments, self.start = departments, start
        self.snapshot = Snapshot()
        self._shown: set[str] = set()  # notification ids already in the feed

    async def scorecards(self, sla: sla_service_pb2_grpc.SlaServiceStub, until: datetime) -> None:
        end = max(until, self.start + timedelta(seconds=1))
        cards = await asyncio.gather(*(sla.GetScorecard(sla_service_pb2.GetScorecardRequest(
            department=department, period_start=to_timestamp(self.start), period_end=to_timestamp(end)), timeout=10)
            for department in ["", *self.departments]))
        before = self.snapshot.scorecards
        self.snapshot.scorecards = dict(zip(["", *self.departments], cards))
        for department, card in zip(self.departments, cards[1:]):
            earlier = before.get(department)
            added = card.avoidable_repeats - (earlier.avoidable_repeats if earlier else 0)
            if added > 0:
                self.snapshot.feed.append(Told(
                    at=until, kind="charged", department=department, case_id="", clock="", receiver="", channels=(),
                    detail=f"{added} more avoidable repeat call{'s' * (added > 1)} charged: "
                           f"{card.avoidable_repeats} in all, failure demand "
                           f"{card.failure_demand_cost_minor / 100:,.2f} {card.currency}"))

    async def notifications(self, notify: notify_grpc.NotificationServiceStub) -> None:
        """New notifications, new deliveries and new escalation levels become feed lines."""
        token, fresh = "", []
        for _ in range(5):  # newest first: stop at a page that holds nothing new
            page = await notify.ListNotifications(
                notify_pb2.ListNotificationsRequest(page_size=PAGE, page_token=token), timeout=10)
            news = [(n, s) for n, s in zip(page.notifications, page.states) if self._changed(n, s)]
            fresh.extend(news)
            if not news or not page.next_page_token:
                break
            token = page.next_page_token
        for note, state in sorted(fresh, key=lambda pair: from_timestamp(pair[0].occurred_at)):
            self._show(note, state)
        del self.snapshot.feed[:-400]

    def _changed(self, note: notifications_pb2.Notification, state: notify_pb2.NotificationState) -> bool:
        """Not shown yet, and delivered or held back by now."""
        return note.notification_id not in self._shown and bool(state.delivered_channels or state.suppressed_reason)

    def _show(self, note: notifications_pb2.Notification, state: notify_pb2.NotificationState) -> None:
        self._shown.add(note.notification_id)
        kind = KIND_NAMES.get(note.kind, "notification")
        if kind in ("warning", "breach") and note.handoff_id:
            if self.snapshot.leg_alerts.get(note.handoff_id) != "breach":
                self.snapshot.leg_alerts[note.handoff_id] = kind
        self.snapshot.feed.append(Told(
            at=from_timestamp(note.occurred_at), kind=kind, department=note.department, case_id=note.case_id,
            clock=CLOCK_NAMES.get(note.clock, "") if note.clock else "", receiver=note.receiver,
            channels=tuple(sorted(state.delivered_channels)), escalation_level=note.escalation_level,
            suppressed=state.suppressed_reason, handoff_id=note.handoff_id, items=len(note.items)))

    async def poll(self, until, interval: float = 1.0) -> None:
        """Refresh the snapshot every `interval` seconds until cancelled; `until()` is the period's end."""
        async with aio_channel(self._sla_address, ADMIN_TOKEN) as sla_channel, \
                aio_channel(self._notify_address, ADMIN_TOKEN) as notify_channel:
            sla = sla_service_pb2_grpc.SlaServiceStub(sla_channel)
            notify = notify_grpc.NotificationServiceStub(notify_channel)
            while True:
                try:
                    await self.scorecards(sla, until())
                    await self.notifications(notify)
                    self.snapshot.error = ""
                except grpc.aio.AioRpcError as error:
                    self.snapshot.error = f"{error.code().name}: {error.details()}"
                await asyncio.sleep(interval)

    async def final(self, until: datetime) -> None:
        """One last reading of the scorecards, for the charge-back table."""
        async with aio_channel(self._sla_address, ADMIN_TOKEN) as channel:
            await self.scorecards(sla_service_pb2_grpc.SlaServiceStub(channel), until)
