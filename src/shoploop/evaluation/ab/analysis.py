"""A/B analysis: sample-ratio check, effects with intervals, CUPED, always-valid sequential tests.

Everything here is a function over arrays or summary statistics, so the same code serves
the dashboard (one read of an experiment) and the calibration benchmark (thousands of
simulated experiments at once, vectorised over a leading axis).

Sequential testing: the mixture sequential probability ratio test (mSPRT) of Johari,
Pekelis & Walsh, "Always Valid Inference: Continuous Monitoring of A/B Tests" (2017/2022).
For a difference estimate D with variance V at the current look, mixing the alternative
theta over N(0, tau2) gives the likelihood ratio against theta = 0

    Lambda = sqrt(V / (V + tau2)) * exp(tau2 * D^2 / (2 V (V + tau2))).

Under H0, Lambda is a non-negative martingale (exactly, for Gaussian data with known V;
approximately, with V plugged in from the data), so by Ville's inequality
P(sup_n Lambda_n >= 1/alpha) <= alpha: the p-value p_n = min(p_{n-1}, 1/Lambda_n) may be
read every day and acting on it at any time keeps the false-positive rate below alpha.
Inverting the same test for every theta0 gives a confidence *sequence*.

The mixing variance tau2 is in the metric's units squared and says which effect sizes the
test is tuned for: the test detects effects of order tau soonest; much smaller effects take
longer than with a well-tuned tau, and a too-large tau wastes power on small effects.
`default_tau2` uses (relative_effect * baseline)^2, i.e. tuned to the lift one hopes to
find (5% of the control mean unless told otherwise); the calibration benchmark reports the
sensitivity to this choice. Validity does not depend on tau2, only power does.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np
from scipy import stats

from shoploop.evaluation.ab.experiment import Experiment, MetricSpec

# ---------------------------------------------------------------------------- SRM


@dataclass(frozen=True)
class SRMResult:
    observed: tuple[int, ...]
    expected: tuple[float, ...]
    chi2: float
    df: int
    p_value: float
    threshold: float
    mismatch: bool

    @property
    def message(self) -> str:
        if not self.mismatch:
            return f"traffic split as designed (chi2={self.chi2:.2f}, p={self.p_value:.3g})"
        return (
            f"SAMPLE RATIO MISMATCH: observed {list(self.observed)} vs expected "
            f"{[round(e, 1) for e in self.expected]} (chi2={self.chi2:.1f}, p={self.p_value:.2g}); "
            "assignment or logging is broken, do not trust the effects"
        )


def srm_check(counts: Sequence[int], shares: Sequence[float], *, threshold: float = 0.001) -> SRMResult:
    """Pearson chi-square goodness-of-fit of exposed-user counts to the designed shares.

    The conventional threshold is p < 0.001: an SRM check runs on every read of every
    experiment, so it must rarely fire by chance, and real SRMs (bots, redirects, logging
    bugs) give astronomically small p-values anyway.
    """
    obs = np.asarray(counts, dtype=float)
    sh = np.asarray(shares, dtype=float)
    if obs.shape != sh.shape or obs.ndim != 1 or len(obs) < 2:
        raise ValueError("counts and shares must be 1-d of the same length >= 2")
    expected = obs.sum() * sh / sh.sum()
    if obs.sum() == 0:
        return SRMResult(
            tuple(int(c) for c in obs), tuple(expected), 0.0, len(obs) - 1, 1.0, threshold, False
        )
    chi2 = float(np.sum((obs - expected) ** 2 / expected))
    df = len(obs) - 1
    p = float(stats.chi2.sf(chi2, df))
    return SRMResult(
        tuple(int(c) for c in obs), tuple(float(e) for e in expected), chi2, df, p, threshold, p < threshold
    )


# ---------------------------------------------------------------------------- effects


@dataclass(frozen=True)
class Effect:
    """Treatment minus control, absolute and relative, with (1 - alpha) intervals."""

    metric: str
    method: str
    n_control: int
    n_treatment: int
    control_mean: float
    treatment_mean: float
    diff: float
    diff_ci: tuple[float, float]
    se: float
    p_value: float
    relative_lift: float
    lift_ci: tuple[float, float]
    alpha: float
    variance_reduction: float | None = None  # CUPED: 1 - Var(adjusted diff) / Var(raw diff)

    @property
    def significant(self) -> bool:
        return self.p_value < self.alpha


def relative_lift_ci(
    mean_c: float, se_c: float, mean_t: float, se_t: float, z: float
) -> tuple[float, tuple[float, float]]:
    """Lift mean_t / mean_c - 1 and its delta-method interval (independent arms).

    Var(m_t / m_c) ~= se_t^2 / m_c^2 + m_t^2 se_c^2 / m_c^4.
    """
    if mean_c == 0:
        return math.nan, (math.nan, math.nan)
    lift = mean_t / mean_c - 1.0
    se = math.sqrt(se_t**2 / mean_c**2 + mean_t**2 * se_c**2 / mean_c**4)
    return lift, (lift - z * se, lift + z * se)


def welch_from_stats(
    mean_c: float,
    var_c: float,
    n_c: int,
    mean_t: float,
    var_t: float,
    n_t: int,
    *,
    alpha: float = 0.05,
    metric: str = "",
    method: str = "welch",
) -> Effect:
    """Welch's unequal-variance t interval and test from per-arm mean, sample variance, size."""
    if n_c < 2 or n_t < 2:
        raise ValueError("Welch's test needs at least 2 users per arm")
    a, b = var_t / n_t, var_c / n_c
    se = math.sqrt(a + b)
    diff = mean_t - mean_c
    if se == 0:
        p = 1.0 if diff == 0 else 0.0
        ci = (diff, diff)
    else:
        df = (a + b) ** 2 / (a**2 / (n_t - 1) + b**2 / (n_c - 1)) if (a + b) > 0 else n_t + n_c - 2
        tq = float(stats.t.ppf(1 - alpha / 2, df))
        p = float(2 * stats.t.sf(abs(diff / se), df))
        ci = (diff - tq * se, diff + tq * se)
    z = float(stats.norm.ppf(1 - alpha / 2))
    lift, lift_ci = relative_lift_ci(mean_c, math.sqrt(b), mean_t, math.sqrt(a), z)
    return Effect(metric, method, n_c, n_t, mean_c, mean_t, diff, ci, se, p, lift, lift_ci, alpha)


def welch_test(
    control: np.ndarray, treatment: np.ndarray, *, alpha: float = 0.05, metric: str = ""
) -> Effect:
    """Welch t on per-user values. control: (n_c,), treatment: (n_t,)."""
    c = np.asarray(control, dtype=float)
    t = np.asarray(treatment, dtype=float)
    return welch_from_stats(
        float(c.mean()), float(c.var(ddof=1)), len(c), float(t.mean()), float(t.var(ddof=1)), len(t),
        alpha=alpha, metric=metric,
    )  # fmt: skip


def two_proportion_test(
    successes_c: int, n_c: int, successes_t: int, n_t: int, *, alpha: float = 0.05, metric: str = ""
) -> Effect:
    """Two-proportion z: pooled standard error for the test (exact under H0: p_t = p_c),
    unpooled for the interval (it must cover the difference when the rates differ)."""
    if n_c <= 0 or n_t <= 0:
        raise ValueError("both arms need at least one user")
    pc, pt = successes_c / n_c, successes_t / n_t
    diff = pt - pc
    se = math.sqrt(pt * (1 - pt) / n_t + pc * (1 - pc) / n_c)
    pooled = (successes_c + successes_t) / (n_c + n_t)
    se0 = math.sqrt(pooled * (1 - pooled) * (1 / n_t + 1 / n_c))
    p = float(2 * stats.norm.sf(abs(diff) / se0)) if se0 > 0 else (1.0 if diff == 0 else 0.0)
    z = float(stats.norm.ppf(1 - alpha / 2))
    lift, lift_ci = relative_lift_ci(
        pc, math.sqrt(pc * (1 - pc) / n_c), pt, math.sqrt(pt * (1 - pt) / n_t), z
    )
    return Effect(metric, "two-proportion-z", n_c, n_t, pc, pt, diff, (diff - z * se, diff + z * se), se, p,
                  lift, lift_ci, alpha)  # fmt: skip


# ---------------------------------------------------------------------------- CUPED


def cuped_theta(y: np.ndarray, x: np.ndarray) -> float:
    """theta = Cov(y, x) / Var(x): the regression slope of the metric on its pre-period value.

    Estimated on both arms pooled (Deng, Xu, Kohavi & Walker, WSDM 2013): the pre-period
    covariate is independent of assignment, so pooling keeps the estimate unbiased.
    """
    y = np.asarray(y, dtype=float)
    x = np.asarray(x, dtype=float)
    vx = float(np.var(x, ddof=1))
    if vx == 0:
        return 0.0
    return float(np.cov(y, x, ddof=1)[0, 1] / vx)


def cuped_adjust(y: np.ndarray, x: np.ndarray, theta: float, x_mean: float) -> np.ndarray:
    """y - theta (x - E[x]): same mean as y, variance (1 - rho^2) Var(y) at the optimal theta."""
    return np.asarray(y, dtype=float) - theta * (np.asarray(x, dtype=float) - x_mean)


def cuped_test(
    control_y: np.ndarray,
    control_x: np.ndarray,
    treatment_y: np.ndarray,
    treatment_x: np.ndarray,
    *,
    alpha: float = 0.05,
    metric: str = "",
) -> Effect:
    """Welch on CUPED-adjusted values; reports the variance reduction versus the raw test.

    The relative lift keeps the raw control mean as its denominator (adjustment preserves
    the means) but uses the adjusted standard errors.
    """
    yc, xc, yt, xt = (np.asarray(a, dtype=float) for a in (control_y, control_x, treatment_y, treatment_x))
    y_all, x_all = np.concatenate([yc, yt]), np.concatenate([xc, xt])
    theta = cuped_theta(y_all, x_all)
    xm = float(x_all.mean())
    ac, at = cuped_adjust(yc, xc, theta, xm), cuped_adjust(yt, xt, theta, xm)
    raw = welch_test(yc, yt, alpha=alpha, metric=metric)
    adj = welch_from_stats(
        float(ac.mean()), float(ac.var(ddof=1)), len(ac), float(at.mean()), float(at.var(ddof=1)), len(at),
        alpha=alpha, metric=metric, method="cuped-welch",
    )  # fmt: skip
    vr = 1.0 - (adj.se**2 / raw.se**2) if raw.se > 0 else 0.0
    return replace(adj, variance_reduction=vr)


# ---------------------------------------------------------------------------- sequential (mSPRT)


def default_tau2(baseline_mean: float, relative_effect: float = 0.05) -> float:
    """Mixing variance tuned to detect a `relative_effect` lift on `baseline_mean` (see module doc)."""
    tau = abs(baseline_mean) * relative_effect
    if tau <= 0:
        raise ValueError("baseline_mean and relative_effect must be non-zero")
    return tau * tau


def msprt_log_lr(diff: np.ndarray, var: np.ndarray, tau2: float, theta0: float = 0.0) -> np.ndarray:
    """log Lambda of the normal-mixture SPRT. diff, var: any shape (e.g. (n_sims, n_looks))."""
    d = np.asarray(diff, dtype=float) - theta0
    v = np.asarray(var, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = 0.5 * np.log(v / (v + tau2)) + tau2 * d * d / (2.0 * v * (v + tau2))
    return np.where(v > 0, out, 0.0)


def always_valid_p_values(diff: np.ndarray, var: np.ndarray, tau2: float) -> np.ndarray:
    """p_n = min(1, min_{m<=n} 1/Lambda_m) along the last axis (the looks); non-increasing."""
    p = np.minimum(1.0, np.exp(-msprt_log_lr(diff, var, tau2)))
    return np.minimum.accumulate(p, axis=-1)


def confidence_sequence(
    diff: np.ndarray, var: np.ndarray, tau2: float, alpha: float = 0.05
) -> tuple[np.ndarray, np.ndarray]:
    """Always-valid (1 - alpha) intervals for the difference; running intersection over looks.

    {theta: Lambda(theta) < 1/alpha} is D +- r with
    r = sqrt(V (V + tau2) / tau2 * (2 log(1/alpha) + log((V + tau2) / V))).
    """
    d = np.asarray(diff, dtype=float)
    v = np.asarray(var, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        r = np.sqrt(v * (v + tau2) / tau2 * (2 * math.log(1 / alpha) + np.log((v + tau2) / v)))
    r = np.where(v > 0, r, np.inf)
    lo = np.maximum.accumulate(d - r, axis=-1)
    hi = np.minimum.accumulate(d + r, axis=-1)
    return lo, hi


@dataclass(frozen=True)
class SequentialResult:
    """One always-valid p-value and interval per look (e.g. per day)."""

    tau2: float
    alpha: float
    p_values: tuple[float, ...]
    lower: tuple[float, ...]
    upper: tuple[float, ...]

    @property
    def first_rejection(self) -> int | None:
        """Index of the first look whose always-valid p-value fell below alpha."""
        for i, p in enumerate(self.p_values):
            if p < self.alpha:
                return i
        return None


def sequential_test(
    diffs: Sequence[float], variances: Sequence[float], *, tau2: float, alpha: float = 0.05
) -> SequentialResult:
    d, v = np.asarray(diffs, dtype=float), np.asarray(variances, dtype=float)
    p = always_valid_p_values(d, v, tau2)
    lo, hi = confidence_sequence(d, v, tau2, alpha)
    return SequentialResult(tau2, alpha, tuple(map(float, p)), tuple(map(float, lo)), tuple(map(float, hi)))


# ---------------------------------------------------------------------------- guardrails

Verdict = Literal["pass", "fail", "inconclusive"]


@dataclass(frozen=True)
class GuardrailVerdict:
    metric: str
    verdict: Verdict
    margin: float
    harm: float  # relative move in the bad direction (positive = worse)
    harm_ci: tuple[float, float]
    reason: str


def guardrail_verdict(effect: Effect, spec: MetricSpec) -> GuardrailVerdict:
    """Non-inferiority reading of a guardrail metric.

    pass: the whole interval of the relative harm lies below the margin (shown non-inferior);
    fail: the metric is significantly worse than control AND not shown within the margin;
    inconclusive: otherwise (collect more data).
    """
    sign = -1.0 if spec.direction == "increase" else 1.0
    harm = sign * effect.relative_lift
    a, b = sign * effect.lift_ci[0], sign * effect.lift_ci[1]
    lo, hi = min(a, b), max(a, b)
    m = spec.max_relative_harm
    if hi < m:
        verdict: Verdict = "pass"
        reason = f"worst plausible harm {hi:+.2%} is within the {m:.2%} margin"
    elif lo > 0:
        verdict = "fail"
        reason = f"significantly worse than control (harm {harm:+.2%}, interval {lo:+.2%} to {hi:+.2%})"
    else:
        verdict = "inconclusive"
        reason = f"harm interval {lo:+.2%} to {hi:+.2%} straddles the {m:.2%} margin; keep collecting"
    return GuardrailVerdict(spec.name, verdict, m, harm, (lo, hi), reason)


# ---------------------------------------------------------------------------- a full read


@dataclass(frozen=True)
class VariantData:
    """Per exposed user of one variant: metric values, optional pre-period covariates, exposure day.

    metrics: name -> (n_users,) values (0/1 for proportion metrics).
    pre_period: name -> (n_users,) the same metric measured before the experiment (CUPED).
    day: (n_users,) int day index of first exposure (enables the daily sequential read).
    """

    metrics: Mapping[str, np.ndarray]
    pre_period: Mapping[str, np.ndarray] = field(default_factory=dict)
    day: np.ndarray | None = None

    @property
    def n(self) -> int:
        return len(next(iter(self.metrics.values()))) if self.metrics else 0


@dataclass(frozen=True)
class ComparisonResult:
    variant: str
    primary: Effect
    primary_cuped: Effect | None
    sequential: SequentialResult | None
    guardrails: tuple[GuardrailVerdict, ...]
    guardrail_effects: tuple[Effect, ...]


@dataclass(frozen=True)
class ExperimentReadout:
    experiment_id: str
    control: str
    counts: dict[str, int]
    srm: SRMResult
    comparisons: tuple[ComparisonResult, ...]

    @property
    def trustworthy(self) -> bool:
        return not self.srm.mismatch


def metric_effect(spec: MetricSpec, control: np.ndarray, treatment: np.ndarray, alpha: float) -> Effect:
    c, t = np.asarray(control, dtype=float), np.asarray(treatment, dtype=float)
    if spec.kind == "proportion":
        return two_proportion_test(int(c.sum()), len(c), int(t.sum()), len(t), alpha=alpha, metric=spec.name)
    return welch_test(c, t, alpha=alpha, metric=spec.name)


def _cumulative_by_day(
    values: np.ndarray, day: np.ndarray, n_days: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Cumulative (mean, sample variance, n) after each day, from per-user values and days."""
    n = np.cumsum(np.bincount(day, minlength=n_days)[:n_days]).astype(float)
    s1 = np.cumsum(np.bincount(day, weights=values, minlength=n_days)[:n_days])
    s2 = np.cumsum(np.bincount(day, weights=values * values, minlength=n_days)[:n_days])
    with np.errstate(divide="ignore", invalid="ignore"):
        mean = np.where(n > 0, s1 / n, 0.0)
        var = np.where(n > 1, (s2 - n * mean * mean) / (n - 1), 0.0)
    return mean, np.maximum(var, 0.0), n


def daily_sequential(
    control: np.ndarray, control_day: np.ndarray, treatment: np.ndarray, treatment_day: np.ndarray,
    *, tau2: float, alpha: float = 0.05,
) -> SequentialResult:  # fmt: skip
    """mSPRT over daily cumulative looks at a per-user metric (users enter on their exposure day).

    Simplification: a user's value is taken as final when they enter; for metrics that keep
    accruing this is the usual "read the current totals" approximation.
    """
    cd, td = np.asarray(control_day, dtype=int), np.asarray(treatment_day, dtype=int)
    n_days = int(max(cd.max(initial=0), td.max(initial=0))) + 1
    mc, vc, nc = _cumulative_by_day(np.asarray(control, dtype=float), cd, n_days)
    mt, vt, nt = _cumulative_by_day(np.asarray(treatment, dtype=float), td, n_days)
    with np.errstate(divide="ignore", invalid="ignore"):
        var = np.where((nc > 1) & (nt > 1), vc / np.maximum(nc, 1) + vt / np.maximum(nt, 1), 0.0)
    return sequential_test(mt - mc, var, tau2=tau2, alpha=alpha)


def analyze_experiment(
    experiment: Experiment,
    data: Mapping[str, VariantData],
    *,
    srm_threshold: float = 0.001,
    tau2: float | None = None,
    tau_relative: float = 0.05,
) -> ExperimentReadout:
    """SRM check, then each treatment vs control: primary (raw + CUPED when a pre-period
    covariate is given + daily mSPRT when exposure days are given) and guardrail verdicts."""
    names = experiment.variant_names
    counts = {v: (data[v].n if v in data else 0) for v in names}
    srm = srm_check([counts[v] for v in names], experiment.shares, threshold=srm_threshold)
    ctrl_name = experiment.control.name
    ctrl = data[ctrl_name]
    pm = experiment.primary_metric
    results = []
    for v in names[1:]:
        if v not in data or data[v].n < 2 or ctrl.n < 2:
            continue
        tr = data[v]
        primary = metric_effect(pm, ctrl.metrics[pm.name], tr.metrics[pm.name], experiment.alpha)
        cuped = None
        if pm.name in ctrl.pre_period and pm.name in tr.pre_period:
            cuped = cuped_test(
                ctrl.metrics[pm.name], ctrl.pre_period[pm.name], tr.metrics[pm.name], tr.pre_period[pm.name],
                alpha=experiment.alpha, metric=pm.name,
            )  # fmt: skip
        seq = None
        if ctrl.day is not None and tr.day is not None and primary.control_mean != 0:
            t2 = tau2 if tau2 is not None else default_tau2(primary.control_mean, tau_relative)
            seq = daily_sequential(ctrl.metrics[pm.name], ctrl.day, tr.metrics[pm.name], tr.day,
                                   tau2=t2, alpha=experiment.alpha)  # fmt: skip
        g_effects, verdicts = [], []
        for g in experiment.guardrails:
            if g.name in ctrl.metrics and g.name in tr.metrics:
                eff = metric_effect(g, ctrl.metrics[g.name], tr.metrics[g.name], experiment.alpha)
                g_effects.append(eff)
                verdicts.append(guardrail_verdict(eff, g))
        results.append(ComparisonResult(v, primary, cuped, seq, tuple(verdicts), tuple(g_effects)))
    return ExperimentReadout(experiment.id, ctrl_name, counts, srm, tuple(results))
