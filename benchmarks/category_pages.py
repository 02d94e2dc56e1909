"""Category pages that learn a shopper's taste vs. a popularity order, with simulated shoppers.

Question: does the featured order of `Engine.browse` (popularity + the shopper's recommender
scores + brand/category affinity learned from their clicks) earn more clicks per category page
than ordering each category by popularity — what a shop gets from sorting its search engine's
category listing by a sales field (the named baseline)? And does the category pages' learned
ranker (`browse_ranker`, trained and gated by the retraining loop from the pages' own clicks)
earn more than the hand-set featured weights it starts from?

Protocol
--------
* Shop: the deterministic demo-shop generator (`--products`, `--history-users`, 14 days of
  history, seed `--seed`); no public dataset has categories, brands and behaviour together
  (retrotech has no categories, Home Depot no brands or sessions). Each arm gets its own engine
  over its own copy of the same store, built the same way (BM25 search, item-kNN recommender,
  the default exploration budget).
* Shoppers (`shoploop.evaluation.simulator.CategoryShoppers`): `--shoppers` new shoppers, each
  with 1-2 favourite brands drawn uniformly from the catalog's brands (their taste; the engine
  never sees it). A visit opens page 1 (k=24) of a category drawn by size among the top-level
  categories that carry a favourite brand, examines slot r with probability 1/r^0.7 and
  clicks an examined product of a favourite brand with p=0.25, any other with p=0.03. Clicks
  go back to the engine with the page's request_id and position, as a shop's front end sends
  them.
* Sequence: `--visits` visits, each by a shopper drawn uniformly; the same shoppers, visit
  order and random draws in every arm (common random numbers), on a simulated clock that
  starts a day after the generated history (so a seed replays exactly).
* Arms: `popularity` (ServingSettings browse_model_weight=0, browse_affinity_weight=0: the
  category ordered by the shop's decayed clicks, carts and purchases), `featured` (the
  defaults), and `learned`: the defaults plus the retraining loop (`RetrainLoop`, default
  settings, search ranker off) run every `--retrain-every` visits, whose gate decides whether a
  `browse_ranker` learned from the category pages' logged lists re-orders the featured head.
* Metrics over the visits after each shopper's first (the first visit of a new shopper is
  the same cold start for both): clicks per page, favourite-brand products among the first 10,
  with 95% bootstrap intervals over visits, and the paired difference (featured - popularity)
  with its interval, also over the second half of the visits (after the loop had data to learn
  from); page latency p50/p99 per arm (the learned arm's includes its re-ranking, not the
  retraining, which a server runs in the background; every arm's includes reading popularity
  afresh, see `build` — serving speed is `benchmarks/serving.py`'s to measure).

What it shows and what it does not: the simulated taste is brand-shaped, which is what the
featured order's affinity term models, so the run shows that the loop works end to end (clicks
-> online profile -> the next page's order) and what it is worth when taste is of that kind;
it does not show that real shoppers' taste is brand-shaped.

Usage (the committed runs):
    python benchmarks/category_pages.py --out benchmarks/results/category_pages.json
    python benchmarks/category_pages.py --seed 1 --out benchmarks/results/category_pages_seed1.json
    python benchmarks/category_pages.py --appeal-sigma 0.5 \
        --out benchmarks/results/category_pages_appeal_half.json
    python benchmarks/category_pages.py --appeal-sigma 1 [--seed 1|2] \
        --out benchmarks/results/category_pages_appeal[_seed1|_seed2].json
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import asdict, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np

# a sibling program module: benchmarks run as scripts, with this directory on sys.path
from results_io import write_results

from shoploop.data.demo import DemoConfig, generate_demo_store
from shoploop.data.ingest import import_records
from shoploop.engine import EngineConfig, RecommenderSettings, build_engine
from shoploop.engine.config import ServingSettings
from shoploop.evaluation.ope import bootstrap_ci
from shoploop.evaluation.simulator import CategoryShopperConfig, CategoryShoppers, SimulatedClock
from shoploop.feedback.retrain import RetrainConfig, RetrainLoop
from shoploop.retrieval.config import HybridConfig


def say(msg: str) -> None:
    print(f"[category_pages {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


ARMS = ("popularity", "featured", "learned")


def build(arm: str, bundle: Any, seed: int) -> Any:
    """A fresh engine over in-memory stores holding the generated shop."""
    # Popularity is read fresh on every page (the server refreshes it every few wall-clock
    # seconds), so arms that take different times do not see different snapshots and the run
    # reproduces: with the refresh, two arms serving the same pages differed by up to 0.01.
    serving = ServingSettings(trending_refresh_seconds=0.0)
    if arm == "popularity":
        serving = replace(serving, browse_model_weight=0.0, browse_affinity_weight=0.0)
    config = EngineConfig(
        search=HybridConfig(use_dense=False),
        recommender=RecommenderSettings(kind="item_knn"),
        serving=serving,
        seed=seed,
    )
    engine = build_engine(config)
    import_records(bundle.products, bundle.events, engine.stores, source="demo", progress=False)
    return engine.start()


def plan_visits(
    bundle: Any, shoppers: int, visits: int, seed: int
) -> tuple[dict[str, frozenset[str]], list[tuple[str, str]]]:
    """Each shopper's favourite brands, and the (shopper, category) of every visit."""
    rng = np.random.default_rng(seed)
    brands = sorted({p.brand for p in bundle.products if p.brand})
    tops: dict[str, set[str]] = {}
    size: dict[str, int] = {}
    for p in bundle.products:
        if p.category_path:
            top = p.category_path[0]
            size[top] = size.get(top, 0) + 1
            if p.brand:
                tops.setdefault(top, set()).add(p.brand)
    favourites = {
        f"shopper-{i:04d}": frozenset(
            rng.choice(brands, size=int(rng.integers(1, 3)), replace=False).tolist()
        )
        for i in range(shoppers)
    }
    plan = []
    users = sorted(favourites)
    for _ in range(visits):
        user = users[int(rng.integers(len(users)))]
        options = sorted(t for t, b in tops.items() if b & favourites[user]) or sorted(size)
        weights = np.array([size[t] for t in options], dtype=float)
        plan.append((user, options[int(rng.choice(len(options), p=weights / weights.sum()))]))
    return favourites, plan


def run_arm(
    arm: str, bundle: Any, favourites: dict[str, frozenset[str]], plan: list[tuple[str, str]], args: Any
) -> dict[str, Any]:
    engine = build(arm, bundle, args.seed)
    # One simulated clock per arm, read by the engine and its shoppers alike, starting a day
    # after the generated history: every arm sees the same times and the run replays exactly.
    clock = SimulatedClock(start=max(e.timestamp for e in bundle.events) + timedelta(days=1))
    engine.clock = clock
    shoppers = CategoryShoppers(
        favourites,
        {p.item_id: p.brand for p in bundle.products},
        CategoryShopperConfig(appeal_sigma=args.appeal_sigma),
        clock=clock,
    )
    rng = np.random.default_rng(args.seed + 1)  # the same stream in every arm
    # Only category pages are learned here: the generated history's searches stay out.
    loop = RetrainLoop(engine, RetrainConfig(surfaces=()), say=lambda m: None) if arm == "learned" else None
    rounds: list[dict[str, Any]] = []
    clicks, shown, first, ms = [], [], [], []
    seen: set[str] = set()
    started = time.perf_counter()
    for n, (user, category) in enumerate(plan, 1):
        t = time.perf_counter()
        visit = shoppers.visit(engine, user, category, rng)
        ms.append((time.perf_counter() - t) * 1e3)
        clicks.append(int(visit.clicks.sum()))
        shown.append(visit.favourite_shown)
        first.append(user not in seen)
        seen.add(user)
        if loop is not None and n % args.retrain_every == 0:
            found = loop.run_once().browse
            if found is not None:
                rounds.append({"after_visits": n, **{k: v for k, v in asdict(found).items() if k != "curve"}})
                say(f"{arm}: browse_ranker after {n} visits: {found.reason}")
        if n % max(1, len(plan) // 10) == 0:
            rate = n / (time.perf_counter() - started)
            say(f"{arm}: {n}/{len(plan)} visits, {rate:.0f}/s, ETA {(len(plan) - n) / rate:.0f} s")
    return {
        "clicks": np.array(clicks, dtype=float),
        "favourite_shown": np.array(shown, dtype=float),
        "first": np.array(first, dtype=bool),
        "visit_ms": np.array(ms),
        "retrain_rounds": rounds,
    }


def _mean_ci(values: np.ndarray, seed: int) -> dict[str, Any]:
    ci = bootstrap_ci(lambda d: float(d["v"].mean()), {"v": values}, n_boot=1000, seed=seed)
    return {"mean": ci.estimate, "ci95": [ci.low, ci.high]}


def summarise(runs: dict[str, dict[str, Any]], seed: int) -> dict[str, Any]:
    later = ~runs["popularity"]["first"]
    second_half = later & (np.arange(len(later)) >= len(later) // 2)
    out: dict[str, Any] = {"n_visits_measured": int(later.sum()), "n_second_half": int(second_half.sum())}
    for arm, run in runs.items():
        row = {metric: _mean_ci(run[metric][later], seed) for metric in ("clicks", "favourite_shown")}
        row["clicks_second_half"] = _mean_ci(run["clicks"][second_half], seed)
        row["page_ms_p50"] = float(np.percentile(run["visit_ms"], 50))
        row["page_ms_p99"] = float(np.percentile(run["visit_ms"], 99))
        out[arm] = row
    for arm, base_arm in (("featured", "popularity"), ("learned", "featured")):
        if arm not in runs:
            continue
        for part, mask in (("", later), ("_second_half", second_half)):
            diff = _mean_ci(runs[arm]["clicks"][mask] - runs[base_arm]["clicks"][mask], seed)
            base = float(runs[base_arm]["clicks"][mask].mean())
            out[f"{arm}_vs_{base_arm}{part}"] = {
                **diff,
                "lift": diff["mean"] / base if base else float("nan"),
            }
    if "learned" in runs:
        out["retrain_rounds"] = runs["learned"]["retrain_rounds"]
    return out


def markdown(result: dict[str, Any]) -> str:
    cfg, s = result["config"], result["summary"]
    lines = [
        "# Category pages: featured (learns the shopper's taste) and learned (its ranker trained "
        "from the pages' clicks) vs popularity",
        "",
        f"Generated shop: {cfg['products']} products, {cfg['history_users']} shoppers of history; "
        f"{cfg['shoppers']} simulated shoppers with favourite brands, {cfg['visits']} category-page visits "
        f"(k=24), seed {cfg['seed']}; {s['n_visits_measured']} visits measured "
        "(each shopper's first left out). "
        f"Machine: {result['machine']}.",
        "",
        "| order | clicks per page | 95% CI | second half | favourite-brand products in the top 10 "
        "| 95% CI | page p50 ms | page p99 ms |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for arm in ARMS:
        if arm not in s:
            continue
        r = s[arm]
        lines.append(
            f"| {arm} | {r['clicks']['mean']:.3f} "
            f"| {r['clicks']['ci95'][0]:.3f}-{r['clicks']['ci95'][1]:.3f} "
            f"| {r['clicks_second_half']['mean']:.3f} "
            f"| {r['favourite_shown']['mean']:.2f} | {r['favourite_shown']['ci95'][0]:.2f}-"
            f"{r['favourite_shown']['ci95'][1]:.2f} | {r['page_ms_p50']:.1f} | {r['page_ms_p99']:.1f} |"
        )
    lines.append("")
    for key, label in (
        ("featured_vs_popularity", "featured - popularity"),
        ("learned_vs_featured", "learned - featured"),
    ):
        for part, when in (("", "all measured visits"), ("_second_half", "second half")):
            d = s.get(key + part)
            if d is not None:
                lines.append(
                    f"- Paired difference in clicks per page ({label}, {when}): {d['mean']:+.3f} "
                    f"(95% CI {d['ci95'][0]:+.3f}..{d['ci95'][1]:+.3f}), lift {d['lift']:+.1%}."
                )
    rounds = s.get("retrain_rounds") or []
    promoted = [r["after_visits"] for r in rounds if r["promoted"]]
    if rounds:
        lines += [
            f"- Learned arm: {len(rounds)} retraining rounds (every {cfg['retrain_every']} visits); "
            f"browse_ranker promoted after visits {promoted or 'none'}; last round: {rounds[-1]['reason']}.",
        ]
    lines += ["", f"Run time {result['seconds']:.0f} s."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--products", type=int, default=3000)
    parser.add_argument("--history-users", type=int, default=300)
    parser.add_argument("--shoppers", type=int, default=400)
    parser.add_argument("--visits", type=int, default=4000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--appeal-sigma", type=float, default=0.0, help="products' log-normal appeal to everyone (0 = none)"
    )
    parser.add_argument("--retrain-every", type=int, default=500, help="visits between retraining rounds")
    parser.add_argument("--out", default="benchmarks/results/category_pages.json")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    say(f"generating the shop: {args.products} products, {args.history_users} shoppers of history")
    bundle = generate_demo_store(
        DemoConfig(n_products=args.products, n_users=args.history_users, days=14, n_bots=0, seed=args.seed)
    )
    favourites, plan = plan_visits(bundle, args.shoppers, args.visits, args.seed)
    runs = {arm: run_arm(arm, bundle, favourites, plan, args) for arm in ARMS}
    result = {
        "config": {k: v for k, v in vars(args).items() if k != "out"},
        "summary": summarise(runs, args.seed),
        "seconds": time.perf_counter() - started,
        "machine": f"{os.cpu_count()} CPU cores, no GPU",
    }
    out = Path(args.out)
    write_results(out, result, markdown(result))
    say(markdown(result))
    return result


if __name__ == "__main__":
    main()
