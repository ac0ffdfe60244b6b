"""The gateway's delivery memory on disk, so a delivery id is never sent twice, also across
a restart or a kill -9 of the gateway.

One JSON line per fact, appended to a file in DATA_DIR: `sending` before a send starts
(made durable, fsync, before a byte leaves), then `delivered` with its receipt or `failed`.
Reading the file back at start gives the receipts to answer repeats with, and the ids whose
send was under way when the process died: those are *in doubt* (the receiver may or may not
have them) and are never sent again. Fsyncs are shared: every `sending` line written while
one fsync runs waits for the next one, so a burst costs a few fsyncs, not one per delivery.

Bounded like the ledger: once the file holds twice `capacity` lines it is rewritten with
what is still remembered (written aside, fsynced, renamed over the old one).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterable
from pathlib import Path

import orjson

from gateways.domain.ledger import ReceiptLedger


class DeliveryJournal:
    def __init__(self, path: Path, capacity: int) -> None:
        self._path = path
        self._capacity = capacity
        self.ledger = ReceiptLedger(capacity)
        self.in_doubt: dict[str, None] = {}
        self._lines = 0
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.exists():
            self._load()
        self._file = path.open("a", encoding="utf-8")
        self._waiting: list[asyncio.Future[None]] = []
        self._syncing: asyncio.Task[None] | None = None

    def _load(self) -> None:
        with self._path.open(encoding="utf-8") as lines:
            for line in lines:
                try:
                    fact = orjson.loads(line)
                except orjson.JSONDecodeError:
                    continue  # the last line of a process killed mid-write
                self._lines += 1
                self._apply(fact)
        while len(self.in_doubt) > self._capacity:
            self.in_doubt.pop(next(iter(self.in_doubt)))

    def _apply(self, fact: dict) -> None:
        delivery_id = fact.get("id", "")
        if fact.get("state") == "sending":
            self.in_doubt[delivery_id] = None
        else:
            self.in_doubt.pop(delivery_id, None)
            if fact.get("state") == "delivered":
                self.ledger.record(delivery_id, fact.get("receipt", ""))

    def _write(self, fact: dict) -> None:
        self._file.write(_fact_line(fact))
        self._lines += 1

    async def sending(self, *delivery_ids: str) -> None:
        """Record that sends of `delivery_ids` start; returns once that is on disk."""
        for delivery_id in delivery_ids:
            self._write({"id": delivery_id, "state": "sending"})
        waiter = asyncio.get_running_loop().create_future()
        self._waiting.append(waiter)
        if self._syncing is None or self._syncing.done():
            self._syncing = asyncio.create_task(self._sync())
        await waiter

    async def _sync(self) -> None:
        while self._waiting:
            waiting, self._waiting = self._waiting, []
            try:
                self._file.flush()
                await asyncio.to_thread(os.fsync, self._file.fileno())
            except OSError as error:
                for waiter in waiting:
                    waiter.done() or waiter.set_exception(error)
                continue
            for waiter in waiting:
                waiter.done() or waiter.set_result(None)

    def settled(self, outcomes: Iterable[tuple[str, str | None]]) -> None:
        """Sends ended, as (delivery id, receipt) when delivered, (delivery id, None) when they
        failed and said so (a retry may send again). Written and flushed at once; made durable
        with the next fsync."""
        for delivery_id, receipt in outcomes:
            if receipt is None:
                self._write({"id": delivery_id, "state": "failed"})
            else:
                self.ledger.record(delivery_id, receipt)
                self._write({"id": delivery_id, "state": "delivered", "receipt": receipt})
        self._file.flush()
        self._compact_if_long()

    def _compact_if_long(self) -> None:
        if self._lines < 2 * self._capacity or self._waiting or (self._syncing is not None and not self._syncing.done()):
            return
        aside = self._path.with_suffix(self._path.suffix + ".new")
        with aside.open("w", encoding="utf-8") as out:
            for delivery_id in self.in_doubt:
                out.write(_fact_line({"id": delivery_id, "state": "sending"}))
            for delivery_id, receipt in self.ledger.items():
                out.write(_fact_line({"id": delivery_id, "state": "delivered", "receipt": receipt}))
            out.flush()
            os.fsync(out.fileno())
        self._file.close()
        os.replace(aside, self._path)
        self._file = self._path.open("a", encoding="utf-8")
        self._lines = len(self.in_doubt) + len(self.ledger)

    def close(self) -> None:
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()


def _fact_line(fact: dict) -> str:
    """One fact as a compact JSON line."""
    return orjson.dumps(fact).decode() + "\n"
