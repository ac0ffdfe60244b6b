"""NotificationService over gRPC: Subscribe streams a department's notifications;
Acknowledge and ListNotifications work on this replica's read model of notifications.v1;
silences live on the compacted notify.silences.v1 topic, read by every replica.

Who may do what (README, "Security"): silences are set and expired by admins; admins and
services list every silence, a department those that pin it. A department lists and
acknowledges only its own department's notifications; admins and services any. Agents
have no business here.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import timedelta
from functools import partial

import grpc
from handoff.v1 import notification_service_pb2 as api_pb2
from handoff.v1 import notification_service_pb2_grpc as api_grpc

from common import validation as check
from common.auth import PermissionDenied, Principal, Role, authorize, current_principal
from common.clock import Clock
from common.streams.service import Registration
from common.feed import TopicFeed
from common.kafkasecurity import PLAINTEXT, KafkaSecurity
from common.settings import ServiceSettings
from common.topics import NOTIFICATIONS, SILENCES
from notify import metrics
from notify.adapters import api_codec as codec
from notify.adapters.codec import subscription_delivery
from notify.adapters.feed import BadCursor, Cursor, FellBehind, LiveSubscribers, read, receiver_partition
from notify.adapters.notification_store import NotificationStore
from notify.adapters.silence_store import SilenceStore
from notify.adapters.writer import RecordWriter
from notify.domain.silences import EXPIRED, expire
from notify.entrypoints import api_requests as req
from notify.settings import DEFAULT_RETENTION

SERVICE_NAME = api_pb2.DESCRIPTOR.services_by_name["NotificationService"].full_name
CHANNEL = "subscription"
# A department hears its own notifications; admins and services any department's.
SUBSCRIBERS = {Role.DEPARTMENT, Role.ADMIN, Role.SERVICE}
READERS = ACKNOWLEDGERS = SUBSCRIBERS
SILENCE_SETTERS = {Role.ADMIN}
SILENCE_READERS = {Role.DEPARTMENT, Role.ADMIN, Role.SERVICE}


def _allow(principal: Principal, roles: set[Role], department: str | None, doing: str) -> None:
    """Raise PermissionDenied unless `principal` may be `doing` for `department` (None: any)."""
    if principal.role is Role.DEPARTMENT and department is not None and department != principal.department:
        raise PermissionDenied(
            f"department {principal.department} may {doing} only its own notifications, not those of {department}"
        )
    authorize(principal, roles, department)


class NotificationApi(api_grpc.NotificationServiceServicer):
    """Each call validates, authorizes, waits for its read model to catch up, answers."""

    def __init__(
        self,
        bootstrap: str,
        clock: Clock,
        *,
        silences: SilenceStore | None = None,
        silence_feed: TopicFeed | None = None,
        notifications: NotificationStore | None = None,
        notification_feed: TopicFeed | None = None,
        writer: RecordWriter | None = None,
        live: LiveSubscribers | None = None,
        security: KafkaSecurity = PLAINTEXT,
    ) -> None:
        self._bootstrap = bootstrap
        self._security = security
        self._live = live
        self._clock = clock
        self._silences = SilenceStore() if silences is None else silences
        self._silence_feed = silence_feed
        self._notifications = NotificationStore() if notifications is None else notifications
        self._notification_feed = notification_feed
        self._writer = writer
        # One write at a time per silence or notification on this replica: a retry racing
        # its first attempt finds the first one's result instead of writing again.
        # key -> (lock, calls holding or awaiting it); dropped when the last one leaves.
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}

    # -- helpers ------------------------------------------------------------------------

    async def _caught_up(self, feed: TopicFeed | None, context) -> None:
        if feed is None:
            await context.abort(grpc.StatusCode.UNAVAILABLE, "this replica does not serve this call")
        try:
            await feed.caught_up()
        except (TimeoutError, asyncio.TimeoutError):
            await context.abort(grpc.StatusCode.UNAVAILABLE, "this replica is catching up; retry shortly")

    @asynccontextmanager
    async def _lock(self, key: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)

    async def _invalid(self, context, error: check.InvalidField) -> None:
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(error))

    # -- silences -----------------------------------------------------------------------

    async def CreateSilence(self, request, context) -> api_pb2.Silence:
        principal = current_principal()
        authorize(principal, SILENCE_SETTERS)
        try:
            silence_id = req.silence_id_for(principal.name, req.request_id(request))
        except check.InvalidField as error:
            await self._invalid(context, error)
        await self._caught_up(self._silence_feed, context)
        async with self._lock(silence_id):
            now = self._clock.now()
            existing = self._silences.get(silence_id)
            if existing is not None:  # a retry: the first answer, nothing written
                return codec.silence_pb(existing, now)
            try:
                silence = req.new_silence_from(request, silence_id, principal.name, now)
            except check.InvalidField as error:
                await self._invalid(context, error)
            await self._writer.send(SILENCES, silence_id, codec.encode_silence(silence))
            self._silences.put(silence)
        return codec.silence_pb(silence, now)

    async def ListSilences(self, request, context) -> api_pb2.ListSilencesResponse:
        principal = current_principal()
        authorize(principal, SILENCE_READERS)
        await self._caught_up(self._silence_feed, context)
        now = self._clock.now()
        silences = self._silences.all(include_expired=request.include_expired, at=now)
        if principal.role is Role.DEPARTMENT:
            silences = [s for s in silences if req.concerns_department(s, principal.department)]
        return api_pb2.ListSilencesResponse(silences=[codec.silence_pb(s, now) for s in silences])

    async def ExpireSilence(self, request, context) -> api_pb2.Silence:
        authorize(current_principal(), SILENCE_SETTERS)
        try:
            silence_id = check.identifier("silence_id", request.silence_id)
        except check.InvalidField as error:
            await self._invalid(context, error)
        await self._caught_up(self._silence_feed, context)
        async with self._lock(silence_id):
            now = self._clock.now()
            silence = self._silences.get(silence_id)
            if silence is None:
                await context.abort(grpc.StatusCode.NOT_FOUND, f"silence {silence_id} not found")
            if silence.status(now) != EXPIRED:  # expiring an expired silence changes nothing
                silence = expire(silence, now)
                await self._writer.send(SILENCES, silence_id, codec.encode_silence(silence))
                self._silences.put(silence)
        return codec.silence_pb(silence, now)

    # -- notifications ------------------------------------------------------------------

    async def ListNotifications(self, request, context) -> api_pb2.ListNotificationsResponse:
        principal = current_principal()
        try:
            department = check.label("department", request.department) if request.department else None
            size = req.page_size(request.page_size)
            after = req.decode_page_token(request.page_token)
        except check.InvalidField as error:
            await self._invalid(context, error)
        _allow(principal, READERS, department, "list")
        # A department that names none lists its own; admins and services every department's.
        department = department or (principal.department if principal.role is Role.DEPARTMENT else None)
        await self._caught_up(self._notification_feed, context)
        page, more = self._notifications.page(department, after, size)
        return api_pb2.ListNotificationsResponse(
            notifications=[record.notification for record in page],
            states=[codec.notification_state_pb(record) for record in page],
            next_page_token=req.encode_page_token(page[-1].list_key) if more else "",
        )

    async def Acknowledge(self, request, context) -> api_pb2.AcknowledgeResponse:
        principal = current_principal()
        authorize(principal, ACKNOWLEDGERS)
        try:
            request_id = req.request_id(request)
            notification_id = check.identifier("notification_id", request.notification_id)
        except check.InvalidField as error:
            await self._invalid(context, error)
        await self._caught_up(self._notification_feed, context)
        record = self._notifications.get(notification_id)
        if record is None:
            await context.abort(grpc.StatusCode.NOT_FOUND, f"notification {notification_id} not found")
        _allow(principal, ACKNOWLEDGERS, record.department, "acknowledge")
        async with self._lock(notification_id):
            first = await self._earlier_answer(principal, request_id, notification_id, context)
            if first is not None:
                return first
            if record.is_acknowledged:
                return api_pb2.AcknowledgeResponse(notification_id=notification_id, already_acknowledged=True)
            value = codec.encode_acknowledged(
                req.acknowledgement_event_id(principal.name, request_id), record.receiver, notification_id,
                principal.name, request_id, self._clock.now(),
            )
            await self._writer.send(NOTIFICATIONS, record.receiver, value)
            metrics.ACKNOWLEDGEMENTS.labels("api").inc()
            # Read our own write before answering, so a retry here or a list anywhere sees it.
            await self._caught_up(self._notification_feed, context)
        return api_pb2.AcknowledgeResponse(notification_id=notification_id, already_acknowledged=False)

    async def _earlier_answer(
        self, principal: Principal, request_id: str, notification_id: str, context
    ) -> api_pb2.AcknowledgeResponse | None:
        """The answer to an earlier call with this request id, if one wrote an acknowledgement."""
        earlier = self._notifications.acknowledged_by_request(principal.name, request_id)
        if earlier is None:
            return None
        if earlier != notification_id:
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f"request_id: already used to acknowledge notification {earlier}; use a new request_id",
            )
        return api_pb2.AcknowledgeResponse(notification_id=notification_id, already_acknowledged=False)

    # -- subscriptions ------------------------------------------------------------------

    async def Subscribe(self, request: api_pb2.SubscribeRequest, context: grpc.aio.ServicerContext):
        try:
            department = check.label("department", request.department)
            authorize(current_principal(), SUBSCRIBERS, department)
            cursor = Cursor.parse(request.cursor) if request.cursor else None
        except (check.InvalidField, BadCursor) as error:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(error))
        except PermissionDenied as error:
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, str(error))
        metrics.SUBSCRIBERS.inc()
        try:
            # The pipeline decides what a subscriber gets (grouping, silences, dedup) and
            # records it as a `delivered` event carrying the notification: those are streamed.
            if self._live is None:
                await context.abort(grpc.StatusCode.UNAVAILABLE, "this replica does not serve this call")
            partition = await receiver_partition(self._bootstrap, department, cursor, self._security)
            events = self._live.follow(department, cursor, partial(
                read, self._bootstrap, department, partition, security=self._security))
            async for position, event in events:
                notification = subscription_delivery(event)
                if notification is not None:
                    await context.write(api_pb2.SubscribeResponse(notification=notification, cursor=str(position)))
        except BadCursor as error:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(error))
        except FellBehind as error:  # nothing is lost: the client resumes from its last cursor
            await context.abort(grpc.StatusCode.ABORTED, str(error))
        finally:
            metrics.SUBSCRIBERS.dec()


@dataclass(frozen=True)
class Serving:
    """What SideServer needs to serve NotificationService (no registrations on a worker), and
    the silences the pipeline asks."""

    registrations: list[Registration]
    on_ready: Callable[[], Awaitable[None]]
    on_stopped: Callable[[], Awaitable[None]]
    silences: SilenceStore


def serving(settings: ServiceSettings, clock: Clock, routing=None,
            retention: timedelta = DEFAULT_RETENTION, api: bool = True) -> Serving:
    """NotificationService with its read models: caught up before the server serves
    (`on_ready`), closed after it has stopped (`on_stopped`). Without `api` (a worker), only
    the silences the pipeline asks: no read model of notifications.v1 and no service.

    `routing` (a RoutingConfig) is accepted for what the API may come to check against the
    receivers; silences match labels, so none is needed today. `retention`: how long the read
    models keep a notification and an ended silence.
    """
    bootstrap, security = settings.kafka_bootstrap, settings.kafka_security
    silences = SilenceStore(retention)
    writer = RecordWriter(bootstrap, security)
    # No consumer group reads notify.silences.v1, so its feed dead-letters what it cannot read;
    # notifications.v1's bad records are the stream engine's to dead-letter.
    silence_feed = TopicFeed(bootstrap, [SILENCES], silences.apply, name="notify-silences", security=security,
                             dead_letter=writer.send_dead_letter)
    parts: list = [writer, silence_feed]
    registrations: list[Registration] = []
    if api:
        notifications, live = NotificationStore(retention), LiveSubscribers()
        notification_feed = TopicFeed(bootstrap, [NOTIFICATIONS], notifications.apply, name="notify-notifications",
                                      observe=live.publish, security=security)
        parts.append(notification_feed)
        service = NotificationApi(
            bootstrap, clock, silences=silences, silence_feed=silence_feed, notifications=notifications,
            notification_feed=notification_feed, writer=writer, live=live, security=security,
        )
        registrations.append((api_grpc.add_NotificationServiceServicer_to_server, service, SERVICE_NAME))

    async def on_ready() -> None:
        for part in parts:
            await part.start()

    async def on_stopped() -> None:
        for part in reversed(parts):
            await part.stop()

    return Serving(registrations=registrations, on_ready=on_ready, on_stopped=on_stopped, silences=silences)
