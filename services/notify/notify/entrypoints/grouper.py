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
from notify.domain.due import DueQueue
from notify.domain.grouping import GroupState

Send = Callable[[str, bytes], Awaitable[None]]


class Grouper:
    def __init__(self, table: Mapping[str, dict], routing: RoutingConfig, send: Send, clock: Clock,
                 recorded: Clock) -> None:
        self._table = table
        self._routing = routing
        self._send = send
        self._clock = clock
        self._recorded = recorded
        self._queue = DueQueue()
        self._ahead: dict[str, tuple[GroupState, int]] = {}

    def index(self, state: GroupState) -> None:
        at = grouping.due_at(state)
        if at is not None:
            self._queue.add(at, state.key)

    def recorded(self, state: GroupState) -> None:
        """The agent stored `state`; what was kept ahead is obsolete once it has the same flushes."""
        ahead = self._ahead.get(state.key)
        if ahead is None or state.flushes >= ahead[0].flushes:
            self._ahead.pop(state.key, None)

    def discarded(self, key: str, members: set[str]) -> None:
        """Members left the group: what is kept ahead of the table loses them too."""
        if key in self._ahead:
            state, partition = self._ahead[key]
            self._ahead[key] = (grouping.discard(state, members), partition)

    def clear(self) -> None:
        self._queue.clear()
        self._ahead.clear()

    async def tick(self, owned: frozenset[int]) -> None:
        now = self._clock.now()
        for key in dict.fromkeys(self._queue.pop_due(now)):
            if key in self._ahead:
                state, partition = self._ahead[key]
            else:
                value = self._table.get(key)
                if not value:
                    continue
                state, partition = group_from(value), value["partition"]
            if partition not in owned:
                continue
            flush = grouping.due(state, now)
            if flush is not None and flush.items:
                receiver = self._routing.receivers.get(state.receiver)
                channels = [channel.name for channel in receiver.channels] if receiver else []
                await self._send(state.receiver, codec.encode_requested(digest_of(flush), channels,
                                                                        self._recorded.now()))
                state = grouping.flushed(state, flush)
                self._ahead[key] = (state, partition)
            self.index(state)
