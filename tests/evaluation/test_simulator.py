"""The shopper simulator against a fake engine that satisfies its Protocol."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shoploop.evaluation.simulator import (
    BrowsingShopperConfig,
    BrowsingShoppers,
    CategoryShopperConfig,
    CategoryShoppers,
    SearchShopperConfig,
    SearchShoppers,
    SimulatedClock,
    arrival_schedule,
    item_appeal,
    text_neighbourhoods,
)


@dataclass
class Item:
    item_id: str
    position: int


@dataclass
class Served:
    request_id: str
    items: list[Item]


@dataclass
class FakeEngine:
    ranking: list[str]
    received: list[dict] = field(default_factory=list)
    calls: int = 0

    def _serve(self, k):
        self.calls += 1
        return Served(f"r{self.calls}", [Item(i, p) for p, i in enumerate(self.ranking[:k], 1)])

    def search(self, query, *, user_id=None, k=None):
        return self._serve(k or 10)

    def recommend(self, user_id, *, k=None):
        return self._serve(k or 10)

    def browse(self, category, *, user_id=None, k=None):
        return self._serve(k or 24)

    def ingest_events(self, rows):
        self.received.extend(rows)
        return rows


JUDGED = {"drill": {"a": 3.0, "b": 2.0, "c": 1.0, "z": 3.0}}


def test_ndcg_uses_every_judgment_as_the_ideal():
    sim = SearchShoppers(JUDGED)
    # gains (grade - 1): a=2, b=1, x(unjudged)=0; ideal = [2, 2, 1, 0]
    got = sim.ndcg("drill", ["a", "b", "x"])
    d = 1 / np.log2(np.arange(2, 6))
    assert got == pytest.approx((2 * d[0] + 1 * d[1]) / (2 * d[0] + 2 * d[1] + 1 * d[2]))
    assert sim.ndcg("drill", ["a", "z", "b"]) == pytest.approx(1.0)
    assert sim.oracle("drill", ["x", "b", "a", "c"]) == ["a", "b", "x", "c"]


def test_examination_follows_the_power_law_and_clicks_rise_with_grade():
    sim = SearchShoppers(JUDGED, SearchShopperConfig(eta=1.0, noise=0.0, click_max=1.0, buy_max=0.0))
    rng = np.random.default_rng(0)
    items = ["a"] * 10  # every slot holds a grade-3 item: click = examined
    clicks = np.array([sim.react("drill", items, rng)[1] for _ in range(20_000)])
    np.testing.assert_allclose(clicks.mean(axis=0), 1 / np.arange(1, 11), atol=0.015)
    sim2 = SearchShoppers(JUDGED, SearchShopperConfig(eta=0.0, noise=0.02, click_max=0.7))
    rates = np.array([sim2.react("drill", ["a", "b", "c"], rng)[1] for _ in range(20_000)]).mean(axis=0)
    assert rates[0] > rates[1] > rates[2]
    assert rates[2] == pytest.approx(0.02, abs=0.005)


def test_patience_stops_examination():
    sim = SearchShoppers(JUDGED, SearchShopperConfig(eta=0.0, patience=2, noise=1.0))
    _, clicks, _ = sim.react("drill", ["c"] * 5, np.random.default_rng(1))
    assert clicks.tolist() == [1, 1, 0, 0, 0]


def test_search_sends_clicks_and_purchases_with_the_request_id():
    engine = FakeEngine(["a", "b", "c"])
    cfg = SearchShopperConfig(eta=0.0, noise=0.0, click_max=1.0, buy_max=1.0)
    out = SearchShoppers(JUDGED, cfg).search(engine, "drill", "u1", np.random.default_rng(0))
    assert out.clicks.tolist() == [1, 1, 0]  # grade 1 never clicked without noise
    assert out.purchases.tolist()[0] == 1
    assert {r["request_id"] for r in engine.received} == {out.request_id}
    types = [r["type"] for r in engine.received]
    assert types.count("click") == 2 and "purchase" in types and "add_to_cart" in types
    quiet = FakeEngine(["a"])
    SearchShoppers(JUDGED, cfg).search(quiet, "drill", "u1", np.random.default_rng(0), feedback=False)
    assert quiet.received == []


def test_same_generator_seed_same_shopper():
    sim = SearchShoppers(JUDGED)
    a = sim.react("drill", ["a", "b"], np.random.default_rng(5))
    b = sim.react("drill", ["a", "b"], np.random.default_rng(5))
    assert all((x == y).all() for x, y in zip(a, b, strict=True))


def test_browsing_shopper_clicks_and_consumes_what_they_want_next():
    engine = FakeEngine(["x", "want1", "y", "want2"])
    sim = BrowsingShoppers(
        {"u": ["want1", "want2"]}, BrowsingShopperConfig(eta=0.0, target_click=1.0, noise=0.0)
    )
    out = sim.visit(engine, "u", np.random.default_rng(0))
    assert out.target_clicks == 2 and out.clicks.tolist() == [0, 1, 0, 1]
    assert sim.remaining("u") == []
    assert [r["item_id"] for r in engine.received] == ["want1", "want2"]
    again = sim.visit(engine, "u", np.random.default_rng(0))
    assert again.target_clicks == 0  # consumed: a frozen feed gets no more wanted clicks
    frozen = FakeEngine(["want1"])
    BrowsingShoppers({"v": ["want1"]}, BrowsingShopperConfig(eta=0.0, target_click=1.0)).visit(
        frozen, "v", np.random.default_rng(0), feedback=False
    )
    assert frozen.received == []


def test_interest_items_are_clicked_once_each_and_the_interest_lasts():
    engine = FakeEngine(["like1", "x", "like2"])
    cfg = BrowsingShopperConfig(eta=0.0, target_click=1.0, interest_click=1.0, noise=0.0)
    sim = BrowsingShoppers({"u": ["want"]}, cfg, {"u": frozenset({"like1", "like2", "like3"})})
    out = sim.visit(engine, "u", np.random.default_rng(0))
    assert out.clicks.tolist() == [1, 0, 1] and out.interest_clicks == 2 and out.target_clicks == 0
    assert sim.visit(engine, "u", np.random.default_rng(0)).clicks.sum() == 0  # both consumed
    fresh = sim.visit(FakeEngine(["like3", "want"]), "u", np.random.default_rng(0))
    assert fresh.clicks.tolist() == [1, 1]  # the interest itself is not used up
    assert (fresh.interest_clicks, fresh.target_clicks) == (1, 1)


def test_an_unknown_shopper_has_no_interests_only_noise():
    cfg = BrowsingShopperConfig(eta=0.0, interest_click=1.0, noise=0.0)
    out = BrowsingShoppers({}, cfg).visit(FakeEngine(["a", "b"]), "nobody", np.random.default_rng(0))
    assert out.clicks.sum() == 0


def test_text_neighbourhoods_pick_the_most_similar_other_items():
    texts = {
        "drill1": "cordless drill 18v battery",
        "drill2": "cordless drill 12v battery",
        "drill3": "hammer drill corded",
        "paint": "white wall paint gallon",
        "brush": "paint brush wide",
    }
    near = text_neighbourhoods(texts, {"u": ["drill1"], "v": ["paint"], "w": ["nope"]}, size=1)
    assert near["u"] == {"drill2"}  # the closest other item, never the seed itself
    assert near["v"] == {"brush"}
    assert near["w"] == frozenset()  # an unknown seed item contributes nothing
    # drill3 shares only "drill" (a common word): below the default similarity floor
    assert text_neighbourhoods(texts, {"u": ["drill1"]}, size=2)["u"] == {"drill2"}
    two = text_neighbourhoods(texts, {"u": ["drill1"]}, size=2, min_similarity=0.05)["u"]
    assert two == {"drill2", "drill3"}
    with pytest.raises(ValueError, match="min_similarity"):
        text_neighbourhoods(texts, {"u": ["drill1"]}, size=2, min_similarity=-1.0)


@settings(max_examples=40, deadline=None)
@given(
    n_users=st.integers(1, 60),
    n_visits=st.integers(0, 400),
    active=st.integers(1, 80),
    seed=st.integers(0, 2**16),
)
def test_arrival_schedule_shape(n_users, n_visits, active, seed):
    users = [f"u{i}" for i in range(n_users)]
    out = arrival_schedule(users, n_visits, np.random.default_rng(seed), active=active)
    assert len(out) == n_visits and set(out) <= set(users)
    # the same generator seed gives the same shoppers in the same order (arms replay it)
    assert arrival_schedule(users, n_visits, np.random.default_rng(seed), active=active) == out


def test_arrival_schedule_bunches_each_shoppers_visits_and_uses_the_population():
    users = [f"u{i}" for i in range(2000)]
    out = arrival_schedule(users, 20_000, np.random.default_rng(3), active=100)
    counts = Counter(out)
    assert len(counts) > 1500  # most of the population turns up
    assert 8 < np.mean(list(counts.values())) < 13  # about n_visits / users visits each
    first = {u: out.index(u) for u in counts}
    last = {u: len(out) - 1 - out[::-1].index(u) for u in counts}
    spans = np.array([last[u] - first[u] for u in counts])
    assert np.median(spans) < 20_000 / 5  # a shopper's visits fall in a stretch of the run


def test_arrival_schedule_needs_shoppers():
    with pytest.raises(ValueError, match="users"):
        arrival_schedule([], 10, np.random.default_rng(0))


def test_simulated_clock_is_strictly_increasing_and_reproducible():
    start = datetime(2026, 3, 1, tzinfo=UTC)
    a, b = SimulatedClock(start, timedelta(seconds=2)), SimulatedClock(start, timedelta(seconds=2))
    ticks = [a() for _ in range(3)]
    assert ticks == [start, start + timedelta(seconds=2), start + timedelta(seconds=4)]
    assert [b() for _ in range(3)] == ticks
    with pytest.raises(ValueError, match="start"):
        SimulatedClock(datetime(2026, 3, 1))
    with pytest.raises(ValueError, match="step"):
        SimulatedClock(start, timedelta(0))


def test_shoppers_stamp_events_with_the_clock_they_are_given():
    clock = SimulatedClock(datetime(2026, 3, 1, tzinfo=UTC), timedelta(seconds=1))
    cfg = SearchShopperConfig(eta=0.0, noise=0.0, click_max=1.0, buy_max=0.0)
    engine = FakeEngine(["a", "b"])
    SearchShoppers(JUDGED, cfg, clock=clock).search(engine, "drill", "u1", np.random.default_rng(0))
    wants_a = BrowsingShopperConfig(eta=0.0, target_click=1.0, noise=0.0)
    browse = BrowsingShoppers({"u": ["a"]}, wants_a, clock=clock)
    browse.visit(engine, "u", np.random.default_rng(0))
    stamps = [r["timestamp"] for r in engine.received]
    # one reading per reaction: both search clicks share the first, the browse click the second
    assert stamps == ["2026-03-01T00:00:00+00:00"] * 2 + ["2026-03-01T00:00:01+00:00"]


def test_category_shoppers_click_their_favourite_brands_with_the_page_request_id():
    brands = {"a": "Acme", "b": "Bolt", "c": "Acme", "d": "Crux"}
    always = CategoryShopperConfig(eta=0.0, favourite_click=1.0, other_click=0.0, k=4)
    shoppers = CategoryShoppers({"u": frozenset({"Acme"})}, brands, config=always)
    engine = FakeEngine(["a", "b", "c", "d"])
    visit = shoppers.visit(engine, "u", "Tools", np.random.default_rng(0))
    assert visit.clicks.tolist() == [1, 0, 1, 0] and visit.favourite_shown == 2
    assert [(r["item_id"], r["position"], r["request_id"]) for r in engine.received] == [
        ("a", 1, "r1"),
        ("c", 3, "r1"),
    ]
    stranger = shoppers.visit(engine, "nobody", "Tools", np.random.default_rng(0))
    assert stranger.clicks.sum() == 0 and stranger.favourite_shown == 0


def test_product_appeal_is_fixed_per_product_with_mean_one():
    assert item_appeal("SKU-1", 0.0) == 1.0
    assert item_appeal("SKU-1", 1.0) == item_appeal("SKU-1", 1.0) != item_appeal("SKU-2", 1.0)
    factors = np.array([item_appeal(f"SKU-{n}", 1.0) for n in range(20_000)])
    assert factors.mean() == pytest.approx(1.0, abs=0.05)  # E[exp(sigma z - sigma^2 / 2)] = 1
    assert np.log(factors).std() == pytest.approx(1.0, abs=0.03)


def test_appealing_products_are_clicked_more_by_everyone():
    brands = {"dull": "Acme", "bright": "Acme"}
    dull, bright = sorted(brands, key=lambda i: item_appeal(i, 1.0))
    config = CategoryShopperConfig(eta=0.0, favourite_click=0.1, other_click=0.1, k=2, appeal_sigma=1.0)
    shoppers = CategoryShoppers({}, brands, config=config)
    engine = FakeEngine([dull, bright])
    rng = np.random.default_rng(3)
    clicks = sum(shoppers.visit(engine, "u", "Tools", rng).clicks for _ in range(4000)) / 4000
    assert clicks == pytest.approx(
        [0.1 * item_appeal(dull, 1.0), min(1.0, 0.1 * item_appeal(bright, 1.0))], abs=0.02
    )


def test_category_shoppers_scan_a_page_from_the_top():
    brands = {f"i{n}": "Acme" for n in range(24)}
    shoppers = CategoryShoppers(
        {"u": frozenset({"Acme"})}, brands, config=CategoryShopperConfig(favourite_click=1.0)
    )
    engine = FakeEngine([f"i{n}" for n in range(24)])
    rng = np.random.default_rng(1)
    clicks = sum(shoppers.visit(engine, "u", "Tools", rng).clicks for _ in range(2000))
    expected = np.arange(1, 25) ** -0.7  # examination 1/r^0.7, every examined item clicked
    assert np.allclose(clicks / 2000, expected, atol=0.04)
