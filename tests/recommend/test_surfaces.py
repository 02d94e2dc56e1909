"""Surfaces: fallbacks, exclusions, filters, MMR, reasons."""

from __future__ import annotations

import numpy as np
import pytest

from shoploop.recommend.item_knn import ItemKNN, ItemKNNConfig
from shoploop.recommend.popularity import TrendingPopularity
from shoploop.recommend.surfaces import Filters, ItemMeta, SurfaceConfig, Surfaces, mmr


@pytest.fixture(scope="module")
def surfaces(chain_data: dict) -> Surfaces:
    n = chain_data["n_items"]
    train = chain_data["train"]
    knn = ItemKNN(ItemKNNConfig(window=3)).fit(train, n)
    baskets = [[i, i + 20] for i in range(1, 21)] * 3  # item i is bought with i+20
    bought = ItemKNN(ItemKNNConfig(window=5, backward_weight=1.0)).fit(baskets, n)
    trending = TrendingPopularity().fit(train, n)
    meta = ItemMeta(
        title=["", *[f"Widget {i}" for i in range(1, n + 1)]],
        category=np.array(["", *["odd" if i % 2 else "even" for i in range(1, n + 1)]]),
        brand=np.array(["", *["acme" if i <= 20 else "bolt" for i in range(1, n + 1)]]),
        in_stock=np.array([False, *[i % 5 != 0 for i in range(1, n + 1)]]),
        price=np.array([np.nan, *[float(i) for i in range(1, n + 1)]]),
    )
    return Surfaces(
        meta=meta,
        trending_scores=trending.scores_,
        model=knn,
        cooccurrence=knn,
        bought_together_model=bought,
        text_emb=chain_data["emb"],
    )


def test_home_feed_follows_history_and_explains(surfaces: Surfaces) -> None:
    recs = surfaces.home_feed([5, 6, 7], 5)
    assert recs[0].item == 8
    assert recs[0].reason.startswith("because you viewed Widget ")
    assert not {r.item for r in recs} & {5, 6, 7}


def test_home_feed_falls_back_to_trending_for_unknown_users(surfaces: Surfaces) -> None:
    for history in ([], [0, 999]):
        recs = surfaces.home_feed(history, 5)
        assert len(recs) == 5
        assert all(r.reason.startswith("trending in ") for r in recs)
    top = int(np.argmax(surfaces.trending_scores))
    assert surfaces.home_feed([], 1)[0].item == top


def test_exclusions_and_filters(surfaces: Surfaces) -> None:
    recs = surfaces.home_feed(
        [5, 6, 7],
        10,
        purchased=[8],
        disliked=[9],
        filters=Filters(categories=frozenset({"even"}), in_stock_only=True, max_price=30.0),
    )
    items = [r.item for r in recs]
    assert items
    assert not set(items) & {5, 6, 7, 8, 9}
    assert all(i % 2 == 0 and i % 5 != 0 and i <= 30 for i in items)
    brand = surfaces.trending(5, filters=Filters(brands=frozenset({"bolt"})))
    assert all(r.item > 20 for r in brand)


def test_similar_items_blend_and_reason(surfaces: Surfaces) -> None:
    recs = surfaces.similar_items(10, 4)
    assert {9, 11} & {r.item for r in recs}
    assert 10 not in {r.item for r in recs}
    assert all(r.reason in {"often viewed with Widget 10", "similar to Widget 10"} for r in recs)
    assert surfaces.similar_items(999, 4) == []


def test_bought_together(surfaces: Surfaces) -> None:
    recs = surfaces.bought_together(3, 3)
    assert recs[0].item == 23
    assert recs[0].reason == "often bought with Widget 3"
    assert surfaces.bought_together(0, 3) == []


def test_mmr_trades_relevance_for_diversity() -> None:
    # items 1 and 2 are near-duplicates; 3 is different but slightly less relevant
    emb = np.array([[1.0, 0.0], [0.99, 0.141], [0.0, 1.0]], dtype=np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    rel = np.array([1.0, 0.95, 0.9])
    ids = np.array([1, 2, 3])
    assert mmr(rel, emb, 2, 1.0, ids=ids).tolist() == [1, 2]
    assert mmr(rel, emb, 2, 0.5, ids=ids).tolist() == [1, 3]


def test_mmr_option_on_the_feed(surfaces: Surfaces) -> None:
    plain = [r.item for r in surfaces.home_feed([5, 6, 7], 6)]
    diverse = [r.item for r in surfaces.home_feed([5, 6, 7], 6, mmr_lambda=0.3)]
    assert plain[0] == diverse[0]  # the most relevant item is always picked first
    assert len(diverse) == 6
    assert SurfaceConfig().mmr_lambda is None
