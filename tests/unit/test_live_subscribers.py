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


class Missed:
    """A catch-up reader over a partition's records (offset -> (receiver, event)) that records
    what it was asked, and lets the reader publish meanwhile."""

    def __init__(self, records: dict[int, tuple[bytes, str]], receiver: bytes, during=None) -> None:
        self.records, self.receiver, self.during = records, receiver, during
        self.asked: list[tuple[int, int]] = []

    async def __call__(self, start: int, until: int):
        self.asked.append((start, until))
        for offset in range(start, until):
            if self.during is not None:
                self.during(offset)
            await asyncio.sleep(0)
            receiver, event = self.records[offset]
            if receiver == self.receiver:
                yield Cursor(0, offset), event


def test_a_subscriber_resuming_behind_the_reader_reads_what_it_missed_then_goes_on_live_without_a_gap():
    # given a reader that has published offsets 0..5 of partition 0 (billing and claims alternate)
    history = {offset: (b"billing" if offset % 2 == 0 else b"claims", f"e{offset}") for offset in range(8)}

    async def scenario():
        live = LiveSubscribers()
        for offset in range(6):
            live.publish(Record(history[offset][0], 0, offset), history[offset][1])

        def reader_goes_on(offset: int) -> None:  # while the subscriber catches up, 6 and 7 arrive
            if offset == 3:
                for later in (6, 7):
                    live.publish(Record(history[later][0], 0, later), history[later][1])

        missed = Missed(history, b"billing", during=reader_goes_on)
        # when billing resumes after offset 1
        stream = live.follow("billing", Cursor(0, 1), missed)
        return await take(stream, 2 + 1), missed.asked

    got, asked = asyncio.run(scenario())

    # then what it missed up to where the reader stood is read once, then the reader's records follow
    assert asked == [(2, 6)]
    assert got == [(Cursor(0, 2), "e2"), (Cursor(0, 4), "e4"), (Cursor(0, 6), "e6")]


def test_a_subscriber_whose_cursor_is_ahead_of_the_reader_reads_nothing_twice():
    # given a cursor another replica handed out, ahead of this replica's reader
    async def scenario():
        live = LiveSubscribers()
        live.publish(Record(b"billing", 0, 3), "e3")
        missed = Missed({}, b"billing")
        stream = live.follow("billing", Cursor(0, 5), missed)
        waiting = asyncio.ensure_future(take(stream, 1))
        await asyncio.sleep(0)
        for offset in (4, 5, 6):  # the reader reaches the cursor, then passes it
            live.publish(Record(b"billing", 0, offset), f"e{offset}")
        return await waiting, missed.asked

    got, asked = asyncio.run(scenario())

    # then nothing is read on the side, and what the cursor covers is not sent again
    assert asked == []
    assert got == [(Cursor(0, 6), "e6")]
