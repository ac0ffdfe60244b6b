"""handoffctl's lists in a terminal: one line per item that fits the width, ids whole, shorter
forms and fewer columns when narrow, a note of what is left out, `--wide` for all."""

from __future__ import annotations

import io
import uuid
from datetime import datetime, timedelta, timezone

import pytest
from handoff.v1 import handoff_service_pb2 as api
from handoff.v1 import notification_service_pb2 as notify_api
from handoff.v1 import notifications_pb2
from handoff.v1 import sla_service_pb2 as sla_api
from handoff.v1 import types_pb2
from rich.console import Console

from common.codec import to_duration, to_timestamp
from handoffctl import output

HEADERS = ("id", "case", "department", "priority", "status", "breached", "created")
CREATED = datetime(2026, 11, 16, 9, 30, tzinfo=timezone.utc)


def leg(number: int, department: str, status: int, breached: bool = False) -> api.Handoff:
    return api.Handoff(handoff_id=str(uuid.UUID(int=number)), case_id=f"CASE-{number:05d}", department=department,
                       priority=types_pb2.PRIORITY_NORMAL if number % 2 else types_pb2.PRIORITY_URGENT,
                       status=status, breached=breached, created_at=to_timestamp(CREATED + timedelta(hours=number)))


MIXED = api.ListHandoffsResponse(handoffs=[
    leg(1, "field-service", types_pb2.LEG_STATUS_WAITING_ON_CUSTOMER, breached=True),
    leg(2, "billing", types_pb2.LEG_STATUS_ACKNOWLEDGED),
    leg(3, "accounts", types_pb2.LEG_STATUS_OPEN),
])
ONE_DEPARTMENT = api.ListHandoffsResponse(handoffs=[
    leg(4, "billing", types_pb2.LEG_STATUS_WAITING_ON_CUSTOMER, breached=True),
    leg(5, "billing", types_pb2.LEG_STATUS_IN_PROGRESS),
])


def shown(page: api.ListHandoffsResponse, width: int, monkeypatch: pytest.MonkeyPatch, wide: bool = False) -> str:
    """What `list` prints for `page` in a terminal `width` columns wide."""
    screen = io.StringIO()
    monkeypatch.setattr(output, "console", Console(file=screen, width=width, force_terminal=True,
                                                   color_system=None, highlight=False))
    output.show_legs(page, as_json=False, wide=wide)
    return screen.getvalue()


def header(text: str) -> list[str]:
    return next(line for line in text.splitlines() if line.split()[:1] == ["id"]).split()


def test_a_wide_terminal_shows_every_column_in_full(monkeypatch) -> None:
    text = shown(MIXED, 160, monkeypatch)
    assert header(text) == list(HEADERS)
    assert "waiting-on-customer" in text and "2026-11-16 10:30:00Z" in text and "field-service" in text
    assert "hidden:" not in text


def test_80_columns_keep_each_leg_on_one_line_with_its_whole_id_and_say_what_is_left_out(monkeypatch) -> None:
    text = shown(MIXED, 80, monkeypatch)
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 80
    for number in (1, 2, 3):
        row = next(line for line in lines if str(uuid.UUID(int=number)) in line)
        assert f"CASE-{number:05d}" in row  # the id whole, and the case on the same line
    assert header(text) == ["id", "case", "department", "status"]
    assert "waiting " in text and "waiting-on-customer" not in text  # the short form
    left_out = next(line for line in lines if line.startswith("hidden: "))
    assert set(left_out.removeprefix("hidden: ").split(" (")[0].split(", ")) == set(HEADERS) - set(header(text))
    assert "--wide" in left_out


def test_a_column_that_is_the_same_on_every_row_goes_first_and_the_note_says_its_value(monkeypatch) -> None:
    text = shown(ONE_DEPARTMENT, 80, monkeypatch)
    assert header(text) == ["id", "case", "status", "breached"]  # the department's place goes to the breach
    assert "every row: department billing" in text
    assert max(len(line) for line in text.splitlines()) <= 80


def test_a_very_narrow_terminal_still_shows_the_whole_id(monkeypatch) -> None:
    text = shown(MIXED, 40, monkeypatch)
    assert header(text) == ["id"] and all(str(uuid.UUID(int=n)) in text for n in (1, 2, 3))


def test_wide_shows_every_column_in_full_even_in_a_narrow_terminal(monkeypatch) -> None:
    text = shown(MIXED, 80, monkeypatch, wide=True)
    assert header(text) == list(HEADERS)
    assert "waiting-on-customer" in text and "2026-11-16 09:30:00Z" not in text  # leg 1 is at 10:30
    assert "2026-11-16 10:30:00Z" in text and "hidden:" not in text
    assert max(len(line) for line in text.splitlines()) > 80


# Every other list of handoffctl fits 80 columns the same way, with its ids whole.

def _id(number: int) -> str:
    return str(uuid.UUID(int=number))


def _at(hours: int):
    return to_timestamp(CREATED + timedelta(hours=hours))


def _breaches() -> None:
    from handoffctl.sla import show_breaches
    show_breaches(sla_api.ListBreachesResponse(breaches=[
        sla_api.Breach(handoff_id=_id(n), department=department, priority=types_pb2.PRIORITY_HIGH,
                       clock=types_pb2.CLOCK_KIND_RESOLVE, deadline=_at(n), breached_at=_at(n), case_id=f"CASE-{n:05d}")
        for n, department in ((1, "field-service"), (2, "claims"))]))


def _clocks() -> None:
    from handoffctl.sla import show_clocks
    show_clocks(sla_api.HandoffSla(handoff_id=_id(1), department="field-service", priority=types_pb2.PRIORITY_HIGH,
                                   clocks=[sla_api.ClockState(
                                       clock=kind, sequence=1, started_at=_at(0), deadline=_at(1),
                                       target=to_duration(timedelta(hours=1)), running=True,
                                       policy_name="field-service/HIGH") for kind in (types_pb2.CLOCK_KIND_ACK,
                                                                                     types_pb2.CLOCK_KIND_RESOLVE)]))


def _notifications() -> None:
    from handoffctl.notifications import show_notifications
    show_notifications(notify_api.ListNotificationsResponse(
        notifications=[notifications_pb2.Notification(
            notification_id=_id(n), kind=notifications_pb2.NOTIFICATION_KIND_BREACH, receiver="field-service-lead",
            department="field-service", priority=types_pb2.PRIORITY_URGENT, case_id=f"CASE-{n:05d}",
            title=f"CASE-{n:05d}: resolve clock breached at field-service", occurred_at=_at(n)) for n in (1, 2)],
        states=[notify_api.NotificationState(notification_id=_id(n), delivered_channels=["webhook"]) for n in (1, 2)]))


def _silences() -> None:
    from handoffctl.silences import _show
    silences = [notify_api.Silence(silence_id=_id(n), matchers=[notify_api.Matcher(label="department",
                                                                                   value="field-service")],
                                   starts_at=_at(0), ends_at=_at(n), created_by="admin", comment="storm in the north")
                for n in (1, 2)]
    _show(silences, False, "2 silences", notify_api.ListSilencesResponse(silences=silences))


def _timeline() -> None:
    output.show_timeline(api.CustomerTimeline(customer_ref="cust-00042", entries=[
        api.TimelineEntry(at=_at(0), contact=api.Contact(contact_id=_id(1), customer_ref="cust-00042",
                                                         case_id="CASE-00001", reason="boiler broken",
                                                         channel=types_pb2.CONTACT_CHANNEL_CALL)),
        api.TimelineEntry(at=_at(1), handoff=leg(2, "field-service", types_pb2.LEG_STATUS_OPEN))]), as_json=False)


@pytest.mark.parametrize(("show", "ids"), [(_breaches, (1, 2)), (_clocks, ()), (_notifications, (1, 2)),
                                           (_silences, (1, 2)), (_timeline, (1, 2))])
def test_every_list_fits_80_columns_with_its_ids_whole(monkeypatch, show, ids) -> None:
    screen = io.StringIO()
    monkeypatch.setattr(output, "console", Console(file=screen, width=80, force_terminal=True, color_system=None))
    show()
    lines = screen.getvalue().splitlines()
    assert lines and max(len(line) for line in lines) <= 80, screen.getvalue()
    assert all(any(_id(n) in line for line in lines) for n in ids), screen.getvalue()


def test_a_free_text_column_is_cut_short_to_fit_and_shown_whole_with_wide(monkeypatch) -> None:
    title = "CASE-00001: resolve clock breached at field-service"
    screen = io.StringIO()
    monkeypatch.setattr(output, "console", Console(file=screen, width=80, force_terminal=True, color_system=None))
    _notifications()
    narrow = screen.getvalue()
    assert title not in narrow and "CASE-00001: resolve…" in narrow
    assert max(len(line) for line in narrow.splitlines()) <= 80
    screen.seek(0), screen.truncate()
    from handoffctl.notifications import show_notifications
    show_notifications(notify_api.ListNotificationsResponse(notifications=[notifications_pb2.Notification(
        notification_id=_id(1), title=title)], states=[notify_api.NotificationState()]), wide=True)
    assert title in screen.getvalue()
