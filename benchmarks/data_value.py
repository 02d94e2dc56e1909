"""Data value: does the slice valuation find planted bad data, and does dropping it help?

Protocol
--------
Task: next-item recommendation. Model: an item-kNN / popularity blend trained on weighted
user-item interactions (click 1, cart 2, purchase 3, ratings 2 (r - 2.5) so a low rating is
negative evidence; a user's net-negative items are dropped), cosine item-item similarities,
score = history @ sim + beta * popularity.
It trains in milliseconds, which is what makes retraining inside a Shapley loop affordable.
Metric: leave-last-out NDCG@10 (and HR@10) over the full catalogue on held-out users: the
valuation uses VALIDATION users; the before/after check uses separate TEST users.

Data (default, synthetic, `--seed`): shoppers with Dirichlet tastes over item categories
(85% in-taste browsing) arrive through channels web / app / email (genuine slices), plus
a "reviews" slice of genuine ratings (in-taste items rated 4-5, off-taste 1-2). Two
corrupted slices are planted: "affiliate-clicks" (bot users clicking uniformly random
items) and "partner-reviews" (the reviews of a third of the shoppers, who signed in through
a partner whose feed reverses the rating scale: flipped labels). With `--data-dir DIR`
(MovieLens-100k: DIR/ml-100k.inter) the genuine slices are four time windows of real
ratings, and the planted slices are bot users rating random movies 5 stars and 15% of the
users whose ratings are flipped (6 - r).

Valuation: leave-one-slice-out and truncated Monte-Carlo Shapley over the slices
(shoploop.evaluation.data_value), with the exact Shapley values (all 2^n subsets) as a
reference. Requirements checked: every planted slice is valued below every genuine slice,
with a negative value; dropping the slices marked "drop" raises test NDCG@10.

Per example: kNN-Shapley (Jia et al. 2019) over all rating events, as a "liked (r >= 4)?"
classifier on [item features, user profile], reports how well the per-event values flag
the flipped-label events (AUC) -- the tool for data too large for retraining loops.

Writes JSON to `--out` and Markdown beside it.
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from results_io import write_results  # a sibling module: benchmarks run as scripts, this folder on sys.path
from scipy import sparse

from shoploop.evaluation.data_value import ShapleyConfig, SliceUtility, exact_slice_shapley, value_slices
from shoploop.evaluation.data_value_knn import knn_shapley, values_by_slice
from shoploop.evaluation.metrics import ndcg_from_rank

DEFAULT_OUT = Path(__file__).resolve().parent / "results" / "data_value.json"
K = 10
# Explicit ratings outweigh implicit clicks: a 1-star review says more than a click.
RATING_WEIGHT = 2.0


@dataclass
class Task:
    name: str
    n_items: int
    user: np.ndarray  # (n_events,) training-user index
    item: np.ndarray  # (n_events,)
    weight: np.ndarray  # (n_events,) interaction weight the model uses
    slices: dict[str, np.ndarray]
    planted: list[str]
    valid_hist: list[np.ndarray]
    valid_target: np.ndarray
    test_hist: list[np.ndarray]
    test_target: np.ndarray
    item_feat: np.ndarray  # (n_items, g) for the kNN-Shapley part
    rating: np.ndarray  # (n_events,) rating or 0 for non-rating events
    flipped: np.ndarray  # (n_events,) bool: label deliberately corrupted
    # validation users' ratings (history index, item, rating): test labels for kNN-Shapley
    valid_ratings: tuple[np.ndarray, np.ndarray, np.ndarray] = field(default=None)


# ---------------------------------------------------------------------------- synthetic shop


def synthetic_task(seed: int, n_users: int = 1500, n_valid: int = 1000, n_test: int = 2000) -> Task:
    rng = np.random.default_rng(seed)
    n_items, n_cats = 400, 20
    cat = np.arange(n_items) % n_cats
    pop = 1.0 / (1 + np.arange(n_items) // n_cats) ** 0.8
    by_cat = [np.flatnonzero(cat == c) for c in range(n_cats)]
    p_in_cat = [pop[ix] / pop[ix].sum() for ix in by_cat]

    def draw_items(taste: np.ndarray, n: int, explore: float) -> np.ndarray:
        cats = np.where(rng.random(n) < explore, rng.integers(0, n_cats, n), rng.choice(n_cats, n, p=taste))
        return np.array([rng.choice(by_cat[c], p=p_in_cat[c]) for c in cats], dtype=np.int64)

    rows: list[tuple[int, int, float, str, int, bool]] = []  # user, item, weight, slice, rating, flipped
    partner_users = set(rng.choice(n_users, n_users // 3, replace=False).tolist())
    channels = rng.choice(["web", "app", "email"], n_users, p=[0.5, 0.35, 0.15])
    for u in range(n_users):
        taste = rng.dirichlet(np.full(n_cats, 0.2))
        items = draw_items(taste, 8 + rng.poisson(12), explore=0.15)
        for it in items:
            rows.append((u, it, 1.0, channels[u], 0, False))
            if rng.random() < 0.25:
                rows.append((u, it, 2.0, channels[u], 0, False))
                if rng.random() < 0.4:
                    rows.append((u, it, 3.0, channels[u], 0, False))
        rated = np.unique(items[rng.random(len(items)) < 0.6])
        for it in rated:
            liked = taste[cat[it]] >= 0.1
            r = int(rng.integers(4, 6) if liked else rng.integers(1, 3))
            if u in partner_users:  # their reviews arrive through a partner feed with the scale reversed
                rows.append((u, it, RATING_WEIGHT * ((6 - r) - 2.5), "partner-reviews", 6 - r, True))
            else:
                rows.append((u, it, RATING_WEIGHT * (r - 2.5), "reviews", r, False))
    n_bots = 300
    for b in range(n_bots):  # bots clicking uniformly random items
        for it in rng.integers(0, n_items, 100):
            rows.append((n_users + b, int(it), 1.0, "affiliate-clicks", 0, False))

    def eval_users(n: int) -> tuple[list[np.ndarray], np.ndarray, list[tuple[int, int, int]]]:
        hists, targets, ratings = [], [], []
        for e in range(n):
            taste = rng.dirichlet(np.full(n_cats, 0.2))
            hist = np.unique(draw_items(taste, 6 + rng.poisson(6), explore=0.15))
            target = hist[0]
            for _ in range(50):
                target = draw_items(taste, 1, explore=0.0)[0]
                if target not in hist:
                    break
            hists.append(hist)
            targets.append(target)
            for it in hist[rng.random(len(hist)) < 0.5]:
                liked = taste[cat[it]] >= 0.1
                ratings.append((e, int(it), int(rng.integers(4, 6) if liked else rng.integers(1, 3))))
        return hists, np.array(targets), ratings

    vh, vt, vr = eval_users(n_valid)
    th, tt, _ = eval_users(n_test)
    return _task_from_rows(
        "synthetic",
        n_items,
        rows,
        ["affiliate-clicks", "partner-reviews"],
        vh,
        vt,
        th,
        tt,
        np.eye(n_cats)[cat],
        vr,
    )


# ---------------------------------------------------------------------------- MovieLens-100k


def movielens_task(data_dir: Path, seed: int) -> Task:
    rng = np.random.default_rng(seed)
    path = data_dir / "ml-100k.inter"
    if not path.exists():
        path = data_dir / "ml-100k" / "ml-100k.inter"
    raw = np.loadtxt(path, skiprows=1, delimiter="\t")
    users, u_idx = np.unique(raw[:, 0].astype(int), return_inverse=True)
    items, i_idx = np.unique(raw[:, 1].astype(int), return_inverse=True)
    rating, ts = raw[:, 2].astype(int), raw[:, 3]
    n_items = len(items)
    item_path = path.with_suffix(".item")
    genres = np.zeros((n_items, 1))
    if item_path.exists():
        pos = {it: k for k, it in enumerate(items)}
        names: dict[str, int] = {}
        feats: dict[int, list[int]] = {}
        for line in item_path.read_text(encoding="latin-1").splitlines()[1:]:
            parts = line.split("\t")
            if len(parts) >= 4 and int(parts[0]) in pos:
                feats[pos[int(parts[0])]] = [names.setdefault(g, len(names)) for g in parts[3].split()]
        genres = np.zeros((n_items, max(1, len(names))))
        for k, gs in feats.items():
            genres[k, gs] = 1.0
    perm = rng.permutation(len(users))
    n_eval = int(0.15 * len(users))
    valid_u, test_u = set(perm[:n_eval].tolist()), set(perm[n_eval : 2 * n_eval].tolist())
    train_u = perm[2 * n_eval :]
    flipped_u = set(rng.choice(train_u, int(0.15 * len(train_u)), replace=False).tolist())
    order = np.argsort(ts, kind="stable")
    train_mask = np.array([u not in valid_u and u not in test_u for u in u_idx])
    genuine_ts = ts[train_mask & ~np.isin(u_idx, list(flipped_u))]
    edges = np.quantile(genuine_ts, [0.25, 0.5, 0.75])
    rows: list[tuple[int, int, float, str, int, bool]] = []
    hist: dict[int, list[tuple[int, int]]] = {}
    for e in order:
        u, it, r = int(u_idx[e]), int(i_idx[e]), int(rating[e])
        if u in valid_u or u in test_u:
            hist.setdefault(u, []).append((it, r))
        elif u in flipped_u:
            rows.append((u, it, RATING_WEIGHT * ((6 - r) - 2.5), "flipped-ratings", 6 - r, True))
        else:
            w = int(np.searchsorted(edges, ts[e], side="right"))
            rows.append((u, it, RATING_WEIGHT * (r - 2.5), f"time-window-{w + 1}", r, False))
    for b in range(100):
        for it in rng.integers(0, n_items, 100):
            rows.append((len(users) + b, int(it), RATING_WEIGHT * 2.5, "bots", 5, False))

    def split(us: set[int]) -> tuple[list[np.ndarray], np.ndarray, list[tuple[int, int, int]]]:
        hs, tg, rt = [], [], []
        for u in sorted(us):
            seq = hist.get(u, [])
            liked = [k for k, (_, r) in enumerate(seq) if r >= 4]
            if not liked or liked[-1] == 0:
                continue
            cut = liked[-1]
            h = np.array([it for it, _ in seq[:cut]])
            rt += [(len(hs), it, r) for it, r in seq[:cut]]
            hs.append(np.unique(h))
            tg.append(seq[cut][0])
        return hs, np.array(tg), rt

    vh, vt, vr = split(valid_u)
    th, tt, _ = split(test_u)
    return _task_from_rows("ml-100k", n_items, rows, ["bots", "flipped-ratings"], vh, vt, th, tt, genres, vr)


def _task_from_rows(name, n_items, rows, planted, vh, vt, th, tt, item_feat, vr) -> Task:  # type: ignore[no-untyped-def]
    user = np.array([r[0] for r in rows], dtype=np.int64)
    item = np.array([r[1] for r in rows], dtype=np.int64)
    weight = np.array([r[2] for r in rows])
    labels = np.array([r[3] for r in rows])
    slices = {s: np.flatnonzero(labels == s) for s in sorted(set(labels.tolist()))}
    vr_arr = tuple(np.array([x[k] for x in vr], dtype=np.int64) for k in range(3))
    return Task(
        name,
        n_items,
        user,
        item,
        weight,
        slices,
        planted,
        vh,
        np.asarray(vt),
        th,
        np.asarray(tt),
        item_feat,
        np.array([r[4] for r in rows]),
        np.array([r[5] for r in rows]),
        vr_arr,
    )


# ---------------------------------------------------------------------------- the model


def _history_matrix(hists: list[np.ndarray], n_items: int) -> sparse.csr_matrix:
    indptr = np.cumsum([0] + [len(h) for h in hists])
    idx = np.concatenate(hists) if hists else np.zeros(0, dtype=np.int64)
    return sparse.csr_matrix((np.ones(len(idx)), idx, indptr), shape=(len(hists), n_items))


def make_evaluator(task: Task, beta: float = 0.05, seed: int = 0):  # type: ignore[no-untyped-def]
    n_users = int(task.user.max()) + 1
    jitter = np.random.default_rng(seed).random(task.n_items) * 1e-9  # fixed tie-break for every training
    sets = {
        "valid": (_history_matrix(task.valid_hist, task.n_items), task.valid_target),
        "test": (_history_matrix(task.test_hist, task.n_items), task.test_target),
    }

    def fit(rows: np.ndarray) -> np.ndarray:
        """rows -> item scores function's parts: similarity (n_items, n_items) + popularity."""
        coo = (task.weight[rows], (task.user[rows], task.item[rows]))
        w = sparse.csr_matrix(coo, shape=(n_users, task.n_items))
        # A user's net evidence per item; net-negative (disliked) items are not co-occurrence
        # evidence. Without the clip a fully negated row would leave w.T @ w unchanged and
        # flipped labels would be invisible to the model.
        w.data = np.maximum(w.data, 0.0)
        w.eliminate_zeros()
        co = (w.T @ w).toarray()
        norm = np.sqrt(np.maximum(np.diag(co), 0.0))
        with np.errstate(divide="ignore", invalid="ignore"):
            sim = np.where(np.outer(norm, norm) > 0, co / np.outer(norm, norm), 0.0)
        np.fill_diagonal(sim, 0.0)
        popularity = np.maximum(np.asarray(w.sum(axis=0)).ravel(), 0.0)
        popularity = popularity / popularity.max() if popularity.max() > 0 else popularity
        return sim, popularity

    def evaluate(rows: np.ndarray, split: str = "valid", with_per_user: bool = False):  # type: ignore[no-untyped-def]
        hmat, target = sets[split]
        sim, popularity = fit(rows)
        scores = np.asarray(hmat @ sim) + beta * popularity + jitter
        scores[hmat.nonzero()] = -np.inf  # never recommend what the user already has
        tscore = scores[np.arange(len(target)), target]
        rank = 1 + (scores > tscore[:, None]).sum(axis=1)
        per_user = ndcg_from_rank(rank, K)
        out = {"ndcg@10": float(per_user.mean()), "hr@10": float((rank <= K).mean())}
        return (out, per_user) if with_per_user else out

    return evaluate


# ---------------------------------------------------------------------------- kNN-Shapley per event


def per_event_knn(task: Task, k: int = 10) -> dict[str, Any]:
    """kNN-Shapley of every rating event as a liked / not-liked example."""
    n_users = int(task.user.max()) + 1
    is_rating = task.rating > 0
    touched = sparse.csr_matrix(
        (np.ones(len(task.user)), (task.user, task.item)), shape=(n_users, task.n_items)
    )
    touched.data[:] = 1.0
    prof = touched @ task.item_feat
    prof = prof / np.maximum(prof.sum(axis=1, keepdims=True), 1e-12)
    ridx = np.flatnonzero(is_rating)
    x = np.hstack([task.item_feat[task.item[ridx]], prof[task.user[ridx]]])
    y = (task.rating[ridx] >= 4).astype(int)
    vu, vi, vrat = task.valid_ratings
    vprof = _history_matrix(task.valid_hist, task.n_items) @ task.item_feat
    vprof = vprof / np.maximum(vprof.sum(axis=1, keepdims=True), 1e-12)
    xt = np.hstack([task.item_feat[vi], vprof[vu]])
    t = time.perf_counter()
    vals = knn_shapley(x, y, xt, (vrat >= 4).astype(int), k=k)
    elapsed = time.perf_counter() - t
    flipped = task.flipped[ridx]
    # AUC of "lower value = corrupted": P(value of a flipped event < value of a genuine one)
    from scipy.stats import mannwhitneyu

    auc = float(mannwhitneyu(-vals[flipped], -vals[~flipped]).statistic / (flipped.sum() * (~flipped).sum()))
    groups = {"genuine ratings": np.flatnonzero(~flipped), "flipped ratings": np.flatnonzero(flipped)}
    return {
        "n_train_events": len(ridx),
        "n_test_points": len(vi),
        "k": k,
        "seconds": elapsed,
        "auc_flipped_lowest": auc,
        "by_group": values_by_slice(vals, groups),
    }


# ---------------------------------------------------------------------------- main


def run(args: argparse.Namespace) -> dict[str, Any]:
    t_all = time.perf_counter()
    task = movielens_task(args.data_dir, args.seed) if args.data_dir else synthetic_task(args.seed)
    print(
        f"[data_value] task {task.name}: {len(task.user):,} events, {task.n_items} items, slices "
        f"{ {k: len(v) for k, v in task.slices.items()} }",
        flush=True,
    )
    evaluate = make_evaluator(task, seed=args.seed)
    all_rows = np.arange(len(task.user))
    t = time.perf_counter()
    base = evaluate(all_rows, "valid")
    one_fit = time.perf_counter() - t
    print(f"[data_value] one training + evaluation: {one_fit * 1000:.0f} ms; valid {base}", flush=True)

    def utility(rows: np.ndarray) -> float:
        return evaluate(rows, "valid")["ndcg@10"]

    cfg = ShapleyConfig(
        max_permutations=args.max_permutations, time_budget_s=args.time_budget, seed=args.seed
    )
    t = time.perf_counter()
    su = SliceUtility(utility, task.slices)  # one subset cache shared by TMC, LOO and exact
    report = value_slices(su, task.slices, cfg, metric="valid NDCG@10")
    shapley_s = time.perf_counter() - t
    sh = report.shapley
    print(
        f"[data_value] TMC-Shapley: {sh.n_permutations} permutations, {sh.n_utility_calls} trainings, "
        f"{shapley_s:.1f}s, stop: {sh.stop_reason}",
        flush=True,
    )
    t = time.perf_counter()
    exact = exact_slice_shapley(su, task.slices)
    exact_s = time.perf_counter() - t
    genuine = [s for s in task.slices if s not in task.planted]
    vals = {s.name: s.value for s in report.slices}
    dropped = [s.name for s in report.slices if s.recommendation.startswith("drop")]
    keep_rows = np.concatenate([task.slices[s] for s in task.slices if s not in dropped])
    (before, per_before), (after, per_after) = (
        evaluate(all_rows, "test", with_per_user=True),
        evaluate(np.sort(keep_rows), "test", with_per_user=True),
    )
    paired = per_after - per_before  # same test users, so the paired difference has a small stderr
    gain = {"mean": float(paired.mean()), "stderr": float(paired.std(ddof=1) / np.sqrt(len(paired)))}
    valid_after = evaluate(np.sort(keep_rows), "valid")
    oracle = evaluate(np.sort(np.concatenate([task.slices[s] for s in genuine])), "test")
    knn = per_event_knn(task) if not args.skip_knn else None
    res = {
        "task": task.name,
        "n_events": len(task.user),
        "n_items": task.n_items,
        "planted": task.planted,
        "slices": [s.__dict__ for s in report.slices],
        "exact_shapley": exact,
        "full_valid": base,
        "empty_valid_ndcg": sh.empty_utility,
        "shapley": {
            "n_permutations": sh.n_permutations,
            "n_trainings": sh.n_utility_calls,
            "converged": sh.converged,
            "stop_reason": sh.stop_reason,
            "max_r_hat": float(np.nanmax(sh.r_hat)),
            "max_rel_stderr": float(sh.stderr.max() / max(abs(sh.full_utility - sh.empty_utility), 1e-12)),
            "seconds": shapley_s,
            "max_abs_diff_vs_exact": float(max(abs(vals[n] - exact[n]) for n in exact)),
        },
        "exact_seconds": exact_s,
        "one_training_ms": one_fit * 1000,
        "dropped": dropped,
        "test_before": before,
        "test_after_drop": after,
        "valid_after_drop": valid_after,
        "test_ndcg_gain_paired": gain,
        "test_oracle_genuine_only": oracle,
        "knn_shapley": knn,
        "targets": {
            "planted_lowest_and_negative": all(vals[p] < 0 for p in task.planted)
            and max(vals[p] for p in task.planted) < min(vals[g] for g in genuine),
            "dropping_negative_improves_test": after["ndcg@10"] > before["ndcg@10"],
        },
        "elapsed_seconds": time.perf_counter() - t_all,
        "seed": args.seed,
    }
    return res


def to_markdown(res: dict[str, Any]) -> str:
    sh = res["shapley"]
    lines = [
        f"# Data value (benchmarks/data_value.py) -- {res['task']}",
        "",
        f"{res['n_events']:,} events, {res['n_items']} items; model: item-kNN + popularity blend; utility: "
        f"validation NDCG@10 (full data {res['full_valid']['ndcg@10']:.4f}, "
        f"no data {res['empty_valid_ndcg']:.4f}). "
        f"Planted: {', '.join(res['planted'])}.",
        "",
        "| slice | events | Shapley value | stderr | exact Shapley | leave-one-out | value / 1k events "
        "| recommendation |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for s in res["slices"]:
        mark = " (planted)" if s["name"] in res["planted"] else ""
        lines.append(
            f"| {s['name']}{mark} | {s['n_events']:,} | {s['value']:+.4f} | {s['stderr']:.4f} | "
            f"{res['exact_shapley'][s['name']]:+.4f} | {s['loo']:+.4f} | {s['value_per_1k']:+.5f} | "
            f"{s['recommendation']} |"
        )
    b, a, o = res["test_before"], res["test_after_drop"], res["test_oracle_genuine_only"]
    lines += [
        "",
        f"TMC-Shapley: {sh['n_permutations']} permutations, {sh['n_trainings']} trainings "
        f"({res['one_training_ms']:.0f} ms each), {sh['seconds']:.1f}s, stop: {sh['stop_reason']}, "
        f"max R-hat {sh['max_r_hat']:.3f}, max |TMC - exact| {sh['max_abs_diff_vs_exact']:.5f}. "
        f"Exact enumeration (reusing the cached subsets): {res['exact_seconds']:.1f}s.",
        "",
        "| test users | NDCG@10 | HR@10 |",
        "|---|---|---|",
        f"| all slices (before) | {b['ndcg@10']:.4f} | {b['hr@10']:.4f} |",
        f"| after dropping {', '.join(res['dropped']) or 'nothing'} | {a['ndcg@10']:.4f} "
        f"| {a['hr@10']:.4f} |",
        f"| oracle: genuine slices only | {o['ndcg@10']:.4f} | {o['hr@10']:.4f} |",
        "",
        f"Paired test NDCG@10 gain from dropping: {res['test_ndcg_gain_paired']['mean']:+.4f} "
        f"+- {res['test_ndcg_gain_paired']['stderr']:.4f} (stderr over test users).",
    ]
    if res["knn_shapley"]:
        kn = res["knn_shapley"]
        g = kn["by_group"]
        lines += [
            "",
            f"kNN-Shapley per rating event (k={kn['k']}, {kn['n_train_events']:,} events x "
            f"{kn['n_test_points']:,} "
            f"test labels, {kn['seconds']:.1f}s): mean value per 1k events genuine "
            f"{g['genuine ratings']['per_1k']:+.4f} vs flipped {g['flipped ratings']['per_1k']:+.4f}; "
            f"AUC of flagging flipped events by lowest value {kn['auc_flipped_lowest']:.3f}.",
        ]
    lines += ["", f"Targets met: {res['targets']}. Total time {res['elapsed_seconds']:.1f}s.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description="slice data valuation with planted corrupted slices")
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--data-dir", type=Path, default=None, help="folder with ml-100k.inter (MovieLens-100k)")
    ap.add_argument("--max-permutations", type=int, default=1000)
    ap.add_argument("--time-budget", type=float, default=300.0, help="seconds for the Shapley loop")
    ap.add_argument("--skip-knn", action="store_true")
    args = ap.parse_args(argv)
    res = run(args)
    md = to_markdown(res)
    write_results(args.out, res, md)
    print(md)
    return res


if __name__ == "__main__":
    main(sys.argv[1:])
