"""Autocomplete through the engine: learned from the replayed log, live events, catalog writes
and erasure; bad input names its field."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from shoploop.domain import Product
from shoploop.engine import InvalidRequest
from shoploop.retrieval.suggest import SuggestConfig
from tests.engine.conftest import FAST, make_engine

NOW_CONFIG = replace(FAST, suggest=SuggestConfig(rebuild_seconds=0))


@pytest.fixture(scope="module")
def engine():
    return make_engine(NOW_CONFIG)[0]


def _search_rows(query: str, users: list[str], n_results: int = 7) -> list[dict]:
    now = datetime.now(UTC).isoformat()
    return [
        {"type": "search", "user_id": u, "query": query, "n_results": n_results, "timestamp": now}
        for u in users
    ]


def test_start_up_learns_the_demo_shops_searches_and_catalog(engine):
    stats = engine.health()["suggestions"]
    assert stats["suggestable_queries"] > 0 and stats["catalog_phrases"] > 0
    popular = engine.suggest("", k=5)
    assert popular and all(s.source == "searches" for s in popular)
    first = popular[0].text
    completions = engine.suggest(first[:3], k=20)
    assert first in [s.text for s in completions]
    assert all(s.text.startswith(first[:3]) or f" {first[:3]}" in s.text for s in completions)


def test_live_searches_are_suggested_once_enough_shoppers_made_them(engine):
    assert engine.suggest("zebra pr") == []
    engine.ingest_events(_search_rows("Zebra Print Rug", ["z1", "z2"]))
    assert engine.suggest("zebra pr") == []  # two shoppers are not enough
    engine.ingest_events(_search_rows("zebra print rug", ["z3"]))
    assert [s.text for s in engine.suggest("zebra pr")] == ["zebra print rug"]
    receipt = engine.delete_user("z3")
    assert receipt["online_state"]["suggestion_queries"] == 1
    assert engine.suggest("zebra pr") == []  # the erased shopper no longer counts


def test_new_products_complete_without_a_restart(engine):
    assert engine.suggest("quokka") == []
    engine.upsert_products(
        [Product(item_id="Q1", title="Quokka Plush Toy", brand="Quokka Co", category_path=("Toys", "Plush"))]
    )
    got = [s.text for s in engine.suggest("quokka")]
    assert "quokka co" in got  # brands complete from the first product
    engine.delete_products(["Q1"])
    assert engine.suggest("quokka") == []


def test_misspelt_words_are_rescued_by_the_catalogs_corrector(engine):
    word = next(s.text for s in engine.suggest("", k=20) if " " in s.text and len(s.text.split()[0]) >= 6)
    head, tail = word.split()[0], word.split()[1]
    typo = head[:-2] + head[-1]  # drop the second-to-last letter
    assert engine.searcher.typo_.correct_token(typo) == head, "the corrector must know the word"
    assert word in [s.text for s in engine.suggest(f"{typo} {tail[:2]}", k=8)]


@pytest.mark.parametrize(("kwargs", "field"), [({"k": 0}, "k"), ({"k": 10_000}, "k")])
def test_bad_input_names_the_field(engine, kwargs, field):
    with pytest.raises(InvalidRequest) as err:
        engine.suggest("drill", **kwargs)
    assert err.value.field == field
    with pytest.raises(InvalidRequest) as err:
        engine.suggest("x" * 201)
    assert err.value.field == "q"


@pytest.mark.parametrize("text", ["", "   ", "电钻", "Ünïcödé", "x" * 200, "\t\n", "🙂 drill"])
def test_odd_input_never_crashes(engine, text):
    assert isinstance(engine.suggest(text), list)


def test_shoppers_flagged_as_bots_stop_vouching_for_a_query(engine):
    engine.ingest_events(_search_rows("miracle pills cheap", ["b1", "b2", "b3", "b4"]))
    assert [s.text for s in engine.suggest("miracle")] == ["miracle pills cheap"]
    engine.stores.events.flag_users(["b1", "b2"], "test: bot farm")  # e.g. by another process's import
    assert engine.sync_with_stores() is not None
    assert engine.suggest("miracle") == []  # two of four left: below the three-shopper rule
    # searches a flagged shopper sends later are not counted either
    engine.ingest_events(_search_rows("miracle pills cheap", ["b1", "b2"]))
    assert engine.suggest("miracle") == []
