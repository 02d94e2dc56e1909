"""In-memory implementations of the store protocols (tests, notebooks, throw-away demos).

They follow exactly the same contract as the SQLite classes (one parametrised test suite
runs on both), including idempotent appends and the change feed, so code written against
them behaves the same on a real shop. Writes and multi-step reads take a lock: the API
server calls the stores from a thread pool.

The artifact registry keeps its bookkeeping in memory but still copies model files into a
real directory, because models are loaded from paths.

A few helpers used by both implementations (time conversion, atomic directory copy, name
checks) live here, since `sqlite*` modules may import from this module but not the reverse.
"""

from __future__ import annotations

import bisect
import itertools
import json
import os
import re
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from shoploop.domain import Event, ImpressionEvent, Product
from shoploop.store.protocols import (
    PURGE_RECORD_HORIZON,
    AppendResult,
    CatalogChange,
    ModelStatus,
    ModelVersion,
    QuarantinedRow,
    RegistryDecision,
)

# ---------------------------------------------------------------------------- shared helpers

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$")


def to_micros(when: datetime) -> int:
    """Exact integer microseconds since the Unix epoch (UTC); naive datetimes are refused."""
    if when.tzinfo is None or when.utcoffset() is None:
        raise ValueError(f"datetime must be timezone-aware, got naive {when!r}")
    delta = when - _EPOCH  # integer fields: exact, and faster than `delta // _ONE_MICRO`
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_micros(micros: int) -> datetime:
    return _EPOCH + timedelta(microseconds=micros)


def utcnow() -> datetime:
    return datetime.now(UTC)


def json_safe(raw: Mapping[str, Any]) -> dict[str, Any]:
    """A JSON round-trip of a raw input row, so both quarantines return identical values.

    Raw rows come from CSV/Parquet readers and may hold timestamps, numpy scalars or
    decimals; `default=str` keeps them readable instead of failing the whole quarantine.
    """
    return json.loads(json.dumps(dict(raw), default=str))


def check_model_name(name: str) -> str:
    # The name becomes a directory component, so refuse anything that could escape the root.
    if not isinstance(name, str) or not _NAME_RE.match(name) or name in {".", ".."}:
        raise ValueError(f"model name must match {_NAME_RE.pattern}, got {name!r}")
    return name


def stage_copy(files_dir: Path, root: Path) -> Path:
    """Copy `files_dir` into a fresh temporary directory under `root` and return it.

    Staging inside `root` (same filesystem) makes the later `os.replace` an atomic rename.
    """
    files_dir = Path(files_dir)
    if not files_dir.is_dir():
        raise NotADirectoryError(f"artifact files_dir {files_dir} is not a directory")
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".staging-", dir=root))
    target = staging / "files"
    shutil.copytree(files_dir, target)
    return target


def publish_copy(staged: Path, final: Path) -> None:
    """Atomically move a staged copy to `final`, replacing a stale leftover from a crash."""
    final.parent.mkdir(parents=True, exist_ok=True)
    if final.exists():
        # Only possible when an earlier process renamed the files into place but died
        # before recording the version; that copy was never registered, so drop it.
        shutil.rmtree(final)
    os.replace(staged, final)
    shutil.rmtree(staged.parent, ignore_errors=True)


def discard_copy(staged: Path) -> None:
    shutil.rmtree(staged.parent, ignore_errors=True)


def types_filter(types: Iterable[str] | None) -> frozenset[str] | None:
    if types is None:
        return None
    if isinstance(types, str):  # a lone "click" would otherwise be read as characters
        return frozenset([types])
    return frozenset(types)


# ---------------------------------------------------------------------------------- catalog


class MemoryCatalogStore:
    """Products in a dict plus an append-only change feed."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._products: dict[str, Product] = {}
        self._changes: list[CatalogChange] = []

    def upsert(self, products: Iterable[Product]) -> int:
        batch = list(products)  # materialise first so a failing iterator changes nothing
        for product in batch:
            if not isinstance(product, Product):
                raise TypeError(f"expected Product, got {type(product).__name__}")
        with self._lock:
            for product in batch:
                self._products[product.item_id] = product
                self._changes.append(CatalogChange(len(self._changes) + 1, product.item_id, "upsert"))
            return len(self._changes)

    def delete(self, item_ids: Iterable[str]) -> int:
        ids = list(item_ids)
        with self._lock:
            for item_id in ids:
                if self._products.pop(item_id, None) is not None:
                    self._changes.append(CatalogChange(len(self._changes) + 1, item_id, "delete"))
            return len(self._changes)

    def get(self, item_id: str) -> Product | None:
        return self._products.get(item_id)

    def get_many(self, item_ids: Sequence[str]) -> dict[str, Product]:
        with self._lock:
            return {i: self._products[i] for i in item_ids if i in self._products}

    def iter_products(self) -> Iterator[Product]:
        with self._lock:
            snapshot = [self._products[k] for k in sorted(self._products)]
        return iter(snapshot)

    def changes_since(self, version: int) -> list[CatalogChange]:
        with self._lock:
            return list(self._changes[max(version, 0) :])

    @property
    def version(self) -> int:
        return len(self._changes)

    def __len__(self) -> int:
        return len(self._products)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._products

    def close(self) -> None:
        """Nothing to release; present so every store can be closed the same way."""


# ------------------------------------------------------------------------------- event log


class MemoryEventLog:
    """Events kept in (timestamp, insertion) order, with an id set for idempotency."""

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._ids: set[str] = set()
        # Sorted list of (ts_micros, seq) keys with a parallel list of events; appends are
        # usually in time order, so the sort on read is mostly a no-op.
        self._rows: list[tuple[int, int, Event]] = []
        self._sorted = True
        self._seq = itertools.count(1)
        self._appended: list[tuple[int, Event]] = []  # (seq, event) in append order, for tail()
        self._last_seq = 0  # highest seq given out; erased events keep theirs
        self._impressions: dict[str, ImpressionEvent] = {}
        self._flags: dict[str, str] = {}
        # The purge record (note_purged): (seq, user_id, noted at in micros), oldest first.
        self._purged: list[tuple[int, str, int]] = []
        self._purge_seq = 0  # highest purge seq given out; pruning never lowers it

    def append(self, events: Sequence[Event]) -> AppendResult:
        with self._lock:
            inserted: list[str] = []
            duplicates: list[str] = []
            new_rows: list[tuple[int, int, Event]] = []
            batch_ids: set[str] = set()
            # Compute everything before mutating so an error (e.g. a naive timestamp)
            # leaves the log untouched: the batch is all-or-nothing.
            for event in events:
                eid = event.event_id
                if eid in self._ids or eid in batch_ids:
                    duplicates.append(eid)
                    continue
                batch_ids.add(eid)
                new_rows.append((to_micros(event.timestamp), 0, event))
                inserted.append(eid)
            seqs = []
            for ts, _, event in new_rows:
                if self._sorted and self._rows and ts < self._rows[-1][0]:
                    self._sorted = False
                seq = self._last_seq = next(self._seq)
                seqs.append(seq)
                self._rows.append((ts, seq, event))
                self._appended.append((seq, event))
                if isinstance(event, ImpressionEvent):
                    self._impressions.setdefault(event.request_id, event)
            self._ids.update(batch_ids)
            return AppendResult(
                inserted=inserted, duplicates=duplicates, seqs=(seqs[0], seqs[-1]) if seqs else None
            )

    def tail(self, after_seq: int, *, limit: int = 10_000) -> list[tuple[int, Event]]:
        with self._lock:
            start = bisect.bisect_right(self._appended, after_seq, key=lambda row: row[0])
            return self._appended[start : start + limit]

    def last_seq(self) -> int:
        with self._lock:
            return self._last_seq

    def _ordered(self) -> list[tuple[int, int, Event]]:
        if not self._sorted:
            self._rows.sort(key=lambda row: (row[0], row[1]))
            self._sorted = True
        return self._rows

    def scan(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        user_id: str | None = None,
        types: Iterable[str] | None = None,
        exclude_flagged: bool = False,
    ) -> Iterator[Event]:
        wanted = types_filter(types)
        lo_ts = to_micros(since) if since is not None else None
        hi_ts = to_micros(until) if until is not None else None
        with self._lock:
            rows = self._ordered()
            lo = 0 if lo_ts is None else bisect.bisect_left(rows, lo_ts, key=lambda r: r[0])
            hi = len(rows) if hi_ts is None else bisect.bisect_left(rows, hi_ts, key=lambda r: r[0])
            flagged = set(self._flags) if exclude_flagged else set()
            selected = [
                event
                for _, _, event in rows[lo:hi]
                if (user_id is None or event.user_id == user_id)
                and (wanted is None or event.type in wanted)
                and event.user_id not in flagged
            ]
        return iter(selected)

    def count(self, *, types: Iterable[str] | None = None) -> int:
        wanted = types_filter(types)
        with self._lock:
            if wanted is None:
                return len(self._rows)
            return sum(1 for _, _, e in self._rows if e.type in wanted)

    def get_impression(self, request_id: str) -> ImpressionEvent | None:
        return self._impressions.get(request_id)

    def flag_users(self, user_ids: Iterable[str], reason: str) -> int:
        with self._lock:
            new = 0
            for uid in user_ids:
                if uid not in self._flags:
                    self._flags[uid] = reason
                    new += 1
            return new

    def flagged_users(self) -> dict[str, str]:
        with self._lock:
            return dict(self._flags)

    def unflag_users(self, user_ids: Iterable[str]) -> int:
        with self._lock:
            return sum(self._flags.pop(uid, None) is not None for uid in set(user_ids))

    def delete_user(self, user_id: str) -> int:
        with self._lock:
            keep = [row for row in self._rows if row[2].user_id != user_id]
            removed = len(self._rows) - len(keep)
            for _, _, event in self._rows:
                if event.user_id == user_id:
                    self._ids.discard(event.event_id)
            self._rows = keep
            self._appended = [row for row in self._appended if row[1].user_id != user_id]
            self._impressions = {k: v for k, v in self._impressions.items() if v.user_id != user_id}
            self._flags.pop(user_id, None)
            return removed

    def _older(self, cutoff: datetime, types: Iterable[str] | None) -> list[tuple[int, int, Event]]:
        """Rows with ts < cutoff (of `types`), oldest first; call with the lock held."""
        limit = to_micros(cutoff)  # refuses a naive cutoff, like the SQLite log
        wanted = types_filter(types)
        rows = self._ordered()
        hi = bisect.bisect_left(rows, limit, key=lambda r: r[0])
        return [row for row in rows[:hi] if wanted is None or row[2].type in wanted]

    def count_before(self, cutoff: datetime, *, types: Iterable[str] | None = None) -> int:
        with self._lock:
            return len(self._older(cutoff, types))

    def delete_before(
        self,
        cutoff: datetime,
        *,
        types: Iterable[str] | None = None,
        progress: Callable[[int], None] | None = None,
        erased_users: set[str] | None = None,
    ) -> int:
        # One step under the lock: there is no file lock to share here, and the rebuild below
        # is linear in the log either way. `_last_seq` is untouched, so seqs are not reused.
        with self._lock:
            doomed = self._older(cutoff, types)
            if not doomed:
                return 0
            if erased_users is not None:
                erased_users.update(event.user_id for _, _, event in doomed)
            gone = {seq for _, seq, _ in doomed}
            self._rows = [row for row in self._rows if row[1] not in gone]
            self._appended = [row for row in self._appended if row[0] not in gone]
            self._ids.difference_update(event.event_id for _, _, event in doomed)
            # get_impression answers with the first impression still stored under a request
            # id (as the SQLite log does), so a request whose stored one was erased falls back
            # to a later one, if any survived.
            stale = {
                event.request_id
                for _, _, event in doomed
                if isinstance(event, ImpressionEvent) and self._impressions.get(event.request_id) is event
            }
            for request_id in stale:
                del self._impressions[request_id]
            if stale:
                for _, event in self._appended:
                    if isinstance(event, ImpressionEvent) and event.request_id in stale:
                        self._impressions.setdefault(event.request_id, event)
        if progress is not None:
            progress(len(doomed))
        return len(doomed)

    def note_purged(self, user_ids: Iterable[str], at: datetime) -> int:
        now = to_micros(at)  # refuses a naive time before any change
        oldest_kept = to_micros(at - PURGE_RECORD_HORIZON)
        with self._lock:
            self._purged = [row for row in self._purged if row[2] >= oldest_kept]
            for user_id in dict.fromkeys(user_ids):
                self._purge_seq += 1
                self._purged.append((self._purge_seq, user_id, now))
            return self._purge_seq

    def purged_since(self, seq: int) -> tuple[int, set[str]]:
        with self._lock:
            start = bisect.bisect_right(self._purged, seq, key=lambda row: row[0])
            return self._purge_seq, {user_id for _, user_id, _ in self._purged[start:]}

    def last_purge_seq(self) -> int:
        with self._lock:
            return self._purge_seq

    def __len__(self) -> int:
        return len(self._rows)

    def close(self) -> None:
        """Nothing to release."""


# ------------------------------------------------------------------------------ quarantine


class MemoryQuarantine:
    def __init__(self, *, clock: Callable[[], datetime] = utcnow) -> None:
        self._lock = threading.RLock()
        self._rows: dict[int, QuarantinedRow] = {}
        self._next_id = 1
        self._clock = clock

    def add(
        self,
        rows: Iterable[tuple[int | None, str, Mapping[str, Any]]],
        *,
        source: str,
        kind: Literal["catalog", "event"],
    ) -> int:
        if kind not in ("catalog", "event"):
            raise ValueError(f"kind must be 'catalog' or 'event', got {kind!r}")
        now = self._clock()
        prepared = [(row_number, str(reason), json_safe(raw)) for row_number, reason, raw in rows]
        with self._lock:
            for row_number, reason, raw in prepared:
                self._rows[self._next_id] = QuarantinedRow(
                    id=self._next_id,
                    source=source,
                    kind=kind,
                    row_number=row_number,
                    reason=reason,
                    raw=raw,
                    quarantined_at=now,
                )
                self._next_id += 1
            return len(prepared)

    def list(
        self,
        *,
        kind: Literal["catalog", "event"] | None = None,
        source: str | None = None,
        reason_contains: str | None = None,
        limit: int | None = None,
    ) -> list[QuarantinedRow]:
        needle = reason_contains.lower() if reason_contains is not None else None
        with self._lock:
            out = [
                row
                for row in self._rows.values()
                if (kind is None or row.kind == kind)
                and (source is None or row.source == source)
                and (needle is None or needle in row.reason.lower())
            ]
        return out if limit is None else out[: max(limit, 0)]

    def remove(self, ids: Iterable[int]) -> int:
        with self._lock:
            return sum(1 for i in set(ids) if self._rows.pop(i, None) is not None)

    def counts_by_reason(self) -> dict[str, int]:
        with self._lock:
            counts: dict[str, int] = {}
            for row in self._rows.values():
                counts[row.reason] = counts.get(row.reason, 0) + 1
            return counts

    def count_before(self, cutoff: datetime) -> int:
        limit = to_micros(cutoff)
        with self._lock:
            return sum(1 for row in self._rows.values() if to_micros(row.quarantined_at) < limit)

    def remove_before(self, cutoff: datetime, *, progress: Callable[[int], None] | None = None) -> int:
        # Compared as integer microseconds, exactly as the SQLite quarantine stores them.
        limit = to_micros(cutoff)
        with self._lock:
            doomed = [i for i, row in self._rows.items() if to_micros(row.quarantined_at) < limit]
            for i in doomed:
                del self._rows[i]
        if doomed and progress is not None:
            progress(len(doomed))
        return len(doomed)

    def __len__(self) -> int:
        return len(self._rows)

    def close(self) -> None:
        """Nothing to release."""


# -------------------------------------------------------------------------------- registry


@dataclass
class _Entry:
    version: ModelVersion
    status_seq: int  # when the status last changed; rollback picks the latest retirement
    registered_seq: int  # registration order, for "oldest first" listings


class MemoryArtifactStore:
    """Model registry whose bookkeeping lives in memory; files are copied under `root`.

    Version directories are `root/<name>/<version>/`. A fresh store over a directory that
    already holds versions from an earlier run does not see them (use the SQLite store
    for persistence); it overwrites them when it registers the same version numbers.
    """

    def __init__(self, root: Path, *, clock: Callable[[], datetime] = utcnow) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._models: dict[str, dict[int, _Entry]] = {}
        self._decisions: list[RegistryDecision] = []
        self._seq = itertools.count(1)
        self._reg_seq = itertools.count(1)
        self._clock = clock

    # -- helpers
    def _entry(self, name: str, version: int) -> _Entry:
        try:
            return self._models[name][version]
        except KeyError:
            raise KeyError(f"no model version {name!r} v{version}") from None

    def _set(self, entry: _Entry, status: ModelStatus) -> None:
        entry.version = replace(entry.version, status=status)
        entry.status_seq = next(self._seq)

    def _decide(
        self, mv: ModelVersion, action: str, reason: str, metrics: Mapping[str, Any] | None = None
    ) -> None:
        self._decisions.append(
            RegistryDecision(
                name=mv.name,
                version=mv.version,
                action=action,  # type: ignore[arg-type]
                reason=reason,
                metrics=dict(mv.metrics if metrics is None else metrics),
                at=self._clock(),
            )
        )

    def _active_entry(self, name: str) -> _Entry | None:
        for entry in self._models.get(name, {}).values():
            if entry.version.status == "active":
                return entry
        return None

    # -- protocol
    def register(
        self,
        name: str,
        files_dir: Path,
        *,
        metrics: Mapping[str, Any] | None = None,
        config: Mapping[str, Any] | None = None,
    ) -> ModelVersion:
        check_model_name(name)
        metrics_d = json.loads(json.dumps(dict(metrics or {})))
        config_d = json.loads(json.dumps(dict(config or {})))
        staged = stage_copy(Path(files_dir), self.root)
        try:
            with self._lock:
                versions = self._models.setdefault(name, {})
                number = max(versions, default=0) + 1
                final = self.root / name / str(number)
                publish_copy(staged, final)
                mv = ModelVersion(
                    name=name,
                    version=number,
                    created_at=self._clock(),
                    status="candidate",
                    metrics=metrics_d,
                    config=config_d,
                    path=final,
                )
                versions[number] = _Entry(mv, next(self._seq), next(self._reg_seq))
                self._decide(mv, "register", "")
                return mv
        finally:
            discard_copy(staged)

    def get(self, name: str, version: int) -> ModelVersion:
        with self._lock:
            return self._entry(name, version).version

    def versions(self, name: str | None = None) -> list[ModelVersion]:
        with self._lock:
            names = [name] if name is not None else sorted(self._models)
            entries = [e for n in names for e in self._models.get(n, {}).values()]
        return [e.version for e in sorted(entries, key=lambda e: e.registered_seq)]

    def active(self, name: str) -> ModelVersion | None:
        with self._lock:
            entry = self._active_entry(name)
            return entry.version if entry else None

    def promote(self, name: str, version: int, *, reason: str = "") -> ModelVersion:
        with self._lock:
            entry = self._entry(name, version)
            if entry.version.status == "active":
                return entry.version
            if entry.version.status == "rejected":
                raise ValueError(f"{name!r} v{version} was rejected; register a new version instead")
            previous = self._active_entry(name)
            if previous is not None:
                self._set(previous, "retired")
                self._decide(previous.version, "retire", f"replaced by v{version}")
            self._set(entry, "active")
            self._decide(entry.version, "promote", reason)
            return entry.version

    def reject(
        self, name: str, version: int, *, reason: str, metrics: Mapping[str, Any] | None = None
    ) -> ModelVersion:
        with self._lock:
            entry = self._entry(name, version)
            if metrics:
                merged = {**entry.version.metrics, **json.loads(json.dumps(dict(metrics)))}
                entry.version = replace(entry.version, metrics=merged)
            self._set(entry, "rejected")
            self._decide(entry.version, "reject", reason, metrics)
            return entry.version

    def rollback(self, name: str, *, reason: str = "", to_none: bool = False) -> ModelVersion:
        with self._lock:
            retired = [e for e in self._models.get(name, {}).values() if e.version.status == "retired"]
            current = self._active_entry(name)
            if not retired:
                if not to_none or current is None:
                    raise LookupError(f"no retired version of {name!r} to roll back to")
                self._set(current, "rejected")
                self._decide(current.version, "reject", f"rolled back to none: {reason}".rstrip(": "))
                return current.version
            target = max(retired, key=lambda e: e.status_seq)
            if current is not None:
                # The rolled-back version is marked rejected (not retired) so that a second
                # rollback walks further back instead of flipping between two versions.
                self._set(current, "rejected")
                self._decide(current.version, "reject", f"rolled back: {reason}".rstrip(": "))
            self._set(target, "active")
            self._decide(target.version, "rollback", reason)
            return target.version

    def update_metrics(self, name: str, version: int, metrics: Mapping[str, Any]) -> ModelVersion:
        with self._lock:
            entry = self._entry(name, version)
            merged = {**entry.version.metrics, **json.loads(json.dumps(dict(metrics)))}
            entry.version = replace(entry.version, metrics=merged)
            return entry.version

    def decisions(
        self,
        name: str | None = None,
        *,
        actions: Sequence[str] | None = None,
        newest_first: bool = False,
        limit: int | None = None,
    ) -> list[RegistryDecision]:
        with self._lock:
            trail = [
                d
                for d in self._decisions
                if (name is None or d.name == name) and (actions is None or d.action in actions)
            ]
        if newest_first:
            trail.reverse()
        return trail if limit is None else trail[:limit]

    def close(self) -> None:
        """Nothing to release."""
