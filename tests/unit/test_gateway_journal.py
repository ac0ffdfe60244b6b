"""The gateway's delivery journal: what it remembers across a restart, and how it stays bounded."""

from __future__ import annotations

import asyncio
from pathlib import Path

from gateways.adapters.journal import DeliveryJournal


def test_a_restart_remembers_receipts_and_the_sends_that_were_cut_off(tmp_path: Path) -> None:
    path = tmp_path / "dedup.jsonl"
    journal = DeliveryJournal(path, capacity=10)

    async def sends() -> None:
        for delivery_id in ("d-1", "d-2", "d-3"):
            await journal.sending(delivery_id)

    asyncio.run(sends())
    journal.settled([("d-1", "202 req-1")])
    journal.settled([("d-2", None)])
    # d-3's send was under way when the process died (nothing closed)
    again = DeliveryJournal(path, capacity=10)
    assert again.ledger.receipt_for("d-1") == "202 req-1"
    assert again.ledger.receipt_for("d-2") is None and "d-2" not in again.in_doubt
    assert list(again.in_doubt) == ["d-3"]


def test_a_line_torn_by_a_kill_is_skipped(tmp_path: Path) -> None:
    path = tmp_path / "dedup.jsonl"
    path.write_text('{"id":"d-1","state":"delivered","receipt":"r"}\n{"id":"d-2","sta')
    journal = DeliveryJournal(path, capacity=10)
    assert journal.ledger.receipt_for("d-1") == "r" and not journal.in_doubt


def test_the_file_is_rewritten_with_what_is_remembered_once_it_is_twice_the_capacity(tmp_path: Path) -> None:
    path = tmp_path / "dedup.jsonl"
    journal = DeliveryJournal(path, capacity=3)

    async def deliver_all() -> None:
        for number in range(10):
            await journal.sending(f"d-{number}")
            journal.settled([(f"d-{number}", str(number))])

    asyncio.run(deliver_all())
    assert len(path.read_text().splitlines()) <= 2 * 3
    again = DeliveryJournal(path, capacity=3)
    assert [again.ledger.receipt_for(f"d-{n}") for n in (6, 7, 8, 9)] == [None, "7", "8", "9"]


def test_the_sends_of_a_batch_are_journaled_together_and_settled_together(tmp_path: Path) -> None:
    path = tmp_path / "dedup.jsonl"
    journal = DeliveryJournal(path, capacity=10)

    asyncio.run(journal.sending("d-1", "d-2", "d-3"))
    on_disk = DeliveryJournal(path, capacity=10)
    journal.settled([("d-1", "1"), ("d-2", None)])
    again = DeliveryJournal(path, capacity=10)

    assert list(on_disk.in_doubt) == ["d-1", "d-2", "d-3"]  # all three before any send starts
    assert again.ledger.receipt_for("d-1") == "1" and journal.ledger.receipt_for("d-1") == "1"
    assert again.ledger.receipt_for("d-2") is None and list(again.in_doubt) == ["d-3"]
