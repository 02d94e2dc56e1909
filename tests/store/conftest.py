"""Fixtures that build each store in every implementation, so one contract suite covers all."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from shoploop.store.memory import (
    MemoryArtifactStore,
    MemoryCatalogStore,
    MemoryEventLog,
    MemoryQuarantine,
)

IMPLEMENTATIONS = ["memory", "sqlite"]


class StepClock:
    """A deterministic clock: each call returns one second later than the previous."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        self.now += timedelta(seconds=1)
        return self.now


def _sqlite_db(tmp_path: Path):
    from shoploop.store.sqlite import SqliteDatabase

    return SqliteDatabase(tmp_path / "shoploop.sqlite")


@pytest.fixture(params=IMPLEMENTATIONS)
def impl(request) -> str:
    return request.param


@pytest.fixture
def catalog(impl, tmp_path) -> Iterator:
    if impl == "memory":
        yield MemoryCatalogStore()
        return
    from shoploop.store.sqlite import SqliteCatalogStore

    store = SqliteCatalogStore(_sqlite_db(tmp_path))
    yield store
    store.close()


@pytest.fixture
def make_events(impl, tmp_path) -> Iterator[Callable[[], object]]:
    """A factory, so a test can build a second log (e.g. to compare against)."""
    opened = []

    def build():
        if impl == "memory":
            return MemoryEventLog()
        from shoploop.store.sqlite import SqliteEventLog

        log = SqliteEventLog(_sqlite_db(tmp_path / f"log{len(opened)}"))
        opened.append(log)
        return log

    yield build
    for log in opened:
        log.close()


@pytest.fixture
def events(make_events):
    return make_events()


@pytest.fixture
def quarantine(impl, tmp_path, t0) -> Iterator:
    if impl == "memory":
        yield MemoryQuarantine(clock=StepClock(t0))
        return
    from shoploop.store.sqlite import SqliteQuarantine

    store = SqliteQuarantine(_sqlite_db(tmp_path), clock=StepClock(t0))
    yield store
    store.close()


@pytest.fixture
def registry(impl, tmp_path, t0) -> Iterator:
    root = tmp_path / "artifacts"
    if impl == "memory":
        yield MemoryArtifactStore(root, clock=StepClock(t0))
        return
    from shoploop.store.sqlite import SqliteArtifactStore

    store = SqliteArtifactStore(_sqlite_db(tmp_path), root, clock=StepClock(t0))
    yield store
    store.close()
