"""The small storage contracts every other layer talks to.

Each protocol has an embedded SQLite implementation (the default a shop runs) and an
in-memory one (for tests); one contract test suite runs on both, so the two cannot drift.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal, Protocol, get_args, runtime_checkable

from shoploop.domain import Event, ImpressionEvent, Product

ChangeOp = Literal["upsert", "delete"]
ModelStatus = Literal["candidate", "active", "retired", "rejected"]
DecisionAction = Literal["register", "promote", "reject", "rollback", "retire"]
DECISION_ACTIONS: tuple[str, ...] = get_args(DecisionAction)

# How long the purge record (`EventLog.note_purged`) keeps the ids of shoppers who lost events.
# It exists only so that servers running on the same home rebuild those shoppers' in-memory
# state at their next store sync, every few seconds; a server started later replays what the
# log still holds and needs none of it. Two days covers a server whose syncs fail for a while
# (a locked database, a weekend) without the record becoming a second, longer-lived list of
# shoppers (data minimisation, GDPR art. 5(1)(c)).
PURGE_RECORD_HORIZON = timedelta(days=2)


@dataclass(frozen=True)
class CatalogChange:
    """One entry of the catalog's change feed; `version` increases by one per change."""

    version: int
    item_id: str
    op: ChangeOp


@runtime_checkable
class CatalogStore(Protocol):
    def upsert(self, products: Iterable[Product]) -> int:
        """Insert or replace products in one transaction; returns the new catalog version."""
        ...

    def delete(self, item_ids: Iterable[str]) -> int:
        """Remove products (unknown ids are ignored); returns the new catalog version."""
        ...

    def get(self, item_id: str) -> Product | None: ...

    def get_many(self, item_ids: Sequence[str]) -> dict[str, Product]:
        """The known products among `item_ids`, keyed by id."""
        ...

    def iter_products(self) -> Iterator[Product]:
        """Every product, in item_id order."""
        ...

    def changes_since(self, version: int) -> list[CatalogChange]:
        """Changes with version > `version`, oldest first, one entry per change."""
        ...

    @property
    def version(self) -> int: ...

    def __len__(self) -> int: ...

    def __contains__(self, item_id: object) -> bool: ...


@dataclass(frozen=True)
class AppendResult:
    """What an `EventLog.append` did with each event of the batch."""

    inserted: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)  # event_ids already in the log
    # (first, last) `seq` of the inserted events, which are contiguous: a batch is one write
    # transaction that excludes other writers. None when nothing was inserted.
    seqs: tuple[int, int] | None = field(default=None, compare=False)


@runtime_checkable
class EventLog(Protocol):
    def append(self, events: Sequence[Event]) -> AppendResult:
        """Store a batch atomically: all new events land or none do.

        Idempotent on `event_id`: an id already stored is reported as a duplicate and
        not written again, so a client may safely re-send a batch after a time-out.
        """
        ...

    def scan(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        user_id: str | None = None,
        types: Iterable[str] | None = None,
        exclude_flagged: bool = False,
    ) -> Iterator[Event]:
        """Events in timestamp order (ties by insertion); `since` inclusive, `until` exclusive.

        `exclude_flagged` leaves out events of users flagged as bots (training reads
        with it on; the log itself keeps everything).
        """
        ...

    def count(self, *, types: Iterable[str] | None = None) -> int: ...

    def tail(self, after_seq: int, *, limit: int = 10_000) -> list[tuple[int, Event]]:
        """Up to `limit` events appended after `after_seq`, as (seq, event) in append order.

        `seq` numbers appends (1, 2, ...) and is never reused, not even after events are
        erased, so a reader in another process can follow what was written since it last
        looked.
        """
        ...

    def last_seq(self) -> int:
        """The highest `seq` given out so far, erased events included (0 for a new log)."""
        ...

    def get_impression(self, request_id: str) -> ImpressionEvent | None:
        """The list served under `request_id`, for joining interactions to it."""
        ...

    def flag_users(self, user_ids: Iterable[str], reason: str) -> int:
        """Mark users as bot-like; returns how many were newly flagged."""
        ...

    def flagged_users(self) -> dict[str, str]:
        """Flagged user ids with the reason."""
        ...

    def unflag_users(self, user_ids: Iterable[str]) -> int:
        """Remove these users' bot flags; returns how many flags were removed."""
        ...

    def delete_user(self, user_id: str) -> int:
        """Erase every event of a user (privacy); returns the number removed."""
        ...

    def count_before(self, cutoff: datetime, *, types: Iterable[str] | None = None) -> int:
        """How many events `delete_before` with the same arguments would erase now (read only)."""
        ...

    def delete_before(
        self,
        cutoff: datetime,
        *,
        types: Iterable[str] | None = None,
        progress: Callable[[int], None] | None = None,
        erased_users: set[str] | None = None,
    ) -> int:
        """Erase events with timestamp < `cutoff` (exclusive, like `scan(until=...)`), only of
        `types` when given; returns how many were erased (retention, GDPR art. 5(1)(e)).
        `erased_users`, when given, receives the user ids of the erased events, so whoever
        holds state derived from them (the engine's shopper profiles) can rebuild it.

        Flagged users are left alone; erased seqs are never handed out again (see `tail`).
        Work is done in chunks, each one atomic, so a large purge never blocks writers for
        long; `progress` is called with the number erased by each committed chunk. An
        interrupted purge leaves whole chunks erased, and running it again finishes the job.
        """
        ...

    def note_purged(self, user_ids: Iterable[str], at: datetime) -> int:
        """Record that these stored user ids lost events in a purge at `at`, so other processes
        on the shop can rebuild what they derived from those events (`purged_since`); returns
        the newest purge seq. One atomic write; each id noted takes the next seq (never reused,
        not even after pruning), and noting an id twice is harmless. Records older than
        `PURGE_RECORD_HORIZON` before `at` are pruned by the same write, even when `user_ids`
        is empty, so the record never keeps ids of shoppers around for long.
        """
        ...

    def purged_since(self, seq: int) -> tuple[int, set[str]]:
        """(newest purge seq, the user ids noted with a seq > `seq` and not yet pruned).

        A follower keeps the first value and passes it next time; it starts from
        `last_purge_seq()`, since state built from the log after a purge needs no rebuild.
        """
        ...

    def last_purge_seq(self) -> int:
        """The newest purge seq (0 when no purge was ever noted); what `purged_since` returns first."""
        ...

    def __len__(self) -> int: ...


@dataclass(frozen=True)
class QuarantinedRow:
    """A rejected input row, kept verbatim with why it was rejected."""

    id: int
    source: str  # file name or API batch id
    kind: Literal["catalog", "event"]
    row_number: int | None
    reason: str  # names the field, e.g. "price: Input should be greater than 0"
    raw: Mapping[str, Any]
    quarantined_at: datetime


@runtime_checkable
class Quarantine(Protocol):
    def add(
        self,
        rows: Iterable[tuple[int | None, str, Mapping[str, Any]]],
        *,
        source: str,
        kind: Literal["catalog", "event"],
    ) -> int:
        """Store (row_number, reason, raw row) triples; returns how many were stored."""
        ...

    def list(
        self,
        *,
        kind: Literal["catalog", "event"] | None = None,
        source: str | None = None,
        reason_contains: str | None = None,
        limit: int | None = None,
    ) -> list[QuarantinedRow]: ...

    def remove(self, ids: Iterable[int]) -> int:
        """Drop rows (after a successful re-import); returns how many were removed."""
        ...

    def counts_by_reason(self) -> dict[str, int]: ...

    def count_before(self, cutoff: datetime) -> int:
        """How many rows were quarantined before `cutoff` (what `remove_before` would drop)."""
        ...

    def remove_before(self, cutoff: datetime, *, progress: Callable[[int], None] | None = None) -> int:
        """Drop rows quarantined before `cutoff` (exclusive); they hold raw shopper rows too.

        Chunked and atomic per chunk like `EventLog.delete_before`; returns how many were dropped.
        """
        ...


@dataclass(frozen=True)
class ModelVersion:
    """One registered artifact: a model's files plus what we know about them."""

    name: str
    version: int
    created_at: datetime
    status: ModelStatus
    metrics: Mapping[str, Any]
    config: Mapping[str, Any]
    path: Path  # directory holding the artifact's files

    def numeric_metrics(self) -> dict[str, int | float]:
        """The metrics that are numbers, as stored (a gate's nested evidence and reason left out)."""
        return {
            k: v for k, v in self.metrics.items() if isinstance(v, int | float) and not isinstance(v, bool)
        }


@dataclass(frozen=True)
class RegistryDecision:
    """An audit-log entry: a promotion, rejection or rollback and why."""

    name: str
    version: int
    action: DecisionAction
    reason: str
    metrics: Mapping[str, Any]
    at: datetime


@runtime_checkable
class ArtifactStore(Protocol):
    """Model registry: versioned artifact directories with status and metrics."""

    def register(
        self,
        name: str,
        files_dir: Path,
        *,
        metrics: Mapping[str, Any] | None = None,
        config: Mapping[str, Any] | None = None,
    ) -> ModelVersion:
        """Copy `files_dir` into the registry as the next version, status `candidate`.

        The copy is written to a temporary directory and renamed into place, so an
        interrupted registration never leaves a half-written version.
        """
        ...

    def get(self, name: str, version: int) -> ModelVersion: ...

    def versions(self, name: str | None = None) -> list[ModelVersion]:
        """All versions (of one model, or of all), oldest first."""
        ...

    def active(self, name: str) -> ModelVersion | None: ...

    def promote(self, name: str, version: int, *, reason: str = "") -> ModelVersion:
        """Make `version` active; the previously active one becomes retired."""
        ...

    def reject(
        self, name: str, version: int, *, reason: str, metrics: Mapping[str, Any] | None = None
    ) -> ModelVersion: ...

    def rollback(self, name: str, *, reason: str = "", to_none: bool = False) -> ModelVersion:
        """Re-activate the most recently retired version and return it. With none retired:
        raises LookupError, unless `to_none` — then the active version is rejected and returned
        (no version of `name` is active any more; for a model the engine can serve without)."""
        ...

    def update_metrics(self, name: str, version: int, metrics: Mapping[str, Any]) -> ModelVersion: ...

    def decisions(
        self,
        name: str | None = None,
        *,
        actions: Sequence[str] | None = None,
        newest_first: bool = False,
        limit: int | None = None,
    ) -> list[RegistryDecision]:
        """The audit trail (of `name`, or every model), oldest first unless `newest_first`, only
        the kinds in `actions` (None = all), at most `limit` entries."""
        ...
