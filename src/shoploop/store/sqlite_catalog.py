"""SQLite catalog (with its change feed) and quarantine."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from shoploop.domain import Product
from shoploop.store.memory import from_micros, json_safe, to_micros, utcnow
from shoploop.store.protocols import CatalogChange, QuarantinedRow
from shoploop.store.sqlite_db import (
    PURGE_CHUNK_ROWS,
    PURGE_PAUSE_S,
    SqliteDatabase,
    open_database,
    purge_in_chunks,
)

_FETCH = 1000
# One chunk of a retention purge (a LIMITed subquery: DELETE ... LIMIT needs a compile option).
_OLD_QUARANTINE = "SELECT id FROM quarantine WHERE quarantined_at < ? LIMIT ?"
_PURGE_QUARANTINE = f"DELETE FROM quarantine WHERE id IN ({_OLD_QUARANTINE})"


class SqliteCatalogStore:
    """Products as JSON rows keyed by item_id; every change also goes to `catalog_changes`.

    The change row is written in the same transaction as the product row, so the feed
    can never miss (or invent) a change, and `changes_since(v)` lets indexes catch up.
    """

    def __init__(self, db: SqliteDatabase | Path | str) -> None:
        self._db = open_database(db)

    def upsert(self, products: Iterable[Product]) -> int:
        rows = []
        for product in products:
            if not isinstance(product, Product):
                raise TypeError(f"expected Product, got {type(product).__name__}")
            rows.append((product.item_id, product.model_dump_json()))
        with self._db.write() as conn:
            if rows:
                conn.executemany(
                    "INSERT INTO products (item_id, payload) VALUES (?, ?) "
                    "ON CONFLICT (item_id) DO UPDATE SET payload = excluded.payload",
                    rows,
                )
                conn.executemany(
                    "INSERT INTO catalog_changes (item_id, op) VALUES (?, 'upsert')", [(r[0],) for r in rows]
                )
            return _version(conn)

    def delete(self, item_ids: Iterable[str]) -> int:
        ids = list(item_ids)
        with self._db.write() as conn:
            for item_id in ids:
                if conn.execute("DELETE FROM products WHERE item_id = ?", (item_id,)).rowcount:
                    conn.execute("INSERT INTO catalog_changes (item_id, op) VALUES (?, 'delete')", (item_id,))
            return _version(conn)

    def get(self, item_id: str) -> Product | None:
        row = (
            self._db.reader().execute("SELECT payload FROM products WHERE item_id = ?", (item_id,)).fetchone()
        )
        return None if row is None else Product.model_validate_json(row[0])

    def get_many(self, item_ids: Sequence[str]) -> dict[str, Product]:
        if not item_ids:
            return {}
        rows = self._db.reader().execute(
            "SELECT item_id, payload FROM products WHERE item_id IN (SELECT value FROM json_each(?))",
            (json.dumps(list(item_ids)),),
        )
        return {item_id: Product.model_validate_json(payload) for item_id, payload in rows}

    def iter_products(self) -> Iterator[Product]:
        cursor = self._db.reader().execute("SELECT payload FROM products ORDER BY item_id")
        try:
            while chunk := cursor.fetchmany(_FETCH):
                for (payload,) in chunk:
                    yield Product.model_validate_json(payload)
        finally:
            cursor.close()

    def changes_since(self, version: int) -> list[CatalogChange]:
        rows = self._db.reader().execute(
            "SELECT version, item_id, op FROM catalog_changes WHERE version > ? ORDER BY version", (version,)
        )
        return [CatalogChange(v, item_id, op) for v, item_id, op in rows]

    @property
    def version(self) -> int:
        return _version(self._db.reader())

    def __len__(self) -> int:
        return int(self._db.reader().execute("SELECT count(*) FROM products").fetchone()[0])

    def __contains__(self, item_id: object) -> bool:
        if not isinstance(item_id, str):
            return False
        row = self._db.reader().execute("SELECT 1 FROM products WHERE item_id = ?", (item_id,)).fetchone()
        return row is not None

    def close(self) -> None:
        self._db.close()


def _version(conn) -> int:
    return int(conn.execute("SELECT coalesce(max(version), 0) FROM catalog_changes").fetchone()[0])


class SqliteQuarantine:
    """Rejected rows kept verbatim (as JSON) with the reason, until re-imported."""

    def __init__(self, db: SqliteDatabase | Path | str, *, clock: Callable[[], datetime] = utcnow) -> None:
        self._db = open_database(db)
        self._clock = clock
        self.purge_chunk_rows = PURGE_CHUNK_ROWS
        self.purge_pause_s = PURGE_PAUSE_S

    def add(
        self,
        rows: Iterable[tuple[int | None, str, Mapping[str, Any]]],
        *,
        source: str,
        kind: Literal["catalog", "event"],
    ) -> int:
        if kind not in ("catalog", "event"):
            raise ValueError(f"kind must be 'catalog' or 'event', got {kind!r}")
        now = to_micros(self._clock())
        prepared = [
            (source, kind, row_number, str(reason), json.dumps(json_safe(raw)), now)
            for row_number, reason, raw in rows
        ]
        with self._db.write() as conn:
            conn.executemany(
                "INSERT INTO quarantine (source, kind, row_number, reason, raw, quarantined_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                prepared,
            )
        return len(prepared)

    def list(
        self,
        *,
        kind: Literal["catalog", "event"] | None = None,
        source: str | None = None,
        reason_contains: str | None = None,
        limit: int | None = None,
    ) -> list[QuarantinedRow]:
        where, params = [], []
        if kind is not None:
            where.append("kind = ?")
            params.append(kind)
        if source is not None:
            where.append("source = ?")
            params.append(source)
        sql = "SELECT id, source, kind, row_number, reason, raw, quarantined_at FROM quarantine"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id"
        # The substring filter runs in Python: SQLite's lower() folds ASCII only, and the
        # two implementations must agree on every reason text.
        needle = reason_contains.lower() if reason_contains is not None else None
        if needle is None and limit is not None:
            sql += " LIMIT ?"
            params.append(max(limit, 0))
        out: list[QuarantinedRow] = []
        if limit is not None and limit <= 0:
            return out
        for rid, src, knd, row_number, reason, raw, at in self._db.reader().execute(sql, params):
            if needle is not None and needle not in reason.lower():
                continue
            out.append(
                QuarantinedRow(
                    id=rid,
                    source=src,
                    kind=knd,
                    row_number=row_number,
                    reason=reason,
                    raw=json.loads(raw),
                    quarantined_at=from_micros(at),
                )
            )
            if limit is not None and len(out) >= limit:
                break
        return out

    def remove(self, ids: Iterable[int]) -> int:
        unique = [(int(i),) for i in set(ids)]
        with self._db.write() as conn:
            before = conn.total_changes
            conn.executemany("DELETE FROM quarantine WHERE id = ?", unique)
            return conn.total_changes - before

    def counts_by_reason(self) -> dict[str, int]:
        rows = self._db.reader().execute("SELECT reason, count(*) FROM quarantine GROUP BY reason")
        return dict(rows.fetchall())

    # No index on quarantined_at: the quarantine holds rejected rows only, a small table next to
    # the event log, and a scan of it costs less than an index every insert would maintain. Rows
    # are scanned in id order, which is (nearly) quarantine order, so each chunk of a purge
    # finds its old rows at the front.
    def count_before(self, cutoff: datetime) -> int:
        sql = "SELECT count(*) FROM quarantine WHERE quarantined_at < ?"
        return int(self._db.reader().execute(sql, (to_micros(cutoff),)).fetchone()[0])

    def remove_before(self, cutoff: datetime, *, progress: Callable[[int], None] | None = None) -> int:
        at = to_micros(cutoff)
        return purge_in_chunks(
            self._db,
            lambda conn, limit: int(conn.execute(_PURGE_QUARANTINE, (at, limit)).rowcount),
            chunk_rows=self.purge_chunk_rows,
            pause_s=self.purge_pause_s,
            progress=progress,
        )

    def __len__(self) -> int:
        return int(self._db.reader().execute("SELECT count(*) FROM quarantine").fetchone()[0])

    def close(self) -> None:
        self._db.close()
