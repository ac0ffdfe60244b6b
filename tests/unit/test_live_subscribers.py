"""Live subscriptions share the replica's one reader of notifications.v1: each record goes to
every live subscriber of its receiver, from the moment it subscribed; a subscriber that reads
too slowly is told to resume from its cursor."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest

from notify.adapters.feed import Cursor, FellBehind, LiveSubscribers


@dataclass
class Record:
    key: bytes
    partition: int
    offset: int


async def take(iterator, count: int) -> list:
    return [await anext(iterator) for _ in range(count)]


def test_each_live_subscriber_of_a_receiver_gets_its_records_with_their_cursors():
    async def scenario():
        live = LiveSubscribers()
        first, second, other = live.follow("billing"), live.follow("billing"), live.follow("claims")
        # subscribing happens when the stream is first awaited
        waiting = [asyncio.ensure_future(take(first, 2)), asyncio.ensure_future(take(second, 2)),
                   asyncio.ensure_future(take(other, 1))]
        await asyncio.sleep(0)
        live.publish(Record(b"billing", 1, 10), "b10")
        live.publish(Record(b"claims", 2, 7), "c7")
        live.publish(Record(b"billing", 1, 11), "b11")
        return await asyncio.gather(*waiting)

    got_first, got_second, got_other = asyncio.run(scenario())

    assert got_first == got_second == [(Cursor(1, 10), "b10"), (Cursor(1, 11), "b11")]
    assert got_other == [(Cursor(2, 7), "c7")]


def test_records_before_a_subscription_are_not_sent_and_a_closed_one_is_forgotten():
    async def scenario():
        live = LiveSubscribers()
        live.publish(Record(b"billing", 0, 1), "before")
        stream = live.follow("billing")
        waiting = asyncio.ensure_future(take(stream, 1))
        await asyncio.sleep(0)
        live.publish(Record(b"billing", 0, 2), "after")
        got = await waiting
        await stream.aclose()
        live.publish(Record(b"billing", 0, 3), "nobody")
        return got, live._by_receiver

    got, registered = asyncio.run(scenario())

    assert got == [(Cursor(0, 2), "after")]
    assert registered == {}


def test_a_subscriber_that_falls_too_far_behind_is_told_to_resume():
    async def scenario():
        live = LiveSubscribers(capacity=2)
        stream = live.follow("billing")
        first = asyncio.ensure_future(anext(stream))
        await asyncio.sleep(0)
        live.publish(Record(b"billing", 0, 1), "one")
        assert (await first) == (Cursor(0, 1), "one")
        for offset in range(2, 6):  # four more while the subscriber does not read
            live.publish(Record(b"billing", 0, offset), offset)
        return [item async for item in stream]

    with pytest.raises(FellBehind, match="resume|last cursor"):
        asyncio.run(scenario())
