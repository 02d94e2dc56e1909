"""Follow the shop's event log for events written by other processes.

A server updates its online state (counters, shopper profiles) from the events it takes in
itself. Events that reach the log another way — `shoploop import` of a file while the server
runs, a second server process on the same home — would otherwise reach the online state only
at the next start-up replay. The follower reads the log by `seq` (append order) from where it
last stopped and applies what this engine did not write itself.

Telling our own appends apart: `OwnWrites` wraps the engine's event log and notes the seq range
of every batch the engine appends (a batch is one write transaction, so its seqs are
contiguous). Appending and noting happen under one lock that the follower also takes while it
reads, so it never sees a batch of ours before the batch is noted. Consecutive batches of ours
merge into one range, and ranges behind the follower's cursor are dropped, so a server that
only takes events through its own API keeps a single range.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import Any

from shoploop.domain import Event
from shoploop.store.protocols import AppendResult, EventLog

__all__ = ["EventFollower", "OwnWrites"]


class OwnWrites:
    """The engine's view of the event log: the store's log, noting the seqs it appends."""

    def __init__(self, log: EventLog) -> None:
        self.log = log
        self.lock = threading.Lock()
        self.ranges: list[tuple[int, int]] = []  # (first, last) seq of our batches, oldest first

    def append(self, events: Sequence[Event]) -> AppendResult:
        with self.lock:
            result = self.log.append(events)
            if result.seqs is not None:
                first, last = result.seqs
                if self.ranges and self.ranges[-1][1] + 1 == first:
                    self.ranges[-1] = (self.ranges[-1][0], last)
                else:
                    self.ranges.append((first, last))
            return result

    def ours(self, seq: int) -> bool:
        return any(first <= seq <= last for first, last in self.ranges)

    def forget_up_to(self, seq: int) -> None:
        """Drop the ranges the follower has passed."""
        self.ranges = [(max(first, seq + 1), last) for first, last in self.ranges if last > seq]

    def __len__(self) -> int:  # special methods are looked up on the type, not via __getattr__
        return len(self.log)

    def __getattr__(self, name: str) -> Any:
        # Everything else (scan, count, flag_users, delete_user, tail, ...) is the log's own.
        return getattr(self.log, name)


class EventFollower:
    """Applies events other writers appended to the log, in append order."""

    def __init__(self, log: OwnWrites, apply: Callable[[Event], None], *, batch: int = 5000) -> None:
        self.log = log
        self.apply = apply
        self.batch = batch
        self.cursor = 0

    def skip_to_end(self) -> None:
        """Start following from the log's current end (after a replay has read the rest)."""
        with self.log.lock:
            self.cursor = self.log.last_seq()
            self.log.forget_up_to(self.cursor)

    def follow(self) -> int:
        """Apply what others appended since the last call; returns how many events."""
        applied = 0
        while True:
            with self.log.lock:
                rows = self.log.tail(self.cursor, limit=self.batch)
                foreign = [event for seq, event in rows if not self.log.ours(seq)]
                if rows:
                    self.cursor = rows[-1][0]
                    self.log.forget_up_to(self.cursor)
            if foreign:
                flagged = self.log.flagged_users()
                for event in foreign:
                    if event.user_id not in flagged:
                        self.apply(event)
                        applied += 1
            if len(rows) < self.batch:
                return applied
