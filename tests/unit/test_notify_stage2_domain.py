"""Stage 2's pure decisions: suppression, digests of a flush, escalation notices; notify's settings."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from common.settings import SettingsError
from notify.domain import escalation, grouping
from notify.domain.dispatch import (
    INHIBITION, SILENCE, delivered_as, digest_of, escalation_notice, flush_of, suppression,
)
from notify.domain.inhibition import InhibitionSources
from notify.domain.notifications import BREACH, DIGEST, ESCALATION, Notification
from notify.domain.routing import DEFAULT_TIMING, EscalationLevel, EscalationPolicy, Matcher, RouteMatch
from notify.domain.silences import DEPARTMENT_INCIDENT, Silence
from notify.settings import notify_settings
from tests.unit.conftest import T0


def note(handoff_id: str = "h-1", priority: str = "HIGH") -> Notification:
    return Notification(f"n-{handoff_id}", f"breach:{handoff_id}:ack", BREACH, "billing", "billing", priority,
                        handoff_id, "case", "cust", "ack", f"breach of {handoff_id}", "", T0)


LABELS = note().labels
def open_sources(*labels: dict[str, str]) -> InhibitionSources:
    """The built-in rule's sources, open with `labels`."""
    sources = InhibitionSources([DEPARTMENT_INCIDENT])
    for number, source in enumerate(labels):
        sources.add(f"n-{number}", source)
    return sources


SILENCE_ON_BILLING = Silence("s-1", (Matcher("department", "=", "billing"),), T0, T0 + timedelta(hours=1), "ops", "x")


@pytest.mark.parametrize("at, expected", [(T0 - timedelta(seconds=1), None), (T0, SILENCE),
                                          (T0 + timedelta(hours=1), None)])
def test_a_silence_holds_back_only_inside_its_window(at, expected) -> None:
    held = suppression(LABELS, [SILENCE_ON_BILLING], open_sources(), at)
    assert (held.reason if held else None) == expected


def test_an_open_incident_of_the_department_inhibits_and_a_silence_is_named_first() -> None:
    incident = {"department": "billing", "kind": "incident"}
    assert suppression(LABELS, [], open_sources(incident), T0).reason == INHIBITION
    assert suppression(LABELS, [SILENCE_ON_BILLING], open_sources(incident), T0).silence_id == "s-1"
    assert suppression(LABELS, [], open_sources({**incident, "department": "claims"}), T0) is None


def flush_of_group(*items: Notification) -> grouping.Flush:
    state = grouping.new_group("billing:{}", RouteMatch("billing", (), DEFAULT_TIMING))
    for item in items:
        state = grouping.add(state, item, T0)
    return grouping.due(state, T0 + DEFAULT_TIMING.group_wait)


def test_a_flush_of_several_is_delivered_as_one_digest_with_its_items() -> None:
    digest = digest_of(flush_of_group(note("h-1", "HIGH"), note("h-2", "URGENT")))
    assert (digest.kind, digest.priority, digest.department) == (DIGEST, "URGENT", "billing")
    assert [item.handoff_id for item in digest.items] == ["h-1", "h-2"]
    assert digest.title == "2 breaches for billing"
    assert delivered_as(digest) is digest
    assert flush_of(digest) == flush_of_group(note("h-1", "HIGH"), note("h-2", "URGENT"))


def test_a_flush_of_one_new_member_is_delivered_as_that_notification() -> None:
    digest = digest_of(flush_of_group(note("h-1")))
    assert delivered_as(digest) == note("h-1")


def test_an_escalation_notice_is_the_original_for_the_next_receiver_with_a_stable_id() -> None:
    policy = EscalationPolicy((EscalationLevel(timedelta(minutes=15), "billing-lead"),))
    state = escalation.start("n-h-1", "billing", T0, policy, None)
    step = escalation.next_step(state, T0 + timedelta(minutes=15))
    notice = escalation_notice(note(), step)
    assert (notice.kind, notice.receiver, notice.escalation_level, notice.handoff_id) == (
        ESCALATION, "billing-lead", 1, "h-1")
    assert notice.notification_id == escalation_notice(note(), step).notification_id
    assert notice.occurred_at == T0 + timedelta(minutes=15)


def test_notify_settings_read_the_routing_file_and_gateways() -> None:
    settings = notify_settings({"NOTIFY_GATEWAY_WEBHOOK": "127.0.0.1:7001", "NOTIFY_GATEWAY_TOKEN": "t",
                                "NOTIFY_GATEWAY_LOG": "log-0.log-pods:50051, log-1.log-pods:50051"})
    assert settings.routing_file == Path("config/routing.yaml")
    assert dict(settings.gateways) == {"webhook": ("127.0.0.1:7001",),
                                       "log": ("log-0.log-pods:50051", "log-1.log-pods:50051")}
    assert settings.history_age == timedelta(hours=24)
    assert notify_settings({"NOTIFY_HISTORY_AGE": "2d"}).history_age == timedelta(days=2)


@pytest.mark.parametrize("env, named", [({"NOTIFY_GATEWAY_EMAIL": "nohost"}, "NOTIFY_GATEWAY_EMAIL"),
                                        ({"NOTIFY_GATEWAY_EMAIL": "a:1,", "NOTIFY_GATEWAY_TOKEN": "t"},
                                         "NOTIFY_GATEWAY_EMAIL"),
                                        ({"NOTIFY_GATEWAY_EMAIL": "a:1,a:1", "NOTIFY_GATEWAY_TOKEN": "t"},
                                         "NOTIFY_GATEWAY_EMAIL=.* lists a replica twice"),
                                        ({"NOTIFY_GATEWAY_LOG": "127.0.0.1:1"}, "NOTIFY_GATEWAY_TOKEN"),
                                        ({"NOTIFY_HISTORY_AGE": "a day"}, "NOTIFY_HISTORY_AGE"),
                                        ({"NOTIFY_HISTORY_AGE": "0s"}, "NOTIFY_HISTORY_AGE")])
def test_bad_notify_settings_name_the_variable(env, named) -> None:
    with pytest.raises(SettingsError, match=named):
        notify_settings(env)
