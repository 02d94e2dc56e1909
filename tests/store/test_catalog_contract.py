"""CatalogStore contract, run on every implementation (see conftest `impl`)."""

from __future__ import annotations

from store_factories import product

from shoploop.store.protocols import CatalogChange, CatalogStore


def test_is_a_catalog_store(catalog):
    assert isinstance(catalog, CatalogStore)


def test_empty_catalog(catalog):
    assert catalog.version == 0
    assert len(catalog) == 0
    assert catalog.get("x") is None
    assert list(catalog.iter_products()) == []
    assert catalog.changes_since(0) == []


def test_upsert_get_and_version(catalog, t0):
    v = catalog.upsert([product("b", price=2.5, category_path=("A", "B"), updated_at=t0), product("a")])
    assert v == 2 == catalog.version
    assert len(catalog) == 2
    assert "a" in catalog and "zzz" not in catalog
    got = catalog.get("b")
    assert got == product("b", price=2.5, category_path=("A", "B"), updated_at=t0)
    assert got.updated_at == t0


def test_upsert_replaces_and_iterates_in_id_order(catalog):
    catalog.upsert([product("c"), product("a"), product("b")])
    v = catalog.upsert([product("a", title="New title", attributes={"color": "red", "size": 3, "eco": True})])
    assert v == 4
    assert [p.item_id for p in catalog.iter_products()] == ["a", "b", "c"]
    assert catalog.get("a").title == "New title"
    assert catalog.get("a").attributes == {"color": "red", "size": 3, "eco": True}
    assert len(catalog) == 3


def test_get_many_returns_known_only(catalog):
    catalog.upsert([product("a"), product("b")])
    got = catalog.get_many(["b", "missing", "a"])
    assert set(got) == {"a", "b"}
    assert got["a"].item_id == "a"
    assert catalog.get_many([]) == {}


def test_delete_ignores_unknown_and_feeds_changes(catalog):
    catalog.upsert([product("a"), product("b")])
    v = catalog.delete(["a", "nope"])
    assert v == 3
    assert "a" not in catalog and len(catalog) == 1
    assert catalog.delete(["nope"]) == 3  # nothing changed -> same version
    assert catalog.changes_since(0) == [
        CatalogChange(1, "a", "upsert"),
        CatalogChange(2, "b", "upsert"),
        CatalogChange(3, "a", "delete"),
    ]
    assert catalog.changes_since(2) == [CatalogChange(3, "a", "delete")]
    assert catalog.changes_since(3) == []


def test_upsert_empty_batch_keeps_version(catalog):
    catalog.upsert([product("a")])
    assert catalog.upsert([]) == 1
    assert catalog.delete([]) == 1
