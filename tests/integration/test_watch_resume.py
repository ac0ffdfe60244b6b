"""`handoffctl watch` against a real gRPC server on loopback that ends a stream the way notify
ends one that fell too far behind (ABORTED): watch subscribes again with its last cursor, so
nothing is missed and nothing is printed twice."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from concurrent import futures

import grpc
from handoff.v1 import notification_service_pb2 as api_pb2
from handoff.v1 import notification_service_pb2_grpc as api_grpc
from handoff.v1 import notifications_pb2

import pytest

pytestmark = pytest.mark.integration
NOTIFICATIONS = {"0:1": "n-1", "0:2": "n-2", "0:3": "n-3"}


class FallsBehindOnce(api_grpc.NotificationServiceServicer):
    """Streams the notifications after the request's cursor; the first stream ends ABORTED after one."""

    def __init__(self) -> None:
        self.cursors: list[str] = []
        self._lock = threading.Lock()

    def Subscribe(self, request, context):
        with self._lock:
            self.cursors.append(request.cursor)
            first = len(self.cursors) == 1
        after = [cursor for cursor in NOTIFICATIONS if cursor > request.cursor]
        for sent, cursor in enumerate(after):
            if first and sent == 1:
                context.abort(grpc.StatusCode.ABORTED, "the subscriber fell more than 10000 notifications behind; "
                                                       "subscribe again with the last cursor received")
            yield api_pb2.SubscribeResponse(cursor=cursor, notification=notifications_pb2.Notification(
                notification_id=NOTIFICATIONS[cursor], receiver="billing", title="breach"))


def test_watch_resumes_from_its_last_cursor_when_its_stream_fell_behind() -> None:
    servicer = FallsBehindOnce()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    api_grpc.add_NotificationServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        env = {key: value for key, value in os.environ.items() if key != "HANDOFF_CA"}
        watched = subprocess.run(
            [sys.executable, "-m", "handoffctl.main", "watch", "billing", "--notify", f"127.0.0.1:{port}",
             "--token", "t", "--count", "3", "--json"], capture_output=True, text=True, timeout=60, env=env)
    finally:
        server.stop(grace=None)

    assert watched.returncode == 0, watched.stderr
    printed = [json.loads(line) for line in watched.stdout.splitlines()]
    assert [line["notification_id"] for line in printed] == ["n-1", "n-2", "n-3"]
    assert servicer.cursors == ["", "0:1"]
    assert "stream lost (ABORTED); reconnecting" in watched.stderr
