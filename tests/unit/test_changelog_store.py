"""common.streams.store: values with their header, writes once per key per batch, rollback, revocation."""

from __future__ import annotations

from common.streams.store import ChangelogStore, forget_due, framed, header_of, payload_of


def store_with(**values: bytes) -> ChangelogStore:
    store = ChangelogStore("legs", "app-legs-changelog")
    for key, value in values.items():
        store[key] = value
    store.commit()
    return store


def test_a_value_carries_its_partition_due_instant_and_tag_ahead_of_the_payload():
    value = framed(11, b'{"a":1}', due_us=1_700_000_000_000_000, tag=2)

    assert header_of(value).partition == 11
    assert header_of(value).due_us == 1_700_000_000_000_000
    assert header_of(value).tag == 2
    assert payload_of(value) == b'{"a":1}'


def test_a_key_written_twice_in_a_batch_is_written_once_with_its_last_value():
    store = store_with()

    store["h-1"] = framed(0, b"first")
    store["h-1"] = framed(0, b"second")
    store["h-2"] = framed(3, b"other")

    assert sorted(store.writes()) == [(0, "h-1", framed(0, b"second")), (3, "h-2", framed(3, b"other"))]


def test_a_deleted_key_is_written_as_a_tombstone_on_the_partition_it_lived_on():
    store = store_with(**{"h-1": framed(2, b"kept")})

    del store["h-1"]

    assert store.writes() == [(2, "h-1", None)]
    assert "h-1" not in store


def test_a_commit_forgets_the_batch_and_a_rollback_restores_the_last_commit():
    store = store_with(**{"h-1": framed(0, b"committed")})
    store["h-1"] = framed(0, b"changed")
    store["h-2"] = framed(1, b"new")
    del store["h-1"]

    undone = store.rollback()

    assert sorted(undone) == ["h-1", "h-2"]
    assert store.get("h-1") == framed(0, b"committed")
    assert "h-2" not in store
    assert store.writes() == []


def test_revoked_partitions_lose_their_keys_and_keep_the_others():
    store = store_with(**{"a": framed(0, b"x"), "b": framed(1, b"y"), "c": framed(1, b"z")})

    gone = store.drop(frozenset({1}))

    assert gone == 2
    assert list(store.items()) == [("a", framed(0, b"x"))]


def test_a_tombstone_read_back_from_the_changelog_removes_the_key():
    store = store_with(**{"a": framed(0, b"x")})

    store.restore("a", None)
    store.restore("b", framed(0, b"y"))

    assert list(store.items()) == [("b", framed(0, b"y"))]
    assert store.writes() == []


def test_forget_instants_are_rounded_up_to_the_whole_second_so_they_come_due_together():
    # entries finished within one second ...
    instants = [forget_due(at) for at in (1_700_000_000_000_001, 1_700_000_000_500_000, 1_700_000_000_999_999)]
    # ... are forgotten in the same pass, never before their period is over
    assert set(instants) == {1_700_000_001_000_000}
    assert forget_due(1_700_000_001_000_000) == 1_700_000_001_000_000
