"""Shared givens of the notify pipeline's end-to-end tests (no tests here).

A stack of its own per module (broker, the three services, the three gateways and an SMTP
sink), a routing file with short durations, a real HTTP receiver that verifies each
webhook's HMAC signature and counts deliveries, and readers of notifications.v1.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import threading
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from aiohttp import web
from handoff.v1 import handoff_service_pb2 as api
from handoff.v1 import handoff_service_pb2_grpc as api_grpc
from handoff.v1 import types_pb2
from prometheus_client.parser import text_string_to_metric_families

from common.topics import NOTIFICATIONS
from devstack.gateways import DEV_WEBHOOK_SECRETS
from devstack.stack import Stack
from tests.support import admin_channel, pseudonym, read_events, running_stack, unique

SECRET = json.loads(DEV_WEBHOOK_SECRETS)["*"].encode()

# billing escalates (lead after 4s, head after 8s, duty manager after 16s); accounts has only
# a webhook; claims groups for 4s; field is a subscription feed; gone's webhook answers 404.
ROUTING = """
receivers:
  - name: ops
    channels: [{{type: log, stream: ops}}]
  - name: billing
    channels:
      - {{type: subscription}}
      - {{type: webhook, name: team-chat, url: "{hook}/billing"}}
    escalation:
      when: [kind=breach]
      levels:
        - {{after: 4s, receiver: billing-lead}}
        - {{after: 8s, receiver: billing-head}}
        - {{after: 16s, receiver: duty-manager}}
  - name: billing-lead
    channels: [{{type: webhook, url: "{hook}/billing-lead"}}]
  - name: billing-head
    channels:
      - {{type: webhook, url: "{hook}/billing-head"}}
      - {{type: email, to: [head-of-billing@example.org]}}
      - {{type: log, stream: heads}}
  - name: duty-manager
    channels: [{{type: webhook, url: "{hook}/duty-manager"}}]
  - name: accounts
    channels: [{{type: webhook, url: "{hook}/accounts"}}]
  - name: claims
    channels:
      - {{type: subscription}}
      - {{type: webhook, url: "{hook}/claims"}}
  - name: field
    channels: [{{type: subscription}}]
  - name: gone
    channels: [{{type: webhook, url: "http://127.0.0.1:{port}/no-such-path"}}]
route:
  receiver: ops
  group_by: [department, kind]
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
  routes:
    - {{matchers: [department=billing], receiver: billing}}
    - {{matchers: [department=accounts], receiver: accounts}}
    - {{matchers: [department=claims], receiver: claims, group_wait: 4s}}
    - {{matchers: [department=field], receiver: field}}
    - {{matchers: [department=gone], receiver: gone}}
delivery:
  call_timeout: 2s
  initial_backoff: 1s
  max_backoff: 2s
  jitter: 0.2
  max_attempts: 200
  max_elapsed: 10m
"""


class WebhookReceiver:
    """An HTTP server on a thread: accepts POSTs whose signature verifies, counts each delivery id."""

    def __init__(self) -> None:
        self.received: list[dict] = []
        self.bad_signatures = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.port = 0

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_post("/hooks/{name}", self._handle)
        self._runner = web.AppRunner(app)
        self._loop.run_until_complete(self._runner.setup())
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        self._loop.run_until_complete(site.start())
        self.port = site._server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        expected = "sha256=" + hmac.new(SECRET, body, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, request.headers.get("X-Handoff-Signature", "")):
            self.bad_signatures += 1
            return web.Response(status=401)
        document = json.loads(body)
        self.received.append({"hook": request.match_info["name"], "delivery_id": document["delivery_id"],
                              **document["notification"]})
        return web.Response(status=202)

    def start(self) -> "WebhookReceiver":
        self._thread.start()
        self._ready.wait(10)
        return self

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)

    def at(self, hook: str, handoff_id: str | None = None) -> list[dict]:
        return [r for r in list(self.received)
                if r["hook"] == hook and (handoff_id is None or r["handoff_id"] == handoff_id)]

    def repeated_deliveries(self) -> dict[str, int]:
        counts = Counter(r["delivery_id"] for r in list(self.received))
        return {delivery: n for delivery, n in counts.items() if n > 1}


@contextmanager
def notify_stack(workdir: Path, routing: str = ROUTING, **options) -> Iterator[tuple[Stack, WebhookReceiver]]:
    """A broker, the services and the gateways, notify routing with `routing` (its `{hook}` the
    receiver's URL); `options` go to running_stack. All stopped afterwards."""
    receiver = WebhookReceiver().start()
    routing = routing.format(hook=f"http://127.0.0.1:{receiver.port}/hooks", port=receiver.port)
    try:
        with running_stack(workdir, routing=routing, gateways=True, **options) as stack:
            yield stack, receiver
    finally:
        receiver.stop()


def create_leg(stack: Stack, department: str) -> api.Handoff:
    with admin_channel(stack.services["handoff"].grpc) as channel:
        return api_grpc.HandoffServiceStub(channel).CreateHandoff(api.CreateHandoffRequest(
            request_id=str(uuid.uuid4()), case_id=unique("case"), customer_ref=pseudonym(),
            department=department, priority=types_pb2.PRIORITY_NORMAL, summary="refund not received"), timeout=10)


def acknowledge_leg(stack: Stack, handoff_id: str) -> None:
    with admin_channel(stack.services["handoff"].grpc) as channel:
        api_grpc.HandoffServiceStub(channel).AcknowledgeHandoff(
            api.AcknowledgeHandoffRequest(request_id=str(uuid.uuid4()), handoff_id=handoff_id), timeout=10)


def notification_events(stack: Stack, change: str, until=lambda found: False, timeout: float = 10,
                        match=lambda event: True) -> list:
    """NotificationEvents of one kind of change on notifications.v1, read until `until(found)`."""
    return read_events(stack.bootstrap, NOTIFICATIONS, lambda e: e.WhichOneof("change") == change and match(e),
                       until, timeout)


def counter(stack: Stack, service: str, name: str, **labels: str) -> float:
    """The sum of a counter's samples with `labels` on a service's /metrics."""
    with urllib.request.urlopen(stack.services[service].endpoints["metrics"], timeout=10) as response:
        text = response.read().decode()
    return sum(sample.value for family in text_string_to_metric_families(text) for sample in family.samples
               if sample.name == f"{name}_total" and all(sample.labels.get(k) == v for k, v in labels.items()))

