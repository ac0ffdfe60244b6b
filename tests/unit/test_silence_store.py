"""Silences: the store every replica fills from notify.silences.v1, the checks a
CreateSilence request passes, and the servicer's silence calls (who may, idempotence).

The servicer tests run it without gRPC or Kafka: a fake context that raises on abort, a
feed that is always caught up and a writer that records what it would send.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

import grpc
import pytest
from google.protobuf import timestamp_pb2
from handoff.v1 import notification_service_pb2 as api_pb2

from common.auth import PermissionDenied, Principal, Role, acting_as
from common.codec import decode
from common.settings import ServiceSettings
from common.topics import NOTIFICATIONS, SILENCES
from common.validation import InvalidField
from notify.adapters.api_codec import encode_silence, silence_from_pb, silence_pb
from notify.adapters.silence_store import SilenceStore
from notify.domain.routing import Matcher
from notify.domain.silences import Silence, expire
from notify.entrypoints import api_requests as req
from notify.entrypoints.grpc_api import NotificationApi, serving
from tests.unit.conftest import T0

ADMIN = Principal("ops-admin", Role.ADMIN)
SERVICE = Principal("crm", Role.SERVICE)
BILLING = Principal("billing-lead", Role.DEPARTMENT, "billing")
CLAIMS = Principal("claims-lead", Role.DEPARTMENT, "claims")
AGENT = Principal("agent-7", Role.AGENT)


def silence(silence_id="s-1", *matchers: Matcher, start=T0, hours=2) -> Silence:
    return Silence(silence_id, matchers or (Matcher("department", "=", "billing"),), start,
                   start + timedelta(hours=hours), "ops-admin", "bank outage")


def stamp(moment) -> timestamp_pb2.Timestamp:
    value = timestamp_pb2.Timestamp()
    value.FromDatetime(moment)
    return value


# --- fakes for the servicer ------------------------------------------------------------


class Aborted(Exception):
    def __init__(self, code, details):
        super().__init__(f"{code.name}: {details}")
        self.code, self.details = code, details


class FakeContext:
    async def abort(self, code, details):
        raise Aborted(code, details)


class CaughtUp:
    async def caught_up(self, timeout=5.0):
        return None


class FakeClock:
    def __init__(self, now=T0):
        self.moment = now

    def now(self):
        return self.moment


class RecordingWriter:
    """Records sends and hands notification events to the store, as the feed would. Silences
    it does not hand on: the servicer puts them in its store itself, and the tests check that."""

    def __init__(self, notifications=None):
        self.sent = []
        self._stores = {NOTIFICATIONS.name: notifications}

    async def send(self, topic, key, value):
        self.sent.append((topic.name, key, value))
        store = self._stores.get(topic.name)
        if store is not None:
            store.apply(topic, decode(topic, value))


def api(clock=None, notifications=None):
    silences = SilenceStore()
    writer = RecordingWriter(notifications)
    service = NotificationApi(
        "unused:9092", clock or FakeClock(), silences=silences, silence_feed=CaughtUp(),
        notifications=notifications, notification_feed=CaughtUp(), writer=writer,
    )
    return service, silences, writer


def call(principal, method, request):
    async def run():
        with acting_as(principal):
            return await method(request, FakeContext())

    return asyncio.run(run())


def create_request(request_id="r-1", matchers=(("department", "billing"),), hours=2, comment="bank outage"):
    return api_pb2.CreateSilenceRequest(
        request_id=request_id, comment=comment, ends_at=stamp(T0 + timedelta(hours=hours)),
        matchers=[api_pb2.Matcher(label=label, value=value) for label, value in matchers],
    )


# --- the store -------------------------------------------------------------------------


def test_store_applies_records_and_the_newest_record_of_an_id_wins():
    store = SilenceStore()
    first = silence("s-1")
    store.apply(SILENCES, silence_pb(first))
    store.apply(SILENCES, silence_pb(expire(first, T0 + timedelta(minutes=5))))

    assert len(store) == 1
    assert store.get("s-1").ends_at == T0 + timedelta(minutes=5)
    assert store.get("nope") is None


def test_active_holds_only_started_unexpired_silences():
    store = SilenceStore()
    store.put(silence("now", start=T0))
    store.put(silence("later", start=T0 + timedelta(hours=1)))
    store.put(silence("over", start=T0 - timedelta(hours=3)))

    assert [s.silence_id for s in store.active(T0)] == ["now"]
    assert store.active(T0 + timedelta(hours=2)) == [store.get("later")]


def test_all_lists_soonest_ending_first_and_expired_only_when_asked():
    store = SilenceStore()
    store.put(silence("long", hours=5))
    store.put(silence("short", hours=1))
    store.put(silence("over", start=T0 - timedelta(hours=3)))

    assert [s.silence_id for s in store.all(include_expired=False, at=T0)] == ["short", "long"]
    assert [s.silence_id for s in store.all(include_expired=True, at=T0)] == ["over", "short", "long"]


def test_store_refuses_records_of_other_topics_and_bad_matchers():
    store = SilenceStore()
    with pytest.raises(ValueError):
        store.apply(NOTIFICATIONS, silence_pb(silence()))
    bad = silence_pb(silence())
    bad.matchers[0].is_regex, bad.matchers[0].value = True, "("
    with pytest.raises(ValueError, match="s-1"):
        store.apply(SILENCES, bad)


def test_a_silence_survives_the_round_trip_through_its_record():
    original = silence("s-9", Matcher("priority", "=~", "HIGH|URGENT"), Matcher("kind", "!=", "warning"))

    assert silence_from_pb(decode(SILENCES, encode_silence(original))) == original


# --- request checks --------------------------------------------------------------------


@pytest.mark.parametrize("request_, field", [
    (create_request(matchers=()), "matchers"),
    (create_request(matchers=(("team", "x"),)), "matchers[0].label"),
    (create_request(matchers=(("department", "billing"), ("kind", ""))), None),
    (create_request(comment="  "), "comment"),
    (create_request(hours=-1), "ends_at"),
    (api_pb2.CreateSilenceRequest(request_id="r", comment="c", matchers=[api_pb2.Matcher(label="kind", value="x")]),
     "ends_at"),
])
def test_bad_silence_requests_name_the_field(request_, field):
    if field is None:
        assert req.new_silence_from(request_, "s", "admin", T0).matchers[1] == Matcher("kind", "=", "")
        return
    with pytest.raises(InvalidField) as raised:
        req.new_silence_from(request_, "s", "admin", T0)
    assert raised.value.field == field


def test_a_bad_regular_expression_names_the_matcher_value():
    request = create_request()
    request.matchers.append(api_pb2.Matcher(label="priority", value="(HIGH", is_regex=True))

    with pytest.raises(InvalidField) as raised:
        req.new_silence_from(request, "s", "admin", T0)
    assert raised.value.field == "matchers[1].value"


@pytest.mark.parametrize("matchers, concerns", [
    ((Matcher("department", "=", "billing"),), True),
    ((Matcher("department", "=~", "billing|claims"),), True),
    ((Matcher("department", "=", "claims"),), False),
    ((Matcher("department", "!=", "claims"),), False),
    ((Matcher("department", "=~", "bill.*"), Matcher("department", "!=", "billing")), False),
    ((Matcher("kind", "=", "breach"),), False),
])
def test_a_department_sees_the_silences_that_pin_it(matchers, concerns):
    assert req.concerns_department(silence("s", *matchers), "billing") is concerns


def test_the_silence_id_derives_from_caller_and_request_id():
    assert req.silence_id_for("a", "r-1") == req.silence_id_for("a", "r-1")
    assert req.silence_id_for("a", "r-1") != req.silence_id_for("b", "r-1")


# --- the servicer ----------------------------------------------------------------------


def test_an_admin_creates_a_silence_and_a_retry_returns_it_writing_nothing_twice():
    service, silences, writer = api()

    first = call(ADMIN, service.CreateSilence, create_request("r-1"))
    again = call(ADMIN, service.CreateSilence, create_request("r-1", hours=5))

    assert first == again
    assert first.created_by == "ops-admin" and not first.expired
    assert len(writer.sent) == 1 and writer.sent[0][:2] == (SILENCES.name, first.silence_id)
    assert silences.get(first.silence_id).ends_at == T0 + timedelta(hours=2)


@pytest.mark.parametrize("principal", [BILLING, SERVICE, AGENT])
def test_only_admins_create_and_expire_silences(principal):
    service, _, writer = api()
    with pytest.raises(PermissionDenied):
        call(principal, service.CreateSilence, create_request())
    with pytest.raises(PermissionDenied):
        call(principal, service.ExpireSilence, api_pb2.ExpireSilenceRequest(silence_id="s-1"))
    assert writer.sent == []


def test_an_invalid_silence_is_invalid_argument_naming_the_field():
    service, _, writer = api()

    with pytest.raises(Aborted) as raised:
        call(ADMIN, service.CreateSilence, create_request(matchers=(("department", ""),)))

    assert raised.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert raised.value.details.startswith("matchers:")
    assert writer.sent == []


def test_expire_ends_a_silence_once_and_unknown_ids_are_not_found():
    clock = FakeClock()
    service, silences, writer = api(clock)
    created = call(ADMIN, service.CreateSilence, create_request())
    clock.moment = T0 + timedelta(minutes=10)

    expired = call(ADMIN, service.ExpireSilence, api_pb2.ExpireSilenceRequest(silence_id=created.silence_id))
    again = call(ADMIN, service.ExpireSilence, api_pb2.ExpireSilenceRequest(silence_id=created.silence_id))

    assert expired.expired and expired == again
    assert expired.ends_at.ToDatetime() == clock.moment.replace(tzinfo=None)
    assert len(writer.sent) == 2
    with pytest.raises(Aborted) as raised:
        call(ADMIN, service.ExpireSilence, api_pb2.ExpireSilenceRequest(silence_id="no-such-silence"))
    assert raised.value.code == grpc.StatusCode.NOT_FOUND


def test_admins_and_services_list_every_silence_a_department_those_that_pin_it():
    service, _, _ = api()
    call(ADMIN, service.CreateSilence, create_request("r-1", matchers=(("department", "billing"),)))
    call(ADMIN, service.CreateSilence, create_request("r-2", matchers=(("department", "claims"),)))
    request = api_pb2.ListSilencesRequest()

    assert len(call(ADMIN, service.ListSilences, request).silences) == 2
    assert len(call(SERVICE, service.ListSilences, request).silences) == 2
    listed = call(BILLING, service.ListSilences, request).silences
    assert [m.value for s in listed for m in s.matchers] == ["billing"]
    with pytest.raises(PermissionDenied):
        call(AGENT, service.ListSilences, request)


def test_expired_silences_are_listed_only_when_asked():
    clock = FakeClock()
    service, _, _ = api(clock)
    created = call(ADMIN, service.CreateSilence, create_request())
    call(ADMIN, service.ExpireSilence, api_pb2.ExpireSilenceRequest(silence_id=created.silence_id))

    assert call(ADMIN, service.ListSilences, api_pb2.ListSilencesRequest()).silences == []
    assert [s.silence_id for s in call(
        ADMIN, service.ListSilences, api_pb2.ListSilencesRequest(include_expired=True)).silences] == [created.silence_id]


def test_serving_hands_the_pipeline_the_silences_the_api_writes(tmp_path):
    settings = ServiceSettings("127.0.0.1:9", "127.0.0.1", 0, 0, tmp_path, "INFO", "notify-1")
    served = serving(settings, FakeClock())
    (_, servicer, name), = served.registrations

    assert name == "handoff.v1.NotificationService"
    assert servicer._silences is served.silences


def test_a_worker_serves_no_api_but_still_keeps_the_silences_its_pipeline_asks(tmp_path):
    settings = ServiceSettings("127.0.0.1:9", "127.0.0.1", 0, 0, tmp_path, "INFO", "notify-1")
    served = serving(settings, FakeClock(), api=False)

    assert served.registrations == []
    assert served.silences.active(datetime.now(timezone.utc)) == []


def test_a_retry_racing_its_first_attempt_on_one_replica_writes_once():
    service, _, writer = api()
    record = writer.send

    async def slow_send(*args):
        await asyncio.sleep(0.05)  # the broker takes its time; the retry arrives meanwhile
        await record(*args)

    writer.send = slow_send

    async def both():
        with acting_as(ADMIN):
            return await asyncio.gather(*(service.CreateSilence(create_request("r-1"), FakeContext()) for _ in "ab"))

    first, second = asyncio.run(both())

    assert first == second and len(writer.sent) == 1
    assert service._locks == {}
