"""Leave-one-out next-item evaluation with full ranking over ALL items.

For each test case (history, target) the scorer ranks every item 1..n_items; the target's
rank gives NDCG/Recall/HR/MRR. Never sampled negatives: ranking 100 sampled items inflates
scores and can even reorder models (Krichene & Rendle, KDD 2020).

History items are excluded from the ranking by default (they are things the shopper
already has), except the target itself, as in `shoploop.evaluation.metrics.rank_of_target`.
Ties count against the target (a constant scorer does not look good).

This module depends only on a scorer with `score(histories) -> (n, n_items+1)` (column 0 =
padding); it never imports a concrete model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from shoploop.evaluation.metrics import (
    catalog_coverage,
    ndcg_from_rank,
    novelty,
    rank_of_target,
)


class NextItemScorer(Protocol):
    """The part of `shoploop.recommend.base.Recommender` this protocol needs."""

    def score(self, histories: Sequence[Sequence[int]]) -> np.ndarray: ...


@dataclass(frozen=True)
class ProtocolConfig:
    ks: tuple[int, ...] = (10, 20)
    exclude_history: bool = True
    batch_size: int = 512
    coverage_k: int = 10


def target_ranks(
    model: NextItemScorer,
    histories: Sequence[Sequence[int]],
    targets: Sequence[int],
    n_items: int,
    config: ProtocolConfig = ProtocolConfig(),
    *,
    top_lists: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Ranks (n,) int (1-based among items 1..n_items) and top-`top_lists` item lists (n, top_lists).

    Lists hold item indices 1..n_items, 0 = no item (fewer finite scores than slots).
    """
    n = len(targets)
    ranks = np.zeros(n, dtype=np.int64)
    lists = np.zeros((n, top_lists), dtype=np.int64)
    for start in range(0, n, config.batch_size):
        stop = min(start + config.batch_size, n)
        hist = [list(h) for h in histories[start:stop]]
        tgt = np.asarray(targets[start:stop], dtype=np.int64)
        scores = np.asarray(model.score(hist), dtype=np.float64)[:, 1:]  # (b, n_items): drop padding
        if scores.shape[1] != n_items:
            raise ValueError(
                f"scorer returned {scores.shape[1] + 1} columns, expected n_items+1 = {n_items + 1}"
            )
        exclude = np.zeros(scores.shape, dtype=bool)
        if config.exclude_history:
            for r, h in enumerate(hist):
                ids = np.asarray([i for i in h if 0 < i <= n_items], dtype=np.int64) - 1
                exclude[r, ids] = True
        ranks[start:stop] = rank_of_target(scores, tgt - 1, exclude)
        if top_lists:
            masked = np.where(exclude, -np.inf, scores)
            order = np.argsort(-masked, axis=1, kind="stable")[:, :top_lists]
            finite = np.isfinite(np.take_along_axis(masked, order, axis=1))
            lists[start:stop] = np.where(finite, order + 1, 0)
    return ranks, lists


def evaluate_next_item(
    model: NextItemScorer,
    histories: Sequence[Sequence[int]],
    targets: Sequence[int],
    n_items: int,
    *,
    item_popularity: np.ndarray | None = None,
    config: ProtocolConfig = ProtocolConfig(),
) -> dict[str, float]:
    """Mean metrics over the test cases.

    item_popularity: (n_items+1,) training interaction counts or probabilities (index 0
        ignored), for novelty; without it novelty is omitted.
    Returns keys `ndcg@k`, `recall@k` (= `hr@k`: one target per case), `mrr`,
    `coverage@{coverage_k}`, `novelty@{coverage_k}`, `n_cases`.
    """
    if len(histories) != len(targets):
        raise ValueError("histories and targets differ in length")
    ranks, lists = target_ranks(model, histories, targets, n_items, config, top_lists=config.coverage_k)
    out: dict[str, float] = {"n_cases": float(len(targets))}
    if len(targets) == 0:
        return out
    for k in config.ks:
        out[f"ndcg@{k}"] = float(ndcg_from_rank(ranks, k).mean())
        hit = float(((ranks >= 1) & (ranks <= k)).mean())
        out[f"recall@{k}"] = hit
        out[f"hr@{k}"] = hit
    out["mrr"] = float(np.where(ranks >= 1, 1.0 / np.maximum(ranks, 1), 0.0).mean())
    ck = config.coverage_k
    out[f"coverage@{ck}"] = catalog_coverage(lists - 1, n_items)  # metrics use 0-based ids, -1 = none
    if item_popularity is not None:
        pop = np.asarray(item_popularity, dtype=np.float64)[1:]
        total = pop.sum()
        p = pop / total if total > 0 else pop
        out[f"novelty@{ck}"] = float(novelty(lists - 1, p).mean())
    return out
