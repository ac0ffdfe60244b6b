"""Two sla workers with a rebalance in the middle: no SLA event lost, none emitted twice."""

from __future__ import annotations

import time
import urllib.request
import uuid
from collections import Counter
from collections.abc import Iterator

import pytest
from handoff.v1 import handoff_service_pb2 as api
from handoff.v1 import handoff_service_pb2_grpc as api_grpc
from handoff.v1 import types_pb2
from prometheus_client.parser import text_string_to_metric_families

from common.topics import SLA_EVENTS
from devstack.stack import Stack
from tests.support import admin_channel, around_the_clock, pseudonym, read_events, running_stack, unique

pytestmark = pytest.mark.e2e

POLICIES = around_the_clock("12s", "10m")
LEGS = 24


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("sla-workers"), POLICIES) as stack:
        yield stack


def test_a_second_sla_worker_joining_mid_stream_loses_and_repeats_nothing(stack: Stack) -> None:
    # given legs for many customers whose ack clocks run on one sla worker
    department = unique("claims")
    with admin_channel(stack.services["handoff"].grpc) as channel:
        stub = api_grpc.HandoffServiceStub(channel)
        legs = [
            stub.CreateHandoff(api.CreateHandoffRequest(
                request_id=str(uuid.uuid4()), case_id=unique("case"), customer_ref=pseudonym(),
                department=department), timeout=15)
            for _ in range(LEGS)
        ]
    ids = {leg.handoff_id for leg in legs}
    # when a second worker joins before the deadlines, so partitions move between workers
    second = stack.start_service("sla", instance="sla-2")
    time.sleep(16)
    # then every ack clock has exactly one start, one warning per fraction and one breach
    expected = LEGS * 4  # clock_started, warning 0.5, warning 0.8, breached

    def ack_events(event) -> bool:
        return event.handoff_id in ids and event.clock == types_pb2.CLOCK_KIND_ACK

    # (read a little past the expected count, so a repeat would be seen)
    events = read_events(stack.bootstrap, SLA_EVENTS, ack_events, lambda found: len(found) > expected, timeout=8)
    changes = Counter((e.handoff_id, e.WhichOneof("change"), round(e.warning.fraction, 2)) for e in events)
    assert sorted(Counter(kind for (_, kind, _) in changes.elements()).items()) == [
        ("breached", LEGS), ("clock_started", LEGS), ("warning", 2 * LEGS)
    ]
    assert max(changes.values()) == 1, [key for key, count in changes.items() if count > 1]
    assert second.is_running() and stack.services["sla"].is_running()
    # and both workers breached clocks, so the partitions really were shared out
    assert breaches_counted(stack.services["sla"].endpoints["metrics"]) > 0
    assert breaches_counted(second.endpoints["metrics"]) > 0


def breaches_counted(url: str) -> float:
    with urllib.request.urlopen(url, timeout=10) as response:
        families = {f.name: f.samples for f in text_string_to_metric_families(response.read().decode())}
    return sum(s.value for s in families.get("handoff_sla_breaches", []) if s.name == "handoff_sla_breaches_total")
