"""Search sorted by price: the most relevant matches in price order, kept as the shopper asked."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest

from shoploop.domain import ImpressionEvent
from shoploop.engine import InvalidRequest
from shoploop.feedback.exploration import ExplorationConfig
from shoploop.feedback.training_data import join_logs
from shoploop.ranking.rules import ItemMatch, Rule
from tests.engine.conftest import FAST, make_engine


@pytest.fixture(scope="module")
def engine():
    # every relevance-ordered list explores, so a sorted list that did not is the sort's doing
    return make_engine(replace(FAST, exploration=ExplorationConfig(budget=1.0)), n_products=300)[0]


def prices(served) -> list[float]:
    return [math.inf if i.price is None else i.price for i in served.items]


def test_price_ascending_and_descending_order_the_same_relevant_pool(engine):
    asc = engine.search("jacket", k=20, sort="price_asc")
    desc = engine.search("jacket", k=20, sort="price_desc")
    relevance = engine.search("jacket", k=100)
    assert len(asc.items) == min(20, asc.total_candidates) > 5
    assert prices(asc) == sorted(prices(asc))
    assert prices(desc) == sorted(prices(desc), reverse=True)
    assert asc.sort == "price_asc" and relevance.sort is None
    pool = {i.item_id for i in relevance.items}
    assert {i.item_id for i in asc.items} <= pool, "only relevant matches are sorted"
    assert asc.items[0].price == min(engine.products[i].price for i in pool if engine.products[i].price)
    assert all(i.explanation.get("sorted_by") == "price_asc" for i in asc.items)


def test_a_sorted_list_is_not_explored_and_is_logged_as_the_shoppers_order(engine):
    assert engine.search("jacket", k=10).explored
    served = engine.search("jacket", k=10, sort="price_desc", user_id="u-sort")
    assert served.policy == "sorted:price_desc" and not served.explored
    assert all(i.propensity == 1.0 for i in served.items)
    logged = engine.stores.events.get_impression(served.request_id)
    assert isinstance(logged, ImpressionEvent) and logged.context["sort"] == "price_desc"
    assert logged.policy == "sorted:price_desc"
    lists = join_logs([logged])
    assert lists == [], "learning to rank leaves the shopper's own order out"


def test_hides_and_pins_apply_to_a_sorted_list_but_boosts_do_not_reorder_it(engine):
    plain = engine.search("jacket", k=10, sort="price_asc")
    last = plain.items[-1]
    cheapest = plain.items[0]
    brand = engine.products[last.item_id].brand
    boost = Rule(
        rule_id="t-boost", name="boost", kind="boost", match=ItemMatch(item_ids=(last.item_id,)), strength=1.0
    )
    hide = Rule(rule_id="t-hide", name="hide", kind="hide", match=ItemMatch(item_ids=(cheapest.item_id,)))
    pin = Rule(rule_id="t-pin", name="pin", kind="pin", item_id=last.item_id, position=1)
    try:
        engine.rules.put(boost)
        boosted = engine.search("jacket", k=10, sort="price_asc")
        assert prices(boosted) == sorted(prices(boosted)), f"a boost of {brand} left the order alone"
        engine.rules.put(hide)
        hidden = engine.search("jacket", k=10, sort="price_asc")
        assert cheapest.item_id not in {i.item_id for i in hidden.items}
        engine.rules.put(pin)
        pinned = engine.search("jacket", k=10, sort="price_asc")
        assert pinned.items[0].item_id == last.item_id
    finally:
        for rule_id in ("t-boost", "t-hide", "t-pin"):
            engine.rules.delete(rule_id)


def test_an_unknown_order_is_refused_naming_the_field(engine):
    with pytest.raises(InvalidRequest) as err:
        engine.search("jacket", sort="cheapest")
    assert err.value.field == "sort"


def test_several_brands_match_any_of_them(engine):
    wanted = ["Northpine", " stormline "]  # case and spaces as a shopper's form might send them
    both = engine.search("jacket", k=50, filters={"brand": wanted})
    assert {engine.products[i.item_id].brand for i in both.items} == {"Northpine", "Stormline"}
    one = engine.search("jacket", k=50, filters={"brand": ["Northpine"]})
    assert {engine.products[i.item_id].brand for i in one.items} == {"Northpine"}
    assert len(both.items) > len(one.items)
    home = engine.trending(k=50, filters={"brand": wanted})
    assert {engine.products[i.item_id].brand for i in home.items} <= {"Northpine", "Stormline"}
