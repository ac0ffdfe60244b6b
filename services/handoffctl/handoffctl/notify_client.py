"""One call to the notify service (--notify, or NOTIFY_GRPC); a failed call exits as `fail` does."""

from __future__ import annotations

from pathlib import Path

from google.protobuf.message import Message
from handoff.v1 import notification_service_pb2_grpc as notify_grpc

from handoffctl.client import stub_call

DEFAULT_NOTIFY = "127.0.0.1:50053"


def notify_call(address: str, token: str, ca: Path | None, method: str, request: Message,
                request_id: str = "") -> Message:
    """The response of one NotificationService call on a connection of its own."""
    return stub_call(notify_grpc.NotificationServiceStub, address, token, ca, method, request, request_id)
