"""Recommendation surfaces: home feed, similar items, bought together, trending.

Everything here works on item indices (1..n_items) and per-item metadata arrays handed in
by the caller (the engine reads them from the catalog store); nothing imports a store or
the engine. Each result carries a short human-readable reason, because shoppers trust
("because you viewed X") and shop owners debug recommendations they can explain.

Pipeline of every surface: score candidates -> drop excluded / filtered items -> take a
candidate pool -> optional MMR re-ranking for diversity -> attach reasons.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from shoploop.recommend.base import NEG_INF, Recommender, clean_history

# ------------------------------------------------------------------------------ inputs


@dataclass(frozen=True)
class ItemMeta:
    """Per-item arrays indexed by item index (row 0 = padding, ignored)."""

    title: Sequence[str]
    category: np.ndarray | None = None  # (n+1,) str
    brand: np.ndarray | None = None  # (n+1,) str
    in_stock: np.ndarray | None = None  # (n+1,) bool
    price: np.ndarray | None = None  # (n+1,) float, NaN = unknown

    @property
    def n_items(self) -> int:
        return len(self.title) - 1


@dataclass(frozen=True)
class Filters:
    """Catalog filters; None = no constraint."""

    categories: frozenset[str] | None = None
    brands: frozenset[str] | None = None
    min_price: float | None = None
    max_price: float | None = None
    in_stock_only: bool = False


@dataclass(frozen=True)
class SurfaceConfig:
    # similar items = weighted blend of per-source scores, each scaled to [0, 1]
    cooccurrence_weight: float = 0.5
    text_weight: float = 0.3
    model_weight: float = 0.2
    mmr_lambda: float | None = None  # None = no diversity re-ranking; 1.0 = relevance only
    candidate_pool: int = 200
    reason_lookback: int = 10  # history items considered when explaining "because you viewed X"


@dataclass(frozen=True)
class Recommendation:
    item: int
    score: float
    reason: str


@dataclass
class Surfaces:
    """Serves the surfaces from already-fitted parts (any of them may be missing).

    model: next-item `Recommender` for the home feed (e.g. SASRec); cooccurrence: a model
    whose `similar_items` reflects co-viewing (e.g. ItemKNN); bought_together: the same kind
    of model fitted on purchase baskets; trending_scores: (n+1,) e.g.
    `TrendingPopularity.scores_`; text_emb / model_emb: (n+1, d) item embeddings.
    """

    meta: ItemMeta
    trending_scores: np.ndarray
    model: Recommender | None = None
    cooccurrence: Recommender | None = None
    bought_together_model: Recommender | None = None
    text_emb: np.ndarray | None = None
    model_emb: np.ndarray | None = None
    config: SurfaceConfig = field(default_factory=SurfaceConfig)

    def __post_init__(self) -> None:
        self._text_unit = _unit_rows(self.text_emb)
        self._model_unit = _unit_rows(self.model_emb)

    # --------------------------------------------------------------------- surfaces

    def home_feed(
        self,
        history: Sequence[int],
        k: int,
        *,
        purchased: Sequence[int] = (),
        disliked: Sequence[int] = (),
        filters: Filters | None = None,
        exclude_seen: bool = True,
        mmr_lambda: float | None = None,
    ) -> list[Recommendation]:
        """Next-item recommendations for a shopper; trending for unknown/empty histories."""
        n = self.meta.n_items
        hist = clean_history(history, n)
        if not hist or self.model is None:
            return self.trending(k, filters=filters, exclude=[*purchased, *disliked, *hist])
        scores = self.model.score([hist])[0].astype(np.float64)
        blocked = [*purchased, *disliked, *(hist if exclude_seen else [])]
        picked = self._select(scores, k, blocked, filters, mmr_lambda)
        return [Recommendation(i, s, self._because(i, hist)) for i, s in picked]

    def similar_items(
        self, item: int, k: int, *, filters: Filters | None = None, mmr_lambda: float | None = None
    ) -> list[Recommendation]:
        """Blend of co-occurrence, text cosine and model-embedding cosine."""
        n = self.meta.n_items
        if not 0 < item <= n:
            return []
        parts: dict[str, np.ndarray] = {}
        cfg = self.config
        if self.cooccurrence is not None and cfg.cooccurrence_weight > 0:
            parts["cooc"] = cfg.cooccurrence_weight * _scaled(
                _dense_neighbours(self.cooccurrence, item, cfg.candidate_pool, n)
            )
        if self._text_unit is not None and cfg.text_weight > 0:
            parts["text"] = cfg.text_weight * _scaled(self._text_unit @ self._text_unit[item])
        if self._model_unit is not None and cfg.model_weight > 0:
            parts["model"] = cfg.model_weight * _scaled(self._model_unit @ self._model_unit[item])
        if not parts:
            return self.trending(k, filters=filters, exclude=[item])
        total = np.sum(list(parts.values()), axis=0)
        picked = self._select(total, k, [item], filters, mmr_lambda)
        name = self._title(item)
        out = []
        for i, s in picked:
            main = max(parts, key=lambda p: parts[p][i])
            reason = f"often viewed with {name}" if main == "cooc" else f"similar to {name}"
            out.append(Recommendation(i, s, reason))
        return out

    def bought_together(self, item: int, k: int, *, filters: Filters | None = None) -> list[Recommendation]:
        """Items most often purchased with `item` (purchase co-occurrence); [] when unknown."""
        n = self.meta.n_items
        if self.bought_together_model is None or not 0 < item <= n:
            return []
        scores = _dense_neighbours(self.bought_together_model, item, self.config.candidate_pool, n)
        picked = self._select(scores, k, [item], filters, None)
        return [Recommendation(i, s, f"often bought with {self._title(item)}") for i, s in picked if s > 0]

    def trending(
        self, k: int, *, filters: Filters | None = None, exclude: Sequence[int] = ()
    ) -> list[Recommendation]:
        scores = np.asarray(self.trending_scores, dtype=np.float64).copy()
        picked = self._select(scores, k, exclude, filters, None)
        out = []
        for i, s in picked:
            cat = self.meta.category[i] if self.meta.category is not None else ""
            out.append(Recommendation(i, s, f"trending in {cat}" if cat else "trending now"))
        return out

    # ---------------------------------------------------------------------- helpers

    def allowed_mask(self, filters: Filters | None) -> np.ndarray:
        """(n+1,) bool: items passing the catalog filters (row 0 always False)."""
        m = self.meta
        ok = np.ones(m.n_items + 1, dtype=bool)
        ok[0] = False
        if filters is None:
            return ok
        if filters.categories is not None and m.category is not None:
            ok &= np.isin(m.category, list(filters.categories))
        if filters.brands is not None and m.brand is not None:
            ok &= np.isin(m.brand, list(filters.brands))
        if m.price is not None:
            price = np.asarray(m.price, dtype=np.float64)
            if filters.min_price is not None:
                ok &= price >= filters.min_price  # unknown (NaN) prices fail a price filter
            if filters.max_price is not None:
                ok &= price <= filters.max_price
        if filters.in_stock_only and m.in_stock is not None:
            ok &= np.asarray(m.in_stock, dtype=bool)
        return ok

    def _select(
        self,
        scores: np.ndarray,
        k: int,
        blocked: Sequence[int],
        filters: Filters | None,
        mmr_lambda: float | None,
    ) -> list[tuple[int, float]]:
        scores = np.asarray(scores, dtype=np.float64).copy()
        scores[~self.allowed_mask(filters)] = NEG_INF
        ids = np.asarray([b for b in blocked if 0 < b <= self.meta.n_items], dtype=np.int64)
        scores[ids] = NEG_INF
        finite = np.flatnonzero(np.isfinite(scores))
        if finite.size == 0:
            return []
        pool_size = min(max(self.config.candidate_pool, k), finite.size)
        pool = finite[np.argsort(-scores[finite], kind="stable")[:pool_size]]
        lam = self.config.mmr_lambda if mmr_lambda is None else mmr_lambda
        emb = self._model_unit if self._model_unit is not None else self._text_unit
        if lam is None or lam >= 1.0 or emb is None:
            chosen = pool[:k]
        else:
            chosen = mmr(scores[pool], emb[pool], k, lam, ids=pool)
        return [(int(i), float(scores[i])) for i in chosen]

    def _because(self, item: int, history: list[int]) -> str:
        recent = history[-self.config.reason_lookback :]
        emb = self._model_unit if self._model_unit is not None else self._text_unit
        if emb is None or not recent:
            return f"because you viewed {self._title(recent[-1])}" if recent else "recommended for you"
        sims = emb[recent] @ emb[item]
        return f"because you viewed {self._title(recent[int(np.argmax(sims))])}"

    def _title(self, item: int) -> str:
        title = self.meta.title[item] if 0 < item < len(self.meta.title) else ""
        return title or f"item {item}"


def mmr(relevance: np.ndarray, emb: np.ndarray, k: int, lam: float, *, ids: np.ndarray) -> np.ndarray:
    """Maximal marginal relevance (Carbonell & Goldstein, 1998) over a candidate pool.

    relevance: (m,), emb: (m, d) unit rows, ids: (m,) item ids. Greedily picks
    argmax lam * rel - (1 - lam) * max cosine to what is already picked; rel scaled to [0, 1].
    Returns up to k ids in pick order.
    """
    rel = _scaled(relevance)
    m = len(ids)
    picked: list[int] = []
    max_sim = np.full(m, -np.inf)
    available = np.ones(m, dtype=bool)
    for _ in range(min(k, m)):
        penalty = np.where(np.isfinite(max_sim), max_sim, 0.0)
        value = np.where(available, lam * rel - (1.0 - lam) * penalty, -np.inf)
        j = int(np.argmax(value))
        picked.append(j)
        available[j] = False
        max_sim = np.maximum(max_sim, emb @ emb[j])
    return ids[np.asarray(picked, dtype=np.int64)]


def _scaled(x: np.ndarray) -> np.ndarray:
    """Finite values min-max scaled to [0, 1]; -inf stays 0 weight (-inf -> 0)."""
    x = np.asarray(x, dtype=np.float64)
    out = np.zeros_like(x)
    finite = np.isfinite(x)
    if not finite.any():
        return out
    lo, hi = x[finite].min(), x[finite].max()
    out[finite] = (x[finite] - lo) / (hi - lo) if hi > lo else 1.0
    return out


def _unit_rows(emb: np.ndarray | None) -> np.ndarray | None:
    if emb is None:
        return None
    emb = np.asarray(emb, dtype=np.float32)
    norms = np.linalg.norm(emb, axis=1, keepdims=True)
    # Text vectors arrive unit-length (or zero for padding/unknown rows): share them instead
    # of holding a second copy (~70 MiB for a 46k-product catalog in a server).
    if np.all((np.abs(norms - 1.0) < 1e-4) | (norms == 0)):
        return emb
    return emb / np.where(norms > 0, norms, 1.0)


def _dense_neighbours(model: Recommender, item: int, pool: int, n: int) -> np.ndarray:
    """(n+1,) neighbour scores from a model's similar_items, -inf where not a neighbour."""
    idx, vals = model.similar_items(item, pool)
    out = np.full(n + 1, NEG_INF)
    ok = (idx > 0) & np.isfinite(vals)
    out[idx[ok]] = vals[ok]
    return out
