"""Commands handed from a replica's gRPC edge to its own engine, without Kafka in between.

A replica's edge and the engine that owns some partitions of handoff.commands.v1 run in one
process. A command whose customer's partition this replica owns waits here, and the engine
applies it in its next pass, in the batch's transaction, like a command read from the topic.
That saves the command's trip through the command topic and the reply's through the reply
topic. The caller is answered once that transaction is committed: its events, its leg and its
stored reply are on the broker by then, as they are when a reply is read read_committed.

Ownership is checked twice. The edge asks `owns` to choose the way (the answer may be a
moment old); the engine's thread decides, with the assignment it holds: a command whose
partition it no longer owns (a rebalance in between) is written to the command topic in the
batch's transaction, and the partition's new owner answers it through the reply topic. A
transaction that applied commands from here carries the owned partitions' offsets
(`fenced`), so a member that lost its partitions without knowing it cannot commit one.

A batch that is aborted puts its commands back, first in line; the engine applies them again
in a later pass. A caller whose command is never applied (the process stops) is told so by
its timeout, and retries with the same request id.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from handoff.v1 import handoff_commands_pb2 as commands_pb2

# Called on the engine's thread once the reply may be given.
Answer = Callable[[commands_pb2.CommandReply], None]


@dataclass(frozen=True)
class Waiting:
    command: commands_pb2.HandoffCommand
    partition: int
    answer: Answer


class CommandInbox:
    """Thread-safe between one edge (put, owns) and one engine thread (the rest): deque's
    append and popleft are atomic, and `_owned` is replaced, never changed in place."""

    def __init__(self) -> None:
        self._queue: deque[Waiting] = deque()
        self._owned: frozenset[int] = frozenset()
        self._taken: list[Waiting] = []
        self._replies: list[tuple[Answer, commands_pb2.CommandReply]] = []

    # --- the edge ----------------------------------------------------------------------

    def owns(self, partition: int) -> bool:
        return partition in self._owned

    def put(self, command: commands_pb2.HandoffCommand, partition: int, answer: Answer) -> None:
        self._queue.append(Waiting(command, partition, answer))

    # --- the engine's thread -----------------------------------------------------------

    def own(self, partitions: frozenset[int]) -> None:
        self._owned = partitions

    def waiting(self) -> bool:
        return bool(self._queue)

    def take(self, most: int) -> list[Waiting]:
        """Up to `most` commands for the batch under way, oldest first."""
        taken = []
        while self._queue and len(taken) < most:
            taken.append(self._queue.popleft())
        self._taken.extend(taken)
        return taken

    def reply(self, waiting: Waiting, reply: commands_pb2.CommandReply) -> None:
        """`reply` answers `waiting` once the batch commits."""
        self._replies.append((waiting.answer, reply))

    def committed(self) -> None:
        replies, self._replies, self._taken = self._replies, [], []
        for answer, reply in replies:
            answer(reply)

    def aborted(self) -> None:
        """The batch's commands go back first in line, in their order; nothing is answered."""
        taken, self._taken, self._replies = self._taken, [], []
        self._queue.extendleft(reversed(taken))
