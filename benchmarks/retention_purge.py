"""Does a retention purge let a running server keep ingesting?

Question: when `shoploop retention apply` (or the server's retention job) erases old events
from the SQLite event log, how long does a server writing events into the same database at
the same time wait for each write? Compared side by side with the way a first implementation
would purge: one `DELETE FROM events WHERE ts < ?` statement.

Protocol
--------
1. Generate N synthetic events with a fixed seed (the ingest benchmark's generator: shopper
   sessions of impressions, views, clicks, carts and purchases) and append them to a fresh
   shop database (WAL, the product's settings) in 20k batches. Not timed. The cutoff is the
   timestamp of the event at `--purge-frac` of the log, so that share of the events goes.
2. Each arm starts from a byte copy of that database, so all arms erase the same rows:
   (0) **no purge** — the writer alone, for the reference latency of one write;
   (a) **chunked purge** — `SqliteEventLog.delete_before(cutoff)`, the product path: at most
       `PURGE_CHUNK_ROWS` rows per write transaction, a short pause between chunks;
   (b) **single DELETE** (baseline) — one statement in one transaction over a plain sqlite3
       connection with the same pragmas.
3. During each arm a separate **writer process** (as a server is a separate process from the
   CLI) appends a batch of `--writer-batch` new events every `--writer-every-ms` through
   `SqliteEventLog.append`, timing each append from call to return (waits for the write lock
   included; SQLite's busy timeout is 30 s). It starts before the purge and stops after it.
4. Reported per arm: purge wall time, rows erased, rows/s; the writer's appends during the
   purge and their latency p50 / p99 / max in ms; and a check that the log holds exactly the
   rows it should afterwards (the writer's events included).

Outputs JSON + a Markdown table to `benchmarks/results/<name>.{json,md}` (`--name`, default
`retention_purge`) and to `--out` if given.

Usage: python benchmarks/retention_purge.py --events 1000000 [--purge-frac 0.5] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import platform
import shutil
import sqlite3
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from ingest import generate_events  # noqa: E402  (the sibling benchmark's seeded generator)
from results_io import write_json, write_results  # noqa: E402

from shoploop.domain import ViewEvent  # noqa: E402
from shoploop.store.sqlite import SqliteDatabase, SqliteEventLog  # noqa: E402
from shoploop.store.sqlite_db import PURGE_CHUNK_ROWS, PURGE_PAUSE_S  # noqa: E402

LOAD_BATCH = 20_000


def build_database(path: Path, n_events: int, seed: int) -> list[datetime]:
    """A fresh event log with N events; returns their timestamps in log order."""
    log = SqliteEventLog(SqliteDatabase(path))
    events = generate_events(n_events, seed=seed)
    started = time.perf_counter()
    for i in range(0, len(events), LOAD_BATCH):
        log.append(events[i : i + LOAD_BATCH])
        done = min(i + LOAD_BATCH, len(events))
        rate = done / max(time.perf_counter() - started, 1e-9)
        eta = (len(events) - done) / max(rate, 1e-9)
        print(f"  loaded {done:,}/{len(events):,} events ({rate:,.0f}/s, ETA {eta:.0f}s)", flush=True)
    log.close()
    _checkpoint(path)
    return sorted(e.timestamp for e in events)


def _checkpoint(path: Path) -> None:
    """Fold the WAL into the main file so a byte copy of it is the whole database."""
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()


def writer(path: str, batch: int, every_s: float, stop_at: Any, ready: Any, out: Any) -> None:
    """Append `batch` new view events every `every_s` until told to stop; send back
    (start, latency) per append, on the system-wide monotonic clock the parent reads too."""
    log = SqliteEventLog(SqliteDatabase(Path(path)))
    samples: list[tuple[float, float]] = []
    n = 0
    ready.set()
    while not stop_at.is_set():
        now = datetime.now(UTC)
        events = [
            ViewEvent(event_id=f"w-{os.getpid()}-{n}-{k}", user_id="writer", item_id="sku-1", timestamp=now)
            for k in range(batch)
        ]
        start = time.monotonic()
        log.append(events)
        samples.append((start, time.monotonic() - start))
        n += 1
        time.sleep(max(0.0, every_s - (time.monotonic() - start)))
    log.close()
    out.put(samples)


def purge_single_delete(path: Path, cutoff: datetime) -> int:
    conn = sqlite3.connect(path, isolation_level=None, timeout=30.0)
    conn.execute("PRAGMA busy_timeout=30000")
    micros = int(cutoff.timestamp() * 1_000_000)
    conn.execute("BEGIN IMMEDIATE")
    removed = conn.execute("DELETE FROM events WHERE ts < ?", (micros,)).rowcount
    conn.execute("COMMIT")
    conn.close()
    return int(removed)


def purge_chunked(path: Path, cutoff: datetime, chunk_rows: int, pause_s: float) -> int:
    log = SqliteEventLog(SqliteDatabase(path))
    log.purge_chunk_rows, log.purge_pause_s = chunk_rows, pause_s
    done = 0

    def progress(n: int) -> None:
        nonlocal done
        done += n
        if done % (chunk_rows * 10) == 0:
            print(f"    erased {done:,}", flush=True)

    removed = log.delete_before(cutoff, progress=progress)
    log.close()
    return removed


def run_arm(name: str, db: Path, cutoff: datetime | None, args: argparse.Namespace) -> dict[str, Any]:
    # fork: the child finds this module as loaded (also when a test loads it by path); the
    # parent holds no open SQLite connection at this point, so none is inherited.
    ctx = mp.get_context("fork")
    stop, ready, out = ctx.Event(), ctx.Event(), ctx.Queue()
    proc = ctx.Process(
        target=writer, args=(str(db), args.writer_batch, args.writer_every_ms / 1000, stop, ready, out)
    )
    proc.start()
    ready.wait(60)
    time.sleep(0.5)  # the writer's steady state before the purge
    t_start = time.monotonic()
    if cutoff is None:
        time.sleep(args.idle_seconds)
        removed = 0
    elif name == "chunked":
        removed = purge_chunked(db, cutoff, args.chunk_rows, args.pause_s)
    else:
        removed = purge_single_delete(db, cutoff)
    t_end = time.monotonic()
    purge_s = t_end - t_start
    time.sleep(0.5)
    stop.set()
    samples = out.get(timeout=120)
    proc.join(60)
    # The appends that overlapped the purge: started before it ended, finished after it began.
    during = np.array([lat for start, lat in samples if start < t_end and start + lat > t_start])
    log = SqliteEventLog(SqliteDatabase(db))
    left = log.count()
    log.close()
    return {
        "arm": name,
        "purge_s": round(purge_s, 3),
        "rows_erased": removed,
        "rows_per_s": round(removed / purge_s) if removed else None,
        "writer_appends_total": len(samples),
        "writer_appends_during": len(during),
        "writer_rows_total": len(samples) * args.writer_batch,
        "latency_ms_p50": round(float(np.percentile(during, 50)) * 1000, 2) if len(during) else None,
        "latency_ms_p99": round(float(np.percentile(during, 99)) * 1000, 2) if len(during) else None,
        "latency_ms_max": round(float(during.max()) * 1000, 2) if len(during) else None,
        "rows_left": left,
    }


def markdown(result: dict[str, Any]) -> str:
    lines = [
        f"### Retention purge under a concurrent writer: {result['n_events']:,} events, "
        f"{result['purge_frac']:.0%} erased",
        "",
        f"Writer: a separate process appending {result['writer_batch']} events every "
        f"{result['writer_every_ms']} ms; latency of its appends while the purge ran.",
        "",
        "| arm | purge s | rows erased | rows/s | writer appends during | p50 ms | p99 ms | max ms"
        " | rows left ok |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for arm in result["arms"]:
        lines.append(
            f"| {arm['label']} | {arm['purge_s']:.2f} | {arm['rows_erased']:,} | "
            f"{arm['rows_per_s'] or '-'} | {arm['writer_appends_during']} | {arm['latency_ms_p50']} | "
            f"{arm['latency_ms_p99']} | {arm['latency_ms_max']} | {arm['rows_left_ok']} |"
        )
    lines += [
        "",
        f"Machine: {result['machine']}; load average start {result['load_start']}, end {result['load_end']}.",
    ]
    return "\n".join(lines) + "\n"


def label(name: str, chunk_rows: int, pause_s: float) -> str:
    if name == "chunked":
        return f"chunked purge (product: {chunk_rows:,} rows per transaction, {pause_s * 1000:g} ms pause)"
    return {"idle": "no purge (writer alone)", "single_delete": "single DELETE (baseline)"}[name]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--purge-frac", type=float, default=0.5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--chunk-rows", type=int, default=PURGE_CHUNK_ROWS, help="rows per purge transaction")
    parser.add_argument(
        "--pause-s", type=float, default=PURGE_PAUSE_S, help="pause between purge transactions"
    )
    parser.add_argument("--writer-batch", type=int, default=20)
    parser.add_argument("--writer-every-ms", type=float, default=20.0)
    parser.add_argument("--idle-seconds", type=float, default=3.0)
    parser.add_argument("--name", default="retention_purge")
    parser.add_argument("--results-dir", type=Path, default=ROOT / "benchmarks" / "results")
    parser.add_argument(
        "--workdir", type=Path, default=None, help="where the databases go (default: a temp dir)"
    )
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    if not 0 < args.purge_frac < 1:
        parser.error("--purge-frac must be between 0 and 1")
    load_start = round(os.getloadavg()[0], 2)
    if args.workdir is not None:
        args.workdir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="retention-", dir=args.workdir))
    try:
        base = work / "base.sqlite"
        print(f"building a log of {args.events:,} events", flush=True)
        stamps = build_database(base, args.events, args.seed)
        cutoff = stamps[int(len(stamps) * args.purge_frac)]
        expected_left = len(stamps) - sum(1 for t in stamps if t < cutoff)
        arms = []
        for name in ("idle", "chunked", "single_delete"):
            db = work / f"{name}.sqlite"
            shutil.copyfile(base, db)
            print(f"arm {name}", flush=True)
            row = run_arm(name, db, None if name == "idle" else cutoff, args)
            row["label"] = label(name, args.chunk_rows, args.pause_s)
            kept = len(stamps) if name == "idle" else expected_left
            row["rows_left_ok"] = row["rows_left"] == kept + row["writer_rows_total"]
            arms.append(row)
            for suffix in ("", "-wal", "-shm"):
                Path(f"{db}{suffix}").unlink(missing_ok=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result = {
        "benchmark": "retention_purge",
        "n_events": args.events,
        "purge_frac": args.purge_frac,
        "cutoff": cutoff.isoformat(),
        "writer_batch": args.writer_batch,
        "writer_every_ms": args.writer_every_ms,
        "chunk_rows": args.chunk_rows,
        "pause_s": args.pause_s,
        "arms": arms,
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}",
        "load_start": load_start,
        "load_end": round(os.getloadavg()[0], 2),
    }
    write_results(args.results_dir / f"{args.name}.json", result, markdown(result))
    if args.out is not None:  # an extra copy of the JSON alone
        write_json(args.out, result)
    print(markdown(result))
    return result


if __name__ == "__main__":
    main()
