"""How fast can a shop's event log absorb events, and is re-sending really free?

Question: events per second that land *durably* in the SQLite event log when imported in
batches through `SqliteEventLog.append` (the product path), compared side by side with the
naive way of writing events to SQLite (one INSERT + one COMMIT per event).

Protocol
--------
1. Generate N synthetic, validated events with a fixed seed: shopper sessions that mix
   impressions (a served list of 10-24 items with propensities), views, clicks that point
   back to an impression's request id, add-to-carts and purchases (roughly 30 / 36 / 20 /
   9 / 5 per cent). Generation is not timed.
2. (a) **batch import**: a fresh database with the product's defaults (WAL,
   `synchronous=NORMAL`), `append` in batches of B (default: the importer's default,
   `shoploop.data.ingest.DEFAULT_BATCH_SIZE` = 20,000). Timed end to end:
   serialising each event, the duplicate-id check, the insert into a table with five
   secondary indexes, and one COMMIT per batch.
   (a'') the same at a second batch size (default 5,000, the importer's default before
   schema v3), so the effect of batching is visible in the same run.
   (a') the same with `synchronous=FULL` (an fsync on every commit: survives power loss,
   not just a process crash), on min(N, 100,000) events.
3. (b) **naive baseline**: an equivalent table (same columns and secondary indexes, the
   idempotency key as a UNIQUE constraint on the text id as a first implementation would
   have it, same WAL + `synchronous=NORMAL` settings) written one event at a time:
   `json.dumps(event_to_dict(e))`, `INSERT`, `COMMIT`. Because it is slow, it runs on
   min(N, 20,000) events and the rate is reported for that count. Speed-ups are quoted against this row.
   (b') the same loop with Python's sqlite3 defaults (rollback journal, `synchronous=FULL`,
   i.e. an fsync per event: what a first implementation usually ships). It manages only tens
   of events/s on this machine, so it runs on min(N, 1,000) events.
4. (c) **idempotent re-import**: the batches of (a) sent again to the same log; reports the
   rate and checks that the log did not grow (every id reported as a duplicate).

"Durable" for WAL + NORMAL means: once `append` returns, the batch survives a crash of the
process (what a shop server worries about daily); a power loss may drop the last commits
but never corrupts the file. FULL is the power-loss-safe setting.

Both wall-clock and process-CPU time are recorded: the machine is shared with other jobs,
so wall-clock rates understate what the code does on an idle box; events per CPU-second
show the code's own cost (it ignores time spent waiting for the disk, so it is an upper
bound for the I/O-heavy rows).

Outputs JSON + a Markdown table to `benchmarks/results/<name>.{json,md}` (`--name`, default
`ingest`) and to `--out` if given.

Usage: python benchmarks/ingest.py --events 500000 [--batch-size 20000] [--compare-batch-size 5000]
       [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import sqlite3
import sys
import tempfile
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path

# a sibling program module: benchmarks run as scripts, with this directory on sys.path
from results_io import write_json, write_results

from shoploop.data.ingest import DEFAULT_BATCH_SIZE
from shoploop.domain import (
    AddToCartEvent,
    ClickEvent,
    Event,
    ImpressionEvent,
    PurchaseEvent,
    ShownItem,
    ViewEvent,
    event_item_id,
    event_request_id,
    event_to_dict,
)
from shoploop.store.memory import to_micros
from shoploop.store.sqlite import SqliteDatabase, SqliteEventLog

REPO = Path(__file__).resolve().parents[1]
NAIVE_CAP = 20_000
NAIVE_DEFAULT_CAP = 1_000
FULL_SYNC_CAP = 100_000
T0 = datetime(2026, 1, 1, tzinfo=UTC)


# ------------------------------------------------------------------------------ generation


def generate_events(n: int, *, seed: int = 0, n_items: int = 5_000) -> list[Event]:
    """N valid events as shopper sessions; deterministic for a given seed."""
    rng = random.Random(seed)
    n_users = max(10, n // 40)
    events: list[Event] = []
    clock = T0
    next_progress = 0
    while len(events) < n:
        user = f"user-{rng.randrange(n_users)}"
        session = f"s-{len(events)}"
        last_request: str | None = None
        last_items: list[str] = []
        for _ in range(rng.randint(3, 25)):
            if len(events) >= n:
                break
            clock += timedelta(milliseconds=rng.randint(50, 4_000))
            # uuid4-like hex ids, as real clients send: random keys cost more in the unique
            # index than sequential ones would, so the benchmark does not flatter itself.
            eid = f"{rng.getrandbits(128):032x}"
            roll = rng.random()
            common = {"event_id": eid, "user_id": user, "session_id": session, "timestamp": clock}
            if roll < 0.30 or not last_items:
                last_request = f"req-{len(events)}"
                k = rng.randint(10, 24)
                last_items = [f"sku-{rng.randrange(n_items)}" for _ in range(k)]
                events.append(
                    ImpressionEvent(
                        **common,
                        request_id=last_request,
                        surface=rng.choice(["search", "home", "similar"]),
                        query=rng.choice([None, "cordless drill", "led bulb", "garden hose"]),
                        items=tuple(
                            ShownItem(item_id=item, position=p, score=1.0 / p, propensity=0.9 / p)
                            for p, item in enumerate(dict.fromkeys(last_items), 1)
                        ),
                        policy="epsilon-greedy",
                    )
                )
            elif roll < 0.66:
                events.append(ViewEvent(**common, item_id=rng.choice(last_items)))
            elif roll < 0.86:
                pos = rng.randrange(len(last_items))
                events.append(
                    ClickEvent(**common, item_id=last_items[pos], request_id=last_request, position=pos + 1)
                )
            elif roll < 0.95:
                events.append(
                    AddToCartEvent(
                        **common,
                        item_id=rng.choice(last_items),
                        request_id=last_request,
                        quantity=rng.randint(1, 3),
                        price=round(rng.uniform(2, 300), 2),
                    )
                )
            else:
                lines = [
                    {
                        "item_id": rng.choice(last_items),
                        "quantity": rng.randint(1, 2),
                        "price": rng.uniform(2, 300),
                    }
                    for _ in range(rng.randint(1, 3))
                ]
                events.append(
                    PurchaseEvent(**common, order_id=f"o-{eid}", items=lines, request_id=last_request)
                )
        if len(events) >= next_progress:
            _progress("generate", len(events), n, None)
            next_progress += max(n // 5, 1)
    return events


# ------------------------------------------------------------------------------- measuring


def _progress(stage: str, done: int, total: int, started: float | None) -> None:
    if started is None:
        print(f"[{stage}] {done:,}/{total:,}", flush=True)
        return
    elapsed = time.perf_counter() - started
    rate = done / elapsed if elapsed > 0 else float("inf")
    eta = (total - done) / rate if rate > 0 else 0.0
    print(f"[{stage}] {done:,}/{total:,}  {rate:,.0f} ev/s  ETA {eta:,.1f}s", flush=True)


def _batches(events: Sequence[Event], size: int) -> list[Sequence[Event]]:
    return [events[i : i + size] for i in range(0, len(events), size)]


def run_batch_import(
    events: Sequence[Event], path: Path, batch_size: int, synchronous: str, stage: str, *, mark: int = 0
) -> dict:
    """Append in batches; also notes the elapsed time once `mark` events are stored, so the
    batch path can be compared with the naive one on a log of the same size."""
    db = SqliteDatabase(path, synchronous=synchronous)
    log = SqliteEventLog(db)
    batches = _batches(events, batch_size)
    every = max(len(batches) // 10, 1)
    started = time.perf_counter()
    cpu = time.process_time()
    inserted = 0
    at_mark: dict[str, float] = {}
    for i, batch in enumerate(batches, 1):
        inserted += len(log.append(batch).inserted)
        if mark and not at_mark and inserted >= mark:
            at_mark = {
                "events": inserted,
                "seconds": time.perf_counter() - started,
                "cpu_seconds": time.process_time() - cpu,
            }
        if i % every == 0:
            _progress(stage, i * batch_size if i < len(batches) else len(events), len(events), started)
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu
    stored = len(log)
    db.close()
    return {
        "events": len(events),
        "inserted": inserted,
        "stored": stored,
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,
        "at_mark": at_mark,
    }


def run_reimport(events: Sequence[Event], path: Path, batch_size: int) -> dict:
    db = SqliteDatabase(path)
    log = SqliteEventLog(db)
    before = len(log)
    batches = _batches(events, batch_size)
    every = max(len(batches) // 10, 1)
    started = time.perf_counter()
    cpu = time.process_time()
    inserted = duplicates = 0
    for i, batch in enumerate(batches, 1):
        result = log.append(batch)
        inserted += len(result.inserted)
        duplicates += len(result.duplicates)
        if i % every == 0:
            _progress("re-import", min(i * batch_size, len(events)), len(events), started)
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu
    added = len(log) - before
    db.close()
    return {"events": len(events), "inserted": inserted, "duplicates": duplicates, "rows_added": added,
            "seconds": seconds, "cpu_seconds": cpu_seconds}  # fmt: skip


_NAIVE_SCHEMA = """
CREATE TABLE events (seq INTEGER PRIMARY KEY, event_id TEXT NOT NULL UNIQUE, type TEXT NOT NULL,
    user_id TEXT NOT NULL, session_id TEXT, ts INTEGER NOT NULL, item_id TEXT, request_id TEXT,
    payload TEXT NOT NULL);
CREATE INDEX events_ts ON events (ts);
CREATE INDEX events_user_ts ON events (user_id, ts);
CREATE INDEX events_type_ts ON events (type, ts);
CREATE INDEX events_request ON events (request_id) WHERE request_id IS NOT NULL;
"""


def run_naive(events: Sequence[Event], path: Path, *, wal: bool, stage: str) -> dict:
    """Row-at-a-time INSERT + COMMIT per event (what a first implementation usually does)."""
    conn = sqlite3.connect(path)  # Python defaults: implicit transactions, journal DELETE, sync FULL
    if wal:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
    conn.executescript(_NAIVE_SCHEMA)
    every = max(len(events) // 10, 1)
    started = time.perf_counter()
    cpu = time.process_time()
    for i, event in enumerate(events, 1):
        conn.execute(
            "INSERT OR IGNORE INTO events"
            " (event_id, type, user_id, session_id, ts, item_id, request_id, payload)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                event.event_id,
                event.type,
                event.user_id,
                event.session_id,
                to_micros(event.timestamp),
                event_item_id(event),
                event_request_id(event),
                json.dumps(event_to_dict(event)),
            ),
        )
        conn.commit()
        if i % every == 0:
            _progress(stage, i, len(events), started)
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu
    stored = conn.execute("SELECT count(*) FROM events").fetchone()[0]
    conn.close()
    return {"events": len(events), "stored": stored, "seconds": seconds, "cpu_seconds": cpu_seconds}


# ------------------------------------------------------------------------------------ main


def _rate(events: int, seconds: float) -> float:
    return events / seconds if seconds > 0 else float("inf")


def _markdown(result: dict) -> str:
    lines = [
        f"### Event ingest into SQLite ({result['n_events']:,} events, batch size {result['batch_size']:,})",
        "",
        "| method | events timed | wall s | events/s (wall) | vs naive (wall) | events/CPU-s |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    naive = result["methods"]["naive_row_commit_wal"]["events_per_s"]
    for row in result["methods"].values():
        lines.append(
            f"| {row['label']} | {row['events']:,} | {row['seconds']:.2f} | {row['events_per_s']:,.0f} "
            f"| {row['events_per_s'] / naive:,.1f}x | {row['events_per_cpu_s']:,.0f} |"
        )
    reimport = result["methods"]["reimport"]
    lines += [
        "",
        f"Re-import added {reimport['rows_added']} rows and reported {reimport['duplicates']:,} duplicates.",
        f"Machine: {result['machine']['cpus']} CPUs, Python {result['machine']['python']}, "
        f"SQLite {result['machine']['sqlite']}, load average at start {result['machine']['loadavg_start']}. "
        "Target: >= 50,000 events/s (wall) for batch import: "
        f"{'met' if result['target_met'] else 'NOT met'}.",
        "",
    ]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE, help="the importer's default")
    parser.add_argument(
        "--compare-batch-size",
        type=int,
        default=5_000,
        help="also time batch import at this size (0: skip), to show what batching buys",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="extra copy of the JSON result")
    parser.add_argument("--results-dir", type=Path, default=REPO / "benchmarks" / "results")
    parser.add_argument("--name", default="ingest", help="result file stem in --results-dir")
    parser.add_argument(
        "--workdir", type=Path, default=REPO / "var" / "bench", help="where the test databases go"
    )
    parser.add_argument("--skip-full-sync", action="store_true", help="leave out the synchronous=FULL run")
    args = parser.parse_args(argv)
    if args.events <= 0 or args.batch_size <= 0:
        parser.error("--events and --batch-size must be positive")

    load_start = round(os.getloadavg()[0], 2)
    events = generate_events(args.events, seed=args.seed)
    n_naive = min(args.events, NAIVE_CAP)
    n_full = min(args.events, FULL_SYNC_CAP)
    args.workdir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="ingest-", dir=args.workdir))
    methods: dict[str, dict] = {}
    try:
        batch = run_batch_import(
            events, work / "batch.sqlite", args.batch_size, "NORMAL", "batch import", mark=n_naive
        )
        at_mark = batch.pop("at_mark")
        methods["batch_wal_normal"] = {
            **batch,
            "label": "batch append (WAL, synchronous=NORMAL; product default)",
        }
        if at_mark and at_mark["events"] < len(events):
            methods["batch_wal_normal_first"] = {
                **at_mark,
                "label": f"... same run, first {at_mark['events']:,} events (naive run: {n_naive:,})",
            }
        if args.compare_batch_size and args.compare_batch_size != args.batch_size:
            other = run_batch_import(
                events, work / "other.sqlite", args.compare_batch_size, "NORMAL", "batch import (compare)"
            )
            other.pop("at_mark")
            methods["batch_wal_normal_other_size"] = {
                **other,
                "label": f"batch append, {args.compare_batch_size:,} events per batch (WAL, NORMAL)",
            }
            for leftover in work.glob("other.sqlite*"):  # free the disk before the next runs
                leftover.unlink()
        reimport = run_reimport(events, work / "batch.sqlite", args.batch_size)
        methods["reimport"] = {**reimport, "label": "idempotent re-import of the same batches"}
        if not args.skip_full_sync:
            full = run_batch_import(
                events[:n_full], work / "full.sqlite", args.batch_size, "FULL", "batch FULL"
            )
            full.pop("at_mark")
            methods["batch_wal_full"] = {**full, "label": "batch append (WAL, synchronous=FULL)"}
        naive_wal = run_naive(events[:n_naive], work / "naive_wal.sqlite", wal=True, stage="naive WAL")
        methods["naive_row_commit_wal"] = {
            **naive_wal,
            "label": "naive baseline: INSERT + COMMIT per event (WAL, synchronous=NORMAL)",
        }
        n_default = min(args.events, NAIVE_DEFAULT_CAP)
        naive = run_naive(events[:n_default], work / "naive.sqlite", wal=False, stage="naive default")
        methods["naive_row_commit_default"] = {
            **naive,
            "label": "naive, sqlite3 defaults: INSERT + COMMIT per event (journal DELETE, sync FULL)",
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)
    for row in methods.values():
        row["events_per_s"] = _rate(row["events"], row["seconds"])
        row["events_per_cpu_s"] = _rate(row["events"], row["cpu_seconds"])

    batch_rate = methods["batch_wal_normal"]["events_per_s"]
    result = {
        "benchmark": "ingest",
        "n_events": args.events,
        "batch_size": args.batch_size,
        "seed": args.seed,
        "naive_events": n_naive,
        "full_sync_events": n_full,
        "methods": methods,
        "batch_vs_naive_speedup": batch_rate / methods["naive_row_commit_wal"]["events_per_s"],
        "target_events_per_s": 50_000,
        "target_met": batch_rate >= 50_000,
        "reimport_added_rows": methods["reimport"]["rows_added"],
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "sqlite": sqlite3.sqlite_version,
            "platform": platform.platform(),
            "loadavg_start": load_start,
        },
        "timestamp": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    markdown = _markdown(result)
    write_results(args.results_dir / f"{args.name}.json", result, markdown)
    if args.out is not None:  # an extra copy of the JSON alone
        write_json(args.out, result)
    print(markdown)
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
