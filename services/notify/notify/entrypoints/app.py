"""The notify faust app: SLA breaches -> notifications on notifications.v1, once each."""

from __future__ import annotations

import faust
from handoff.v1 import notification_service_pb2, notification_service_pb2_grpc

from common.clock import Clock
from common.faustapp import SideServer, make_app, process_records, raw_topic, table
from common.security import ServerSecurity
from common.settings import ServiceSettings
from common.topics import NOTIFICATIONS, NOTIFY_APP, SLA_EVENTS
from notify import metrics
from notify.adapters.codec import breach_from, encode_requested
from notify.domain.notifications import notify_breach
from notify.entrypoints.grpc_api import CHANNEL, NotificationApi

APP_ID = NOTIFY_APP
SERVICE_NAME = notification_service_pb2.DESCRIPTOR.services_by_name["NotificationService"].full_name


def build(settings: ServiceSettings, security: ServerSecurity, clock: Clock) -> tuple[faust.App, SideServer]:
    app = make_app(APP_ID, settings)
    sla_topic = raw_topic(app, SLA_EVENTS.name)
    notifications_topic = raw_topic(app, NOTIFICATIONS.name)
    # Notification ids already requested: a breach read twice is notified once, across restarts.
    requested = table(app, "requested")

    async def on_sla_event(message, partition: int) -> None:
        breach = breach_from(message)
        if breach is None:
            return
        notification = notify_breach(breach)
        if requested.get(notification.notification_id) is not None:
            metrics.NOTIFICATIONS.labels(CHANNEL, "duplicate").inc()
            return
        value = encode_requested(notification, [CHANNEL], clock.now())
        await notifications_topic.send(key=notification.receiver.encode(), value=value)
        requested[notification.notification_id] = True
        metrics.NOTIFICATIONS.labels(CHANNEL, "requested").inc()

    @app.agent(sla_topic, concurrency=1)
    async def notify_breaches(stream: faust.StreamT) -> None:
        await process_records(app, stream, SLA_EVENTS, on_sla_event, APP_ID)

    api = NotificationApi(settings.kafka_bootstrap, clock)
    side = SideServer(
        app,
        "notify",
        settings,
        security,
        registrations=[(notification_service_pb2_grpc.add_NotificationServiceServicer_to_server, api, SERVICE_NAME)],
    )
    return app, side
