"""Search analytics per query: what shoppers search for, what finds nothing, what nobody clicks.

A pure function over typed events (like `business`), for the CLI, the API and the dashboard.
Queries are grouped as search normalises them ("Drill", "drill " and "DRILL" are one query).

Attribution follows `evaluation.business`: a search is one request id (a `SearchEvent` and the
search list it produced share it; a search event without one counts on its own); clicks, carts
and purchases belong to the query of the request id they carry. Per query:

* ``searches``: distinct searches; ``shoppers``: distinct users (or anonymous sessions);
* ``no_result_searches``: searches whose `SearchEvent` said ``n_results == 0``;
* ``list_ctr``: served lists with at least one click on a shown item / served lists;
* ``mean_click_position``: mean 1-based slot of those clicks (where the list logged it);
* ``add_to_carts``: distinct (request, item) carted from a list; ``purchases`` / ``revenue``:
  purchase events carrying one of the query's request ids; ``conversion``: searches that led
  to a purchase / searches.

The three views a merchandiser acts on: `top_queries` (demand), `no_result_queries` (add
products, synonyms or a redirect rule) and `unclicked_queries` (searched often, clicked
rarely: the results need a rule or better relevance).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from shoploop.domain import (
    AddToCartEvent,
    BaseEvent,
    ClickEvent,
    ImpressionEvent,
    PurchaseEvent,
    SearchEvent,
    shopper_of,
)
from shoploop.store.protocols import EventLog
from shoploop.text.normalize import normalize_query

__all__ = [
    "QueryRow",
    "QueryViews",
    "merchandiser_views",
    "no_result_queries",
    "query_report_from_log",
    "search_query_report",
    "suggestion_uptake",
    "top_queries",
    "unclicked_queries",
]
QUERY_EVENT_TYPES = ("search", "impression", "click", "add_to_cart", "purchase")


@dataclass(frozen=True)
class QueryRow:
    query: str
    searches: int
    shoppers: int
    no_result_searches: int
    lists: int
    clicked_lists: int
    list_ctr: float | None
    mean_click_position: float | None
    add_to_carts: int
    purchases: int
    revenue: float
    conversion: float | None
    from_suggestion: int = 0  # searches whose query the shopper picked from autocomplete
    keystrokes_saved: float | None = None  # mean share of the query those shoppers did not type


@dataclass
class _Acc:
    searches: set[str] = field(default_factory=set)  # request ids, or event ids without one
    shoppers: set[str] = field(default_factory=set)
    no_results: set[str] = field(default_factory=set)
    lists: set[str] = field(default_factory=set)
    clicked_lists: set[str] = field(default_factory=set)
    click_positions: list[int] = field(default_factory=list)
    carted: set[tuple[str, str]] = field(default_factory=set)
    purchases: int = 0
    revenue: float = 0.0
    converted: set[str] = field(default_factory=set)
    suggested: set[str] = field(default_factory=set)
    saved: list[float] = field(default_factory=list)


def search_query_report(
    events: Iterable[BaseEvent], *, since: datetime | None = None, until: datetime | None = None
) -> list[QueryRow]:
    """One row per normalised query searched in [since, until), most searched first. Outcomes
    are attributed through request ids, whenever they happened."""
    accs: dict[str, _Acc] = defaultdict(_Acc)
    query_of: dict[str, str] = {}  # request id -> query key, from any search event or list
    counted: dict[str, str] = {}  # request id -> query key, of the searches inside the window
    shown: dict[str, dict[str, int]] = {}  # request id -> item -> slot
    clicked: set[tuple[str, str]] = set()

    def in_window(e: BaseEvent) -> bool:
        return (since is None or e.timestamp >= since) and (until is None or e.timestamp < until)

    evs = sorted(events, key=lambda ev: ev.timestamp)
    # A search list's impression may carry no query when its search event does (or the other
    # way round, in either order): the request id ties them.
    for e in evs:
        if isinstance(e, SearchEvent | ImpressionEvent) and e.request_id and e.query:
            query_of.setdefault(e.request_id, normalize_query(e.query))
    for e in evs:
        if isinstance(e, SearchEvent | ImpressionEvent):
            if isinstance(e, ImpressionEvent) and e.surface != "search":
                continue
            key = normalize_query(e.query) if e.query else query_of.get(e.request_id or "", "")
            if not key or not in_window(e):
                continue
            acc = accs[key]
            search_id = e.request_id or e.event_id
            acc.searches.add(search_id)
            if e.request_id:
                counted[e.request_id] = key
            if shopper := shopper_of(e):
                acc.shoppers.add(shopper)
            if isinstance(e, SearchEvent):
                if e.n_results == 0:
                    acc.no_results.add(search_id)
                typed = _typed_before_pick(e)
                if typed is not None and search_id not in acc.suggested:
                    acc.suggested.add(search_id)
                    whole = len(e.query.strip())
                    acc.saved.append(max(whole - len(typed.strip()), 0) / whole if whole else 0.0)
            else:
                acc.lists.add(e.request_id)
                shown[e.request_id] = {s.item_id: s.position for s in e.items}
            continue
        rid = getattr(e, "request_id", None)
        key = counted.get(rid or "")
        if key is None:
            continue
        acc = accs[key]
        slots = shown.get(rid or "", {})
        if isinstance(e, ClickEvent) and e.item_id in slots and (rid, e.item_id) not in clicked:
            clicked.add((rid, e.item_id))  # type: ignore[arg-type]
            acc.clicked_lists.add(rid)  # type: ignore[arg-type]
            acc.click_positions.append(e.position or slots[e.item_id])
        elif isinstance(e, AddToCartEvent) and e.item_id in slots:
            acc.carted.add((rid, e.item_id))  # type: ignore[arg-type]
        elif isinstance(e, PurchaseEvent):
            acc.purchases += 1
            acc.revenue += e.revenue
            acc.converted.add(rid)  # type: ignore[arg-type]

    rows = [
        QueryRow(
            query=q,
            searches=len(a.searches),
            shoppers=len(a.shoppers),
            no_result_searches=len(a.no_results),
            lists=len(a.lists),
            clicked_lists=len(a.clicked_lists),
            list_ctr=len(a.clicked_lists) / len(a.lists) if a.lists else None,
            mean_click_position=sum(a.click_positions) / len(a.click_positions)
            if a.click_positions
            else None,
            add_to_carts=len(a.carted),
            purchases=a.purchases,
            revenue=round(a.revenue, 2),
            conversion=len(a.converted) / len(a.searches),
            from_suggestion=len(a.suggested),
            keystrokes_saved=sum(a.saved) / len(a.saved) if a.saved else None,
        )
        for q, a in accs.items()
        if a.searches
    ]
    rows.sort(key=lambda r: (-r.searches, r.query))
    return rows


def _typed_before_pick(e: SearchEvent) -> str | None:
    """What the shopper had typed when they picked this query from autocomplete, per the
    search event's ``context.suggestion = {"typed": ..., "position": ...}`` (None: not picked)."""
    pick = e.context.get("suggestion")
    return pick["typed"] if isinstance(pick, dict) and isinstance(pick.get("typed"), str) else None


def suggestion_uptake(rows: Iterable[QueryRow]) -> tuple[float | None, float | None]:
    """(share of searches picked from autocomplete, mean share of their query not typed)."""
    rows = list(rows)
    searches = sum(r.searches for r in rows)
    picked = sum(r.from_suggestion for r in rows)
    saved = sum((r.keystrokes_saved or 0.0) * r.from_suggestion for r in rows)
    return (picked / searches if searches else None, saved / picked if picked else None)


@dataclass(frozen=True)
class QueryViews:
    """What the CLI, the API, the dashboard and the report show of a `search_query_report`."""

    distinct_queries: int
    top: list[QueryRow]
    no_results: list[QueryRow]
    unclicked: list[QueryRow]
    from_suggestion_share: float | None
    keystrokes_saved: float | None

    def uptake_sentence(self) -> str | None:
        """ "12.5% of searches picked from autocomplete, 61% of their typing saved" (None: no pick)."""
        if not self.from_suggestion_share:
            return None
        return (
            f"{self.from_suggestion_share:.1%} of searches picked from autocomplete, "
            f"{self.keystrokes_saved or 0:.0%} of their typing saved"
        )


def merchandiser_views(rows: Sequence[QueryRow], n: int = 20, *, min_lists: int = 10) -> QueryViews:
    """The views a merchandiser acts on, `n` rows each, and how much autocomplete is used."""
    share, saved = suggestion_uptake(rows)
    return QueryViews(
        distinct_queries=len(rows),
        top=top_queries(rows, n),
        no_results=no_result_queries(rows, n),
        unclicked=unclicked_queries(rows, n, min_lists=min_lists),
        from_suggestion_share=share,
        keystrokes_saved=saved,
    )


def query_report_from_log(
    log: EventLog, *, days: float | None = 30.0, now: datetime | None = None
) -> list[QueryRow]:
    """`search_query_report` over the searches of the last `days` (None = all time) in a shop's
    event log, bot-flagged shoppers left out (as every other read of behaviour does)."""
    since = None if days is None else (now or datetime.now(UTC)) - timedelta(days=days)
    return search_query_report(log.scan(since=since, types=QUERY_EVENT_TYPES, exclude_flagged=True))


def top_queries(rows: Iterable[QueryRow], n: int = 20, *, min_shoppers: int = 1) -> list[QueryRow]:
    """The most searched queries."""
    return [r for r in rows if r.shoppers >= min_shoppers][:n]


def no_result_queries(rows: Iterable[QueryRow], n: int = 20, *, min_shoppers: int = 1) -> list[QueryRow]:
    """Queries that found nothing, most often first: products to add, synonyms or redirects."""
    hits = [r for r in rows if r.no_result_searches > 0 and r.shoppers >= min_shoppers]
    return sorted(hits, key=lambda r: (-r.no_result_searches, r.query))[:n]


def unclicked_queries(
    rows: Iterable[QueryRow], n: int = 20, *, min_lists: int = 10, min_shoppers: int = 1
) -> list[QueryRow]:
    """Queries served at least `min_lists` result lists, lowest list CTR first (ties: more lists
    first): shoppers see results and ignore them."""
    seen = [r for r in rows if r.lists >= min_lists and r.list_ctr is not None and r.shoppers >= min_shoppers]
    return sorted(seen, key=lambda r: (r.list_ctr, -r.lists, r.query))[:n]
