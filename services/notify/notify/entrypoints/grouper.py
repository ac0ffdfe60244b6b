"""Group flushes as they fall due: each is a `requested` digest record for the group's receiver.

Runs on the timer, so it never writes tables: the agent reads the digest back, marks the
group flushed in the `groups` table and delivers it (Dispatcher). Until then the flushed
state is kept here, so the next tick does not flush again. A flush's id derives from the
group, its first arrival and the flush number, so a repeat after a crash is the same record.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping

from common.clock import Clock
from notify.adapters import codec
from notify.adapters.routing_file import RoutingConfig
from notify.adapters.state import group_from
from notify.domain import grouping
from notify.domain.dispatch import digest_of
from notify.domain.grouping import GroupState
from notify.entrypoints.timer_states import TimerStates

Send = Callable[[str, bytes], Awaitable[None]]


class Grouper:
    def __init__(self, table: Mapping[str, dict], routing: RoutingConfig, send: Send, clock: Clock,
                 recorded: Clock) -> None:
        self._routing = routing
        self._send = send
        self._clock = clock
        self._recorded = recorded
        self._states: TimerStates[GroupState] = TimerStates(table, group_from)

    def index(self, state: GroupState) -> None:
        self._states.schedule(state.key, grouping.due_at(state))

    def recorded(self, state: GroupState) -> None:
        """The agent stored `state`; what was kept ahead is obsolete once it has the same flushes."""
        ahead = self._states.ahead(state.key)
        if ahead is None or state.flushes >= ahead.flushes:
            self._states.forget(state.key)

    def discarded(self, key: str, members: set[str]) -> None:
        """Members left the group: what is kept ahead of the table loses them too."""
        self._states.revise(key, lambda state: grouping.discard(state, members))

    def clear(self) -> None:
        self._states.clear()

    async def tick(self, owned: frozenset[int]) -> None:
        now = self._clock.now()
        for key, state, partition in self._states.due(now, owned):
            flush = grouping.due(state, now)
            if flush is not None and flush.items:
                receiver = self._routing.receivers.get(state.receiver)
                channels = [channel.name for channel in receiver.channels] if receiver else []
                await self._send(state.receiver, codec.encode_requested(digest_of(flush), channels,
                                                                        self._recorded.now()))
                state = grouping.flushed(state, flush)
                self._states.keep(key, state, partition)
            self.index(state)
