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


def _first(expl: Mapping[str, Any], *paths: tuple[str, ...]) -> float:
    for path in paths:
        value = _nested(expl, *path)
        if value is not None:
            return value
    return 0.0


class FeatureAssembler:
    """Stateless: `transform` maps candidates + context to a (n, len(FEATURE_NAMES)) matrix."""

    names: tuple[str, ...] = FEATURE_NAMES

    def transform(
        self, item_ids: Sequence[str], explanations: Sequence[Mapping[str, Any]], ctx: FeatureContext
    ) -> np.ndarray:
        """(n, d) float32 features; `explanations[i]` is candidate i's explanation dict."""
        n = len(item_ids)
        out = np.zeros((n, len(self.names)), dtype=np.float32)
        if n == 0:
            return out
        online = ctx.online
        cfg = online.config
        prior = cfg.ctr_prior_clicks / cfg.ctr_prior_impressions
        qkey = query_key(ctx.query)
        profile = ctx.profile
        known = profile is not None and profile.is_known
        recent_vecs = self._recent_vectors(ctx) if known else None
        surface = ctx.surface
        for row, (item_id, expl) in enumerate(zip(item_ids, explanations, strict=True)):
            f = out[row]
            f[0] = _first(expl, ("retrieval_score",), ("model_score",), ("featured_score",))
            f[1] = _first(expl, ("scores", "bm25"))
            f[2] = _first(expl, ("scores", "dense"))
            f[3] = _first(expl, ("cross_encoder",), ("cross_encoder_score",))
            f[4] = _first(expl, ("model_score",))
            product = ctx.products(item_id)
            if known and profile is not None:
                if product is not None:
                    cat = max(
                        (profile.category_affinity.get(c, 0.0) for c in product.category_path), default=0.0
                    )
                    brand = profile.brand_affinity.get(product.brand or "", 0.0)
                    # log1p squashes decayed counts so one heavy shopper's history stays in range.
                    f[5] = math.copysign(math.log1p(abs(cat)), cat)
                    f[6] = math.copysign(math.log1p(abs(brand)), brand)
                if recent_vecs is not None and ctx.item_vector is not None:
                    vec = ctx.item_vector(item_id)
                    if vec is not None:
                        f[7] = float(np.max(recent_vecs @ vec))
                f[8] = 1.0 if item_id in profile.disliked else 0.0
            shown = online.item_count(item_id, "impression", surface=surface)
            clicks = online.item_count(item_id, "click", surface=surface)
            f[9] = math.log1p(shown)
            f[10] = math.log1p(clicks)
            f[11] = online.item_ctr(item_id, surface=surface)
            f[12] = math.log1p(online.item_count(item_id, "purchase"))
            if qkey:
                q_shown = online.query_item_signal(qkey, item_id, "impression")
                q_clicks = online.query_item_signal(qkey, item_id, "click")
                f[13] = math.log1p(q_shown)
                f[14] = math.log1p(q_clicks)
                f[15] = online.query_item_ctr(qkey, item_id)
                f[16] = f[15] - prior  # > 0: clicked more than an unknown item would be
            price = product.price if product is not None else None
            if price is not None and price > 0:
                f[17] = math.log1p(price)
                f[18] = 1.0
            rank = _nested(expl, "retrievers", "bm25", "rank")
            f[19] = math.log1p(rank if rank else _NOT_RETRIEVED_RANK)
            matched = expl.get("matched_terms")
            f[20] = float(len(matched)) if isinstance(matched, list | tuple) else 0.0
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
