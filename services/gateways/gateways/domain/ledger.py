"""Receipts of deliveries already made, so a retried delivery_id is answered without resending.

Bounded: the oldest receipts are forgotten first. A retry comes within minutes (the
caller's backoff), so a few thousand entries cover it. The journal (adapters/journal.py)
keeps the ledger on disk, so it survives a restart.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterator


class ReceiptLedger:
    """delivery_id -> receipt, holding at most `capacity` entries."""

    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError(f"capacity {capacity} must be at least 1")
        self._capacity = capacity
        self._receipts: OrderedDict[str, str] = OrderedDict()

    def __len__(self) -> int:
        return len(self._receipts)

    def receipt_for(self, delivery_id: str) -> str | None:
        """The receipt of an earlier delivery with this id, or None."""
        return self._receipts.get(delivery_id)

    def record(self, delivery_id: str, receipt: str) -> None:
        """Remember a delivery; the first receipt of an id stays."""
        if delivery_id in self._receipts:
            return
        self._receipts[delivery_id] = receipt
        while len(self._receipts) > self._capacity:
            self._receipts.popitem(last=False)

    def items(self) -> Iterator[tuple[str, str]]:
        """(delivery_id, receipt), oldest first."""
        return iter(list(self._receipts.items()))
