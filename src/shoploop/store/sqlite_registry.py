"""SQLite model registry: versions and statuses in `models`, an audit trail in `decisions`.

Files live in `root/<name>/<version>/`. Registration copies into a staging directory
first and renames it into place inside the transaction that records the version, so a
crash leaves either nothing or a stale directory that the next registration replaces;
never a recorded version with half its files.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from shoploop.store.memory import (
    check_model_name,
    discard_copy,
    from_micros,
    publish_copy,
    stage_copy,
    to_micros,
    utcnow,
)
from shoploop.store.protocols import ModelStatus, ModelVersion, RegistryDecision
from shoploop.store.sqlite_db import SqliteDatabase, open_database

_COLUMNS = "name, version, created_at, status, metrics, config, path"
_NEXT_SEQ = "(SELECT coalesce(max(status_seq), 0) + 1 FROM models)"


def _to_version(row: tuple) -> ModelVersion:
    name, version, created_at, status, metrics, config, path = row
    return ModelVersion(
        name=name,
        version=version,
        created_at=from_micros(created_at),
        status=status,
        metrics=json.loads(metrics),
        config=json.loads(config),
        path=Path(path),
    )


def _dumps(mapping: Mapping[str, Any] | None) -> str:
    return json.dumps(dict(mapping or {}))


class SqliteArtifactStore:
    def __init__(
        self, db: SqliteDatabase | Path | str, root: Path, *, clock: Callable[[], datetime] = utcnow
    ) -> None:
        self._db = open_database(db)
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._clock = clock

    # -- helpers (all run inside a write transaction on `conn`)
    def _fetch(self, conn: sqlite3.Connection, name: str, version: int) -> ModelVersion:
        row = conn.execute(
            f"SELECT {_COLUMNS} FROM models WHERE name = ? AND version = ?", (name, version)
        ).fetchone()
        if row is None:
            raise KeyError(f"no model version {name!r} v{version}")
        return _to_version(row)

    def _set_status(self, conn: sqlite3.Connection, name: str, version: int, status: ModelStatus) -> None:
        conn.execute(
            f"UPDATE models SET status = ?, status_seq = {_NEXT_SEQ} WHERE name = ? AND version = ?",
            (status, name, version),
        )

    def _decide(
        self,
        conn: sqlite3.Connection,
        mv: ModelVersion,
        action: str,
        reason: str,
        metrics: Mapping[str, Any] | None = None,
    ) -> None:
        conn.execute(
            "INSERT INTO decisions (name, version, action, reason, metrics, at) VALUES (?, ?, ?, ?, ?, ?)",
            (
                mv.name,
                mv.version,
                action,
                reason,
                _dumps(mv.metrics if metrics is None else metrics),
                to_micros(self._clock()),
            ),
        )

    def _active(self, conn: sqlite3.Connection, name: str) -> ModelVersion | None:
        row = conn.execute(
            f"SELECT {_COLUMNS} FROM models WHERE name = ? AND status = 'active'", (name,)
        ).fetchone()
        return None if row is None else _to_version(row)

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
        metrics_json, config_json = _dumps(metrics), _dumps(config)
        staged = stage_copy(Path(files_dir), self.root)  # slow copy outside the write lock
        try:
            with self._db.write() as conn:
                number = conn.execute(
                    "SELECT coalesce(max(version), 0) + 1 FROM models WHERE name = ?", (name,)
                ).fetchone()[0]
                final = self.root / name / str(number)
                conn.execute(
                    "INSERT INTO models"
                    " (name, version, created_at, status, status_seq, metrics, config, path)"
                    f" VALUES (?, ?, ?, 'candidate', {_NEXT_SEQ}, ?, ?, ?)",
                    (name, number, to_micros(self._clock()), metrics_json, config_json, str(final)),
                )
                mv = self._fetch(conn, name, number)
                self._decide(conn, mv, "register", "")
                publish_copy(staged, final)  # last step: if it fails the row rolls back
            return mv
        finally:
            discard_copy(staged)

    def get(self, name: str, version: int) -> ModelVersion:
        return self._fetch(self._db.reader(), name, version)

    def versions(self, name: str | None = None) -> list[ModelVersion]:
        conn = self._db.reader()
        if name is None:
            rows = conn.execute(f"SELECT {_COLUMNS} FROM models ORDER BY id")
        else:
            rows = conn.execute(f"SELECT {_COLUMNS} FROM models WHERE name = ? ORDER BY id", (name,))
        return [_to_version(r) for r in rows]

    def active(self, name: str) -> ModelVersion | None:
        return self._active(self._db.reader(), name)

    def promote(self, name: str, version: int, *, reason: str = "") -> ModelVersion:
        with self._db.write() as conn:
            target = self._fetch(conn, name, version)
            if target.status == "active":
                return target
            if target.status == "rejected":
                raise ValueError(f"{name!r} v{version} was rejected; register a new version instead")
            previous = self._active(conn, name)
            if previous is not None:
                self._set_status(conn, name, previous.version, "retired")
                self._decide(conn, previous, "retire", f"replaced by v{version}")
            self._set_status(conn, name, version, "active")
            self._decide(conn, target, "promote", reason)
            return self._fetch(conn, name, version)

    def reject(
        self, name: str, version: int, *, reason: str, metrics: Mapping[str, Any] | None = None
    ) -> ModelVersion:
        with self._db.write() as conn:
            current = self._fetch(conn, name, version)
            if metrics:
                merged = {**current.metrics, **json.loads(_dumps(metrics))}
                conn.execute(
                    "UPDATE models SET metrics = ? WHERE name = ? AND version = ?",
                    (json.dumps(merged), name, version),
                )
            self._set_status(conn, name, version, "rejected")
            updated = self._fetch(conn, name, version)
            self._decide(conn, updated, "reject", reason, metrics)
            return updated

    def rollback(self, name: str, *, reason: str = "", to_none: bool = False) -> ModelVersion:
        with self._db.write() as conn:
            row = conn.execute(
                "SELECT version FROM models WHERE name = ? AND status = 'retired'"
                " ORDER BY status_seq DESC LIMIT 1",
                (name,),
            ).fetchone()
            current = self._active(conn, name)
            if row is None:
                if not to_none or current is None:
                    raise LookupError(f"no retired version of {name!r} to roll back to")
                self._set_status(conn, name, current.version, "rejected")
                self._decide(conn, current, "reject", f"rolled back to none: {reason}".rstrip(": "))
                return self._fetch(conn, name, current.version)
            if current is not None:
                # Rejected rather than retired, so a second rollback walks further back.
                self._set_status(conn, name, current.version, "rejected")
                self._decide(conn, current, "reject", f"rolled back: {reason}".rstrip(": "))
            self._set_status(conn, name, row[0], "active")
            restored = self._fetch(conn, name, row[0])
            self._decide(conn, restored, "rollback", reason)
            return restored

    def update_metrics(self, name: str, version: int, metrics: Mapping[str, Any]) -> ModelVersion:
        with self._db.write() as conn:
            current = self._fetch(conn, name, version)
            merged = {**current.metrics, **json.loads(_dumps(metrics))}
            conn.execute(
                "UPDATE models SET metrics = ? WHERE name = ? AND version = ?",
                (json.dumps(merged), name, version),
            )
            return self._fetch(conn, name, version)

    def decisions(
        self,
        name: str | None = None,
        *,
        actions: Sequence[str] | None = None,
        newest_first: bool = False,
        limit: int | None = None,
    ) -> list[RegistryDecision]:
        where: list[str] = []
        params: list[Any] = []
        if name is not None:
            where.append("name = ?")
            params.append(name)
        if actions is not None:
            where.append(f"action IN ({', '.join('?' * len(actions))})" if actions else "0")
            params.extend(actions)
        sql = "SELECT name, version, action, reason, metrics, at FROM decisions"
        sql += f" WHERE {' AND '.join(where)}" if where else ""
        sql += " ORDER BY id DESC" if newest_first else " ORDER BY id"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(limit)
        rows = self._db.reader().execute(sql, params)
        return [
            RegistryDecision(name=n, version=v, action=a, reason=r, metrics=json.loads(m), at=from_micros(at))
            for n, v, a, r, m, at in rows
        ]

    def close(self) -> None:
        self._db.close()
