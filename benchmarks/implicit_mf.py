"""Matrix-factorisation baselines for the recommendation benchmarks: what Gorse serves.

Gorse's collaborative filtering is matrix factorisation, trained either with BPR (pairwise,
SGD) or ALS (implicit-feedback least squares), and its model search picks the kind and the
hyper-parameters on held-out feedback. Here both come from the `implicit` library (its CPU
code), wrapped in our `Recommender` contract so the benchmark scores them with the same
protocol as every other row; `search_mf` plays the model search on validation NDCG@10.

Shoppers are scored from their history, not from a user id (the benchmark's histories at
test time hold one more item than the rows the model was fitted on), so every history is
*folded in*: its user vector is fitted with the item factors held fixed.
- ALS: the library's own `recalculate_user`, the exact least-squares solution for that row.
- BPR: the library has no fold-in, so ours runs BPR's own objective for the user vector
  alone: stochastic steps on ln sigma(u . (y_pos - y_neg)) - reg * |u|^2, a positive drawn
  from the history and negatives drawn uniformly, vectorised over a batch of shoppers. On
  the fitting rows this lands within noise of the vectors BPR learned itself (the benchmark
  logs both figures on validation).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal, Self

import numpy as np
from threadpoolctl import threadpool_limits

from shoploop.evaluation.sequential_protocol import evaluate_next_item
from shoploop.recommend.base import RecommenderMixin, cosine_neighbours, unit_rows
from shoploop.recommend.interactions import interaction_matrix

log = logging.getLogger("benchmarks.implicit_mf")


@dataclass(frozen=True)
class MFConfig:
    algorithm: Literal["als", "bpr"] = "als"
    factors: int = 64
    regularization: float = 0.01
    iterations: int = 15  # ALS sweeps; BPR epochs over the interactions
    alpha: float = 1.0  # ALS: confidence = 1 + alpha * count
    learning_rate: float = 0.01  # BPR
    fold_in_steps: int = 400  # BPR fold-in: SGD steps per shopper
    fold_in_negatives: int = 8
    seed: int = 0
    threads: int = 2


class ImplicitMF(RecommenderMixin):
    """BPR or ALS matrix factorisation (`implicit`), scored by folding each history in."""

    kind = "implicit_mf"

    def __init__(self, config: MFConfig = MFConfig()) -> None:
        self.config = config

    def fit(
        self,
        sequences: Sequence[Sequence[int]],
        n_items: int,
        *,
        item_text_emb: np.ndarray | None = None,
        timestamps: Sequence[Sequence[float]] | None = None,
    ) -> Self:
        from implicit.cpu.als import AlternatingLeastSquares
        from implicit.cpu.bpr import BayesianPersonalizedRanking

        c = self.config
        self.n_items_ = int(n_items)
        x = interaction_matrix([list(q) for q in sequences], n_items).astype(np.float32)  # implicit: float32
        # implicit parallelises over rows itself; a BLAS pool on top oversubscribes 2 cores (the
        # library checks for one when a model is built, so the limit covers construction too)
        with threadpool_limits(1, "blas"):
            common = {
                "factors": c.factors,
                "regularization": c.regularization,
                "iterations": c.iterations,
                "num_threads": c.threads,
                "random_state": c.seed,
            }
            if c.algorithm == "als":
                self.model_ = AlternatingLeastSquares(alpha=c.alpha, **common)
            else:
                self.model_ = BayesianPersonalizedRanking(learning_rate=c.learning_rate, **common)
            self.model_.fit(x, show_progress=False)
        self.item_factors_ = np.asarray(self.model_.item_factors, dtype=np.float32)
        self.fitted_user_factors_ = np.asarray(self.model_.user_factors, dtype=np.float32)
        self._unit = unit_rows(self.item_factors_)
        return self

    # ------------------------------------------------------------------ scoring

    def user_vectors(self, histories: list[list[int]]) -> np.ndarray:
        x = interaction_matrix(histories, self.n_items_).astype(np.float32)
        if self.config.algorithm == "als":
            with threadpool_limits(1, "blas"):
                return np.asarray(self.model_.recalculate_user(np.arange(len(histories)), x), np.float32)
        return self._bpr_fold_in(histories)

    def _bpr_fold_in(self, histories: list[list[int]]) -> np.ndarray:
        """BPR's objective for the user vectors alone, item factors fixed (module docstring).
        The last factor column is BPR's item bias: its user entry stays 1, as in training."""
        c = self.config
        y = self.item_factors_
        n, f = len(histories), y.shape[1]
        rng = np.random.default_rng(c.seed)
        users = np.zeros((n, f), dtype=np.float32)
        users[:, -1] = 1.0
        lengths = np.array([len(h) for h in histories])
        has = lengths > 0
        if not has.any():
            return users
        padded = np.zeros((n, max(int(lengths.max()), 1)), dtype=np.int64)
        for r, h in enumerate(histories):
            padded[r, : len(h)] = h
        rows = np.flatnonzero(has)
        for step in range(c.fold_in_steps):
            pos = padded[rows, (rng.random(len(rows)) * lengths[rows]).astype(np.int64)]
            neg = rng.integers(1, self.n_items_ + 1, size=(len(rows), c.fold_in_negatives))
            diff = y[pos][:, None, :] - y[neg]  # (r, negatives, f)
            u = users[rows]
            margin = np.einsum("rnf,rf->rn", diff, u)
            weight = 1.0 / (1.0 + np.exp(np.clip(margin, -30, 30)))  # sigma(-margin)
            grad = np.einsum("rn,rnf->rf", weight, diff) / c.fold_in_negatives - c.regularization * u
            lr = c.learning_rate * 10 / (1.0 + step / 100)  # decaying: the last steps settle it
            grad[:, -1] = 0.0  # the bias column's user entry is fixed at 1
            users[rows] = u + lr * grad
        return users

    def _score_batch(self, histories: list[list[int]]) -> np.ndarray:
        return self.user_vectors(histories) @ self.item_factors_.T  # column 0 is masked by `score`

    def similar_items(self, item: int, k: int) -> tuple[np.ndarray, np.ndarray]:
        return cosine_neighbours(self._unit, item, k)


# ---------------------------------------------------------------------- model search

# Each setting moves along a ladder of values; the search climbs from START to the best
# neighbour until no neighbour is better (fixed grids had their best on an edge every time:
# ALS kept gaining from more factors and stronger regularisation on Amazon Scientific).
LADDERS: dict[str, dict[str, tuple[Any, ...]]] = {
    "als": {
        "factors": (32, 64, 128, 256, 512),
        "regularization": (0.1, 1.0, 10.0, 30.0, 100.0, 300.0, 1000.0, 3000.0),
        "alpha": (1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0),
    },
    "bpr": {
        "factors": (32, 64, 128, 256, 512),
        "learning_rate": (0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5),
        "regularization": (0.00001, 0.0001, 0.001, 0.01, 0.1),
    },
}
START: dict[str, dict[str, Any]] = {
    "als": {"factors": 128, "regularization": 10.0, "alpha": 10.0},
    "bpr": {"factors": 128, "learning_rate": 0.05, "regularization": 0.001},
}


def edges(picked: dict[str, Any], ladders: dict[str, tuple[Any, ...]]) -> list[str]:
    """The settings whose picked value is the end of its ladder: the best may lie beyond it."""
    return [
        f"{key} {picked[key]:g}" for key, ladder in ladders.items() if picked[key] in (ladder[0], ladder[-1])
    ]


def search_mf(
    algorithm: Literal["als", "bpr"],
    train: Sequence[Sequence[int]],
    n_items: int,
    valid: tuple[list[list[int]], list[int]],
    *,
    seed: int = 0,
    threads: int = 2,
    iterations: int | None = None,
    ladders: dict[str, tuple[Any, ...]] | None = None,
    start: dict[str, Any] | None = None,
    max_points: int = 40,
) -> tuple[MFConfig, list[dict[str, Any]]]:
    """Gorse's model search, as a hill climb on validation NDCG@10: fit the start point, then
    every point one rung away on one setting; move to the best of them while it beats the
    current point. Stops at a point no neighbour beats, or after `max_points` fits. Returns the
    best config and one record per point fitted."""
    ladders = ladders or LADDERS[algorithm]
    start = start or START[algorithm]
    base = MFConfig(
        algorithm=algorithm,
        seed=seed,
        threads=threads,
        iterations=iterations or (15 if algorithm == "als" else 100),
    )
    scores: dict[tuple[Any, ...], float] = {}
    records: list[dict[str, Any]] = []

    def score(point: tuple[Any, ...]) -> float:
        if point not in scores:
            settings = dict(zip(ladders, point, strict=True))
            t = time.perf_counter()
            model = ImplicitMF(replace(base, **settings)).fit(train, n_items)
            scores[point] = evaluate_next_item(model, valid[0], valid[1], n_items)["ndcg@10"]
            records.append({**settings, "valid_ndcg@10": scores[point], "seconds": time.perf_counter() - t})
            log.info(
                "%s %s valid ndcg@10 %.4f (%.1f s)",
                algorithm,
                settings,
                scores[point],
                records[-1]["seconds"],
            )
        return scores[point]

    current = tuple(start[key] for key in ladders)
    best = score(current)
    while len(scores) < max_points:
        neighbours = []
        for axis, ladder in enumerate(ladders.values()):
            rung = ladder.index(current[axis])
            for step in (-1, 1):
                if 0 <= rung + step < len(ladder):
                    neighbours.append((*current[:axis], ladder[rung + step], *current[axis + 1 :]))
        fitted = []
        for point in neighbours:
            if point not in scores and len(scores) >= max_points:
                break  # out of budget: decide among the neighbours fitted so far
            fitted.append((score(point), point))
        if not fitted:  # every ladder has a single rung
            break
        top, point = max(fitted, key=lambda pair: pair[0])
        if top <= best:
            break
        best, current = top, point
    return replace(base, **dict(zip(ladders, current, strict=True))), records


def fold_in_check(
    model: ImplicitMF, train: list[list[int]], valid: tuple[list[list[int]], list[int]]
) -> dict[str, float] | None:
    """Validation NDCG@10 of the validation cases whose history is a fitting row, scored with the
    user vectors the library learned and with folded-in ones: what the fold-in costs or gains.
    None when no validation history is a fitting row."""
    row_of = {tuple(h): r for r, h in enumerate(train)}
    cases = [c for c, h in enumerate(valid[0]) if tuple(h) in row_of]
    if not cases:
        return None
    histories = [valid[0][c] for c in cases]
    targets = [valid[1][c] for c in cases]

    class LearnedVectors:
        def score(self, batch: Sequence[Sequence[int]]) -> np.ndarray:
            users = model.fitted_user_factors_[[row_of[tuple(h)] for h in batch]]
            return users @ model.item_factors_.T

    n = model.n_items_
    return {
        "cases": len(cases),
        "learned_vectors": evaluate_next_item(LearnedVectors(), histories, targets, n)["ndcg@10"],
        "folded_in": evaluate_next_item(model, histories, targets, n)["ndcg@10"],
    }
