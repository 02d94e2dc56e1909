"""The Gorse-style matrix-factorisation baselines (benchmarks/implicit_mf.py): folding a shopper in
from their history must recover what the factorisation learned, for both algorithms."""

from __future__ import annotations

import numpy as np
import pytest

from tests.benchmarks.loader import load_benchmark


def two_tastes(n_users: int = 120, seed: int = 0) -> list[list[int]]:
    """Items 1-10 and 11-20 form two tastes; each shopper sticks to one of them."""
    rng = np.random.default_rng(seed)
    out = []
    for u in range(n_users):
        base = 1 if u % 2 == 0 else 11
        out.append((base + rng.choice(10, size=6, replace=False)).tolist())
    return out


@pytest.mark.parametrize(("algorithm", "regularization"), [("als", 1.0), ("bpr", 0.01)])
def test_folded_in_shoppers_get_their_own_taste(algorithm: str, regularization: float) -> None:
    mf = load_benchmark("implicit_mf")
    config = mf.MFConfig(
        algorithm=algorithm,
        factors=8,
        iterations=30,
        learning_rate=0.05,
        regularization=regularization,
        threads=1,
    )
    model = mf.ImplicitMF(config).fit(two_tastes(), n_items=20)
    # new shoppers, never fitted: two items of one taste each
    items, _ = model.recommend([[1, 2], [11, 12]], k=5)
    assert set(items[0]) <= set(range(3, 11)), items[0]
    assert set(items[1]) <= set(range(13, 21)), items[1]
    # history items are excluded and padding never appears
    assert 0 not in items and 1 not in items[0] and 11 not in items[1]
    similar, _ = model.similar_items(3, k=4)
    assert set(similar) <= set(range(1, 11))


def test_search_climbs_past_its_start_to_the_best_point() -> None:
    mf = load_benchmark("implicit_mf")
    train = two_tastes()
    valid = ([h[:-1] for h in train[:40]], [h[-1] for h in train[:40]])
    ladders = {"factors": (2, 4, 8), "regularization": (0.01, 1.0, 100.0, 10_000.0)}
    start = {"factors": 2, "regularization": 10_000.0}  # a hopeless corner: shrunk to nothing
    config, records = mf.search_mf("als", train, 20, valid, ladders=ladders, start=start, iterations=10)
    best = max(records, key=lambda r: r["valid_ndcg@10"])
    assert (config.factors, config.regularization) == (best["factors"], best["regularization"])
    assert best["valid_ndcg@10"] > records[0]["valid_ndcg@10"]  # it moved away from the start
    assert len({(r["factors"], r["regularization"]) for r in records}) == len(records)  # none twice
    _, few = mf.search_mf("als", train, 20, valid, ladders=ladders, start=start, iterations=10, max_points=2)
    assert len(few) == 2
    assert mf.edges({"factors": 8, "regularization": 1.0}, ladders) == ["factors 8"]
