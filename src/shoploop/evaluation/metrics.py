"""Offline ranking and recommendation metrics: pure numpy functions over arrays.

Conventions shared by every function here:

* Ranked inputs are 2-D arrays in rank order, shape ``(n, L)``: row ``q`` is query/user ``q``,
  column ``i`` is rank ``i + 1``. Per-query metrics return an ``(n,)`` float array; the caller
  averages (so it can also compute confidence intervals or per-segment breakdowns).
* ``k`` larger than ``L`` is allowed: the missing tail counts as non-relevant (it was not
  shown), so e.g. ``precision_at_k`` still divides by ``k``.
* A query with no relevant item at all scores 0 (not NaN) for recall, AP and NDCG. That keeps
  averages defined; callers that prefer to drop such queries should filter them beforehand.
* Empty input (``n == 0``) returns an empty ``(0,)`` array; set-level metrics return 0.0.
* Item-index arrays (``recommended``) may be padded with ``-1``; padding is ignored.
* Gains are used as given (linear). For the exponential gain of Burges et al. (2005) pass
  ``exponential_gain(relevance)``.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "average_precision_at_k",
    "catalog_coverage",
    "dcg_at_k",
    "exponential_gain",
    "gini",
    "hit_rate_at_k",
    "hits_from_ranking",
    "intra_list_diversity",
    "map_at_k",
    "ndcg_at_k",
    "ndcg_from_rank",
    "novelty",
    "precision_at_k",
    "rank_of_target",
    "recall_at_k",
    "reciprocal_rank",
]

FloatArray = NDArray[np.float64]


def _as_2d(x: ArrayLike, name: str) -> FloatArray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim == 1 and arr.size == 0:
        return arr.reshape(0, 0)
    if arr.ndim != 2:
        raise ValueError(f"{name}: expected a 2-D array (n, L), got shape {arr.shape}")
    return arr


def _check_k(k: int) -> int:
    if int(k) < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    return int(k)


def _discounts(length: int) -> FloatArray:
    # 1 / log2(rank + 1) for rank = 1..length
    return 1.0 / np.log2(np.arange(2, length + 2, dtype=np.float64))


def exponential_gain(relevance: ArrayLike) -> FloatArray:
    """``2**rel - 1`` elementwise; same shape as ``relevance``."""
    return np.power(2.0, np.asarray(relevance, dtype=np.float64)) - 1.0


def dcg_at_k(gains: ArrayLike, k: int) -> FloatArray:
    """Discounted cumulative gain of the top ``k``.

    gains: (n, L) gain of the item at each rank, in rank order (NaN counts as 0).
    Returns (n,): ``sum_{r=1..min(k,L)} gains[:, r-1] / log2(r + 1)``.
    """
    k = _check_k(k)
    g = np.nan_to_num(_as_2d(gains, "gains")[:, :k])
    return g @ _discounts(g.shape[1])


def ndcg_at_k(gains: ArrayLike, k: int, ideal_gains: ArrayLike | None = None) -> FloatArray:
    """Normalised DCG@k.

    gains: (n, L) gains in the ranked order that was served.
    ideal_gains: (n, M) every judged gain of the query, any order, padded with 0 or NaN. When
        given, the ideal ranking sorts these (so relevant items the ranker failed to retrieve
        still count against it); when None, the ideal re-sorts ``gains`` itself (re-ranking
        evaluation, where the served list is the whole judged pool).
    Returns (n,) in [0, 1] for non-negative gains; 0 where the ideal DCG is 0.
    """
    k = _check_k(k)
    g = _as_2d(gains, "gains")
    ideal_src = g if ideal_gains is None else _as_2d(ideal_gains, "ideal_gains")
    if ideal_src.shape[0] != g.shape[0]:
        raise ValueError("ideal_gains must have the same number of rows as gains")
    ideal = -np.sort(-np.nan_to_num(ideal_src), axis=1)
    dcg = dcg_at_k(g, k)
    idcg = dcg_at_k(ideal, k) if ideal.shape[1] else np.zeros(g.shape[0])
    out = np.zeros_like(dcg)
    np.divide(dcg, idcg, out=out, where=idcg > 0)
    return out


def ndcg_from_rank(rank: ArrayLike, k: int) -> FloatArray:
    """NDCG@k when each query has exactly one relevant target (leave-one-out evaluation).

    rank: (n,) 1-based rank of the target in the full ranking; 0 (or anything < 1) means
        not found. The ideal DCG is 1 (target at rank 1), so NDCG = ``1 / log2(rank + 1)``
        when ``1 <= rank <= k`` else 0.
    Returns (n,).
    """
    k = _check_k(k)
    r = np.asarray(rank, dtype=np.float64).reshape(-1)
    ok = (r >= 1) & (r <= k)
    out = np.zeros_like(r)
    out[ok] = 1.0 / np.log2(r[ok] + 1.0)
    return out


def rank_of_target(
    scores: ArrayLike, target: ArrayLike, exclude: ArrayLike | None = None
) -> NDArray[np.int64]:
    """1-based rank of each target item under ``scores`` (full-catalogue ranking).

    scores: (n, n_items) higher is better. target: (n,) item index.
    exclude: optional (n, n_items) bool mask of items removed from the ranking (e.g. the
        user's history); the target itself is never excluded.
    Ties are broken pessimistically (items with an equal score rank ahead of the target),
    so a constant scorer does not look good.
    Returns (n,) int ranks in 1..n_items.
    """
    s = np.asarray(scores, dtype=np.float64)
    t = np.asarray(target, dtype=np.int64).reshape(-1)
    if s.ndim != 2 or s.shape[0] != t.shape[0]:
        raise ValueError("scores must be (n, n_items) with one target per row")
    rows = np.arange(t.shape[0])
    tscore = s[rows, t]
    ahead = s >= tscore[:, None]
    if exclude is not None:
        ahead &= ~np.asarray(exclude, dtype=bool)
    ahead[rows, t] = True  # the target itself, counted once
    return ahead.sum(axis=1).astype(np.int64)


def hits_from_ranking(ranked: ArrayLike, relevant: list[set[int]] | list[list[int]]) -> FloatArray:
    """0/1 relevance matrix (n, L) of a ranked item-index matrix (n, L) against relevant sets."""
    r = np.asarray(ranked)
    if r.ndim != 2 or r.shape[0] != len(relevant):
        raise ValueError("ranked must be (n, L) with one relevant set per row")
    out = np.zeros(r.shape, dtype=np.float64)
    for q, rel in enumerate(relevant):
        if len(rel):
            out[q] = np.isin(r[q], np.fromiter(rel, dtype=r.dtype if r.size else np.int64))
    return out


def recall_at_k(hits: ArrayLike, n_relevant: ArrayLike, k: int) -> FloatArray:
    """Fraction of the query's relevant items found in the top ``k``.

    hits: (n, L) 0/1 in rank order. n_relevant: (n,) number of relevant items per query
    (may exceed the hits in the list). Returns (n,); 0 where ``n_relevant == 0``.
    """
    k = _check_k(k)
    h = _as_2d(hits, "hits")[:, :k]
    nr = np.asarray(n_relevant, dtype=np.float64).reshape(-1)
    found = h.sum(axis=1)
    out = np.zeros_like(found)
    np.divide(found, nr, out=out, where=nr > 0)
    return out


def precision_at_k(hits: ArrayLike, k: int) -> FloatArray:
    """Relevant items in the top ``k`` divided by ``k`` (not by ``min(k, L)``). hits: (n, L) -> (n,)."""
    k = _check_k(k)
    return _as_2d(hits, "hits")[:, :k].sum(axis=1) / k


def hit_rate_at_k(hits: ArrayLike, k: int) -> FloatArray:
    """1 if any relevant item is in the top ``k`` else 0. hits: (n, L) -> (n,)."""
    k = _check_k(k)
    return (_as_2d(hits, "hits")[:, :k] > 0).any(axis=1).astype(np.float64)


def average_precision_at_k(hits: ArrayLike, n_relevant: ArrayLike, k: int) -> FloatArray:
    """AP@k = sum over relevant ranks r <= k of precision@r, divided by ``min(n_relevant, k)``.

    The ``min(., k)`` denominator (as in the common MAP@k definition) means a perfect top-k
    scores 1 even when the query has more than ``k`` relevant items.
    hits: (n, L) 0/1; n_relevant: (n,). Returns (n,); 0 where ``n_relevant == 0``.
    """
    k = _check_k(k)
    h = (_as_2d(hits, "hits")[:, :k] > 0).astype(np.float64)
    nr = np.asarray(n_relevant, dtype=np.float64).reshape(-1)
    ranks = np.arange(1, h.shape[1] + 1, dtype=np.float64)
    prec_at_r = np.cumsum(h, axis=1) / ranks
    num = (prec_at_r * h).sum(axis=1)
    den = np.minimum(nr, k)
    out = np.zeros_like(num)
    np.divide(num, den, out=out, where=den > 0)
    return out


def map_at_k(hits: ArrayLike, n_relevant: ArrayLike, k: int) -> float:
    """Mean of ``average_precision_at_k`` over queries; 0.0 for empty input."""
    ap = average_precision_at_k(hits, n_relevant, k)
    return float(ap.mean()) if ap.size else 0.0


def reciprocal_rank(hits: ArrayLike, k: int | None = None) -> FloatArray:
    """1 / rank of the first relevant item (within the top ``k`` when given), 0 if none.

    hits: (n, L) -> (n,). MRR is the mean of this.
    """
    h = _as_2d(hits, "hits")
    if k is not None:
        h = h[:, : _check_k(k)]
    if h.shape[1] == 0:
        return np.zeros(h.shape[0])
    pos = h > 0
    first = pos.argmax(axis=1)
    return np.where(pos.any(axis=1), 1.0 / (first + 1.0), 0.0)


def _valid_items(recommended: ArrayLike) -> NDArray[np.int64]:
    r = np.asarray(recommended)
    if r.size == 0:
        return np.zeros((0, 0), dtype=np.int64)
    if r.ndim != 2:
        raise ValueError(f"recommended: expected (n, k) item indices, got shape {r.shape}")
    return r.astype(np.int64)


def catalog_coverage(recommended: ArrayLike, n_items: int) -> float:
    """Share of the catalogue that appears in at least one list.

    recommended: (n, k) item indices in ``0..n_items-1``, ``-1`` = padding. Returns float in [0, 1].
    """
    if n_items <= 0:
        raise ValueError("n_items must be positive")
    r = _valid_items(recommended)
    items = np.unique(r[r >= 0])
    return float(items.size) / float(n_items)


def novelty(recommended: ArrayLike, item_popularity: ArrayLike, min_prob: float = 1e-12) -> FloatArray:
    """Mean self-information ``-log2 p(item)`` of each list (Zhou et al., 2010).

    recommended: (n, k) item indices, ``-1`` = padding (ignored).
    item_popularity: (n_items,) probability that a random interaction is with the item
        (e.g. interaction counts / total). Probabilities below ``min_prob`` are clipped to it so
        never-seen items get a large but finite novelty.
    Returns (n,); 0 for a list that is all padding.
    """
    r = _valid_items(recommended)
    p = np.asarray(item_popularity, dtype=np.float64).reshape(-1)
    mask = r >= 0
    info = np.zeros(r.shape, dtype=np.float64)
    info[mask] = -np.log2(np.clip(p[r[mask]], min_prob, 1.0))
    n_valid = mask.sum(axis=1)
    out = np.zeros(r.shape[0])
    np.divide(info.sum(axis=1), n_valid, out=out, where=n_valid > 0)
    return out


def gini(counts: ArrayLike) -> float:
    """Gini coefficient of how exposure (or interactions) is spread over items.

    counts: (m,) non-negative counts, one per item (include zeros for items never shown).
    0 = perfectly even, (m-1)/m = everything on one item. Computed from the sorted counts as
    ``sum_i (2i - m - 1) x_(i) / (m * sum x)`` (i = 1..m ascending). 0.0 for empty or all-zero input.
    """
    x = np.sort(np.asarray(counts, dtype=np.float64).reshape(-1))
    m = x.size
    total = x.sum()
    if m == 0 or total <= 0:
        return 0.0
    if (x < 0).any():
        raise ValueError("gini: counts must be non-negative")
    i = np.arange(1, m + 1, dtype=np.float64)
    return float(((2.0 * i - m - 1.0) * x).sum() / (m * total))


def intra_list_diversity(recommended: ArrayLike, item_embeddings: ArrayLike) -> FloatArray:
    """Mean pairwise cosine distance ``1 - cos(e_i, e_j)`` over unordered pairs in each list.

    recommended: (n, k) item indices, ``-1`` = padding. item_embeddings: (n_items, d); rows need
    not be normalised (zero rows count as cosine 0). Returns (n,); 0 for lists with < 2 items.
    """
    r = _valid_items(recommended)
    e = np.asarray(item_embeddings, dtype=np.float64)
    norms = np.linalg.norm(e, axis=1, keepdims=True)
    e = np.divide(e, norms, out=np.zeros_like(e), where=norms > 0)
    out = np.zeros(r.shape[0])
    for q in range(r.shape[0]):
        items = r[q][r[q] >= 0]
        m = items.size
        if m < 2:
            continue
        v = e[items]
        sim = v @ v.T
        iu = np.triu_indices(m, 1)
        out[q] = float((1.0 - sim[iu]).mean())
    return out
