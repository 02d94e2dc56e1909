"""Behaviour only the on-disk store has: crash safety, persistence, threads, schema version."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import textwrap
import threading
from datetime import timedelta

import pytest
from store_factories import impression, product, view

from shoploop.store import open_stores
from shoploop.store.sqlite import (
    SCHEMA_VERSION,
    SqliteArtifactStore,
    SqliteCatalogStore,
    SqliteDatabase,
    SqliteEventLog,
)
from shoploop.store.sqlite_db import _MIGRATIONS, _split_statements, event_key


def batch(t0, n: int, prefix: str = "e"):
    return [view(f"{prefix}{i}", f"u{i % 7}", t0 + timedelta(seconds=i)) for i in range(n)]


def test_failure_mid_batch_leaves_no_partial_batch(tmp_path, t0):
    db = SqliteDatabase(tmp_path / "s.sqlite")
    log = SqliteEventLog(db)
    log.append(batch(t0, 10, prefix="old"))
    # The 500th insert of the next batch raises inside SQLite, after 499 rows were written
    # to the open transaction.
    db.writer_connection.execute(
        "CREATE TEMP TRIGGER boom BEFORE INSERT ON events WHEN NEW.event_id = 'e499' "
        "BEGIN SELECT RAISE(ABORT, 'injected failure'); END"
    )
    events = batch(t0, 1000)
    with pytest.raises(sqlite3.IntegrityError, match="injected failure"):
        log.append(events)
    assert len(log) == 10
    assert {e.event_id for e in log.scan()} == {f"old{i}" for i in range(10)}
    db.writer_connection.execute("DROP TRIGGER boom")
    result = log.append(events)  # the client's retry succeeds completely
    assert len(result.inserted) == 1000 and result.duplicates == []
    assert len(log) == 1010
    db.close()


def test_process_killed_mid_batch_leaves_no_partial_batch(tmp_path, t0):
    path = tmp_path / "s.sqlite"
    # A child process appends 1000 events and dies abruptly (os._exit, no cleanup, no
    # rollback) while SQLite is inserting the 500th row.
    script = textwrap.dedent(
        f"""
        import os
        from datetime import datetime, timedelta, timezone
        from shoploop.domain import ViewEvent
        from shoploop.store.sqlite import SqliteDatabase, SqliteEventLog

        t0 = datetime(2026, 1, 1, tzinfo=timezone.utc)
        db = SqliteDatabase({str(path)!r})
        log = SqliteEventLog(db)
        log.append([ViewEvent(event_id="first", user_id="u", item_id="i", timestamp=t0)])
        conn = db.writer_connection
        conn.create_function("die", 0, lambda: os._exit(3))
        conn.execute("CREATE TEMP TRIGGER die BEFORE INSERT ON events WHEN NEW.event_id = 'e499' "
                     "BEGIN SELECT die(); END")
        log.append([ViewEvent(event_id=f"e{{i}}", user_id="u", item_id="i",
                              timestamp=t0 + timedelta(seconds=i)) for i in range(1000)])
        """
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 3, proc.stderr
    log = SqliteEventLog(path)
    assert [e.event_id for e in log.scan()] == ["first"]
    assert log.append(batch(t0, 1000)).duplicates == []
    assert len(log) == 1001
    log.close()


def test_data_survives_close_and_reopen(tmp_path, t0):
    model_files = tmp_path / "m"
    model_files.mkdir()
    (model_files / "w.json").write_text("[1]")
    stores = open_stores(tmp_path / "home")
    stores.catalog.upsert([product("a", price=3.0), product("b")])
    stores.catalog.delete(["b"])
    stores.events.append([*batch(t0, 5), impression("imp", "u1", t0, "req")])
    stores.events.flag_users(["u3"], "bot")
    stores.quarantine.add([(1, "bad price", {"price": -1})], source="f.csv", kind="catalog")
    stores.registry.register("ranker", model_files, metrics={"ndcg": 0.4})
    stores.registry.promote("ranker", 1, reason="first")
    stores.close()
    assert sorted(p.name for p in (tmp_path / "home").iterdir()) == ["artifacts", "shoploop.sqlite"]

    again = open_stores(tmp_path / "home")
    assert again.home == tmp_path / "home"
    assert [p.item_id for p in again.catalog.iter_products()] == ["a"]
    assert again.catalog.version == 3
    assert again.catalog.get("a").price == 3.0
    assert len(again.events) == 6
    assert again.events.get_impression("req").event_id == "imp"
    assert again.events.flagged_users() == {"u3": "bot"}
    assert again.events.append(batch(t0, 5)).inserted == []
    assert again.quarantine.counts_by_reason() == {"bad price": 1}
    active = again.registry.active("ranker")
    assert active.version == 1 and dict(active.metrics) == {"ndcg": 0.4}
    assert (active.path / "w.json").read_text() == "[1]"
    assert [d.action for d in again.registry.decisions()] == ["register", "promote"]
    again.close()


def test_concurrent_appends_from_threads(tmp_path, t0):
    log = SqliteEventLog(tmp_path / "s.sqlite")
    n_threads, n_batches, size = 4, 10, 50
    errors: list[BaseException] = []
    seen_counts: list[int] = []

    def writer(k: int) -> None:
        try:
            for b in range(n_batches):
                # every thread also re-sends a shared batch, so duplicates race too
                log.append(batch(t0, size, prefix=f"t{k}b{b}-"))
                log.append(batch(t0, 20, prefix="shared-"))
                seen_counts.append(sum(1 for _ in log.scan(user_id="u1")))
        except BaseException as err:  # pragma: no cover - reported below
            errors.append(err)

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(n_threads)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(log) == n_threads * n_batches * size + 20
    stored = [e.event_id for e in log.scan()]
    assert len(stored) == len(set(stored))
    log.close()


def test_shared_batch_duplicate_reports_add_up_across_threads(tmp_path, t0):
    log = SqliteEventLog(tmp_path / "s.sqlite")
    shared = batch(t0, 100)
    results = []
    lock = threading.Lock()

    def send() -> None:
        r = log.append(shared)
        with lock:
            results.append(r)

    threads = [threading.Thread(target=send) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(len(r.inserted) for r in results) == 100  # exactly one sender wins each id
    assert sum(len(r.duplicates) for r in results) == 500
    log.close()


def test_schema_version_and_wal(tmp_path):
    db = SqliteDatabase(tmp_path / "s.sqlite")
    assert db.schema_version == SCHEMA_VERSION >= 1
    mode = db.writer_connection.execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"
    assert db.writer_connection.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    db.close()
    db.close()
    with pytest.raises(sqlite3.ProgrammingError):
        db.reader()


def test_newer_schema_is_refused(tmp_path):
    path = tmp_path / "s.sqlite"
    SqliteDatabase(path).close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(RuntimeError, match="newer"):
        SqliteDatabase(path)


def test_a_version_1_home_is_upgraded_in_place_and_keeps_its_events(tmp_path, t0):
    path = tmp_path / "s.sqlite"
    conn = sqlite3.connect(path, isolation_level=None)
    for statement in _split_statements(_MIGRATIONS[0]):
        conn.execute(statement)
    conn.execute("PRAGMA user_version=1")
    conn.execute(
        "INSERT INTO events (event_id, type, user_id, ts, payload) VALUES ('e1', 'view', 'u1', 1, ?)",
        (view("e1", "u1", t0).model_dump_json(),),
    )
    conn.close()
    db = SqliteDatabase(path)  # a home written by schema v1, before the event-by-item index went
    assert db.schema_version == SCHEMA_VERSION == 5
    indexes = {r[0] for r in db.reader().execute("SELECT name FROM sqlite_master WHERE type = 'index'")}
    assert "events_item" not in indexes and {"events_user_ts", "events_key"} <= indexes
    assert not any(name.startswith("sqlite_autoindex_events") for name in indexes)  # UNIQUE(text) gone
    log = SqliteEventLog(db)
    assert [e.event_id for e in log.scan()] == ["e1"]
    # The migration filled in the hash key, so the old event is still recognised on re-send.
    result = log.append([view("e1", "u1", t0), view("e2", "u1", t0)])
    assert result.inserted == ["e2"] and result.duplicates == ["e1"]
    assert result.seqs == (2, 2) and log.last_seq() == 2  # v4 numbers on from the old rows
    db.close()


def test_a_version_4_home_gains_an_empty_purge_record_and_keeps_its_seqs(tmp_path, t0):
    path = tmp_path / "s.sqlite"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.create_function("shoploop_event_key", 1, event_key)
    for step in range(4):
        for statement in _split_statements(_MIGRATIONS[step]):
            conn.execute(statement)
    conn.execute("PRAGMA user_version=4")
    conn.execute(
        "INSERT INTO events (seq, event_key, event_id, type, user_id, ts, payload)"
        " VALUES (7, ?, 'e1', 'view', 'u1', 1, ?)",
        (event_key("e1"), view("e1", "u1", t0).model_dump_json()),
    )
    conn.execute("UPDATE event_seq_high_water SET seq = 9 WHERE id = 1")  # seqs 8 and 9 were erased
    conn.close()

    db = SqliteDatabase(path)  # a home written by schema v4, before the purge record
    assert db.schema_version == SCHEMA_VERSION == 5
    log = SqliteEventLog(db)
    assert [e.event_id for e in log.scan()] == ["e1"] and log.last_seq() == 9
    assert log.last_purge_seq() == 0 and log.purged_since(0) == (0, set())
    assert log.note_purged(["u1"], t0) == 1 and log.purged_since(0) == (1, {"u1"})
    assert log.append([view("e2", "u1", t0)]).seqs == (10, 10)  # the event log is untouched
    db.close()


def test_purge_record_is_seen_by_another_process_on_the_same_file(tmp_path, t0):
    path = tmp_path / "s.sqlite"
    server = SqliteEventLog(path)  # e.g. a running server's connections ...
    cli = SqliteEventLog(path)  # ... and `shoploop retention apply`'s own
    start = server.last_purge_seq()
    seq = cli.note_purged(["u1", "u2"], t0)
    assert server.purged_since(start) == (seq, {"u1", "u2"})
    assert server.purged_since(seq) == (seq, set())
    cli.close()
    server.close()
    reopened = SqliteEventLog(path)  # durable: the seq survives a restart
    assert reopened.last_purge_seq() == seq
    reopened.close()


def test_hash_key_collisions_neither_lose_events_nor_let_duplicates_in(tmp_path, t0, monkeypatch):
    import shoploop.store.sqlite_events as sqlite_events

    monkeypatch.setattr(sqlite_events, "event_key", lambda event_id: 7)  # every id collides
    log = SqliteEventLog(tmp_path / "s.sqlite")
    first = log.append([view("a", "u1", t0), view("b", "u1", t0)])
    assert first.inserted == ["a", "b"]
    second = log.append([view("b", "u1", t0), view("c", "u2", t0), view("c", "u2", t0)])
    assert second.inserted == ["c"] and second.duplicates == ["b", "c"]
    assert sorted(e.event_id for e in log.scan()) == ["a", "b", "c"]
    log.close()


def test_catalog_change_feed_rolls_back_with_the_upsert(tmp_path):
    db = SqliteDatabase(tmp_path / "s.sqlite")
    catalog = SqliteCatalogStore(db)
    catalog.upsert([product("a")])
    db.writer_connection.execute(
        "CREATE TEMP TRIGGER boom BEFORE INSERT ON catalog_changes WHEN NEW.item_id = 'c' "
        "BEGIN SELECT RAISE(ABORT, 'injected'); END"
    )
    with pytest.raises(sqlite3.IntegrityError):
        catalog.upsert([product("b"), product("c")])
    assert [p.item_id for p in catalog.iter_products()] == ["a"]
    assert catalog.version == 1
    db.close()


def test_stale_artifact_directory_from_a_crash_is_replaced(tmp_path):
    files = tmp_path / "m"
    files.mkdir()
    (files / "good.txt").write_text("new")
    root = tmp_path / "artifacts"
    stale = root / "ranker" / "1"
    stale.mkdir(parents=True)
    (stale / "half-written.bin").write_text("x")  # renamed into place, never recorded
    registry = SqliteArtifactStore(tmp_path / "s.sqlite", root)
    mv = registry.register("ranker", files)
    assert mv.version == 1
    assert sorted(p.name for p in mv.path.iterdir()) == ["good.txt"]
    registry.close()


def test_purge_runs_in_atomic_chunks_and_releases_the_writer_between_them(tmp_path, t0):
    path = tmp_path / "s.sqlite"
    db = SqliteDatabase(path)
    log = SqliteEventLog(db)
    log.purge_chunk_rows, log.purge_pause_s = 3, 0.0
    # e0..e9 are older than t0, oldest first, so chunks erase e0-e2, e3-e5, e6-e8, e9.
    log.append([view(f"e{i}", "u", t0 - timedelta(minutes=10 - i)) for i in range(10)])
    log.append([view("new", "u", t0)])
    # A separate connection stands for another process (a server ingesting): it can take the
    # write lock between chunks, because each chunk is its own short transaction.
    other = sqlite3.connect(path, isolation_level=None, timeout=0)
    between: list[int] = []

    def take_the_lock(n: int) -> None:
        other.execute("BEGIN IMMEDIATE")  # raises "database is locked" if a purge holds it
        other.execute("ROLLBACK")
        between.append(n)

    db.writer_connection.execute(
        "CREATE TEMP TRIGGER boom BEFORE DELETE ON events WHEN OLD.event_id = 'e7' "
        "BEGIN SELECT RAISE(ABORT, 'injected failure'); END"
    )
    with pytest.raises(sqlite3.IntegrityError, match="injected failure"):
        log.delete_before(t0, progress=take_the_lock)
    # Two chunks committed; the failing third rolled back whole, e6 included.
    assert between == [3, 3]
    assert [e.event_id for e in log.scan()] == ["e6", "e7", "e8", "e9", "new"]
    db.writer_connection.execute("DROP TRIGGER boom")
    assert log.delete_before(t0, progress=take_the_lock) == 4  # running it again finishes the job
    assert between == [3, 3, 3, 1]
    assert [e.event_id for e in log.scan()] == ["new"]
    assert log.append([view("later", "u", t0)]).seqs == (12, 12)  # no seq reused
    other.close()
    db.close()


def test_quarantine_purge_runs_in_chunks(tmp_path, t0):
    from shoploop.store.sqlite import SqliteQuarantine

    quarantine = SqliteQuarantine(tmp_path / "s.sqlite", clock=lambda: t0)
    quarantine.purge_chunk_rows, quarantine.purge_pause_s = 2, 0.0
    quarantine.add([(i, "r", {"n": i}) for i in range(5)], source="f.csv", kind="event")
    chunks: list[int] = []
    assert quarantine.remove_before(t0 + timedelta(seconds=1), progress=chunks.append) == 5
    assert chunks == [2, 2, 1]
    assert quarantine.list() == []
    quarantine.close()
