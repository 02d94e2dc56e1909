"""LambdaMART ranker: learns a planted ordering, round-trips through save/load, explains itself."""

from __future__ import annotations

import numpy as np
import pytest

from shoploop.feedback.features import FEATURE_NAMES
from shoploop.feedback.ltr import LambdaMARTRanker, RankerConfig


def planted(n_lists=200, size=10, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n_lists * size, len(FEATURE_NAMES))).astype(np.float32)
    # relevance depends on two features only; grades 0..3
    signal = 1.5 * X[:, 15] + X[:, 0]
    y = np.digitize(signal, [0.0, 1.0, 2.0]).astype(int)
    return X, y, np.full(n_lists, size)


def test_fit_learns_the_planted_features_and_contributions_sum_to_scores(tmp_path):
    X, y, group = planted()
    model = LambdaMARTRanker(RankerConfig(n_estimators=60)).fit(X, y, group)
    assert model.metrics_["valid_ndcg"] > 0.9
    imp = model.feature_importance()
    assert set(sorted(imp, key=imp.get)[-2:]) == {"query_ctr", "fused"}
    contrib = model.contributions(X[:20])
    np.testing.assert_allclose(contrib.sum(axis=1), model.predict(X[:20]), rtol=1e-5, atol=1e-6)

    model.save(tmp_path)
    assert (tmp_path / "model.txt").read_text().startswith("tree")
    again = LambdaMARTRanker.load(tmp_path)
    np.testing.assert_array_equal(again.predict(X), model.predict(X))
    assert again.feature_names_ == model.feature_names_


def test_weights_change_the_model():
    X, y, group = planted(seed=1)
    w = np.where(X[:, 1] > 0, 10.0, 1.0)
    a = LambdaMARTRanker(RankerConfig(n_estimators=30)).fit(X, y, group)
    b = LambdaMARTRanker(RankerConfig(n_estimators=30)).fit(X, y, group, weight=w)
    assert not np.allclose(a.predict(X), b.predict(X))


def test_same_seed_same_model():
    X, y, group = planted(seed=2)
    a = LambdaMARTRanker(RankerConfig(n_estimators=20)).fit(X, y, group)
    b = LambdaMARTRanker(RankerConfig(n_estimators=20)).fit(X, y, group)
    np.testing.assert_array_equal(a.predict(X), b.predict(X))


def test_bad_shapes_are_rejected():
    X, y, group = planted(n_lists=20)
    with pytest.raises(ValueError, match="sum"):
        LambdaMARTRanker().fit(X, y, group[:-1])
    with pytest.raises(ValueError, match="labels"):
        LambdaMARTRanker().fit(X, y + 5, group)
