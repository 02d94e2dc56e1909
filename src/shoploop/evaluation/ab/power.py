"""Sample size and minimum detectable effect for fixed-horizon two-arm tests.

Normal-approximation formulas (e.g. Chow, Shao & Wang, "Sample Size Calculations in Clinical
Research", ch. 3-4; Fleiss, "Statistical Methods for Rates and Proportions", without the
continuity correction). `ratio` is n_treatment / n_control; sizes are for the control arm.

An always-valid sequential test (analysis.py) needs more users than this for the same
power at the horizon; the calibration benchmark measures how many more.
"""

from __future__ import annotations

import math

from scipy import optimize, stats


def _z(alpha: float, power: float, two_sided: bool) -> tuple[float, float]:
    if not (0 < alpha < 1 and 0 < power < 1):
        raise ValueError("alpha and power must be in (0, 1)")
    za = stats.norm.ppf(1 - alpha / 2) if two_sided else stats.norm.ppf(1 - alpha)
    return float(za), float(stats.norm.ppf(power))


def sample_size_proportions(
    baseline: float,
    mde: float,
    *,
    relative: bool = True,
    alpha: float = 0.05,
    power: float = 0.8,
    ratio: float = 1.0,
    two_sided: bool = True,
) -> int:
    """Control-arm users needed to detect a rate change `mde` (relative to baseline by default).

    n_c = (z_a sqrt(pbar qbar (1 + 1/r)) + z_b sqrt(p1 q1 + p2 q2 / r))^2 / (p2 - p1)^2,
    pbar = (p1 + r p2) / (1 + r).
    """
    p1 = baseline
    p2 = baseline * (1 + mde) if relative else baseline + mde
    if not (0 < p1 < 1 and 0 < p2 < 1) or p1 == p2:
        raise ValueError(f"rates must lie in (0, 1) and differ, got {p1} -> {p2}")
    za, zb = _z(alpha, power, two_sided)
    pbar = (p1 + ratio * p2) / (1 + ratio)
    num = za * math.sqrt(pbar * (1 - pbar) * (1 + 1 / ratio)) + zb * math.sqrt(
        p1 * (1 - p1) + p2 * (1 - p2) / ratio
    )
    return math.ceil(num**2 / (p2 - p1) ** 2)


def sample_size_means(
    sd: float,
    mde: float,
    *,
    alpha: float = 0.05,
    power: float = 0.8,
    ratio: float = 1.0,
    two_sided: bool = True,
) -> int:
    """Control-arm users to detect an absolute mean difference `mde` with per-user std `sd`.

    n_c = (z_a + z_b)^2 sd^2 (1 + 1/r) / mde^2.
    """
    if sd <= 0 or mde == 0:
        raise ValueError("sd must be positive and mde non-zero")
    za, zb = _z(alpha, power, two_sided)
    return math.ceil((za + zb) ** 2 * sd**2 * (1 + 1 / ratio) / mde**2)


def mde_means(
    sd: float,
    n_control: int,
    *,
    alpha: float = 0.05,
    power: float = 0.8,
    ratio: float = 1.0,
    two_sided: bool = True,
) -> float:
    """Smallest absolute mean difference detectable with `n_control` users (inverse of the above)."""
    za, zb = _z(alpha, power, two_sided)
    return (za + zb) * sd * math.sqrt((1 + 1 / ratio) / n_control)


def power_proportions(
    baseline: float, mde: float, n_control: int, *, relative: bool = True, alpha: float = 0.05,
    ratio: float = 1.0, two_sided: bool = True,
) -> float:  # fmt: skip
    """Power of the two-proportion z test (normal approximation; the far tail is ignored)."""
    p1 = baseline
    p2 = baseline * (1 + mde) if relative else baseline + mde
    n_t = ratio * n_control
    za = stats.norm.ppf(1 - alpha / 2) if two_sided else stats.norm.ppf(1 - alpha)
    pbar = (p1 * n_control + p2 * n_t) / (n_control + n_t)
    se0 = math.sqrt(pbar * (1 - pbar) * (1 / n_control + 1 / n_t))
    se1 = math.sqrt(p1 * (1 - p1) / n_control + p2 * (1 - p2) / n_t)
    return float(stats.norm.cdf((abs(p2 - p1) - za * se0) / se1))


def mde_proportions(
    baseline: float, n_control: int, *, relative: bool = True, alpha: float = 0.05, power: float = 0.8,
    ratio: float = 1.0, two_sided: bool = True,
) -> float:  # fmt: skip
    """Smallest upward rate change detectable with `n_control` users at the given power."""

    def gap(delta: float) -> float:
        return power_proportions(baseline, delta, n_control, relative=False, alpha=alpha, ratio=ratio,
                                 two_sided=two_sided) - power  # fmt: skip

    hi = (1 - baseline) * (1 - 1e-9)
    if gap(hi) < 0:
        raise ValueError(
            f"{n_control} users cannot reach power {power} for any effect on baseline {baseline}"
        )
    delta = float(optimize.brentq(gap, 1e-12, hi, xtol=1e-12))
    return delta / baseline if relative else delta
