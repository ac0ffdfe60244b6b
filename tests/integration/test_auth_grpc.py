"""Bearer-token auth and TLS on a real grpc.aio server, with a bytes-only servicer.

The servicer answers with the caller's name; given a department in the request, it first
checks that the caller may act on it.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from prometheus_client import REGISTRY

from common.auth import AuthInterceptor, Role, authorize, current_principal
from common.metrics import MetricsInterceptor
from common.tokenbook import TokenBook
from common.tls import channel_credentials, server_credentials

pytestmark = pytest.mark.integration

BOOK = TokenBook.parse_env(
    "tok-ada=ada:agent,tok-billing=billing-team:department:billing,tok-ops=ops:admin"
)
UNARY = "/test.auth.WhoAmI/Name"
STREAM = "/test.auth.WhoAmI/NameTwice"


def _name_after_check(request: bytes) -> bytes:
    principal = current_principal()
    authorize(principal, set(Role), request.decode() or None)
    return principal.name.encode()


async def _name(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
    return _name_after_check(request)


async def _name_twice(request: bytes, context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
    name = _name_after_check(request)
    yield name
    await asyncio.sleep(0)
    yield name


@asynccontextmanager
async def serving(credentials: grpc.ServerCredentials | None = None) -> AsyncIterator[int]:
    """A server on 127.0.0.1 with metrics and auth interceptors, health and WhoAmI."""
    server = grpc.aio.server(interceptors=[MetricsInterceptor(), AuthInterceptor(BOOK)])
    methods = {
        "Name": grpc.unary_unary_rpc_method_handler(_name),
        "NameTwice": grpc.unary_stream_rpc_method_handler(_name_twice),
    }
    server.add_generic_rpc_handlers(
        (grpc.method_handlers_generic_handler("test.auth.WhoAmI", methods),)
    )
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    if credentials is None:
        port = server.add_insecure_port("127.0.0.1:0")
    else:
        port = server.add_secure_port("127.0.0.1:0", credentials)
    await server.start()
    try:
        yield port
    finally:
        await server.stop(None)


def run(scenario: Callable[[grpc.aio.Channel], Awaitable[None]]) -> None:
    """Serve, open a plaintext channel, run the scenario on it, tear both down."""

    async def main() -> None:
        async with serving() as port:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
                await scenario(channel)

    asyncio.run(main())


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    """Call metadata carrying `token` the way our clients send it."""
    return (("authorization", f"Bearer {token}"),)


async def call_unary(
    channel: grpc.aio.Channel, metadata: object = None, request: bytes = b""
) -> bytes:
    """Call the unary WhoAmI method."""
    return await channel.unary_unary(UNARY)(request, metadata=metadata, timeout=10)


async def call_stream(
    channel: grpc.aio.Channel, metadata: object = None, request: bytes = b""
) -> list[bytes]:
    """Call the streaming WhoAmI method and collect its replies."""
    call = channel.unary_stream(STREAM)(request, metadata=metadata, timeout=10)
    return [reply async for reply in call]


CALLS = {"unary": call_unary, "stream": call_stream}


# --- bearer tokens ------------------------------------------------------------------


@pytest.mark.parametrize("call", CALLS)
@pytest.mark.parametrize(
    ("metadata", "details"),
    [
        (None, "missing bearer token"),
        ((("authorization", "tok-ada"),), "missing bearer token"),
        ((("authorization", "Basic tok-ada"),), "missing bearer token"),
        (bearer("tok-nobody"), "unknown token"),
    ],
    ids=["no header", "no scheme", "basic scheme", "unknown token"],
)
def test_call_without_a_known_token_is_unauthenticated(
    call: str, metadata: object, details: str
) -> None:
    async def scenario(channel: grpc.aio.Channel) -> None:
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await CALLS[call](channel, metadata)
        assert error.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert error.value.details() == details

    run(scenario)


def test_known_token_reaches_a_unary_handler_as_its_principal() -> None:
    async def scenario(channel: grpc.aio.Channel) -> None:
        assert await call_unary(channel, bearer("tok-ada")) == b"ada"
        assert await call_unary(channel, (("authorization", "bearer tok-ops"),)) == b"ops"

    run(scenario)


def test_known_token_reaches_a_streaming_handler_as_its_principal() -> None:
    async def scenario(channel: grpc.aio.Channel) -> None:
        assert await call_stream(channel, bearer("tok-billing")) == [b"billing-team"] * 2

    run(scenario)


def test_concurrent_calls_each_see_their_own_principal() -> None:
    tokens = {"tok-ada": b"ada", "tok-billing": b"billing-team", "tok-ops": b"ops"}

    async def scenario(channel: grpc.aio.Channel) -> None:
        calls = [call_unary(channel, bearer(token)) for token in tokens for _ in range(10)]
        streams = [call_stream(channel, bearer(token)) for token in tokens for _ in range(10)]
        names = await asyncio.gather(*calls)
        lists = await asyncio.gather(*streams)
        assert names == [name for name in tokens.values() for _ in range(10)]
        assert lists == [[name] * 2 for name in tokens.values() for _ in range(10)]

    run(scenario)


@pytest.mark.parametrize("call", CALLS)
def test_other_department_is_permission_denied(call: str) -> None:
    async def scenario(channel: grpc.aio.Channel) -> None:
        assert await CALLS[call](channel, bearer("tok-billing"), b"billing")
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await CALLS[call](channel, bearer("tok-billing"), b"claims")
        assert error.value.code() == grpc.StatusCode.PERMISSION_DENIED
        assert error.value.details() == "department billing may not act on legs of claims"
        assert await CALLS[call](channel, bearer("tok-ops"), b"claims")

    run(scenario)


def test_metrics_count_refused_calls_by_their_status() -> None:
    def count(code: str) -> float:
        labels = {"method": "Name", "code": code}
        return REGISTRY.get_sample_value("handoff_grpc_requests_total", labels) or 0.0

    before = {code: count(code) for code in ("UNAUTHENTICATED", "PERMISSION_DENIED")}

    async def scenario(channel: grpc.aio.Channel) -> None:
        for metadata, request in ((None, b""), (bearer("tok-billing"), b"claims")):
            with pytest.raises(grpc.aio.AioRpcError):
                await call_unary(channel, metadata, request)

    run(scenario)
    assert count("UNAUTHENTICATED") == before["UNAUTHENTICATED"] + 1
    assert count("PERMISSION_DENIED") == before["PERMISSION_DENIED"] + 1


def test_health_check_needs_no_token() -> None:
    async def scenario(channel: grpc.aio.Channel) -> None:
        stub = health_pb2_grpc.HealthStub(channel)
        reply = await stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING

    run(scenario)


# --- TLS ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path


def _x509_name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


Key = ec.EllipticCurvePrivateKey


def _issue(
    subject: str,
    key: Key,
    issuer: tuple[x509.Name, Key] | None,
    extensions: list[x509.ExtensionType],
) -> x509.Certificate:
    """A one-day certificate for `subject`; self-signed when `issuer` is None."""
    now = datetime.datetime.now(datetime.timezone.utc)
    issuer_name, issuer_key = issuer or (_x509_name(subject), key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_x509_name(subject))
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
    )
    for extension in extensions:
        critical = isinstance(extension, x509.BasicConstraints)
        builder = builder.add_extension(extension, critical=critical)
    return builder.sign(issuer_key, hashes.SHA256())


def _write(path: Path, item: x509.Certificate | Key) -> Path:
    if isinstance(item, x509.Certificate):
        path.write_bytes(item.public_bytes(serialization.Encoding.PEM))
    else:
        path.write_bytes(item.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ))
    return path


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """A throwaway CA, a server cert for 127.0.0.1 and localhost, a client cert, a stranger CA."""
    directory = tmp_path_factory.mktemp("pki")
    names = ("ca", "server", "client", "other")
    keys = {name: ec.generate_private_key(ec.SECP256R1()) for name in names}
    ca_ext: list[x509.ExtensionType] = [x509.BasicConstraints(ca=True, path_length=0)]
    ca = _issue("test CA", keys["ca"], None, ca_ext)
    other = _issue("stranger CA", keys["other"], None, ca_ext)
    loopback = x509.IPAddress(ipaddress.ip_address("127.0.0.1"))
    server = _issue("localhost", keys["server"], (ca.subject, keys["ca"]), [
        x509.SubjectAlternativeName([x509.DNSName("localhost"), loopback]),
        x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]),
    ])
    client = _issue("crm", keys["client"], (ca.subject, keys["ca"]), [
        x509.ExtendedKeyUsage([ExtendedKeyUsageOID.CLIENT_AUTH]),
    ])
    return Pki(
        ca=_write(directory / "ca.pem", ca),
        server_cert=_write(directory / "server.pem", server),
        server_key=_write(directory / "server.key", keys["server"]),
        client_cert=_write(directory / "client.pem", client),
        client_key=_write(directory / "client.key", keys["client"]),
        other_ca=_write(directory / "other-ca.pem", other),
    )


def attempt(
    server: grpc.ServerCredentials,
    client: grpc.ChannelCredentials | None,
    host: str = "127.0.0.1",
) -> bytes | grpc.StatusCode:
    """One authenticated unary call over the given transport: the reply or the status."""

    async def main() -> bytes | grpc.StatusCode:
        async with serving(server) as port:
            target = f"{host}:{port}"
            if client is None:
                channel = grpc.aio.insecure_channel(target)
            else:
                channel = grpc.aio.secure_channel(target, client)
            async with channel:
                try:
                    return await call_unary(channel, bearer("tok-ada"))
                except grpc.aio.AioRpcError as error:
                    return error.code()

    return asyncio.run(main())


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_tls_client_trusting_the_ca_gets_through(pki: Pki, host: str) -> None:
    server = server_credentials(pki.server_cert, pki.server_key)

    assert attempt(server, channel_credentials(pki.ca), host) == b"ada"


def test_plaintext_client_cannot_reach_a_tls_server(pki: Pki) -> None:
    server = server_credentials(pki.server_cert, pki.server_key)

    assert attempt(server, None) == grpc.StatusCode.UNAVAILABLE


def test_tls_client_trusting_another_ca_is_refused(pki: Pki) -> None:
    server = server_credentials(pki.server_cert, pki.server_key)

    assert attempt(server, channel_credentials(pki.other_ca)) == grpc.StatusCode.UNAVAILABLE


def test_mutual_tls_needs_a_client_certificate(pki: Pki) -> None:
    server = server_credentials(pki.server_cert, pki.server_key, client_ca_file=pki.ca)

    assert attempt(server, channel_credentials(pki.ca)) == grpc.StatusCode.UNAVAILABLE
    with_cert = channel_credentials(pki.ca, cert_file=pki.client_cert, key_file=pki.client_key)
    assert attempt(server, with_cert) == b"ada"


def test_missing_or_non_pem_tls_files_are_named(pki: Pki, tmp_path: Path) -> None:
    absent = tmp_path / "absent.pem"
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate")

    with pytest.raises(ValueError, match=f"TLS certificate {absent}: No such file"):
        server_credentials(absent, pki.server_key)
    with pytest.raises(ValueError, match=f"TLS client CA {garbage}: not a PEM file"):
        server_credentials(pki.server_cert, pki.server_key, client_ca_file=garbage)
    with pytest.raises(ValueError, match=f"TLS CA {absent}"):
        channel_credentials(absent)
    with pytest.raises(ValueError, match="needs both cert_file and key_file"):
        channel_credentials(pki.ca, cert_file=pki.client_cert)
