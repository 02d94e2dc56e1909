"""Feature assembly for (query or shopper, item) pairs, shared by training and serving.

One `FeatureAssembler` turns a candidate list plus a `FeatureContext` (the query, the
shopper's profile, the online counters) into a matrix with fixed, named columns, so the
learned ranker sees exactly the same features when it is trained from the logs as when
it serves. Features come from:

* retrieval: the fused hybrid score and the per-retriever scores (BM25, dense) the
  searcher puts in each candidate's explanation, and a cross-encoder score if present;
* the shopper: category / brand affinity, similarity of the item to recently viewed
  items (when item vectors are given), the sequential model's score (recommendations);
* the item: decayed popularity and Beta-smoothed click-through, overall and for this
  query, from `OnlineState`; price.

Position is deliberately NOT a feature: a model that sees the slot an item was shown in
learns "top slots get clicks" (position bias) instead of what shoppers prefer, and at
serving time there is no slot yet.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from shoploop.domain import Product
from shoploop.feedback.online import OnlineState, UserProfile

FEATURE_NAMES: tuple[str, ...] = (
    "fused",  # hybrid retrieval score (the recommender's on feeds, the featured score on category pages)
    "bm25",
    "dense",
    "cross_encoder",
    "sequential_score",
    "category_affinity",
    "brand_affinity",
    "recent_similarity",
    "disliked",
    "item_impressions_log",
    "item_clicks_log",
    "item_ctr",
    "item_purchases_log",
    "query_impressions_log",
    "query_clicks_log",
    "query_ctr",
    "query_ctr_excess",
    "price_log",
    "has_price",
    "bm25_rank_log",  # log(1 + BM25's full-catalog rank); 0 rank (not retrieved) -> a deep rank
    "matched_terms",  # query terms found in the item's text
    # How often this shopper was shown the item on the home feed without engaging (decayed,
    # position-weighted; `UserProfile.fatigue`), log1p-squashed. New features go last: a ranker
    # trained before one existed still serves, reading its own columns by name.
    "fatigue",
)

_NOT_RETRIEVED_RANK = 1000.0


def query_key(query: str | None) -> str:
    """The key `OnlineState` files per-(query, item) counters under (raw query, lower-cased)."""
    return (query or "").strip().lower()


@dataclass(frozen=True)
class FeatureContext:
    """Everything about the request that features depend on (besides the candidates)."""

    online: OnlineState
    products: Callable[[str], Product | None]
    query: str | None = None
    profile: UserProfile | None = None
    surface: str = "search"
    # Optional item vectors (e.g. the searcher's dense vectors) for "similar to recently viewed".
    item_vector: Callable[[str], np.ndarray | None] | None = None


def _nested(expl: Mapping[str, Any], *path: str) -> float | None:
    """The finite number at `path` in an explanation, else None (missing, not a number, NaN/inf)."""
    value: Any = expl
    for key in path:
        if not isinstance(value, Mapping) or key not in value:
            return None
        value = value[key]
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


_ABSENT = object()


def _number(expl: Mapping[str, Any], path: tuple[str, ...]) -> float | None:
    """`_nested(expl, *path)`, with a fast path for the common case: plain dicts holding a
    float or an int. Anything else (Mapping subclasses, strings, numpy scalars, bools, ...)
    takes `_nested`, so the result is the same for every input; the fast path only skips
    its isinstance(Mapping) checks (an ABC check each) and the try/except."""
    value: Any = expl
    for key in path:
        if type(value) is not dict:
            return _nested(expl, *path)
        value = value.get(key, _ABSENT)
        if value is _ABSENT:
            return None
    kind = type(value)
    if kind is float:
        return value if value - value == 0.0 else None  # x - x is 0 unless x is NaN or +-inf
    if kind is int:
        return float(value)  # finite, or OverflowError as `_nested` raises for a huge int
    return _nested(expl, *path)


def _first(expl: Mapping[str, Any], *paths: tuple[str, ...]) -> float:
    for path in paths:
        value = _number(expl, path)
        if value is not None:
            return value
    return 0.0


def _signed_log1p(x: float) -> float:
    return math.copysign(math.log1p(abs(x)), x)


class FeatureAssembler:
    """Stateless: `transform` maps candidates + context to a (n, len(FEATURE_NAMES)) matrix."""

    names: tuple[str, ...] = FEATURE_NAMES

    def transform(
        self, item_ids: Sequence[str], explanations: Sequence[Mapping[str, Any]], ctx: FeatureContext
    ) -> np.ndarray:
        """(n, d) float32 features; `explanations[i]` is candidate i's explanation dict.

        Runs on every re-ranked request (50-150 candidates), so it is written for speed: each
        row is a tuple of Python floats (doubles) and the matrix is cast to float32 once at the
        end, instead of ~20 numpy scalar writes per row. Casting a double to float32 in one
        array cast rounds exactly as writing it into a float32 element did, so the features are
        bit for bit what the plain per-row version gave (tests/feedback/test_features_fast.py
        checks this against it). Math stays in `math` (not numpy's vectorised log1p, which may
        differ in the last bit) for the same reason.
        """
        n = len(item_ids)
        if n == 0:
            return np.zeros((0, len(self.names)), dtype=np.float32)
        online = ctx.online
        cfg = online.config
        prior = cfg.ctr_prior_clicks / cfg.ctr_prior_impressions
        qkey = query_key(ctx.query)
        profile = ctx.profile if ctx.profile is not None and ctx.profile.is_known else None
        recent_vecs = self._recent_vectors(ctx) if profile is not None else None
        item_vector = ctx.item_vector if recent_vecs is not None else None
        fatigue = profile.fatigue if profile is not None else {}
        surface = ctx.surface
        products = ctx.products
        log1p = math.log1p
        item_count = online.item_count
        item_ctr = online.item_ctr
        q_signal = online.query_item_signal
        q_ctr = online.query_item_ctr
        rows: list[tuple[float, ...]] = []
        for item_id, expl in zip(item_ids, explanations, strict=True):
            product = products(item_id)
            cat = brand = similar = disliked = tired = 0.0
            if profile is not None:
                if product is not None:
                    by_category = profile.category_affinity
                    cat = max((by_category.get(c, 0.0) for c in product.category_path), default=0.0)
                    # log1p squashes decayed counts so one heavy shopper's history stays in range.
                    cat = _signed_log1p(cat)
                    brand = _signed_log1p(profile.brand_affinity.get(product.brand or "", 0.0))
                if item_vector is not None:
                    vec = item_vector(item_id)
                    if vec is not None:
                        similar = float(np.max(recent_vecs @ vec))
                disliked = 1.0 if item_id in profile.disliked else 0.0
                tired = log1p(fatigue.get(item_id, 0.0))
            q_shown = q_clicks = q_rate = 0.0
            if qkey:
                q_shown = log1p(q_signal(qkey, item_id, "impression"))
                q_clicks = log1p(q_signal(qkey, item_id, "click"))
                q_rate = q_ctr(qkey, item_id)
            price = product.price if product is not None else None
            priced = price is not None and price > 0
            rank = _number(expl, ("retrievers", "bm25", "rank"))
            matched = expl.get("matched_terms")
            rows.append(
                (
                    _first(expl, ("retrieval_score",), ("model_score",), ("featured_score",)),
                    _first(expl, ("scores", "bm25")),
                    _first(expl, ("scores", "dense")),
                    _first(expl, ("cross_encoder",), ("cross_encoder_score",)),
                    _first(expl, ("model_score",)),
                    cat,
                    brand,
                    similar,
                    disliked,
                    log1p(item_count(item_id, "impression", surface=surface)),
                    log1p(item_count(item_id, "click", surface=surface)),
                    item_ctr(item_id, surface=surface),
                    log1p(item_count(item_id, "purchase")),
                    q_shown,
                    q_clicks,
                    q_rate,
                    0.0,  # query_ctr_excess: set below, from the float32 query_ctr
                    log1p(price) if priced else 0.0,
                    1.0 if priced else 0.0,
                    log1p(rank if rank else _NOT_RETRIEVED_RANK),
                    float(len(matched)) if isinstance(matched, list | tuple) else 0.0,
                    tired,
                )
            )
        out = np.array(rows, dtype=np.float64).astype(np.float32)
        if qkey:
            # > 0: clicked more than an unknown item would be. Float32 arithmetic on the stored
            # query_ctr (NumPy 2 keeps a float32 minus a Python float in float32), as it always was.
            out[:, 16] = out[:, 15] - np.float32(prior)
        return out

    @staticmethod
    def _recent_vectors(ctx: FeatureContext) -> np.ndarray | None:
        if ctx.item_vector is None or ctx.profile is None:
            return None
        vecs = [v for i in ctx.profile.recent_items[-10:] if (v := ctx.item_vector(i)) is not None]
        return np.stack(vecs) if vecs else None


def retrieval_explanations(
    searcher: Any, query: str, item_ids: Sequence[str], *, pool: int = 200
) -> list[dict[str, Any]]:
    """Recompute the retrieval part of the explanations for logged (query, item) pairs.

    The impression log stores each shown item's final score, not its per-retriever scores,
    so training rebuilds them with the same searcher and the same call the engine serves
    with (`searcher.search`), so the features match serving exactly; items outside the
    top `pool` get their fused score from `score_items` and no retriever ranks.
    `searcher` is a fitted `HybridSearcher`.
    """
    hits = {h.item_id: h for h in searcher.search(query, k=pool, candidates=pool).items}
    missing = [i for i in item_ids if i not in hits]
    fused_missing = dict(zip(missing, searcher.score_items(query, missing), strict=True)) if missing else {}
    out: list[dict[str, Any]] = []
    for item in item_ids:
        hit = hits.get(item)
        if hit is not None:
            out.append({**hit.explanation, "retrieval_score": hit.score})
        else:
            fused = float(fused_missing.get(item, 0.0))
            out.append({"retrieval_score": fused if math.isfinite(fused) else 0.0})
    return out
