from __future__ import annotations

import numpy as np
import pytest

from shoploop.retrieval.fusion import (
    Candidates,
    FusionConfig,
    fit_fusion_weights,
    fuse,
    normalize_columns,
    rrf_scores,
)


def test_rrf_by_hand():
    # item A: rank 1 in bm25, rank 3 in dense; item B: rank 2 in bm25 only; item C: dense rank 1 only.
    ranks = np.array([[1, 3], [2, 0], [0, 1]])
    got = rrf_scores(ranks, (1.0, 1.0), rrf_k=60)
    want = [1 / 61 + 1 / 63, 1 / 62, 1 / 61]
    assert np.allclose(got, want)
    weighted = rrf_scores(ranks, (1.0, 0.5), rrf_k=60)
    assert np.allclose(weighted, [1 / 61 + 0.5 / 63, 1 / 62, 0.5 / 61])


def test_minmax_and_zscore_columns():
    s = np.array([[2.0, 0.5], [4.0, 0.5], [6.0, 0.5]])
    assert np.allclose(normalize_columns(s, "minmax"), [[0, 0], [0.5, 0], [1, 0]])
    z = normalize_columns(s, "zscore")
    assert np.allclose(z[:, 0], np.array([-1, 0, 1]) / np.sqrt(2 / 3))
    assert np.allclose(z[:, 1], 0)


def test_blend_with_intent_prior():
    c = Candidates(
        keys=np.array([10, 11]),
        scores=np.array([[1.0, 0.2], [0.0, 0.4]]),
        ranks=np.array([[1, 2], [0, 1]]),
        retrievers=("bm25", "dense"),
        prior=np.array([0.0, 1.0]),
    )
    # minmax: item 10 -> (1, 0), item 11 -> (0, 1); weights (1, 0.5); intent 0.6 on item 11.
    got = fuse(c, FusionConfig(method="minmax", weights=(1.0, 0.5), intent_weight=0.6))
    assert np.allclose(got, [1.0, 0.5 + 0.6])
    with pytest.raises(ValueError, match="weights"):
        fuse(c, FusionConfig(weights=(1.0,)))


def test_fit_fusion_weights_finds_the_informative_retriever():
    rng = np.random.default_rng(0)
    cands, gains = [], []
    for _ in range(30):
        n = 20
        rel = rng.integers(0, 3, n).astype(float)
        noise = rng.normal(size=n)
        scores = np.stack([noise, rel + 0.1 * rng.normal(size=n)], axis=1)  # dense is the good one
        ranks = np.stack([np.argsort(np.argsort(-scores[:, r])) + 1 for r in range(2)], axis=1)
        keys = np.arange(n)
        cands.append(Candidates(keys, scores, ranks, ("bm25", "dense"), np.zeros(n)))
        gains.append({int(k): float(2 ** rel[k] - 1) for k in keys if rel[k] > 0})
    cfg, score = fit_fusion_weights(cands, gains, methods=("minmax",))
    assert cfg.weights[1] >= 2.0  # the informative retriever gets the larger weight
    base = np.mean([0.0])
    assert score > 0.8 > base
