"""The topic catalogue: one entry per topic, a dead-letter topic each, keys and writers as
docs/architecture.md lists them, and the changelog topic of every store (`<app>-<store>-changelog`)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from common.clock import WallClock
from common.streams.engine import Sender
from handoff_svc.entrypoints.app import OwnerProcessor
from sla.domain.policy import PolicyBook
from sla.domain.repeats import RepeatRules
from sla.entrypoints.app import SlaProcessor

from common.topics import (
    CATALOGUE,
    HANDOFF_APP,
    NOTIFY_APP,
    SLA_APP,
    TABLES,
    all_topic_names,
    changelog_topic_names,
    compacted_topic_names,
)

# name -> (key, writer); the two handoff.* internal topics carry the command bus.
EXPECTED = {
    "contacts.v1": ("customer_ref", "handoff"),
    "handoff.events.v1": ("customer_ref", "handoff"),
    "handoff.commands.v1": ("customer_ref", "handoff"),
    "handoff.replies.v1": ("replica", "handoff"),
    "sla.events.v1": ("customer_ref", "sla"),
    "repeat.contacts.v1": ("customer_ref", "sla"),
    "notifications.v1": ("receiver", "notify"),
    "notify.silences.v1": ("silence_id", "notify"),
}
# Topics that keep only the latest record per key.
COMPACTED = {"notify.silences.v1"}


def test_the_catalogue_declares_each_expected_topic_once():
    names = [spec.name for spec in CATALOGUE]

    assert sorted(names) == sorted(EXPECTED)


@pytest.mark.parametrize("spec", CATALOGUE, ids=lambda spec: spec.name)
def test_each_topic_is_keyed_and_written_as_the_design_says(spec):
    assert (spec.key, spec.writer) == EXPECTED[spec.name]


def test_only_the_silences_topic_is_compacted_and_each_compacted_topic_has_a_value_type():
    from common.codec import VALUE_TYPES

    assert set(compacted_topic_names()) == COMPACTED
    assert all(name in VALUE_TYPES for name in COMPACTED)


@pytest.mark.parametrize("spec", CATALOGUE, ids=lambda spec: spec.name)
def test_every_topic_has_a_dead_letter_topic_named_after_it(spec):
    assert spec.dlq == f"{spec.name}.dlq"
    assert spec.dlq in all_topic_names()


def test_all_topic_names_lists_each_topic_and_its_dead_letter_topic():
    names = all_topic_names()

    assert len(names) == len(set(names)) == 2 * len(CATALOGUE)
    assert set(names) == {spec.name for spec in CATALOGUE} | {f"{spec.name}.dlq" for spec in CATALOGUE}


def test_each_stream_app_has_its_own_id_and_tables():
    assert set(TABLES) == {HANDOFF_APP, SLA_APP, NOTIFY_APP}
    assert len({HANDOFF_APP, SLA_APP, NOTIFY_APP}) == 3
    assert TABLES == {
        HANDOFF_APP: ("legs", "requests"),
        SLA_APP: ("clocks", "customers", "marks"),
        NOTIFY_APP: ("legs", "deliveries", "pending", "escalations", "groups", "grouped", "sources", "marks"),
    }


def test_changelog_names_are_app_table_changelog_for_every_table():
    expected = [f"{app}-{table}-changelog" for app in TABLES for table in TABLES[app]]

    assert changelog_topic_names() == expected
    assert "handoff-legs-legs-changelog" in changelog_topic_names()
    assert len(set(expected)) == len(expected)
    assert not set(expected) & set(all_topic_names())


def test_notify_declares_the_changelog_of_each_of_its_stages_tables():
    from notify.entrypoints.app import STAGE1_TABLES, STAGE2_TABLES

    assert sorted(TABLES[NOTIFY_APP]) == sorted(STAGE1_TABLES + STAGE2_TABLES)


def test_the_sla_engine_keeps_the_stores_the_catalogue_declares_with_their_changelogs():
    rules = RepeatRules(window=timedelta(days=7), transfer_grace=timedelta(minutes=15), cost_per_contact={})
    processor = SlaProcessor(PolicyBook((), rules), WallClock(), Sender())

    assert tuple(store.name for store in processor.stores) == TABLES[SLA_APP]
    assert {store.changelog for store in processor.stores} <= set(changelog_topic_names())


def test_the_handoff_engine_keeps_the_stores_the_catalogue_declares_with_their_changelogs():
    processor = OwnerProcessor(WallClock(), Sender())

    assert tuple(store.name for store in processor.stores) == TABLES[HANDOFF_APP]
    assert {store.changelog for store in processor.stores} <= set(changelog_topic_names())
