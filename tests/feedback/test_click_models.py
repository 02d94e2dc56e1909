"""Position-bias estimators recover a known examination curve from synthetic logs."""

from __future__ import annotations

import numpy as np
import pytest

from shoploop.feedback.click_models import (
    ExaminationCurve,
    PositionBasedModel,
    harvest_position_bias,
)


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
