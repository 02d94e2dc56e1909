"""Per-query search analytics against values worked out by hand."""

from __future__ import annotations

from datetime import timedelta

import pytest

from shoploop.domain import (
    AddToCartEvent,
    ClickEvent,
    ImpressionEvent,
    PurchaseEvent,
    SearchEvent,
    ViewEvent,
)
from shoploop.evaluation.search_queries import (
    merchandiser_views,
    no_result_queries,
    search_query_report,
    suggestion_uptake,
    top_queries,
    unclicked_queries,
)


def served(t, rid, query, user, items=("a", "b", "c"), surface="search"):
    return ImpressionEvent(
        request_id=rid,
        surface=surface,
        query=query,
        user_id=user,
        timestamp=t,
        items=[{"item_id": i, "position": n + 1} for n, i in enumerate(items)],
    )


@pytest.fixture
def log(t0):
    s = timedelta(seconds=1)
    return [
        # "Drill" twice (u1, u2) and "drill " once more by u1: one query, 3 searches, 2 shoppers
        SearchEvent(query="Drill", request_id="r1", n_results=3, user_id="u1", timestamp=t0),
        served(t0, "r1", "Drill", "u1"),
        ClickEvent(item_id="b", request_id="r1", position=2, user_id="u1", timestamp=t0 + s),
        ClickEvent(item_id="b", request_id="r1", position=2, user_id="u1", timestamp=t0 + 2 * s),  # again
        ClickEvent(item_id="c", request_id="r1", user_id="u1", timestamp=t0 + 3 * s),  # slot from the list
        AddToCartEvent(item_id="c", request_id="r1", user_id="u1", timestamp=t0 + 4 * s),
        PurchaseEvent(
            request_id="r1",
            items=[{"item_id": "c", "price": 40.0, "quantity": 2}],
            user_id="u1",
            timestamp=t0 + 5 * s,
        ),
        served(t0 + s, "r2", "drill ", "u2"),
        ClickEvent(item_id="zzz", request_id="r2", user_id="u2", timestamp=t0 + 6 * s),  # not shown: no click
        SearchEvent(query="DRILL", request_id="r3", n_results=3, user_id="u1", timestamp=t0 + 7 * s),
        served(t0 + 7 * s, "r3", "DRILL", "u1"),
        # "unicorn lamp": found nothing twice, by an anonymous session and u3
        SearchEvent(query="unicorn lamp", n_results=0, user_id="anonymous", session_id="s9", timestamp=t0),
        SearchEvent(query="Unicorn  Lamp", n_results=0, user_id="u3", timestamp=t0 + s),
        # a home feed list and a view are no searches
        served(t0, "h1", None, "u1", surface="home"),
        ViewEvent(item_id="a", request_id="h1", user_id="u1", timestamp=t0),
    ]


def test_report_by_hand(log):
    rows = {r.query: r for r in search_query_report(log)}
    assert set(rows) == {"drill", "unicorn lamp"}
    drill = rows["drill"]
    assert (drill.searches, drill.shoppers, drill.no_result_searches, drill.lists) == (3, 2, 0, 3)
    assert drill.clicked_lists == 1 and drill.list_ctr == pytest.approx(1 / 3)
    assert drill.mean_click_position == pytest.approx((2 + 3) / 2)  # b at 2, c at its slot 3
    assert (drill.add_to_carts, drill.purchases, drill.revenue) == (1, 1, 80.0)
    assert drill.conversion == pytest.approx(1 / 3)
    lamp = rows["unicorn lamp"]
    assert (lamp.searches, lamp.shoppers, lamp.no_result_searches, lamp.lists) == (2, 2, 2, 0)
    assert lamp.list_ctr is None and lamp.mean_click_position is None and lamp.conversion == 0.0


def test_views(log):
    rows = search_query_report(log)
    assert [r.query for r in top_queries(rows)] == ["drill", "unicorn lamp"]
    assert [r.query for r in top_queries(rows, min_shoppers=3)] == []
    assert [r.query for r in no_result_queries(rows)] == ["unicorn lamp"]
    assert [r.query for r in unclicked_queries(rows, min_lists=3)] == ["drill"]
    assert unclicked_queries(rows, min_lists=4) == []


def test_a_list_without_its_query_takes_it_from_the_search_with_its_request_id(t0):
    later = t0 + timedelta(seconds=1)
    log = [
        served(t0, "r1", None, "u1"),  # the list came first, without the query
        SearchEvent(query="Desk Lamp", request_id="r1", n_results=3, user_id="u1", timestamp=later),
        ClickEvent(item_id="a", request_id="r1", user_id="u1", timestamp=later),
        served(t0, "r2", None, "u2"),  # no search event names it: not a search we can name
    ]
    (row,) = search_query_report(log)
    assert (row.query, row.searches, row.lists, row.clicked_lists, row.mean_click_position) == (
        "desk lamp",
        1,
        1,
        1,
        1.0,
    )


def test_window_counts_searches_inside_it_with_their_later_outcomes(log, t0):
    rows = {r.query: r for r in search_query_report(log, since=t0, until=t0 + timedelta(seconds=2))}
    # r1 and r2 fall inside, r3 (7 s) does not; r1's purchase at 5 s still counts for it
    assert rows["drill"].searches == 2 and rows["drill"].purchases == 1
    assert search_query_report(log, since=t0 + timedelta(days=1)) == []
    # a purchase of a search before the window is not credited to a search inside it
    late = {r.query: r for r in search_query_report(log, since=t0 + timedelta(seconds=6))}
    assert late["drill"].searches == 1 and late["drill"].purchases == 0 and late["drill"].revenue == 0


def test_searches_picked_from_autocomplete_by_hand(t0):
    def searched(rid, query, user, pick=None):
        context = {"suggestion": pick} if pick is not None else {}
        return SearchEvent(
            query=query, request_id=rid, n_results=5, user_id=user, timestamp=t0, context=context
        )

    log = [
        searched("r1", "garden hose", "u1", {"typed": "gar", "position": 1}),  # 8 of 11 not typed
        searched("r2", "garden hose", "u2", {"typed": "garden h", "position": 2}),  # 3 of 11
        searched("r3", "garden hose", "u3"),
        searched("r4", "rake", "u4", {"typed": "", "position": 1}),  # from the popular list: 4 of 4
        searched("r5", "rake", "u5", {"position": 1}),  # no "typed": not counted as a pick
    ]
    rows = {r.query: r for r in search_query_report(log)}
    assert rows["garden hose"].from_suggestion == 2
    assert rows["garden hose"].keystrokes_saved == pytest.approx((8 / 11 + 3 / 11) / 2)
    assert rows["rake"].from_suggestion == 1 and rows["rake"].keystrokes_saved == 1.0
    share, saved = suggestion_uptake(rows.values())
    assert share == pytest.approx(3 / 5)
    assert saved == pytest.approx((8 / 11 + 3 / 11 + 1.0) / 3)
    assert suggestion_uptake([]) == (None, None)


def test_merchandiser_views_bundle_the_three_views_and_the_uptake(log, t0):
    rows = search_query_report(log)
    views = merchandiser_views(rows, 5, min_lists=3)
    assert views.distinct_queries == 2
    assert (views.top, views.no_results, views.unclicked) == (
        top_queries(rows, 5),
        no_result_queries(rows, 5),
        unclicked_queries(rows, 5, min_lists=3),
    )
    assert views.uptake_sentence() is None  # nobody picked from autocomplete in this log
    picked = SearchEvent(
        query="drill",
        request_id="r9",
        n_results=3,
        user_id="u9",
        timestamp=t0,
        context={"suggestion": {"typed": "d"}},
    )
    with_pick = merchandiser_views(search_query_report([*log, picked]))
    assert (
        with_pick.uptake_sentence() == "16.7% of searches picked from autocomplete, 80% of their typing saved"
    )
