"""Embedded SQLite implementations of the store protocols (the default a shop runs).

All four stores can share one `SqliteDatabase` (one file, `home/shoploop.sqlite`); see
`sqlite_db` for the durability and threading choices. Each class also accepts a file
path and then opens a private database object.
"""

from shoploop.store.sqlite_catalog import SqliteCatalogStore, SqliteQuarantine
from shoploop.store.sqlite_db import SCHEMA_VERSION, SqliteDatabase
from shoploop.store.sqlite_events import SqliteEventLog
from shoploop.store.sqlite_registry import SqliteArtifactStore

__all__ = [
    "SCHEMA_VERSION",
    "SqliteArtifactStore",
    "SqliteCatalogStore",
    "SqliteDatabase",
    "SqliteEventLog",
    "SqliteQuarantine",
]
