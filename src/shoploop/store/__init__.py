"""Storage contracts (`protocols`) with SQLite and in-memory implementations."""

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

__all__ = [
    "AppendResult",
    "ArtifactStore",
    "CatalogChange",
    "CatalogStore",
    "EventLog",
    "ModelStatus",
    "ModelVersion",
    "Quarantine",
    "QuarantinedRow",
    "RegistryDecision",
]
