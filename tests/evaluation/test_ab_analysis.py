from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats

from shoploop.evaluation.ab import (
    Experiment,
    MetricSpec,
    Variant,
    VariantData,
    always_valid_p_values,
    analyze_experiment,
    confidence_sequence,
    cuped_test,
    daily_sequential,
    guardrail_verdict,
    msprt_log_lr,
    srm_check,
    two_proportion_test,
    welch_test,
)


def test_planted_sample_ratio_mismatch_is_flagged():
    res = srm_check([5300, 4700], [0.5, 0.5])
    assert res.chi2 == pytest.approx(36.0)  # 2 * 300^2 / 5000
    assert res.p_value == pytest.approx(stats.chi2.sf(36.0, 1)) and res.p_value < 1e-8
    assert res.mismatch and "MISMATCH" in res.message
    ok = srm_check([5030, 4970], [0.5, 0.5])  # chi2 = 0.36, p = 0.55
    assert not ok.mismatch and ok.p_value == pytest.approx(0.5485, abs=1e-3)
    three = srm_check([2000, 3000, 5000], [0.2, 0.3, 0.5])
    assert three.chi2 == 0.0 and not three.mismatch


def test_welch_matches_hand_computation():
    c = np.array([1, 2, 3, 4, 5], dtype=float)  # mean 3, var 2.5
    t = np.array([2, 4, 6, 8, 10, 12], dtype=float)  # mean 7, var 14
    eff = welch_test(c, t, alpha=0.05)
    se = math.sqrt(14 / 6 + 2.5 / 5)
    df = (14 / 6 + 0.5) ** 2 / ((14 / 6) ** 2 / 5 + 0.5**2 / 4)
    assert eff.diff == pytest.approx(4.0)
    assert eff.se == pytest.approx(se) and se == pytest.approx(1.68325, abs=1e-5)
    assert df == pytest.approx(6.9722, abs=1e-3)
    tq = stats.t.ppf(0.975, df)
    assert eff.diff_ci == pytest.approx((4 - tq * se, 4 + tq * se))
    assert eff.p_value == pytest.approx(stats.ttest_ind(t, c, equal_var=False).pvalue)
    assert eff.relative_lift == pytest.approx(7 / 3 - 1)
    # delta method: se(lift) = sqrt(se_t^2/m_c^2 + m_t^2 se_c^2/m_c^4)
    se_lift = math.sqrt((14 / 6) / 9 + 49 * 0.5 / 81)
    z = stats.norm.ppf(0.975)
    assert eff.lift_ci == pytest.approx((4 / 3 - z * se_lift, 4 / 3 + z * se_lift))


def test_two_proportion_matches_hand_computation():
    eff = two_proportion_test(100, 1000, 120, 1000, alpha=0.05)
    # unpooled se = sqrt(.12*.88/1000 + .1*.9/1000) = 0.0139857; CI = 0.02 +- 1.95996 * se
    assert eff.diff == pytest.approx(0.02)
    assert eff.se == pytest.approx(0.0139857, abs=1e-6)
    assert eff.diff_ci == pytest.approx((-0.0074115, 0.0474115), abs=1e-6)
    # pooled p = .11: z = .02 / sqrt(.11*.89*.002) = 1.42929, two-sided p = 0.15291
    assert eff.p_value == pytest.approx(0.15291, abs=1e-4)
    assert not eff.significant
    assert eff.relative_lift == pytest.approx(0.2)


def test_cuped_reduces_variance_and_stays_unbiased():
    rng = np.random.default_rng(0)
    reps, n, effect = 300, 400, 0.3
    raw_d, adj_d, vr = [], [], []
    for _ in range(reps):
        xc, xt = rng.normal(10, 2, n), rng.normal(10, 2, n)
        yc = xc + rng.normal(0, 1, n)
        yt = xt + rng.normal(0, 1, n) + effect
        res = cuped_test(yc, xc, yt, xt)
        raw_d.append(yt.mean() - yc.mean())
        adj_d.append(res.diff)
        vr.append(res.variance_reduction)
    raw_d, adj_d = np.array(raw_d), np.array(adj_d)
    # rho^2 = 4/5: adjusted variance should be ~1/5 of the raw one
    assert np.var(adj_d) < 0.3 * np.var(raw_d)
    assert np.mean(vr) == pytest.approx(0.8, abs=0.03)
    assert abs(adj_d.mean() - effect) < 3 * adj_d.std() / math.sqrt(reps)


def test_msprt_closed_form_and_large_effect():
    # log Lambda at D=1, V=1, tau2=1: 0.5 log(1/2) + 1/(2*1*2) = -0.34657 + 0.25
    assert msprt_log_lr(np.array(1.0), np.array(1.0), 1.0) == pytest.approx(-0.0965736, abs=1e-6)
    rng = np.random.default_rng(1)
    days, per_day = 14, 500
    c = rng.binomial(1, 0.05, days * per_day).astype(float)
    t = rng.binomial(1, 0.10, days * per_day).astype(float)  # 100% lift
    day = np.repeat(np.arange(days), per_day)
    res = daily_sequential(c, day, t, day, tau2=0.0025**2 * 4)
    p = np.array(res.p_values)
    assert np.all(np.diff(p) <= 0)
    assert p[-1] < 1e-4 and res.first_rejection is not None
    assert res.lower[-1] <= 0.05 <= res.upper[-1]  # the interval covers the true difference


@given(
    st.lists(st.floats(-5, 5), min_size=2, max_size=30),
    st.floats(0.01, 10),
)
def test_always_valid_p_values_never_increase(diffs, tau2):
    d = np.array(diffs)
    v = 1.0 / np.arange(1, len(d) + 1)
    p = always_valid_p_values(d, v, tau2)
    assert np.all(np.diff(p) <= 1e-15) and np.all((p >= 0) & (p <= 1))
    lo, hi = confidence_sequence(d, v, tau2, 0.05)
    assert np.all(np.diff(lo) >= 0) and np.all(np.diff(hi) <= 0)
    # duality: rejected at 5% <=> the running confidence sequence excludes 0
    excluded = (lo > 0) | (hi < 0)
    assert np.array_equal(p < 0.05, excluded)


def test_sequential_false_positive_rate_under_daily_peeking():
    rng = np.random.default_rng(2)
    sims, looks, n_per_look = 4000, 30, 200
    # Gaussian data with known unit variance: the mSPRT is exactly a martingale here
    # each look adds n_per_look users per arm; the running sums' increments have sd sqrt(n_per_look)
    xt = rng.normal(0, math.sqrt(n_per_look), (sims, looks)).cumsum(axis=1)
    xc = rng.normal(0, math.sqrt(n_per_look), (sims, looks)).cumsum(axis=1)
    n = np.arange(1, looks + 1)
    diff = (xt - xc) / (n * n_per_look)
    var = np.broadcast_to(2.0 / (n * n_per_look), diff.shape)
    p = always_valid_p_values(diff, var, tau2=0.01)
    fpr = float((p[:, -1] < 0.05).mean())
    assert fpr <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / sims)


def _exp() -> Experiment:
    return Experiment(
        id="e",
        variants=(Variant("control", 0.5), Variant("treatment", 0.5)),
        primary_metric=MetricSpec("converted", kind="proportion"),
        guardrails=(
            MetricSpec("revenue", kind="mean", max_relative_harm=0.05),
            MetricSpec("latency", kind="mean", direction="decrease", max_relative_harm=0.01),
        ),
    )


def test_guardrail_verdicts():
    spec = MetricSpec("revenue", max_relative_harm=0.02)
    rng = np.random.default_rng(3)
    same = welch_test(rng.normal(100, 5, 20000), rng.normal(100, 5, 20000))
    assert guardrail_verdict(same, spec).verdict == "pass"
    worse = welch_test(rng.normal(100, 5, 20000), rng.normal(90, 5, 20000))
    assert guardrail_verdict(worse, spec).verdict == "fail"
    noisy = welch_test(rng.normal(100, 50, 50), rng.normal(100, 50, 50))
    assert guardrail_verdict(noisy, spec).verdict == "inconclusive"
    slower = welch_test(rng.normal(100, 5, 20000), rng.normal(110, 5, 20000))
    assert guardrail_verdict(slower, MetricSpec("latency", direction="decrease")).verdict == "fail"


def test_analyze_experiment_end_to_end():
    rng = np.random.default_rng(4)
    data = {}
    for name, n, rate, rev, lat in [
        ("control", 5300, 0.05, 10.0, 100.0),
        ("treatment", 4700, 0.08, 10.0, 130.0),
    ]:
        pre = rng.binomial(1, rate, n).astype(float)
        data[name] = VariantData(
            metrics={
                "converted": rng.binomial(1, rate, n).astype(float),
                "revenue": rng.normal(rev, 1, n),
                "latency": rng.normal(lat, 5, n),
            },
            pre_period={"converted": pre},
            day=rng.integers(0, 14, n),
        )
    out = analyze_experiment(_exp(), data)
    assert out.srm.mismatch and not out.trustworthy
    (cmp,) = out.comparisons
    assert cmp.primary.method == "two-proportion-z" and cmp.primary.significant
    assert cmp.primary_cuped is not None and cmp.sequential is not None
    assert len(cmp.sequential.p_values) == 14
    verdicts = {g.metric: g.verdict for g in cmp.guardrails}
    assert verdicts == {"revenue": "pass", "latency": "fail"}
