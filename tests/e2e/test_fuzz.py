"""Fuzzing every RPC of every service and every consumed topic, against the real stack.

Requests are generated from the methods' own descriptors: each field present or missing,
strings empty, odd or huge, numbers at their bounds, enum values nobody defined, timestamps
outside any calendar, nested messages likewise; and raw bytes that are no request at all.
No call may answer UNKNOWN or INTERNAL (the server broke). Records of random bytes and
truncated protobuf on every topic a service consumes must each reach a dead-letter topic.
Afterwards the services still do their work: a leg is created, its clocks start and its
notifications can be listed.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator

import grpc
import pytest
from confluent_kafka import Producer
from google.protobuf.descriptor import FieldDescriptor
from handoff.v1 import channel_gateway_pb2, handoff_service_pb2, notification_service_pb2, sla_service_pb2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from common.codec import MalformedRecord, decode
from common.grpcclient import channel
from common.topics import CATALOGUE, HANDOFF_REPLIES, TopicSpec
from devstack.stack import ADMIN_TOKEN, SERVICE_TOKEN, Stack
from tests.support import around_the_clock, read_records, running_stack, unique, wait_for

pytestmark = pytest.mark.e2e

EXAMPLES = 25
REPLICA = "handoff-1"  # the stack's handoff process (its INSTANCE)
CALL_TIMEOUT_S = 5.0
BROKEN = {grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL}
# (process, proto module, service) for every service a deployment exposes.
SERVICES = (
    ("handoff", handoff_service_pb2, "HandoffService"),
    ("sla", sla_service_pb2, "SlaService"),
    ("notify", notification_service_pb2, "NotificationService"),
    ("gateway-webhook", channel_gateway_pb2, "ChannelGateway"),
    ("gateway-email", channel_gateway_pb2, "ChannelGateway"),
    ("gateway-log", channel_gateway_pb2, "ChannelGateway"),
)
METHODS = [(process, module.DESCRIPTOR.services_by_name[name].methods_by_name[method])
           for process, module, name in SERVICES
           for method in module.DESCRIPTOR.services_by_name[name].methods_by_name]

_INT_BOUNDS = {
    FieldDescriptor.TYPE_INT32: (-2**31, 2**31 - 1), FieldDescriptor.TYPE_SINT32: (-2**31, 2**31 - 1),
    FieldDescriptor.TYPE_SFIXED32: (-2**31, 2**31 - 1), FieldDescriptor.TYPE_INT64: (-2**63, 2**63 - 1),
    FieldDescriptor.TYPE_SINT64: (-2**63, 2**63 - 1), FieldDescriptor.TYPE_SFIXED64: (-2**63, 2**63 - 1),
    FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1), FieldDescriptor.TYPE_FIXED32: (0, 2**32 - 1),
    FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1), FieldDescriptor.TYPE_FIXED64: (0, 2**64 - 1),
}
_ODD_TEXT = ["", " ", "\x00", "ü" * 300, "x" * 100_000, "../../etc/passwd", "' OR 1=1 --", "billing",
             "%s%n", "\u202e", "-1", "9" * 40, str(uuid.uuid4())]


def _integers(low: int, high: int) -> st.SearchStrategy[int]:
    return st.one_of(st.integers(low, high), st.sampled_from([low, high, 0, -1 if low < 0 else 1]))


def _scalar(field: FieldDescriptor) -> st.SearchStrategy:
    kind = field.type
    if kind == FieldDescriptor.TYPE_STRING:
        return st.one_of(st.text(max_size=40), st.sampled_from(_ODD_TEXT))
    if kind == FieldDescriptor.TYPE_BYTES:
        return st.binary(max_size=64)
    if kind == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if kind in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        return st.floats(width=64 if kind == FieldDescriptor.TYPE_DOUBLE else 32)
    if kind == FieldDescriptor.TYPE_ENUM:
        # Open enums: any int32 is a value on the wire, most of them undefined.
        return st.one_of(st.sampled_from([v.number for v in field.enum_type.values]), _integers(-2**31, 2**31 - 1))
    return _integers(*_INT_BOUNDS[kind])


def _message(descriptor, depth: int = 0) -> st.SearchStrategy[dict]:
    """A dict of field name -> generated value; missing fields are left out."""
    if descriptor.full_name in ("google.protobuf.Timestamp", "google.protobuf.Duration"):
        return st.fixed_dictionaries({"seconds": _integers(-2**63, 2**63 - 1), "nanos": _integers(-2**31, 2**31 - 1)})
    fields = {}
    for field in descriptor.fields:
        if field.type == FieldDescriptor.TYPE_MESSAGE:
            if depth >= 2 or field.message_type.GetOptions().map_entry:
                continue
            value = _message(field.message_type, depth + 1)
        else:
            value = _scalar(field)
        if field.is_repeated:
            value = st.lists(value, max_size=3)
        fields[field.name] = st.one_of(st.none(), value)
    return st.fixed_dictionaries(fields)


def _fill(message, values: dict) -> None:
    for name, value in values.items():
        if value is None:
            continue
        field = message.DESCRIPTOR.fields_by_name.get(name)
        try:
            if field is None:  # a Timestamp's or Duration's seconds and nanos
                setattr(message, name, value)
            elif field.type == FieldDescriptor.TYPE_MESSAGE:
                if field.is_repeated:
                    for item in value:
                        _fill(getattr(message, name).add(), item)
                else:
                    _fill(getattr(message, name), value)
            elif field.is_repeated:
                getattr(message, name).extend(value)
            else:
                setattr(message, name, value)
        except (ValueError, TypeError):
            pass  # a value this field's type cannot hold; the field stays as it was


def request_bytes(method) -> st.SearchStrategy[bytes]:
    """Requests of `method`'s input type, or bytes that are not one."""
    def build(values: dict) -> bytes:
        message = method.input_type._concrete_class()
        _fill(message, values)
        return message.SerializeToString()
    garbage = st.one_of(st.binary(max_size=200), st.sampled_from([b"\xff" * 20, b"\x0a\xff\xff\xff\xff\x0f", b"\x08"]))
    return st.one_of(_message(method.input_type).map(build), garbage)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("fuzz"), around_the_clock("1h", "1d"), gateways=True) as stack:
        yield stack


def _caller(address: str, method, token: str):
    connection = channel(address, token)
    path = f"/{method.containing_service.full_name}/{method.name}"
    if method.server_streaming:
        return connection, connection.unary_stream(path)
    return connection, connection.unary_unary(path)


@pytest.mark.parametrize("process, method", METHODS, ids=[f"{p}.{m.name}" for p, m in METHODS])
def test_no_request_breaks_a_service(stack: Stack, process: str, method) -> None:
    address = stack.services[process].grpc
    token = SERVICE_TOKEN if process.startswith("gateway") else ADMIN_TOKEN
    connection, call = _caller(address, method, token)
    answered: list[grpc.StatusCode] = []

    @settings(max_examples=EXAMPLES, deadline=None, database=None,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                     HealthCheck.data_too_large])
    @given(request_bytes(method))
    def one(payload: bytes) -> None:
        try:
            if method.server_streaming:
                responses = call(payload, timeout=1.0)
                for _ in responses:
                    break
                responses.cancel()
            else:
                call(payload, timeout=CALL_TIMEOUT_S)
            answered.append(grpc.StatusCode.OK)
        except grpc.RpcError as error:
            code = error.code()
            answered.append(code)
            assert code not in BROKEN, f"{method.full_name} answered {code.name}: {error.details()} to {payload[:200]!r}"

    try:
        one()
    finally:
        connection.close()
    assert len(answered) >= EXAMPLES
    stack.check_alive()


def _bad_records(spec: TopicSpec) -> list[bytes]:
    """Values that are not a record of `spec`: random bytes, truncated and empty ones."""
    rng = random.Random(spec.name)
    candidates = [bytes(rng.randrange(256) for _ in range(rng.randrange(1, 120))) for _ in range(40)]
    candidates += [b"", b"\x0a\x05ab", b"\x08", b"\xff\xff\xff", b"\x12\x80\x80\x80\x80\x80\x80\x80\x80\x80\x01"]
    bad = []
    for value in candidates:
        try:
            decode(spec, value)
        except MalformedRecord:
            bad.append(value)
    return bad[:20]


def _consumed_topics() -> list[TopicSpec]:
    """Topics a service's consumer group (or, for replies, the addressed replica) reads, and
    notify.silences.v1, which only notify's silences read model tails and dead-letters from."""
    return [spec for spec in CATALOGUE if set(spec.readers) & {"handoff", "sla", "notify"}]


def test_bad_records_on_every_consumed_topic_go_to_a_dead_letter_topic(stack: Stack) -> None:
    producer = Producer({"bootstrap.servers": stack.bootstrap, "acks": "all", "partitioner": "murmur2_random"})
    sent: dict[str, set[tuple[int, int]]] = {}

    def delivered(error, message) -> None:
        assert error is None, error
        sent.setdefault(message.topic(), set()).add((message.partition(), message.offset()))

    for spec in _consumed_topics():
        for number, value in enumerate(_bad_records(spec)):
            # A reply is read only by the replica it is addressed to (its key).
            key = REPLICA if spec is HANDOFF_REPLIES else f"fuzz-{number}"
            producer.produce(spec.name, key=key.encode(), value=value, on_delivery=delivered)
    assert producer.flush(30) == 0
    for spec in _consumed_topics():
        wanted = sent[spec.name]
        assert len(wanted) >= 10, spec.name

        def where(records: list) -> set[tuple[int, int]]:
            found = set()
            for record in records:
                headers = dict(record.headers or [])
                if headers.get("dlq.topic", b"").decode() == spec.name:
                    found.add((int(headers["dlq.partition"]), int(headers["dlq.offset"])))
            return found

        records = read_records(stack.bootstrap, spec.dlq, lambda records: wanted <= where(records), timeout=60)
        missing = wanted - where(records)
        assert not missing, f"{len(missing)} bad records of {spec.name} are in no dead-letter topic, e.g. {sorted(missing)[:3]}"
    stack.check_alive()
    _still_works(stack)


def _still_works(stack: Stack) -> None:
    """A leg created now gets its clocks, and the notification API answers."""
    from handoff.v1 import handoff_service_pb2_grpc, notification_service_pb2_grpc, sla_service_pb2_grpc

    department = unique("billing")
    with channel(stack.services["handoff"].grpc, ADMIN_TOKEN) as handoff_channel:
        leg = handoff_service_pb2_grpc.HandoffServiceStub(handoff_channel).CreateHandoff(
            handoff_service_pb2.CreateHandoffRequest(
                request_id=str(uuid.uuid4()), case_id=unique("FUZZ"), customer_id=unique("cust"),
                department=department, summary="after the fuzzing"), timeout=30)
    with channel(stack.services["sla"].grpc, ADMIN_TOKEN) as sla_channel:
        sla = sla_service_pb2_grpc.SlaServiceStub(sla_channel)

        def clocks_started() -> bool:
            try:
                answer = sla.GetHandoffSla(sla_service_pb2.GetHandoffSlaRequest(handoff_id=leg.handoff_id), timeout=5)
            except grpc.RpcError:
                return False
            return len(answer.clocks) == 2
        assert wait_for(clocks_started, timeout=60), "the leg's clocks never started after the fuzzing"
    with channel(stack.services["notify"].grpc, ADMIN_TOKEN) as notify_channel:
        notify_service = notification_service_pb2_grpc.NotificationServiceStub(notify_channel)
        notify_service.ListNotifications(notification_service_pb2.ListNotificationsRequest(department=department),
                                         timeout=10)
        notify_service.ListSilences(notification_service_pb2.ListSilencesRequest(), timeout=10)
