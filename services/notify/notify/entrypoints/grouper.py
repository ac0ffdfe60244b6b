"""Group flushes as they fall due: a digest for the group's receiver.

Runs on the stream engine's thread at the end of each batch, inside its transaction: the
flush is written to the `groups` table, recorded as a `requested` digest on
notifications.v1 (the audit trail and the API's read model) and handed to `deliver`
(Dispatcher), all committed together. A flush's id derives from the group, its first arrival
and the flush number, so what a restart does again carries the same ids.
"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping

from common.clock import Clock
from notify.adapters import codec
from notify.adapters.routing_file import RoutingConfig
from notify.adapters.state import group_from, group_value
from notify.adapters.stores import Place
from notify.domain import grouping
from notify.domain.dispatch import digest_of
from notify.domain.grouping import GroupState
from notify.domain.notifications import Notification
from notify.entrypoints.timer_states import TimerStates

Send = Callable[[str, bytes], None]
# (digest, channel names, partition): the Dispatcher delivers a flushed digest.
Deliver = Callable[[Notification, list[str], int], None]


class Grouper:
    def __init__(self, table: MutableMapping[str, dict], routing: RoutingConfig, send: Send, clock: Clock,
                 recorded: Clock, place: Place | None = None) -> None:
        self._table = table
        self._routing = routing
        self._send = send
        self._clock = clock
        self._recorded = recorded
        self._place = place or Place()
        self._states: TimerStates[GroupState] = TimerStates(table, group_from)
        self.deliver: Deliver = lambda digest, channels, partition: None

    def index(self, state: GroupState) -> None:
        self._states.schedule(state.key, grouping.due_at(state))

    def clear(self) -> None:
        self._states.clear()

    def tick(self, owned: frozenset[int]) -> None:
        now = self._clock.now()
        for key, state, partition in self._states.due(now, owned):
            flush = grouping.due(state, now)
            if flush is not None and flush.items:
                self._place.partition = partition
                receiver = self._routing.receivers.get(state.receiver)
                channels = [channel.name for channel in receiver.channels] if receiver else []
                digest = digest_of(flush)
                self._send(state.receiver, codec.encode_requested(digest, channels, self._recorded.now()))
                state = grouping.flushed(state, flush)
                self._table[key] = group_value(state, partition)
                self.deliver(digest, channels, partition)
            self.index(state)
