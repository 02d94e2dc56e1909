"""Off-policy evaluation on the Open Bandit Dataset: shoploop's estimators vs obp's, same run.

Question: how well do shoploop's off-policy estimators predict a new policy's click rate from
a log of an old one, compared with the Open Bandit Pipeline (obp==0.4.1)?

Protocol (Saito et al., "Open Bandit Dataset and Pipeline", 2021):
* logged data: the uniform-random policy's log ``<data-dir>/random/<campaign>/<campaign>.csv``
  (3 slots per screen; one row per slot; propensity 1/n_items per slot);
* evaluation policy: Bernoulli Thompson Sampling with the ZOZOTOWN production prior. Its
  action-choice probabilities per slot come from ``obp.policy.BernoulliTS(...,
  is_zozotown_prior=True).compute_batch_action_dist`` (Monte Carlo; context-free, so one
  (n_items, 3) table serves every round);
* ground truth: the BTS log's own mean click rate (``bts/<campaign>/<campaign>.csv``);
* ``--n-boot`` bootstrap resamples of the random log (resample b uses
  ``RandomState(seed + b)``, the same draw as obp's ``sample_bootstrap_bandit_feedback``);
  every estimator, ours and obp's, sees the same resamples; we report the mean and std of the
  relative error ``|estimate - truth| / truth`` over resamples.

obp's side: ``OpenBanditDataset`` (with pandas-3 shims applied only inside this run),
``RegressionModel(LogisticRegression(C=100, max_iter=10000), fitting_method="normal")`` fitted with
``n_folds=1`` (the data are too sparse for cross-fitting: ~46 clicks), estimators IPW, SNIPW, DM,
DR, SNDR, Switch-DR (tau = 1, 100) and DR-os (lambda = 1, 100) — the settings of obp's OBD example.

Our side (``shoploop.evaluation.ope``): IPS, SNIPS, position-wise SNIPS, clipped IPS, DM / DR /
SNDR / Switch-DR / DR-os on a position-based click model (PBM, theta_item x kappa_slot) whose item
rates are shrunk by empirical Bayes, and a per-(item, slot) cell model shrunk towards the PBM.
How each hyper-parameter is chosen, never by looking at the BTS log:
* prior strengths of the EB models: beta-binomial marginal likelihood on the (resampled) random log;
* clipped-IPS max weight, Switch-DR tau, DR-os lambda: minimum of estimated variance/n + squared
  bias bound, computed on the (resampled) random log (Wang et al., 2017; Su et al., 2020).

Side-information variant (reported separately, labelled ``+hist``): the BTS prior itself is ZOZOTOWN's
historical click data per item (alpha / (alpha + beta)). ``pbm_hist`` uses its *shape* as the EB
prior mean of item rates (scale and strength still fitted on the random log). It is information
obp's estimators do not use, so the headline comparison is given with and without it; the random
log's own evidence for it (log marginal likelihood vs the flat prior) is reported too. So that
the +hist comparison is like for like, obp's estimators are run a second and third time with the
same information given the only way obp's regression takes item-side data, as an action-context
column (the prior's log-odds): next to OBD's item features (``obp+hist:``) and alone
(``obp+hist-only:``). The same-information ratio compares our best with obp's best over all three.

Run: ``python benchmarks/ope_obd.py --data-dir ../shared/data/obd --campaign men
--out benchmarks/results/ope_obd.json --n-boot 30``.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

# a sibling program module: benchmarks run as scripts, with this directory on sys.path
from results_io import write_results

from shoploop.evaluation import ope
from shoploop.evaluation.ope_models import CellCTRConfig, CellCTRModel, PBMCTRConfig, PBMCTRModel

log = logging.getLogger("ope_obd")

OBP_PUBLISHED_NOTE = (
    "obp could not run; published reference (Open Bandit Pipeline paper, 'ALL' campaign, 30 bootstraps): "
    "DM 0.157, DR-os 0.160, Switch-DR 0.258, DR 0.292, IPW 0.311 — NOT from this run"
)


# ---------------------------------------------------------------- data


@contextlib.contextmanager
def pandas3_shims_for_obp() -> Iterator[None]:
    """obp 0.4.1 calls ``DataFrame.drop(label, 1)`` and ``pd.concat(frames, 1)`` with a positional
    axis, which pandas >= 2 rejects. Map the positional argument to ``axis=`` for this run only."""
    orig_drop, orig_concat = pd.DataFrame.drop, pd.concat

    def drop(self: pd.DataFrame, labels: Any = None, *args: Any, **kwargs: Any) -> Any:
        if args:
            kwargs.setdefault("axis", args[0])
            args = args[1:]
        return orig_drop(self, labels, *args, **kwargs)

    def concat(objs: Any, *args: Any, **kwargs: Any) -> Any:
        if args:
            kwargs.setdefault("axis", args[0])
            args = args[1:]
        return orig_concat(objs, *args, **kwargs)

    pd.DataFrame.drop = drop  # type: ignore[method-assign]
    pd.concat = concat  # type: ignore[assignment]
    try:
        yield
    finally:
        pd.DataFrame.drop = orig_drop  # type: ignore[method-assign]
        pd.concat = orig_concat


def _read_log_plain(data_dir: Path, policy: str, campaign: str) -> dict[str, Any]:
    """Our own reader (used when obp is absent): same ordering and encoding as obp's."""
    df = pd.read_csv(data_dir / policy / campaign / f"{campaign}.csv", index_col=0)
    df = df.sort_values("timestamp", kind="stable")
    user_cols = [c for c in df.columns if c.startswith("user_feature")]
    context = pd.get_dummies(df[user_cols].astype(str), drop_first=True, dtype=float).to_numpy()
    positions = df["position"].to_numpy(int)
    pos_codes = np.searchsorted(np.unique(positions), positions)
    return {
        "n_rounds": len(df),
        "n_actions": int(df["item_id"].max()) + 1,
        "action": df["item_id"].to_numpy(int),
        "position": pos_codes,
        "reward": df["click"].to_numpy(float),
        "pscore": df["propensity_score"].to_numpy(float),
        "context": context,
        "action_context": None,
    }


def load_random_log(data_dir: Path, campaign: str, use_obp: bool) -> dict[str, Any]:
    if use_obp:
        from obp.dataset import OpenBanditDataset

        with pandas3_shims_for_obp():
            ds = OpenBanditDataset(behavior_policy="random", campaign=campaign, data_path=data_dir)
        fb = ds.obtain_batch_bandit_feedback()
        fb["reward"] = fb["reward"].astype(float)
        return fb
    return _read_log_plain(data_dir, "random", campaign)


def ground_truth(data_dir: Path, campaign: str) -> float:
    df = pd.read_csv(data_dir / "bts" / campaign / f"{campaign}.csv", index_col=0, usecols=[0, 4])
    return float(df["click"].mean())


def bts_action_dist(
    n_actions: int, len_list: int, campaign: str, n_sim: int, seed: int, use_obp: bool
) -> tuple[np.ndarray, np.ndarray | None, str]:
    """(n_actions, len_list) BTS slot probabilities, the prior's mean CTR per item (or None), source."""
    if use_obp:
        from obp.policy import BernoulliTS

        pol = BernoulliTS(
            n_actions=n_actions,
            len_list=len_list,
            is_zozotown_prior=True,
            campaign=campaign,
            random_state=seed,
        )
        dist = pol.compute_batch_action_dist(n_rounds=1, n_sim=n_sim)[0]
        alpha, beta = np.asarray(pol.alpha, float), np.asarray(pol.beta, float)
        return dist, alpha / (alpha + beta), "obp.policy.BernoulliTS(is_zozotown_prior=True)"
    # Without obp the production prior is unavailable: our own BTS Monte Carlo with a flat prior.
    rng = np.random.default_rng(seed)
    counts = np.zeros((n_actions, len_list))
    for _ in range(n_sim // 1000):
        theta = rng.beta(1.0, 1.0, size=(1000, n_actions))
        top = np.argsort(-theta, axis=1)[:, :len_list]
        for p in range(len_list):
            np.add.at(counts[:, p], top[:, p], 1.0)
    return (
        counts / counts.sum(0, keepdims=True),
        None,
        "shoploop BTS Monte Carlo, flat Beta(1,1) prior (obp absent)",
    )


# ---------------------------------------------------------------- estimators


def our_estimates(
    fb: dict[str, Any], dist: np.ndarray, item_prior: np.ndarray | None
) -> tuple[dict[str, float], dict[str, float]]:
    """All our estimators on one (resampled) log. Returns (estimates, chosen hyper-parameters)."""
    a, p, r, ps = fb["action"], fb["position"], fb["reward"], fb["pscore"]
    n_actions, len_list = dist.shape
    pi_e = dist[a, p]
    w = ope.importance_weights(pi_e, ps)
    est: dict[str, float] = {}
    hp: dict[str, float] = {}
    est["ips"] = ope.ips(r, w)
    est["snips"] = ope.snips(r, w)
    est["position_snips"] = ope.position_snips(r, w, p, len_list)
    clip_grid = np.unique(np.quantile(w, [0.5, 0.75, 0.9, 0.95, 0.99, 1.0]))
    m_clip = _clip_by_bound(r, w, clip_grid)
    hp["clipped_ips.max_weight"] = m_clip
    est["clipped_ips"] = ope.clipped_ips(r, w, m_clip)

    models: dict[str, np.ndarray] = {}
    pbm = PBMCTRModel(PBMCTRConfig(n_actions, len_list)).fit(a, p, r)
    models["pbm"] = pbm.predict()
    hp["pbm.prior_strength"] = pbm.prior_strength_
    cell = CellCTRModel(CellCTRConfig(n_actions, len_list)).fit(a, p, r)
    models["cell"] = cell.predict()
    hp["cell.prior_strength"] = cell.cell_strength_
    if item_prior is not None:
        hist = PBMCTRModel(PBMCTRConfig(n_actions, len_list)).fit(a, p, r, item_prior=item_prior)
        models["pbm_hist"] = hist.predict()
        hp["pbm_hist.prior_strength"] = hist.prior_strength_
        hp["pbm_hist.log_evidence_minus_flat"] = hist.log_evidence_ - pbm.log_evidence_
    slot_value = {k: (dist * q).sum(0) for k, q in models.items()}  # (len_list,) value per slot
    taus = np.array([0.5, 1.0, 2.0, 5.0, 10.0, np.inf])
    lams = np.array([0.0, 0.1, 0.5, 1.0, 5.0, 10.0, 100.0, np.inf])
    for name, q in models.items():
        v = slot_value[name][p]
        ql = q[a, p]
        tag = name if name != "pbm_hist" else "pbm+hist"
        est[f"dm[{tag}]"] = ope.direct_method(v)
        if name == "pbm_hist":
            continue  # the side-information model is reported as DM only (DR would undo the prior)
        est[f"dr[{tag}]"] = ope.doubly_robust(r, w, ql, v)
        est[f"sndr[{tag}]"] = ope.sndr(r, w, ql, v)
        tau = ope.switch_tau_by_bound(r, w, ql, v, taus)
        lam = ope.dr_os_lambda_by_bound(r, w, ql, v, lams)
        hp[f"switch_dr[{tag}].tau"], hp[f"dr_os[{tag}].lambda"] = tau, lam
        est[f"switch_dr[{tag}]"] = ope.switch_dr(r, w, ql, v, tau)
        est[f"dr_os[{tag}]"] = ope.dr_os(r, w, ql, v, lam)
    return est, hp


def _clip_by_bound(r: np.ndarray, w: np.ndarray, grid: np.ndarray) -> float:
    best, best_score = float(grid[-1]), np.inf
    for m in grid:
        terms = np.minimum(w, m) * r
        bias = float(np.mean(np.maximum(w - m, 0.0)))  # max reward 1: a click
        score = bias**2 + terms.var(ddof=1) / len(r)
        if score < best_score:
            best, best_score = float(m), score
    return best


def hist_action_contexts(fb: dict[str, Any], item_prior: np.ndarray) -> dict[str, np.ndarray]:
    """obp label prefix -> action context carrying the BTS prior (log-odds of its mean CTR per item)."""
    logit = np.log(item_prior / (1.0 - item_prior))[:, None]
    out = {"obp+hist-only:": logit}
    if fb.get("action_context") is not None:
        out["obp+hist:"] = np.hstack([np.asarray(fb["action_context"], float), logit])
    return out


def obp_estimates(
    fb: dict[str, Any], dist: np.ndarray, seed: int, *, prefix: str = "obp:"
) -> dict[str, float]:
    from obp.ope import (
        DirectMethod,
        DoublyRobust,
        DoublyRobustWithShrinkage,
        InverseProbabilityWeighting,
        OffPolicyEvaluation,
        RegressionModel,
        SelfNormalizedDoublyRobust,
        SelfNormalizedInverseProbabilityWeighting,
        SwitchDoublyRobust,
    )
    from sklearn.linear_model import LogisticRegression

    n = fb["n_rounds"]
    action_dist = np.broadcast_to(dist[None], (n, *dist.shape)).copy()
    reg = RegressionModel(
        n_actions=fb["n_actions"],
        len_list=dist.shape[1],
        action_context=fb["action_context"],
        base_model=LogisticRegression(C=100, max_iter=10000, random_state=seed),
        fitting_method="normal",
    )
    q_hat = reg.fit_predict(
        context=fb["context"],
        action=fb["action"],
        reward=fb["reward"],
        position=fb["position"],
        pscore=fb["pscore"],
        action_dist=action_dist,
        n_folds=1,
        random_state=seed,
    )
    estimators = [
        InverseProbabilityWeighting(),
        SelfNormalizedInverseProbabilityWeighting(),
        DirectMethod(),
        DoublyRobust(),
        SelfNormalizedDoublyRobust(),
        SwitchDoublyRobust(tau=1.0, estimator_name="switch-dr (tau=1)"),
        SwitchDoublyRobust(tau=100.0, estimator_name="switch-dr (tau=100)"),
        DoublyRobustWithShrinkage(lambda_=1.0, estimator_name="dr-os (lambda=1)"),
        DoublyRobustWithShrinkage(lambda_=100.0, estimator_name="dr-os (lambda=100)"),
    ]
    ev = OffPolicyEvaluation(bandit_feedback=fb, ope_estimators=estimators)
    values = ev.estimate_policy_values(action_dist=action_dist, estimated_rewards_by_reg_model=q_hat)
    return {f"{prefix}{k}": float(v) for k, v in values.items()}


# ---------------------------------------------------------------- run


def _summary(values: list[float], truth: float) -> dict[str, float]:
    v = np.asarray(values, dtype=np.float64)
    rel = np.abs(v - truth) / truth
    return {
        "rel_error_mean": float(rel.mean()),
        "rel_error_std": float(rel.std(ddof=1)) if rel.size > 1 else 0.0,
        "estimate_mean": float(v.mean()),
        "estimate_std": float(v.std(ddof=1)) if v.size > 1 else 0.0,
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    use_obp = not args.no_obp
    obp_error = None
    if use_obp:
        try:
            import obp  # noqa: F401
        except Exception as exc:
            use_obp, obp_error = False, f"{type(exc).__name__}: {exc}"
            log.warning("obp unavailable (%s); running our estimators only", obp_error)
    data_dir = Path(args.data_dir)
    fb = load_random_log(data_dir, args.campaign, use_obp)
    truth = ground_truth(data_dir, args.campaign)
    len_list = int(fb["position"].max()) + 1
    dist, item_prior, dist_source = bts_action_dist(
        fb["n_actions"], len_list, args.campaign, args.n_sim, args.seed, use_obp
    )
    hist_contexts = hist_action_contexts(fb, item_prior) if (use_obp and item_prior is not None) else {}
    n = fb["n_rounds"]
    per_round = ("action", "position", "reward", "pscore", "context")
    values: dict[str, list[float]] = {}
    hps: dict[str, list[float]] = {}
    t0 = time.perf_counter()
    for b in range(args.n_boot):
        idx = np.random.RandomState(args.seed + b).choice(np.arange(n), size=n, replace=True)
        boot = dict(fb)
        for k in per_round:
            boot[k] = fb[k][idx]
        est, hp = our_estimates(boot, dist, item_prior)
        if use_obp:
            est.update(obp_estimates(boot, dist, args.seed))
            for prefix, a_ctx in hist_contexts.items():
                est.update(obp_estimates({**boot, "action_context": a_ctx}, dist, args.seed, prefix=prefix))
        for k, v in est.items():
            values.setdefault(k, []).append(v)
        for k, v in hp.items():
            hps.setdefault(k, []).append(v)
        elapsed = time.perf_counter() - t0
        rate = (b + 1) / elapsed
        print(
            f"bootstrap {b + 1}/{args.n_boot}  {rate:.2f}/s  ETA {(args.n_boot - b - 1) / rate:.0f}s",
            file=sys.stderr,
            flush=True,
        )
    results = {k: _summary(v, truth) for k, v in values.items()}
    ours = {k: s for k, s in results.items() if not k.startswith("obp")}
    ours_no_side = {k: s for k, s in ours.items() if "+hist" not in k}
    theirs = {k: s for k, s in results.items() if k.startswith("obp:")}
    theirs_any = {k: s for k, s in results.items() if k.startswith("obp")}

    def best(d: dict[str, dict[str, float]]) -> dict[str, Any] | None:
        if not d:
            return None
        k = min(d, key=lambda name: d[name]["rel_error_mean"])
        return {"estimator": k, **d[k]}

    out: dict[str, Any] = {
        "benchmark": "ope_obd",
        "campaign": args.campaign,
        "n_boot": args.n_boot,
        "seed": args.seed,
        "n_rounds_random_log": n,
        "ground_truth_bts_ctr": truth,
        "random_log_ctr": float(np.mean(fb["reward"])),
        "action_dist_source": dist_source,
        "n_sim": args.n_sim,
        "obp_ran": use_obp,
        "obp_error": obp_error,
        "estimators": results,
        "hyperparameters_median": {k: float(np.median(v)) for k, v in hps.items()},
        "per_resample_estimates": values,
        "best_ours": best(ours),
        "best_ours_without_side_information": best(ours_no_side),
        "best_obp": best(theirs),
        "best_obp_with_side_information": best(theirs_any) if hist_contexts else None,
        "seconds": time.perf_counter() - t0,
    }
    if out["best_obp"]:
        # paired view on the same resamples: how often is our estimator closer than obp's best?
        ref_err = np.abs(np.asarray(values[out["best_obp"]["estimator"]]) - truth)
        out["paired_share_of_resamples_closer_than_best_obp"] = {
            k: float(np.mean(np.abs(np.asarray(v) - truth) < ref_err)) for k, v in values.items() if k in ours
        }
        ref = out["best_obp"]["rel_error_mean"]
        out["ratio_best_ours_to_best_obp"] = out["best_ours"]["rel_error_mean"] / ref
        out["ratio_best_ours_without_side_information_to_best_obp"] = (
            out["best_ours_without_side_information"]["rel_error_mean"] / ref
        )
        if out["best_obp_with_side_information"]:
            # like for like: our best (may use the prior) vs obp's best given the same prior
            out["ratio_best_ours_to_best_obp_same_information"] = (
                out["best_ours"]["rel_error_mean"] / out["best_obp_with_side_information"]["rel_error_mean"]
            )
        out["target_ratio"] = 0.85
    else:
        out["obp_reference"] = OBP_PUBLISHED_NOTE
    return out


def to_markdown(out: dict[str, Any]) -> str:
    lines = [
        f"# OPE on Open Bandit Dataset ({out['campaign']}): random log -> Bernoulli TS",
        "",
        f"Ground truth (BTS log CTR) {out['ground_truth_bts_ctr']:.5f}; random log CTR "
        f"{out['random_log_ctr']:.5f}; {out['n_boot']} bootstrap resamples of "
        f"{out['n_rounds_random_log']} rows; "
        f"action distribution: {out['action_dist_source']}.",
        "",
        "| estimator | side | rel. error mean | rel. error std | estimate mean |",
        "|---|---|---|---|---|",
    ]
    rows = sorted(out["estimators"].items(), key=lambda kv: kv[1]["rel_error_mean"])
    for k, s in rows:
        side = "obp" if k.startswith("obp") else "ours"
        side += " (+hist side info)" if "+hist" in k else ""
        err = f"{s['rel_error_mean']:.3f} | {s['rel_error_std']:.3f}"
        lines.append(f"| {k} | {side} | {err} | {s['estimate_mean']:.5f} |")
    lines.append("")
    best_keys = (
        "best_ours",
        "best_ours_without_side_information",
        "best_obp",
        "best_obp_with_side_information",
    )
    for key in best_keys:
        b = out.get(key)
        if b:
            lines.append(f"- {key}: `{b['estimator']}` {b['rel_error_mean']:.3f} ± {b['rel_error_std']:.3f}")
    for key in (
        "ratio_best_ours_to_best_obp",
        "ratio_best_ours_without_side_information_to_best_obp",
        "ratio_best_ours_to_best_obp_same_information",
    ):
        if key in out:
            lines.append(f"- {key}: {out[key]:.3f} (target <= {out['target_ratio']})")
    paired = out.get("paired_share_of_resamples_closer_than_best_obp")
    if paired:
        top = sorted(paired.items(), key=lambda kv: -kv[1])[:4]
        lines.append(
            "- share of resamples where ours is closer to the truth than obp's best (paired): "
            + ", ".join(f"{k} {v:.2f}" for k, v in top)
        )
    if "obp_reference" in out:
        lines.append(f"- {out['obp_reference']}")
    lines.append("")
    lines.append("Hyper-parameters (median over resamples, chosen on the random log only): " + ", ".join(
        f"{k}={v:.3g}" for k, v in out["hyperparameters_median"].items()
    ))  # fmt: skip
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--campaign", default="men")
    ap.add_argument(
        "--out", required=True, help="JSON output path; a .md with the same stem is written beside it"
    )
    ap.add_argument("--n-boot", type=int, default=30)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument(
        "--n-sim", type=int, default=100_000, help="Monte Carlo draws for BTS's action distribution"
    )
    ap.add_argument("--no-obp", action="store_true", help="skip obp even if it is installed")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    args = parse_args(argv)
    out = run(args)
    write_results(Path(args.out), out, to_markdown(out))
    print(to_markdown(out))
    return out


if __name__ == "__main__":
    main()
