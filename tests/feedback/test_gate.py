"""Promotion gate on hand-made held-out lists."""

from __future__ import annotations

import numpy as np
import pytest

from shoploop.feedback.click_models import ExaminationCurve
from shoploop.feedback.gate import GateConfig, PromotionGate, list_ips_dcg, list_ndcg, pbm_clicks
from shoploop.feedback.training_data import FeaturizedList, LoggedList

CURVE = ExaminationCurve.power_law(1.0, 10)


def test_list_ndcg_and_ipw_weights_by_hand():
    labels = np.array([0, 1, 0])
    assert list_ndcg(labels, np.array([3.0, 2.0, 1.0]), 10) == pytest.approx(1 / np.log2(3))
    assert list_ndcg(labels, np.array([1.0, 2.0, 0.0]), 10) == pytest.approx(1.0)
    # Weights scale gains; with one positive the ratio is unchanged, with two it is not.
    two = np.array([1, 1])
    w = np.array([1.0, 4.0])
    got = list_ndcg(two, np.array([2.0, 1.0]), 10, w)
    assert got == pytest.approx((1 + 4 / np.log2(3)) / (4 + 1 / np.log2(3)))


def test_pbm_clicks_moves_clicks_with_examination():
    labels = np.array([0, 0, 1])
    logged = np.array([1, 2, 3])
    # Moving the clicked item from slot 3 to slot 1 triples its examination.
    assert pbm_clicks(labels, logged, np.array([0.0, -1.0, 5.0]), CURVE, 10.0) == pytest.approx(3.0)
    assert pbm_clicks(labels, logged, np.array([0.0, -1.0, 5.0]), CURVE, 2.0) == pytest.approx(2.0)
    assert pbm_clicks(labels, logged, np.array([3.0, 2.0, 1.0]), CURVE, 10.0) == pytest.approx(1.0)


def held_out(n: int, seed: int = 0) -> list[FeaturizedList]:
    """Lists of 5 items; feature 0 is the truth, the shopper clicked the best item."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        X = rng.normal(size=(5, 3))
        labels = np.zeros(5, dtype=int)
        labels[int(np.argmax(X[:, 0]))] = 1
        lst = LoggedList(
            f"r{i}", "search", "q", "u", float(i), tuple("abcde"), np.arange(1, 6), np.ones(5), labels
        )
        out.append(FeaturizedList(lst, X))
    return out


def test_better_candidate_promoted_worse_rejected():
    gate = PromotionGate(GateConfig(min_lists=20, n_boot=50))
    data = held_out(200)
    good = lambda X: X[:, 0]  # noqa: E731
    bad = lambda X: -X[:, 0]  # noqa: E731
    up = gate.evaluate(data, good, None, CURVE)
    assert up.promote and up.metrics["ndcg10_candidate"] == pytest.approx(1.0)
    down = gate.evaluate(data, bad, good, CURVE)
    assert not down.promote
    assert "IPS-DCG@10" in down.reason and "clicks" in down.reason
    lo, hi = down.metrics["clicks_delta_ci"]
    assert lo <= down.metrics["clicks_delta"] <= hi < 0
    same = gate.evaluate(data, good, good, CURVE)
    assert same.promote  # equal is "not worse"


def test_too_little_evidence_is_a_rejection():
    decision = PromotionGate(GateConfig(min_lists=50)).evaluate(held_out(10), lambda X: X[:, 0], None, CURVE)
    assert not decision.promote and "not enough" in decision.reason


def test_list_ips_dcg_by_hand():
    labels = np.array([0, 1, 0])
    w = np.array([1.0, 2.0, 3.0])  # the clicked item was logged where 1/theta = 2
    assert list_ips_dcg(labels, np.array([3.0, 2.0, 1.0]), 10, w) == pytest.approx(2 / np.log2(3))
    assert list_ips_dcg(labels, np.array([1.0, 2.0, 0.0]), 10, w) == pytest.approx(2.0)
    assert list_ips_dcg(labels, np.array([3.0, 2.0, 1.0]), 1, w) == 0.0  # below the cut-off
    # unlike NDCG, the weight is not normalised away on a list with one click
    assert list_ndcg(labels, np.array([1.0, 2.0, 0.0]), 10, w) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="ranking_metric"):
        GateConfig(ranking_metric="mrr")  # type: ignore[arg-type]


def position_biased_logs(n: int, noise: float, seed: int = 0) -> list[FeaturizedList]:
    """Lists of 8 shown in a noisy order of the true click probability (feature 0 is the truth,
    feature 1 the logging policy's score); shoppers look at slot k with probability 1/k."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        relevance = rng.uniform(0.0, 0.6, size=8)
        logged = relevance + rng.normal(0.0, noise, size=8)
        order = np.argsort(-logged)
        shown = relevance[order]
        clicks = (rng.random(8) < 1.0 / np.arange(1, 9)) & (rng.random(8) < shown)
        if clicks.any():
            lst = LoggedList(
                f"r{i}",
                "home",
                None,
                "u",
                float(i),
                tuple("abcdefgh"),
                np.arange(1, 9),
                np.ones(8),
                clicks.astype(int),
            )
            out.append(FeaturizedList(lst, np.stack([shown, logged[order]], axis=1)))
    return out


@pytest.mark.parametrize("noise", [0.1, 0.4])
def test_ips_dcg_promotes_the_true_order_that_per_list_ndcg_refuses(noise):
    """Why the browsing surfaces are gated on IPS-DCG: shoppers clicked where the logging order
    put items and they looked, and on a one-click list NDCG's normalisation cancels the weight
    that should correct for it, so even the true order looks worse than a noisy logging order."""
    data = position_biased_logs(2000, noise)
    truth = lambda X: X[:, 0]  # noqa: E731
    by_dcg = PromotionGate(GateConfig(ranking_metric="ips_dcg", n_boot=50)).evaluate(data, truth, None, CURVE)
    assert by_dcg.promote, by_dcg.reason
    m = by_dcg.metrics
    assert m["ips_dcg10_candidate"] > m["ips_dcg10_active"] and m["clicks_delta"] > 0
    by_ndcg = PromotionGate(GateConfig(ranking_metric="ndcg", n_boot=50)).evaluate(data, truth, None, CURVE)
    assert not by_ndcg.promote and m["ndcg10_candidate"] < m["ndcg10_active"]
    worse = PromotionGate(GateConfig(ranking_metric="ips_dcg", n_boot=50)).evaluate(
        data, lambda X: -X[:, 0], None, CURVE
    )
    assert not worse.promote and "IPS-DCG@10" in worse.reason
