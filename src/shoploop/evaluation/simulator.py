"""Shopper simulator: drives a real engine through its public library calls and reacts like shoppers.

The loop under test is the production loop: the simulator only calls `search`,
`recommend`, `browse` and `ingest_events` (the `ShopEngine` / `CategoryEngine` protocols
below, which the engine satisfies structurally; evaluation never imports the engine), and every click, cart or
purchase it sends carries the served list's `request_id`, exactly as a shop's front end
would.

* `SearchShoppers` (semi-synthetic, Home Depot): a shopper issues a query that has human
  relevance judgments, looks at slot r with probability 1/r^eta (position-based model,
  up to `patience` slots), clicks an examined item with a probability that rises with
  its true grade (1 = irrelevant .. 3 = exact), and sometimes buys (less often, also
  rising with the grade). Items without a judgment count as irrelevant (grade 1).
* `CategoryShoppers` (synthetic taste over a real or generated catalog): each shopper has
  favourite brands the engine does not know; on a category page they examine slot r with
  probability 1/r^eta and click a favourite-brand product more often than any other, so
  an order that learns the taste from their clicks earns more clicks per page.
* `BrowsingShoppers` (Amazon Industrial & Scientific sequences): a shopper wants their
  real held-out future (the items they really consumed next) and, less strongly, items
  like those (an interest neighbourhood, e.g. `text_neighbourhoods`): the interest stays
  for the whole run, as a hobby or a trade does, so there is something lasting for a feed
  to learn. On the home feed they click an examined item with a probability set by which
  of the two it is in (else a small noise probability); an item once clicked is consumed
  (not clicked again), so a feed that keeps showing the same things earns less and less.

All randomness comes from the caller's `numpy.random.Generator`, so arms of a benchmark
can replay the same shoppers with common random numbers. Time can come from a
`SimulatedClock` shared with the engine (`engine.clock`): event timestamps order the log,
decay the online counters and pick each retrain's held-out lists, so with the wall clock
two runs of the same seed differ; with a simulated clock they are identical.
"""

from __future__ import annotations

import math
import threading
import zlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import numpy as np

from shoploop.evaluation.metrics import ndcg_at_k


class ServedItemLike(Protocol):
    item_id: str
    position: int


class ServedListLike(Protocol):
    request_id: str
    items: Sequence[Any]  # ServedItemLike


class ShopEngine(Protocol):
    """The three public calls the simulator needs (the engine's library API)."""

    def search(self, query: str, *, user_id: str | None = None, k: int | None = None) -> Any: ...

    def recommend(self, user_id: str | None, *, k: int | None = None) -> Any: ...

    def ingest_events(self, rows: Sequence[Mapping[str, Any]]) -> Sequence[Any]: ...


def wall_clock() -> datetime:
    return datetime.now(UTC)


def click_rows(
    served: ServedListLike, user_id: str, clicks: np.ndarray, now: datetime
) -> list[dict[str, Any]]:
    """The click events a front end sends for the clicked slots of `served`: each with the
    list's request_id and the slot's position."""
    return [
        {
            "type": "click",
            "user_id": user_id,
            "item_id": item.item_id,
            "request_id": served.request_id,
            "position": item.position,
            "timestamp": now.isoformat(),
        }
        for item, clicked in zip(served.items, clicks, strict=True)
        if clicked
    ]


class SimulatedClock:
    """A clock that starts at `start` and moves `step` forward on every reading.

    Strictly increasing, so events keep the order they were made in, and the same sequence
    of calls always reads the same times. Share one between an engine and its shoppers.
    """

    def __init__(
        self, start: datetime = datetime(2026, 1, 1, tzinfo=UTC), step: timedelta = timedelta(milliseconds=10)
    ) -> None:
        if start.tzinfo is None:
            raise ValueError("start: give a timezone-aware datetime")
        if step <= timedelta(0):
            raise ValueError("step: must be positive")
        self._next = start
        self._step = step
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            now = self._next
            self._next = now + self._step
            return now


# ---------------------------------------------------------------------------- search


@dataclass(frozen=True)
class SearchShopperConfig:
    eta: float = 1.0  # examination of slot r ~ 1 / r^eta
    patience: int = 10  # slots beyond this are never looked at
    noise: float = 0.02  # click probability of an examined irrelevant item
    click_max: float = 0.7  # click probability of an examined grade-3 item
    buy_max: float = 0.25  # purchase probability after clicking a grade-3 item
    cart_before_buy: bool = True
    k: int = 10
    price: float = 10.0  # unit price sent with purchases when the catalog has none


@dataclass
class SearchOutcome:
    query: str
    request_id: str | None
    items: list[str]
    grades: np.ndarray  # (k,) true grade of each shown item
    clicks: np.ndarray  # (k,) 0/1
    purchases: np.ndarray  # (k,) 0/1
    ndcg10: float
    explored: bool = False  # the engine shuffled this list to explore


class SearchShoppers:
    """Search shoppers over judged queries; `judgments[query][item_id] = grade (1..3)`."""

    def __init__(
        self,
        judgments: Mapping[str, Mapping[str, float]],
        config: SearchShopperConfig = SearchShopperConfig(),
        *,
        price: Callable[[str], float | None] | None = None,
        clock: Callable[[], datetime] = wall_clock,
    ) -> None:
        self.judgments = judgments
        self.config = config
        self._price = price
        self.clock = clock

    def grades(self, query: str, items: Sequence[str]) -> np.ndarray:
        judged = self.judgments.get(query, {})
        return np.array([judged.get(i, 1.0) for i in items], dtype=float)

    def ndcg(self, query: str, items: Sequence[str], k: int = 10) -> float:
        """NDCG@k of a shown list against the query's judgments (gain = grade - 1)."""
        ideal = np.array(list(self.judgments.get(query, {}).values()), dtype=float) - 1.0
        if not len(ideal) or ideal.max() <= 0:
            return float("nan")
        gains = self.grades(query, items[:k]) - 1.0
        return float(ndcg_at_k(gains[None, :], k, ideal[None, :])[0])

    def oracle(self, query: str, pool: Sequence[str]) -> list[str]:
        """The label oracle: the candidate pool sorted by true grade (stable)."""
        grades = self.grades(query, pool)
        return [pool[i] for i in np.argsort(-grades, kind="stable")]

    def react(self, query: str, items: Sequence[str], rng: np.random.Generator) -> tuple[np.ndarray, ...]:
        """(grades, clicks, purchases) of one shopper on one shown list."""
        c = self.config
        grades = self.grades(query, items)
        rel = np.clip((grades - 1.0) / 2.0, 0.0, 1.0) ** 2
        ranks = np.arange(1, len(items) + 1)
        # Draw the same number of uniforms whatever the list, so arms stay in lockstep.
        u_exam, u_click, u_buy = rng.random((3, c.k))
        n = len(items)
        examined = (u_exam[:n] < ranks ** (-c.eta)) & (ranks <= c.patience)
        p_click = c.noise + (c.click_max - c.noise) * rel
        clicks = examined & (u_click[:n] < p_click)
        buys = clicks & (u_buy[:n] < c.buy_max * rel)
        return grades, clicks.astype(int), buys.astype(int)

    def search(
        self,
        engine: ShopEngine,
        query: str,
        user_id: str,
        rng: np.random.Generator,
        *,
        feedback: bool = True,
    ) -> SearchOutcome:
        """One shopper: search through the engine, react, send the reactions back."""
        served = engine.search(query, user_id=user_id, k=self.config.k)
        items = [i.item_id for i in served.items]
        grades, clicks, buys = self.react(query, items, rng)
        if feedback:
            rows = self.feedback_rows(served, user_id, clicks, buys)
            if rows:
                engine.ingest_events(rows)
        explored = bool(getattr(served, "explored", False))  # engines that never explore may not say
        return SearchOutcome(
            query, served.request_id, items, grades, clicks, buys, self.ndcg(query, items), explored
        )

    def feedback_rows(
        self, served: ServedListLike, user_id: str, clicks: np.ndarray, buys: np.ndarray
    ) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        now = self.clock().isoformat()
        for item, clicked, bought in zip(served.items, clicks, buys, strict=True):
            if not clicked:
                continue
            base = {
                "user_id": user_id,
                "item_id": item.item_id,
                "request_id": served.request_id,
                "timestamp": now,
            }
            rows.append({"type": "click", "position": item.position, **base})
            if bought:
                price = (self._price(item.item_id) if self._price else None) or self.config.price
                if self.config.cart_before_buy:
                    rows.append({"type": "add_to_cart", **base})
                rows.append(
                    {
                        "type": "purchase",
                        "user_id": user_id,
                        "request_id": served.request_id,
                        "timestamp": now,
                        "items": [{"item_id": item.item_id, "price": price, "quantity": 1}],
                    }
                )
        return rows


# ---------------------------------------------------------------------------- browsing


@dataclass(frozen=True)
class BrowsingShopperConfig:
    eta: float = 1.0
    patience: int = 10
    target_click: float = 0.9  # click probability of an examined item the shopper wants next
    interest_click: float = 0.2  # ... of an examined item in the shopper's interest neighbourhood
    noise: float = 0.01  # click probability of any other examined item
    k: int = 10
    # Items differ in appeal to everyone (as `CategoryShopperConfig.appeal_sigma`): each click
    # probability is multiplied by the item's fixed log-normal factor; 0 = taste only.
    appeal_sigma: float = 0.0


@dataclass
class BrowseOutcome:
    user_id: str
    request_id: str | None
    items: list[str]
    clicks: np.ndarray
    target_clicks: int  # clicks on the shopper's real next items
    interest_clicks: int = 0  # clicks on other items in their interest neighbourhood


@dataclass
class BrowsingShoppers:
    """Shoppers who want their real next items and, less strongly, items like them."""

    futures: dict[str, list[str]]  # user -> items they really consumed next, in order
    config: BrowsingShopperConfig = field(default_factory=BrowsingShopperConfig)
    interests: Mapping[str, frozenset[str]] = field(default_factory=dict)  # user -> items like their wants
    clock: Callable[[], datetime] = wall_clock

    def __post_init__(self) -> None:
        self._wants = {u: list(items) for u, items in self.futures.items()}
        self._clicked: dict[str, set[str]] = {}

    def remaining(self, user_id: str) -> list[str]:
        return self._wants.get(user_id, [])

    def visit(
        self, engine: ShopEngine, user_id: str, rng: np.random.Generator, *, feedback: bool = True
    ) -> BrowseOutcome:
        c = self.config
        served = engine.recommend(user_id, k=c.k)
        items = [i.item_id for i in served.items]
        wants = self._wants.setdefault(user_id, [])
        liked = self.interests.get(user_id, frozenset())
        clicked = self._clicked.setdefault(user_id, set())
        u_exam, u_click = rng.random((2, c.k))
        clicks = np.zeros(len(items), dtype=int)
        hits = interest_hits = 0
        for n, item in enumerate(items):
            rank = n + 1
            if rank > c.patience or u_exam[n] >= rank ** (-c.eta):
                continue
            wanted = item in wants
            interesting = not wanted and item in liked and item not in clicked
            p = c.target_click if wanted else c.interest_click if interesting else c.noise
            if u_click[n] < min(1.0, p * item_appeal(item, c.appeal_sigma)):
                clicks[n] = 1
                clicked.add(item)
                if wanted:
                    wants.remove(item)
                    hits += 1
                elif interesting:
                    interest_hits += 1
        if feedback and clicks.any():
            engine.ingest_events(click_rows(served, user_id, clicks, self.clock()))
        return BrowseOutcome(user_id, served.request_id, items, clicks, hits, interest_hits)


class CategoryEngine(Protocol):
    """What `CategoryShoppers` calls: category pages and event intake."""

    def browse(self, category: str, *, user_id: str | None = None, k: int | None = None) -> Any: ...

    def ingest_events(self, rows: Sequence[Mapping[str, Any]]) -> Sequence[Any]: ...


@dataclass(frozen=True)
class CategoryShopperConfig:
    eta: float = 0.7  # a page is scanned further down than a feed: examination 1 / rank^eta
    patience: int = 24
    favourite_click: float = 0.25  # click probability of an examined product of a favourite brand
    other_click: float = 0.03  # ... of any other examined product
    k: int = 24
    # Products differ in appeal to everyone (pictures, reviews, value): each product's click
    # probability is multiplied by a log-normal factor with this sigma and mean 1 (0 = no such
    # differences, the taste is brand only). Drawn from the product id, so every arm and run
    # meets the same appeal.
    appeal_sigma: float = 0.0


def item_appeal(item_id: str, sigma: float) -> float:
    """A product's fixed log-normal appeal factor (mean 1), a pure function of its id."""
    if sigma <= 0:
        return 1.0
    z = float(np.random.default_rng(zlib.crc32(item_id.encode())).standard_normal())
    return math.exp(sigma * z - sigma * sigma / 2)


@dataclass
class CategoryVisit:
    user_id: str
    category: str
    items: list[str]
    clicks: np.ndarray
    favourite_shown: int  # favourite-brand products among the first 10 shown


@dataclass
class CategoryShoppers:
    """Shoppers with favourite brands (their lasting taste, unknown to the engine) who open
    category pages, scan them from the top and click what they like more often."""

    favourites: Mapping[str, frozenset[str]]  # user -> brands they prefer
    brand_of: Mapping[str, str | None]  # item -> brand
    config: CategoryShopperConfig = field(default_factory=CategoryShopperConfig)
    clock: Callable[[], datetime] = wall_clock

    def visit(
        self, engine: CategoryEngine, user_id: str, category: str, rng: np.random.Generator
    ) -> CategoryVisit:
        c = self.config
        served = engine.browse(category, user_id=user_id, k=c.k)
        items = [i.item_id for i in served.items]
        liked = self.favourites.get(user_id, frozenset())
        u_exam, u_click = rng.random((2, c.k))  # drawn whatever the list, for common random numbers
        clicks = np.zeros(len(items), dtype=int)
        for n, item in enumerate(items):
            rank = n + 1
            if rank > c.patience or u_exam[n] >= rank ** (-c.eta):
                continue
            p = c.favourite_click if self.brand_of.get(item) in liked else c.other_click
            clicks[n] = int(u_click[n] < min(1.0, p * item_appeal(item, c.appeal_sigma)))
        if clicks.any():
            engine.ingest_events(click_rows(served, user_id, clicks, self.clock()))
        shown = sum(self.brand_of.get(i) in liked for i in items[:10])
        return CategoryVisit(user_id, category, items, clicks, shown)


def text_neighbourhoods(
    texts: Mapping[str, str], seeds: Mapping[str, Sequence[str]], size: int, *, min_similarity: float = 0.2
) -> dict[str, frozenset[str]]:
    """Per user, the items most like their seed items by TF-IDF cosine of the item text.

    texts: item id -> text (title, category, brand); seeds: user -> item ids (e.g. their real
    next items). Each seed contributes its `size` nearest other items with cosine at least
    `min_similarity`; the seeds themselves are left out. Deliberately a different text model
    from anything the engine ranks with, so the simulated taste is not the model's own notion
    of similarity.
    """
    from sklearn.feature_extraction.text import TfidfVectorizer

    if min_similarity < 0:  # TF-IDF cosines lie in [0, 1]; the seeds are kept out at -1
        raise ValueError("min_similarity: must be >= 0")

    ids = list(texts)
    row = {item: i for i, item in enumerate(ids)}
    matrix = TfidfVectorizer(sublinear_tf=True, min_df=1).fit_transform([texts[i] for i in ids])
    out: dict[str, frozenset[str]] = {}
    for user, items in seeds.items():
        own = [row[i] for i in items if i in row]
        near: set[str] = set()
        if own:
            sims = (matrix[own] @ matrix.T).toarray()
            for sim in sims:
                sim[own] = -1.0  # never a seed itself: below any similarity floor
                top = np.argsort(-sim, kind="stable")[:size]
                near.update(ids[j] for j in top if sim[j] >= min_similarity)
        out[user] = frozenset(near)
    return out


def arrival_schedule(
    users: Sequence[str], n_visits: int, rng: np.random.Generator, *, active: int = 200
) -> list[str]:
    """Who visits at each step when shoppers come and go: `active` shoppers are around at a time,
    each visit is by one of them at random, and after a visit that shopper leaves with
    probability `(len(users) - active) / n_visits`, replaced by the next newcomer (so the
    run meets about everyone once, each for about `n_visits / len(users)` visits).

    Unlike picking from the whole population every step, a shopper's visits are bunched in a
    stretch of the run, and every stretch mixes first and later visits in the same proportions.
    A trend over the run is then the system learning from everyone's feedback, not the same
    shoppers getting older. Newcomers are drawn without replacement, then the order repeats.
    """
    if not users:
        raise ValueError("users: need at least one shopper")
    order = [users[i] for i in rng.permutation(len(users))]
    active = max(1, min(active, len(order)))
    present = order[:active]
    next_up = active
    # Leaving at this rate brings in about len(users) - active newcomers over the run, so
    # the population lasts; a larger share would recycle shoppers whose wants are used up.
    leave = min(1.0, max(len(order) - active, 1) / max(n_visits, 1))
    out = []
    for _ in range(n_visits):
        slot = int(rng.integers(active))
        out.append(present[slot])
        if rng.random() < leave:
            present[slot] = order[next_up % len(order)]
            next_up += 1
    return out
