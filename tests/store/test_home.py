"""`Stores` bundles: in-memory and on-disk homes expose the same four protocols."""

from __future__ import annotations

from store_factories import product, view

from shoploop.store import ArtifactStore, CatalogStore, EventLog, Quarantine, memory_stores


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
