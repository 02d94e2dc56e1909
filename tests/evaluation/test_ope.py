"""Off-policy estimators: hand-computed values, unbiasedness on synthetic logs with a known truth."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from shoploop.evaluation import ope
from shoploop.evaluation.ope_models import (
    CellCTRConfig,
    CellCTRModel,
    LogisticRewardConfig,
    LogisticRewardModel,
    PBMCTRConfig,
    PBMCTRModel,
    fit_beta_prior,
)

# Tiny log used by the hand-computed tests:
# reward    1    0    1     0
# pscore   .5   .5   .25   .25
# pi_e      1   .5   .5     0     -> w = 2, 1, 2, 0
# q_logged = v_model = 0.5 everywhere
R = np.array([1.0, 0.0, 1.0, 0.0])
PS = np.array([0.5, 0.5, 0.25, 0.25])
PE = np.array([1.0, 0.5, 0.5, 0.0])
Q = np.full(4, 0.5)
V = np.full(4, 0.5)


def test_weights_and_ips_family_by_hand() -> None:
    w = ope.importance_weights(PE, PS)
    np.testing.assert_allclose(w, [2, 1, 2, 0])
    # IPS = (2*1 + 1*0 + 2*1 + 0*0) / 4 = 1.0
    assert ope.ips(R, w) == pytest.approx(1.0)
    # SNIPS = 4 / (2 + 1 + 2 + 0) = 0.8
    assert ope.snips(R, w) == pytest.approx(0.8)
    # clipped at 1.5: weights 1.5, 1, 1.5, 0 -> (1.5 + 1.5) / 4 = 0.75
    assert ope.clipped_ips(R, w, 1.5) == pytest.approx(0.75)
    with pytest.raises(ValueError):
        ope.importance_weights([0.5], [0.0])


def test_model_based_estimators_by_hand() -> None:
    w = ope.importance_weights(PE, PS)
    assert ope.direct_method(V) == pytest.approx(0.5)
    # DR terms: .5 + 2*.5 = 1.5 ; .5 + 1*(-.5) = 0 ; 1.5 ; .5 + 0 = .5 -> 3.5 / 4 = 0.875
    assert ope.doubly_robust(R, w, Q, V) == pytest.approx(0.875)
    # SNDR = mean(v) + sum w (r - q) / sum w = .5 + (1 - .5 + 1 + 0) / 5 = 0.8
    assert ope.sndr(R, w, Q, V) == pytest.approx(0.8)
    # Switch-DR tau = 1.5 keeps the correction only where w <= 1.5 (rows 2 and 4):
    # .5 ; 0 ; .5 ; .5 -> 1.5 / 4 = 0.375
    assert ope.switch_dr(R, w, Q, V, 1.5) == pytest.approx(0.375)
    assert ope.switch_dr(R, w, Q, V, np.inf) == pytest.approx(0.875)  # = DR
    assert ope.switch_dr(R, w, Q, V, 0.0) == pytest.approx(0.5)  # = DM (w = 0 row has no correction)
    # DR-os lambda = 2: shrunk weights 2w/(w^2+2): w=2 -> 4/6, w=1 -> 2/3, w=0 -> 0
    # terms .5 + (2/3)(.5) = .8333 ; .5 - (2/3)(.5) = .1667 ; .8333 ; .5 -> 2.3333 / 4 = 0.58333
    assert ope.dr_os(R, w, Q, V, 2.0) == pytest.approx(7 / 12)
    assert ope.dr_os(R, w, Q, V, np.inf) == pytest.approx(0.875)
    assert ope.dr_os(R, w, Q, V, 0.0) == pytest.approx(0.5)


def test_position_wise_by_hand() -> None:
    # slot 0 rows: r = 1, 0 with w = 2, 1 -> IPS (2 + 0)/2 = 1 ; SNIPS 2/3
    # slot 1 rows: r = 1, 0 with w = 2, 0 -> IPS 2/2 = 1 ; SNIPS 2/2 = 1
    w = ope.importance_weights(PE, PS)
    pos = np.array([0, 0, 1, 1])
    assert ope.position_ips(R, w, pos, 2) == pytest.approx(1.0)
    assert ope.position_snips(R, w, pos, 2) == pytest.approx((2 / 3 + 1) / 2)
    # custom slot weights 3:1 -> (3 * 2/3 + 1 * 1) / 4 = 0.75
    assert ope.position_snips(R, w, pos, 2, position_weights=[3, 1]) == pytest.approx(0.75)


def test_policy_helpers() -> None:
    ad = np.zeros((2, 3, 2))
    ad[:, 0, 0], ad[:, 1, 0] = 0.25, 0.75
    ad[:, 2, 1] = 1.0
    np.testing.assert_allclose(ope.logged_action_prob(ad, [1, 2], [0, 1]), [0.75, 1.0])
    q = np.array([[[0.4, 0.1], [0.8, 0.2], [0.0, 0.3]]])  # (1, 3 actions, 2 slots), broadcast over rounds
    # slot 0: .25*.4 + .75*.8 = 0.7 ; slot 1: 1.0*.3 = 0.3
    np.testing.assert_allclose(ope.model_policy_value(ad, q, [0, 1]), [0.7, 0.3])


def _synthetic_log(rng: np.random.Generator, n: int, theta: np.ndarray, pi_b: np.ndarray):
    a = rng.choice(theta.shape[0], size=n, p=pi_b)
    r = (rng.random(n) < theta[a]).astype(float)
    return a, r


def test_unbiased_estimators_recover_known_truth() -> None:
    # 4 actions, non-uniform logging, a biased reward model: IPS and DR stay unbiased,
    # so their mean over many seeds is close to sum_a pi_e(a) theta_a.
    theta = np.array([0.1, 0.3, 0.5, 0.2])
    pi_b = np.array([0.4, 0.3, 0.2, 0.1])
    pi_e = np.array([0.1, 0.2, 0.6, 0.1])
    truth = float(pi_e @ theta)  # 0.01 + 0.06 + 0.30 + 0.02 = 0.39
    q_bad = np.full(4, 0.2)  # deliberately wrong model
    est = {"ips": [], "dr": [], "snips": [], "sndr": [], "switch": []}
    for seed in range(300):
        rng = np.random.default_rng(seed)
        a, r = _synthetic_log(rng, 500, theta, pi_b)
        w = pi_e[a] / pi_b[a]
        v = np.full(a.shape[0], pi_e @ q_bad)
        est["ips"].append(ope.ips(r, w))
        est["dr"].append(ope.doubly_robust(r, w, q_bad[a], v))
        est["snips"].append(ope.snips(r, w))
        est["sndr"].append(ope.sndr(r, w, q_bad[a], v))
        est["switch"].append(ope.switch_dr(r, w, q_bad[a], v, np.inf))
        # self-normalised estimators stay inside the reward range
        assert r.min() <= est["snips"][-1] <= r.max()
    # standard error of the mean over 300 seeds is ~0.003; allow 0.01
    for name in ("ips", "dr", "switch"):
        assert np.mean(est[name]) == pytest.approx(truth, abs=0.01), name
    # SNIPS/SNDR are consistent: close at n = 500 as well
    assert np.mean(est["snips"]) == pytest.approx(truth, abs=0.015)
    assert np.mean(est["sndr"]) == pytest.approx(truth, abs=0.015)
    # the wrong model alone is far off
    assert abs(float(pi_e @ q_bad) - truth) > 0.15


def test_position_based_estimators_recover_slate_truth() -> None:
    # Position-based model: P(click | item a in slot p) = theta_a * kappa_p; uniform random logging per slot.
    rng0 = np.random.default_rng(42)
    n_items, n_slots = 6, 3
    theta = rng0.uniform(0.1, 0.6, n_items)
    kappa = np.array([1.0, 0.6, 0.3])
    pi_e = rng0.dirichlet(np.ones(n_items), size=n_slots).T  # (n_items, n_slots), per-slot distributions
    truth = float(np.mean([(pi_e[:, p] * theta).sum() * kappa[p] for p in range(n_slots)]))
    ips_vals, dm_vals = [], []
    for seed in range(200):
        rng = np.random.default_rng(seed)
        n = 900
        pos = rng.integers(0, n_slots, n)
        a = rng.integers(0, n_items, n)
        r = (rng.random(n) < theta[a] * kappa[pos]).astype(float)
        w = pi_e[a, pos] * n_items  # pscore = 1/n_items per slot
        ips_vals.append(ope.position_ips(r, w, pos, n_slots))
        model = PBMCTRModel(PBMCTRConfig(n_items, n_slots, shrinkage=0.0)).fit(a, pos, r)
        dm_vals.append(float(np.mean((pi_e * model.predict()).sum(0))))
    assert np.mean(ips_vals) == pytest.approx(truth, abs=0.01)
    assert np.mean(dm_vals) == pytest.approx(truth, abs=0.01)  # the PBM is the true model here


def test_hyperparameter_selectors_use_candidates() -> None:
    rng = np.random.default_rng(0)
    n = 2000
    w = rng.exponential(1.0, n) * 3
    r = (rng.random(n) < 0.1).astype(float)
    q = np.full(n, 0.1)
    v = np.full(n, 0.1)
    cands = np.array([0.5, 2.0, np.inf])
    assert ope.switch_tau_by_bound(r, w, q, v, cands) in cands
    assert ope.dr_os_lambda_by_bound(r, w, q, v, np.array([0.0, 1.0, np.inf])) in (0.0, 1.0, np.inf)


def test_bootstrap_ci_is_reproducible_and_brackets_estimate() -> None:
    rng = np.random.default_rng(1)
    data = {"reward": (rng.random(400) < 0.3).astype(float), "weight": rng.uniform(0.5, 1.5, 400)}

    def est(d):
        return ope.snips(d["reward"], d["weight"])

    ci1 = ope.bootstrap_ci(est, data, n_boot=100, alpha=0.1, seed=3)
    ci2 = ope.bootstrap_ci(est, data, n_boot=100, alpha=0.1, seed=3)
    assert ci1 == ci2
    assert ci1.low <= ci1.estimate <= ci1.high
    assert ci1.std > 0
    with pytest.raises(ValueError):
        ope.bootstrap_ci(est, {"reward": np.zeros(3), "weight": np.zeros(2)}, n_boot=10)


def test_beta_prior_shrinks_identical_groups_hard() -> None:
    # 20 groups with identical true rate: strength should be large (shrink to the pooled rate)
    rng = np.random.default_rng(0)
    trials = np.full(20, 500.0)
    same = rng.binomial(500, 0.05, 20).astype(float)
    _, s_same = fit_beta_prior(same, trials)
    diff = rng.binomial(500, rng.uniform(0.01, 0.3, 20)).astype(float)
    _, s_diff = fit_beta_prior(diff, trials)
    assert s_same > 10 * s_diff


def test_pbm_and_cell_models_roundtrip(tmp_path: Path) -> None:
    a = np.array([0, 0, 1, 1, 2, 2, 0, 1])
    p = np.array([0, 1, 0, 1, 0, 1, 0, 0])
    r = np.array([1, 0, 0, 0, 1, 1, 1, 0], dtype=float)
    pbm = PBMCTRModel(PBMCTRConfig(3, 2)).fit(a, p, r, item_prior=[1.0, 2.0, 1.0])
    pbm.save(tmp_path / "pbm")
    again = PBMCTRModel.load(tmp_path / "pbm")
    np.testing.assert_allclose(again.predict(), pbm.predict())
    cell = CellCTRModel(CellCTRConfig(3, 2)).fit(a, p, r)
    cell.save(tmp_path / "cell")
    np.testing.assert_allclose(CellCTRModel.load(tmp_path / "cell").predict(), cell.predict())
    assert ((cell.predict() >= 0) & (cell.predict() <= 1)).all()


def test_pbm_mle_by_hand() -> None:
    # 2 items x 2 slots, 4 rows each cell? Keep it tiny:
    # slot 0 rows: (a0, 1), (a1, 0) ; slot 1 rows: (a0, 0), (a1, 1), (a0, 1), (a1, 0)
    a = np.array([0, 1, 0, 1, 0, 1])
    p = np.array([0, 0, 1, 1, 1, 1])
    r = np.array([1, 0, 0, 1, 1, 0], dtype=float)
    m = PBMCTRModel(PBMCTRConfig(2, 2, shrinkage=0.0)).fit(a, p, r)
    # overall rate 3/6 = .5 ; slot rates .5 and .5 -> kappa = (1, 1)
    # theta_0 = clicks 2 / exposure 3 ; theta_1 = 1 / 3
    np.testing.assert_allclose(m.kappa_, [1.0, 1.0])
    np.testing.assert_allclose(m.theta_, [2 / 3, 1 / 3])


def test_logistic_reward_model_cross_fit_shapes() -> None:
    rng = np.random.default_rng(0)
    n = 300
    x = rng.normal(size=(n, 2))
    a = rng.integers(0, 3, n)
    p = rng.integers(0, 2, n)
    r = (rng.random(n) < 0.2 + 0.3 * (a == 2)).astype(float)
    q = LogisticRewardModel(LogisticRewardConfig(3, 2, n_folds=2)).fit_predict(x, a, p, r)
    assert q.shape == (n, 3, 2)
    assert ((q > 0) & (q < 1)).all()
    assert q[:, 2].mean() > q[:, 0].mean()  # learnt that item 2 is clicked more
