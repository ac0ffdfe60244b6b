"""NotificationService over gRPC. Subscribe streams a department's notifications."""

from __future__ import annotations

import grpc
from handoff.v1 import notification_service_pb2 as api_pb2
from handoff.v1 import notification_service_pb2_grpc as api_grpc

from common import validation as check
from common.auth import PermissionDenied, Role, authorize, current_principal
from common.clock import Clock
from notify import metrics
from notify.adapters.codec import occurred_at, requested_notification
from notify.adapters.feed import BadCursor, Cursor, follow

CHANNEL = "subscription"
# A department hears its own notifications; admins and services any department's.
SUBSCRIBERS = {Role.DEPARTMENT, Role.ADMIN, Role.SERVICE}


class NotificationApi(api_grpc.NotificationServiceServicer):
    """Methods not yet offered answer UNIMPLEMENTED (the generated base)."""

    def __init__(self, bootstrap: str, clock: Clock) -> None:
        self._bootstrap = bootstrap
        self._clock = clock

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
            async for position, event in follow(self._bootstrap, department, cursor):
                notification = requested_notification(event)
                if notification is None:
                    continue
                await context.write(api_pb2.SubscribeResponse(notification=notification, cursor=str(position)))
                metrics.NOTIFICATIONS.labels(CHANNEL, "delivered").inc()
                lag = (self._clock.now() - occurred_at(notification)).total_seconds()
                metrics.DELIVERY_LATENCY.labels(CHANNEL).observe(max(lag, 0.0))
        except BadCursor as error:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(error))
        finally:
            metrics.SUBSCRIBERS.dec()
