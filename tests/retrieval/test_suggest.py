"""Autocomplete (`retrieval.suggest`): what may be suggested, in which order, and what never is."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shoploop.domain import ANONYMOUS_USER, ClickEvent, ImpressionEvent, Product, SearchEvent
from shoploop.retrieval.suggest import QuerySuggester, SuggestConfig, parse_blocklist, title_phrases
from shoploop.text.normalize import normalize

FAST = SuggestConfig(rebuild_seconds=0)
T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)  # rebuild on the request that finds the index stale


def searched(t, query, user="u1", *, request_id=None, n_results=5, session=None, seconds=0):
    return SearchEvent(
        query=query,
        user_id=user,
        session_id=session,
        request_id=request_id,
        n_results=n_results,
        timestamp=t + timedelta(seconds=seconds),
    )


def make(t0, config: SuggestConfig = FAST, products=()) -> QuerySuggester:
    return QuerySuggester(config, clock=lambda: t0.timestamp()).set_catalog(products)


def texts(s: QuerySuggester, prefix: str, k: int = 8, **kw) -> list[str]:
    return [x.text for x in s.suggest(prefix, k, **kw)]


def by_users(s: QuerySuggester, t0, query: str, n: int, first: int = 0) -> None:
    for u in range(first, first + n):
        s.observe(searched(t0, query, f"user-{u}"))


def test_title_phrases_skip_fragments():
    p = Product(
        item_id="p1",
        title='Makita 18-Volt Cordless Drill with 1/2" Chuck, Size M',
        brand="Makita",
        category_path=("Tools", "Power Tools"),
    )
    got = title_phrases(p, max_words=2)
    # brand and category names, and 1-2 word runs that are not fragments
    for phrase in ("makita", "tools", "power tools", "cordless drill", "18 volt", "drill", "chuck size"):
        assert phrase in got, phrase
    # no run starts on a unit or ends on a stopword, a unit without its number, or a lone letter
    for fragment in ("volt cordless", "drill with", "with", "1 2", "inch chuck", "size m", "m", "18"):
        assert fragment not in got, fragment


def test_completes_whole_starts_before_later_words(t0):
    products = [
        Product(item_id=f"p{i}", title=title)
        for i, title in enumerate(
            [
                "Cordless Drill Kit",
                "Cordless Drill Set",
                "Cordless Drill Pro",
                "Drill Bits",
                "Drill Bits",
                "Drill Bits",
            ]
        )
    ]
    s = make(t0, SuggestConfig(rebuild_seconds=0, min_phrase_products=3), products)
    got = texts(s, "dri")
    # "drill" (6 products) and "drill bits" (3) start with it; "cordless drill" (3) only at a later word
    assert got[:2] == ["drill", "drill bits"]
    assert "cordless drill" in got[2:]
    assert all(x.source == "catalog" for x in s.suggest("dri", 8))
    assert texts(s, "  CORDLESS   d") == ["cordless drill"]  # normalised like search
    assert texts(s, "zzz") == []


def test_a_query_needs_min_users_distinct_shoppers(t0):
    s = make(t0)
    for _ in range(5):  # one shopper typing the same thing over and over is still one shopper
        s.observe(searched(t0, "jane doe order 4411", "u1"))
    by_users(s, t0, "rain jacket", 2)
    assert texts(s, "") == [] and texts(s, "rain") == []
    s.observe(searched(t0, "Rain  Jacket", ANONYMOUS_USER, session="s-9"))  # sessions count too
    assert texts(s, "rain") == ["rain jacket"]
    assert texts(s, "jane") == []


def test_erased_shopper_no_longer_counts(t0):
    s = make(t0)
    by_users(s, t0, "rain jacket", 3)
    assert texts(s, "ra") == ["rain jacket"]
    assert s.forget_user("user-1") == 1
    assert texts(s, "ra") == []


def test_a_query_whose_latest_search_found_nothing_is_held_back(t0):
    s = make(t0)
    by_users(s, t0, "wool socks", 3)
    s.observe(searched(t0, "wool socks", "user-9", n_results=0, seconds=10))
    assert texts(s, "wool") == []
    s.observe(searched(t0, "wool socks", "user-9", n_results=12, seconds=20))
    assert texts(s, "wool") == ["wool socks"]


def test_successful_searches_rank_above_abandoned_ones(t0):
    s = make(t0)
    for u in range(4):
        s.observe(searched(t0, "shoe rack", f"a{u}"))  # typed more often, never clicked
    for u in range(3):
        s.observe(searched(t0, "shoe polish", f"b{u}", request_id=f"r{u}"))
        s.observe(ClickEvent(item_id="x", request_id=f"r{u}", user_id=f"b{u}", timestamp=t0))
        s.observe(
            ClickEvent(item_id="y", request_id=f"r{u}", user_id=f"b{u}", timestamp=t0)
        )  # once per search
    got = s.suggest("shoe", 8)
    assert [x.text for x in got] == ["shoe polish", "shoe rack"]
    assert got[0].score == pytest.approx(3 * (1 + FAST.success_bonus))
    assert got[1].score == pytest.approx(4.0)


def test_popularity_fades_with_the_half_life(t0):
    s = make(t0, SuggestConfig(rebuild_seconds=0, half_life_hours=24))
    old = t0 - timedelta(hours=48)
    for u in range(8):
        s.observe(searched(old, "snow shovel", f"o{u}"))  # 8 searches two half-lives ago = 2
    by_users(s, t0, "snow boots", 3)
    got = s.suggest("snow", 8)
    assert [x.text for x in got] == ["snow boots", "snow shovel"]
    assert got[1].score == pytest.approx(2.0)


def test_a_search_and_the_list_it_produced_count_once(t0):
    s = make(t0)
    for u in range(3):
        s.observe(
            ImpressionEvent(
                request_id=f"r{u}",
                surface="search",
                query="desk lamp",
                user_id=f"u{u}",
                timestamp=t0,
                items=[{"item_id": "p1", "position": 1}],
            )
        )
        s.observe(searched(t0, "desk lamp", f"u{u}", request_id=f"r{u}"))
    assert s.suggest("desk", 8)[0].score == pytest.approx(3.0)


def test_searched_queries_come_first_then_catalog_fills_the_rest(t0):
    products = [Product(item_id=f"p{i}", title="Desk Organizer") for i in range(3)]
    s = make(t0, FAST, products)
    by_users(s, t0, "desk lamp", 3)
    got = s.suggest("desk", 8)
    assert [(x.text, x.source) for x in got] == [
        ("desk lamp", "searches"),
        ("desk", "catalog"),
        ("desk organizer", "catalog"),
    ]
    assert texts(s, "desk", k=1) == ["desk lamp"]
    assert texts(s, "") == ["desk lamp"]  # nothing typed: the popular searches only


def test_blocked_terms_and_overlong_queries_are_never_suggested(t0):
    s = make(t0, SuggestConfig(rebuild_seconds=0, blocked_terms=("Knockoff",)))
    by_users(s, t0, "knockoff watch", 3)
    by_users(s, t0, "watch strap", 3)
    by_users(s, t0, "watch " + "very " * 20 + "long", 3)
    assert texts(s, "watch") == ["watch strap"]
    assert texts(s, "knock") == []


def test_catalog_changes_add_and_take_back_phrases(t0):
    s = make(t0, SuggestConfig(rebuild_seconds=0, min_phrase_products=1))
    s.upsert([Product(item_id="p1", title="Espresso Machine", brand="Brewmaster")])
    assert "espresso machine" in texts(s, "esp") and texts(s, "brew") == ["brewmaster"]
    s.upsert([Product(item_id="p1", title="Milk Frother")])  # replaced: its old phrases go
    assert texts(s, "esp") == [] and texts(s, "brew") == []
    assert "milk frother" in texts(s, "milk")
    s.delete(["p1"])
    assert texts(s, "milk") == []


def test_misspelt_complete_words_are_corrected(t0):
    products = [Product(item_id=f"p{i}", title="Cordless Drill") for i in range(3)]
    s = make(t0, FAST, products)
    fixes = {"cordlss": "cordless"}
    assert texts(s, "cordlss dr") == []
    assert texts(s, "cordlss dr", correct=fixes.get) == ["cordless drill"]
    # the last word may still be being typed, so it is corrected only once a space ends it
    assert texts(s, "cordlss", correct=fixes.get) == []
    assert texts(s, "cordlss ", correct=fixes.get) == ["cordless", "cordless drill"]


def test_least_popular_queries_are_forgotten_beyond_the_cap(t0):
    s = make(t0, SuggestConfig(rebuild_seconds=0, max_tracked_queries=2))
    by_users(s, t0, "alpha", 5)
    by_users(s, t0, "beta", 4)
    by_users(s, t0, "gamma", 3)
    s.rebuild()
    assert s.stats()["tracked_queries"] == 2
    assert texts(s, "") == ["alpha", "beta"]


def test_index_rebuilds_off_the_request_path(t0):
    s = make(t0, SuggestConfig(rebuild_seconds=3600))
    s.rebuild()
    by_users(s, t0, "garden hose", 3)
    assert texts(s, "gard") == []  # built less than rebuild_seconds ago: the old index answers
    s.rebuild()
    assert texts(s, "gard") == ["garden hose"]


@pytest.mark.parametrize(
    ("field", "value"),
    [("min_users", 0), ("half_life_hours", 0), ("success_bonus", -1), ("rebuild_seconds", -1)],
)
def test_bad_settings_name_their_field(field, value):
    with pytest.raises(ValueError, match=field):
        SuggestConfig(**{field: value})


@given(
    searches=st.lists(
        st.tuples(
            st.sampled_from(["red shoe", "red shoes", "shoe rack", "blue shoe", "rack"]), st.integers(0, 5)
        ),
        max_size=60,
    ),
    prefix=st.text(alphabet="reds hoacbklu", max_size=6),
    min_users=st.integers(1, 4),
)
def test_every_suggestion_matches_at_a_word_start_and_has_enough_shoppers(searches, prefix, min_users):
    t0 = T0
    s = make(t0, SuggestConfig(rebuild_seconds=0, min_users=min_users))
    shoppers: dict[str, set[int]] = {}
    for query, user in searches:
        s.observe(searched(t0, query, f"u{user}"))
        shoppers.setdefault(query, set()).add(user)
    got = s.suggest(prefix, 10)
    typed = normalize(prefix)
    for x in got:
        assert x.source == "searches"
        assert len(shoppers[x.text]) >= min_users
        assert not typed or x.text.startswith(typed) or f" {typed}" in f" {x.text}"
    # and nothing that qualifies is missing
    expected = {
        q
        for q, us in shoppers.items()
        if len(us) >= min_users
        and (
            not typed
            or any(w.startswith(typed) for w in [q, *[q[i + 1 :] for i, c in enumerate(q) if c == " "]])
        )
    }
    assert {x.text for x in got} == expected


def test_a_popular_query_keeps_a_bounded_sample_of_its_shoppers(t0):
    s = make(t0)
    by_users(s, t0, "garden hose", 500)
    kept = s._queries["garden hose"].shoppers
    assert len(kept) == 12  # max(4 * min_users, 12), not 500
    for shopper in list(kept)[:9]:  # erasing most of the sample still leaves min_users
        s.forget_user(shopper.removeprefix("u:"))
    assert texts(s, "gard") == ["garden hose"]
    for shopper in list(kept):
        s.forget_user(shopper.removeprefix("u:"))
    assert texts(s, "gard") == []  # conservative: hidden until new shoppers vouch for it again
    by_users(s, t0, "garden hose", 3, first=1000)
    assert texts(s, "gard") == ["garden hose"]


def test_popular_searches_are_reused_for_a_few_seconds(t0, monkeypatch):
    s = make(t0)
    by_users(s, t0, "alpha", 3)
    by_users(s, t0, "beta", 4)
    assert texts(s, "") == ["beta", "alpha"]
    by_users(s, t0, "alpha", 5, first=100)  # now more popular, but membership is unchanged
    assert texts(s, "") == ["beta", "alpha"]  # the answer of a moment ago
    monkeypatch.setattr("shoploop.retrieval.suggest.POPULAR_SECONDS", 0.0)
    assert texts(s, "") == ["alpha", "beta"]


def test_catalog_churn_does_not_grow_the_phrase_counts(t0):
    s = make(t0, SuggestConfig(rebuild_seconds=0, min_phrase_products=1))
    s.upsert([Product(item_id="p1", title="Steady Lamp")])
    baseline = len(s._phrase_products)
    for n in range(200):  # the same product renamed over and over
        s.upsert([Product(item_id="p2", title=f"Model{n} Widget Deluxe")])
    s.delete(["p2"])
    assert len(s._phrase_products) == baseline
    assert texts(s, "widget") == [] and texts(s, "steady") == ["steady", "steady lamp"]


def test_blocked_words_and_phrases_disappear_at_once(t0):
    products = [Product(item_id=f"p{i}", title="Cheap Knockoff Watch") for i in range(3)]
    s = make(t0, SuggestConfig(rebuild_seconds=3600), products)
    s.rebuild()
    by_users(s, t0, "watch strap", 3)
    by_users(s, t0, "smart watch band", 3)
    s.rebuild()
    assert "cheap knockoff watch" in texts(s, "cheap", k=20)
    s.set_blocked(["Knockoff", "smart  watch"])  # a word anywhere, a phrase as whole words
    assert not any("knockoff" in t for t in texts(s, "", k=20) + texts(s, "cheap", k=20))
    assert texts(s, "smart") == [] and "watch strap" in texts(s, "watch")
    s.set_blocked([])
    assert "smart watch band" in texts(s, "smart")


@pytest.mark.parametrize(
    ("text", "expected"),
    [("# comments\nKnockoff\n\n  Free   Shipping  # spam\n", ("knockoff", "free shipping")), ("", ())],
)
def test_blocklist_parses_one_term_a_line(text, expected):
    assert parse_blocklist(text) == expected


def test_blocklist_refuses_lines_with_nothing_to_match():
    with pytest.raises(ValueError, match="line 2:"):
        parse_blocklist("fine\n!!!\n")
    with pytest.raises(ValueError, match="line 1:"):
        parse_blocklist("x" * 81)


@given(st.text(max_size=200))
def test_blocklist_parsing_never_crashes(text):
    try:
        terms = parse_blocklist(text)
    except ValueError as err:
        assert "line" in str(err) or "terms" in str(err)
    else:
        # one normalised line each: non-empty, single-spaced (normalize itself is not idempotent:
        # "0\x1bA" -> "0 a" -> "0 amp", so a second pass is not the check)
        assert all(t and t == " ".join(t.split()) for t in terms)
