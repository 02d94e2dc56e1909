"""Query suggestions as the shopper types (autocomplete), learned from the shop's own searches.

Suggestions come from two sources, served in two tiers:

1. **searches** — queries shoppers typed, normalised like search (case, spacing, units), ranked
   by a count of searches that fades with a half-life; a search whose list then got a click,
   cart or purchase counts `1 + success_bonus`, so queries that find what people want rise
   above ones that are typed often and abandoned. Updated on every event, like the rest of the
   online state, so a query many shoppers start typing today is suggested today.
2. **catalog** — brand and category names, and 1-3 word phrases found in at least
   `min_phrase_products` product titles, so a shop with no traffic yet still completes "cord"
   to "cordless drill". They fill the places the searches tier leaves empty.

What is never suggested:
* a query fewer than `min_users` distinct shoppers searched (k-anonymity): what one person
  typed — a name, an order number, an e-mail — must not be shown to anyone else;
  `forget_user` takes an erased shopper out of every count of distinct shoppers;
* a query whose most recent search found nothing (a suggestion must lead somewhere);
* anything containing a blocked word or phrase — `SuggestConfig.blocked_terms`, plus the
  merchandisers' live list (`set_blocked`; the engine keeps it in `HOME/suggest_blocklist.txt`)
  — and over-long queries (pasted text).

Matching: the typed text, normalised, must start the suggestion or start one of its later
words ("drill" finds "cordless drill"), whole-suggestion starts first. Complete words typed
before the last may be typo-corrected by the catalog's corrector (`suggest(correct=...)`), so
"cordles dr" still completes. An empty prefix returns the most popular searches.

Which queries can be suggested changes rarely next to how often counts change, so the sorted
prefix index holds only membership and is rebuilt when membership changes, at most every
`rebuild_seconds` and off the request path; scores are read at lookup time.
"""

from __future__ import annotations

import bisect
import heapq
import math
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Sequence, Set
from dataclasses import dataclass, field
from typing import Literal

from shoploop.domain import (
    AddToCartEvent,
    BaseEvent,
    ClickEvent,
    ImpressionEvent,
    Product,
    PurchaseEvent,
    SearchEvent,
    shopper_of,
)
from shoploop.text.normalize import STOPWORDS, UNITS, is_numeric_token, normalize, normalize_query

Source = Literal["searches", "catalog"]
_SUCCESS_EVENTS = (ClickEvent, AddToCartEvent, PurchaseEvent)
_LAST = "\U0010ffff"  # sorts after every character: [prefix, prefix + _LAST) is the prefix's range
MAX_BLOCKED_TERMS = 5_000
MAX_BLOCKED_CHARS = 80
BLOCKLIST_FILE = "suggest_blocklist.txt"
POPULAR_SECONDS = 5.0  # how long the popular-searches answer to an empty box is reused


@dataclass(frozen=True)
class SuggestConfig:
    min_users: int = 3  # distinct shoppers who searched a query before anyone is shown it
    half_life_hours: float = 14 * 24.0  # how fast a query's popularity fades
    success_bonus: float = 2.0  # extra weight of a search whose list got a click, cart or purchase
    min_phrase_products: int = 3  # a title phrase must occur in this many products to be suggested
    max_phrase_words: int = 3
    max_catalog_phrases: int = 50_000  # the most common phrases are kept (brands and categories always)
    max_query_chars: int = 80  # longer "queries" are pasted text, never suggested
    max_query_words: int = 10  # real queries run long ("lever door knob schlage bed and bath")
    max_tracked_queries: int = 200_000  # beyond this the least popular tracked queries are forgotten
    blocked_terms: tuple[str, ...] = ()  # words that must never appear in a suggestion
    rebuild_seconds: float = 5.0  # 0 = rebuild the index on the request that finds it stale

    def __post_init__(self) -> None:
        if self.min_users < 1:
            raise ValueError(f"min_users must be at least 1, got {self.min_users!r}")
        if self.half_life_hours <= 0:
            raise ValueError(f"half_life_hours must be positive, got {self.half_life_hours!r}")
        if self.success_bonus < 0:
            raise ValueError(f"success_bonus must be >= 0, got {self.success_bonus!r}")
        if self.min_phrase_products < 1 or self.max_phrase_words < 1:
            raise ValueError("min_phrase_products and max_phrase_words must be at least 1")
        if self.rebuild_seconds < 0:
            raise ValueError(f"rebuild_seconds must be >= 0, got {self.rebuild_seconds!r}")


@dataclass(frozen=True)
class Suggestion:
    text: str
    source: Source
    score: float  # searches: decayed weighted searches; catalog: products the phrase names


@dataclass
class _QueryStats:
    weight: float = 0.0  # decayed count, as of `at`
    at: float = 0.0  # event time (seconds) of the last update
    shoppers: set[str] = field(default_factory=set)
    found_nothing: bool = False  # the latest search for it had no results

    def add(self, amount: float, ts: float, half_life_s: float) -> None:
        if ts > self.at:
            self.weight *= 0.5 ** ((ts - self.at) / half_life_s)
            self.at = ts
        self.weight += amount  # a late event counts as if it happened now (it is one event)

    def value(self, now: float, half_life_s: float) -> float:
        return self.weight * 0.5 ** (max(now - self.at, 0.0) / half_life_s)


@dataclass(frozen=True)
class _Index:
    keys: list[str]  # every word-start suffix of every suggestion, sorted
    entry: list[int]  # keys[i] belongs to texts[entry[i]]
    whole: list[bool]  # keys[i] is the start of the whole suggestion
    texts: list[str]  # texts[:n_searches] come from searches, the rest from the catalog
    n_searches: int
    catalog_scores: list[float]  # products per catalog phrase (0 for searches)


def _empty_index() -> _Index:
    return _Index([], [], [], [], 0, [])


def brand_and_category_names(product: Product) -> set[str]:
    names = {normalize(level) for level in product.category_path}
    if product.brand:
        names.add(normalize(product.brand))
    names.discard("")
    return names


def _starts_nothing(word: str) -> bool:
    """A word no phrase starts with: a stopword, the tail of a measure ("inch", "x") or a digit."""
    return word in STOPWORDS or word in UNITS or word == "x" or (len(word) == 1 and not word.isalpha())


def title_phrases(product: Product, max_words: int) -> set[str]:
    """The phrases a product contributes: its brand, category names and `title_runs`."""
    return brand_and_category_names(product) | title_runs(product.title, max_words)


def title_runs(title: str, max_words: int) -> set[str]:
    """1..max_words word runs of a title that are not fragments — no stopword at either end, no
    run starting on a unit ("inch cordless drill") or ending on one unless a number precedes it
    ("shower door in" no, "18 volt" yes), no lone letter at the end or number on its own
    ("l bracket" yes, "l" no)."""
    out: set[str] = set()
    words = normalize(title).split()
    for i, first in enumerate(words):
        if _starts_nothing(first):
            continue
        for n in range(1, max_words + 1):
            if i + n > len(words):
                break
            last = words[i + n - 1]
            if n == 1 and (len(first) < 2 or first.replace(".", "").isdigit()):
                continue
            if last in STOPWORDS or last == "x" or (len(last) == 1 and not last.isdigit()):
                continue  # "jacket m" is a jacket in size M, not a phrase
            if last in UNITS and (n == 1 or not is_numeric_token(words[i + n - 2])):
                continue
            out.add(" ".join(words[i : i + n]))
    return out


class QuerySuggester:
    """Autocomplete over the shop's searches and catalog; see the module docstring.

    Thread-safe: events arrive from the engine's request threads and its log follower while
    other threads ask for suggestions.
    """

    def __init__(
        self, config: SuggestConfig = SuggestConfig(), *, clock: Callable[[], float] = time.time
    ) -> None:
        self.config = config
        self.clock = clock  # "now" for fading popularity (a simulation passes its own)
        self._half_life_s = config.half_life_hours * 3600.0
        # Only "at least min_users" matters, so a popular query keeps a few of its shoppers, not
        # millions. With headroom above min_users, erasing some of them rarely hides a query
        # that others still search, and never shows one that too few shoppers searched.
        self._shoppers_kept = max(4 * config.min_users, 12)
        self._popular_cache: tuple[float, int, list[Suggestion]] | None = None
        self._blocked_words: frozenset[str] = frozenset()
        self._blocked_phrases: tuple[str, ...] = ()
        self._set_blocked(())
        self._lock = threading.RLock()
        self._queries: dict[str, _QueryStats] = {}
        self._by_shopper: dict[str, set[str]] = {}  # shopper -> queries they count towards
        self._requests: OrderedDict[str, str] = OrderedDict()  # request id -> query (for outcomes)
        self._succeeded: set[str] = set()  # request ids whose success was already counted
        # The products themselves (immutable, shared with the engine's catalog): a replaced or
        # deleted product's phrases are recomputed to take them back, instead of keeping every
        # product's phrase set (1.25M strings, ~150 MiB, for a 54k-product catalog).
        self._products: dict[str, Product] = {}
        self._brands_and_categories: Counter[str] = Counter()
        self._phrase_products: Counter[str] = Counter()
        self._eligible: set[str] = set()  # queries that may be suggested, as last indexed
        self._index = _empty_index()
        self._dirty = True
        self._built_at = -math.inf
        self._rebuilding = False

    # ------------------------------------------------------------------ catalog
    def set_catalog(self, products: Iterable[Product]) -> QuerySuggester:
        """Replace the catalog side with these products' phrases."""
        with self._lock:
            self._products.clear()
            self._phrase_products.clear()
            self._brands_and_categories.clear()
            self.upsert(products)
        return self

    def upsert(self, products: Iterable[Product]) -> None:
        """Add or replace products (a replaced product's old phrases are taken back)."""
        with self._lock:
            for p in products:
                self._take_back(p.item_id)
                self._products[p.item_id] = p
                names = brand_and_category_names(p)
                self._phrase_products.update(names | title_runs(p.title, self.config.max_phrase_words))
                self._brands_and_categories.update(names)
            self._dirty = True

    def delete(self, item_ids: Iterable[str]) -> None:
        with self._lock:
            for item_id in item_ids:
                self._take_back(item_id)
            self._dirty = True

    def _take_back(self, item_id: str) -> None:
        old = self._products.pop(item_id, None)
        if old is not None:
            names = brand_and_category_names(old)
            _decrement(self._phrase_products, names | title_runs(old.title, self.config.max_phrase_words))
            _decrement(self._brands_and_categories, names)

    # ------------------------------------------------------------------ events
    def observe(self, event: BaseEvent) -> None:
        """Take one accepted event: a search (or a served search list) counts for its query; a
        click, cart or purchase on a search list makes that search a success."""
        if isinstance(event, SearchEvent):
            self._searched(event.query, event, event.request_id, event.n_results)
        elif isinstance(event, ImpressionEvent):
            if event.surface == "search" and event.query:
                self._searched(event.query, event, event.request_id, len(event.items))
        elif isinstance(event, _SUCCESS_EVENTS):
            self._success(getattr(event, "request_id", None), event.timestamp.timestamp())

    def _searched(self, query: str, event: BaseEvent, request_id: str | None, n_results: int | None) -> None:
        key = normalize_query(query)
        if (
            not key
            or len(key) > self.config.max_query_chars
            or len(key.split()) > self.config.max_query_words
        ):
            return
        ts = event.timestamp.timestamp()
        shopper = shopper_of(event)
        with self._lock:
            # A search and the list it produced share a request id: count the search once.
            first = request_id is None or request_id not in self._requests
            stats = self._queries.get(key)
            if stats is None:
                stats = self._queries[key] = _QueryStats()
            if first:
                stats.add(1.0, ts, self._half_life_s)
            if request_id is not None:
                self._requests[request_id] = key
                while len(self._requests) > 200_000:  # outcomes arrive within minutes; bounded
                    self._succeeded.discard(self._requests.popitem(last=False)[0])
            if n_results is not None and (first or n_results == 0):
                stats.found_nothing = n_results == 0
            kept = stats.shoppers
            if shopper is not None and shopper not in kept and len(kept) < self._shoppers_kept:
                kept.add(shopper)
                self._by_shopper.setdefault(shopper, set()).add(key)
            if self._is_eligible(key, stats) != (key in self._eligible):
                self._dirty = True

    def _success(self, request_id: str | None, ts: float) -> None:
        if not request_id or self.config.success_bonus == 0:
            return
        with self._lock:
            key = self._requests.get(request_id)
            if key is None or request_id in self._succeeded:
                return
            self._succeeded.add(request_id)
            stats = self._queries.get(key)
            if stats is not None:
                stats.add(self.config.success_bonus, ts, self._half_life_s)

    def queries_of(self, user_id: str) -> list[str]:
        """The (normalised) queries a shopper counts towards in the distinct-shopper rule, for
        an access request: what autocomplete holds about them."""
        with self._lock:
            return sorted(self._by_shopper.get(f"u:{user_id}", ()))

    def forget_purged_searches(self, user_id: str, remaining: Iterable[BaseEvent]) -> int:
        """After a retention purge: a shopper stops counting towards the queries none of their
        `remaining` events (what the log still holds of them) searched; returns how many they
        were taken out of. Popularity counts are aggregates and keep fading."""
        still = {
            normalize_query(e.query)
            for e in remaining
            if isinstance(e, SearchEvent) or (isinstance(e, ImpressionEvent) and e.surface == "search")
            if e.query
        }
        return self._drop_shopper(user_id, keep=still)

    def forget_user(self, user_id: str) -> int:
        """Take an erased shopper out of every query's distinct-shopper count; returns how many
        queries they counted towards. Popularity counts are aggregates and keep fading."""
        return self._drop_shopper(user_id, keep=frozenset())

    def _drop_shopper(self, user_id: str, *, keep: Set[str]) -> int:
        """Take a shopper out of the distinct-shopper count of every query they count towards
        except those in `keep`; returns how many they were taken out of."""
        shopper = f"u:{user_id}"  # as `shopper_of` names a signed-in shopper
        with self._lock:
            keys = self._by_shopper.get(shopper)
            if not keys:
                return 0
            gone = keys - keep
            for key in gone:
                stats = self._queries.get(key)
                if stats is not None:
                    stats.shoppers.discard(shopper)
            keys -= gone
            if not keys:
                del self._by_shopper[shopper]
            if gone:
                self._dirty = True
            return len(gone)

    # ------------------------------------------------------------------ blocklist
    def set_blocked(self, terms: Iterable[str]) -> None:
        """Never suggest anything containing one of `terms` (words or phrases, matched on whole
        words after normalising), on top of `SuggestConfig.blocked_terms`; applies at once."""
        with self._lock:
            self._set_blocked(terms)
            self._dirty = True
        self.rebuild()  # a merchandiser taking a suggestion down expects it gone now

    def _set_blocked(self, terms: Iterable[str]) -> None:
        normal = {normalize(t) for t in (*self.config.blocked_terms, *terms)} - {""}
        self._blocked_words = frozenset(t for t in normal if " " not in t)
        self._blocked_phrases = tuple(sorted(t for t in normal if " " in t))

    def _is_blocked(self, text: str) -> bool:
        if self._blocked_words and not self._blocked_words.isdisjoint(text.split()):
            return True
        padded = f" {text} "
        return any(f" {phrase} " in padded for phrase in self._blocked_phrases)

    def _is_eligible(self, key: str, stats: _QueryStats) -> bool:
        return (
            len(stats.shoppers) >= self.config.min_users
            and not stats.found_nothing
            and not self._is_blocked(key)
        )

    # ------------------------------------------------------------------ index
    def rebuild(self) -> None:
        """Rebuild the prefix index from the current counts and catalog (start-up, tests)."""
        with self._lock:
            self._dirty = False
            self._forget_unpopular()
            eligible = {k for k, s in self._queries.items() if self._is_eligible(k, s)}
            named = [
                (p, float(self._phrase_products[p])) for p, n in self._brands_and_categories.items() if n > 0
            ]
            common = [
                (p, float(n))
                for p, n in self._phrase_products.items()
                if n >= self.config.min_phrase_products and self._brands_and_categories[p] <= 0
            ]
        common.sort(key=lambda x: (-x[1], x[0]))
        phrases = named + common[: max(self.config.max_catalog_phrases - len(named), 0)]
        texts = sorted(eligible)
        scores = [0.0] * len(texts)
        for p, n in phrases:
            if p in eligible or self._is_blocked(p):
                continue
            texts.append(p)
            scores.append(n)
        rows: list[tuple[str, int, bool]] = []
        for i, text in enumerate(texts):
            words = text.split()
            rows.extend((" ".join(words[j:]), i, j == 0) for j in range(len(words)))
        rows.sort()
        index = _Index(
            keys=[r[0] for r in rows],
            entry=[r[1] for r in rows],
            whole=[r[2] for r in rows],
            texts=texts,
            n_searches=len(eligible),
            catalog_scores=scores,
        )
        with self._lock:
            self._index, self._eligible = index, eligible
            self._popular_cache = None
            self._built_at = time.monotonic()
            self._rebuilding = False

    def _forget_unpopular(self) -> None:
        extra = len(self._queries) - self.config.max_tracked_queries
        if extra <= 0:
            return
        now = self.clock()
        doomed = sorted(self._queries, key=lambda k: self._queries[k].value(now, self._half_life_s))[:extra]
        for key in doomed:
            for shopper in self._queries.pop(key).shoppers:
                self._by_shopper.get(shopper, set()).discard(key)

    def _refresh_if_stale(self) -> None:
        in_background = self.config.rebuild_seconds > 0
        with self._lock:
            if not self._dirty or self._rebuilding:
                return
            if in_background and time.monotonic() - self._built_at < self.config.rebuild_seconds:
                return
            self._rebuilding = True
        if in_background:
            threading.Thread(target=self.rebuild, name="suggest-rebuild", daemon=True).start()
        else:
            self.rebuild()

    # ------------------------------------------------------------------ lookup
    def suggest(
        self, text: str, k: int = 8, *, correct: Callable[[str], str | None] | None = None
    ) -> list[Suggestion]:
        """Up to `k` completions of `text`, searches tier first (see the module docstring).
        `correct(word)` -> a correction or None, applied to complete words when the text as
        typed matches fewer than `k` suggestions."""
        self._refresh_if_stale()
        index = self._index
        typed = normalize(text)
        if not typed:
            return self._popular(index, k)
        found = self._matches(index, typed)
        if len(found) < k and correct is not None:
            fixed = _corrected_prefix(typed, text, correct)
            if fixed != typed:
                for i, how in self._matches(index, fixed).items():
                    found.setdefault(i, how - 2)  # after everything that matched as typed
        now = self.clock()
        searched = [(i, how) for i, how in found.items() if i < index.n_searches]
        with self._lock:
            best = heapq.nsmallest(
                k, ((-how, -self._popularity(index.texts[i], now), index.texts[i]) for i, how in searched)
            )
        out = [Suggestion(text, "searches", -neg) for _, neg, text in best]
        if len(out) < k:
            catalog = (
                (-how, -index.catalog_scores[i], index.texts[i])
                for i, how in found.items()
                if i >= index.n_searches
            )
            out += [
                Suggestion(text, "catalog", -neg) for _, neg, text in heapq.nsmallest(k - len(out), catalog)
            ]
        return out

    def _popularity(self, key: str, now: float) -> float:
        stats = self._queries.get(key)
        return stats.value(now, self._half_life_s) if stats is not None else 0.0

    @staticmethod
    def _matches(index: _Index, prefix: str) -> dict[int, int]:
        """entry -> 2 if the whole suggestion starts with `prefix`, 1 if only a later word does."""
        lo = bisect.bisect_left(index.keys, prefix)
        hi = bisect.bisect_left(index.keys, prefix + _LAST, lo)
        out: dict[int, int] = {}
        for j in range(lo, hi):
            e = index.entry[j]
            how = 2 if index.whole[j] else 1
            if out.get(e, 0) < how:
                out[e] = how
        return out

    def _popular(self, index: _Index, k: int) -> list[Suggestion]:
        """The most popular searches (nothing typed yet), recomputed at most every few seconds:
        it touches every suggestable query."""
        cached = self._popular_cache
        if cached is not None and cached[1] >= k and time.monotonic() - cached[0] < POPULAR_SECONDS:
            return cached[2][:k]
        now = self.clock()
        with self._lock:
            best = heapq.nsmallest(
                k, ((-self._popularity(t, now), t) for t in index.texts[: index.n_searches])
            )
        found = [Suggestion(text, "searches", -neg) for neg, text in best]
        self._popular_cache = (time.monotonic(), k, found)
        return found

    # ------------------------------------------------------------------ introspection
    def stats(self) -> dict[str, int]:
        with self._lock:
            return {
                "tracked_queries": len(self._queries),
                "suggestable_queries": len(self._eligible),
                "catalog_phrases": len(self._index.texts) - self._index.n_searches,
            }


def parse_blocklist(text: str) -> tuple[str, ...]:
    """A merchandiser's "never suggest" list: one word or phrase a line, '#' comments. Raises
    ValueError naming a line that holds nothing searchable or is too long."""
    terms: list[str] = []
    for lineno, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        term = normalize(line)
        if not term:
            raise ValueError(f"line {lineno}: {line!r} has no letters or digits to match")
        if len(term) > MAX_BLOCKED_CHARS:
            raise ValueError(f"line {lineno}: at most {MAX_BLOCKED_CHARS} characters")
        terms.append(term)
    if len(terms) > MAX_BLOCKED_TERMS:
        raise ValueError(f"at most {MAX_BLOCKED_TERMS:,} terms, got {len(terms):,}")
    return tuple(terms)


def _decrement(counts: Counter[str], keys: Iterable[str]) -> None:
    """Take one off each key, forgetting keys that reach zero (so catalog churn cannot grow it)."""
    for key in keys:
        left = counts[key] - 1
        if left > 0:
            counts[key] = left
        else:
            counts.pop(key, None)


def _corrected_prefix(typed: str, raw: str, correct: Callable[[str], str | None]) -> str:
    """`typed` with its complete words corrected; the last word is still being typed unless
    the raw text ends in a space, so it is left alone."""
    words = typed.split()
    complete = len(words) if raw[-1:].isspace() else len(words) - 1
    fixed: Sequence[str] = [correct(w) or w if i < complete else w for i, w in enumerate(words)]
    return " ".join(fixed)
