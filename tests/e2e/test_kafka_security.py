"""Kafka over SASL_SSL (SCRAM-SHA-512), as a production cluster speaks it: the broker gets a
second listener with a certificate made here; the handoff service (the confluent-kafka
stream engine, and aiokafka at its gRPC edge) and the sla worker, configured by KAFKA_SECURITY_PROTOCOL,
KAFKA_SASL_* and KAFKA_SSL_CA_FILE, work through it, and a wrong password or an untrusted
broker stops them at start-up with the reason."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from datetime import datetime, timezone
from dataclasses import dataclass
from pathlib import Path

import pytest
from handoff.v1 import handoff_events_pb2
from handoff.v1 import handoff_service_pb2 as api
from handoff.v1 import handoff_service_pb2_grpc as api_grpc
from kafka import KafkaProducer

from common.codec import new_envelope, to_timestamp
from common.kafkaio import topic_partitions
from common.kafkasecurity import KafkaRefused, KafkaSecurity, check_login, kafka_security
from common.localkafka import LocalKafka, SaslSslListener, create_topics
from common.topics import HANDOFF_EVENTS, SLA_EVENTS
from devstack.processes import ServiceFailed, start_service
from devstack.stack import Stack
from tests.e2e.test_tls import Pki, make_pki
from tests.support import admin_channel, pseudonym, read_events, unique, write_policies

pytestmark = pytest.mark.e2e

USER, PASSWORD = "handoff", "handoff-scram-secret"


@dataclass
class SecureKafka:
    kafka: LocalKafka
    pki: Pki
    workdir: Path

    def env(self, password: str = PASSWORD, ca: Path | None = None) -> dict[str, str]:
        return {"KAFKA_BOOTSTRAP": self.kafka.sasl_bootstrap, "KAFKA_SECURITY_PROTOCOL": "SASL_SSL",
                "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512", "KAFKA_SASL_USERNAME": USER,
                "KAFKA_SASL_PASSWORD": password, "KAFKA_SSL_CA_FILE": str(ca or self.pki.ca)}

    def security(self, password: str = PASSWORD, ca: Path | None = None) -> KafkaSecurity:
        return kafka_security({key: value for key, value in self.env(password, ca).items() if key != "KAFKA_BOOTSTRAP"})

    def handoff_env(self, **overrides: str) -> dict[str, str]:
        return self.service_env("handoff", **overrides)

    def service_env(self, service: str, **overrides: str) -> dict[str, str]:
        stack = Stack(self.workdir, write_policies(self.workdir), bootstrap=self.kafka.bootstrap)
        return {**stack.service_env(service), **self.env(), **overrides}


@pytest.fixture(scope="module")
def secure(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureKafka]:
    workdir = tmp_path_factory.mktemp("kafka-security")
    pki = make_pki(workdir)
    # Kafka reads a PEM key store: the unencrypted PKCS#8 key, then the certificate.
    keystore = workdir / "broker-keystore.pem"
    keystore.write_text(pki.server_key.read_text() + pki.server_cert.read_text())
    with LocalKafka(workdir / "kafka", sasl_ssl=SaslSslListener(keystore, {USER: PASSWORD})) as kafka:
        create_topics(kafka.bootstrap)  # as an operator would, on the broker's own listener
        yield SecureKafka(kafka, pki, workdir)


def test_the_handoff_service_works_through_sasl_ssl(secure: SecureKafka):
    # given the handoff service whose only way to Kafka is the SASL_SSL listener
    service = start_service("handoff", "handoff_svc", secure.handoff_env(), secure.workdir / "logs")
    try:
        # when a leg is created (the command goes through Kafka to the partition owner and back)
        customer = pseudonym()
        with admin_channel(service.grpc) as channel:
            leg = api_grpc.HandoffServiceStub(channel).CreateHandoff(api.CreateHandoffRequest(
                request_id=str(uuid.uuid4()), case_id=unique("case"), customer_ref=customer, department="billing"),
                timeout=30)
        # then its event is on handoff.events.v1, read with kafka-python through the same listener
        found = read_events(secure.kafka.sasl_bootstrap, HANDOFF_EVENTS, lambda e: e.handoff_id == leg.handoff_id,
                            lambda events: bool(events), timeout=30, **secure.security().kafka_python())
        assert found
        assert leg.department == "billing"
    finally:
        assert service.stop(timeout=30) == 0


def test_the_sla_stream_engine_works_through_sasl_ssl(secure: SecureKafka):
    # given an sla worker (confluent-kafka, transactions) whose only way to Kafka is the SASL_SSL listener
    service = start_service("sla", "sla", secure.service_env("sla", SLA_ROLE="worker"), secure.workdir / "logs")
    try:
        # when a leg is created on handoff.events.v1, written through the same listener
        handoff_id, customer = str(uuid.uuid4()), pseudonym()
        now = datetime.now(timezone.utc)
        event = handoff_events_pb2.HandoffEvent(
            envelope=new_envelope("test", now, now), handoff_id=handoff_id, case_id=unique("case"),
            customer_ref=customer, department="billing",
            created=handoff_events_pb2.HandoffCreated(created_at=to_timestamp(now)))
        with KafkaProducer(bootstrap_servers=secure.kafka.sasl_bootstrap, **secure.security().kafka_python()) as producer:
            producer.send(HANDOFF_EVENTS.name, key=customer.encode(), value=event.SerializeToString()).get(timeout=30)
        # then its clocks start: both clock_started events are committed on sla.events.v1
        started = read_events(secure.kafka.sasl_bootstrap, SLA_EVENTS, lambda e: e.handoff_id == handoff_id,
                              lambda events: len(events) >= 2, timeout=60, **secure.security().kafka_python())
        assert len(started) == 2
        assert {e.WhichOneof("change") for e in started} == {"clock_started"}
    finally:
        assert service.stop(timeout=30) == 0


def test_a_wrong_password_stops_the_sla_worker_at_start_naming_the_settings(secure: SecureKafka):
    with pytest.raises(ServiceFailed) as failed:
        start_service("sla-wrong-password", "sla", secure.service_env("sla", KAFKA_SASL_PASSWORD="not-the-password"),
                      secure.workdir / "logs", timeout=60)
    assert "check KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD" in str(failed.value)


def test_a_wrong_password_stops_the_service_at_start_naming_the_settings(secure: SecureKafka):
    with pytest.raises(ServiceFailed) as failed:
        start_service("handoff-wrong-password", "handoff_svc", secure.handoff_env(KAFKA_SASL_PASSWORD="not-the-password"),
                      secure.workdir / "logs", timeout=60)
    message = str(failed.value)
    assert f"refused user '{USER}' (SCRAM-SHA-512)" in message
    assert "invalid credentials" in message
    assert "check KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD" in message


def test_a_broker_signed_by_another_ca_stops_the_service_at_start(secure: SecureKafka):
    with pytest.raises(ServiceFailed) as failed:
        start_service("handoff-other-ca", "handoff_svc",
                      secure.handoff_env(KAFKA_SSL_CA_FILE=str(secure.pki.other_ca)), secure.workdir / "logs", timeout=60)
    assert "CERTIFICATE_VERIFY_FAILED" in str(failed.value) and "check KAFKA_SSL_CA_FILE" in str(failed.value)


def test_clients_with_the_right_password_read_metadata_and_with_a_wrong_one_are_refused(secure: SecureKafka):
    bootstrap = secure.kafka.sasl_bootstrap
    assert asyncio.run(topic_partitions(bootstrap, HANDOFF_EVENTS.name, secure.security())) == [0, 1, 2, 3]
    asyncio.run(check_login(bootstrap, secure.security(), timeout=10))
    with pytest.raises(KafkaRefused, match="invalid credentials"):
        asyncio.run(check_login(bootstrap, secure.security(password="wrong"), timeout=10))
