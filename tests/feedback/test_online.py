from datetime import timedelta

import pytest

from shoploop.domain import (
    AddToCartEvent,
    ClickEvent,
    DislikeEvent,
    ImpressionEvent,
    Product,
    PurchaseEvent,
    RatingEvent,
    SearchEvent,
    ViewEvent,
)
from shoploop.feedback.online import DecayedCounter, OnlineConfig, OnlineState

CATALOG = {
    "drill": Product(item_id="drill", title="Drill", category_path=("Tools", "Drills"), brand="Bosch"),
    "pan": Product(item_id="pan", title="Pan", category_path=("Kitchen", "Cookware"), brand="Tefal"),
}


@pytest.fixture
def state():
    return OnlineState(OnlineConfig(half_life_hours=1.0), lookup=CATALOG.get)


def impression(t, request_id="r1", items=("drill", "pan"), surface="search", query="Drill"):
    return ImpressionEvent(
        request_id=request_id,
        surface=surface,
        query=query,
        user_id="u1",
        timestamp=t,
        items=[{"item_id": i, "position": n + 1} for n, i in enumerate(items)],
    )


def test_decayed_counter_halves_every_half_life():
    c = DecayedCounter()
    c.add(8.0, ts=0.0, half_life=10.0)
    assert c.get(10.0, 10.0) == pytest.approx(4.0)
    assert c.get(30.0, 10.0) == pytest.approx(1.0)
    c.add(1.0, ts=10.0, half_life=10.0)
    assert c.get(10.0, 10.0) == pytest.approx(5.0)


def test_click_counts_per_surface_and_query(state, t0):
    state.update(impression(t0))
    state.update(ClickEvent(user_id="u1", item_id="drill", request_id="r1", position=1, timestamp=t0))
    assert state.item_count("drill", "impression", surface="search") == 1
    assert state.item_count("drill", "click", surface="search") == 1
    assert state.item_count("drill", "click", surface="home") == 0
    assert state.query_item_signal("drill", "drill", "click") == 1
    # smoothed: (1 + 1) / (1 + 20) beats the unclicked pan's (0 + 1) / (1 + 20)
    assert state.item_ctr("drill") == pytest.approx(2 / 21)
    assert state.item_ctr("pan") == pytest.approx(1 / 21)
    assert state.query_item_ctr(" DRILL ", "drill") == pytest.approx(2 / 21)
    # The batch form: every shown item with its smoothed CTR, items never shown left out.
    both = state.query_item_ctrs("Drill", ["drill", "pan", "never-shown"])
    assert both == {"drill": pytest.approx(2 / 21), "pan": pytest.approx(1 / 21)}
    assert state.query_item_ctrs("drill", ["drill"], min_shown=2.0) == {}


def test_counts_decay_with_time(state, t0):
    state.update(impression(t0))
    assert state.item_count("drill", "impression", now=t0 + timedelta(hours=2)) == pytest.approx(0.25)


def test_user_profile_tracks_history_affinity_purchases_and_dislikes(state, t0):
    state.update(SearchEvent(user_id="u1", query="Cordless Drill", timestamp=t0))
    state.update(ViewEvent(user_id="u1", item_id="drill", timestamp=t0))
    state.update(AddToCartEvent(user_id="u1", item_id="drill", timestamp=t0 + timedelta(seconds=5)))
    state.update(
        PurchaseEvent(
            user_id="u1", timestamp=t0 + timedelta(seconds=9), items=[{"item_id": "drill", "price": 50.0}]
        )
    )
    state.update(DislikeEvent(user_id="u1", item_id="pan", timestamp=t0 + timedelta(seconds=10)))
    p = state.profile("u1")
    assert p.recent_items == ("drill", "drill", "drill")
    assert p.recent_queries == ("cordless drill",)
    assert p.purchased == frozenset({"drill"})
    assert p.disliked == frozenset({"pan"})
    # view 1 + cart 3 + purchase 5 (no decay within seconds... almost)
    assert p.category_affinity["Drills"] == pytest.approx(9.0, rel=1e-2)
    assert p.brand_affinity["Tefal"] < 0  # the dislike pushes away


def test_low_rating_pushes_affinity_down(state, t0):
    state.update(RatingEvent(user_id="u2", item_id="pan", rating=1, timestamp=t0))
    state.update(RatingEvent(user_id="u2", item_id="drill", rating=5, timestamp=t0))
    p = state.profile("u2")
    assert p.category_affinity["Cookware"] < 0 < p.category_affinity["Drills"]


def test_unknown_user_profile_is_empty(state):
    p = state.profile("nobody")
    assert not p.is_known
    assert p.recent_items == ()


def test_recent_items_window_is_bounded(t0):
    s = OnlineState(OnlineConfig(recent_items=3), lookup=CATALOG.get)
    for n in range(10):
        s.update(
            ViewEvent(user_id="u", item_id="drill" if n % 2 else "pan", timestamp=t0 + timedelta(seconds=n))
        )
    assert s.profile("u").recent_items == ("drill", "pan", "drill")  # the newest three, oldest first


def test_recent_queries_window_keeps_the_newest(t0):
    s = OnlineState(OnlineConfig(recent_queries=2), lookup=CATALOG.get)
    for n, q in enumerate(["drill", "Cordless  Drill", "pan", "garden hose"]):
        s.update(SearchEvent(user_id="u", query=q, timestamp=t0 + timedelta(seconds=n)))
    assert s.profile("u").recent_queries == ("pan", "garden hose")


def test_delete_user_forgets_everything_about_them(state, t0):
    state.update(ViewEvent(user_id="u1", item_id="drill", timestamp=t0, session_id="s1"))
    receipt = state.delete_user("u1")
    assert receipt["recent_items"] == 1
    assert receipt["sessions"] == 1
    assert not state.known_user("u1")
    assert state.delete_user("u1")["recent_items"] == 0


def test_rebuilding_a_shopper_keeps_the_counters_over_all_shoppers(state, t0):
    old = [
        SearchEvent(user_id="u1", query="drill", timestamp=t0),
        impression(t0),
        ClickEvent(user_id="u1", item_id="drill", request_id="r1", position=1, timestamp=t0),
    ]
    kept = [
        PurchaseEvent(user_id="u1", items=[{"item_id": "pan", "quantity": 1, "price": 20.0}], timestamp=t0)
    ]
    for event in old + kept:
        state.update(event)
    clicks = state.item_count("drill", "click", now=t0)
    purchases = state.item_count("pan", "purchase", now=t0)
    # The search, list and click were purged from the log; the purchase is what is left.
    assert state.rebuild_user("u1", kept)
    profile = state.profile("u1", now=t0)
    assert profile.recent_queries == () and profile.recent_items == ("pan",)
    assert profile.purchased == {"pan"} and "Tools" not in profile.category_affinity
    assert state.item_count("drill", "click", now=t0) == clicks  # aggregates name nobody
    assert state.item_count("pan", "purchase", now=t0) == purchases  # not counted twice
    assert not state.rebuild_user("u1", [])  # nothing left: nothing known


def test_replay_equals_incremental_updates(t0):
    events = [impression(t0), ClickEvent(user_id="u1", item_id="pan", request_id="r1", timestamp=t0)]
    a = OnlineState(lookup=CATALOG.get)
    b = OnlineState(lookup=CATALOG.get)
    assert a.replay(events) == 2
    for e in events:
        b.update(e)
    assert a.item_ctr("pan") == b.item_ctr("pan")
    assert a.profile("u1") == b.profile("u1")


def test_home_impressions_tire_items_by_position_and_engagement_clears_it(t0):
    s = OnlineState(OnlineConfig(fatigue_half_life_hours=1.0), lookup=CATALOG.get)
    s.update(impression(t0, surface="home", query=None))
    s.update(impression(t0, request_id="r2", surface="search"))  # search lists do not tire
    fatigue = s.profile("u1").fatigue
    # weight 1 / log2(position + 1): slot 1 counts fully, slot 2 about 0.63
    assert fatigue == pytest.approx({"drill": 1.0, "pan": 1 / 1.5849625})
    s.update(impression(t0, request_id="r3", items=("pan", "drill"), surface="home", query=None))
    assert s.profile("u1").fatigue == pytest.approx({"drill": 1.63093, "pan": 1.63093}, rel=1e-4)
    assert s.profile("u1", now=t0 + timedelta(hours=1)).fatigue["pan"] == pytest.approx(0.815465, rel=1e-4)
    s.update(ClickEvent(user_id="u1", item_id="pan", request_id="r3", position=1, timestamp=t0))
    assert set(s.profile("u1").fatigue) == {"drill"}


def test_fatigue_is_bounded_per_shopper_and_not_kept_for_anonymous_lists(t0):
    s = OnlineState(OnlineConfig(fatigue_items=3), lookup=CATALOG.get)
    s.update(impression(t0, items=("a", "b", "c", "d", "e"), surface="home", query=None))
    assert set(s.profile("u1").fatigue) == {"c", "d", "e"}  # the least recently shown went first
    anonymous = impression(t0, request_id="r9", surface="home", query=None).model_copy(
        update={"user_id": "anonymous"}
    )
    s.update(anonymous)
    assert not s.known_user("anonymous")
    assert s.delete_user("u1")["shown_items"] == 3


def test_ctr_over_expected_examinations_when_a_curve_is_set(t0):
    # Slot 1 is always looked at, slot 2 by a quarter of shoppers.
    s = OnlineState(OnlineConfig(examination=(1.0, 0.25)), lookup=CATALOG.get)
    for n in range(4):
        s.update(impression(t0, request_id=f"r{n}", items=("drill", "pan")))
    s.update(ClickEvent(user_id="u1", item_id="pan", request_id="r0", position=2, timestamp=t0))
    s.update(ClickEvent(user_id="u1", item_id="drill", request_id="r1", position=1, timestamp=t0))
    # pan: 1 click over 4 x 0.25 = 1 expected examination; drill: 1 over 4.
    assert s.query_item_signal("drill", "pan", "impression") == 4
    assert s.query_item_signal("drill", "pan", "examined") == pytest.approx(1.0)
    assert s.query_item_ctr("drill", "pan") == pytest.approx((1 + 1) / (1 + 20))
    assert s.query_item_ctr("drill", "drill") == pytest.approx((1 + 1) / (4 + 20))
    assert s.query_item_ctrs("drill", ["pan"]) == {"pan": pytest.approx(2 / 21)}
    assert s.item_ctr("pan", surface="search") == pytest.approx(2 / 21)
    # Surfaces the curve is not for keep raw CTR; deeper slots reuse the curve's last value.
    s.update(impression(t0, request_id="h", items=("drill", "pan"), surface="home", query=None))
    assert s.item_count("pan", "examined", surface="home") == 0
    assert s.item_ctr("pan", surface="home") == pytest.approx(1 / 21)
    s.update(impression(t0, request_id="deep", items=("drill", "pan", "drill2"), query="x"))
    assert s.query_item_signal("x", "drill2", "examined") == pytest.approx(0.25)


def test_raw_ctr_without_a_curve_and_switching_curves(t0):
    s = OnlineState(OnlineConfig(), lookup=CATALOG.get)
    s.update(impression(t0, items=("drill", "pan")))
    assert s.examination is None and s.query_item_signal("drill", "pan", "examined") == 0
    s.set_examination((1.0, 0.5))
    s.update(impression(t0, request_id="r2", items=("drill", "pan")))
    # Counts made before the curve keep no "examined" weight; from now on they do.
    assert s.query_item_signal("drill", "pan", "examined") == pytest.approx(0.5)
    s.set_examination(None)
    assert s.query_item_ctr("drill", "pan") == pytest.approx(1 / 22)  # raw: 0 clicks, 2 shown
    for bad in ((), (1.0, 0.0), (1.0, 1.5)):
        with pytest.raises(ValueError, match="examination"):
            s.set_examination(bad)
        with pytest.raises(ValueError, match="examination"):
            OnlineConfig(examination=bad)
