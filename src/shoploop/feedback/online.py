"""Online state: what the engine knows about items, queries, shoppers and sessions right now.

Updated on every accepted event (microseconds per event), so a click changes that
shopper's next response. It is derived state: the event log is the source of truth and
`OnlineState.replay` rebuilds it at start-up, which is also why erasing a user from the
log and from here (`delete_user`) is enough to forget them.

Counters decay exponentially with a half-life so last week's bestseller fades; click-
through rates are smoothed with a Beta prior so an item with 1 click out of 1
impression does not outrank one with 300 out of 1,000.

Raw click-through rates are position-biased: an item shown at slot 8 is clicked less than
the same item at slot 1 because fewer shoppers look that far, so ranking by raw CTR keeps
whatever is on top on top. With an examination curve (`OnlineConfig.examination`, later
replaced by the one the feedback loop estimates, `set_examination`) each impression on
an `examination_surfaces` list also adds theta(position) to an "examined" counter, and
CTR becomes clicks over expected examinations ("clicks over expected clicks", Zhang &
Jones, 2007): an unbiased relevance estimate under the position-based model, whatever
slots the item was shown in. A new curve applies to impressions from then on; counts
already made keep the weights they were made with (they fade with the half-life).
"""

from __future__ import annotations

import functools
import math
import threading
from collections import OrderedDict, defaultdict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from shoploop.domain import (
    ANONYMOUS_USER,
    AddToCartEvent,
    BaseEvent,
    ClickEvent,
    DislikeEvent,
    ImpressionEvent,
    Product,
    PurchaseEvent,
    RatingEvent,
    SearchEvent,
    ViewEvent,
)

SIGNALS = ("impression", "click", "cart", "purchase")

# A prior examination curve for stores that debias CTR before the loop has estimated one:
# the DCG discount 1 / log2(1 + position), flatter than the 1/position typical of search.
DCG_EXAMINATION: tuple[float, ...] = tuple(1.0 / math.log2(1 + k) for k in range(1, 21))


@dataclass(frozen=True)
class OnlineConfig:
    half_life_hours: float = 72.0  # how fast popularity and affinities fade
    recent_items: int = 50  # per-user history kept for the sequential model
    recent_queries: int = 20
    # Impression fatigue: lists on these surfaces count as "shown to this shopper", weighted
    # by 1/log2(position + 1) (roughly how likely the slot was looked at); any interaction with
    # the item clears it. Recommenders use it to stop re-serving what a shopper keeps passing
    # over (impression discounting), so repeat visits uncover new candidates.
    fatigue_surfaces: tuple[str, ...] = ("home",)
    fatigue_half_life_hours: float = 24.0
    fatigue_items: int = 500  # per-shopper cap; the least recently shown are forgotten first
    ctr_prior_clicks: float = 1.0  # Beta prior (clicks, impressions) for smoothed CTR
    ctr_prior_impressions: float = 20.0
    # Examination probability per 1-based slot (slot k -> examination[k - 1], deeper slots
    # take the last value); None = raw CTR, clicks over impressions. See the module docstring.
    examination: tuple[float, ...] | None = None
    examination_surfaces: tuple[str, ...] = ("search",)
    # Weights of each interaction in the category / brand affinity of a shopper.
    affinity_weights: tuple[tuple[str, float], ...] = (
        ("view", 1.0),
        ("click", 1.0),
        ("add_to_cart", 3.0),
        ("purchase", 5.0),
        ("rating", 2.0),
        ("dislike", -3.0),
    )

    def __post_init__(self) -> None:
        if self.examination is not None:
            _check_curve(self.examination)


def _check_curve(theta: tuple[float, ...]) -> None:
    if not theta or not all(0.0 < t <= 1.0 for t in theta):
        raise ValueError("examination: a non-empty sequence of probabilities in (0, 1]")


class DecayedCounter:
    """A value that halves every `half_life` seconds; stored as (value, as-of time)."""

    __slots__ = ("at", "value")

    def __init__(self) -> None:
        self.value = 0.0
        self.at = 0.0

    def add(self, amount: float, ts: float, half_life: float) -> None:
        self.value = self.get(ts, half_life) + amount
        self.at = max(ts, self.at)

    def get(self, ts: float, half_life: float) -> float:
        if self.value == 0.0 or ts <= self.at:
            return self.value
        return self.value * math.pow(0.5, (ts - self.at) / half_life)


class UserState:
    """One shopper's live state.

    Containers are created on first use (`_part`): most shoppers only ever fill two or three
    of them, and nine empty deques/sets/dicts cost ~2.7 KB per shopper, ~270 MB for the 100k
    shoppers of benchmarks/serving.py's intake phase. Readers treat None as empty. The two
    bounded histories are short lists trimmed on append (`_push`): a deque allocates a
    64-slot block (~0.6 KB) even for one entry.
    """

    __slots__ = (
        "brands",  # dict[str, DecayedCounter]
        "categories",  # dict[str, DecayedCounter]
        "disliked",  # set[str]
        "last_seen",
        "purchased",  # set[str]
        "queries",  # list[str], oldest first, at most config.recent_queries
        "ratings",  # dict[str, int]
        "recent",  # list[(item_id, event type, unix ts)], oldest first, at most config.recent_items
        "sessions",  # set[str]
        "shown",  # OrderedDict[item_id, DecayedCounter]: fatigue, most recently shown last
    )

    def __init__(self) -> None:
        self.recent: list[tuple[str, str, float]] | None = None
        self.queries: list[str] | None = None
        self.categories: dict[str, DecayedCounter] | None = None
        self.brands: dict[str, DecayedCounter] | None = None
        self.purchased: set[str] | None = None
        self.disliked: set[str] | None = None
        self.ratings: dict[str, int] | None = None
        self.sessions: set[str] | None = None
        self.shown: OrderedDict[str, DecayedCounter] | None = None
        self.last_seen = 0.0


def _value(table: dict[Any, DecayedCounter], key: Any, ts: float, half_life: float) -> float:
    counter = table.get(key)
    return counter.get(ts, half_life) if counter else 0.0


def _push(history: list[Any], value: Any, limit: int) -> None:
    history.append(value)
    if len(history) > limit:
        del history[: len(history) - limit]


def _part(user: UserState, name: str, factory: Callable[[], Any]) -> Any:
    """`user.<name>`, created by `factory` on first use."""
    value = getattr(user, name)
    if value is None:
        value = factory()
        setattr(user, name, value)
    return value


@dataclass(frozen=True)
class UserProfile:
    """A read-only snapshot handed to recommenders and re-rankers."""

    user_id: str
    recent_items: tuple[str, ...]  # oldest first, views/clicks/carts/purchases
    recent_queries: tuple[str, ...]
    category_affinity: dict[str, float]
    brand_affinity: dict[str, float]
    purchased: frozenset[str]
    disliked: frozenset[str]
    fatigue: dict[str, float] = field(default_factory=dict)  # item -> decayed weighted showings

    @property
    def is_known(self) -> bool:
        return bool(self.recent_items or self.recent_queries)


_ITEM_SIGNAL = {ClickEvent: "click", AddToCartEvent: "cart"}


@functools.lru_cache(maxsize=8192)  # called per (query, item) pair while ranking one list
def query_key(query: str) -> str:
    """How per-query counters are keyed: case and spacing do not make a different query."""
    return " ".join(query.lower().split())


class OnlineState:
    """Thread-safe, in-memory online counters and shopper state."""

    def __init__(
        self, config: OnlineConfig = OnlineConfig(), *, lookup: Callable[[str], Product | None]
    ) -> None:
        self.config = config
        self._lookup = lookup
        self._half_life = config.half_life_hours * 3600.0
        self._weights = dict(config.affinity_weights)
        self._fatigue_half_life = config.fatigue_half_life_hours * 3600.0
        self._fatigue_surfaces = frozenset(config.fatigue_surfaces)
        self._examination = config.examination
        self._examination_surfaces = frozenset(config.examination_surfaces)
        self._lock = threading.RLock()
        # (item_id, surface, signal) -> counter; surface "*" aggregates all surfaces
        self._item: dict[tuple[str, str, str], DecayedCounter] = defaultdict(DecayedCounter)
        self._query_item: dict[tuple[str, str, str], DecayedCounter] = defaultdict(DecayedCounter)
        self._query_served: dict[str, DecayedCounter] = defaultdict(DecayedCounter)  # lists per query
        self._users: dict[str, UserState] = {}
        self._impressions: dict[str, tuple[str, str | None]] = {}  # request_id -> (surface, query)
        self._impression_order: deque[str] = deque()
        self.events_seen = 0
        self.last_event_at: float = 0.0

    # ---- updates --------------------------------------------------------------------
    def update(self, event: BaseEvent) -> None:
        with self._lock:
            self._apply(event, aggregates=True)

    def rebuild_user(self, user_id: str, events: Iterable[BaseEvent]) -> bool:
        """Forget one shopper's state and rebuild it from `events` (their events still in the
        log, oldest first), leaving the counters over all shoppers as they are: after a
        retention purge, what the server holds about a shopper follows what the log still
        holds. Returns whether anything is known about them afterwards."""
        with self._lock:
            self._users.pop(user_id, None)
            for event in events:
                self._apply(event, aggregates=False)
            return user_id in self._users

    def _apply(self, event: BaseEvent, *, aggregates: bool) -> None:
        """One event's effect; with `aggregates` False only the shopper's own state changes
        (their interactions are still counted in the item counters from the first time)."""
        ts = event.timestamp.timestamp()
        if aggregates:
            self.events_seen += 1
            self.last_event_at = max(self.last_event_at, ts)
        if isinstance(event, ImpressionEvent):
            if aggregates:
                self._count_impression(event, ts)
            if event.surface in self._fatigue_surfaces and event.user_id != ANONYMOUS_USER:
                self._tire(self._user(event.user_id), event, ts)
            return
        user = self._user(event.user_id)
        user.last_seen = max(user.last_seen, ts)
        if event.session_id:
            _part(user, "sessions", set).add(event.session_id)
        if isinstance(event, SearchEvent):
            if event.query.strip():
                _push(_part(user, "queries", list), query_key(event.query), self.config.recent_queries)
            return
        surface, query = self._impressions.get(getattr(event, "request_id", None) or "", ("*", None))
        if isinstance(event, PurchaseEvent):
            for line in event.items:
                if aggregates:
                    self._count(line.item_id, surface, query, "purchase", ts, line.quantity)
                _part(user, "purchased", set).add(line.item_id)
                self._touch(user, line.item_id, "purchase", ts)
            return
        item_id = getattr(event, "item_id", None)
        if item_id is None:
            return
        signal = _ITEM_SIGNAL.get(type(event))
        if signal and aggregates:
            self._count(item_id, surface, query, signal, ts)
        if isinstance(event, DislikeEvent):
            _part(user, "disliked", set).add(item_id)
        if isinstance(event, RatingEvent):
            _part(user, "ratings", dict)[item_id] = event.rating
        if isinstance(event, ViewEvent | ClickEvent | AddToCartEvent | RatingEvent | DislikeEvent):
            self._touch(user, item_id, event.type, ts)

    def _count_impression(self, event: ImpressionEvent, ts: float) -> None:
        self._remember_impression(event)
        query = query_key(event.query) if event.query else None
        if query:
            self._query_served[query].add(1.0, ts, self._half_life)
        theta = self._examination if event.surface in self._examination_surfaces else None
        for shown in event.items:
            self._count(shown.item_id, event.surface, query, "impression", ts)
            if theta is not None:
                examined = theta[min(shown.position, len(theta)) - 1]
                self._count(shown.item_id, event.surface, query, "examined", ts, examined)

    @property
    def examination(self) -> tuple[float, ...] | None:
        return self._examination

    def set_examination(self, theta: tuple[float, ...] | None) -> None:
        """Weigh impressions from now on by this curve (None: stop; CTR is raw again)."""
        if theta is not None:
            theta = tuple(float(t) for t in theta)
            _check_curve(theta)
        with self._lock:
            self._examination = theta

    def _exposure_signal(self, surface: str) -> str:
        """What CTR divides clicks by on `surface`: expected examinations or raw impressions."""
        if self._examination is not None and surface in self._examination_surfaces:
            return "examined"
        return "impression"

    def replay(self, events: Iterable[BaseEvent], *, progress: Callable[[int], None] | None = None) -> int:
        n = 0
        for n, event in enumerate(events, 1):
            self.update(event)
            if progress and n % 50_000 == 0:
                progress(n)
        return n

    def _remember_impression(self, event: ImpressionEvent) -> None:
        query = query_key(event.query) if event.query else None
        self._impressions[event.request_id] = (event.surface, query)
        self._impression_order.append(event.request_id)
        # Interactions arrive seconds to minutes after the list; a bounded map suffices.
        while len(self._impression_order) > 200_000:
            self._impressions.pop(self._impression_order.popleft(), None)

    def _tire(self, user: UserState, event: ImpressionEvent, ts: float) -> None:
        fatigue: OrderedDict[str, DecayedCounter] = _part(user, "shown", OrderedDict)
        for shown in event.items:
            counter = fatigue.pop(shown.item_id, None) or DecayedCounter()
            counter.add(1.0 / math.log2(shown.position + 1), ts, self._fatigue_half_life)
            fatigue[shown.item_id] = counter  # re-inserted: most recently shown last
        while len(fatigue) > self.config.fatigue_items:
            fatigue.popitem(last=False)

    def _count(
        self, item_id: str, surface: str, query: str | None, signal: str, ts: float, amount: float = 1.0
    ) -> None:
        self._item[(item_id, "*", signal)].add(amount, ts, self._half_life)
        if surface != "*":
            self._item[(item_id, surface, signal)].add(amount, ts, self._half_life)
        if query:
            self._query_item[(query, item_id, signal)].add(amount, ts, self._half_life)

    def _user(self, user_id: str) -> UserState:
        user = self._users.get(user_id)
        if user is None:
            user = UserState()
            self._users[user_id] = user
        return user

    def _touch(self, user: UserState, item_id: str, kind: str, ts: float) -> None:
        if user.shown:
            user.shown.pop(item_id, None)  # engaged with: no longer "passed over"
        if kind != "dislike":
            _push(_part(user, "recent", list), (item_id, kind, ts), self.config.recent_items)
        product = self._lookup(item_id)
        if product is None:
            return
        weight = self._weights.get(kind, 1.0)
        if kind == "rating":
            rating = (user.ratings or {}).get(item_id, 3)
            weight *= (rating - 3) / 2  # 1 star pushes away, 5 pulls in
        categories = _part(user, "categories", lambda: defaultdict(DecayedCounter))
        for level in product.category_path:
            categories[level].add(weight, ts, self._half_life)
        if product.brand:
            _part(user, "brands", lambda: defaultdict(DecayedCounter))[product.brand].add(
                weight, ts, self._half_life
            )

    # ---- reads ----------------------------------------------------------------------
    def _now(self, now: datetime | None) -> float:
        return now.timestamp() if now else self.last_event_at

    def item_count(
        self, item_id: str, signal: str, *, surface: str = "*", now: datetime | None = None
    ) -> float:
        counter = self._item.get((item_id, surface, signal))
        return counter.get(self._now(now), self._half_life) if counter else 0.0

    def item_ctr(self, item_id: str, *, surface: str = "*", now: datetime | None = None) -> float:
        """Beta-smoothed, time-decayed click-through rate of an item on a surface."""
        clicks = self.item_count(item_id, "click", surface=surface, now=now)
        shown = self.item_count(item_id, self._exposure_signal(surface), surface=surface, now=now)
        return self._smoothed_ctr(clicks, shown)

    def _smoothed_ctr(self, clicks: float, shown: float) -> float:
        """(clicks + prior clicks) / (shown + prior impressions); shown is at least clicks."""
        return (clicks + self.config.ctr_prior_clicks) / (
            max(shown, clicks) + self.config.ctr_prior_impressions
        )

    def query_item_ctr(self, query: str, item_id: str, *, now: datetime | None = None) -> float:
        """Smoothed CTR of an item for a search query (over expected examinations, if set)."""
        key = query_key(query)
        t = self._now(now)
        clicks = _value(self._query_item, (key, item_id, "click"), t, self._half_life)
        shown = _value(self._query_item, (key, item_id, self._exposure_signal("search")), t, self._half_life)
        return self._smoothed_ctr(clicks, shown)

    def query_item_ctrs(
        self, query: str, item_ids: Iterable[str], *, min_shown: float = 1.0, now: datetime | None = None
    ) -> dict[str, float]:
        """`query_item_ctr` for each of `item_ids` shown at least `min_shown` (decayed) times
        for the query; one pass with the key normalised once (called on every search)."""
        key = query_key(query)
        t = self._now(now)
        half_life = self._half_life
        table = self._query_item
        exposure = self._exposure_signal("search")
        out: dict[str, float] = {}
        for item_id in item_ids:
            n = _value(table, (key, item_id, "impression"), t, half_life)
            if n == 0.0 or n < min_shown:  # never shown for this query (or too rarely)
                continue
            if exposure != "impression":
                n = _value(table, (key, item_id, exposure), t, half_life)
            out[item_id] = self._smoothed_ctr(_value(table, (key, item_id, "click"), t, half_life), n)
        return out

    def query_served(self, query: str, *, now: datetime | None = None) -> float:
        """Time-decayed number of lists served for `query` (0 for a query never served)."""
        return _value(self._query_served, query_key(query), self._now(now), self._half_life)

    def query_item_signal(
        self, query: str, item_id: str, signal: str, *, now: datetime | None = None
    ) -> float:
        counter = self._query_item.get((query_key(query), item_id, signal))
        return counter.get(self._now(now), self._half_life) if counter else 0.0

    def popularity(self, *, signal: str = "purchase", now: datetime | None = None) -> dict[str, float]:
        """Decayed counts of one signal for every item that has any."""
        t = self._now(now)
        with self._lock:
            return {
                item: counter.get(t, self._half_life)
                for (item, surface, sig), counter in self._item.items()
                if surface == "*" and sig == signal
            }

    def profile(self, user_id: str | None, *, now: datetime | None = None) -> UserProfile:
        with self._lock:
            user = self._users.get(user_id) if user_id else None
            if user is None:
                return UserProfile(user_id or "", (), (), {}, {}, frozenset(), frozenset())
            t = self._now(now)
            return UserProfile(
                user_id=user_id or "",
                recent_items=tuple(item for item, _, _ in user.recent or ()),
                recent_queries=tuple(user.queries or ()),
                category_affinity={k: c.get(t, self._half_life) for k, c in (user.categories or {}).items()},
                brand_affinity={k: c.get(t, self._half_life) for k, c in (user.brands or {}).items()},
                purchased=frozenset(user.purchased or ()),
                disliked=frozenset(user.disliked or ()),
                fatigue={k: c.get(t, self._fatigue_half_life) for k, c in (user.shown or {}).items()},
            )

    def known_user(self, user_id: str) -> bool:
        return user_id in self._users

    def delete_user(self, user_id: str) -> dict[str, int]:
        """Forget everything held about one shopper; returns what was removed.

        Item and query counters are aggregates over many shoppers and keep no user id,
        so they are not per-user state; the user's own history, queries, affinities,
        purchases, dislikes and ratings are.
        """
        with self._lock:
            user = self._users.pop(user_id, None)
            if user is None:
                return {"recent_items": 0, "queries": 0, "affinities": 0, "sessions": 0, "shown_items": 0}
            return {
                "recent_items": len(user.recent or ()),
                "shown_items": len(user.shown or ()),
                "queries": len(user.queries or ()),
                "affinities": len(user.categories or ()) + len(user.brands or ()),
                "sessions": len(user.sessions or ()),
            }

    def stats(self) -> dict[str, int | float]:
        with self._lock:
            return {
                "events_seen": self.events_seen,
                "users": len(self._users),
                "item_counters": len(self._item),
                "query_item_counters": len(self._query_item),
                "last_event_at": self.last_event_at,
            }
