"""Storage contracts (`protocols`) with SQLite and in-memory implementations."""

from shoploop.store.home import Stores, memory_stores, open_stores
from shoploop.store.memory import (
    MemoryArtifactStore,
    MemoryCatalogStore,
    MemoryEventLog,
    MemoryQuarantine,
)
from shoploop.store.protocols import (
    AppendResult,
    ArtifactStore,
    CatalogChange,
    CatalogStore,
    EventLog,
    ModelStatus,
    ModelVersion,
    Quarantine,
    QuarantinedRow,
    RegistryDecision,
)
from shoploop.store.sqlite import (
    SqliteArtifactStore,
    SqliteCatalogStore,
    SqliteDatabase,
    SqliteEventLog,
    SqliteQuarantine,
)

__all__ = [
    "AppendResult",
    "ArtifactStore",
    "CatalogChange",
    "CatalogStore",
    "EventLog",
    "MemoryArtifactStore",
    "MemoryCatalogStore",
    "MemoryEventLog",
    "MemoryQuarantine",
    "ModelStatus",
    "ModelVersion",
    "Quarantine",
    "QuarantinedRow",
    "RegistryDecision",
    "SqliteArtifactStore",
    "SqliteCatalogStore",
    "SqliteDatabase",
    "SqliteEventLog",
    "SqliteQuarantine",
    "Stores",
    "memory_stores",
    "open_stores",
]
