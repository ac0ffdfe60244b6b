"""The handoff service over TLS, as configured by TLS_CERT_FILE and TLS_KEY_FILE: clients
that trust its CA get through; plaintext clients and clients trusting another CA do not.

Only the handoff service runs here (with its broker): the calls made need nothing else,
and the stack's other services would only add start-up time.
"""

from __future__ import annotations

import datetime
import ipaddress
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from grpc_health.v1 import health_pb2, health_pb2_grpc
from handoff.v1 import handoff_service_pb2 as api
from handoff.v1 import handoff_service_pb2_grpc as api_grpc

from common.grpcclient import channel
from common.localkafka import LocalKafka, create_topics
from common.tls import channel_credentials
from devstack.processes import start_service
from devstack.stack import ADMIN_TOKEN, Stack
from tests.support import pseudonym, unique, write_policies

pytestmark = pytest.mark.e2e

TIMEOUT = 10


@dataclass(frozen=True)
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    other_ca: Path


def _certificate(subject: str, key: ec.EllipticCurvePrivateKey, issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey] | None,
                 extensions: list[x509.ExtensionType]) -> x509.Certificate:
    """A one-day certificate for `subject`; self-signed when `issuer` is None."""
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    issuer_name, issuer_key = issuer or (name, key)
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder().subject_name(name).issuer_name(issuer_name).public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1)))
    for extension in extensions:
        builder = builder.add_extension(extension, critical=isinstance(extension, x509.BasicConstraints))
    return builder.sign(issuer_key, hashes.SHA256())


def _write(path: Path, item: x509.Certificate | ec.EllipticCurvePrivateKey) -> Path:
    if isinstance(item, x509.Certificate):
        path.write_bytes(item.public_bytes(serialization.Encoding.PEM))
    else:
        path.write_bytes(item.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                            serialization.NoEncryption()))
    return path


def make_pki(directory: Path) -> Pki:
    """A throwaway CA with a server certificate for 127.0.0.1, and a stranger CA."""
    keys = {name: ec.generate_private_key(ec.SECP256R1()) for name in ("ca", "server", "other")}
    ca_constraints: list[x509.ExtensionType] = [x509.BasicConstraints(ca=True, path_length=0)]
    ca = _certificate("handoff test CA", keys["ca"], None, ca_constraints)
    other = _certificate("stranger CA", keys["other"], None, ca_constraints)
    server = _certificate("handoff", keys["server"], (ca.subject, keys["ca"]), [
        x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]),
        x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
    ])
    return Pki(ca=_write(directory / "ca.pem", ca), server_cert=_write(directory / "server.pem", server),
               server_key=_write(directory / "server.key", keys["server"]),
               other_ca=_write(directory / "other-ca.pem", other))


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def address(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Iterator[str]:
    """The gRPC address of a handoff service that serves TLS only."""
    workdir = tmp_path_factory.mktemp("tls")
    with LocalKafka(workdir / "kafka") as kafka:
        create_topics(kafka.bootstrap)
        stack = Stack(workdir, write_policies(workdir), bootstrap=kafka.bootstrap)
        env = {**stack.service_env("handoff"), "TLS_CERT_FILE": str(pki.server_cert), "TLS_KEY_FILE": str(pki.server_key)}
        service = start_service("handoff", "handoff_svc", env, workdir / "logs")
        try:
            yield service.grpc
        finally:
            assert service.stop(timeout=30) == 0


def create_request() -> api.CreateHandoffRequest:
    return api.CreateHandoffRequest(request_id=str(uuid.uuid4()), case_id=unique("case"),
                                    customer_ref=pseudonym(), department=unique("billing"))


def status_of(call) -> grpc.StatusCode:
    try:
        call()
    except grpc.RpcError as error:
        return error.code()
    return grpc.StatusCode.OK


def test_a_client_trusting_the_ca_creates_and_reads_a_leg(address: str, pki: Pki) -> None:
    # given a client that trusts the service's CA
    with channel(address, ADMIN_TOKEN, ca_file=pki.ca) as secure:
        stub = api_grpc.HandoffServiceStub(secure)
        # when it creates a leg and reads it back
        created = stub.CreateHandoff(create_request(), timeout=TIMEOUT)
        found = stub.GetHandoff(api.GetHandoffRequest(handoff_id=created.handoff_id), timeout=TIMEOUT)
    # then both calls went through and agree
    assert found == created
    assert created.handoff_id


def test_a_plaintext_client_is_refused(address: str) -> None:
    with channel(address, ADMIN_TOKEN) as plaintext:
        code = status_of(lambda: api_grpc.HandoffServiceStub(plaintext).CreateHandoff(create_request(), timeout=TIMEOUT))
    assert code == grpc.StatusCode.UNAVAILABLE


def test_a_client_trusting_another_ca_is_refused(address: str, pki: Pki) -> None:
    with channel(address, ADMIN_TOKEN, ca_file=pki.other_ca) as stranger:
        code = status_of(lambda: api_grpc.HandoffServiceStub(stranger).CreateHandoff(create_request(), timeout=TIMEOUT))
    assert code == grpc.StatusCode.UNAVAILABLE


def test_tls_does_not_stand_in_for_a_token(address: str, pki: Pki) -> None:
    # given a TLS client that trusts the CA but sends no token
    with grpc.secure_channel(address, channel_credentials(pki.ca)) as secure:
        # then the health check answers, and every HandoffService call is unauthenticated
        health = health_pb2_grpc.HealthStub(secure).Check(health_pb2.HealthCheckRequest(), timeout=TIMEOUT)
        code = status_of(lambda: api_grpc.HandoffServiceStub(secure).CreateHandoff(create_request(), timeout=TIMEOUT))
    assert health.status == health_pb2.HealthCheckResponse.SERVING
    assert code == grpc.StatusCode.UNAUTHENTICATED
