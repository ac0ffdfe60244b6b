"""What GetHandoffSla answers from: a clock whose pauses used up max_pause runs again in the
read model from the instant the allowance ran out, as the events the clock emitted say."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from handoff.v1 import sla_events_pb2

from common.codec import from_timestamp
from common.topics import SLA_EVENTS
from sla.adapters.codec import encode_sla_events
from sla.adapters.readmodel import apply_record
from sla.adapters.readmodel_store import SlaReadModel
from sla.domain.calendar import AlwaysOpen
from sla.domain.clocks import RESOLVE, due_events, pause, resume, start
from sla.domain.policy import Policy
from sla.domain.scorecard import business_time_left
from tests.unit.conftest import leg_info

H = timedelta(hours=1)
ALWAYS = AlwaysOpen("always")
POLICY = Policy("billing", "*", "*", H, 8 * H, ALWAYS, max_pause=4 * H).with_version()


def at(hour: int) -> datetime:
    return datetime(2026, 5, 30, hour, tzinfo=timezone.utc)


def test_get_handoff_sla_shows_the_clock_running_again_once_the_pause_allowance_is_used_up():
    # given 24x7, resolve 8h, max_pause 4h: created 00:00, waiting on the customer from 01:00,
    # in progress again at 11:00, each step after what fell due by then
    state, events = start(leg_info(), POLICY, at(0), kinds=(RESOLVE,))
    state, paused = pause(state, at(1), ALWAYS, 4 * H)
    state, ran_out = due_events(state, at(11), ALWAYS, (), 4 * H)
    state, resumed = resume(state, at(11), ALWAYS, 4 * H)

    # when the read model has read those events
    store = SlaReadModel()
    for value in encode_sla_events([*events, *paused, *ran_out, *resumed], at(11)):
        apply_record(store, SLA_EVENTS, sla_events_pb2.SlaEvent.FromString(value))

    # then an SLA event recorded that the allowance ran out at 05:00, and the clock runs with
    # its deadline at 12:00, an hour left at 11:00
    [record] = [sla_events_pb2.SlaEvent.FromString(value) for value in encode_sla_events(ran_out, at(11))]
    assert record.WhichOneof("change") == "resumed" and record.resumed.allowance_used
    assert from_timestamp(record.resumed.resumed_at) == at(5)
    assert resumed == []
    [clock] = store.clocks_of(leg_info().handoff_id)
    assert clock.paused_at is None and clock.running
    assert clock.deadline == at(12)
    assert business_time_left(clock, ALWAYS, at(11), 4 * H) == H
