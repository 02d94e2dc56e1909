"""SQLite event log: append-only, idempotent on `event_id`, one transaction per batch."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime
from pathlib import Path

from shoploop.domain import Event, ImpressionEvent
from shoploop.domain.events import EVENT_ADAPTER
from shoploop.store.memory import to_micros, types_filter, utcnow
from shoploop.store.protocols import PURGE_RECORD_HORIZON, AppendResult
from shoploop.store.sqlite_db import (
    PURGE_CHUNK_ROWS,
    PURGE_PAUSE_S,
    SqliteDatabase,
    event_key,
    open_database,
    purge_in_chunks,
)

_COLUMNS = "event_key, event_id, type, user_id, session_id, ts, item_id, request_id, payload"
_INSERT = f"INSERT INTO events ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
_INSERT_AT = f"INSERT INTO events (seq, {_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
# The highest seq ever given out: erased events keep their numbers (schema v4).
_LAST_SEQ = (
    "SELECT MAX((SELECT COALESCE(MAX(seq), 0) FROM events), "
    "(SELECT seq FROM event_seq_high_water WHERE id = 1))"
)
# The highest purge seq ever given out (schema v5): AUTOINCREMENT keeps it in sqlite_sequence,
# which has no row for the table until its first insert.
_LAST_PURGE_SEQ = "SELECT COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'purged_users'), 0)"
# Stored ids among candidate keys. One bound JSON array instead of thousands of `?`
# placeholders (SQLite caps variables). Callers compare the returned ids, not just keys, so a
# hash collision between different ids never makes a new event look like a duplicate.
_EXISTING = "SELECT event_id FROM events WHERE event_key IN (SELECT value FROM json_each(?))"
_FETCH = 2000
_HINT_MIN = 64


def _row(event: Event) -> tuple:
    # Fields are read from __dict__: getattr(event, "item_id", None) on a model without
    # that field goes through pydantic's __getattr__ and an AttributeError (~6 us, more
    # than the JSON dump). model_dump_json runs in pydantic-core (Rust), at a fraction of the
    # cost of model_dump + json.dumps. Fields that are None are left out: every optional
    # event field defaults to None (tests/store check the round trip), and skipping them
    # cut the dump's cost by about a third (None inside `context` is kept: it is data).
    # The serializer is called directly: model_dump_json's argument handling in Python was
    # ~0.5 us of the ~18 us an event costs in benchmarks/ingest.py.
    fields = event.__dict__
    return (
        event_key(fields["event_id"]),
        fields["event_id"],
        fields["type"],
        fields["user_id"],
        fields["session_id"],
        to_micros(fields["timestamp"]),
        fields.get("item_id"),
        fields.get("request_id"),
        event.__pydantic_serializer__.to_json(event, exclude_none=True).decode(),
    )


def _parse(payload: str) -> Event:
    return EVENT_ADAPTER.validate_json(payload)


class SqliteEventLog:
    """Event log in the `events` table; bot flags in `flagged_users`."""

    def __init__(self, db: SqliteDatabase | Path | str) -> None:
        self._db = open_database(db)
        self.purge_chunk_rows = PURGE_CHUNK_ROWS
        self.purge_pause_s = PURGE_PAUSE_S

    def append(self, events: Sequence[Event]) -> AppendResult:
        # Keep the first occurrence of each id; later repeats inside the batch are duplicates.
        order: list[str] = []
        unique: dict[str, Event] = {}
        for event in events:
            eid = event.event_id
            order.append(eid)
            if eid not in unique:
                unique[eid] = event
        if not unique:
            return AppendResult(inserted=[], duplicates=order)

        # A re-sent batch (client retry, re-import) is recognised from its first id, and then
        # only the unknown events are serialised. This is a hint read outside the
        # transaction; the authoritative check runs inside it, below.
        known: set[str] = set()
        # (Small batches, like the one impression a served list logs, skip the hint: the
        # check inside the transaction costs the same as the hint would.)
        if len(unique) > _HINT_MIN and self._exists(next(iter(unique))):
            known = self._existing(self._db.reader(), {eid: event_key(eid) for eid in unique})
        # Serialise before taking the write lock: a bad event fails the batch without
        # touching the database, and the lock is held only for SQL.
        rows = [_row(event) for eid, event in unique.items() if eid not in known]

        added: set[str] = set()
        seqs: tuple[int, int] | None = None
        if rows:
            with self._db.write() as conn:
                # Inside the write transaction no other writer (thread or process) can add
                # rows, so ids found here are exactly the ones stored since the hint.
                stored = self._existing(conn, {row[1]: row[0] for row in rows})
                if stored:
                    rows = [row for row in rows if row[1] not in stored]
                # Numbered above every seq ever given out (no other writer can take one): the
                # first row explicitly, the rest follow as rowid max + 1 (no per-row rebuild).
                if rows:
                    top = int(conn.execute(_LAST_SEQ).fetchone()[0])
                    conn.execute(_INSERT_AT, (top + 1, *rows[0]))
                    conn.executemany(_INSERT, rows[1:])
                    seqs = (top + 1, top + len(rows))
            added = {row[1] for row in rows}

        inserted: list[str] = []
        duplicates: list[str] = []
        for eid in order:
            if eid in added:
                inserted.append(eid)
                added.discard(eid)  # a repeat later in the batch is a duplicate
            else:
                duplicates.append(eid)
        return AppendResult(inserted=inserted, duplicates=duplicates, seqs=seqs)

    def _exists(self, event_id: str) -> bool:
        sql = "SELECT 1 FROM events WHERE event_key = ? AND event_id = ?"
        return self._db.reader().execute(sql, (event_key(event_id), event_id)).fetchone() is not None

    @staticmethod
    def _existing(conn: sqlite3.Connection, keys: dict[str, int]) -> set[str]:
        """The ids among `keys` (event id -> its event_key) that are already stored."""
        found = conn.execute(_EXISTING, (json.dumps(list(keys.values())),))
        return {r[0] for r in found if r[0] in keys}

    def scan(
        self,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        user_id: str | None = None,
        types: Iterable[str] | None = None,
        exclude_flagged: bool = False,
    ) -> Iterator[Event]:
        # Arguments are checked now (not on first next()) so bad input fails at the call.
        where: list[str] = []
        params: list[object] = []
        if since is not None:
            where.append("ts >= ?")
            params.append(to_micros(since))
        if until is not None:
            where.append("ts < ?")
            params.append(to_micros(until))
        if user_id is not None:
            where.append("user_id = ?")
            params.append(user_id)
        wanted = types_filter(types)
        if wanted is not None:
            if not wanted:
                return iter(())
            where.append(f"type IN ({','.join('?' * len(wanted))})")
            params.extend(sorted(wanted))
        if exclude_flagged:
            where.append("user_id NOT IN (SELECT user_id FROM flagged_users)")
        sql = "SELECT payload FROM events"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY ts, seq"
        # Executed now, not on the first next(): the scan sees the log as it was at the call
        # (one WAL read snapshot for the whole scan), like the in-memory log's snapshot.
        return self._stream(self._db.reader().execute(sql, params))

    @staticmethod
    def _stream(cursor: sqlite3.Cursor) -> Iterator[Event]:
        # Streams from this thread's read connection; no writer lock is held while the
        # caller consumes events, so it may append while iterating.
        try:
            while True:
                chunk = cursor.fetchmany(_FETCH)
                if not chunk:
                    return
                for (payload,) in chunk:
                    yield _parse(payload)
        finally:
            cursor.close()

    def count(self, *, types: Iterable[str] | None = None) -> int:
        wanted = types_filter(types)
        conn = self._db.reader()
        if wanted is None:
            return int(conn.execute("SELECT count(*) FROM events").fetchone()[0])
        if not wanted:
            return 0
        marks = ",".join("?" * len(wanted))
        return int(
            conn.execute(f"SELECT count(*) FROM events WHERE type IN ({marks})", sorted(wanted)).fetchone()[0]
        )

    def tail(self, after_seq: int, *, limit: int = 10_000) -> list[tuple[int, Event]]:
        rows = self._db.reader().execute(
            "SELECT seq, payload FROM events WHERE seq > ? ORDER BY seq LIMIT ?", (after_seq, limit)
        )
        return [(int(seq), _parse(payload)) for seq, payload in rows.fetchall()]

    def last_seq(self) -> int:
        return int(self._db.reader().execute(_LAST_SEQ).fetchone()[0])

    def get_impression(self, request_id: str) -> ImpressionEvent | None:
        row = (
            self._db.reader()
            .execute(
                "SELECT payload FROM events WHERE request_id = ? AND type = 'impression'"
                " ORDER BY seq LIMIT 1",
                (request_id,),
            )
            .fetchone()
        )
        if row is None:
            return None
        event = _parse(row[0])
        assert isinstance(event, ImpressionEvent)
        return event

    def flag_users(self, user_ids: Iterable[str], reason: str) -> int:
        now = to_micros(utcnow())
        unique = list(dict.fromkeys(user_ids))
        with self._db.write() as conn:
            before = conn.total_changes
            conn.executemany(
                "INSERT OR IGNORE INTO flagged_users (user_id, reason, flagged_at) VALUES (?, ?, ?)",
                [(uid, reason, now) for uid in unique],
            )
            return conn.total_changes - before

    def flagged_users(self) -> dict[str, str]:
        rows = self._db.reader().execute("SELECT user_id, reason FROM flagged_users ORDER BY user_id")
        return dict(rows.fetchall())

    def unflag_users(self, user_ids: Iterable[str]) -> int:
        with self._db.write() as conn:
            before = conn.total_changes
            conn.executemany("DELETE FROM flagged_users WHERE user_id = ?", [(u,) for u in set(user_ids)])
            return conn.total_changes - before

    def delete_user(self, user_id: str) -> int:
        with self._db.write() as conn:
            # Keep the numbers of erased events taken, so a follower of the log never misses
            # an event that would otherwise reuse one (schema v4).
            conn.execute(f"UPDATE event_seq_high_water SET seq = ({_LAST_SEQ}) WHERE id = 1")
            removed = conn.execute("DELETE FROM events WHERE user_id = ?", (user_id,)).rowcount
            conn.execute("DELETE FROM flagged_users WHERE user_id = ?", (user_id,))
        return int(removed)

    @staticmethod
    def _before(cutoff: datetime, types: Iterable[str] | None) -> tuple[str, list[object]] | None:
        """WHERE clause shared by count_before and delete_before (None: matches nothing).

        Served by the `events_ts` index, or `events_type_ts` with a types filter (schema v1), so
        neither a count nor a chunk of a purge scans the table.
        """
        params: list[object] = [to_micros(cutoff)]  # refuses a naive cutoff before any work
        where = "ts < ?"
        wanted = types_filter(types)
        if wanted is not None:
            if not wanted:
                return None
            where += f" AND type IN ({','.join('?' * len(wanted))})"
            params.extend(sorted(wanted))
        return where, params

    def count_before(self, cutoff: datetime, *, types: Iterable[str] | None = None) -> int:
        clause = self._before(cutoff, types)
        if clause is None:
            return 0
        where, params = clause
        return int(
            self._db.reader().execute(f"SELECT count(*) FROM events WHERE {where}", params).fetchone()[0]
        )

    def delete_before(
        self,
        cutoff: datetime,
        *,
        types: Iterable[str] | None = None,
        progress: Callable[[int], None] | None = None,
        erased_users: set[str] | None = None,
    ) -> int:
        clause = self._before(cutoff, types)
        if clause is None:
            return 0
        where, params = clause
        # DELETE ... LIMIT needs a compile-time option; a LIMITed subquery of rowids does the
        # same everywhere. The index walk takes the oldest events first, so an interrupted
        # purge has erased the oldest data. RETURNING (SQLite >= 3.35) names the shoppers
        # whose events went, in the same statement.
        sql = (
            f"DELETE FROM events WHERE seq IN (SELECT seq FROM events WHERE {where} LIMIT ?)"
            " RETURNING user_id"
        )

        def erase_chunk(conn: sqlite3.Connection, limit: int) -> int:
            # As in delete_user: the erased events' seqs stay taken (schema v4), so a
            # follower of the log never misses a later event that would reuse one.
            conn.execute(f"UPDATE event_seq_high_water SET seq = ({_LAST_SEQ}) WHERE id = 1")
            users = [row[0] for row in conn.execute(sql, (*params, limit)).fetchall()]
            if erased_users is not None:
                erased_users.update(users)  # a rolled-back chunk only means one extra rebuild
            return len(users)

        return purge_in_chunks(
            self._db,
            erase_chunk,
            chunk_rows=self.purge_chunk_rows,
            pause_s=self.purge_pause_s,
            progress=progress,
        )

    def note_purged(self, user_ids: Iterable[str], at: datetime) -> int:
        noted_at = to_micros(at)  # refuses a naive time before any write
        oldest_kept = to_micros(at - PURGE_RECORD_HORIZON)
        rows = [(user_id, noted_at) for user_id in dict.fromkeys(user_ids)]
        with self._db.write() as conn:
            conn.execute("DELETE FROM purged_users WHERE noted_at < ?", (oldest_kept,))
            conn.executemany("INSERT INTO purged_users (user_id, noted_at) VALUES (?, ?)", rows)
            return int(conn.execute(_LAST_PURGE_SEQ).fetchone()[0])

    def purged_since(self, seq: int) -> tuple[int, set[str]]:
        conn = self._db.reader()
        # The newest seq first, then only the ids up to it: a purge noted between the two reads
        # is left for the next call instead of being reported under a seq that does not cover it.
        latest = int(conn.execute(_LAST_PURGE_SEQ).fetchone()[0])
        if latest <= seq:
            return latest, set()
        rows = conn.execute("SELECT user_id FROM purged_users WHERE seq > ? AND seq <= ?", (seq, latest))
        return latest, {row[0] for row in rows.fetchall()}

    def last_purge_seq(self) -> int:
        return int(self._db.reader().execute(_LAST_PURGE_SEQ).fetchone()[0])

    def __len__(self) -> int:
        return self.count()

    def close(self) -> None:
        self._db.close()
