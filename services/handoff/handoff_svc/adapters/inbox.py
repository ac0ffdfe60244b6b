"""Commands handed from a replica's gRPC edge to its own engine, without the command topic.

A replica's edge and the engine that owns some partitions of handoff.commands.v1 run in one
process. A command whose customer's partition this replica owns waits here, and the engine
applies it in its next pass, in the batch's transaction, like a command read from the topic.
That saves the command's produce, its fetch and its decoding.

The reply still goes through handoff.replies.v1, in the batch's transaction, and the edge
still waits to read it there. That is what makes a write visible to every read that follows
its answer, on any replica: a read waits until its read model has reached the partitions'
last stable offsets, and those pass a transaction's records only once the transaction's
markers are written, after the commit has returned to the engine. The reply is read
read_committed, so the caller hears of the write no sooner than that.

Ownership is checked twice. The edge asks `owns` to choose the way (the answer may be a
moment old); the engine's thread decides, with the assignment it holds: a command whose
partition it no longer owns (a rebalance in between) is written to the command topic in the
batch's transaction, and the partition's new owner applies it. A transaction that applied
commands from here carries the owned partitions' offsets (the engine's `fenced`), so a
member that lost its partitions without knowing it cannot commit one.

A batch that is aborted puts its commands back, first in line; the engine applies them again
in a later pass. A caller whose command is never applied (the process stops) is told so by
its timeout, and retries with the same request id.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from handoff.v1 import handoff_commands_pb2 as commands_pb2


@dataclass(frozen=True)
class Waiting:
    command: commands_pb2.HandoffCommand
    partition: int


class CommandInbox:
    """Thread-safe between one edge (put, owns) and one engine thread (the rest): deque's
    append and popleft are atomic, and `_owned` is replaced, never changed in place."""

    def __init__(self) -> None:
        self._queue: deque[Waiting] = deque()
        self._owned: frozenset[int] = frozenset()
        self._taken: list[Waiting] = []

    # --- the edge ----------------------------------------------------------------------

    def owns(self, partition: int) -> bool:
        return partition in self._owned

    def put(self, command: commands_pb2.HandoffCommand, partition: int) -> None:
        self._queue.append(Waiting(command, partition))

    # --- the engine's thread -----------------------------------------------------------

    def own(self, partitions: frozenset[int]) -> None:
        self._owned = partitions

    def give_up(self, partitions: frozenset[int]) -> None:
        self._owned = self._owned - partitions

    def waiting(self) -> bool:
        return bool(self._queue)

    def take(self, most: int) -> list[Waiting]:
        """Up to `most` commands for the batch under way, oldest first."""
        taken = []
        while self._queue and len(taken) < most:
            taken.append(self._queue.popleft())
        self._taken.extend(taken)
        return taken

    def committed(self) -> None:
        """The batch's commands are applied for good (or sent on)."""
        self._taken = []

    def aborted(self) -> None:
        """The batch's commands go back first in line, in their order."""
        taken, self._taken = self._taken, []
        self._queue.extendleft(reversed(taken))
