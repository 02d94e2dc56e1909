"""Category pages that learn a shopper's taste vs. a popularity order, with simulated shoppers.

Question: does the featured order of `Engine.browse` (popularity + the shopper's recommender
scores + brand/category affinity learned from their clicks) earn more clicks per category page
than ordering each category by popularity — what a shop gets from sorting its search engine's
category listing by a sales field (the named baseline)?

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
  order and random draws in both arms (common random numbers).
* Arms: `popularity` (ServingSettings browse_model_weight=0, browse_affinity_weight=0: the
  category ordered by the shop's decayed clicks, carts and purchases) and `featured` (the
  defaults).
* Metrics over the visits after each shopper's first (the first visit of a new shopper is
  the same cold start for both): clicks per page, favourite-brand products among the first 10,
  with 95% bootstrap intervals over visits, and the paired difference (featured - popularity)
  with its interval; page latency p50/p99 in the featured arm.

What it shows and what it does not: the simulated taste is brand-shaped, which is what the
featured order's affinity term models, so the run shows that the loop works end to end (clicks
-> online profile -> the next page's order) and what it is worth when taste is of that kind;
it does not show that real shoppers' taste is brand-shaped.

Usage:
    python benchmarks/category_pages.py --out benchmarks/results/category_pages.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from shoploop.data.demo import DemoConfig, generate_demo_store
from shoploop.data.ingest import import_records
from shoploop.engine import EngineConfig, RecommenderSettings, build_engine
from shoploop.engine.config import ServingSettings
from shoploop.evaluation.ope import bootstrap_ci
from shoploop.evaluation.simulator import CategoryShoppers
from shoploop.retrieval.config import HybridConfig


def say(msg: str) -> None:
    print(f"[category_pages {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def build(arm: str, bundle: Any, seed: int) -> Any:
    """A fresh engine over in-memory stores holding the generated shop."""
    serving = ServingSettings()
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
    shoppers = CategoryShoppers(favourites, {p.item_id: p.brand for p in bundle.products})
    rng = np.random.default_rng(args.seed + 1)  # the same stream in every arm
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
        if n % max(1, len(plan) // 10) == 0:
            rate = n / (time.perf_counter() - started)
            say(f"{arm}: {n}/{len(plan)} visits, {rate:.0f}/s, ETA {(len(plan) - n) / rate:.0f} s")
    return {
        "clicks": np.array(clicks, dtype=float),
        "favourite_shown": np.array(shown, dtype=float),
        "first": np.array(first, dtype=bool),
        "visit_ms": np.array(ms),
    }


def summarise(runs: dict[str, dict[str, Any]], seed: int) -> dict[str, Any]:
    later = ~runs["popularity"]["first"]
    out: dict[str, Any] = {"n_visits_measured": int(later.sum())}
    for arm, run in runs.items():
        row = {}
        for metric in ("clicks", "favourite_shown"):
            values = run[metric][later]
            ci = bootstrap_ci(lambda d: float(d["v"].mean()), {"v": values}, n_boot=1000, seed=seed)
            row[metric] = {"mean": ci.estimate, "ci95": [ci.low, ci.high]}
        row["page_ms_p50"] = float(np.percentile(run["visit_ms"], 50))
        row["page_ms_p99"] = float(np.percentile(run["visit_ms"], 99))
        out[arm] = row
    diff = runs["featured"]["clicks"][later] - runs["popularity"]["clicks"][later]
    ci = bootstrap_ci(lambda d: float(d["v"].mean()), {"v": diff}, n_boot=1000, seed=seed)
    base = out["popularity"]["clicks"]["mean"]
    out["clicks_difference"] = {"mean": ci.estimate, "ci95": [ci.low, ci.high]}
    out["clicks_lift"] = ci.estimate / base if base else float("nan")
    return out


def markdown(result: dict[str, Any]) -> str:
    cfg, s = result["config"], result["summary"]
    lines = [
        "# Category pages: featured (learns the shopper's taste) vs popularity",
        "",
        f"Generated shop: {cfg['products']} products, {cfg['history_users']} shoppers of history; "
        f"{cfg['shoppers']} simulated shoppers with favourite brands, {cfg['visits']} category-page visits "
        f"(k=24), seed {cfg['seed']}; {s['n_visits_measured']} visits measured "
        "(each shopper's first left out). "
        f"Machine: {result['machine']}.",
        "",
        "| order | clicks per page | 95% CI | favourite-brand products in the top 10 | 95% CI "
        "| page p50 ms | page p99 ms |",
        "|---|---|---|---|---|---|---|",
    ]
    for arm in ("popularity", "featured"):
        r = s[arm]
        lines.append(
            f"| {arm} | {r['clicks']['mean']:.3f} "
            f"| {r['clicks']['ci95'][0]:.3f}-{r['clicks']['ci95'][1]:.3f} "
            f"| {r['favourite_shown']['mean']:.2f} | {r['favourite_shown']['ci95'][0]:.2f}-"
            f"{r['favourite_shown']['ci95'][1]:.2f} | {r['page_ms_p50']:.1f} | {r['page_ms_p99']:.1f} |"
        )
    d = s["clicks_difference"]
    lines += [
        "",
        f"Paired difference in clicks per page (featured - popularity): {d['mean']:+.3f} "
        f"(95% CI {d['ci95'][0]:+.3f}..{d['ci95'][1]:+.3f}), lift {s['clicks_lift']:+.1%}.",
        f"Run time {result['seconds']:.0f} s.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--products", type=int, default=3000)
    parser.add_argument("--history-users", type=int, default=300)
    parser.add_argument("--shoppers", type=int, default=400)
    parser.add_argument("--visits", type=int, default=4000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="benchmarks/results/category_pages.json")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    say(f"generating the shop: {args.products} products, {args.history_users} shoppers of history")
    bundle = generate_demo_store(
        DemoConfig(n_products=args.products, n_users=args.history_users, days=14, n_bots=0, seed=args.seed)
    )
    favourites, plan = plan_visits(bundle, args.shoppers, args.visits, args.seed)
    runs = {arm: run_arm(arm, bundle, favourites, plan, args) for arm in ("popularity", "featured")}
    result = {
        "config": {k: v for k, v in vars(args).items() if k != "out"},
        "summary": summarise(runs, args.seed),
        "seconds": time.perf_counter() - started,
        "machine": f"{os.cpu_count()} CPU cores, no GPU",
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    out.with_suffix(".md").write_text(markdown(result))
    say(markdown(result))
    return result


if __name__ == "__main__":
    main()
