"""`Stores` bundles: in-memory and on-disk homes expose the same four protocols."""

from __future__ import annotations

from store_factories import product, view

from shoploop.store import ArtifactStore, CatalogStore, EventLog, Quarantine, memory_stores, open_stores


def test_memory_stores_bundle(tmp_path, t0):
    stores = memory_stores(tmp_path / "art")
    assert stores.home is None
    assert isinstance(stores.catalog, CatalogStore)
    assert isinstance(stores.events, EventLog)
    assert isinstance(stores.quarantine, Quarantine)
    assert isinstance(stores.registry, ArtifactStore)
    stores.catalog.upsert([product("a")])
    stores.events.append([view("e", "u", t0)])
    assert (tmp_path / "art").is_dir()
    stores.close()
    stores.close()  # closing twice is harmless


def test_open_stores_creates_home_with_one_database(tmp_path, t0):
    home = tmp_path / "shop"
    stores = open_stores(home)
    assert stores.home == home
    for proto, store in [
        (CatalogStore, stores.catalog),
        (EventLog, stores.events),
        (Quarantine, stores.quarantine),
        (ArtifactStore, stores.registry),
    ]:
        assert isinstance(store, proto)
    stores.events.append([view("e", "u", t0)])
    stores.close()
    assert (home / "shoploop.sqlite").is_file()
    assert (home / "artifacts").is_dir()
    with open_stores(home) as again:
        assert len(again.events) == 1
