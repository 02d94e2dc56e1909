"""Business KPIs on a tiny hand-built event log; every expected number is derived in comments."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest

from shoploop.domain import (
    AddToCartEvent,
    ClickEvent,
    ImpressionEvent,
    PurchaseEvent,
    PurchaseLine,
    SearchEvent,
    ShownItem,
)
from shoploop.evaluation.business import business_kpis, period_key, return_rate


def _imp(user, session, rid, surface, items, ts):
    shown = tuple(ShownItem(item_id=i, position=k + 1) for k, i in enumerate(items))
    return ImpressionEvent(
        user_id=user, session_id=session, request_id=rid, surface=surface, items=shown, timestamp=ts
    )


def _log(t0: datetime) -> list:
    s = timedelta(seconds=1)
    d = timedelta(days=1)
    return [
        # day 1, u1/s1: search r1 -> list A,B,C -> click B -> cart B -> buy 2 x B at 10
        SearchEvent(user_id="u1", session_id="s1", query="shoe", request_id="r1", timestamp=t0),
        _imp("u1", "s1", "r1", "search", ["A", "B", "C"], t0 + 1 * s),
        ClickEvent(user_id="u1", session_id="s1", item_id="B", request_id="r1", timestamp=t0 + 11 * s),
        AddToCartEvent(user_id="u1", session_id="s1", item_id="B", request_id="r1", timestamp=t0 + 31 * s),
        PurchaseEvent(
            user_id="u1",
            session_id="s1",
            request_id="r1",
            items=(PurchaseLine(item_id="B", quantity=2, price=10.0),),
            timestamp=t0 + 91 * s,
        ),
        # day 1, u2/s2: search r2 -> list A,B, no click (abandoned)
        SearchEvent(user_id="u2", session_id="s2", query="hat", request_id="r2", timestamp=t0 + 100 * s),
        _imp("u2", "s2", "r2", "search", ["A", "B"], t0 + 101 * s),
        # then home list r3 (C, D): D clicked twice (counts once), E clicked but never shown (ignored)
        _imp("u2", "s2", "r3", "home", ["C", "D"], t0 + 200 * s),
        ClickEvent(user_id="u2", session_id="s2", item_id="D", request_id="r3", timestamp=t0 + 260 * s),
        ClickEvent(user_id="u2", session_id="s2", item_id="D", request_id="r3", timestamp=t0 + 270 * s),
        ClickEvent(user_id="u2", session_id="s2", item_id="E", request_id="r3", timestamp=t0 + 280 * s),
        # day 2: u1 comes back, home list r4 (A), clicks A; u3 clicks with no request id
        _imp("u1", "s3", "r4", "home", ["A"], t0 + d),
        ClickEvent(user_id="u1", session_id="s3", item_id="A", request_id="r4", timestamp=t0 + d + 5 * s),
        ClickEvent(user_id="u3", item_id="X", timestamp=t0 + d),
    ]


def _row(rows, surface, period):
    (row,) = [r for r in rows if r.surface == surface and r.period == period]
    return row


def test_daily_search_surface_by_hand(t0: datetime) -> None:
    rows = business_kpis(_log(t0), period="day")
    r = _row(rows, "search", "2026-01-01")
    assert (r.impressions, r.impressed_items, r.clicks) == (2, 5, 1)
    assert r.ctr == pytest.approx(1 / 5)  # (r1, B) clicked / 3 + 2 shown
    assert r.list_ctr == pytest.approx(1 / 2)  # r1 clicked, r2 not
    assert r.add_to_cart_rate == pytest.approx(1 / 5)
    assert r.searches == 2 and r.purchases == 1
    assert r.revenue == pytest.approx(20.0)  # 2 x 10
    assert r.conversion_per_search == pytest.approx(1 / 2)  # r1 bought
    assert r.conversion_per_session == pytest.approx(1 / 2)  # s1 of {s1, s2}
    assert r.revenue_per_search == pytest.approx(10.0)  # 20 / 2 searches
    assert r.abandonment_rate == pytest.approx(1 / 2)  # r2 had no click
    # gaps credited to search: s1 1, 10, 20, 60 ; s2 search->imp 1, imp r2 -> imp r3 99
    # sorted 1, 1, 10, 20, 60, 99 -> median (10 + 20) / 2 = 15
    assert r.median_dwell_seconds == pytest.approx(15.0)
    assert r.active_users == 2 and r.return_rate == 0.0  # one day cannot show a return


def test_daily_home_surface_by_hand(t0: datetime) -> None:
    rows = business_kpis(_log(t0), period="day")
    r = _row(rows, "home", "2026-01-01")
    assert (r.impressions, r.impressed_items, r.clicks) == (1, 2, 1)  # D once; E was not shown
    assert r.ctr == pytest.approx(0.5)
    assert r.list_ctr == pytest.approx(1.0)
    assert r.searches == 0
    assert r.conversion_per_search is None and r.abandonment_rate is None  # no searches: undefined
    assert r.conversion_per_session == 0.0  # s2 saw home, bought nothing
    assert r.median_dwell_seconds == pytest.approx(10.0)  # gaps 60, 10, 10
    day2 = _row(rows, "home", "2026-01-02")
    assert (day2.impressions, day2.clicks, day2.ctr) == (1, 1, 1.0)
    assert day2.median_dwell_seconds == pytest.approx(5.0)
    un = _row(rows, "unattributed", "2026-01-02")
    assert un.clicks == 0 and un.ctr is None  # a click on nothing shown is not a CTR event


def test_totals_and_weekly_return_rate(t0: datetime) -> None:
    rows = business_kpis(_log(t0), period="day")
    tot = _row(rows, "*", "2026-01-01")
    assert (tot.impressions, tot.impressed_items, tot.clicks) == (3, 7, 2)
    assert tot.ctr == pytest.approx(2 / 7)
    weekly = business_kpis(_log(t0), period="week")
    assert {r.period for r in weekly} == {"2026-W01"}  # 1 and 2 Jan 2026 share ISO week 1
    home = _row(weekly, "home", "2026-W01")
    assert home.ctr == pytest.approx(2 / 3)  # D (r3) and A (r4) over 2 + 1 shown
    # all surfaces: u1 active on 1 and 2 Jan, u2 on 1 Jan, u3 on 2 Jan -> 1 / 3
    assert _row(weekly, "*", "2026-W01").return_rate == pytest.approx(1 / 3)
    assert return_rate(_log(t0)) == pytest.approx(1 / 3)


def test_empty_and_period_keys(t0: datetime) -> None:
    assert business_kpis([]) == []
    assert return_rate([]) is None
    assert period_key(t0, "day") == "2026-01-01"
    assert period_key(t0, "week") == "2026-W01"
    assert period_key(t0, "all") == "all"
    with pytest.raises(ValueError):
        period_key(t0, "month")  # type: ignore[arg-type]
