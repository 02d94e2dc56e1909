"""Position-bias estimators recover a known examination curve from synthetic logs."""

from __future__ import annotations

import numpy as np
import pytest

from shoploop.feedback.click_models import (
    ExaminationCurve,
    PositionBasedModel,
    examination_from_randomisation,
    harvest_position_bias,
    power_law_exponent,
)
from shoploop.feedback.exploration import ExplorationConfig, ExplorationPolicy


def synthetic_log(eta: float, n_pairs: int, lists_per_pair: int, n_pos: int, seed: int, randomise: bool):
    """Each pair has a true relevance; it is shown at a uniformly random slot (randomise) or
    at a slot drawn near a fixed preferred one; click = examined(slot) and relevant."""
    rng = np.random.default_rng(seed)
    gamma = rng.uniform(0.1, 0.9, n_pairs)
    theta = 1.0 / np.arange(1, n_pos + 1) ** eta
    pair = np.repeat(np.arange(n_pairs), lists_per_pair)
    if randomise:
        pos = rng.integers(1, n_pos + 1, size=len(pair))
    else:
        home = rng.integers(1, n_pos + 1, size=n_pairs)
        pos = np.clip(home[pair] + rng.integers(-1, 2, size=len(pair)), 1, n_pos)
    click = (rng.random(len(pair)) < theta[pos - 1] * gamma[pair]).astype(float)
    return pair, pos, click, theta


@pytest.mark.parametrize("eta", [0.5, 1.0, 1.5])
def test_em_pbm_recovers_the_curve(eta):
    pair, pos, click, theta = synthetic_log(eta, 400, 60, 10, seed=1, randomise=True)
    curve = PositionBasedModel().fit(pair, pos, click).curve()
    assert curve.theta[0] == pytest.approx(1.0)
    np.testing.assert_allclose(curve.theta, theta, atol=0.06)


def test_em_pbm_with_little_randomisation_still_close():
    # Only +-1 slot jitter around a fixed ranking: identification comes from the swaps.
    pair, pos, click, theta = synthetic_log(1.0, 600, 60, 10, seed=2, randomise=False)
    curve = PositionBasedModel().fit(pair, pos, click).curve()
    # Errors compound down the chain of swaps, so deep slots are looser (measured: <= 0.09).
    np.testing.assert_allclose(curve.theta[:6], theta[:6], atol=0.05)
    np.testing.assert_allclose(curve.theta, theta, atol=0.1)


@pytest.mark.parametrize("eta", [0.7, 1.2])
def test_intervention_harvesting_recovers_the_curve(eta):
    pair, pos, click, theta = synthetic_log(eta, 400, 80, 6, seed=3, randomise=True)
    curve = harvest_position_bias(pair, pos, click, 6)
    assert curve.method == "intervention-harvesting"
    np.testing.assert_allclose(curve.theta, theta, atol=0.06)


def test_power_law_curve_and_lookup():
    curve = ExaminationCurve.power_law(1.0, 4)
    np.testing.assert_allclose(curve.theta, [1, 1 / 2, 1 / 3, 1 / 4])
    # positions past the curve reuse its last value; the floor guards 1/theta
    np.testing.assert_allclose(curve.at([1, 4, 9]), [1, 0.25, 0.25])
    assert curve.to_dict()["theta"][1] == 0.5


def test_positions_must_be_one_based():
    with pytest.raises(ValueError, match="1-based"):
        PositionBasedModel().fit([0], [0], [1])


def test_power_law_exponent_by_hand():
    # theta_k = k^-1 exactly -> eta 1; a flat curve -> 0; never negative for a rising one.
    assert power_law_exponent([1.0, 1 / 2, 1 / 3, 1 / 4]) == pytest.approx(1.0)
    assert power_law_exponent([1.0, 1.0, 1.0]) == pytest.approx(0.0)
    assert power_law_exponent([1.0, 1.2]) == 0.0
    # log-log least squares through theta_1 = 1 with one point: eta = -ln(0.25) / ln(2) = 2
    assert power_law_exponent([1.0, 0.25]) == pytest.approx(2.0)
    # weighted: slot 2 says eta 1 (0.5), slot 3 says eta 2 (1/9); weights 1 and 3 give
    # eta = (w2 ln2 ln2 * 1 + w3 ln3 ln3 * 2) / (w2 ln2^2 + w3 ln3^2)
    l2, l3 = np.log(2), np.log(3)
    want = (l2 * l2 + 3 * l3 * l3 * 2) / (l2 * l2 + 3 * l3 * l3)
    assert power_law_exponent([1.0, 0.5, 1 / 9], [5.0, 1.0, 3.0]) == pytest.approx(want)
    # slots without clicks (theta 0 or weight 0) are left out
    assert power_law_exponent([1.0, 0.5, 0.0], [1, 1, 0]) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="two slots"):
        power_law_exponent([1.0])


def explored_rows(eta: float, n_lists: int, seed: int):
    """Lists shuffled by the real exploration policy; shoppers follow a PBM with theta = k^-eta.

    Item relevance rises with the ranker's score, so the policy puts relevant items high more
    often: a naive per-slot click rate confounds the two, the IPS estimate must not."""
    rng = np.random.default_rng(seed)
    policy = ExplorationPolicy(ExplorationConfig(budget=1.0))
    support = policy.full_support_ranks
    slot, prob, click = [], [], []
    for _ in range(n_lists):
        scores = np.sort(rng.normal(size=6))[::-1]
        relevance = 1 / (1 + np.exp(-2 * scores))
        res = policy.choose(scores, rng)
        for s in range(6):
            rank = res.order[s]
            if rank < support:
                seen = rng.random() < (s + 1) ** -eta
                slot.append(s + 1)
                prob.append(res.slot_probabilities[s])
                click.append(seen and rng.random() < relevance[rank])
    return np.array(slot), np.array(prob), np.array(click)


@pytest.mark.parametrize("eta", [0.7, 1.2])
def test_ips_curve_from_the_exploration_recovers_the_power_law(eta):
    slot, prob, click = explored_rows(eta, 6000, seed=6)
    curve = examination_from_randomisation(slot, prob, click, n_positions=10)
    truth = np.arange(1, 11) ** -eta
    np.testing.assert_allclose(curve.theta, truth, atol=0.04)
    np.testing.assert_allclose(curve.raw, truth[:6], atol=0.08)  # unsmoothed, noisier
    assert curve.method.startswith("ips on explored lists (slots 1-6)")
    # The naive per-slot click rate of the same rows is confounded by where relevant items land.
    naive = np.array([click[slot == k].mean() for k in range(1, 7)])
    assert abs(naive[5] / naive[0] - truth[5]) > abs(curve.raw[5] - truth[5])


def test_ips_curve_checks_its_input():
    with pytest.raises(ValueError, match="same length"):
        examination_from_randomisation([1, 2], [0.5], [1, 0], n_positions=5)
    with pytest.raises(ValueError, match="1-based"):
        examination_from_randomisation([0, 2], [0.5, 0.5], [1, 0], n_positions=5)
    with pytest.raises(ValueError, match="probabilities"):
        examination_from_randomisation([1, 2], [0.0, 0.5], [1, 0], n_positions=5)
    with pytest.raises(ValueError, match="slot 1"):
        examination_from_randomisation([1, 2], [0.5, 0.5], [0, 1], n_positions=5)


def test_ips_curve_by_hand():
    # Slot 1: two clicks with probability 0.5 -> 4; slot 2: one click with probability 0.25 -> 4,
    # and an unclicked row; slot 3: one click at 1.0 -> 1. Raw ratios 1, 1, 0.25.
    curve = examination_from_randomisation(
        [1, 1, 2, 2, 3], [0.5, 0.5, 0.25, 0.5, 1.0], [1, 1, 1, 0, 1], n_positions=4
    )
    assert curve.raw == pytest.approx((1.0, 1.0, 0.25))
    # weights = clicks per slot (1 and 1): eta = -(ln2 * 0 + ln3 * ln0.25) / (ln2^2 + ln3^2)
    eta = -(np.log(3) * np.log(0.25)) / (np.log(2) ** 2 + np.log(3) ** 2)
    assert curve.theta == pytest.approx(tuple(k**-eta for k in range(1, 5)))
    assert curve.to_dict()["raw"] == [1.0, 1.0, 0.25]
