"""Does fine-tuning search's text encoder on shoppers' clicks help? `Engine.train("bi_encoder")`.

Question: a shop's dense retrieval starts from the packaged MiniLM, which never saw its queries.
After some traffic, the engine fine-tunes the encoder on clicked searches and registers the
re-encoded index as a search candidate. Does that candidate find better products for queries
nobody searched during the traffic, and what does it cost?

Protocol (semi-synthetic, the world of feedback_loop.py: `search_world` with the same flags):
* World: `--queries` judged Home Depot queries (at least 3 judged products, one >= 2.5, a grade
  spread), split query-disjointly (`--train-frac`); catalog = their judged products plus
  `--distractors` random other products. Unjudged (query, product) pairs count as grade 1.
* Traffic: `--searches` shoppers search the TRAINING queries only (uniformly) through one engine
  serving hybrid retrieval (BM25 + packaged MiniLM, default fusion; no personalisation, no
  click-through lift, no exploration). Shoppers (`SearchShoppers`) examine slot r with
  probability 1/r^eta, click with a probability rising with the true grade, buy sometimes; the
  events go back through `Engine.ingest_events`.
* Fine-tune: `Engine.train("bi_encoder")` with `--minutes` of training: positives are clicked /
  carted / bought products of each query, hard negatives the products shown above a click and
  skipped (skip-above); early stopping on a query-disjoint split of the clicked queries.
* With `--gate`: the steps of `Engine.train_gated("bi_encoder")` instead — the candidate trains on
  all but the newest 20% of clicked searches, which the replay gate (`feedback.search_gate`)
  replays through the active index and the candidate in both modes: re-ordering each list's
  shown products (the default) and searching the whole catalog — each with clicks at face value
  (this engine serves without exploration, so it has no examination curve) and weighted by the
  shoppers' true examination curve (what exploration would have measured). The result records
  every verdict next to the judged outcome below, so each can be checked against the truth
  (benchmarks/results/click_finetune_gated.md).
* Evaluation, side by side: the baseline (the active index: packaged MiniLM) and the candidate
  (swapped in for the evaluation only) on the HELD-OUT queries — NDCG@10 (gain = grade - 1, ideal
  over all judged products of the query) of what the engine serves (hybrid) and of dense
  retrieval alone — and the same on the training queries, to show how much of a gain is fitting
  the traffic it saw. Costs: training and re-encoding seconds, pairs used, engine search p50/p99.

Run (by hand, ~10 min on 2 cores with cached product vectors):
    python benchmarks/click_finetune.py --data-dir ../shared/data \\
        --out benchmarks/results/click_finetune.json
    python benchmarks/click_finetune.py --data-dir ../shared/data --gate \\
        --out benchmarks/results/click_finetune_gated.json
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from feedback_loop import add_world_arguments, make_search_engine, search_world  # noqa: E402
from results_io import write_results  # noqa: E402
from search_relevance import searcher_fns  # noqa: E402  (dense retrieval alone, as that benchmark ranks it)

from shoploop.engine.finetune_gate import held_out_searches, judge_candidate  # noqa: E402
from shoploop.evaluation.ope import bootstrap_ci  # noqa: E402
from shoploop.evaluation.simulator import SearchShopperConfig, SearchShoppers, SimulatedClock  # noqa: E402
from shoploop.feedback.click_models import ExaminationCurve  # noqa: E402
from shoploop.feedback.search_gate import SearchGateConfig  # noqa: E402

REPLAY_MODES = ("shown", "catalog")


def say(msg: str) -> None:
    print(f"[click_finetune {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data-dir", type=Path, required=True, help="folder holding homedepot/")
    p.add_argument("--out", type=Path, required=True)
    add_world_arguments(p)
    p.add_argument("--searches", type=int, default=20_000)
    p.add_argument("--eta", type=float, default=1.0)
    p.add_argument("--noise", type=float, default=0.02)
    p.add_argument("--minutes", type=float, default=8.0, help="bi-encoder training budget")
    p.add_argument("--min-pairs", type=int, default=200, help="clicked pairs needed before training")
    p.add_argument(
        "--gate",
        action="store_true",
        help="train through Engine.train_gated (all but the newest 20%% of clicked searches) and "
        "report the replay gate's decision next to the judged outcome",
    )
    p.add_argument("--gate-min-lists", type=int, default=30, help="held-out clicked searches the gate needs")
    p.add_argument("--cache-dir", type=Path, default=ROOT / "var" / "cache" / "embeddings")
    p.add_argument("--encoder-path", default=None, help=argparse.SUPPRESS)  # smoke test: a tiny model
    return p.parse_args(argv)


def evaluate(engine: Any, shoppers: SearchShoppers, queries: list[str]) -> dict[str, Any]:
    """NDCG@10 of the engine's lists and of dense retrieval alone, and the engine's latency."""
    served, dense, latency = [], [], []
    dense_rank, _ = searcher_fns(engine.searcher, mode="dense", k=10)
    for q in queries:
        t = time.perf_counter()
        items = [i.item_id for i in engine.search(q, k=10).items]
        latency.append((time.perf_counter() - t) * 1e3)
        served.append(shoppers.ndcg(q, items))
        dense.append(shoppers.ndcg(q, dense_rank(q)))
    return {
        "ndcg10_served": float(np.nanmean(served)),
        "ndcg10_dense": float(np.nanmean(dense)),
        "n_queries": len(queries),
        "search_p50_ms": round(float(np.percentile(latency, 50)), 2),
        "search_p99_ms": round(float(np.percentile(latency, 99)), 2),
        "per_query_served": served,
    }


def paired_ci(a: list[float], b: list[float], seed: int, n_boot: int = 2000) -> list[float]:
    """95% bootstrap interval of mean(b - a) over queries (the same queries in both)."""
    d = np.asarray(b, float) - np.asarray(a, float)
    d = d[~np.isnan(d)]
    if not d.size:
        return [float("nan"), float("nan")]
    ci = bootstrap_ci(lambda cols: float(cols["diff"].mean()), {"diff": d}, n_boot=n_boot, seed=seed)
    return [ci.low, ci.high]


def run(args: argparse.Namespace) -> dict[str, Any]:
    started = time.perf_counter()
    products, judgments, queries, train = search_world(args)
    train_q = sorted(train)
    held = sorted(q for q in queries if q not in train)
    say(f"world: {len(products)} products, {len(train_q)} training / {len(held)} held-out queries")
    clock = SimulatedClock()
    engine = make_search_engine(
        products,
        clock,
        dense=True,
        embedding_cache_dir=args.cache_dir,
        encoder_path=args.encoder_path,
        serving={"bi_encoder_minutes": args.minutes, "bi_encoder_min_pairs": args.min_pairs},
    )
    shoppers = SearchShoppers(judgments, SearchShopperConfig(eta=args.eta, noise=args.noise), clock=clock)
    say(f"engine ready in {time.perf_counter() - started:.0f}s")

    rng = np.random.default_rng(args.seed + 1)
    clicks = buys = 0
    t0 = time.perf_counter()
    for step in range(args.searches):
        q = train_q[int(rng.integers(len(train_q)))]
        user = f"shopper-{int(rng.integers(5000))}"
        out = shoppers.search(engine, q, user, np.random.default_rng([args.seed, step]))
        clicks += int(out.clicks.sum())
        buys += int(out.purchases.sum())
        if (step + 1) % 2000 == 0 or step + 1 == args.searches:
            rate = (step + 1) / (time.perf_counter() - t0)
            eta = (args.searches - step - 1) / rate
            say(f"search {step + 1}/{args.searches} ({rate:.0f}/s, ETA {eta:.0f}s)")
    traffic_s = time.perf_counter() - t0

    base_searcher = engine.searcher
    before = {"held_out": evaluate(engine, shoppers, held), "training": evaluate(engine, shoppers, train_q)}
    t = time.perf_counter()
    gate: dict[str, Any] | None = None
    if args.gate:
        # The steps of Engine.train_gated, taken one by one so that the same candidate is judged
        # by both replay modes (and nothing is promoted: the evaluation below swaps it in).
        config = SearchGateConfig(min_lists=args.gate_min_lists, seed=args.seed)
        gate_lists, cut = held_out_searches(engine, "bi_encoder", config)
        candidate = engine.train("bi_encoder", until=cut)
        gate = {}
        # Without exploration the engine has no examination curve of its own, so each mode is
        # judged twice: clicks taken at face value (what this engine's gate does) and weighted
        # by the shoppers' true curve (what a shop whose exploration measured it would do).
        curves = {"": None, "+true_curve": ExaminationCurve.power_law(args.eta, 100)}
        for mode in REPLAY_MODES:
            for label, curve in curves.items():
                judged = replace(config, replay=mode)
                decision = judge_candidate(engine, candidate, gate_lists, judged, curve=curve)
                gate[mode + label] = {
                    "promoted": decision.promote,
                    "reason": decision.reason,
                    "metrics": decision.metrics,
                }
                say(f"gate ({mode} products{label}): {decision.reason}")
    else:
        candidate = engine.train("bi_encoder")
    train_s = time.perf_counter() - t
    # The candidate serves the evaluation whatever the gate decided (a rejected version cannot be
    # promoted), swapped in as activation would, then swapped out again.
    engine.searcher = engine.load_searcher(candidate)
    after = {"held_out": evaluate(engine, shoppers, held), "training": evaluate(engine, shoppers, train_q)}
    engine.searcher = base_searcher

    rows = {}
    for part in ("held_out", "training"):
        b, a = before[part], after[part]
        rows[part] = {
            "baseline_packaged_minilm": {k: v for k, v in b.items() if k != "per_query_served"},
            "fine_tuned_on_clicks": {k: v for k, v in a.items() if k != "per_query_served"},
            "served_gain": a["ndcg10_served"] - b["ndcg10_served"],
            "served_gain_ci95": paired_ci(b["per_query_served"], a["per_query_served"], args.seed),
            "dense_gain": a["ndcg10_dense"] - b["ndcg10_dense"],
        }
    return {
        "benchmark": "click_finetune",
        "data_dir": str(args.data_dir),
        "seed": args.seed,
        "n_products": len(products),
        "n_training_queries": len(train_q),
        "n_held_out_queries": len(held),
        "searches": args.searches,
        "clicks": clicks,
        "purchases": buys,
        "traffic_seconds": round(traffic_s, 1),
        "candidate_version": candidate.version,
        "candidate_metrics": dict(candidate.metrics),
        "train_and_reencode_seconds": round(train_s, 1),
        "gate": gate,
        "results": rows,
        "total_minutes": round((time.perf_counter() - started) / 60, 1),
    }


def markdown(r: dict[str, Any]) -> str:
    m = r["candidate_metrics"]

    def num(key: str) -> str:
        value = m.get(key)
        return f"{value:.3f}" if isinstance(value, float) else str(value)

    lines = [
        "# Fine-tuning search's encoder on clicks (simulated Home Depot shoppers)",
        "",
        f"{r['n_products']} products; {r['searches']} searches on {r['n_training_queries']} training "
        f"queries ({r['clicks']} clicks, {r['purchases']} purchases); evaluated on "
        f"{r['n_held_out_queries']} held-out queries nobody searched; seed {r['seed']}; "
        f"total {r['total_minutes']} min.",
        "",
        "| queries | system | NDCG@10 served (hybrid) | NDCG@10 dense alone | search p50 / p99 ms |",
        "|---|---|---|---|---|",
    ]
    for part in ("held_out", "training"):
        row = r["results"][part]
        for name in ("baseline_packaged_minilm", "fine_tuned_on_clicks"):
            s = row[name]
            lines.append(
                f"| {part} | {name} | {s['ndcg10_served']:.4f} | {s['ndcg10_dense']:.4f} | "
                f"{s['search_p50_ms']} / {s['search_p99_ms']} |"
            )
    lines += [""]
    for part in ("held_out", "training"):
        row = r["results"][part]
        lo, hi = row["served_gain_ci95"]
        lines.append(
            f"- {part}: served NDCG@10 {row['served_gain']:+.4f} (paired 95% CI {lo:+.4f}..{hi:+.4f}), "
            f"dense alone {row['dense_gain']:+.4f}"
        )
    lines.append(
        f"- fine-tune: {m.get('train_pairs')} clicked pairs, {m.get('hard_negative_queries')} queries with "
        f"skipped products as hard negatives, {m.get('finetune_steps')} steps; validation Recall@20 "
        f"{num('valid_recall@20_before')} -> {num('valid_recall@20')}; training + re-encoding "
        f"{r['train_and_reencode_seconds']} s"
    )
    for mode, g in (r.get("gate") or {}).items():
        verdict = "would promote" if g["promoted"] else "would reject"
        lines.append(
            f"- replay gate `{mode}` (candidate trained on all but the newest 20% of clicked searches; "
            f"the seconds above include every replay): {verdict} — {g['reason']}"
        )
    lines.append(
        "- latency: both encode queries with int8 ONNX (query backend `auto`): the baseline with the "
        "packaged model's build, the candidate with the export it carries. The baseline's "
        "training-query times are mostly the query cache's hits from the traffic."
    )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse(argv)
    result = run(args)
    write_results(args.out, result, markdown(result))
    print(markdown(result))
    return result


if __name__ == "__main__":
    main()
