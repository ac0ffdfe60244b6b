"""Stage 2: a requested notification is suppressed, grouped or delivered, escalated, and read back.

The Dispatcher runs here with dict tables, a fake silence source and a fake gateway; the
decisions it makes are the pipeline's, only Kafka and gRPC are left out (the e2e tests
have them).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from pathlib import Path

from handoff.v1 import notifications_pb2

from notify.adapters import codec
from notify.domain.delivery import delivery_id
from notify.domain.notifications import BREACH, INCIDENT, WARNING
from notify.domain.routing import Matcher
from notify.domain.silences import Silence
from notify.entrypoints.app import STAGE2_TABLES
from tests.unit.conftest import T0
from tests.unit.test_notify_stage2_fixtures import (  # noqa: F401 - stage2 is a fixture
    ROUTING, Clock, changes, dispatcher_for, feed, notification, recorder, requested, routing_of, stage2,
)


def test_a_silenced_notification_is_recorded_as_suppressed_not_delivered(stage2) -> None:
    dispatcher, tables, sent, silences, _ = stage2
    silences.append(Silence("s-1", (Matcher("department", "=", "billing"),), T0 - timedelta(hours=1),
                            T0 + timedelta(hours=1), "ops", "maintenance"))
    feed(dispatcher, requested(notification()))
    assert changes(sent) == ["suppressed"]
    assert (sent[0][1].suppressed.reason, sent[0][1].suppressed.silence_id) == ("silence", "s-1")
    assert tables["pending"] == {} and tables["escalations"] == {}


def test_the_silence_source_is_asked_at_the_dispatch_time(stage2) -> None:
    dispatcher, _, sent, _, clock = stage2
    asked = []
    dispatcher._silences = lambda at: asked.append(at) or []
    feed(dispatcher, requested(notification()))
    assert asked == [clock.now()] and "suppressed" not in changes(sent)


def test_a_department_incident_inhibits_that_departments_other_notifications(stage2) -> None:
    dispatcher, _, sent, _, _ = stage2
    incident = notification(INCIDENT, handoff_id="")
    feed(dispatcher, requested(incident), requested(notification(BREACH, handoff_id="h-2")))
    # the incident itself goes out; the breach is held back
    assert changes(sent)[0] == "delivered" and changes(sent)[-1] == "suppressed"
    assert sent[-1][1].suppressed.reason == "inhibition"
    # once the incident is acknowledged, the department hears again
    feed(dispatcher, codec.encode_acknowledged(incident.notification_id, "billing", "ops", T0),
         requested(notification(BREACH, handoff_id="h-3")))
    assert changes(sent)[-1] == "delivered"


def test_an_incident_elsewhere_inhibits_nothing(stage2) -> None:
    dispatcher, _, sent, _, _ = stage2
    feed(dispatcher, requested(notification(INCIDENT, department="claims", handoff_id=""), ["subscription"]))
    feed(dispatcher, requested(notification()))
    assert "suppressed" not in changes(sent)


def test_subscription_is_delivered_at_once_and_gateway_channels_become_pending_jobs(stage2) -> None:
    dispatcher, tables, sent, _, _ = stage2
    item = notification()
    feed(dispatcher, requested(item))
    [(key, event)] = [(k, e) for k, e in sent if e.WhichOneof("change") == "delivered"]
    assert (key, event.delivered.channel) == ("billing", "subscription")
    assert event.delivered.notification.notification_id == item.notification_id
    assert event.delivered.delivery_id == delivery_id(item.key, "billing", "subscription")
    assert list(tables["pending"]) == [delivery_id(item.key, "billing", "team-chat")]
    assert len(dispatcher.deliverer) == 1


def test_a_delivery_recorded_before_is_never_made_again(stage2) -> None:
    dispatcher, tables, sent, _, _ = stage2
    item = notification()
    feed(dispatcher, requested(item), *[value for _, value in []])
    delivered = next(e for _, e in sent if e.WhichOneof("change") == "delivered")
    feed(dispatcher, delivered.SerializeToString())
    sent.clear()
    tables["pending"].clear()
    # the same notification requested again (a re-read source): the subscription is not sent twice
    feed(dispatcher, requested(replace(item, notification_id="n-other-id")))
    assert "delivered" not in changes(sent)


def test_a_grouped_notification_waits_and_its_flush_is_a_digest_delivered_in_the_same_step(stage2) -> None:
    dispatcher, tables, sent, _, clock = stage2
    first, second = notification(BREACH, "claims", "h-1"), notification(BREACH, "claims", "h-2")
    feed(dispatcher, requested(first, ["subscription"]), requested(second, ["subscription"]))
    assert sent == [] and len(tables["groups"]) == 1
    dispatcher.rebuild(frozenset({0}))
    clock.at = T0 + timedelta(seconds=30)
    dispatcher.tick()
    # the digest is recorded, the group marked flushed and the digest delivered, all at once
    assert changes(sent) == ["requested", "delivered"]
    key, event = sent[0]
    digest = event.requested.notification
    assert (key, digest.kind, len(digest.items)) == ("claims", notifications_pb2.NOTIFICATION_KIND_DIGEST, 2)
    [group] = tables["groups"].values()
    assert group["unsent"] == [] and group["flushes"] == 1
    assert sent[-1][1].delivered.notification.notification_id == digest.notification_id
    sent.clear()
    # the digest read back changes nothing: the state already knows it
    feed(dispatcher, event.SerializeToString())
    dispatcher.tick()
    assert sent == [] and [group["flushes"] for group in tables["groups"].values()] == [1]
    # and acknowledging the digest acknowledges both members
    feed(dispatcher, codec.encode_acknowledged(digest.notification_id, "claims", "claims-team", T0))
    assert all(tables["escalations"][n.notification_id]["acked"] for n in (first, second))


def test_its_own_outcomes_read_back_change_no_table(stage2) -> None:
    dispatcher, tables, sent, _, clock = stage2
    feed(dispatcher, requested(notification(), ["subscription"]))
    before = {name: dict(table) for name, table in tables.items()}
    outcomes = [value.SerializeToString() for _, value in sent]
    sent.clear()
    feed(dispatcher, *outcomes)
    assert sent == [] and {name: dict(table) for name, table in tables.items()} == before


def test_an_acknowledged_member_leaves_its_group_before_the_flush(stage2) -> None:
    dispatcher, tables, sent, _, clock = stage2
    first, second = notification(BREACH, "claims", "h-1"), notification(BREACH, "claims", "h-2")
    feed(dispatcher, requested(first, ["subscription"]), requested(second, ["subscription"]))
    feed(dispatcher, codec.encode_acknowledged(first.notification_id, "claims", "leg resolved", T0))
    dispatcher.rebuild(frozenset({0}))
    clock.at = T0 + timedelta(seconds=30)
    dispatcher.tick()
    [event] = [e for _, e in sent if e.WhichOneof("change") == "requested"]
    assert [item.handoff_id for item in event.requested.notification.items] == ["h-2"]


def test_an_open_breach_holds_back_later_warnings_of_its_clock_under_a_configured_rule(tmp_path: Path) -> None:
    routing = routing_of(tmp_path, ROUTING + """
inhibit_rules:
  - {name: breach-supersedes-warning, source: [kind=breach], target: [kind=warning], equal: [handoff_id, clock]}
""")
    sent, send = recorder()
    tables = {name: {} for name in STAGE2_TABLES}
    dispatcher = dispatcher_for(tables, routing, lambda at: [], send, Clock(), None)
    feed(dispatcher, requested(notification(BREACH), ["subscription"]),
         requested(notification(WARNING), ["subscription"]),
         requested(notification(WARNING, handoff_id="h-2"), ["subscription"]))
    assert changes(sent) == ["delivered", "suppressed", "delivered"]
    assert sent[1][1].suppressed.reason == "inhibition"


def reading_a_month_late(tmp_path: Path):
    """A Dispatcher with a 24 h history age whose clock is 30 days past the notifications' T0."""
    sent, send = recorder()
    tables = {name: {} for name in STAGE2_TABLES}
    clock = Clock()
    clock.at = T0 + timedelta(days=30)
    dispatcher = dispatcher_for(tables, routing_of(tmp_path), lambda at: [], send, clock, None,
                                history_age=timedelta(hours=24))
    return dispatcher, tables, sent, clock


def test_a_notification_older_than_the_history_age_is_recorded_not_delivered(tmp_path: Path) -> None:
    dispatcher, tables, sent, clock = reading_a_month_late(tmp_path)
    # a breach of last month, read now (an import)
    feed(dispatcher, requested(notification()))
    assert changes(sent) == ["suppressed"] and sent[0][1].suppressed.reason == "history"
    assert tables["pending"] == {} and tables["escalations"] == {}
    # one a day old still goes out
    sent.clear()
    feed(dispatcher, requested(replace(notification(handoff_id="h-2"), occurred_at=clock.at - timedelta(hours=23))))
    assert changes(sent) == ["delivered"] and list(tables["pending"])


def test_an_import_that_asks_for_its_history_to_be_notified_gets_it_delivered(tmp_path: Path) -> None:
    dispatcher, tables, sent, _ = reading_a_month_late(tmp_path)
    feed(dispatcher, requested(notification(), deliver_history=True))
    assert changes(sent) == ["delivered"] and list(tables["pending"]) and list(tables["escalations"])
