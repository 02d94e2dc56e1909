from __future__ import annotations

import itertools
import math
from datetime import timedelta

import numpy as np
import pytest

from shoploop.domain import ClickEvent, PurchaseEvent, PurchaseLine, RatingEvent
from shoploop.evaluation.data_value import (
    ShapleyConfig,
    exact_slice_shapley,
    gelman_rubin,
    leave_one_slice_out,
    recommend,
    slice_events_by,
    tmc_shapley,
    value_slices,
)
from shoploop.evaluation.data_value_knn import knn_shapley, values_by_slice


def _events(t0):
    return [
        ClickEvent(user_id="a", item_id="i1", timestamp=t0, context={"source": "web"}),
        ClickEvent(user_id="a", item_id="i2", timestamp=t0 + timedelta(days=1), context={"source": "app"}),
        RatingEvent(user_id="b", item_id="i1", rating=5, timestamp=t0 + timedelta(days=8)),
        PurchaseEvent(
            user_id="a", items=(PurchaseLine(item_id="i1", price=3.0),), timestamp=t0 + timedelta(days=9),
            context={"source": "web", "channel": "email"},
        ),
        ClickEvent(user_id="a", item_id="i3", timestamp=t0 + timedelta(days=15)),
    ]  # fmt: skip


def test_slice_events_by(t0):
    ev = _events(t0)
    by_type = slice_events_by(ev, "type")
    assert {k: v.tolist() for k, v in by_type.items()} == {"click": [0, 1, 4], "purchase": [3], "rating": [2]}
    by_source = slice_events_by(ev, "source")
    assert {k: v.tolist() for k, v in by_source.items()} == {"app": [1], "unknown": [2, 4], "web": [0, 3]}
    assert slice_events_by(ev, "channel")["email"].tolist() == [3]
    weeks = slice_events_by(ev, "time_window", window=timedelta(days=7))
    assert {k: v.tolist() for k, v in weeks.items()} == {
        "2026-01-01": [0, 1], "2026-01-08": [2, 3], "2026-01-15": [4],
    }  # fmt: skip
    seg = slice_events_by(ev, "segment", segments={"a": "vip"})
    assert {k: v.tolist() for k, v in seg.items()} == {"unknown": [2], "vip": [0, 1, 3, 4]}
    activity = slice_events_by(ev, "segment")  # user a: 4 events (heavy), b: 1 (light)
    assert activity["heavy"].tolist() == [0, 1, 3, 4] and activity["light"].tolist() == [2]
    assert slice_events_by(ev, lambda e: e.user_id)["b"].tolist() == [2]


WEIGHTS = np.array([1.0, 2.0, 0.5, -1.0, 3.0, -0.5])
SLICES = {"s1": np.array([0, 1]), "s2": np.array([2]), "bad": np.array([3, 5]), "s3": np.array([4])}


def test_additive_utility_has_exact_values():
    def utility(idx):
        return float(WEIGHTS[idx].sum())

    exact = exact_slice_shapley(utility, SLICES)
    assert exact == pytest.approx({"s1": 3.0, "s2": 0.5, "bad": -1.5, "s3": 3.0})
    assert leave_one_slice_out(utility, SLICES) == pytest.approx(exact)
    res = tmc_shapley(utility, SLICES, ShapleyConfig(min_permutations=8, seed=1))
    assert res.converged and res.stop_reason == "converged"
    assert dict(zip(res.names, res.values, strict=True)) == pytest.approx(exact)
    assert res.n_utility_calls <= 2 ** len(SLICES)


def _interacting(idx):
    """Diminishing returns (sqrt of good data) minus a penalty for the 'bad' rows: not additive."""
    idx = set(idx.tolist())
    good = sum(WEIGHTS[i] for i in idx if WEIGHTS[i] > 0)
    bad = sum(-WEIGHTS[i] for i in idx if WEIGHTS[i] < 0)
    return math.sqrt(good) - 0.3 * bad * (1 + 0.2 * good)


def test_tmc_matches_exact_and_is_efficient():
    exact = exact_slice_shapley(_interacting, SLICES)
    res = tmc_shapley(_interacting, SLICES, ShapleyConfig(max_permutations=400, target_stderr=0.005, seed=0))
    got = dict(zip(res.names, res.values, strict=True))
    for i, name in enumerate(res.names):
        assert abs(got[name] - exact[name]) <= 4 * res.stderr[i] + 1e-9
    # efficiency: values add up to U(all) - U(none) on every permutation without truncation
    assert res.values.sum() == pytest.approx(res.full_utility - res.empty_utility)
    assert res.r_hat.shape == (4,) and np.all(np.isfinite(res.r_hat))
    assert res.stderr_history and res.stderr_history[-1][0] == res.n_permutations


def test_time_budget_stops_the_loop():
    res = tmc_shapley(_interacting, SLICES, ShapleyConfig(time_budget_s=0.0, min_permutations=10_000))
    assert res.stop_reason == "time_budget" and not res.converged and res.n_permutations == 1


def test_truncation_skips_work_after_the_full_utility_is_reached():
    def utility(idx):
        return 1.0 if len(idx) else 0.0  # any slice alone gives the full utility

    res = tmc_shapley(
        utility, SLICES, ShapleyConfig(truncation_tol=0.01, min_permutations=8, max_permutations=8)
    )
    assert res.n_truncated == 8
    assert res.values == pytest.approx(np.full(4, 0.25), abs=0.2)


def test_value_slices_recommendations():
    rep = value_slices(_interacting, SLICES, ShapleyConfig(max_permutations=300, seed=3), metric="toy")
    by = {s.name: s for s in rep.slices}
    assert rep.slices[-1].name == "bad" and by["bad"].value < 0
    assert by["bad"].recommendation == "drop: harms the model"
    assert by["s3"].recommendation == "keep collecting"
    assert by["bad"].value_per_1k == pytest.approx(1000 * by["bad"].value / 2)
    assert recommend(0.001, 0.01, 1.0) == "neutral"


def test_gelman_rubin_detects_disagreeing_chains():
    rng = np.random.default_rng(0)
    same = [rng.normal(0, 1, (200, 2)) for _ in range(4)]
    assert np.all(gelman_rubin(same) < 1.05)
    shifted = [rng.normal(mu, 1, (200, 2)) for mu in (0, 0, 3, 3)]
    assert np.all(gelman_rubin(shifted) > 1.5)


def _knn_utility(members, x, y, xt, yt, k):
    """Jia et al.'s K-NN utility, averaged over test points, by brute force."""
    if not members:
        return 0.0
    m = np.array(sorted(members))
    total = 0.0
    for xq, yq in zip(xt, yt, strict=True):
        d = ((x[m] - xq) ** 2).sum(1)
        near = m[np.argsort(d, kind="stable")[:k]]
        total += (y[near] == yq).sum() / k
    return total / len(xt)


def test_knn_shapley_matches_brute_force():
    rng = np.random.default_rng(0)
    n, k = 7, 3
    x, y = rng.normal(size=(n, 2)), rng.integers(0, 2, n)
    xt, yt = rng.normal(size=(3, 2)), rng.integers(0, 2, 3)
    exact = np.zeros(n)
    for i in range(n):
        others = [j for j in range(n) if j != i]
        for size in range(n):
            w = math.factorial(size) * math.factorial(n - size - 1) / math.factorial(n)
            for s in itertools.combinations(others, size):
                exact[i] += w * (
                    _knn_utility(set(s) | {i}, x, y, xt, yt, k) - _knn_utility(set(s), x, y, xt, yt, k)
                )
    got = knn_shapley(x, y, xt, yt, k=k, batch_size=2)
    assert got == pytest.approx(exact, abs=1e-12)
    assert got.sum() == pytest.approx(_knn_utility(set(range(n)), x, y, xt, yt, k))


def test_knn_shapley_flags_flipped_labels():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(600, 2))
    y = (x[:, 0] > 0).astype(int)
    flipped = rng.choice(600, 60, replace=False)
    y[flipped] = 1 - y[flipped]
    xt = rng.normal(size=(200, 2))
    vals = knn_shapley(x, y, xt, (xt[:, 0] > 0).astype(int), k=5, metric="euclidean")
    clean = np.setdiff1d(np.arange(600), flipped)
    agg = values_by_slice(vals, {"clean": clean, "flipped": flipped})
    assert agg["flipped"]["mean"] < 0 < agg["clean"]["mean"]
    assert agg["flipped"]["share_negative"] > 0.8
