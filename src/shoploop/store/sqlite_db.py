"""One SQLite database file shared by the catalog, event log, quarantine and registry.

Durability and concurrency choices (all deliberate, see docs in each method):

* WAL journal + `synchronous=NORMAL`: a committed transaction survives a process crash;
  after a power loss the last few commits may roll back, but the file is never corrupt.
  This is SQLite's recommended setting for WAL and roughly 10x cheaper per commit than FULL.
* One transaction per batch (`BEGIN IMMEDIATE` ... `COMMIT`): a batch lands completely or not
  at all, and IMMEDIATE takes the write lock up front so two writers never deadlock.
* Threads: ONE writer connection shared by every thread, serialised by a re-entrant lock
  (SQLite allows one writer at a time anyway, so a pool of writers would only queue on the
  file lock). Reads use one connection PER THREAD (thread-local, created lazily): under WAL
  they run concurrently with the writer and with each other, and a streaming `scan()` never
  holds the writer lock while the caller consumes it. All connections are opened with
  `check_same_thread=False` so `close()` may run on any thread.
* Schema versioning: `PRAGMA user_version` holds the schema version; `_MIGRATIONS[i]`
  upgrades version i to i+1 inside one transaction.
"""

from __future__ import annotations

import contextlib
import hashlib
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

_SCHEMA_V1 = """
CREATE TABLE products (
    item_id TEXT PRIMARY KEY,
    payload TEXT NOT NULL                -- Product.model_dump_json()
) WITHOUT ROWID;

CREATE TABLE catalog_changes (
    version INTEGER PRIMARY KEY AUTOINCREMENT,  -- AUTOINCREMENT: versions are never reused
    item_id TEXT NOT NULL,
    op TEXT NOT NULL CHECK (op IN ('upsert', 'delete'))
);

-- seq (the rowid) is the insertion order, used to break timestamp ties; event_id is the
-- idempotency key. Secondary indexes carry the rowid, so (ts) is effectively (ts, seq)
-- and `ORDER BY ts, seq` is read straight off the index without sorting.
CREATE TABLE events (
    seq INTEGER PRIMARY KEY,
    event_id TEXT NOT NULL UNIQUE,
    type TEXT NOT NULL,
    user_id TEXT NOT NULL,
    session_id TEXT,
    ts INTEGER NOT NULL,                 -- microseconds since the epoch, UTC
    item_id TEXT,
    request_id TEXT,
    payload TEXT NOT NULL                -- the full event as JSON, None-valued fields left out
);
CREATE INDEX events_ts ON events (ts);
CREATE INDEX events_user_ts ON events (user_id, ts);
CREATE INDEX events_type_ts ON events (type, ts);
CREATE INDEX events_item ON events (item_id) WHERE item_id IS NOT NULL;  -- dropped in v2
CREATE INDEX events_request ON events (request_id) WHERE request_id IS NOT NULL;

CREATE TABLE flagged_users (
    user_id TEXT PRIMARY KEY,
    reason TEXT NOT NULL,
    flagged_at INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE quarantine (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    source TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('catalog', 'event')),
    row_number INTEGER,
    reason TEXT NOT NULL,
    raw TEXT NOT NULL,                   -- the rejected row as JSON
    quarantined_at INTEGER NOT NULL
);
CREATE INDEX quarantine_source ON quarantine (source);

CREATE TABLE models (
    id INTEGER PRIMARY KEY AUTOINCREMENT,  -- registration order
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('candidate', 'active', 'retired', 'rejected')),
    status_seq INTEGER NOT NULL,         -- bumped on every status change (rollback order)
    metrics TEXT NOT NULL,
    config TEXT NOT NULL,
    path TEXT NOT NULL,
    UNIQUE (name, version)
);
-- The database itself guarantees at most one active version per model name.
CREATE UNIQUE INDEX models_one_active ON models (name) WHERE status = 'active';

CREATE TABLE decisions (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    action TEXT NOT NULL,
    reason TEXT NOT NULL,
    metrics TEXT NOT NULL,
    at INTEGER NOT NULL
);
CREATE INDEX decisions_name ON decisions (name, id);
"""

# v2: no query reads events by item id (per-item state is built by scans), and keeping the
# index cost ~10% of batch-insert throughput on 500k events (benchmarks/ingest.py).
_SCHEMA_V2 = "DROP INDEX IF EXISTS events_item;"

# v3: the idempotency check looks events up by a 64-bit hash of event_id (`event_key`, in a
# plain index) instead of a UNIQUE index on the text id. Client ids are random (uuid4), so
# every batch dirties leaf pages all over that index and each commit rewrites them whole into
# the WAL; 8-byte keys make the index ~4x smaller, and on 500k events batch inserts went from
# ~63k to ~86k rows/s (benchmarks/ingest.py). Uniqueness is now enforced by the one write
# path (`SqliteEventLog.append` checks key + id inside its write transaction), which also
# keeps a hash collision between two different ids from losing an event. SQLite cannot drop
# a UNIQUE constraint, hence the table rebuild.
_SCHEMA_V3 = """
CREATE TABLE events_v3 (
    seq INTEGER PRIMARY KEY,
    event_key INTEGER NOT NULL,          -- event_key(event_id): signed 64-bit BLAKE2b prefix
    event_id TEXT NOT NULL,
    type TEXT NOT NULL,
    user_id TEXT NOT NULL,
    session_id TEXT,
    ts INTEGER NOT NULL,
    item_id TEXT,
    request_id TEXT,
    payload TEXT NOT NULL
);
INSERT INTO events_v3 (seq, event_key, event_id, type, user_id, session_id, ts, item_id, request_id, payload)
    SELECT seq, shoploop_event_key(event_id), event_id, type, user_id, session_id, ts, item_id,
           request_id, payload
    FROM events;
DROP TABLE events;
ALTER TABLE events_v3 RENAME TO events;
CREATE INDEX events_key ON events (event_key);
CREATE INDEX events_ts ON events (ts);
CREATE INDEX events_user_ts ON events (user_id, ts);
CREATE INDEX events_type_ts ON events (type, ts);
CREATE INDEX events_request ON events (request_id) WHERE request_id IS NOT NULL;
"""

# v4: event seqs are never reused. `seq` is the rowid, and SQLite would hand the numbers of
# erased newest events (a privacy deletion) to the next ones, so a reader following the log by
# seq (`EventLog.tail`) could skip them. Appends number rows explicitly from above this
# high-water mark, which erasure raises first (AUTOINCREMENT would do the same per row, at a
# cost on the ingest path, and needs a table rebuild).
_SCHEMA_V4 = """
CREATE TABLE event_seq_high_water (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    seq INTEGER NOT NULL
);
INSERT INTO event_seq_high_water (id, seq) SELECT 1, COALESCE(MAX(seq), 0) FROM events;
"""

# v5: the purge record (`EventLog.note_purged` / `purged_since`): the stored ids of shoppers
# who lost events in a retention purge, so every server on the home rebuilds what it holds
# about them at its next store sync, whichever process ran the purge. AUTOINCREMENT keeps seqs
# from being reused after old rows are pruned (`PURGE_RECORD_HORIZON`), so a follower never
# misses a later entry; the record is written once per purge chunk, so its cost does not matter.
_SCHEMA_V5 = """
CREATE TABLE purged_users (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id TEXT NOT NULL,               -- the stored (possibly pseudonymised) id
    noted_at INTEGER NOT NULL            -- microseconds since the epoch, UTC; pruned by age
);
CREATE INDEX purged_users_noted_at ON purged_users (noted_at);
"""

# _MIGRATIONS[i] takes the schema from user_version i to i + 1.
_MIGRATIONS: tuple[str, ...] = (_SCHEMA_V1, _SCHEMA_V2, _SCHEMA_V3, _SCHEMA_V4, _SCHEMA_V5)


def event_key(event_id: str) -> int:
    """Stable signed 64-bit key of an event id (not Python's hash(), which is salted per run)."""
    digest = hashlib.blake2b(event_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


SCHEMA_VERSION = len(_MIGRATIONS)

# Retention purges (`SqliteEventLog.delete_before`, `SqliteQuarantine.remove_before`) erase at
# most this many rows per write transaction. There is one writer lock, shared with the server's
# ingest: a chunk of 20k events holds it for ~0.4 s on the 2-core box. The pause between chunks
# must outlast the 100 ms that SQLite's busy handler sleeps between polls once a writer in
# another process has waited ~0.3 s, or that writer can miss gap after gap. Measured with
# benchmarks/retention_purge.py (2M events, 1M erased): 5k-row chunks with a 50 ms pause let
# one append wait 1.05 s and the median 55 ms; 20k rows with 110 ms, 0.61 s and 0.85 ms.
PURGE_CHUNK_ROWS = 20_000
PURGE_PAUSE_S = 0.11


def purge_in_chunks(
    db: SqliteDatabase,
    erase_chunk: Callable[[sqlite3.Connection, int], int],
    *,
    chunk_rows: int = PURGE_CHUNK_ROWS,
    pause_s: float = PURGE_PAUSE_S,
    progress: Callable[[int], None] | None = None,
) -> int:
    """Run `erase_chunk(conn, limit)` (erases at most `limit` rows, returns how many) in one
    write transaction each, pausing between them, until a chunk comes back short; returns the
    total. An interrupted purge leaves whole chunks done, and running it again finishes it."""
    chunk = max(1, int(chunk_rows))
    total = 0
    while True:
        with db.write() as conn:
            removed = erase_chunk(conn, chunk)
        total += removed
        if removed and progress is not None:
            progress(removed)
        if removed < chunk:
            return total
        if pause_s > 0:
            time.sleep(pause_s)


class SqliteDatabase:
    """Owns the connections to one database file; shared by the four SQLite stores."""

    def __init__(
        self, path: Path, *, synchronous: str = "NORMAL", cache_mb: int = 64, reader_cache_mb: int = 8
    ) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if synchronous.upper() not in {"OFF", "NORMAL", "FULL", "EXTRA"}:
            raise ValueError(f"synchronous must be OFF/NORMAL/FULL/EXTRA, got {synchronous!r}")
        self._synchronous = synchronous.upper()
        self._cache_kib = cache_mb * 1024
        # Readers are one per thread, and a server has dozens of threads: a big private page
        # cache each would add up to gigabytes, while their lookups are served well enough
        # by the OS page cache. The single writer keeps the large cache (index pages).
        self._reader_cache_kib = reader_cache_mb * 1024
        self._lock = threading.RLock()
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._closed = False
        self._writer = self._connect()
        # 8 KiB pages: ~17% less CPU per inserted event than the 4 KiB default in
        # benchmarks/ingest.py (fewer B-tree splits for ~700-byte event rows). Only takes
        # effect on a new, empty file, so it must precede the switch to WAL.
        self._writer.execute("PRAGMA page_size=8192")
        self._writer.execute("PRAGMA journal_mode=WAL")
        self._migrate()

    def _connect(self) -> sqlite3.Connection:
        # isolation_level=None: no implicit transactions; `write()` issues BEGIN/COMMIT itself.
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=30.0)
        conn.execute(f"PRAGMA synchronous={self._synchronous}")
        conn.execute(f"PRAGMA cache_size=-{self._cache_kib}")
        conn.execute("PRAGMA temp_store=MEMORY")
        conn.execute("PRAGMA busy_timeout=30000")
        # Checkpoint every ~80 MB of WAL instead of SQLite's default ~8 MB: random-key
        # indexes (event_id, user_id) dirty pages all over the file, and each checkpoint
        # copies them back; on 500k events this cut batch-import wall time by ~40%
        # (benchmarks/ingest.py). The WAL is truncated back to 64 MB after a checkpoint.
        conn.execute("PRAGMA wal_autocheckpoint=10000")
        conn.execute(f"PRAGMA journal_size_limit={64 * 1024 * 1024}")
        conn.create_function("shoploop_event_key", 1, event_key, deterministic=True)  # migration v3
        return conn

    def _migrate(self) -> None:
        with self.write() as conn:
            current = conn.execute("PRAGMA user_version").fetchone()[0]
            if current > SCHEMA_VERSION:
                raise RuntimeError(
                    f"{self.path} has schema version {current}, newer than this shoploop ({SCHEMA_VERSION})"
                )
            for step in range(current, SCHEMA_VERSION):
                for statement in _split_statements(_MIGRATIONS[step]):
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version={step + 1}")

    @property
    def schema_version(self) -> int:
        return int(self.reader().execute("PRAGMA user_version").fetchone()[0])

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: commits on success, rolls back on any exception."""
        with self._lock:
            self._check_open()
            conn = self._writer
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def reader(self) -> sqlite3.Connection:
        """This thread's read connection (WAL lets it read while another thread writes)."""
        self._check_open()
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            conn.execute(f"PRAGMA cache_size=-{self._reader_cache_kib}")
            conn.execute("PRAGMA query_only=ON")
            self._local.conn = conn
            with self._lock:
                self._readers.append(conn)
        return conn

    def _check_open(self) -> None:
        if self._closed:
            raise sqlite3.ProgrammingError(f"database {self.path} is closed")

    def close(self) -> None:
        """Close every connection; safe to call more than once."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            for conn in self._readers:
                conn.close()
            self._readers.clear()
            # Fold the WAL back into the main file so a closed home is a single file.
            # (Another process may hold a read lock; then the WAL simply stays.)
            with contextlib.suppress(sqlite3.Error):
                self._writer.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._writer.close()

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def writer_connection(self) -> sqlite3.Connection:
        """The shared writer (tests use it to inject failures); do not write outside `write()`."""
        return self._writer


def _split_statements(script: str) -> list[str]:
    # executescript() would COMMIT our transaction; run statement by statement instead.
    # The schema has no semicolons inside literals or triggers, so a plain split is safe.
    cleaned = "\n".join(line.split("--", 1)[0] for line in script.splitlines())
    return [s.strip() for s in cleaned.split(";") if s.strip()]


def open_database(target: SqliteDatabase | Path | str) -> SqliteDatabase:
    """Accept either a shared database object or a file path (opens a private one)."""
    return target if isinstance(target, SqliteDatabase) else SqliteDatabase(Path(target))
