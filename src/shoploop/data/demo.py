"""A deterministic demo shop: catalog + a month of simulated shopper behaviour.

`generate_demo_store(DemoConfig(seed=...))` returns a `DatasetBundle` that looks like a
small real shop's export, so every later layer (search, recommendations, feedback,
dashboard) has something to chew on without any external data.

What is simulated (all from one seeded numpy Generator, so the same config gives
byte-identical records, event ids and timestamps included):

- Catalog: `n_categories` two-level categories ("Kitchen > Cookware"), invented brands
  per category, titles composed from brand + adjective + material + product noun + size
  + colour, 1-3 sentence descriptions, log-normal prices around a per-category median
  (brands have price tiers), colour / material / size attributes, ~5 % out of stock.
  Each product also has a hidden quality used by the simulated shoppers.
- Shoppers with latent tastes: a Dirichlet preference over categories, per-brand
  affinities and a price sensitivity. Each has a Poisson number of sessions spread over
  the window (evening-heavy). A session holds 1-4 served lists: a search (real-looking
  queries, ~5 % with a typo such as "cordles drill") or the home feed. Every list is
  logged as an `impression` (request_id, 1-based positions, scores, propensity 1,
  policy "demo-static"); the search ranking is a simple noisy term-match relevance.
- Clicks follow a position-biased examination model (P(examine slot k) ~ k^-0.8) times
  an attractiveness that grows with the shopper's utility for the item and its match to
  the query; clicks carry the request_id and position, and are followed by a product
  `view`, sometimes `add_to_cart` (never for out-of-stock items), `remove_from_cart`,
  a `purchase` (price and quantity) and, days later, a `rating` correlated with taste.
  Home-feed items a shopper clearly dislikes sometimes get a `dislike`.
- Noise the cleaning rules should catch: a few bot users who click almost every item
  in fast bursts (flagged by ingestion), ~1 % human double clicks (quarantined as
  duplicate clicks) and a handful of views of retired SKUs missing from the catalog
  (quarantined as unknown items). `bundle.notes` lists the bot ids and retired SKUs.

Timestamps come from `config.end` (a fixed date by default, NOT the wall clock) minus
`config.days`, so output is reproducible; pass `end=datetime.now(UTC)` for a shop whose
history ends today.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from pydantic import TypeAdapter

from shoploop.data.datasets.types import DatasetBundle
from shoploop.data.demo_vocab import ADJECTIVES, CATEGORIES, COLOURS, QUERY_MODIFIERS, CategorySpec
from shoploop.domain import (
    AddToCartEvent,
    ClickEvent,
    DislikeEvent,
    Event,
    ImpressionEvent,
    Product,
    PurchaseEvent,
    PurchaseLine,
    RatingEvent,
    RemoveFromCartEvent,
    SearchEvent,
    ShownItem,
    ViewEvent,
)

DEFAULT_END = datetime(2026, 11, 1, tzinfo=UTC)
_SHOWN_ADAPTER: TypeAdapter[tuple[ShownItem, ...]] = TypeAdapter(tuple[ShownItem, ...])
POLICY = "demo-static"
RETIRED_PREFIX = "SKU-RETIRED-"

# Sessions start more often in the evening; weights per hour of day (UTC), peak 19-21 h.
_HOUR_WEIGHTS = np.array(
    [1, 0.6, 0.4, 0.3, 0.3, 0.5, 1, 2, 3, 3.5, 3.5, 4, 4.5, 4, 3.5, 3.5, 4, 4.5, 5.5, 6.5, 7, 6, 4, 2],
    dtype=float,
)
_UPPER = {"usb-c": "USB-C", "hdmi": "HDMI", "led": "LED", "tpe": "TPE", "gan": "GaN", "spf": "SPF"}
_UPPER |= {"wifi": "Wi-Fi", "bpa-free": "BPA-Free", "diy": "DIY"}
_TOKEN = re.compile(r"[a-z0-9]+")
_KEYBOARD_NEIGHBOURS = {
    "a": "sq", "b": "vn", "c": "xv", "d": "sf", "e": "wr", "f": "dg", "g": "fh", "h": "gj", "i": "uo",
    "j": "hk", "k": "jl", "l": "k", "m": "n", "n": "bm", "o": "ip", "p": "o", "q": "w", "r": "et",
    "s": "ad", "t": "ry", "u": "yi", "v": "cb", "w": "qe", "x": "zc", "y": "tu", "z": "x",
}  # fmt: skip


@dataclass(frozen=True)
class DemoConfig:
    """Size and behaviour of the demo shop. Defaults give ~3k products and ~50k events."""

    seed: int = 7
    n_products: int = 3000
    n_categories: int = 20
    n_users: int = 600
    n_bots: int = 4
    days: int = 30
    end: datetime = DEFAULT_END
    sessions_per_user: float = 8.0  # mean; per-user activity is Gamma-distributed around it
    search_share: float = 0.7  # share of served lists that are searches (rest: home feed)
    search_list_size: int = 20
    home_list_size: int = 12
    typo_rate: float = 0.05
    out_of_stock_rate: float = 0.05
    double_click_rate: float = 0.01
    n_retired_views: int = 10
    currency: str = "USD"

    def __post_init__(self) -> None:
        if not 1 <= self.n_categories <= len(CATEGORIES):
            raise ValueError(f"n_categories must be in 1..{len(CATEGORIES)}, got {self.n_categories}")
        if self.n_products < self.n_categories:
            raise ValueError("n_products must be at least n_categories")
        if self.n_users < 1 or self.days < 1:
            raise ValueError("n_users and days must be >= 1")
        if self.end.tzinfo is None:
            raise ValueError("end must be timezone-aware")
        for name in ("search_share", "typo_rate", "out_of_stock_rate", "double_click_rate"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1]")

    @property
    def start(self) -> datetime:
        return self.end - timedelta(days=self.days)


def _title_word(word: str) -> str:
    low = word.lower()
    if low in _UPPER:
        return _UPPER[low]
    if any(ch.isdigit() for ch in word) or word != low:
        return word
    return "-".join(part[:1].upper() + part[1:] for part in word.split("-"))


def _title_case(text: str) -> str:
    return " ".join(_title_word(w) for w in text.split())


def tokens(text: str) -> list[str]:
    """Lower-case alphanumeric tokens (the demo's own tiny tokenizer for its relevance)."""
    return _TOKEN.findall(text.lower())


def make_typo(word: str, rng: np.random.Generator) -> str:
    """One realistic slip: drop, double, swap or mistype a letter (never the first)."""
    if len(word) < 4:
        return word
    i = int(rng.integers(1, len(word) - 1))
    op = int(rng.integers(0, 4))
    if op == 0:  # "cordless" -> "cordles"
        return word[:i] + word[i + 1 :]
    if op == 1:
        return word[:i] + word[i] + word[i:]
    if op == 2:
        return word[:i] + word[i + 1] + word[i] + word[i + 2 :]
    near = _KEYBOARD_NEIGHBOURS.get(word[i], "")
    return word[:i] + (near[int(rng.integers(0, len(near)))] if near else word[i]) + word[i + 1 :]


def _sigmoid(x: np.ndarray | float) -> np.ndarray | float:
    return 1.0 / (1.0 + np.exp(-x))


@dataclass
class _Catalog:
    specs: list[CategorySpec]
    products: list[Product]
    cat: np.ndarray  # (n,) category index
    brand: np.ndarray  # (n,) global brand index
    quality: np.ndarray  # (n,) hidden quality, N(0, 1)
    log_rel_price: np.ndarray  # (n,) log(price / category median)
    price: np.ndarray  # (n,)
    in_stock: np.ndarray  # (n,) bool
    brands: list[str]
    index: dict[str, np.ndarray] = field(default_factory=dict)  # token -> product indices
    idf: dict[str, float] = field(default_factory=dict)


def _build_catalog(config: DemoConfig, rng: np.random.Generator) -> _Catalog:
    specs = list(CATEGORIES[: config.n_categories])
    brands = sorted({b for spec in specs for b in spec.brands})
    brand_tier = {b: float(np.exp(rng.normal(0.0, 0.25))) for b in brands}
    n = config.n_products
    # Every category gets at least one product; the rest are spread at random.
    cat = np.sort(np.concatenate([np.arange(len(specs)), rng.integers(0, len(specs), size=n - len(specs))]))
    quality = rng.normal(0.0, 1.0, size=n)
    in_stock = rng.random(n) >= config.out_of_stock_rate
    products: list[Product] = []
    brand_idx = np.zeros(n, dtype=int)
    price = np.zeros(n)
    log_rel = np.zeros(n)
    postings: dict[str, list[int]] = {}
    fillers = (
        "Easy to clean and built to last.",
        "Ships in recyclable packaging.",
        "Customers like it for the value.",
        "Covered by a {years}-year warranty.",
        "Designed and tested in our workshop.",
    )
    for k in range(n):
        spec = specs[int(cat[k])]
        noun = spec.nouns[int(rng.integers(len(spec.nouns)))]
        brand = spec.brands[int(rng.integers(len(spec.brands)))]
        adjective = ADJECTIVES[int(rng.integers(len(ADJECTIVES)))]
        material = spec.materials[int(rng.integers(len(spec.materials)))]
        size = spec.sizes[int(rng.integers(len(spec.sizes)))]
        colour = COLOURS[int(rng.integers(len(COLOURS)))]
        use = spec.uses[int(rng.integers(len(spec.uses)))]
        p = spec.median_price * brand_tier[brand] * float(np.exp(rng.normal(0.0, 0.4) + 0.3 * quality[k]))
        p = max(0.99, round(p) - 0.01)
        price[k] = p
        log_rel[k] = math.log(p / spec.median_price)
        brand_idx[k] = brands.index(brand)
        with_material = rng.random() < 0.6
        name = f"{adjective} {_title_case(material) + ' ' if with_material else ''}{_title_case(noun)}"
        title = f"{brand} {name}, {size}, {colour}"
        article = "An" if adjective[0].lower() in "aeiou" else "A"
        sentences = [f"{article} {adjective.lower()} {noun} from {brand} in {material}, built for {use}."]
        if rng.random() < 0.7:
            sentences.append(f"Comes in {colour.lower()}, size {size}.")
        if rng.random() < 0.5:
            filler = fillers[int(rng.integers(len(fillers)))]
            sentences.append(filler.format(years=int(rng.integers(1, 6))))
        products.append(
            Product(
                item_id=f"SKU-{k + 1:05d}",
                title=title,
                description=" ".join(sentences),
                category_path=spec.path,
                brand=brand,
                price=p,
                currency=config.currency,
                attributes={"colour": colour, "material": material, "size": size},
                in_stock=bool(in_stock[k]),
                updated_at=config.start,
            )
        )
        words = set(tokens(f"{title} {material} {' '.join(spec.path)}"))
        for word in words:
            postings.setdefault(word, []).append(k)
    catalog = _Catalog(
        specs=specs,
        products=products,
        cat=cat,
        brand=brand_idx,
        quality=quality,
        log_rel_price=log_rel,
        price=price,
        in_stock=in_stock,
        brands=brands,
    )
    catalog.index = {w: np.array(ix, dtype=int) for w, ix in postings.items()}
    catalog.idf = {w: math.log(1 + n / len(ix)) for w, ix in postings.items()}
    return catalog


class _Simulator:
    """Holds the catalog, the shoppers' latent tastes and the event sink for one run."""

    def __init__(self, config: DemoConfig, rng: np.random.Generator, catalog: _Catalog) -> None:
        self.config = config
        self.rng = rng
        self.catalog = catalog
        self.events: list[Event] = []
        self._counter = 0
        self._requests = 0
        self._orders = 0
        self.start = config.start
        self.horizon = config.days * 86400.0
        n_users, n_cat = config.n_users, len(catalog.specs)
        self.cat_pref = rng.dirichlet(np.full(n_cat, 0.3), size=n_users)
        self.brand_aff = rng.normal(0.0, 0.6, size=(n_users, len(catalog.brands)))
        self.price_sens = rng.uniform(0.2, 1.5, size=n_users)
        # Log-preference relative to uniform, clipped so an unloved category is unlikely, not impossible.
        self.cat_util = np.clip(np.log(self.cat_pref * n_cat + 1e-9), -3.0, 2.0) * 0.6
        # The static home feed: a fixed popularity order (quality) over in-stock items.
        self.home_pool = np.argsort(-(catalog.quality + 0.5 * rng.normal(size=len(catalog.products))))
        self.home_pool = self.home_pool[catalog.in_stock[self.home_pool]][:60]
        self.item_ids = [p.item_id for p in catalog.products]

    # ---------------------------------------------------------------- helpers

    def _id(self, kind: str) -> str:
        self._counter += 1
        return f"demo{self.config.seed}-{kind}{self._counter:07d}"

    def _when(self, t: float) -> datetime:
        # Millisecond resolution keeps the ISO strings short and stable.
        return self.start + timedelta(milliseconds=round(t * 1000))

    def shown(self, items: np.ndarray, scores: np.ndarray | None) -> tuple[ShownItem, ...]:
        ids = self.item_ids
        score_list = np.round(scores, 4).tolist() if scores is not None else [None] * items.size
        # One validation call for the whole list runs in pydantic-core, several times faster
        # than constructing each ShownItem in Python.
        return _SHOWN_ADAPTER.validate_python(
            [
                {"item_id": ids[i], "position": k + 1, "score": sc, "propensity": 1.0}
                for k, (i, sc) in enumerate(zip(items.tolist(), score_list, strict=True))
            ]
        )

    def utility(self, user: int, items: np.ndarray) -> np.ndarray:
        c = self.catalog
        return (
            self.cat_util[user, c.cat[items]]
            + self.brand_aff[user, c.brand[items]]
            + 0.5 * c.quality[items]
            - self.price_sens[user] * c.log_rel_price[items]
        )

    def make_query(self, spec: CategorySpec) -> str:
        rng = self.rng
        noun = spec.nouns[int(rng.integers(len(spec.nouns)))]
        form = rng.random()
        if form < 0.40:
            query = noun
        elif form < 0.55:
            query = f"{spec.brands[int(rng.integers(len(spec.brands)))]} {noun}"
        elif form < 0.68:
            query = f"{spec.materials[int(rng.integers(len(spec.materials)))]} {noun}"
        elif form < 0.76:
            query = f"{noun} {COLOURS[int(rng.integers(len(COLOURS)))]}"
        elif form < 0.86:
            query = spec.path[1]
        else:
            query = f"{QUERY_MODIFIERS[int(rng.integers(len(QUERY_MODIFIERS)))]} {noun}"
        query = query.lower()
        if rng.random() < self.config.typo_rate:
            words = query.split()
            long_words = [i for i, w in enumerate(words) if len(w) >= 4]
            if long_words:
                i = long_words[int(rng.integers(len(long_words)))]
                words[i] = make_typo(words[i], rng)
                query = " ".join(words)
        return query

    def search(self, query: str, size: int) -> tuple[np.ndarray, np.ndarray, int]:
        """(items, scores, n_results): a noisy term-match ranking, best first."""
        c = self.catalog
        scores = np.zeros(len(c.products))
        for word in set(tokens(query)):
            postings = c.index.get(word)
            if postings is not None:
                scores[postings] += c.idf[word]
        matched = np.flatnonzero(scores > 0)
        if matched.size == 0:
            # Zero results: shops show a "popular items" fallback; the search event says 0 results.
            items = self.home_pool[:size]
            return items, np.zeros(len(items)), 0
        s = scores[matched] / scores.max() + 0.15 * c.quality[matched] + self.rng.normal(0, 0.1, matched.size)
        order = np.argsort(-s, kind="stable")[:size]
        return matched[order], s[order], int(matched.size)

    def home_feed(self, size: int) -> tuple[np.ndarray, np.ndarray]:
        pool = self.home_pool
        s = self.catalog.quality[pool] + self.rng.normal(0, 0.3, pool.size)
        order = np.argsort(-s, kind="stable")[:size]
        return pool[order], s[order]

    # ---------------------------------------------------------------- shoppers

    def session_starts(self, n: int) -> np.ndarray:
        rng = self.rng
        days = rng.integers(0, self.config.days, size=n)
        hours = rng.choice(24, size=n, p=_HOUR_WEIGHTS / _HOUR_WEIGHTS.sum())
        t = days * 86400.0 + hours * 3600.0 + rng.uniform(0, 3600, size=n)
        # Keep sessions (under ~1 h) inside the window.
        return np.sort(np.minimum(t, self.horizon - 3 * 3600.0))

    def run_user(self, user: int, user_id: str, n_sessions: int) -> None:
        for s, t0 in enumerate(self.session_starts(n_sessions)):
            self.run_session(user, user_id, f"{user_id}-s{s + 1}", float(t0))

    def run_session(self, user: int, user_id: str, session_id: str, t: float) -> None:
        rng, c, cfg = self.rng, self.catalog, self.config
        common: dict[str, Any] = {"user_id": user_id, "session_id": session_id}
        cart: dict[int, tuple[int, str]] = {}  # product -> (quantity, request_id)
        if rng.random() < 0.08:
            # A product page reached from outside the shop (newsletter, ad): no served list.
            cat = int(rng.choice(len(c.specs), p=self.cat_pref[user]))
            options = np.flatnonzero(c.cat == cat)
            item = int(options[rng.integers(options.size)])
            self.events.append(
                ViewEvent(
                    event_id=self._id("e"),
                    timestamp=self._when(t),
                    item_id=c.products[item].item_id,
                    context={"referrer": "newsletter"},
                    **common,
                )
            )
            t += float(rng.uniform(10, 60))
        n_lists = min(4, int(rng.geometric(0.55)))
        for _ in range(n_lists):
            t = self.run_list(user, common, t, cart)
            t += float(rng.uniform(15, 120))
        for item in list(cart):
            if rng.random() < 0.15:
                qty, request_id = cart.pop(item)
                t += float(rng.uniform(5, 40))
                self.events.append(
                    RemoveFromCartEvent(
                        event_id=self._id("e"),
                        timestamp=self._when(t),
                        item_id=c.products[item].item_id,
                        request_id=request_id,
                        quantity=qty,
                        **common,
                    )
                )
        if cart and rng.random() < 0.5:
            t += float(rng.uniform(30, 300))
            self._orders += 1
            lines = tuple(
                PurchaseLine(item_id=c.products[i].item_id, quantity=q, price=float(c.price[i]))
                for i, (q, _) in cart.items()
            )
            request_ids = {r for _, r in cart.values()}
            self.events.append(
                PurchaseEvent(
                    event_id=self._id("e"),
                    timestamp=self._when(t),
                    order_id=f"order-{cfg.seed}-{self._orders:06d}",
                    items=lines,
                    currency=cfg.currency,
                    request_id=request_ids.pop() if len(request_ids) == 1 else None,
                    **common,
                )
            )
            for item in cart:
                if rng.random() < 0.3:
                    when = t + float(rng.uniform(1, 10)) * 86400.0
                    if when >= self.horizon:
                        continue  # the review would arrive after the export
                    u = float(self.utility(user, np.array([item]))[0])
                    stars = int(np.clip(round(3.0 + 1.1 * u + rng.normal(0, 0.7)), 1, 5))
                    self.events.append(
                        RatingEvent(
                            event_id=self._id("e"),
                            timestamp=self._when(when),
                            item_id=c.products[item].item_id,
                            rating=stars,
                            user_id=user_id,
                        )
                    )

    def run_list(
        self, user: int, common: dict[str, Any], t: float, cart: dict[int, tuple[int, str]]
    ) -> float:
        rng, c, cfg = self.rng, self.catalog, self.config
        self._requests += 1
        request_id = f"req-{cfg.seed}-{self._requests:07d}"
        cat = int(rng.choice(len(c.specs), p=self.cat_pref[user]))
        is_search = rng.random() < cfg.search_share
        query: str | None = None
        relevance: np.ndarray
        if is_search:
            query = self.make_query(c.specs[cat])
            items, scores, n_results = self.search(query, cfg.search_list_size)
            self.events.append(
                SearchEvent(
                    event_id=self._id("e"),
                    timestamp=self._when(t),
                    query=query,
                    request_id=request_id,
                    n_results=n_results,
                    **common,
                )
            )
            t += 0.3
            relevance = np.clip(scores, 0.0, 1.2)
        else:
            items, scores = self.home_feed(cfg.home_list_size)
            relevance = np.zeros(items.size)
        if items.size == 0:
            return t  # nothing to show (every product out of stock)
        self.events.append(
            ImpressionEvent(
                event_id=self._id("e"),
                timestamp=self._when(t),
                request_id=request_id,
                surface="search" if is_search else "home",
                query=query,
                items=self.shown(items, scores),
                policy=POLICY,
                model_version="demo-v1",
                **common,
            )
        )
        util = self.utility(user, items)
        positions = np.arange(1, items.size + 1)
        examine = positions**-0.8
        attract = _sigmoid(util + 1.5 * relevance - 3.2)
        clicked = np.flatnonzero(rng.random(items.size) < examine * attract)[:3]
        for k in clicked:
            item = int(items[k])
            pid = c.products[item].item_id
            t += float(rng.uniform(2, 20))
            click = {"item_id": pid, "request_id": request_id, "position": int(k) + 1, **common}
            self.events.append(ClickEvent(event_id=self._id("e"), timestamp=self._when(t), **click))
            if rng.random() < cfg.double_click_rate:
                self.events.append(ClickEvent(event_id=self._id("e"), timestamp=self._when(t + 0.4), **click))
            t += 1.0
            self.events.append(
                ViewEvent(
                    event_id=self._id("e"),
                    timestamp=self._when(t),
                    item_id=pid,
                    request_id=request_id,
                    **common,
                )
            )
            t += float(rng.uniform(10, 90))
            if c.in_stock[item] and item not in cart and rng.random() < float(_sigmoid(util[k] - 0.5)) * 0.4:
                qty = 1 if rng.random() < 0.85 else int(rng.integers(2, 4))
                cart[item] = (qty, request_id)
                self.events.append(
                    AddToCartEvent(
                        event_id=self._id("e"),
                        timestamp=self._when(t),
                        item_id=pid,
                        request_id=request_id,
                        quantity=qty,
                        price=float(c.price[item]),
                        **common,
                    )
                )
        if not is_search:
            clicked_set = set(clicked.tolist())
            disliked = [k for k in np.flatnonzero(util < -1.2).tolist() if k not in clicked_set]
            for k in disliked:
                if rng.random() < 0.05:
                    t += float(rng.uniform(1, 5))
                    self.events.append(
                        DislikeEvent(
                            event_id=self._id("e"),
                            timestamp=self._when(t),
                            item_id=c.products[int(items[k])].item_id,
                            request_id=request_id,
                            **common,
                        )
                    )
        return t

    def run_bot(self, user_id: str) -> None:
        """Bursts of searches where nearly every result gets clicked within a fraction of a second.

        A burst lasts until ~130 clicks (well over 120 events a minute), so ingestion's
        rate rule catches the bot even in a catalog too small for its distinct-items rule.
        """
        rng, c, cfg = self.rng, self.catalog, self.config
        for burst, t0 in enumerate(self.session_starts(int(rng.integers(3, 7)))):
            t = float(t0)
            common: dict[str, Any] = {"user_id": user_id, "session_id": f"{user_id}-s{burst + 1}"}
            n_clicks = 0
            while n_clicks < 130:
                spec = c.specs[int(rng.integers(len(c.specs)))]
                query = (
                    spec.nouns[int(rng.integers(len(spec.nouns)))]
                    if rng.random() < 0.5
                    else spec.path[0].lower()
                )
                items, _, n_results = self.search(query, cfg.search_list_size)
                if items.size == 0:
                    break  # nothing to click (e.g. everything out of stock): no burst
                self._requests += 1
                request_id = f"req-{cfg.seed}-{self._requests:07d}"
                self.events.append(
                    SearchEvent(
                        event_id=self._id("e"),
                        timestamp=self._when(t),
                        query=query,
                        request_id=request_id,
                        n_results=n_results,
                        **common,
                    )
                )
                self.events.append(
                    ImpressionEvent(
                        event_id=self._id("e"),
                        timestamp=self._when(t + 0.2),
                        request_id=request_id,
                        surface="search",
                        query=query,
                        items=self.shown(items, None),
                        policy=POLICY,
                        model_version="demo-v1",
                        **common,
                    )
                )
                t += 0.5
                for k, item in enumerate(items):
                    if rng.random() < 0.9:
                        n_clicks += 1
                        t += float(rng.uniform(0.1, 0.3))
                        click = {
                            "item_id": c.products[int(item)].item_id,
                            "request_id": request_id,
                            "position": k + 1,
                            **common,
                        }
                        self.events.append(
                            ClickEvent(event_id=self._id("e"), timestamp=self._when(t), **click)
                        )
                        if rng.random() < 0.1:
                            self.events.append(
                                ClickEvent(event_id=self._id("e"), timestamp=self._when(t + 0.3), **click)
                            )
                t += float(rng.uniform(0.5, 2))

    def retired_views(self, user_ids: list[str]) -> list[str]:
        rng = self.rng
        skus = [f"{RETIRED_PREFIX}{k + 1:03d}" for k in range(max(1, self.config.n_retired_views // 3))]
        for _ in range(self.config.n_retired_views):
            t = float(rng.uniform(0, self.horizon - 3600.0))
            self.events.append(
                ViewEvent(
                    event_id=self._id("e"),
                    user_id=user_ids[int(rng.integers(len(user_ids)))],
                    timestamp=self._when(t),
                    item_id=skus[int(rng.integers(len(skus)))],
                    context={"referrer": "old-bookmark"},
                )
            )
        return skus if self.config.n_retired_views else []


def generate_demo_store(config: DemoConfig | None = None) -> DatasetBundle:
    """Catalog + events of a simulated shop; identical output for identical `config`."""
    config = config or DemoConfig()
    rng = np.random.default_rng(config.seed)
    catalog = _build_catalog(config, rng)
    sim = _Simulator(config, rng, catalog)
    n_total = config.n_users + config.n_bots
    # Bots get ordinary-looking ids at random slots: nothing in the id gives them away.
    bot_slots = (
        set(rng.choice(n_total, size=config.n_bots, replace=False).tolist()) if config.n_bots else set()
    )
    activity = rng.gamma(2.0, config.sessions_per_user / 2.0, size=config.n_users)
    user_ids: list[str] = []
    bots: list[str] = []
    human = 0
    for slot in range(n_total):
        user_id = f"user-{slot + 1:04d}"
        if slot in bot_slots:
            bots.append(user_id)
            sim.run_bot(user_id)
            continue
        user_ids.append(user_id)
        sim.run_user(human, user_id, max(1, int(rng.poisson(activity[human]))))
        human += 1
    retired = sim.retired_views(user_ids)
    # Stable sort: events of one timestamp keep their causal (generation) order.
    events = sorted(sim.events, key=lambda e: e.timestamp)
    return DatasetBundle(
        products=catalog.products,
        events=events,
        name=f"demo-{config.seed}",
        notes={
            "seed": config.seed,
            "start": config.start.isoformat(),
            "end": config.end.isoformat(),
            "bot_users": bots,
            "retired_skus": retired,
        },
    )


__all__ = ["DEFAULT_END", "DemoConfig", "generate_demo_store", "make_typo", "tokens"]
