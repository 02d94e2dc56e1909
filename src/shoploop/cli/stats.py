"""`shoploop stats`: what is in a shop home, in one screen (or one JSON object).

`compute_stats(stores)` is a pure function over the `Stores` protocols (one pass over the
event log), so the dashboard can reuse it. Definitions:

- CTR = distinct (request, item) pairs that were shown in the request's impression and
  clicked / items shown; "list click rate" = impressions with at least one such click /
  impressions. Both per surface (search, home, ...) and overall.
- Sessions are `session_id`s; events without one count as a session per user and UTC day.
- add-to-cart rate = sessions with an add_to_cart / sessions; conversion = sessions
  with a purchase / sessions; revenue = sum of purchase lines (price x quantity).
- Behaviour figures (everything except the raw counts) leave out users that ingestion
  flagged as bots unless `exclude_flagged=False`: a bot clicking every result would
  otherwise inflate CTR for the whole shop.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from rich.console import Console
from rich.table import Table

from shoploop.data.cleaning import reason_code
from shoploop.domain import (
    AddToCartEvent,
    ClickEvent,
    ImpressionEvent,
    PurchaseEvent,
    SearchEvent,
)
from shoploop.store.home import Stores


@dataclass
class SurfaceStats:
    impressions: int = 0
    items_shown: int = 0
    clicks: int = 0  # distinct (request, item) pairs clicked among the shown items
    lists_clicked: int = 0

    @property
    def ctr(self) -> float | None:
        return self.clicks / self.items_shown if self.items_shown else None

    @property
    def list_click_rate(self) -> float | None:
        return self.lists_clicked / self.impressions if self.impressions else None

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ctr": self.ctr, "list_click_rate": self.list_click_rate}


@dataclass
class StoreStats:
    """Counts and KPIs of one shop home (see the module docstring for definitions)."""

    n_products: int = 0
    n_in_stock: int = 0
    n_categories: int = 0
    n_brands: int = 0
    n_events: int = 0
    events_by_type: dict[str, int] = field(default_factory=dict)
    n_users: int = 0
    n_sessions: int = 0
    first_event: datetime | None = None
    last_event: datetime | None = None
    exclude_flagged: bool = True
    flagged_users: dict[str, str] = field(default_factory=dict)
    flagged_events: int = 0
    top_queries: list[tuple[str, int]] = field(default_factory=list)
    n_searches: int = 0
    zero_result_searches: int = 0
    surfaces: dict[str, SurfaceStats] = field(default_factory=dict)
    add_to_cart_rate: float | None = None
    conversion: float | None = None
    orders: int = 0
    revenue: dict[str, float] = field(default_factory=dict)  # per currency
    quarantine_by_reason: dict[str, int] = field(default_factory=dict)  # rule code -> rows

    @property
    def overall(self) -> SurfaceStats:
        total = SurfaceStats()
        for s in self.surfaces.values():
            total.impressions += s.impressions
            total.items_shown += s.items_shown
            total.clicks += s.clicks
            total.lists_clicked += s.lists_clicked
        return total

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: datetimes as ISO strings, rates as floats or null."""
        data = asdict(self)
        data["first_event"] = self.first_event.isoformat() if self.first_event else None
        data["last_event"] = self.last_event.isoformat() if self.last_event else None
        data["top_queries"] = [{"query": q, "count": n} for q, n in self.top_queries]
        data["surfaces"] = {name: s.to_dict() for name, s in self.surfaces.items()}
        data["overall"] = self.overall.to_dict()
        data["quarantined"] = sum(self.quarantine_by_reason.values())
        return data


def compute_stats(stores: Stores, *, exclude_flagged: bool = True, top_n: int = 10) -> StoreStats:
    """One pass over the catalog and the event log; see the module docstring."""
    stats = StoreStats(exclude_flagged=exclude_flagged)
    categories: set[tuple[str, ...]] = set()
    brands: set[str] = set()
    for product in stores.catalog.iter_products():
        stats.n_products += 1
        stats.n_in_stock += product.in_stock
        if product.category_path:
            categories.add(product.category_path)
        if product.brand:
            brands.add(product.brand)
    stats.n_categories, stats.n_brands = len(categories), len(brands)
    stats.flagged_users = dict(sorted(stores.events.flagged_users().items()))
    flagged = set(stats.flagged_users) if exclude_flagged else set()

    by_type: Counter[str] = Counter()
    users: set[str] = set()
    sessions: set[tuple[str, str]] = set()
    cart_sessions: set[tuple[str, str]] = set()
    buying_sessions: set[tuple[str, str]] = set()
    queries: Counter[str] = Counter()
    shown: dict[str, tuple[str, frozenset[str]]] = {}  # request -> (surface, shown item ids)
    clicked: set[tuple[str, str]] = set()
    revenue: defaultdict[str, float] = defaultdict(float)
    for event in stores.events.scan():
        stats.n_events += 1
        by_type[event.type] += 1
        users.add(event.user_id)
        if stats.first_event is None or event.timestamp < stats.first_event:
            stats.first_event = event.timestamp
        if stats.last_event is None or event.timestamp > stats.last_event:
            stats.last_event = event.timestamp
        if event.user_id in flagged:
            stats.flagged_events += 1
            continue
        session = (event.user_id, event.session_id or event.timestamp.date().isoformat())
        sessions.add(session)
        if isinstance(event, SearchEvent):
            stats.n_searches += 1
            queries[event.query.strip().lower()] += 1
            stats.zero_result_searches += event.n_results == 0
        elif isinstance(event, ImpressionEvent):
            shown[event.request_id] = (event.surface, frozenset(it.item_id for it in event.items))
        elif isinstance(event, ClickEvent):
            if event.request_id:
                clicked.add((event.request_id, event.item_id))
        elif isinstance(event, AddToCartEvent):
            cart_sessions.add(session)
        elif isinstance(event, PurchaseEvent):
            buying_sessions.add(session)
            stats.orders += 1
            revenue[event.currency] += event.revenue
    stats.events_by_type = dict(sorted(by_type.items()))
    stats.n_users, stats.n_sessions = len(users), len(sessions)
    stats.top_queries = queries.most_common(top_n)
    clicks_per_request = Counter(req for req, item in clicked if req in shown and item in shown[req][1])
    for request_id, (surface, items) in shown.items():
        s = stats.surfaces.setdefault(surface, SurfaceStats())
        s.impressions += 1
        s.items_shown += len(items)
        n = clicks_per_request.get(request_id, 0)
        s.clicks += n
        s.lists_clicked += n > 0
    stats.surfaces = dict(sorted(stats.surfaces.items()))
    if sessions:
        stats.add_to_cart_rate = len(cart_sessions) / len(sessions)
        stats.conversion = len(buying_sessions) / len(sessions)
    stats.revenue = {cur: round(v, 2) for cur, v in sorted(revenue.items())}
    # The quarantine stores full reason texts (they name ids and values); group by rule code.
    codes: Counter[str] = Counter()
    for reason, n in stores.quarantine.counts_by_reason().items():
        codes[reason_code(reason)] += n
    stats.quarantine_by_reason = dict(sorted(codes.items()))
    return stats


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f} %"


def print_stats(stats: StoreStats, console: Console | None = None) -> None:
    """Rich tables: catalog and log, behaviour by surface, funnel, top queries, data quality."""
    console = console or Console()
    overview = Table(title="shop", show_header=False)
    overview.add_column("what")
    overview.add_column("value", justify="right")
    overview.add_row("products", f"{stats.n_products:,} ({stats.n_in_stock:,} in stock)")
    overview.add_row("categories / brands", f"{stats.n_categories:,} / {stats.n_brands:,}")
    overview.add_row("events", f"{stats.n_events:,}")
    for kind, n in stats.events_by_type.items():
        overview.add_row(f"  {kind}", f"{n:,}")
    overview.add_row("users / sessions", f"{stats.n_users:,} / {stats.n_sessions:,}")
    if stats.first_event and stats.last_event:
        overview.add_row(
            "date range", f"{stats.first_event:%Y-%m-%d %H:%M} .. {stats.last_event:%Y-%m-%d %H:%M} UTC"
        )
    console.print(overview)

    note = " (flagged users excluded)" if stats.exclude_flagged and stats.flagged_users else ""
    surfaces = Table(title=f"served lists by surface{note}")
    for col in ("surface", "impressions", "items shown", "clicks", "CTR", "list click rate"):
        surfaces.add_column(col, justify="left" if col == "surface" else "right")
    rows = [*stats.surfaces.items(), ("all", stats.overall)] if stats.surfaces else []
    for name, s in rows:
        surfaces.add_row(
            name,
            f"{s.impressions:,}",
            f"{s.items_shown:,}",
            f"{s.clicks:,}",
            _pct(s.ctr),
            _pct(s.list_click_rate),
        )
    console.print(surfaces)

    funnel = Table(title=f"funnel{note}", show_header=False)
    funnel.add_column("what")
    funnel.add_column("value", justify="right")
    funnel.add_row("searches", f"{stats.n_searches:,} ({stats.zero_result_searches:,} with zero results)")
    funnel.add_row("add-to-cart rate (sessions)", _pct(stats.add_to_cart_rate))
    funnel.add_row("conversion (sessions with a purchase)", _pct(stats.conversion))
    funnel.add_row("orders", f"{stats.orders:,}")
    for currency, amount in stats.revenue.items() or {"USD": 0.0}.items():
        funnel.add_row(f"revenue ({currency})", f"{amount:,.2f}")
    console.print(funnel)

    if stats.top_queries:
        top = Table(title="top queries")
        top.add_column("query")
        top.add_column("searches", justify="right")
        for query, n in stats.top_queries:
            top.add_row(query, f"{n:,}")
        console.print(top)

    quality = Table(title="data quality", show_header=False)
    quality.add_column("what")
    quality.add_column("value", justify="right")
    quality.add_row("quarantined rows", f"{sum(stats.quarantine_by_reason.values()):,}")
    for reason, n in stats.quarantine_by_reason.items():
        quality.add_row(f"  {reason}", f"{n:,}")
    quality.add_row(
        "users flagged as bots", f"{len(stats.flagged_users):,} ({stats.flagged_events:,} events)"
    )
    for user, reason in list(stats.flagged_users.items())[:10]:
        quality.add_row(f"  {user}", reason)
    console.print(quality)
