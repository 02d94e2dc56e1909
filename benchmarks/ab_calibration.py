"""A/B calibration: does the always-valid sequential test keep its promise under daily peeking?

Protocol
--------
Conversion experiments (per-user 0/1 outcome, baseline rate `--base-rate`, default 5%) run
for `--days` days with `--users-per-day` new users split 50/50 by a fair coin. Every day the
analyst looks at the cumulative data. Simulation is on daily binomial counts per arm, which
are sufficient statistics for a rate, so `--n-sims` experiments run as numpy arrays of shape
(n_sims, days).

Three decision rules are compared on the same simulated data:
- `msprt`: our always-valid mSPRT p-value (shoploop.evaluation.ab.analysis, normal mixture
  with tau = `--tau-relative` x baseline rate), rejecting the first day it falls below alpha;
- `naive_peeking` (the baseline): a fixed-horizon two-proportion z-test read every day,
  stopping the first day p < alpha -- what a dashboard without sequential statistics invites;
- `fixed_horizon`: the same z-test read once, on the last day (valid, but no early stop).

A/A (no effect) gives each rule's false-positive rate; A/B with relative lifts `--lifts`
gives power and the median day of detection. Expected fixed-horizon power from the power
calculator is printed beside the simulated one as a sanity check of the simulation.
A tau sensitivity table shows the power/validity trade of the mixing variance.

CUPED: a second, per-user simulation of a count metric (orders per user in the experiment
window) whose users carry a Gamma-distributed propensity shared with their pre-period
orders. It reports the variance reduction of the difference estimate across simulations
(with the theoretical 1 - rho^2 for this model), CUPED's bias, and the A/A false-positive
rate and A/B power of the daily mSPRT on raw vs CUPED-adjusted values.

Writes JSON to `--out` and a Markdown table beside it (same name, .md).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
from results_io import write_results  # a sibling module: benchmarks run as scripts, this folder on sys.path
from scipy import stats

from shoploop.evaluation.ab.analysis import always_valid_p_values
from shoploop.evaluation.ab.power import power_proportions

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "ab_calibration.json"


def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval for a simulated rate."""
    if n == 0:
        return (0.0, 1.0)
    p = k / n
    den = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return (centre - half, centre + half)


def simulate_counts(
    rng: np.random.Generator, n_sims: int, days: int, users_per_day: int, p_c: float, p_t: float
) -> tuple[np.ndarray, ...]:
    """Cumulative (n_c, conv_c, n_t, conv_t), each (n_sims, days)."""
    n_t_day = rng.binomial(users_per_day, 0.5, (n_sims, days))
    n_c_day = users_per_day - n_t_day
    x_c = rng.binomial(n_c_day, p_c)
    x_t = rng.binomial(n_t_day, p_t)
    return tuple(np.cumsum(a, axis=1).astype(float) for a in (n_c_day, x_c, n_t_day, x_t))


def decide(counts: tuple[np.ndarray, ...], alpha: float, tau2s: list[float]) -> dict[str, Any]:
    n_c, x_c, n_t, x_t = counts
    pc, pt = x_c / n_c, x_t / n_t
    diff = pt - pc
    var = pc * (1 - pc) / n_c + pt * (1 - pt) / n_t  # unpooled: estimates Var(diff) under H0 and H1
    pooled = (x_c + x_t) / (n_c + n_t)
    se0 = np.sqrt(pooled * (1 - pooled) * (1 / n_c + 1 / n_t))
    with np.errstate(divide="ignore", invalid="ignore"):
        p_naive = 2 * stats.norm.sf(np.abs(diff) / se0)
    p_naive = np.where(se0 > 0, p_naive, 1.0)
    out: dict[str, Any] = {
        "naive_peeking": p_naive < alpha,  # (n_sims, days): rejected on that day
        "fixed_horizon": p_naive[:, -1] < alpha,
        "diff_sign_last": np.sign(diff[:, -1]),
    }
    out["msprt"] = {t2: always_valid_p_values(diff, var, t2) < alpha for t2 in tau2s}
    return out


def first_day(rejected: np.ndarray) -> np.ndarray:
    """1-based day of first rejection per simulation; 0 when never rejected."""
    any_rej = rejected.any(axis=1)
    return np.where(any_rej, rejected.argmax(axis=1) + 1, 0)


def rate_entry(hits: np.ndarray) -> dict[str, Any]:
    k, n = int(hits.sum()), int(hits.size)
    lo, hi = wilson(k, n)
    return {"rate": k / n, "ci95": [lo, hi], "count": k, "n_sims": n}


def detection_entry(rejected: np.ndarray) -> dict[str, Any]:
    days = first_day(rejected)
    det = days[days > 0]
    entry = rate_entry(days > 0)
    entry["median_detection_day"] = float(np.median(det)) if det.size else None
    return entry


def run_rates(args: argparse.Namespace, rng: np.random.Generator) -> dict[str, Any]:
    p0, alpha = args.base_rate, args.alpha
    tau_rels = sorted({args.tau_relative, *args.tau_sensitivity})
    tau2s = [(p0 * tr) ** 2 for tr in tau_rels]
    main_t2 = (p0 * args.tau_relative) ** 2
    t = time.perf_counter()
    aa = decide(simulate_counts(rng, args.n_sims, args.days, args.users_per_day, p0, p0), alpha, tau2s)
    print(
        f"[ab_calibration] A/A: {args.n_sims} sims x {args.days} days in {time.perf_counter() - t:.1f}s",
        flush=True,
    )
    result: dict[str, Any] = {
        "aa": {
            "msprt": rate_entry(aa["msprt"][main_t2].any(axis=1)),
            "naive_peeking": rate_entry(aa["naive_peeking"].any(axis=1)),
            "fixed_horizon": rate_entry(aa["fixed_horizon"]),
        },
        "ab": [],
        "tau_sensitivity": [],
    }
    per_arm_total = args.users_per_day * args.days // 2
    ab_by_lift = {}
    for lift in args.lifts:
        t = time.perf_counter()
        ab = decide(
            simulate_counts(rng, args.n_sims, args.days, args.users_per_day, p0, p0 * (1 + lift)),
            alpha,
            tau2s,
        )
        ab_by_lift[lift] = ab
        result["ab"].append(
            {
                "relative_lift": lift,
                "absolute_effect": p0 * lift,
                "msprt": detection_entry(ab["msprt"][main_t2]),
                "naive_peeking": detection_entry(ab["naive_peeking"]),
                "fixed_horizon": {
                    **rate_entry(ab["fixed_horizon"]),
                    "predicted_power": power_proportions(p0, lift, per_arm_total, alpha=alpha),
                },
            }
        )
        r = result["ab"][-1]
        print(
            f"[ab_calibration] A/B lift {lift:.0%}: msprt power {r['msprt']['rate']:.3f} "
            f"(median day {r['msprt']['median_detection_day']}), fixed {r['fixed_horizon']['rate']:.3f} "
            f"({time.perf_counter() - t:.1f}s)",
            flush=True,
        )
    for tr, t2 in zip(tau_rels, tau2s, strict=True):
        row: dict[str, Any] = {
            "tau_relative": tr,
            "tau2": t2,
            "aa_fpr": rate_entry(aa["msprt"][t2].any(axis=1))["rate"],
        }
        for lift, ab in ab_by_lift.items():
            d = detection_entry(ab["msprt"][t2])
            row[f"power_lift_{lift:g}"] = d["rate"]
            row[f"median_day_lift_{lift:g}"] = d["median_detection_day"]
        result["tau_sensitivity"].append(row)
    return result


# ---------------------------------------------------------------------------- CUPED


def _arm_daily_sums(y: np.ndarray, x: np.ndarray) -> dict[str, np.ndarray]:
    """y, x: (chunk, days, users) -> cumulative per-day sums (chunk, days)."""
    sums = {
        "n": np.full(y.shape[:2], y.shape[2], dtype=float),
        "y": y.sum(-1),
        "x": x.sum(-1),
        "yy": (y * y).sum(-1),
        "xx": (x * x).sum(-1),
        "xy": (x * y).sum(-1),
    }
    return {k: np.cumsum(v, axis=1) for k, v in sums.items()}


def _diff_and_var(
    c: dict[str, np.ndarray], t: dict[str, np.ndarray], cuped: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Difference of (adjusted) means and its variance, per (sim, look), from running sums."""

    def moments(s: dict[str, np.ndarray]) -> tuple[np.ndarray, ...]:
        n = s["n"]
        my, mx = s["y"] / n, s["x"] / n
        vy = (s["yy"] - n * my * my) / (n - 1)
        vx = (s["xx"] - n * mx * mx) / (n - 1)
        cxy = (s["xy"] - n * mx * my) / (n - 1)
        return n, my, mx, vy, vx, cxy

    nc, myc, mxc, vyc, vxc, cc = moments(c)
    nt, myt, mxt, vyt, vxt, ct = moments(t)
    if not cuped:
        return myt - myc, vyc / nc + vyt / nt
    # theta from both arms pooled (the pre-period is independent of assignment)
    n = nc + nt
    mx_all = (c["x"] + t["x"]) / n
    my_all = (c["y"] + t["y"]) / n
    cov_all = ((c["xy"] + t["xy"]) - n * mx_all * my_all) / (n - 1)
    var_all = ((c["xx"] + t["xx"]) - n * mx_all * mx_all) / (n - 1)
    theta = np.where(var_all > 0, cov_all / np.where(var_all > 0, var_all, 1), 0.0)
    adj_c = myc - theta * (mxc - mx_all)
    adj_t = myt - theta * (mxt - mx_all)
    va_c = vyc + theta**2 * vxc - 2 * theta * cc
    va_t = vyt + theta**2 * vxt - 2 * theta * ct
    return adj_t - adj_c, va_c / nc + va_t / nt


def run_cuped(args: argparse.Namespace, rng: np.random.Generator) -> dict[str, Any]:
    """Orders per user: lambda_u ~ Gamma(k, mean/k); pre-period ~ Poisson(lambda),
    in-window ~ Poisson(lambda (1 + lift))."""
    k, mean = args.cuped_gamma_shape, args.cuped_mean_orders
    var_lam = mean * mean / k
    rho2 = (var_lam / (var_lam + mean)) ** 2  # corr(pre, post) = Var(lambda) / (Var(lambda) + E lambda)
    per_arm = args.cuped_users_per_day // 2
    sims, days, chunk = args.cuped_sims, args.days, 25
    alpha = args.alpha
    tau2 = (mean * args.tau_relative) ** 2
    out: dict[str, Any] = {
        "metric": "orders per user in the experiment window",
        "gamma_shape": k,
        "mean_orders": mean,
        "users_per_day": 2 * per_arm,
        "n_sims": sims,
        "theoretical_variance_reduction": rho2,
    }
    t0 = time.perf_counter()
    for label, lift in (("aa", 0.0), ("ab", args.cuped_lift)):
        raw_d, cup_d, rej = [], [], {"raw": [], "cuped": []}
        for start in range(0, sims, chunk):
            m = min(chunk, sims - start)
            arms = []
            for arm_lift in (0.0, lift):
                lam = rng.gamma(k, mean / k, (m, days, per_arm))
                x = rng.poisson(lam).astype(float)
                y = rng.poisson(lam * (1 + arm_lift)).astype(float)
                arms.append(_arm_daily_sums(y, x))
            for name, cuped in (("raw", False), ("cuped", True)):
                d, v = _diff_and_var(arms[0], arms[1], cuped)
                rej[name].append(always_valid_p_values(d, v, tau2) < alpha)
                (cup_d if cuped else raw_d).append(d[:, -1])
        raw_arr, cup_arr = np.concatenate(raw_d), np.concatenate(cup_d)
        entry: dict[str, Any] = {
            "relative_lift": lift,
            "true_difference": mean * lift,
            "raw_mean_diff": float(raw_arr.mean()),
            "cuped_mean_diff": float(cup_arr.mean()),
            "cuped_bias_z": float(
                (cup_arr.mean() - mean * lift) / (cup_arr.std(ddof=1) / math.sqrt(len(cup_arr)))
            ),
            "measured_variance_reduction": float(1 - cup_arr.var(ddof=1) / raw_arr.var(ddof=1)),
        }
        for name in ("raw", "cuped"):
            entry[f"msprt_{name}"] = detection_entry(np.concatenate(rej[name]))
        out[label] = entry
        print(
            f"[ab_calibration] CUPED {label}: VR {entry['measured_variance_reduction']:.3f} "
            f"(theory {rho2:.3f}); msprt raw {entry['msprt_raw']['rate']:.3f} vs cuped "
            f"{entry['msprt_cuped']['rate']:.3f} ({time.perf_counter() - t0:.1f}s)",
            flush=True,
        )
    return out


# ---------------------------------------------------------------------------- output


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.1f}%"


def to_markdown(res: dict[str, Any]) -> str:
    c = res["config"]
    lines = [
        "# A/B calibration (benchmarks/ab_calibration.py)",
        "",
        f"{c['n_sims']} simulated experiments x {c['days']} daily looks, {c['users_per_day']:,} users/day "
        f"(50/50), baseline conversion {c['base_rate']:.1%}, alpha {c['alpha']}, mSPRT tau = "
        f"{c['tau_relative']:.0%} of baseline. Runtime {res['elapsed_seconds']:.1f}s.",
        "",
        "## A/A: false-positive rate under daily peeking (target: msprt <= 5%)",
        "",
        "| rule | false-positive rate | 95% CI |",
        "|---|---|---|",
    ]
    for name in ("msprt", "naive_peeking", "fixed_horizon"):
        e = res["aa"][name]
        lines.append(f"| {name} | {_pct(e['rate'])} | {_pct(e['ci95'][0])} - {_pct(e['ci95'][1])} |")
    lines += [
        "",
        "## A/B: power and median day of detection",
        "",
        "| relative lift | msprt power | msprt median day | naive-peeking 'power' (invalid) | "
        "fixed-horizon power | predicted fixed power |",
        "|---|---|---|---|---|---|",
    ]
    for r in res["ab"]:
        lines.append(
            f"| {r['relative_lift']:.0%} | {_pct(r['msprt']['rate'])} | "
            f"{r['msprt']['median_detection_day']} | "
            f"{_pct(r['naive_peeking']['rate'])} | {_pct(r['fixed_horizon']['rate'])} | "
            f"{_pct(r['fixed_horizon']['predicted_power'])} |"
        )
    lifts = [r["relative_lift"] for r in res["ab"]]
    lines += [
        "",
        "## mSPRT mixing variance: tau sensitivity (same simulated data)",
        "",
        "| tau (x baseline) | A/A FPR | " + " | ".join(f"power @ {lf:.0%}" for lf in lifts) + " |",
        "|---" * (2 + len(lifts)) + "|",
    ]
    for row in res["tau_sensitivity"]:
        cells = " | ".join(_pct(row[f"power_lift_{lf:g}"]) for lf in lifts)
        lines.append(f"| {row['tau_relative']:.0%} | {_pct(row['aa_fpr'])} | {cells} |")
    cu = res["cuped"]
    lines += [
        "",
        f"## CUPED ({cu['metric']}; {cu['n_sims']} sims, {cu['users_per_day']:,} users/day)",
        "",
        "| | theory rho^2 | measured variance reduction | bias z | msprt raw | msprt CUPED |",
        "|---|---|---|---|---|---|",
    ]
    for label in ("aa", "ab"):
        e = cu[label]
        what = "A/A FPR" if label == "aa" else f"A/B power @ {e['relative_lift']:.0%}"
        lines.append(
            f"| {what} | {cu['theoretical_variance_reduction']:.3f} | "
            f"{e['measured_variance_reduction']:.3f} | "
            f"{e['cuped_bias_z']:+.2f} | {_pct(e['msprt_raw']['rate'])} | {_pct(e['msprt_cuped']['rate'])} |"
        )
    lines += ["", f"Targets met: {res['targets']}", ""]
    return "\n".join(lines)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n-sims", type=int, default=2000)
    ap.add_argument("--days", type=int, default=28)
    ap.add_argument("--users-per-day", type=int, default=50_000, help="both arms together")
    ap.add_argument("--base-rate", type=float, default=0.05)
    ap.add_argument("--lifts", type=lambda s: [float(x) for x in s.split(",")], default=[0.01, 0.02, 0.05])
    ap.add_argument("--alpha", type=float, default=0.05)
    ap.add_argument("--tau-relative", type=float, default=0.05)
    ap.add_argument(
        "--tau-sensitivity", type=lambda s: [float(x) for x in s.split(",")], default=[0.01, 0.02, 0.1, 0.2]
    )
    ap.add_argument("--cuped-sims", type=int, default=None, help="default: min(n_sims, 500)")
    ap.add_argument("--cuped-users-per-day", type=int, default=2000)
    ap.add_argument("--cuped-gamma-shape", type=float, default=0.4)
    ap.add_argument("--cuped-mean-orders", type=float, default=0.5)
    ap.add_argument("--cuped-lift", type=float, default=0.05)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = ap.parse_args(argv)
    if args.cuped_sims is None:
        args.cuped_sims = min(args.n_sims, 500)
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    rng = np.random.default_rng(args.seed)
    t0 = time.perf_counter()
    res = run_rates(args, rng)
    res["cuped"] = run_cuped(args, rng)
    res["elapsed_seconds"] = time.perf_counter() - t0
    res["config"] = {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
    res["targets"] = {
        "msprt_aa_fpr_le_5pct": res["aa"]["msprt"]["rate"] <= args.alpha,
        "naive_peeking_inflated_above_5pct": res["aa"]["naive_peeking"]["rate"] > args.alpha,
        "cuped_msprt_aa_fpr_le_5pct": res["cuped"]["aa"]["msprt_cuped"]["rate"] <= args.alpha,
    }
    md = to_markdown(res)
    write_results(args.out, res, md)
    print(md)
    return res


if __name__ == "__main__":
    main(sys.argv[1:])
