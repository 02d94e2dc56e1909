"""Per-example data values for large data: exact Shapley values of a kNN classifier.

Jia et al., "Efficient Task-Specific Data Valuation for Nearest Neighbor Algorithms",
VLDB 2019, Theorem 1: for the unweighted K-NN utility
    U(S) = (1/K) sum_{j <= min(K, |S|)} 1[y_{alpha_j(S)} = y_test]
(alpha_j(S) = j-th nearest point of S to the test point), the Shapley values follow from one
sort of the training points by distance (alpha_1 nearest ... alpha_N farthest):
    s_{alpha_N} = 1[y_{alpha_N} = y_test] / N
    s_{alpha_i} = s_{alpha_{i+1}} + (1[y_{alpha_i} = y] - 1[y_{alpha_{i+1}} = y]) / K * min(K, i) / i.
Values for several test points are averaged. Cost O(N log N) per test point, so it scales
to many thousands of events where Monte-Carlo retraining cannot. Use it as a proxy: embed
each event (e.g. user profile + item features) and let the kNN stand in for the model.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Literal

import numpy as np

log = logging.getLogger(__name__)


def _distances(x_test: np.ndarray, x_train: np.ndarray, metric: str) -> np.ndarray:
    if metric == "cosine":
        a = x_test / np.maximum(np.linalg.norm(x_test, axis=1, keepdims=True), 1e-12)
        b = x_train / np.maximum(np.linalg.norm(x_train, axis=1, keepdims=True), 1e-12)
        return 1.0 - a @ b.T
    sq = (x_test * x_test).sum(1)[:, None] + (x_train * x_train).sum(1)[None, :] - 2.0 * x_test @ x_train.T
    return np.maximum(sq, 0.0)  # squared euclidean: same order as euclidean


def knn_shapley(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    k: int = 5,
    *,
    metric: Literal["euclidean", "cosine"] = "euclidean",
    batch_size: int = 128,
) -> np.ndarray:
    """Shapley value of each training example for K-NN classification of the test set.

    x_train: (N, d), y_train: (N,), x_test: (M, d), y_test: (M,). Returns (N,), the mean over
    test points (sum over examples = mean test accuracy of K-NN on all data, minus 0).
    Ties in distance are broken by training index (stable sort) so results are reproducible.
    """
    x_train = np.asarray(x_train, dtype=np.float64)
    x_test = np.asarray(x_test, dtype=np.float64)
    y_train = np.asarray(y_train)
    y_test = np.asarray(y_test)
    n = len(x_train)
    if n == 0 or len(x_test) == 0:
        return np.zeros(n)
    if k < 1:
        raise ValueError("k must be >= 1")
    i = np.arange(1, n)  # 1-based rank i for the pairs (alpha_i, alpha_{i+1})
    coef = np.minimum(k, i) / (k * i)
    values = np.zeros(n)
    t0, last = time.perf_counter(), time.perf_counter()
    for start in range(0, len(x_test), batch_size):
        xb, yb = x_test[start : start + batch_size], y_test[start : start + batch_size]
        order = np.argsort(_distances(xb, x_train, metric), axis=1, kind="stable")  # (b, N)
        match = (y_train[order] == yb[:, None]).astype(np.float64)
        s = np.empty_like(match)
        s[:, -1] = match[:, -1] / n
        if n > 1:
            d = (match[:, :-1] - match[:, 1:]) * coef  # (b, N-1)
            # s_i = s_N + sum_{j >= i} d_j: a reversed cumulative sum
            s[:, :-1] = s[:, -1:] + np.cumsum(d[:, ::-1], axis=1)[:, ::-1]
        np.add.at(values, order.ravel(), s.ravel())
        if time.perf_counter() - last > 10:
            done = start + len(xb)
            rate = done / (time.perf_counter() - t0)
            log.info("knn_shapley: %d/%d test points (%.0f/s, ETA %.0fs)", done, len(x_test), rate,
                     (len(x_test) - done) / rate)  # fmt: skip
            last = time.perf_counter()
    return values / len(x_test)


def values_by_slice(values: np.ndarray, slices: Mapping[str, np.ndarray]) -> dict[str, dict[str, float]]:
    """Aggregate per-example values per slice: total, mean, per 1,000 events, share negative."""
    out = {}
    for name, idx in slices.items():
        v = values[np.asarray(idx, dtype=np.int64)]
        out[name] = {
            "n_events": len(v),
            "total": float(v.sum()),
            "mean": float(v.mean()) if len(v) else 0.0,
            "per_1k": float(1000 * v.mean()) if len(v) else 0.0,
            "share_negative": float((v < 0).mean()) if len(v) else 0.0,
        }
    return out
