"""The topic catalogue: one entry per topic, a dead-letter topic each, keys per DESIGN section 6."""

from __future__ import annotations

import pytest

from common.topics import CATALOGUE, all_topic_names


@pytest.mark.parametrize("spec", CATALOGUE, ids=lambda spec: spec.name)
def test_every_topic_has_a_dead_letter_topic_named_after_it(spec):
    assert spec.dlq == f"{spec.name}.dlq"


@pytest.mark.parametrize(
    "name, key",
    [
        ("contacts.v1", "customer_ref"),
        ("handoff.events.v1", "customer_ref"),
        ("sla.events.v1", "customer_ref"),
        ("repeat.contacts.v1", "customer_ref"),
        ("notifications.v1", "receiver"),
    ],
)
def test_each_topic_is_keyed_as_the_design_says(name, key):
    by_name = {spec.name: spec for spec in CATALOGUE}

    assert by_name[name].key == key


@pytest.mark.parametrize(
    "name, writer",
    [
        ("contacts.v1", "handoff"),
        ("handoff.events.v1", "handoff"),
        ("sla.events.v1", "sla"),
        ("repeat.contacts.v1", "sla"),
        ("notifications.v1", "notify"),
    ],
)
def test_each_topic_has_its_one_writer(name, writer):
    assert {spec.name: spec.writer for spec in CATALOGUE}[name] == writer


def test_every_topic_is_declared_once():
    names = [spec.name for spec in CATALOGUE]

    assert len(names) == len(set(names)) == 5


def test_all_topic_names_lists_each_topic_and_its_dead_letter_topic():
    names = all_topic_names()

    assert len(names) == len(set(names)) == 2 * len(CATALOGUE)
    assert set(names) == {spec.name for spec in CATALOGUE} | {f"{spec.name}.dlq" for spec in CATALOGUE}
