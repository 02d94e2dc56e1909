"""Category pages: the featured order's arithmetic by hand, and `Engine.browse` end to end."""

from __future__ import annotations

import math
from datetime import timedelta

import numpy as np
import pytest

from shoploop.domain import ClickEvent, ImpressionEvent, Product
from shoploop.engine import InvalidRequest, NotFound
from shoploop.engine.browse import (
    affinity_scores,
    best_first,
    featured_scores,
    popularity_scale,
    price_first,
    standardise,
)
from shoploop.feedback.training_data import join_logs
from shoploop.store.memory import utcnow
from tests.engine.conftest import make_engine


def test_popularity_is_log_scaled_to_the_category_top():
    got = popularity_scale(np.array([0.0, math.e - 1, math.e**2 - 1]))
    assert np.allclose(got, [0.0, 0.5, 1.0])
    assert np.array_equal(popularity_scale(np.zeros(3)), np.zeros(3))


def test_model_scores_are_standardised_over_the_items_it_knows():
    got = standardise(np.array([1.0, 3.0, -np.inf, 5.0]))
    # mean 3, population std sqrt(8/3)
    assert np.allclose(got, [-2 / math.sqrt(8 / 3), 0.0, 0.0, 2 / math.sqrt(8 / 3)])
    assert np.array_equal(standardise(np.array([2.0, 2.0])), np.zeros(2))


def test_affinity_is_half_brand_half_leaf_category_minus_dislikes():
    got = affinity_scores(
        ["Acme", "Bolt", None],
        ["Drills", "Saws", "Drills"],
        {"Acme": 2.0},
        {"Drills": 1.0},
        [False, True, False],
    )
    assert np.allclose(got, [0.5 * math.tanh(1.0) + 0.5 * math.tanh(0.5), -1.0, 0.5 * math.tanh(0.5)])


def test_featured_scores_add_up_and_put_out_of_stock_last():
    pop = np.array([0.0, math.e - 1, math.e**2 - 1])
    model = np.array([3.0, 1.0, 2.0])  # z = [1.2247, -1.2247, 0]
    got = featured_scores(
        pop, np.array([True, True, False]), model_z=standardise(model), model_weight=0.5, affinity=np.zeros(3)
    )
    z = 1.5 / math.sqrt(1.5)
    assert np.allclose(got, [0.5 * z, 0.5 - 0.5 * z, 1.0 - 10.0])
    assert list(best_first(got, 3)) == [0, 1, 2]


def test_best_first_keeps_catalog_order_on_ties_and_price_puts_unpriced_last():
    assert list(best_first(np.array([1.0, 2.0, 2.0, 0.5]), 3)) == [1, 2, 0]
    prices = np.array([5.0, np.nan, 1.0, 5.0])
    assert list(price_first(prices, "price_asc", 4)) == [2, 0, 3, 1]
    assert list(price_first(prices, "price_desc", 3)) == [0, 3, 2]


JACKETS = "Clothing > Jackets"


@pytest.fixture(scope="module")
def engine():
    return make_engine(n_products=300)[0]


def test_a_category_page_lists_the_category_with_facets_and_is_logged(engine):
    page = engine.browse(JACKETS, k=5, user_id="browser-1")
    in_category = [p for p in engine.products.values() if p.category_path[:2] == ("Clothing", "Jackets")]
    assert page.surface == "browse" and page.category == JACKETS
    assert page.total_candidates == len(in_category) and len(page.items) == 5
    assert all(engine.products[i.item_id].category == "Jackets" for i in page.items)
    assert sum(page.facets["brand"].values()) == len(in_category)
    logged = engine.stores.events.get_impression(page.request_id)
    assert isinstance(logged, ImpressionEvent) and logged.surface == "browse"
    assert logged.context["category"] == JACKETS and logged.user_id == "browser-1"
    assert join_logs([logged]) == [], "learning to rank trains on search lists only"
    second = engine.browse("clothing > JACKETS ", k=5, page=2)
    assert not {i.item_id for i in second.items} & {i.item_id for i in page.items}


def test_featured_order_follows_popularity_and_the_shoppers_taste(engine):
    page = engine.browse(JACKETS, k=50)
    stock = [engine.products[i.item_id].in_stock for i in page.items]
    assert stock == sorted(stock, reverse=True), "in stock first"
    popular = [i.explanation["popularity"] for i in page.items if engine.products[i.item_id].in_stock]
    assert popular[0] == max(popular)
    # a shopper who clicks one brand's jackets sees that brand's jackets higher
    first_seen: dict[str, int] = {}
    for rank, item in enumerate(page.items):
        first_seen.setdefault(engine.products[item.item_id].brand, rank)
    brand = max(
        (b for b in first_seen if engine.products[page.items[first_seen[b]].item_id].in_stock),
        key=first_seen.get,
    )
    mine = [i.item_id for i in page.items if engine.products[i.item_id].brand == brand]
    now = utcnow()
    engine.ingest_events(
        [
            ClickEvent(
                user_id="fan-1", item_id=mine[-1], timestamp=now - timedelta(minutes=n), event_id=f"fan-{n}"
            )
            for n in range(3)
        ]
    )
    theirs = engine.browse(JACKETS, k=50, user_id="fan-1")
    rank = lambda served: [i.item_id for i in served.items].index(mine[0])  # noqa: E731
    assert rank(theirs) < rank(page), f"{brand}'s best jacket rose for the shopper who likes {brand}"
    assert standardise(np.array([1e-6, 2e-6, 3e-6])).tolist() == [0.0, 0.0, 0.0], "tie-breaking is no taste"


def test_category_pages_sort_by_price_and_filter_brands(engine):
    asc = engine.browse(JACKETS, k=50, sort="price_asc")
    prices = [i.price for i in asc.items]
    assert prices == sorted(prices) and asc.policy == "sorted:price_asc"
    two = engine.browse(JACKETS, k=50, filters={"brand": ["Northpine", "Stormline"]})
    assert {engine.products[i.item_id].brand for i in two.items} == {"Northpine", "Stormline"}
    assert len(two.facets["brand"]) > 2, "the other brands keep their counts"


def test_bad_category_pages_are_clear_errors(engine):
    with pytest.raises(NotFound):
        engine.browse("Spaceships")
    for bad in ("", "  ", " > ", "Clothing >  > Jackets"):
        with pytest.raises(InvalidRequest) as err:
            engine.browse(bad)
        assert err.value.field == "category"
    with pytest.raises(InvalidRequest) as err:
        engine.browse(JACKETS, filters={"category": "Tools"})
    assert err.value.field == "filters"
    with pytest.raises(InvalidRequest) as err:
        engine.browse(JACKETS, sort="newest")
    assert err.value.field == "sort"


def test_a_category_page_follows_catalog_changes():
    engine = make_engine(n_products=120)[0]
    path = next(iter(engine.products.values())).category_path
    category = " > ".join(path)
    before = engine.browse(category, k=100)
    assert engine.browse(category, k=100).total_candidates == before.total_candidates  # cached listing
    engine.upsert_products([Product(item_id="NEW-1", title="Brand new thing", category_path=path, price=0.5)])
    after = engine.browse(category, k=100, sort="price_asc")
    assert after.total_candidates == before.total_candidates + 1 and after.items[0].item_id == "NEW-1"
    engine.delete_products(["NEW-1"])
    gone = engine.browse(category, k=100)
    assert gone.total_candidates == before.total_candidates
    assert "NEW-1" not in {i.item_id for i in gone.items}
