"""Business KPIs from the event log, per surface and per period.

Pure functions over an iterable of typed events (``shoploop.domain``); no store access, so the
same code serves the CLI, the dashboard, A/B analysis and tests.

Attribution: every served list is an ``ImpressionEvent`` with a ``request_id`` and a ``surface``.
Searches, clicks, carts and purchases that carry that ``request_id`` belong to the impression's
surface and to the impression's period (so a click just after midnight still counts against
the list it was shown in and numerator and denominator stay consistent). A search whose request
never produced an impression is counted on surface ``"search"`` in its own period; interactions
with no (known) request id are reported on surface ``"unattributed"``.

Definitions (each is a ratio; an empty denominator gives ``None``, not 0):

* ``ctr`` = distinct (request, item) pairs clicked that were in the impression / impressed items.
* ``list_ctr`` = impressions with at least one click on a shown item / impressions.
* ``add_to_cart_rate`` = distinct (request, item) pairs added to cart / impressed items.
* ``conversion_per_search`` = searches whose request led to a purchase / searches.
* ``conversion_per_session`` = sessions with an impression on the surface that contain a purchase
  attributed to the surface / those sessions.
* ``revenue_per_search`` = revenue of purchases attributed to a search request / searches.
* ``abandonment_rate`` = searches with an impression whose impression got no click / such searches.
* ``median_dwell_seconds`` = median time between consecutive events of a session, for gaps
  that start at an event attributed to the surface (gaps > ``max_gap`` are session breaks, left out).
* ``return_rate`` = users active (any event on the surface) on >= 2 distinct UTC days in the
  period / users active in the period. Always 0 for ``period="day"``; use week or all.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Literal

from shoploop.domain import (
    AddToCartEvent,
    BaseEvent,
    ClickEvent,
    ImpressionEvent,
    PurchaseEvent,
    SearchEvent,
)

__all__ = ["ALL_SURFACES", "KPIRow", "Period", "business_kpis", "period_key", "return_rate"]

Period = Literal["day", "week", "all"]
ALL_SURFACES = "*"
UNATTRIBUTED = "unattributed"


def period_key(ts: datetime, period: Period) -> str:
    """``2026-01-05`` for a day, ISO week ``2026-W02`` for a week, ``all`` for everything (UTC)."""
    if period == "all":
        return "all"
    d = _utc_date(ts)
    if period == "day":
        return d.isoformat()
    if period == "week":
        year, week, _ = d.isocalendar()
        return f"{year}-W{week:02d}"
    raise ValueError(f"period must be day, week or all, got {period!r}")


def _utc_date(ts: datetime) -> date:
    return ts.astimezone(UTC).date()


def _ratio(num: float, den: float) -> float | None:
    return None if den == 0 else num / den


@dataclass
class _Acc:
    impressions: int = 0
    impressed_items: int = 0
    clicked_pairs: set[tuple[str, str]] = field(default_factory=set)
    carted_pairs: set[tuple[str, str]] = field(default_factory=set)
    clicked_lists: set[str] = field(default_factory=set)
    searches: set[str] = field(default_factory=set)  # event ids
    searches_with_impression: set[str] = field(default_factory=set)  # request ids
    converted_searches: set[str] = field(default_factory=set)
    search_revenue: float = 0.0
    purchases: int = 0
    revenue: float = 0.0
    sessions: set[str] = field(default_factory=set)
    converted_sessions: set[str] = field(default_factory=set)
    gaps: list[float] = field(default_factory=list)
    user_days: dict[str, set] = field(default_factory=lambda: defaultdict(set))


@dataclass(frozen=True)
class KPIRow:
    surface: str
    period: str
    impressions: int
    impressed_items: int
    clicks: int
    ctr: float | None
    list_ctr: float | None
    add_to_carts: int
    add_to_cart_rate: float | None
    searches: int
    purchases: int
    revenue: float
    conversion_per_search: float | None
    conversion_per_session: float | None
    revenue_per_search: float | None
    abandonment_rate: float | None
    median_dwell_seconds: float | None
    active_users: int
    return_rate: float | None


def business_kpis(
    events: Iterable[BaseEvent],
    *,
    period: Period = "day",
    max_gap: timedelta = timedelta(minutes=30),
    include_total: bool = True,
) -> list[KPIRow]:
    """KPIs per (surface, period), sorted by period then surface.

    events: any iterable of typed events (read twice internally, so it is materialised).
    include_total: also emit surface ``"*"`` rows that aggregate every surface per period.
    """
    evs = sorted(events, key=lambda e: e.timestamp)
    # request_id -> (surface, period key, shown item ids) from impressions
    requests: dict[str, tuple[str, str, frozenset[str]]] = {}
    for e in evs:
        if isinstance(e, ImpressionEvent):
            requests[e.request_id] = (
                e.surface,
                period_key(e.timestamp, period),
                frozenset(i.item_id for i in e.items),
            )
    search_requests = {e.request_id for e in evs if isinstance(e, SearchEvent) and e.request_id}

    accs: dict[tuple[str, str], _Acc] = defaultdict(_Acc)

    def where(e: BaseEvent) -> tuple[str, str] | None:
        rid = getattr(e, "request_id", None)
        if rid is not None and rid in requests:
            surface, pkey, _ = requests[rid]
            return surface, pkey
        return None

    def targets(key: tuple[str, str]) -> list[_Acc]:
        out = [accs[key]]
        if include_total:
            out.append(accs[(ALL_SURFACES, key[1])])
        return out

    last_in_session: dict[str, BaseEvent] = {}
    for e in evs:
        loc = where(e)
        own_period = period_key(e.timestamp, period)
        if isinstance(e, ImpressionEvent):
            for acc in targets(loc):  # type: ignore[arg-type]
                acc.impressions += 1
                acc.impressed_items += len(e.items)
                if e.session_id:
                    acc.sessions.add(e.session_id)
        elif isinstance(e, SearchEvent):
            key = loc if loc is not None else ("search", own_period)
            for acc in targets(key):
                acc.searches.add(e.event_id)
                if loc is not None:
                    acc.searches_with_impression.add(e.request_id)  # type: ignore[arg-type]
        elif isinstance(e, ClickEvent | AddToCartEvent):
            if loc is None:
                key = (UNATTRIBUTED, own_period)
                pair = (e.request_id or "", e.item_id)
                shown = False
            else:
                key = loc
                pair = (e.request_id, e.item_id)  # type: ignore[assignment]
                shown = e.item_id in requests[e.request_id][2]  # type: ignore[index]
            for acc in targets(key):
                if isinstance(e, ClickEvent):
                    if shown:
                        acc.clicked_pairs.add(pair)
                        acc.clicked_lists.add(pair[0])
                elif shown:
                    acc.carted_pairs.add(pair)
        elif isinstance(e, PurchaseEvent):
            key = loc if loc is not None else (UNATTRIBUTED, own_period)
            for acc in targets(key):
                acc.purchases += 1
                acc.revenue += e.revenue
                if loc is not None and e.session_id:
                    acc.converted_sessions.add(e.session_id)
                if e.request_id in search_requests:
                    acc.converted_searches.add(e.request_id)  # type: ignore[arg-type]
                    acc.search_revenue += e.revenue
        # activity for return rate: the event's attributed surface, else its own bucket
        akey = loc if loc is not None else (None, own_period)
        if akey[0] is not None:
            for acc in targets(akey):  # type: ignore[arg-type]
                acc.user_days[e.user_id].add(_utc_date(e.timestamp))
        elif include_total:
            accs[(ALL_SURFACES, own_period)].user_days[e.user_id].add(_utc_date(e.timestamp))
        # dwell: gap from the previous event in the same session, credited to the previous event's surface
        if e.session_id:
            prev = last_in_session.get(e.session_id)
            if prev is not None:
                gap = (e.timestamp - prev.timestamp).total_seconds()
                if gap <= max_gap.total_seconds():
                    ploc = where(prev)
                    pkey = ploc if ploc is not None else (None, period_key(prev.timestamp, period))
                    if pkey[0] is not None:
                        for acc in targets(pkey):  # type: ignore[arg-type]
                            acc.gaps.append(gap)
                    elif include_total:
                        accs[(ALL_SURFACES, pkey[1])].gaps.append(gap)
            last_in_session[e.session_id] = e

    rows = []
    for (surface, pkey), a in accs.items():
        n_search = len(a.searches)
        converted_sessions = a.converted_sessions & a.sessions
        returning = sum(1 for days in a.user_days.values() if len(days) >= 2)
        rows.append(
            KPIRow(
                surface=surface,
                period=pkey,
                impressions=a.impressions,
                impressed_items=a.impressed_items,
                clicks=len(a.clicked_pairs),
                ctr=_ratio(len(a.clicked_pairs), a.impressed_items),
                list_ctr=_ratio(len(a.clicked_lists), a.impressions),
                add_to_carts=len(a.carted_pairs),
                add_to_cart_rate=_ratio(len(a.carted_pairs), a.impressed_items),
                searches=n_search,
                purchases=a.purchases,
                revenue=a.revenue,
                conversion_per_search=_ratio(len(a.converted_searches), n_search),
                conversion_per_session=_ratio(len(converted_sessions), len(a.sessions)),
                revenue_per_search=_ratio(a.search_revenue, n_search),
                abandonment_rate=_ratio(
                    len(a.searches_with_impression - a.clicked_lists), len(a.searches_with_impression)
                ),
                median_dwell_seconds=statistics.median(a.gaps) if a.gaps else None,
                active_users=len(a.user_days),
                return_rate=_ratio(returning, len(a.user_days)),
            )
        )
    rows.sort(key=lambda r: (r.period, r.surface))
    return rows


def return_rate(events: Iterable[BaseEvent], min_days: int = 2) -> float | None:
    """Users active on >= ``min_days`` distinct UTC days / users with any event. None if no users."""
    days: dict[str, set] = defaultdict(set)
    for e in events:
        days[e.user_id].add(_utc_date(e.timestamp))
    return _ratio(sum(1 for d in days.values() if len(d) >= min_days), len(days))
