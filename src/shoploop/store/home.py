"""A shop's "home": the directory that holds its database and model artifacts.

`open_stores(home)` is the one place that decides where things live on disk:

    home/shoploop.sqlite      catalog, event log, quarantine, model registry (WAL mode)
    home/artifacts/<name>/<version>/   registered model files

`memory_stores(dir)` gives the same bundle backed by memory (tests, notebooks).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from shoploop.store.memory import (
    MemoryArtifactStore,
    MemoryCatalogStore,
    MemoryEventLog,
    MemoryQuarantine,
)
from shoploop.store.protocols import ArtifactStore, CatalogStore, EventLog, Quarantine

DB_FILENAME = "shoploop.sqlite"
ARTIFACTS_DIRNAME = "artifacts"


@dataclass
class Stores:
    """The four stores a shop runs on, opened together and closed together."""

    catalog: CatalogStore
    events: EventLog
    quarantine: Quarantine
    registry: ArtifactStore
    home: Path | None  # None for in-memory stores

    def close(self) -> None:
        # The SQLite stores share one database object, whose close() is idempotent.
        for store in (self.catalog, self.events, self.quarantine, self.registry):
            close = getattr(store, "close", None)
            if close is not None:
                close()

    def __enter__(self) -> Stores:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_stores(home: Path) -> Stores:
    """Open (creating if needed) the SQLite-backed stores under `home`."""
    # Imported here so that in-memory users never pay for the SQLite module's setup.
    from shoploop.store.sqlite import (
        SqliteArtifactStore,
        SqliteCatalogStore,
        SqliteDatabase,
        SqliteEventLog,
        SqliteQuarantine,
    )

    home = Path(home)
    home.mkdir(parents=True, exist_ok=True)
    db = SqliteDatabase(home / DB_FILENAME)
    return Stores(
        catalog=SqliteCatalogStore(db),
        events=SqliteEventLog(db),
        quarantine=SqliteQuarantine(db),
        registry=SqliteArtifactStore(db, home / ARTIFACTS_DIRNAME),
        home=home,
    )


def memory_stores(artifact_root: Path) -> Stores:
    """In-memory stores; model files are still copied under `artifact_root`."""
    return Stores(
        catalog=MemoryCatalogStore(),
        events=MemoryEventLog(),
        quarantine=MemoryQuarantine(),
        registry=MemoryArtifactStore(Path(artifact_root)),
        home=None,
    )
