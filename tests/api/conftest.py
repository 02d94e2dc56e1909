"""An app around a tiny real engine (demo shop, BM25 + item-kNN), with one key per scope."""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient

from shoploop.api import ApiSettings, create_app
from tests.engine.conftest import make_engine

KEYS = {
    "search-key-123": frozenset({"search"}),
    "events-key-123": frozenset({"events"}),
    "catalog-key-123": frozenset({"catalog"}),
    "admin-key-1234": frozenset({"admin"}),
}
SEARCH = {"X-API-Key": "search-key-123"}
EVENTS = {"X-API-Key": "events-key-123"}
CATALOG = {"X-API-Key": "catalog-key-123"}
ADMIN = {"X-API-Key": "admin-key-1234"}


def make_settings(**overrides) -> ApiSettings:
    values = {"keys": KEYS, "storefront_key": "events-key-123", "max_batch": 50, "max_body_bytes": 64 * 1024}
    values.update(overrides)
    return ApiSettings(**values)


def make_client(**overrides) -> tuple[TestClient, object, object]:
    engine, bundle = make_engine()
    client = TestClient(create_app(engine, make_settings(**overrides)), raise_server_exceptions=False)
    return client, engine, bundle


@pytest.fixture(scope="module")
def shared():
    """Module-scoped client for read-mostly tests (state changes stay small and local)."""
    client, engine, bundle = make_client()
    with client:
        yield client, engine, bundle


@pytest.fixture
def fresh():
    """A client over its own engine, for tests that change catalog, models or users."""
    client, engine, bundle = make_client()
    with client:
        yield client, engine, bundle


def wait_for(condition, seconds: float = 15.0) -> bool:
    """Poll `condition` until it holds or `seconds` pass: background jobs act on their own clock."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return False
