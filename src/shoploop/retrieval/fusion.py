"""Hybrid fusion of retriever scores, and learning the fusion weights from judgments.

Two families:
* reciprocal-rank fusion (Cormack, Clarke & Büttcher, SIGIR 2009): sum_r w_r / (rrf_k + rank_r);
  robust to score scales, uses only each retriever's own top list;
* normalised-score blending: per query, each retriever's scores over the candidate set are
  min-max or z-score normalised and summed with weights. Because the searcher computes the
  exact BM25 and dense score for *every* candidate (a BM25-only candidate still gets its
  cosine), blending sees complete score vectors, not rank-list intersections.

A category-intent prior in [0, 1] can be added with its own weight. `fit_fusion_weights`
picks method and weights by coordinate ascent on mean NDCG@10 over training queries.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np

__all__ = ["Candidates", "FusionConfig", "fit_fusion_weights", "fuse", "normalize_columns", "rrf_scores"]

Method = Literal["rrf", "minmax", "zscore"]


@dataclass(frozen=True)
class FusionConfig:
    method: Method = "minmax"
    weights: tuple[float, ...] = (1.0, 1.0)  # one per retriever, in `Candidates.retrievers` order
    rrf_k: float = 60.0
    intent_weight: float = 0.0


@dataclass
class Candidates:
    """One query's candidate set.

    keys: (n,) int item keys. scores: (n, R) raw score of each retriever for each candidate.
    ranks: (n, R) 1-based rank in that retriever's own top list, 0 = not in its list.
    prior: (n,) category-intent boost in [0, 1].
    facet_keys: per facet ("brand", "category") of a query filtered by it, the keys found without
        that filter; the facet is counted over them (disjunctive faceting).
    """

    keys: np.ndarray
    scores: np.ndarray
    ranks: np.ndarray
    retrievers: tuple[str, ...]
    prior: np.ndarray = field(default_factory=lambda: np.zeros(0))
    facet_keys: dict[str, np.ndarray] = field(default_factory=dict)


def rrf_scores(ranks: np.ndarray, weights: Sequence[float], rrf_k: float = 60.0) -> np.ndarray:
    """ranks: (n, R) 1-based, 0 = absent -> (n,) sum_r w_r / (rrf_k + rank_r) over present ranks."""
    ranks = np.asarray(ranks, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    contrib = np.where(ranks > 0, 1.0 / (rrf_k + np.where(ranks > 0, ranks, 1.0)), 0.0)
    return contrib @ w


def normalize_columns(scores: np.ndarray, method: Literal["minmax", "zscore"]) -> np.ndarray:
    """(n, R) -> (n, R): each column min-max scaled to [0, 1] or z-scored; constant columns -> 0."""
    s = np.asarray(scores, dtype=np.float64)
    if s.size == 0:
        return s
    if method == "minmax":
        lo, hi = s.min(axis=0), s.max(axis=0)
        span = np.where(hi - lo > 0, hi - lo, 1.0)
        return np.where(hi - lo > 0, (s - lo) / span, 0.0)
    mu, sd = s.mean(axis=0), s.std(axis=0)
    return np.where(sd > 0, (s - mu) / np.where(sd > 0, sd, 1.0), 0.0)


def fuse(c: Candidates, config: FusionConfig) -> np.ndarray:
    """(n,) fused scores for the candidates (higher is better)."""
    if len(c.keys) == 0:
        return np.zeros(0)
    if len(config.weights) != c.scores.shape[1]:
        raise ValueError(
            f"weights: expected {c.scores.shape[1]} weights for {c.retrievers}, got {config.weights}"
        )
    if config.method == "rrf":
        base = rrf_scores(c.ranks, config.weights, config.rrf_k)
    else:
        base = normalize_columns(c.scores, config.method) @ np.asarray(config.weights, dtype=np.float64)
    if config.intent_weight and len(c.prior):
        base = base + config.intent_weight * c.prior
    return base


def _ndcg10(fused: np.ndarray, keys: np.ndarray, gains: Mapping[int, float], idcg: float) -> float:
    if idcg <= 0:
        return 0.0
    top = np.argsort(-fused, kind="stable")[:10]
    g = np.asarray([gains.get(int(keys[i]), 0.0) for i in top])
    return float((g / np.log2(np.arange(2, len(g) + 2))).sum() / idcg)


def fit_fusion_weights(
    candidates: Sequence[Candidates],
    gains: Sequence[Mapping[int, float]],
    *,
    methods: Sequence[Method] = ("rrf", "minmax", "zscore"),
    weight_grid: Sequence[float] = (0.0, 0.1, 0.2, 0.35, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0),
    intent_grid: Sequence[float] = (0.0,),
    rounds: int = 2,
) -> tuple[FusionConfig, float]:
    """Coordinate ascent on mean NDCG@10 (gain per judged key; ideal from ALL judged gains).

    The first retriever's weight is fixed at 1 (only ratios matter); every other weight and the
    intent weight are swept over their grids in turn, `rounds` times, for each method.
    Returns (best config, its mean training NDCG@10).
    """
    idcgs = []
    for g in gains:
        ideal = np.sort(np.asarray(list(g.values()), dtype=np.float64))[::-1][:10]
        idcgs.append(float((ideal / np.log2(np.arange(2, len(ideal) + 2))).sum()))

    def evaluate(cfg: FusionConfig) -> float:
        return float(
            np.mean(
                [
                    _ndcg10(fuse(c, cfg), c.keys, g, i)
                    for c, g, i in zip(candidates, gains, idcgs, strict=True)
                ]
            )
        )

    n_ret = candidates[0].scores.shape[1] if candidates else 1
    best_cfg, best = FusionConfig(weights=(1.0,) * n_ret), -1.0
    for method in methods:
        cfg = FusionConfig(method=method, weights=(1.0,) * n_ret, intent_weight=0.0)
        score = evaluate(cfg)
        intent_scale = 1.0 / 60.0 if method == "rrf" else 1.0  # the prior must be on the fused scale
        for _ in range(rounds):
            for r in range(1, n_ret + 1):  # r == n_ret: the intent weight
                grid = weight_grid if r < n_ret else [x * intent_scale for x in intent_grid]
                if r == n_ret and len(grid) == 1 and grid[0] == cfg.intent_weight:
                    continue
                for value in grid:
                    if r < n_ret:
                        w = list(cfg.weights)
                        w[r] = float(value)
                        trial = replace(cfg, weights=tuple(w))
                    else:
                        trial = replace(cfg, intent_weight=float(value))
                    s = evaluate(trial)
                    if s > score + 1e-9:
                        cfg, score = trial, s
        if score > best:
            best_cfg, best = cfg, score
    return best_cfg, best
