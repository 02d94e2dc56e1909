"""A merchandiser's synonyms through the engine: live, refused with the line, kept in the home,
picked up from another process."""

from __future__ import annotations

import os
from dataclasses import replace

import pytest

from shoploop.data.demo import DemoConfig, generate_demo_store
from shoploop.data.ingest import import_records
from shoploop.engine import InvalidRequest, build_engine
from tests.engine.conftest import FAST


def _top_titles(engine, query: str, k: int = 5) -> list[str]:
    return [engine.products[i.item_id].title.lower() for i in engine.search(query, k=k).items]


@pytest.fixture
def shop(tmp_path):
    home = tmp_path / "shop"
    bundle = generate_demo_store(DemoConfig(n_products=150, n_users=20, days=3, n_bots=0))
    engine = build_engine(replace(FAST, home=home))
    import_records(bundle.products, bundle.events, engine.stores, source="demo", progress=False)
    engine.start()
    yield engine, home
    engine.stores.close()


def test_synonyms_apply_live_persist_and_follow_other_writers(shop):
    engine, home = shop
    word = next(
        t.split()[-1] for t in (p.title.lower() for p in engine.products.values()) if t.split()[-1].isalpha()
    )
    assert not any(word in t for t in _top_titles(engine, "zorblax"))
    receipt = engine.set_synonyms(f"# ours\nzorblax => {word}\n")
    assert receipt["rewrites"] == 1 and receipt["default_rewrites"] > 0
    result = engine.search("zorblax", k=5)
    assert any(word in engine.products[i.item_id].title.lower() for i in result.items)
    assert any("zorblax" in rule for rule in result.understood_query["synonyms"])
    assert (home / "synonyms.txt").read_text() == f"# ours\nzorblax => {word}\n"

    with pytest.raises(InvalidRequest) as bad:
        engine.set_synonyms("zorblax\n")
    assert bad.value.field == "rules" and "line 1" in str(bad.value)
    assert engine.synonyms()["rewrites"] == 1  # the refused text changed nothing

    # a restart serves the saved rules
    engine.stores.close()
    again = build_engine(replace(FAST, home=home)).start()
    assert any(word in t for t in _top_titles(again, "zorblax"))

    # another process edits the file: the next sync applies it
    (home / "synonyms.txt").write_text("")
    os.utime(home / "synonyms.txt", ns=(1, 1))
    assert again.sync_with_stores().get("synonyms") == 1
    assert again.synonyms()["rules"] == "" and not any(
        "zorblax" in r for r in again.search("zorblax").understood_query["synonyms"]
    )
    again.stores.close()


def test_suggest_blocklist_applies_at_once_persists_and_follows_other_writers(shop):
    engine, home = shop
    popular = engine.suggest("", k=1)[0].text
    word = popular.split()[0]
    assert engine.set_suggest_blocklist(f"# taken down\n{word}\n") == (word,)
    assert all(word not in s.text.split() for s in engine.suggest("", k=50) + engine.suggest(word[:2], k=50))
    assert (home / "suggest_blocklist.txt").read_text() == f"# taken down\n{word}\n"
    with pytest.raises(InvalidRequest) as bad:
        engine.set_suggest_blocklist("ok\n???\n")
    assert bad.value.field == "terms" and "line 2" in str(bad.value)
    engine.stores.close()
    again = build_engine(replace(FAST, home=home)).start()
    assert popular not in [s.text for s in again.suggest("", k=50)]  # kept across a restart
    (home / "suggest_blocklist.txt").write_text("")
    os.utime(home / "suggest_blocklist.txt", ns=(1, 1))
    assert again.sync_with_stores().get("suggest_blocklist") == 1
    assert popular in [s.text for s in again.suggest("", k=50)]
    again.stores.close()
