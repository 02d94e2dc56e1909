"""Typed experiment configuration and a small store for experiments and their exposures.

An `Experiment` names its variants (each one a model version and/or a policy), their
traffic shares, one primary metric and any number of guardrail metrics. The store keeps
experiments plus the first exposure of each user (the analysis unit), in memory for tests
or in its own tables of a SQLite file for a running shop.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

from shoploop.evaluation.ab.assignment import Exposure, assign

ExperimentStatus = Literal["draft", "running", "stopped"]
MetricKind = Literal["proportion", "mean"]
Direction = Literal["increase", "decrease"]


@dataclass(frozen=True)
class Variant:
    """One arm. `model_version` / `policy` say what the engine serves to its users."""

    name: str
    share: float
    model_version: str | None = None
    policy: str | None = None
    description: str = ""

    def __post_init__(self) -> None:
        if not self.name or not (self.share > 0):
            raise ValueError(f"variant needs a name and a positive share, got {self!r}")


@dataclass(frozen=True)
class MetricSpec:
    """A metric the analysis reads per user.

    `kind` picks the test (two-proportion z for 0/1 outcomes, Welch t otherwise).
    `direction` says which way is good. For guardrails, `max_relative_harm` is the
    non-inferiority margin: e.g. 0.02 tolerates at most a 2% relative move in the bad
    direction.
    """

    name: str
    kind: MetricKind = "mean"
    direction: Direction = "increase"
    max_relative_harm: float = 0.0


@dataclass(frozen=True)
class Experiment:
    id: str
    variants: tuple[Variant, ...]
    primary_metric: MetricSpec
    guardrails: tuple[MetricSpec, ...] = ()
    name: str = ""
    description: str = ""
    surface: str | None = None
    salt: str | None = None  # defaults to the id, so two experiments never share a shuffle
    traffic_fraction: float = 1.0
    alpha: float = 0.05
    status: ExperimentStatus = "draft"
    start: datetime | None = None
    stop: datetime | None = None
    created_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def __post_init__(self) -> None:
        if not self.id:
            raise ValueError("experiment id must not be empty")
        names = [v.name for v in self.variants]
        if len(names) < 2:
            raise ValueError("an experiment needs at least two variants (control first)")
        if len(set(names)) != len(names):
            raise ValueError(f"variant names must be unique, got {names}")
        total = sum(v.share for v in self.variants)
        if abs(total - 1.0) > 1e-6:
            raise ValueError(f"variant shares must sum to 1, got {total}")
        if not 0.0 < self.traffic_fraction <= 1.0:
            raise ValueError("traffic_fraction must be in (0, 1]")
        if not 0.0 < self.alpha < 1.0:
            raise ValueError("alpha must be in (0, 1)")

    @property
    def control(self) -> Variant:
        """The first variant is the control every other variant is compared with."""
        return self.variants[0]

    @property
    def variant_names(self) -> list[str]:
        return [v.name for v in self.variants]

    @property
    def shares(self) -> list[float]:
        return [v.share for v in self.variants]

    def assign(self, user_id: str) -> str | None:
        return assign(
            user_id,
            salt=self.salt or self.id,
            variants=self.variant_names,
            shares=self.shares,
            traffic_fraction=self.traffic_fraction,
        )

    def expose(
        self, user_id: str, at: datetime, *, surface: str | None = None, request_id: str | None = None
    ) -> Exposure | None:
        """The exposure record to log when `user_id` is served under this experiment."""
        if self.status != "running":
            return None
        variant = self.assign(user_id)
        if variant is None:
            return None
        return Exposure(self.id, user_id, variant, at, surface or self.surface, request_id)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        for key in ("start", "stop", "created_at"):
            value = getattr(self, key)
            data[key] = value.isoformat() if value is not None else None
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Experiment:
        d = dict(data)
        d["variants"] = tuple(Variant(**v) for v in d["variants"])
        d["primary_metric"] = MetricSpec(**d["primary_metric"])
        d["guardrails"] = tuple(MetricSpec(**g) for g in d.get("guardrails", ()))
        for key in ("start", "stop", "created_at"):
            if d.get(key) is not None:
                d[key] = datetime.fromisoformat(d[key])
        if d.get("created_at") is None:
            d.pop("created_at", None)
        return cls(**d)


@runtime_checkable
class ExperimentStore(Protocol):
    def save(self, experiment: Experiment) -> Experiment:
        """Insert or replace an experiment (atomically)."""
        ...

    def get(self, experiment_id: str) -> Experiment | None: ...

    def list(self, *, status: ExperimentStatus | None = None) -> list[Experiment]:
        """Experiments ordered by creation time."""
        ...

    def start(self, experiment_id: str, at: datetime) -> Experiment: ...

    def stop(self, experiment_id: str, at: datetime) -> Experiment: ...

    def record_exposures(self, exposures: Iterable[Exposure]) -> int:
        """Keep each user's FIRST exposure per experiment; returns how many were new."""
        ...

    def exposures(self, experiment_id: str) -> list[Exposure]:
        """First exposures, in time order."""
        ...

    def exposure_counts(self, experiment_id: str) -> dict[str, int]: ...

    def user_exposures(self, user_id: str) -> list[Exposure]:
        """One shopper's exposures across experiments, in time order (their data, on request)."""
        ...

    def delete_user(self, user_id: str) -> int:
        """Erase one shopper's exposures in every experiment; returns how many were removed."""
        ...

    def count_exposures_before(self, cutoff: datetime) -> int:
        """How many exposures `delete_exposures_before(cutoff)` would erase now."""
        ...

    def delete_exposures_before(self, cutoff: datetime) -> int:
        """Erase exposures recorded before `cutoff` (exclusive; retention): they name shoppers.
        An experiment's read-out then covers the shoppers exposed since, as the event log's
        outcomes do after the same purge."""
        ...


def _started(exp: Experiment, at: datetime) -> Experiment:
    if exp.status != "draft":
        raise ValueError(f"experiment {exp.id!r} is {exp.status}; only a draft can start")
    return replace(exp, status="running", start=at)


def _stopped(exp: Experiment, at: datetime) -> Experiment:
    if exp.status != "running":
        raise ValueError(f"experiment {exp.id!r} is {exp.status}; only a running one can stop")
    return replace(exp, status="stopped", stop=at)


class MemoryExperimentStore:
    def __init__(self) -> None:
        self._experiments: dict[str, Experiment] = {}
        self._exposures: dict[str, dict[str, Exposure]] = {}
        self._lock = threading.Lock()

    def save(self, experiment: Experiment) -> Experiment:
        with self._lock:
            self._experiments[experiment.id] = experiment
        return experiment

    def get(self, experiment_id: str) -> Experiment | None:
        return self._experiments.get(experiment_id)

    def list(self, *, status: ExperimentStatus | None = None) -> list[Experiment]:
        exps = sorted(self._experiments.values(), key=lambda e: (e.created_at, e.id))
        return [e for e in exps if status is None or e.status == status]

    def _transition(self, experiment_id: str, fn: Any, at: datetime) -> Experiment:
        with self._lock:
            exp = self._experiments.get(experiment_id)
            if exp is None:
                raise KeyError(f"no experiment {experiment_id!r}")
            new = fn(exp, at)
            self._experiments[experiment_id] = new
            return new

    def start(self, experiment_id: str, at: datetime) -> Experiment:
        return self._transition(experiment_id, _started, at)

    def stop(self, experiment_id: str, at: datetime) -> Experiment:
        return self._transition(experiment_id, _stopped, at)

    def record_exposures(self, exposures: Iterable[Exposure]) -> int:
        new = 0
        with self._lock:
            for e in exposures:
                per = self._exposures.setdefault(e.experiment_id, {})
                old = per.get(e.user_id)
                if old is None:
                    new += 1
                if old is None or e.at < old.at:
                    per[e.user_id] = e
        return new

    def exposures(self, experiment_id: str) -> list[Exposure]:
        return sorted(self._exposures.get(experiment_id, {}).values(), key=lambda e: (e.at, e.user_id))

    def exposure_counts(self, experiment_id: str) -> dict[str, int]:
        counts: dict[str, int] = {}
        for e in self._exposures.get(experiment_id, {}).values():
            counts[e.variant] = counts.get(e.variant, 0) + 1
        return counts

    def user_exposures(self, user_id: str) -> list[Exposure]:
        with self._lock:
            mine = [per[user_id] for per in self._exposures.values() if user_id in per]
        return sorted(mine, key=lambda e: (e.at, e.experiment_id))

    def delete_user(self, user_id: str) -> int:
        with self._lock:
            return sum(1 for per in self._exposures.values() if per.pop(user_id, None) is not None)

    def count_exposures_before(self, cutoff: datetime) -> int:
        with self._lock:
            return sum(1 for per in self._exposures.values() for e in per.values() if e.at < cutoff)

    def delete_exposures_before(self, cutoff: datetime) -> int:
        with self._lock:
            doomed = [
                (per, user) for per in self._exposures.values() for user, e in per.items() if e.at < cutoff
            ]
            for per, user in doomed:
                del per[user]
            return len(doomed)


def _iso(at: datetime) -> str:
    # Fixed-width UTC strings sort in time order, which the "keep the earliest" SQL relies on.
    if at.tzinfo is None:
        raise ValueError(f"exposure time must be timezone-aware, got {at!r}")
    return at.astimezone(UTC).isoformat(timespec="microseconds")


class SqliteExperimentStore:
    """Experiments in their own tables (`ab_experiments`, `ab_exposures`) of a SQLite file.

    Safe to point at the shop's main database file: it creates only its own tables. Every
    write is one transaction, so a crash never leaves half an experiment or half a batch.
    """

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self._conn = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None)
        self._lock = threading.Lock()
        with self._lock:
            self._conn.execute("PRAGMA busy_timeout=5000")
            self._conn.execute("BEGIN IMMEDIATE")
            self._conn.execute(
                "CREATE TABLE IF NOT EXISTS ab_experiments (id TEXT PRIMARY KEY, status TEXT NOT NULL,"
                " created_at TEXT NOT NULL, body TEXT NOT NULL)"
            )
            self._conn.execute(
                "CREATE TABLE IF NOT EXISTS ab_exposures (experiment_id TEXT NOT NULL, user_id TEXT NOT NULL,"
                " variant TEXT NOT NULL, at TEXT NOT NULL, surface TEXT, request_id TEXT,"
                " PRIMARY KEY (experiment_id, user_id))"
            )
            self._conn.execute("COMMIT")

    def close(self) -> None:
        self._conn.close()

    def _tx(self, fn: Any) -> Any:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                out = fn(self._conn)
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")
            return out

    @staticmethod
    def _put(conn: sqlite3.Connection, exp: Experiment) -> None:
        conn.execute(
            "INSERT OR REPLACE INTO ab_experiments (id, status, created_at, body) VALUES (?, ?, ?, ?)",
            (exp.id, exp.status, exp.created_at.isoformat(), json.dumps(exp.to_dict())),
        )

    def save(self, experiment: Experiment) -> Experiment:
        self._tx(lambda c: self._put(c, experiment))
        return experiment

    def get(self, experiment_id: str) -> Experiment | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT body FROM ab_experiments WHERE id = ?", (experiment_id,)
            ).fetchone()
        return Experiment.from_dict(json.loads(row[0])) if row else None

    def list(self, *, status: ExperimentStatus | None = None) -> list[Experiment]:
        with self._lock:
            rows = self._conn.execute("SELECT body FROM ab_experiments ORDER BY created_at, id").fetchall()
        exps = [Experiment.from_dict(json.loads(r[0])) for r in rows]
        return [e for e in exps if status is None or e.status == status]

    def _transition(self, experiment_id: str, fn: Any, at: datetime) -> Experiment:
        def run(conn: sqlite3.Connection) -> Experiment:
            row = conn.execute("SELECT body FROM ab_experiments WHERE id = ?", (experiment_id,)).fetchone()
            if row is None:
                raise KeyError(f"no experiment {experiment_id!r}")
            new = fn(Experiment.from_dict(json.loads(row[0])), at)
            self._put(conn, new)
            return new

        return self._tx(run)

    def start(self, experiment_id: str, at: datetime) -> Experiment:
        return self._transition(experiment_id, _started, at)

    def stop(self, experiment_id: str, at: datetime) -> Experiment:
        return self._transition(experiment_id, _stopped, at)

    def record_exposures(self, exposures: Iterable[Exposure]) -> int:
        rows = [
            (e.experiment_id, e.user_id, e.variant, _iso(e.at), e.surface, e.request_id) for e in exposures
        ]

        def run(conn: sqlite3.Connection) -> int:
            before = conn.total_changes
            # Keep the earliest exposure: insert new users, and replace only when earlier.
            # ISO strings of aware UTC datetimes compare in time order.
            conn.executemany(
                "INSERT INTO ab_exposures (experiment_id, user_id, variant, at, surface, request_id)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (experiment_id, user_id) DO NOTHING",
                rows,
            )
            inserted = conn.total_changes - before
            conn.executemany(
                "UPDATE ab_exposures SET variant = ?, at = ?, surface = ?, request_id = ?"
                " WHERE experiment_id = ? AND user_id = ? AND at > ?",
                [(r[2], r[3], r[4], r[5], r[0], r[1], r[3]) for r in rows],
            )
            return inserted

        return self._tx(run)

    def exposures(self, experiment_id: str) -> list[Exposure]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT experiment_id, user_id, variant, at, surface, request_id FROM ab_exposures"
                " WHERE experiment_id = ? ORDER BY at, user_id",
                (experiment_id,),
            ).fetchall()
        return [Exposure(r[0], r[1], r[2], datetime.fromisoformat(r[3]), r[4], r[5]) for r in rows]

    def exposure_counts(self, experiment_id: str) -> dict[str, int]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT variant, COUNT(*) FROM ab_exposures WHERE experiment_id = ? GROUP BY variant",
                (experiment_id,),
            ).fetchall()
        return {r[0]: int(r[1]) for r in rows}

    def user_exposures(self, user_id: str) -> list[Exposure]:
        # A scan of the exposures table: the primary key leads with experiment_id, and this runs
        # once per access request, not per served list, so it does not earn its own index.
        with self._lock:
            rows = self._conn.execute(
                "SELECT experiment_id, user_id, variant, at, surface, request_id FROM ab_exposures"
                " WHERE user_id = ? ORDER BY at, experiment_id",
                (user_id,),
            ).fetchall()
        return [Exposure(r[0], r[1], r[2], datetime.fromisoformat(r[3]), r[4], r[5]) for r in rows]

    def delete_user(self, user_id: str) -> int:
        return int(
            self._tx(lambda c: c.execute("DELETE FROM ab_exposures WHERE user_id = ?", (user_id,)).rowcount)
        )

    def count_exposures_before(self, cutoff: datetime) -> int:
        with self._lock:
            row = self._conn.execute(
                "SELECT count(*) FROM ab_exposures WHERE at < ?", (_iso(cutoff),)
            ).fetchone()
        return int(row[0])

    def delete_exposures_before(self, cutoff: datetime) -> int:
        # `at` holds fixed-width UTC ISO strings, so string order is time order (see _iso).
        at = _iso(cutoff)
        return int(self._tx(lambda c: c.execute("DELETE FROM ab_exposures WHERE at < ?", (at,)).rowcount))
