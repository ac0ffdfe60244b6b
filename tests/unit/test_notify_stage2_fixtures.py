"""Givens shared by the stage-2 unit tests: a routing file, a fixed clock, the Dispatcher
with dict tables, a fake silence source and no gateways (no tests here). The routing file
on disk, the settable clock and the recording `send` serve notify's other unit tests too."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest
from handoff.v1 import notifications_pb2

from notify.adapters import codec
from notify.adapters.routing_file import RoutingConfig, load_routing
from notify.domain.notifications import BREACH, Notification
from notify.entrypoints.app import STAGE2_TABLES
from notify.entrypoints.deliverer import Deliverer
from notify.entrypoints.dispatcher import Dispatcher
from notify.entrypoints.escalator import Escalator
from notify.entrypoints.grouper import Grouper
from tests.unit.conftest import T0

ROUTING = """
receivers:
  - name: ops
    channels: [{type: log}]
  - name: billing
    channels: [{type: subscription}, {type: webhook, name: team-chat, url: "http://127.0.0.1:9/hooks/b"}]
    escalation:
      when: [kind=breach]
      levels: [{after: 15m, receiver: billing-lead}]
  - name: billing-lead
    channels: [{type: email, to: [lead@example.org]}]
  - name: claims
    channels: [{type: subscription}]
route:
  receiver: ops
  group_wait: 0s
  routes:
    - {matchers: [department=billing], receiver: billing}
    - {matchers: [department=claims], receiver: claims, group_by: [department], group_wait: 30s}
"""


class Clock:
    def __init__(self) -> None:
        self.at = T0

    def now(self):
        return self.at


def routing_of(tmp_path: Path, text: str = ROUTING) -> RoutingConfig:
    """`text` loaded as notify's routing file."""
    path = tmp_path / "routing.yaml"
    path.write_text(text)
    return load_routing(path)


def recorder() -> tuple[list, Callable[[str, bytes], None]]:
    """A `send` that keeps each (key, NotificationEvent) it is given, and the list it keeps them in."""
    sent: list[tuple[str, notifications_pb2.NotificationEvent]] = []

    def send(key: str, value: bytes) -> None:
        sent.append((key, notifications_pb2.NotificationEvent.FromString(value)))

    return sent, send


def run_now(coroutine) -> None:
    """The delivery loop of a unit test: the call is made, and its outcome queued, at once."""
    asyncio.run(coroutine)


class NoGateways:
    def configured(self, kind: str) -> bool:
        return False


def notification(kind: str = BREACH, department: str = "billing", handoff_id: str = "h-1") -> Notification:
    key = f"{kind}:{handoff_id}:ack"
    return Notification(
        notification_id=f"n-{key}", key=key, kind=kind, receiver=department, department=department,
        priority="HIGH", handoff_id=handoff_id, case_id="case-1", customer_ref="cust-1", clock="ack",
        title=f"{kind} of {handoff_id}", body="", occurred_at=T0, category="refund",
    )


def dispatcher_for(tables: dict, routing: RoutingConfig, silences, send, clock, dead_letter,
                   recorded=None, history_age=None) -> Dispatcher:
    """A Dispatcher on `tables`, with no gateways, its timers on `clock` (records stamped by `recorded`);
    `history_age`: notifications older than that when read are recorded, not delivered."""
    recorded = recorded or clock
    return Dispatcher(tables, routing, silences, send, clock,
                      Deliverer(NoGateways(), routing, tables["deliveries"], tables["pending"], send, dead_letter,
                                recorded, run_now),
                      Escalator(tables["escalations"], routing, send, clock, recorded),
                      Grouper(tables["groups"], routing, send, clock, recorded), recorded,
                      history_age=history_age)


@pytest.fixture
def stage2(tmp_path: Path):
    routing = routing_of(tmp_path)
    clock, silences = Clock(), []
    sent, send = recorder()
    tables = {name: {} for name in STAGE2_TABLES}
    dead = []

    def dead_letter(job, value: bytes, reason: str) -> None:
        dead.append((job.delivery_id, reason))

    dispatcher = dispatcher_for(tables, routing, lambda at: list(silences), send, clock, dead_letter)
    return dispatcher, tables, sent, silences, clock


def feed(dispatcher: Dispatcher, *values: bytes) -> None:
    for value in values:
        dispatcher.on_event(notifications_pb2.NotificationEvent.FromString(value), 0)


def requested(item: Notification, channels=("subscription", "team-chat"), deliver_history: bool = False) -> bytes:
    return codec.encode_requested(item, list(channels), T0, deliver_history=deliver_history)


def changes(sent) -> list[str]:
    return [event.WhichOneof("change") for _, event in sent]
