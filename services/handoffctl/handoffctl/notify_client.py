"""One call to the notify service (--notify, or NOTIFY_GRPC); a failed call exits as `fail` does."""

from __future__ import annotations

from pathlib import Path

import grpc
from google.protobuf.message import Message
from handoff.v1 import notification_service_pb2_grpc as notify_grpc

from common.grpcclient import channel
from handoffctl.client import TIMEOUT, fail

DEFAULT_NOTIFY = "127.0.0.1:50053"


def notify_call(address: str, token: str, ca: Path | None, method: str, request: Message,
                request_id: str = "") -> Message:
    """The response of one NotificationService call on a connection of its own."""
    with channel(address, token, ca) as connection:
        try:
            return getattr(notify_grpc.NotificationServiceStub(connection), method)(request, timeout=TIMEOUT)
        except grpc.RpcError as error:
            fail(error, token, request_id)
