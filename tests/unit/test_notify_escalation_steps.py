"""Stage 2 escalation: started for what the receiver's policy covers, steps taken when due and
read back, reminders, and acknowledgements (of the notification, before it, or of a notice)."""

from __future__ import annotations

from datetime import timedelta

from notify.adapters import codec
from notify.domain.notifications import BREACH, WARNING
from tests.unit.conftest import T0
from tests.unit.test_notify_stage2_fixtures import (  # noqa: F401 - stage2 is a fixture
    changes, feed, notification, requested, stage2,
)


def test_a_breach_starts_its_escalation_and_a_warning_does_not(stage2) -> None:
    dispatcher, tables, _, _, _ = stage2
    breach, warning = notification(BREACH), notification(WARNING)
    feed(dispatcher, requested(breach), requested(warning))
    assert list(tables["escalations"]) == [breach.notification_id]


def test_escalation_steps_are_taken_when_due_and_an_acknowledgement_stops_them(stage2) -> None:
    dispatcher, tables, sent, _, clock = stage2
    breach = notification(BREACH)
    feed(dispatcher, requested(breach, ["subscription"]))
    dispatcher.rebuild(frozenset({0}))
    sent.clear()
    clock.at = T0 + timedelta(minutes=15)
    dispatcher.tick()
    assert changes(sent) == ["escalated", "requested"]
    assert (sent[1][0], sent[1][1].requested.notification.escalation_level) == ("billing-lead", 1)
    # read back, the step is in the table; a second tick takes nothing more
    feed(dispatcher, sent[0][1].SerializeToString())
    assert tables["escalations"][breach.notification_id]["level"] == 1
    sent.clear()
    dispatcher.tick()
    assert sent == []
    feed(dispatcher, codec.encode_acknowledged(breach.notification_id, "billing", "leg acknowledged", T0))
    assert tables["escalations"][breach.notification_id]["acked"]


def test_an_acknowledgement_before_the_notification_keeps_it_from_escalating(stage2) -> None:
    dispatcher, tables, _, _, _ = stage2
    breach = notification(BREACH)
    feed(dispatcher, codec.encode_acknowledged(breach.notification_id, "billing", "leg resolved", T0),
         requested(breach))
    assert "n" not in tables["escalations"][breach.notification_id]


def test_acknowledging_an_escalation_notice_acknowledges_the_original(stage2) -> None:
    dispatcher, tables, sent, _, clock = stage2
    breach = notification(BREACH)
    feed(dispatcher, requested(breach, ["subscription"]))
    dispatcher.rebuild(frozenset({0}))
    clock.at = T0 + timedelta(minutes=15)
    dispatcher.tick()
    notice = next(e for _, e in sent if e.WhichOneof("change") == "requested")
    feed(dispatcher, notice.SerializeToString())
    sent.clear()
    # when the lead acknowledges the notice it was sent
    feed(dispatcher, codec.encode_acknowledged(notice.requested.notification.notification_id, "billing-lead",
                                               "lead-ann", T0))
    # then the original is acknowledged, on its own receiver's stream
    [(key, event)] = sent
    assert (key, event.acknowledged.notification_id, event.acknowledged.acknowledged_by) == (
        "billing", breach.notification_id, "lead-ann")
    feed(dispatcher, event.SerializeToString())
    assert tables["escalations"][breach.notification_id]["acked"]


def test_whoever_holds_an_unacknowledged_notification_is_reminded_every_repeat_interval(stage2) -> None:
    dispatcher, tables, sent, _, clock = stage2
    breach = notification(BREACH)
    feed(dispatcher, requested(breach, ["subscription"]))
    dispatcher.rebuild(frozenset({0}))
    for minutes in (15, 15 + 4 * 60, 15 + 8 * 60):  # the route's repeat_interval: 4h
        clock.at = T0 + timedelta(minutes=minutes)
        dispatcher.tick()
        for _, event in list(sent):
            if event.WhichOneof("change") == "escalated":
                feed(dispatcher, event.SerializeToString())
    steps = [(e.escalated.level, e.escalated.reminder, e.escalated.to_receiver) for _, e in sent
             if e.WhichOneof("change") == "escalated"]
    assert steps == [(1, 0, "billing-lead"), (1, 1, "billing-lead"), (1, 2, "billing-lead")]
    assert tables["escalations"][breach.notification_id]["reminded"] == 2
