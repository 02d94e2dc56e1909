"""Demo store generator: determinism and the realism the rest of the system relies on."""

from __future__ import annotations

import json
import re
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from shoploop.data.demo import RETIRED_PREFIX, DemoConfig, generate_demo_store, make_typo
from shoploop.domain import (
    EVENT_TYPES,
    AddToCartEvent,
    ClickEvent,
    DislikeEvent,
    ImpressionEvent,
    Product,
    PurchaseEvent,
    RatingEvent,
    SearchEvent,
    event_item_ids,
    event_to_dict,
    parse_event,
)

SMALL = DemoConfig(seed=3, n_products=300, n_categories=8, n_users=60, n_bots=2, days=10)


@pytest.fixture(scope="module")
def bundle():
    return generate_demo_store(SMALL)


def test_same_seed_gives_identical_records(bundle):
    again = generate_demo_store(SMALL)
    assert [p.model_dump() for p in again.products] == [p.model_dump() for p in bundle.products]
    assert [event_to_dict(e) for e in again.events] == [event_to_dict(e) for e in bundle.events]


def test_different_seed_gives_different_records(bundle):
    other = generate_demo_store(DemoConfig(**{**SMALL.__dict__, "seed": 4}))
    assert [p.title for p in other.products] != [p.title for p in bundle.products]
    assert {e.event_id for e in other.events}.isdisjoint({e.event_id for e in bundle.events})


def test_event_ids_are_unique(bundle):
    ids = [e.event_id for e in bundle.events]
    assert len(ids) == len(set(ids))


def test_timestamps_inside_window_and_sorted(bundle):
    stamps = [e.timestamp for e in bundle.events]
    assert stamps == sorted(stamps)
    assert SMALL.start <= stamps[0] and stamps[-1] < SMALL.end
    assert all(ts.tzinfo is not None for ts in stamps)


def test_events_reference_catalog_except_retired_skus(bundle):
    catalog = {p.item_id for p in bundle.products}
    unknown = {i for e in bundle.events for i in event_item_ids(e) if i not in catalog}
    assert unknown and all(i.startswith(RETIRED_PREFIX) for i in unknown)
    assert unknown <= set(bundle.notes["retired_skus"])


def test_clicks_point_at_a_served_position(bundle):
    served = {e.request_id: e for e in bundle.events if isinstance(e, ImpressionEvent)}
    clicks = [e for e in bundle.events if isinstance(e, ClickEvent)]
    assert clicks
    for click in clicks:
        impression = served[click.request_id]
        slot = {it.position: it.item_id for it in impression.items}
        assert slot[click.position] == click.item_id
        assert impression.timestamp <= click.timestamp
        assert impression.user_id == click.user_id


def test_impressions_are_logged_like_the_engine_would(bundle):
    impressions = [e for e in bundle.events if isinstance(e, ImpressionEvent)]
    assert {e.surface for e in impressions} == {"search", "home"}
    for imp in impressions:
        assert [it.position for it in imp.items] == list(range(1, len(imp.items) + 1))
        assert all(it.propensity == 1.0 for it in imp.items)
        assert imp.policy == "demo-static"
    searches = {e.request_id: e for e in bundle.events if isinstance(e, SearchEvent)}
    for imp in impressions:
        if imp.surface == "search":
            assert searches[imp.request_id].query == imp.query


def test_money_and_ratings_are_sane(bundle):
    prices = {p.item_id: p.price for p in bundle.products}
    purchases = [e for e in bundle.events if isinstance(e, PurchaseEvent)]
    assert purchases
    for purchase in purchases:
        for line in purchase.items:
            assert line.price > 0 and line.price == prices[line.item_id] and line.quantity >= 1
    carts = [e for e in bundle.events if isinstance(e, AddToCartEvent)]
    stock = {p.item_id: p.in_stock for p in bundle.products}
    assert carts and all(stock[c.item_id] for c in carts)  # nothing out of stock goes in a cart
    ratings = [e.rating for e in bundle.events if isinstance(e, RatingEvent)]
    assert ratings and set(ratings) <= {1, 2, 3, 4, 5}
    assert any(isinstance(e, DislikeEvent) for e in bundle.events)


def test_bots_click_far_more_than_shoppers(bundle):
    clicks = Counter(e.user_id for e in bundle.events if isinstance(e, ClickEvent))
    shown = Counter()
    for e in bundle.events:
        if isinstance(e, ImpressionEvent):
            shown[e.user_id] += len(e.items)
    bots = set(bundle.notes["bot_users"])
    assert len(bots) == SMALL.n_bots
    bot_rate = np.mean([clicks[u] / shown[u] for u in bots])
    human_rate = sum(clicks[u] for u in shown if u not in bots) / sum(
        shown[u] for u in shown if u not in bots
    )
    assert bot_rate > 0.8 > 0.2 > human_rate


def test_catalog_looks_like_a_shop(bundle):
    products = bundle.products
    assert len(products) == SMALL.n_products
    assert len({p.category_path for p in products}) == SMALL.n_categories
    assert all(len(p.category_path) == 2 and p.brand and p.price and p.description for p in products)
    assert all({"colour", "material", "size"} <= set(p.attributes) for p in products)
    out_of_stock = sum(not p.in_stock for p in products) / len(products)
    assert 0.0 < out_of_stock < 0.15
    # Per category, prices spread out (log-normal), not a constant.
    by_cat: dict[tuple[str, ...], list[float]] = {}
    for p in products:
        by_cat.setdefault(p.category_path, []).append(p.price)
    assert all(max(v) > 1.5 * min(v) for v in by_cat.values() if len(v) > 10)


def test_queries_include_some_typos():
    big = generate_demo_store(DemoConfig(seed=5, n_products=400, n_categories=20, n_users=150, n_bots=0))
    vocab = set()
    for p in big.products:
        vocab.update(w.lower().strip(",") for w in p.title.split())
        vocab.update(" ".join(p.category_path).lower().split())
        vocab.update(str(v).lower() for v in p.attributes.values())
    vocab.update({"cheap", "best", "small", "large", "new", "sale", "gift"})
    queries = [e.query for e in big.events if isinstance(e, SearchEvent)]
    odd = [q for q in queries if any(w not in vocab and not any(w in v for v in vocab) for w in q.split())]
    assert 0.01 < len(odd) / len(queries) < 0.12


def test_default_size_and_end_are_fixed():
    config = DemoConfig()
    assert config.end == datetime(2026, 11, 1, tzinfo=UTC)
    assert (config.n_products, config.n_users, config.days) == (3000, 600, 30)


@pytest.mark.slow
def test_default_store_volume():
    full = generate_demo_store()
    assert 30_000 <= len(full.events) <= 80_000
    assert len(full.products) == 3000


def test_config_validation():
    with pytest.raises(ValueError, match="n_categories"):
        DemoConfig(n_categories=99)
    with pytest.raises(ValueError, match="timezone"):
        DemoConfig(end=datetime(2026, 1, 1))


@given(st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=4, max_size=12), st.integers(0, 2**31))
def test_make_typo_is_one_small_edit(word, seed):
    typo = make_typo(word, np.random.default_rng(seed))
    assert abs(len(typo) - len(word)) <= 1
    assert typo[0] == word[0]


# ---------------------------------------------------------------- docs/events.md stays true

EVENTS_DOC = Path(__file__).resolve().parents[2] / "docs" / "events.md"


def _doc_examples() -> list[dict]:
    text = EVENTS_DOC.read_text(encoding="utf-8")
    blocks = re.findall(r"```json\n(.*?)```", text, flags=re.DOTALL)
    return [json.loads(block) for block in blocks]


def test_events_doc_examples_validate():
    examples = _doc_examples()
    events = [parse_event(ex) for ex in examples if "type" in ex]
    products = [Product.model_validate(ex) for ex in examples if "type" not in ex]
    # one example per event type, and at least one product
    assert sorted(e.type for e in events) == sorted(EVENT_TYPES)
    assert products and products[0].category_path == ("Tools", "Power Tools")
    # the examples tell one consistent story: the click points at a served slot
    impression = next(e for e in events if isinstance(e, ImpressionEvent))
    click = next(e for e in events if isinstance(e, ClickEvent))
    slots = {it.position: it.item_id for it in impression.items}
    assert click.request_id == impression.request_id and slots[click.position] == click.item_id


def test_events_doc_cleaning_numbers_match_the_defaults():
    from shoploop.data.cleaning import CleaningConfig

    config = CleaningConfig()
    text = " ".join(EVENTS_DOC.read_text(encoding="utf-8").split())
    assert f"over {config.bot_max_events_per_minute} events" in text
    assert f"over {config.bot_max_distinct_items_per_minute} distinct items" in text
    assert f"within {config.duplicate_click_window:g} s" in text
    assert f"more than {config.max_age.days // 365} years old" in text
