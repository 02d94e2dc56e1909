"""Does the feedback loop learn? Simulated shoppers against the real engine, four arms side by side.

Protocol (search, Home Depot judgments, semi-synthetic):

* Queries: `--queries` judged queries with at least 3 judged products, one of grade >= 2.5 and
  a grade spread >= 0.66 (so ranking matters), split query-disjointly into a training part
  (`--train-frac`) and held-out queries. Catalog: every judged product of those queries plus
  `--distractors` random other Home Depot products. Unjudged (query, product) pairs count as
  irrelevant (grade 1) in the simulated world.
* Traffic: `--searches` shoppers; each samples a query uniformly and a shopper id, and the SAME
  shopper (common random numbers: same query, same uniforms) is replayed in every arm. Shoppers
  examine slot r with prob 1/r^eta, click with prob rising with the true grade, buy less often
  (`shoploop.evaluation.simulator.SearchShoppers`); clicks, carts and purchases go back through
  `Engine.ingest_events` with the served list's request_id.
* Arms: (1) static: hybrid search (BM25-only here, for speed), no learning, no personalisation,
  no exploration; deterministic per query, so each query's list is computed once through the
  engine and reused. Every learning arm serves, until its first learned ranker is promoted, the
  engine's real-time lift from the query's click-through (`--ctr-lift`, the engine's default
  `ServingSettings.query_ctr_weight`), so it learns from the first click as the product does.
  (2) naive loop: the learned LambdaMART ranker retrained from raw clicks with raw click-through
  features (tried at 1,000 and 2,500 searches, then every `--retrain-every`; a retrain trains a
  candidate only once `--min-train-lists` clicked training lists exist), no exploration.
  (3) corrected loop: exploration (Plackett-Luce on the top 6 with at most 3 places of
  promotion; the budget is 20% for a query never served and decays with its servings,
  0.2 / (1 + n/20), floor 2% (`ExplorationConfig.budget_half_servings`); exact propensities,
  and for shuffled lists each item's rank in the ranker's order, logged), the examination
  curve estimated from that randomisation
  (`click_models.examination_from_randomisation`; EM over all lists until it has 100 clicks
  below slot 1), inverse-propensity weights and click-through features over expected
  examinations from that curve. (2b) ipw_only: the corrected loop without exploration (so its
  curve is EM's over all lists), to separate the ingredients. (4) label oracle: the static
  engine's candidate pool (top 50) sorted by true grade. Learned rankers train only on lists
  of training queries (`RetrainLoop(include=...)`); every retrain goes through the promotion
  gate, which judges on the most recent fifth of those lists (`RetrainConfig.holdout`).
* Time: every engine and the shoppers read one `SimulatedClock`, so a seed replays exactly.
  `--search-seeds` runs seeds seed, seed+1, ... (each its own query sample, split and
  shoppers; `--jobs` of them at once) and the table reports each and the mean.
* Reported: NDCG@10 of what was served on held-out queries per window of `--window` searches,
  cumulative clicks and purchases, the share of the static-to-oracle gap closed in the last
  window, the worst window below static after the arm's first promoted ranker, the examination
  curve the loop estimated vs the simulator's true 1/r^eta, and for the exploring arm the
  NDCG@10 of its shuffled lists vs its ranker's own order (what exploring costs).

Protocol (browsing, Amazon Industrial & Scientific): the engine imports every user's training
sequence as views. A shopper wants their real held-out future (valid + test item; click
probability 0.9 when examined) and, less strongly, the `--browse-interest-size` items most like
each of those by TF-IDF cosine of the item text (0.2 when examined; a text model the engine does
not rank with); anything else gets a 0.01 noise click; an item once clicked is not clicked again.
Shoppers come and go (`arrival_schedule`: `--browse-active` around at a time, each for about
visits/users visits), so every stretch of the run mixes first and later visits alike and a trend
over the run is the system learning from everyone, not the same shoppers ageing. Learning feed:
clicks flow back (online state + item-kNN retrains every `--browse-retrain-every` visits) and
items a shopper was shown and passed over move down their next feed (impression fatigue);
non-learning feed: the same engine and model with neither (no clicks sent, fatigue off), serving
the same shoppers with the same random draws. Reported: clicks per feed view per window, first
and second half, the least-squares change over the run with a 95% CI per arm and for the lift,
wanted and interest clicks, over `--browse-seeds` seeds. The simulation is ours; its taste model
(real next items + text neighbours, no fatigue of interest) is an assumption, stated here.

    # the committed search results: seeds 0-2 and 3-5, side by side on the two cores
    python benchmarks/feedback_loop.py --data-dir ../shared/data --parts search --seed 0 \
        --out benchmarks/results/feedback_loop.json
    python benchmarks/feedback_loop.py --data-dir ../shared/data --parts search --seed 3 \
        --out benchmarks/results/feedback_loop_seeds_3_5.json
    # and the fresh seeds that checked them (6-8 with --jobs 1 next to another run, 9-11 --jobs 2)
    python benchmarks/feedback_loop.py --data-dir ../shared/data --parts search --seed 6 \
        --no-plots --out benchmarks/results/feedback_loop_seeds_6_8.json
    python benchmarks/feedback_loop.py --data-dir ../shared/data --parts search --seed 9 \
        --no-plots --jobs 2 --out benchmarks/results/feedback_loop_seeds_9_11.json
    # the twelve seeds as one table, with the mean and standard error the README quotes
    python benchmarks/feedback_loop.py --data-dir ../shared/data --pool \
        benchmarks/results/feedback_loop{,_seeds_3_5,_seeds_6_8,_seeds_9_11}.json \
        --out benchmarks/results/feedback_loop_pooled.json
    # the home feed
    python benchmarks/feedback_loop.py --data-dir ../shared/data --parts browse \
        --out benchmarks/results/feedback_loop_browse.json
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np
from results_io import write_results  # a sibling module: benchmarks run as scripts, this folder on sys.path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from shoploop.data.datasets import load_amazon_scientific, read_homedepot, read_unisrec
from shoploop.data.ingest import import_records
from shoploop.domain import Product
from shoploop.engine import EngineConfig, RecommenderSettings, ServingSettings, build_engine
from shoploop.evaluation.simulator import (
    BrowsingShopperConfig,
    BrowsingShoppers,
    SearchShopperConfig,
    SearchShoppers,
    SimulatedClock,
    arrival_schedule,
    text_neighbourhoods,
)
from shoploop.feedback.exploration import ExplorationConfig
from shoploop.feedback.gate import GateConfig
from shoploop.feedback.ltr import RankerConfig
from shoploop.feedback.online import DCG_EXAMINATION, OnlineConfig
from shoploop.feedback.retrain import RetrainConfig, RetrainLoop
from shoploop.retrieval.config import HybridConfig
from shoploop.text.encoder import EncoderConfig

ROOT = Path(__file__).resolve().parents[1]
ARMS = ("static", "naive", "ipw_only", "corrected", "oracle")
LEARNED = ("naive", "ipw_only", "corrected")


def say(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


EVIDENCE_MONOTONE = (
    ("item_impressions_log", -1),
    ("item_clicks_log", 1),
    ("item_ctr", 1),
    ("item_purchases_log", 1),
    ("query_impressions_log", -1),
    ("query_clicks_log", 1),
    ("query_ctr", 1),
    ("query_ctr_excess", 1),
)
RETRIEVAL_MONOTONE = (("fused", 1), ("bm25", 1), ("dense", 1), ("bm25_rank_log", -1), ("matched_terms", 1))
MONOTONE_SETS = {
    "none": (),
    "evidence": EVIDENCE_MONOTONE,
    "evidence+retrieval": EVIDENCE_MONOTONE + RETRIEVAL_MONOTONE,
}


def add_world_arguments(p: argparse.ArgumentParser) -> None:
    """The flags `search_world` reads (shared by the benchmarks that build the same world)."""
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--queries", type=int, default=1000)
    p.add_argument("--train-frac", type=float, default=0.5)
    p.add_argument("--distractors", type=int, default=10_000)


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument(
        "--data-dir", type=Path, required=True, help="../shared/data (homedepot/, amazon-scientific/)"
    )
    p.add_argument("--searches", type=int, default=50_000)
    p.add_argument("--out", type=Path, required=True)
    add_world_arguments(p)
    p.add_argument("--retrain-every", type=int, default=5000)
    p.add_argument("--window", type=int, default=2500)
    p.add_argument("--eta", type=float, default=1.0)
    p.add_argument("--noise", type=float, default=0.02)
    p.add_argument("--browse-visits", type=int, default=40_000)
    p.add_argument("--browse-users", type=int, default=5000)
    p.add_argument(
        "--browse-burn-in",
        type=int,
        default=6000,
        help="visits served by the non-learning feed to both arms before learning starts (not counted)",
    )
    p.add_argument("--browse-retrain-every", type=int, default=5000)
    p.add_argument(
        "--browse-ranker-every",
        type=int,
        default=1000,
        help="the ranked arm's learned feed ranker (home_ranker) retrains every this many visits; "
        "0: no ranked arm",
    )
    p.add_argument(
        "--gate-metric",
        choices=("ndcg", "ips_dcg"),
        default=GateConfig.ranking_metric,
        help="what the search loops' promotion gate judges a candidate's order on besides the click "
        "estimate (GateConfig.ranking_metric)",
    )
    p.add_argument(
        "--browse-explore",
        type=float,
        default=0.0,
        help="exploration budget of the learning feeds (the non-learning feed never explores); the "
        "engine's default is 0.1, and the feed ranker's examination curve comes from it",
    )
    p.add_argument(
        "--browse-dense",
        action="store_true",
        help="build the engines' dense (MiniLM) index too: the learned feed ranker's 'similar to "
        "recently viewed' feature reads its text vectors (off: BM25 only, faster)",
    )
    p.add_argument(
        "--browse-ranker-min-lists",
        type=int,
        default=RetrainConfig.min_train_lists,
        help="clicked training feeds the feed ranker needs before it trains (RetrainConfig.min_train_lists)",
    )
    p.add_argument(
        "--browse-ranker-gate",
        choices=("on", "off"),
        default="on",
        help="off: promote every feed-ranker candidate (what serving it without the gate would do)",
    )
    p.add_argument(
        "--browse-interest-size",
        type=int,
        default=20,
        help="items like each real next item (TF-IDF neighbours) that a shopper also likes; 0: none",
    )
    p.add_argument("--browse-interest-click", type=float, default=0.2)
    p.add_argument(
        "--browse-appeal-sigma",
        type=float,
        default=0.0,
        help="items also differ in appeal to every shopper: click probability x a log-normal factor "
        "with this sigma (BrowsingShopperConfig.appeal_sigma); 0: taste only",
    )
    p.add_argument(
        "--browse-active", type=int, default=200, help="shoppers around at a time (they come and go)"
    )
    p.add_argument("--browse-seeds", type=int, default=3, help="browsing runs with seeds seed, seed+1, ...")
    p.add_argument(
        "--search-seeds",
        type=int,
        default=3,
        help="search runs with seeds seed, seed+1, ... (each a different query sample, split and shoppers)",
    )
    p.add_argument("--jobs", type=int, default=1, help="search seeds run in this many processes at once")
    p.add_argument(
        "--min-train-lists",
        type=int,
        default=2000,
        help="clicked training lists a retrain needs before it trains a candidate "
        f"(RetrainConfig.min_train_lists; library default {RetrainConfig.min_train_lists})",
    )
    # Corrected arm's exploration: 20% for a new query, halved after 20 servings, floor 2%.
    p.add_argument("--explore-budget", type=float, default=0.2, help="corrected arm")
    p.add_argument("--explore-window", type=int, default=ExplorationConfig.window, help="corrected arm")
    p.add_argument(
        "--explore-max-promotion", type=int, default=ExplorationConfig.max_promotion, help="corrected arm"
    )
    p.add_argument(
        "--explore-half-servings",
        type=float,
        default=20.0,
        help="corrected arm: a query's budget halves after this many servings (0: flat budget)",
    )
    p.add_argument("--explore-min-budget", type=float, default=0.02, help="corrected arm")
    p.add_argument(
        "--explore-probe-share",
        type=float,
        default=ExplorationConfig.probe_share,
        help="corrected arm: share of exploring lists that probe the item at --explore-probe-rank "
        "at --explore-probe-slot instead of shuffling",
    )
    p.add_argument(
        "--explore-probe-slot", type=int, default=ExplorationConfig.probe_slot, help="corrected arm"
    )
    p.add_argument(
        "--explore-probe-rank", type=int, default=ExplorationConfig.probe_rank, help="corrected arm"
    )
    p.add_argument(
        "--ctr-lift",
        type=float,
        default=ServingSettings.query_ctr_weight,
        help="learning arms: the engine's real-time lift from a query's click-through, serving until "
        "a ranker is promoted (ServingSettings.query_ctr_weight; "
        f"engine default {ServingSettings.query_ctr_weight})",
    )
    p.add_argument(
        "--ranker-max-promotion",
        type=int,
        default=None,
        help="learning arms: places a learned ranker may move an item above the heuristic order "
        "(ServingSettings.ranker_max_promotion; default: unbounded)",
    )
    p.add_argument(
        "--ranker-monotone",
        choices=sorted(MONOTONE_SETS),
        default="none",
        help="learning arms: monotone constraints on the ranker (evidence: click counters; "
        "evidence+retrieval: also retrieval scores and BM25 rank)",
    )
    p.add_argument(
        "--ranker-bags",
        type=int,
        default=RankerConfig.bags,
        help="learning arms: boosters averaged per retrain (RankerConfig.bags)",
    )
    p.add_argument("--img-dir", type=Path, default=ROOT / "docs" / "img")
    p.add_argument("--md", type=Path, default=None, help="Markdown summary (default: --out with .md)")
    p.add_argument("--no-plots", action="store_true")
    p.add_argument(
        "--pool",
        type=Path,
        nargs="+",
        default=None,
        help="run nothing: pool the search seeds of these result files (same settings) into --out",
    )
    p.add_argument(
        "--parts",
        default="search,browse",
        help="comma-separated parts to run: search (Home Depot loop), browse (home-feed simulation)",
    )
    return p.parse_args(argv)


# ---------------------------------------------------------------------------- search
def search_world(
    args: argparse.Namespace,
) -> tuple[list[Product], dict[str, dict[str, float]], list[str], set[str]]:
    products, judg = read_homedepot(args.data_dir / "homedepot")
    stats = judg.groupby("search_term").relevance.agg(["size", "max", "min"])
    eligible = stats[(stats["size"] >= 3) & (stats["max"] >= 2.5) & (stats["max"] - stats["min"] >= 0.66)]
    rng = np.random.default_rng(args.seed)
    names = sorted(eligible.index.tolist())
    queries = [str(q) for q in rng.choice(names, size=min(args.queries, len(names)), replace=False)]
    train = set(rng.choice(queries, size=int(len(queries) * args.train_frac), replace=False).tolist())
    sub = judg[judg.search_term.isin(queries)]
    judgments = {
        str(q): {str(i): float(r) for i, r in zip(d.product_uid, d.relevance, strict=True)}
        for q, d in sub.groupby("search_term")
    }
    judged = set(sub.product_uid)
    rest = products[~products.product_uid.isin(judged)]
    extra = rest.sample(min(args.distractors, len(rest)), random_state=args.seed)
    catalog = products[products.product_uid.isin(judged)]
    rows = list(zip(catalog.product_uid, catalog.product_title, strict=True)) + list(
        zip(extra.product_uid, extra.product_title, strict=True)
    )
    prods = [Product(item_id=str(u), title=str(t).strip() or str(u)) for u, t in rows if str(u).strip()]
    return prods, judgments, queries, train


def make_search_engine(
    products: list[Product],
    clock: SimulatedClock,
    *,
    explore: ExplorationConfig | None = None,
    debias: bool = False,
    ctr_lift: float = 0.0,
    max_promotion: int | None = None,
    dense: bool = False,
    embedding_cache_dir: Path | None = None,
    encoder_path: str | None = None,
    serving: dict[str, Any] | None = None,
) -> Any:
    """debias: CTR features over expected examinations (a DCG prior until the loop's own curve).
    ctr_lift: `ServingSettings.query_ctr_weight`, the engine's real-time lift from a query's
    click-through, which serves until a learned ranker is promoted (0 for the static arm).
    dense: hybrid retrieval with the dense retriever too (the loop runs BM25-only, for speed).
    encoder_path: the dense encoder (None = packaged MiniLM); serving: more `ServingSettings`."""
    config = EngineConfig(
        online=OnlineConfig(examination=DCG_EXAMINATION if debias else None),
        search=HybridConfig(
            use_dense=dense,
            embedding_cache_dir=str(embedding_cache_dir) if embedding_cache_dir else None,
            encoder=EncoderConfig(model_path=encoder_path),
        ),
        recommender=RecommenderSettings(kind="popularity"),
        # No personalisation in any arm (the shoppers have no tastes); the static arm has no CTR
        # lift either: pure hybrid retrieval.
        serving=ServingSettings(
            personalization_weight=0.0,
            query_ctr_weight=ctr_lift,
            ranker_max_promotion=max_promotion,
            **(serving or {}),
        ),
        exploration=explore or ExplorationConfig(budget=0.0),
    )
    engine = build_engine(config)
    engine.clock = clock
    import_records(products, [], engine.stores, source="feedback-benchmark", progress=False)
    return engine.start(progress=lambda m: None)


def run_search(args: argparse.Namespace) -> dict[str, Any]:
    started = time.perf_counter()
    products, judgments, queries, train = search_world(args)
    held = [q for q in queries if q not in train]
    say(
        f"search world: {len(products)} products, {len(queries)} queries "
        f"({len(train)} train / {len(held)} held out)"
    )
    explore = ExplorationConfig(
        budget=args.explore_budget,
        window=args.explore_window,
        max_promotion=args.explore_max_promotion,
        budget_half_servings=args.explore_half_servings,
        min_budget=args.explore_min_budget,
        probe_share=args.explore_probe_share,
        probe_slot=args.explore_probe_slot,
        probe_rank=args.explore_probe_rank,
    )
    # One simulated clock for every engine and the shoppers: the same seed replays the same run.
    clock = SimulatedClock()
    learning: dict[str, Any] = {"ctr_lift": args.ctr_lift, "max_promotion": args.ranker_max_promotion}
    engines = {
        "static": make_search_engine(products, clock),
        "naive": make_search_engine(products, clock, **learning),
        "ipw_only": make_search_engine(products, clock, debias=True, **learning),
        "corrected": make_search_engine(products, clock, explore=explore, debias=True, **learning),
    }
    say(f"engines ready in {time.perf_counter() - started:.0f}s")
    shoppers = SearchShoppers(judgments, SearchShopperConfig(eta=args.eta, noise=args.noise), clock=clock)
    ranker = RankerConfig(
        n_estimators=200,
        early_stopping_rounds=20,
        monotone=MONOTONE_SETS[args.ranker_monotone],
        bags=args.ranker_bags,
    )
    gate = GateConfig(min_lists=30, ranking_metric=args.gate_metric)

    def include(lst: Any) -> bool:
        return lst.query in train

    corrections = {"naive": "none", "ipw_only": "ipw", "corrected": "ipw"}
    loops = {
        arm: RetrainLoop(
            engines[arm],
            RetrainConfig(correction=c, ranker=ranker, gate=gate, min_train_lists=args.min_train_lists),
            include=include,
            say=say,
        )
        for arm, c in corrections.items()
    }
    static_cache: dict[str, list[str]] = {}
    oracle_cache: dict[str, list[str]] = {}
    rng = np.random.default_rng(args.seed + 1)
    n = args.searches
    rec = {
        arm: {
            "ndcg": np.full(n, np.nan),
            "clicks": np.zeros(n),
            "buys": np.zeros(n),
            "explored": np.zeros(n, bool),
        }
        for arm in ARMS
    }
    is_held = np.zeros(n, dtype=bool)
    first_promoted: dict[str, int | None] = dict.fromkeys(LEARNED)
    retrains: dict[str, list[dict[str, Any]]] = {a: [] for a in LEARNED}
    t_last = time.perf_counter()
    for step in range(n):
        q = queries[int(rng.integers(len(queries)))]
        user = f"shopper-{int(rng.integers(5000))}"
        is_held[step] = q not in train
        # static: one engine call per query (deterministic), then reused
        if q not in static_cache:
            static_cache[q] = [i.item_id for i in engines["static"].search(q, k=10).items]
            pool = [h.item_id for h in engines["static"].searcher.search(q, k=50).items]
            oracle_cache[q] = shoppers.oracle(q, pool)[:10]
        for arm in ARMS:
            crn = np.random.default_rng([args.seed, step])  # same shopper in every arm
            if arm in ("static", "oracle"):
                items = static_cache[q] if arm == "static" else oracle_cache[q]
                _, clicks, buys = shoppers.react(q, items, crn)
                ndcg = shoppers.ndcg(q, items)
            else:
                out = shoppers.search(engines[arm], q, user, crn)
                clicks, buys, ndcg = out.clicks, out.purchases, out.ndcg10
                rec[arm]["explored"][step] = out.explored
            rec[arm]["ndcg"][step] = ndcg
            rec[arm]["clicks"][step] = clicks.sum()
            rec[arm]["buys"][step] = buys.sum()
        # Warm-up schedule: retrain early (1,000 and 2,500 searches) so the loop starts learning
        # soon, then every --retrain-every searches (each retrain replays the whole log).
        if (step + 1) in (1000, 2500) or (step + 1) % args.retrain_every == 0:
            for arm, loop in loops.items():
                report = loop.run_once()
                entry = {
                    "after_searches": step + 1,
                    "version": report.version,
                    "promoted": report.promoted,
                    "reason": report.reason,
                    "seconds": round(report.seconds, 1),
                    "train_lists": report.train_lists,
                    "curve": report.curve,
                    "harvested_curve": report.harvested_curve,
                    "gate": report.metrics,
                }
                retrains[arm].append(entry)
                if report.promoted and first_promoted[arm] is None:
                    first_promoted[arm] = step + 1
        if (step + 1) % 500 == 0:
            rate = 500 / (time.perf_counter() - t_last)
            t_last = time.perf_counter()
            lo = max(0, step + 1 - args.window)
            m = {a: np.nanmean(rec[a]["ndcg"][lo : step + 1][is_held[lo : step + 1]]) for a in ARMS}
            say(
                f"search {step + 1}/{n} ({rate:.1f}/s, ETA {(n - step - 1) / max(rate, 1e-9) / 60:.0f} min) "
                + " ".join(f"{a}={v:.4f}" for a, v in m.items())
            )
    return summarise_search(args, rec, is_held, first_promoted, retrains, time.perf_counter() - started)


def summarise_search(
    args: argparse.Namespace,
    rec: dict[str, dict[str, np.ndarray]],
    is_held: np.ndarray,
    first_promoted: dict[str, int | None],
    retrains: dict[str, list[dict[str, Any]]],
    seconds: float,
) -> dict[str, Any]:
    n = len(is_held)
    w = args.window
    edges = list(range(0, n, w))
    windows = []
    for lo in edges:
        hi = min(n, lo + w)
        mask = is_held[lo:hi]
        windows.append(
            {
                "end": hi,
                **{a: float(np.nanmean(rec[a]["ndcg"][lo:hi][mask])) if mask.any() else None for a in ARMS},
            }
        )
    last = windows[-1]
    lo_last = edges[-1]
    gap = (last["oracle"] or 0) - (last["static"] or 0)
    result: dict[str, Any] = {
        "windows_heldout_ndcg10": windows,
        "final_window": last,
        "gap_closed": {
            a: ((last[a] - last["static"]) / gap if gap > 0 and last[a] is not None else None)
            for a in LEARNED
        },
        "cumulative": {
            a: {"clicks": int(rec[a]["clicks"].sum()), "purchases": int(rec[a]["buys"].sum())} for a in ARMS
        },
        "first_promoted_after": first_promoted,
        # Area under the learning curve: mean held-out NDCG@10 over the windows after 2,500 searches
        # (when both loops have had their first retrain), the same windows for every arm.
        "mean_after_2500": {
            a: float(np.mean([win[a] for win in windows if win["end"] > 2500 and win[a] is not None]))
            if any(win["end"] > 2500 for win in windows)
            else None
            for a in ARMS
        },
        "worst_dip_vs_static_after_first_retrain": {},
        # What exploring costs and what the ranker alone serves: the corrected arm's held-out
        # lists in the last window, split by whether the engine shuffled them.
        "exploration_split_last_window": {
            a: {
                "explored_share": float(rec[a]["explored"][lo_last:][is_held[lo_last:]].mean()),
                "ndcg10_explored": _nanmean(
                    rec[a]["ndcg"][lo_last:][is_held[lo_last:] & rec[a]["explored"][lo_last:]]
                ),
                "ndcg10_ranker_order": _nanmean(
                    rec[a]["ndcg"][lo_last:][is_held[lo_last:] & ~rec[a]["explored"][lo_last:]]
                ),
            }
            for a in LEARNED
            if rec[a]["explored"].any()
        },
        "retrains": retrains,
        # Each learned arm's examination curve after its last retrain (also in `retrains`; kept
        # here so the per-seed summary carries it).
        "final_curves": {
            a: next((r["curve"] for r in reversed(retrains[a]) if r["curve"]), None) for a in LEARNED
        },
        "true_examination": [round(k**-args.eta, 5) for k in range(1, 11)],
        "seconds": round(seconds, 1),
    }
    for a in LEARNED:
        start = first_promoted[a]
        rel = [
            (win[a] - win["static"]) / win["static"]
            for win in windows
            if start is not None and win["end"] - w >= start and win[a] is not None and win["static"]
        ]
        result["worst_dip_vs_static_after_first_retrain"][a] = float(min(rel)) if rel else None
    return result


def _nanmean(values: np.ndarray) -> float | None:
    return float(np.nanmean(values)) if np.isfinite(values).any() else None


# ---------------------------------------------------------------------------- browsing
def run_browse(args: argparse.Namespace) -> dict[str, Any]:
    started = time.perf_counter()
    directory = args.data_dir / "amazon-scientific"
    split = read_unisrec(directory)
    bundle = load_amazon_scientific(directory)
    assert split.item_ids is not None
    rng = np.random.default_rng(args.seed + 2)
    aligned = len(split.valid_target) == len(split.test_target) == len(split.train)
    if not aligned:
        raise SystemExit("amazon-scientific split is not aligned per user")
    users = rng.choice(len(split.train), size=min(args.browse_users, len(split.train)), replace=False)
    futures = {
        f"sci-{u}": [split.item_ids[split.valid_target[u]], split.item_ids[split.test_target[u]]]
        for u in users
    }
    config = EngineConfig(
        search=HybridConfig(use_dense=args.browse_dense),
        recommender=RecommenderSettings(kind="item_knn"),
        exploration=ExplorationConfig(budget=0.0),
    )
    # The non-learning feed ignores feedback of every kind: no clicks flow back, and it does
    # not discount items a shopper was shown and passed over (that is feedback too).
    frozen = replace(config, serving=replace(config.serving, fatigue_rank_step=0.0))
    config = replace(config, exploration=ExplorationConfig(budget=args.browse_explore))
    engines = {}
    ranked = args.browse_ranker_every > 0
    arms = ("learning", "ranked", "frozen") if ranked else ("learning", "frozen")
    # One simulated clock per arm, read by its engine and its shoppers: an arm's times (which
    # the online state's decay and the feed's fatigue read) do not depend on what other arms
    # run beside it, so adding an arm leaves the others' runs exactly as they were.
    clocks = {arm: SimulatedClock() for arm in arms}
    for arm in arms:
        eng = build_engine(frozen if arm == "frozen" else config)
        eng.clock = clocks[arm]
        import_records(bundle.products, bundle.events, eng.stores, source="sci", progress=False)
        engines[arm] = eng.start(progress=lambda m: None)
    say(f"browse engines ready in {time.perf_counter() - started:.0f}s ({len(futures)} shoppers)")
    texts = {p.item_id: " ".join([p.title, *(p.category_path or ()), p.brand or ""]) for p in bundle.products}
    size = args.browse_interest_size
    interests = text_neighbourhoods(texts, futures, size) if size else {}
    shopper = BrowsingShopperConfig(
        interest_click=args.browse_interest_click, appeal_sigma=args.browse_appeal_sigma
    )
    sims = {arm: BrowsingShoppers(futures, shopper, interests, clock=clocks[arm]) for arm in engines}
    # The recommender retrains on the same schedule in both learning arms; the ranked arm also
    # learns a feed ranker from its own logged feeds (no search or category-page lists here).
    recommender_only = RetrainConfig(
        surfaces=(), browse_ranker=False, home_ranker=False, recommender_every_interactions=1
    )
    loops = {arm: RetrainLoop(engines[arm], recommender_only, say=say) for arm in engines if arm != "frozen"}
    ranker_only = RetrainConfig(
        surfaces=(), browse_ranker=False, home_ranker=True, min_train_lists=args.browse_ranker_min_lists
    )
    if args.browse_ranker_gate == "off":  # any loss allowed: every candidate with a clicked list goes live
        anything = GateConfig(ranking_metric="ips_dcg", dcg_tolerance=1.0, ctr_tolerance=1.0, min_lists=1)
        ranker_only = replace(ranker_only, surface_gate=anything)
    ranker_loop = RetrainLoop(engines["ranked"], ranker_only, say=say) if ranked else None
    learners = [arm for arm in engines if arm != "frozen"]
    n = args.browse_visits
    clicks = {arm: np.zeros(n) for arm in engines}
    targets = {arm: np.zeros(n) for arm in engines}
    liked = {arm: np.zeros(n) for arm in engines}
    burn = args.browse_burn_in
    schedule = arrival_schedule(list(futures), burn + n, rng, active=args.browse_active)
    # Burn-in: the store runs the non-learning feed until the shopper mix is steady (at the
    # start every shopper is new, which lifts both arms' CTR for a while). Both arms' shoppers
    # see the same lists with the same draws, so they leave the burn-in in the same state;
    # then the learning arm starts taking feedback.
    burn_clicks = np.zeros(burn)
    for step in range(burn):
        for sim in sims.values():
            crn = np.random.default_rng([args.seed, 11, step])
            burn_clicks[step] = sim.visit(engines["frozen"], schedule[step], crn, feedback=False).clicks.sum()
    if burn:
        say(f"browse burn-in: {burn} visits on the non-learning feed")
    retrains = []
    ranker_rounds: list[dict[str, Any]] = []
    first_promoted: int | None = None
    for step in range(n):
        user = schedule[burn + step]
        for arm, eng in engines.items():
            crn = np.random.default_rng([args.seed, 7, step])
            out = sims[arm].visit(eng, user, crn, feedback=(arm != "frozen"))
            clicks[arm][step] = out.clicks.sum()
            targets[arm][step] = out.target_clicks
            liked[arm][step] = out.interest_clicks
        if (step + 1) % args.browse_retrain_every == 0:
            reports = {arm: loops[arm].run_once() for arm in learners}
            retrains.append({"after_visits": step + 1, "recommender": reports["learning"].recommender})
        if ranker_loop is not None and (step + 1) % args.browse_ranker_every == 0:
            home = ranker_loop.run_once().home
            if home is not None:
                trained = (
                    engines["ranked"].stores.registry.get("home_ranker", home.version)
                    if home.version
                    else None
                )
                gains = trained.metrics.get("feature_importance", {}) if trained is not None else {}
                total = sum(gains.values()) or 1.0
                ranker_rounds.append(
                    {
                        "after_visits": step + 1,
                        "version": home.version,
                        "promoted": home.promoted,
                        "reason": home.reason,
                        "train_lists": home.train_lists,
                        "gate": home.metrics,
                        # what the candidate leaned on: each feature's share of the split gain
                        "gain_share": {k: round(v / total, 4) for k, v in gains.items() if v > 0},
                    }
                )
                if home.promoted and first_promoted is None:
                    first_promoted = step + 1
        if (step + 1) % 1000 == 0:
            lo = max(0, step + 1 - 2000)
            say(
                f"browse {step + 1}/{n}: clicks/view "
                + " ".join(f"{arm}={clicks[arm][lo : step + 1].mean():.4f}" for arm in engines)
            )
    w = max(1, n // 10)
    windows = [
        {
            "end": min(n, lo + w),
            **{arm: float(clicks[arm][lo : lo + w].mean()) for arm in engines},
            **{f"{arm}_wanted": float(targets[arm][lo : lo + w].mean()) for arm in engines},
        }
        for lo in range(0, n, w)
    ]
    final = windows[-1]
    half = {arm: float(clicks[arm][n // 2 :].mean()) for arm in engines}
    first_half = {arm: float(clicks[arm][: n // 2].mean()) for arm in engines}
    return {
        "seed": args.seed,
        "windows_clicks_per_view": windows,
        "final_ratio": final["learning"] / final["frozen"] if final["frozen"] else None,
        # The last window holds only n/10 visits (a few dozen clicks): the second half of the
        # run is the steadier comparison.
        "second_half_ratio": half["learning"] / half["frozen"] if half["frozen"] else None,
        # CTR of the non-learning feed in the burn-in's second half: where both arms start from.
        "before_learning_clicks_per_view": float(burn_clicks[burn // 2 :].mean()) if burn else None,
        "burn_in_visits": burn,
        # the burn-in's clicks per view in windows of the same size (both arms alike), for the plot
        "burn_in_windows": [float(burn_clicks[lo : lo + w].mean()) for lo in range(0, burn - w + 1, w)],
        "first_half_clicks_per_view": first_half,
        "second_half_clicks_per_view": half,
        # Does the CTR rise over the run? Least-squares slope of clicks per visit against the
        # run's progress (0 -> 1), i.e. the fitted change from start to end, with a 95% CI.
        "trend": {arm: linear_trend(clicks[arm]) for arm in engines},
        "lift_trend": linear_trend(clicks["learning"] - clicks["frozen"]),
        "total_clicks": {arm: int(clicks[arm].sum()) for arm in engines},
        "wanted_clicks": {arm: int(targets[arm].sum()) for arm in engines},
        "interest_clicks": {arm: int(liked[arm].sum()) for arm in engines},
        "interest_size_mean": float(np.mean([len(v) for v in interests.values()])) if interests else 0.0,
        "retrains": retrains,
        **(_ranked_summary(clicks, n, ranker_rounds, first_promoted, args) if ranked else {}),
        "seconds": round(time.perf_counter() - started, 1),
    }


def _ranked_summary(
    clicks: dict[str, np.ndarray],
    n: int,
    rounds: list[dict[str, Any]],
    first_promoted: int | None,
    args: argparse.Namespace,
) -> dict[str, Any]:
    """The ranked arm against the learning feed it adds a learned ranker to: the second half's
    clicks per view with a paired 95% CI (same shoppers and draws in both arms)."""
    diff = clicks["ranked"][n // 2 :] - clicks["learning"][n // 2 :]
    half = 1.96 * float(diff.std(ddof=1) / np.sqrt(len(diff))) if len(diff) > 1 else float("nan")
    mean = float(diff.mean()) if len(diff) else float("nan")
    return {
        "ranked_minus_learning_second_half": {"mean": mean, "ci_low": mean - half, "ci_high": mean + half},
        "home_ranker_rounds": rounds,
        "home_ranker_every": args.browse_ranker_every,
        "home_ranker_gate": args.browse_ranker_gate,
        "home_ranker_first_promoted_after": first_promoted,
    }


def _fmt_diff(d: dict[str, float]) -> str:
    return f"{d['mean']:+.4f} [{d['ci_low']:+.4f}, {d['ci_high']:+.4f}]"


def _ranked_lines(b: dict[str, Any]) -> list[str]:
    """What the learned feed ranker (the ranked arm) added to the learning feed."""
    if "ranked_minus_learning_second_half" not in b:
        return []
    half = b["second_half_clicks_per_view"]
    rounds = b["home_ranker_rounds"]
    promoted = [r["after_visits"] for r in rounds if r["promoted"]]
    return [
        f"With a learned feed ranker (`home_ranker`, retrained every {b['home_ranker_every']} visits "
        + ("behind the gate" if b.get("home_ranker_gate", "on") == "on" else "with the gate off")
        + f"; {len(promoted)} of {len(rounds)} rounds promoted, first after "
        f"{promoted[0] if promoted else 'none'} visits): second half {half['ranked']:.4f} clicks/view "
        f"vs the learning feed's {half['learning']:.4f}, difference "
        f"{_fmt_diff(b['ranked_minus_learning_second_half'])} (paired 95% CI); wanted clicks "
        f"{b['wanted_clicks']['ranked']}, interest clicks {b['interest_clicks']['ranked']}, all clicks "
        f"{b['total_clicks']['ranked']}.",
        "",
    ]


def linear_trend(y: np.ndarray) -> dict[str, float]:
    """OLS slope of y against t in [0, 1] (the fitted change over the run) with a 95% CI."""
    from scipy.stats import linregress

    fit = linregress(np.linspace(0.0, 1.0, len(y)), np.asarray(y, dtype=np.float64))
    slope, se = float(fit.slope), float(fit.stderr)
    return {"change": slope, "ci_low": slope - 1.96 * se, "ci_high": slope + 1.96 * se}


# ---------------------------------------------------------------------------- output
def plots(result: dict[str, Any], img_dir: Path) -> list[str]:
    img_dir.mkdir(parents=True, exist_ok=True)
    written: list[str] = []
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # pragma: no cover - SVG fallback
        plt = None
    search = result.get("search")
    browse = result.get("browse")
    if plt is None:
        from shoploop.evaluation.svgplot import line_chart

        if search:
            wins = search["windows_heldout_ndcg10"]
            xs = [w["end"] for w in wins]
            series = {a: [w[a] for w in wins] for a in ARMS}
            path = img_dir / "feedback_ndcg.svg"
            path.write_text(line_chart(xs, series, title="Held-out NDCG@10 of served lists"))
            written.append(str(path))
        if browse:
            wins = browse["windows_clicks_per_view"]
            before = browse.get("burn_in_windows") or []
            step = wins[0]["end"] if wins else 1
            # visits since learning started; the burn-in's windows (both arms alike) end at 0
            xs = [step * (i - len(before) + 1) for i in range(len(before))] + [w["end"] for w in wins]
            names = {
                "learning": "learning feed",
                "ranked": "+ feed ranker",
                "frozen": "non-learning feed",
            }
            series = {
                label: [*before, *(w[arm] for w in wins)]
                for arm, label in names.items()
                if wins and arm in wins[0]
            }
            path = img_dir / "feedback_home_ctr.svg"
            path.write_text(
                line_chart(
                    xs,
                    series,
                    title="Home feed clicks per view (burn-in, then learning)",
                    y_label="clicks/view",
                )
            )
            written.append(str(path))
        return written
    if search:
        wins = search["windows_heldout_ndcg10"]
        xs = [w["end"] for w in wins]
        fig, ax = plt.subplots(figsize=(7, 4))
        for a, style in zip(ARMS, ("-", "--", "-.", "-", ":"), strict=True):
            ax.plot(xs, [w[a] for w in wins], style, marker="o", ms=3, label=a)
        for a, color in (("naive", "C1"), ("corrected", "C2")):
            for r in search["retrains"][a]:
                if r["promoted"]:
                    ax.axvline(r["after_searches"], color=color, alpha=0.15, lw=1)
        ax.set_xlabel("simulated searches")
        ax.set_ylabel("NDCG@10 (held-out queries, per window)")
        ax.set_title("What shoppers were served: static vs learning loops vs oracle")
        ax.legend()
        ax.grid(alpha=0.3)
        fig.tight_layout()
        path = img_dir / "feedback_ndcg.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(str(path))
        last = [r for r in search["retrains"]["corrected"] if r["curve"]]
        if last:
            fig, ax = plt.subplots(figsize=(6, 3.5))
            k = np.arange(1, 11)
            ax.plot(k, search["true_examination"], "k--", label="true (simulator) 1/r^eta")
            curve = last[-1]["curve"]
            ax.plot(k, curve["theta"], "o-", label=f"corrected loop: {curve['method'].split(',')[0]}")
            if curve.get("raw"):
                ax.plot(k[: len(curve["raw"])], curve["raw"], "x", ms=8, label="per-slot IPS, unsmoothed")
            naive = [r for r in search["retrains"]["naive"] if r["curve"]]
            if naive:  # what EM makes of a learned ranker's logs without randomisation
                ax.plot(k, naive[-1]["curve"]["theta"], "s:", label="EM over the naive loop's logs")
            ax.set_xlabel("position")
            ax.set_ylabel("examination (relative to slot 1)")
            ax.set_title("Position bias estimated from the corrected loop's logs")
            ax.legend()
            ax.grid(alpha=0.3)
            fig.tight_layout()
            path = img_dir / "feedback_examination.png"
            fig.savefig(path, dpi=110)
            plt.close(fig)
            written.append(str(path))
    if browse:
        wins = browse["windows_clicks_per_view"]
        xs = [w["end"] for w in wins]
        step = xs[0] if xs else 1
        before = browse.get("burn_in_windows") or []
        bx = [step * (i - len(before) + 1) for i in range(len(before))]  # ends at 0: learning starts
        fig, ax = plt.subplots(figsize=(7, 4))
        for arm, style, label in (
            ("learning", "o-", "learning feed (clicks flow back)"),
            ("ranked", "^-", "learning feed + learned feed ranker"),
            ("frozen", "s--", "non-learning feed"),
        ):
            if wins and arm in wins[0]:
                ax.plot(bx + xs, before + [w[arm] for w in wins], style, label=label)
        if before:
            ax.axvline(0, color="grey", lw=1)
            ax.text(0, ax.get_ylim()[0], " learning starts", va="bottom", color="grey")
        ax.set_xlabel("home-feed visits (before 0: burn-in, both arms on the non-learning feed)")
        ax.set_ylabel("clicks per feed view")
        ax.set_title("Home feed on Amazon Industrial & Scientific shoppers")
        ax.legend()
        ax.grid(alpha=0.3)
        fig.tight_layout()
        path = img_dir / "feedback_home_ctr.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(str(path))
    return written


def _fmt_trend(tr: dict[str, float]) -> str:
    return f"{tr['change']:+.4f} [{tr['ci_low']:+.4f}, {tr['ci_high']:+.4f}]"


def search_seed_table(seeds: list[dict[str, Any]]) -> list[str]:
    """Per-seed gap closed and worst dip of the learned arms, and their means."""
    if len(seeds) < 2:
        return []
    head = " | ".join(f"{a} gap closed | {a} worst dip" for a in LEARNED)
    lines = [
        "Across seeds (each seed samples its own queries, train/held-out split and shoppers):",
        "",
        f"| seed | {head} |",
        "|---:|" + "---:|" * (2 * len(LEARNED)),
    ]
    for r in seeds:
        cells = []
        for a in LEARNED:
            gap, dip = r["gap_closed"].get(a), r["worst_dip_vs_static_after_first_retrain"].get(a)
            cells += ["" if gap is None else f"{gap:.1%}", "" if dip is None else f"{dip:+.2%}"]
        lines.append(f"| {r['seed']} | " + " | ".join(cells) + " |")
    means = []
    for a in LEARNED:
        gaps = [r["gap_closed"][a] for r in seeds if r["gap_closed"].get(a) is not None]
        dips = [
            r["worst_dip_vs_static_after_first_retrain"][a]
            for r in seeds
            if r["worst_dip_vs_static_after_first_retrain"].get(a) is not None
        ]
        means += [f"{np.mean(gaps):.1%}" if gaps else "", f"worst {min(dips):+.2%}" if dips else ""]
    lines += ["| mean | " + " | ".join(means) + " |", ""]
    return lines


def markdown(result: dict[str, Any]) -> str:
    lines = ["# Feedback loop benchmark", ""]
    s = result.get("search")
    if s:
        f = s["final_window"]
        lines += [
            "| arm | held-out NDCG@10 (last window) | mean after 2,500 | gap closed | worst dip vs static "
            "| clicks | purchases |",
            "|---|---|---|---|---|---|---|",
        ]
        for a in ARMS:
            gap = s["gap_closed"].get(a)
            dip = s["worst_dip_vs_static_after_first_retrain"].get(a)
            mean = s["mean_after_2500"].get(a)
            lines.append(
                f"| {a} | {f[a]:.4f} | {'' if mean is None else f'{mean:.4f}'} | "
                f"{'' if gap is None else f'{gap:.1%}'} | "
                f"{'' if dip is None else f'{dip:+.2%}'} | {s['cumulative'][a]['clicks']} | "
                f"{s['cumulative'][a]['purchases']} |"
            )
        lines.append("")
        lines += search_seed_table(result.get("search_seeds", []))
        for a, split in s.get("exploration_split_last_window", {}).items():
            if split["ndcg10_explored"] is None or split["ndcg10_ranker_order"] is None:
                continue
            lines += [
                f"{a}, last window: {split['explored_share']:.1%} of held-out lists were shuffled to explore "
                f"(NDCG@10 {split['ndcg10_explored']:.4f}); the ranker's own order scored "
                f"{split['ndcg10_ranker_order']:.4f}.",
                "",
            ]
    b = result.get("browse")
    if b:
        f = b["windows_clicks_per_view"][-1]
        lines += [
            f"Home feed clicks per view, last window: learning {f['learning']:.4f}, "
            f"non-learning {f['frozen']:.4f}, ratio {b['final_ratio']:.2f}x (target >= 1.2x)",
            "",
            *(
                [
                    f"Before learning starts (second half of the {b['burn_in_visits']}-visit burn-in, "
                    f"both arms on the non-learning feed): {b['before_learning_clicks_per_view']:.4f} "
                    "clicks/view.",
                    "",
                ]
                if b.get("before_learning_clicks_per_view") is not None
                else []
            ),
            f"Second half of the run: learning {b['second_half_clicks_per_view']['learning']:.4f}, "
            f"non-learning {b['second_half_clicks_per_view']['frozen']:.4f} clicks/view, ratio "
            f"{b['second_half_ratio']:.2f}x; first half {b['first_half_clicks_per_view']['learning']:.4f} "
            f"vs {b['first_half_clicks_per_view']['frozen']:.4f}.",
            "",
            "Change in clicks/view fitted over the run (least squares, start -> end, 95% CI): "
            + "; ".join(
                f"{name} {_fmt_trend(tr)}"
                for name, tr in (
                    ("learning", b["trend"]["learning"]),
                    ("non-learning", b["trend"]["frozen"]),
                    ("lift (learning - non-learning)", b["lift_trend"]),
                )
            )
            + ".",
            "",
            f"Clicks on items the shopper really wanted next: learning {b['wanted_clicks']['learning']}, "
            f"non-learning {b['wanted_clicks']['frozen']}; on items like them: learning "
            f"{b['interest_clicks']['learning']}, non-learning {b['interest_clicks']['frozen']}; all clicks: "
            f"learning {b['total_clicks']['learning']}, non-learning {b['total_clicks']['frozen']}.",
            "",
            *_ranked_lines(b),
            "| visits up to | clicks/view learning | non-learning | wanted/view learning | non-learning |"
            + (" clicks/view ranked | wanted/view ranked |" if "ranked" in f else ""),
            "|---:|---:|---:|---:|---:|" + ("---:|---:|" if "ranked" in f else ""),
            *(
                f"| {w['end']} | {w['learning']:.4f} | {w['frozen']:.4f} | "
                f"{w['learning_wanted']:.4f} | {w['frozen_wanted']:.4f} |"
                + (f" {w['ranked']:.4f} | {w['ranked_wanted']:.4f} |" if "ranked" in w else "")
                for w in b["windows_clicks_per_view"]
            ),
            "",
        ]
    seeds = result.get("browse_seeds") or []
    if len(seeds) > 1:
        lines += [
            "Across seeds (the same simulation with different shoppers and draws):",
            "",
            "| seed | last-window ratio | second-half ratio | learning CTR change over run (95% CI) "
            "| non-learning CTR change | wanted clicks learning / non-learning |",
            "|---:|---:|---:|---:|---:|---:|",
            *(
                f"| {r['seed']} | {r['final_ratio']:.2f}x | {r['second_half_ratio']:.2f}x | "
                f"{_fmt_trend(r['trend']['learning'])} | {_fmt_trend(r['trend']['frozen'])} | "
                f"{r['wanted_clicks']['learning']} / {r['wanted_clicks']['frozen']} |"
                for r in seeds
            ),
            "",
            f"Mean second-half ratio {np.mean([r['second_half_ratio'] for r in seeds]):.2f}x.",
            "",
        ]
        if all("ranked_minus_learning_second_half" in r for r in seeds):
            lines += [
                "The learned feed ranker (ranked - learning, second half, clicks/view, paired 95% CI): "
                + "; ".join(
                    f"seed {r['seed']} {_fmt_diff(r['ranked_minus_learning_second_half'])} "
                    f"(first promoted after {r['home_ranker_first_promoted_after'] or 'never'})"
                    for r in seeds
                )
                + ".",
                "",
            ]
    return "\n".join(lines)


SEED_SUMMARY = (
    "seed",
    "final_window",
    "gap_closed",
    "mean_after_2500",
    "worst_dip_vs_static_after_first_retrain",
    "first_promoted_after",
    "exploration_split_last_window",
    "windows_heldout_ndcg10",
    "final_curves",
)


# Arguments that may differ between result files that are pooled: where a run wrote, which seeds
# it ran and how many at once — none of them changes what one seed measures.
POOL_MAY_DIFFER = {"seed", "search_seeds", "jobs", "out", "md", "img_dir", "no_plots", "pool"}


def pool_results(paths: list[Path]) -> dict[str, Any]:
    """The search seeds of several result files as one result, with the mean and standard error
    of each learned arm's gap closed; refuses files run with other settings or repeating a seed."""
    loaded = [(path, json.loads(path.read_text())) for path in paths]
    first_path, first = loaded[0]
    settings = {k: v for k, v in first["args"].items() if k not in POOL_MAY_DIFFER}
    seeds: list[dict[str, Any]] = []
    for path, result in loaded:
        other = {k: v for k, v in result["args"].items() if k not in POOL_MAY_DIFFER}
        if differ := sorted(k for k in settings.keys() | other.keys() if settings.get(k) != other.get(k)):
            raise SystemExit(f"--pool: {path} was run with other settings than {first_path}: {differ}")
        for run in result.get("search_seeds", []):
            if any(run["seed"] == s["seed"] for s in seeds):
                raise SystemExit(f"--pool: seed {run['seed']} appears twice (again in {path})")
            seeds.append(run)
    if len(seeds) < 2:
        raise SystemExit("--pool: fewer than two search seeds in these files")
    pooled: dict[str, Any] = {}
    for arm in LEARNED:
        gaps = np.array([r["gap_closed"][arm] for r in seeds])
        pooled[arm] = {
            "n_seeds": len(gaps),
            "gap_closed_mean": float(gaps.mean()),
            "gap_closed_se": float(gaps.std(ddof=1) / np.sqrt(len(gaps))),
            "gap_closed_min": float(gaps.min()),
            "gap_closed_max": float(gaps.max()),
            "worst_dip": float(min(r["worst_dip_vs_static_after_first_retrain"][arm] for r in seeds)),
        }
    margins = [r["gap_closed"]["corrected"] - r["gap_closed"]["naive"] for r in seeds]
    pooled["corrected_ahead_of_naive_in"] = int(sum(m > 0 for m in margins))
    pooled["corrected_smallest_margin_over_naive"] = float(min(margins))
    return {
        "args": first["args"],
        "pooled_from": [str(p) for p in paths],
        "search_seeds": seeds,
        "pooled": pooled,
    }


def pooled_markdown(result: dict[str, Any]) -> str:
    pooled = result["pooled"]
    lines = [
        "# Feedback loop benchmark — seeds pooled",
        "",
        "Pooled from: " + ", ".join(f"`{Path(p).name}`" for p in result["pooled_from"]) + ".",
        "",
        *search_seed_table(result["search_seeds"]),
        "| arm | seeds | gap closed, mean | standard error (points) | range | worst dip vs static |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for arm in LEARNED:
        a = pooled[arm]
        lines.append(
            f"| {arm} | {a['n_seeds']} | {a['gap_closed_mean']:.1%} | {100 * a['gap_closed_se']:.1f} | "
            f"{a['gap_closed_min']:.1%} to {a['gap_closed_max']:.1%} | {a['worst_dip']:+.2%} |"
        )
    lines += [
        "",
        f"corrected ahead of naive in {pooled['corrected_ahead_of_naive_in']} of "
        f"{pooled['corrected']['n_seeds']} seeds (smallest margin "
        f"{pooled['corrected_smallest_margin_over_naive']:+.1%}).",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse(argv)
    if args.pool:
        result = pool_results(args.pool)
        write_results(args.out, result, pooled_markdown(result), args.md)
        print(pooled_markdown(result))
        return result
    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("bm25s").setLevel(logging.WARNING)
    result: dict[str, Any] = {"args": {k: str(v) for k, v in vars(args).items()}}
    parts = {part.strip() for part in args.parts.split(",") if part.strip()}
    if unknown := parts - {"search", "browse"}:
        raise SystemExit(f"--parts: unknown part(s) {sorted(unknown)}; use search and/or browse")
    if "search" in parts:
        seeds = [
            argparse.Namespace(**{**vars(args), "seed": args.seed + i}) for i in range(args.search_seeds)
        ]
        # Each seed is independent and, on the simulated clock, gives the same result however
        # many run at once, so they may share the cores.
        if args.jobs > 1 and len(seeds) > 1:
            # fork: workers inherit the loaded module, so a benchmark loaded from its path (the
            # smoke test) works too; newer Pythons default to forkserver, which re-imports by name.
            with ProcessPoolExecutor(max_workers=args.jobs, mp_context=get_context("fork")) as pool:
                runs = list(pool.map(run_search, seeds))
        else:
            runs = [run_search(a) for a in seeds]
        for a, run in zip(seeds, runs, strict=True):
            run["seed"] = a.seed
        result["search"] = runs[0]
        result["search_seeds"] = [{key: run[key] for key in SEED_SUMMARY} for run in runs]
    if "browse" in parts and args.browse_visits > 0:
        runs = [
            run_browse(argparse.Namespace(**{**vars(args), "seed": args.seed + i}))
            for i in range(args.browse_seeds)
        ]
        keep = (
            "seed",
            "final_ratio",
            "second_half_ratio",
            "before_learning_clicks_per_view",
            "first_half_clicks_per_view",
            "second_half_clicks_per_view",
            "trend",
            "lift_trend",
            "wanted_clicks",
            "total_clicks",
            "interest_clicks",
            "ranked_minus_learning_second_half",
            "home_ranker_first_promoted_after",
        )
        result["browse"] = runs[0]
        result["browse_seeds"] = [{key: run[key] for key in keep if key in run} for run in runs]
    if not args.no_plots:
        result["plots"] = plots(result, args.img_dir)
    write_results(args.out, result, markdown(result), args.md)
    print(markdown(result))
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
    sys.exit(0)
