"""What an SRE relies on from every process: /metrics, gRPC health, dead letters."""

from __future__ import annotations

import urllib.request
import uuid
from collections.abc import Iterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from handoff.v1 import handoff_service_pb2 as api
from handoff.v1 import handoff_service_pb2_grpc as api_grpc
from kafka import KafkaProducer
from prometheus_client.parser import text_string_to_metric_families

from common.topics import HANDOFF_EVENTS, SLA_EVENTS
from devstack.stack import Stack
from tests.support import admin_channel, pseudonym, read_records, running_stack, wait_for

pytestmark = pytest.mark.e2e

EXPECTED_METRICS = {
    "handoff": {"handoff_legs_created", "handoff_grpc_requests", "handoff_grpc_request_duration_seconds"},
    "sla": {"handoff_sla_clocks_started", "handoff_sla_breaches", "handoff_sla_running_clocks",
            "handoff_dlq_records"},
    "notify": {"handoff_notifications", "handoff_notification_delivery_seconds", "handoff_subscribers",
               "handoff_escalations", "handoff_notifications_suppressed", "handoff_delivery_retries"},
}


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("operations")) as stack:
        with admin_channel(stack.services["handoff"].grpc) as channel:
            # one leg through the pipeline, so counters with labels have samples
            api_grpc.HandoffServiceStub(channel).CreateHandoff(
                api.CreateHandoffRequest(request_id=str(uuid.uuid4()), case_id="C-1", customer_ref=pseudonym(),
                                         department="billing"),
                timeout=10,
            )
        yield stack


def scrape(url: str) -> dict[str, list]:
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.status == 200
        text = response.read().decode()
    return {family.name: family.samples for family in text_string_to_metric_families(text)}


@pytest.mark.parametrize("service", ["handoff", "sla", "notify"])
def test_every_process_serves_parseable_metrics_with_its_names(stack: Stack, service: str) -> None:
    url = stack.services[service].endpoints["metrics"]
    missing = lambda: EXPECTED_METRICS[service] - set(scrape(url))  # noqa: E731
    assert wait_for(lambda: not missing(), timeout=20), f"missing metrics: {missing()}"


def test_metrics_count_the_legs_created(stack: Stack) -> None:
    families = scrape(stack.services["handoff"].endpoints["metrics"])
    created = [s for s in families["handoff_legs_created"] if s.name == "handoff_legs_created_total"]
    assert [(s.labels, s.value) for s in created] == [({"department": "billing", "priority": "normal"}, 1.0)]


@pytest.mark.parametrize("service", ["handoff", "sla", "notify"])
def test_every_process_reports_serving_over_grpc_health(stack: Stack, service: str) -> None:
    with grpc.insecure_channel(stack.services[service].grpc) as channel:
        response = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=""), timeout=5)
    assert response.status == health_pb2.HealthCheckResponse.SERVING


def test_a_malformed_handoff_event_goes_to_the_dlq_with_its_reason(stack: Stack) -> None:
    # given garbage on handoff.events.v1
    key, garbage = pseudonym().encode(), b"\xff\x00 not protobuf " + uuid.uuid4().bytes
    with KafkaProducer(bootstrap_servers=stack.bootstrap) as producer:
        producer.send(HANDOFF_EVENTS.name, key=key, value=garbage).get(timeout=10)
    # when its consumers (the sla engine, the handoff owner, notify) read it
    records = read_records(
        stack.bootstrap, HANDOFF_EVENTS.dlq, lambda rs: len([r for r in rs if r.value == garbage]) >= 3
    )
    # then the DLQ holds the original bytes once per consumer, with the reason and origin in headers
    dead = [r for r in records if r.value == garbage]
    assert sorted(dict(r.headers)["dlq.consumer"] for r in dead) == [b"handoff-legs", b"handoff-notify", b"handoff-sla"]
    for record in dead:
        headers = dict(record.headers)
        assert record.key == key
        assert headers["dlq.topic"] == HANDOFF_EVENTS.name.encode()
        assert b"HandoffEvent" in headers["dlq.error"]


def test_a_malformed_sla_event_is_dead_lettered_by_its_consumer_and_both_services_keep_going(stack: Stack) -> None:
    # sla writes sla.events.v1 and no longer reads it back; notify is its consumer
    garbage = b"\x08\x96\x01 broken " + uuid.uuid4().bytes
    with KafkaProducer(bootstrap_servers=stack.bootstrap) as producer:
        producer.send(SLA_EVENTS.name, key=b"cust-x", value=garbage).get(timeout=10)
    records = read_records(
        stack.bootstrap, SLA_EVENTS.dlq, lambda rs: len([r for r in rs if r.value == garbage]) >= 1
    )
    consumers = sorted(dict(r.headers)["dlq.consumer"] for r in records if r.value == garbage)
    assert consumers == [b"handoff-notify"]
    assert all(stack.services[name].is_running() for name in ("sla", "notify"))
