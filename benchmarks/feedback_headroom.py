"""Where can the feedback loop's gain come from? Ceilings for the search simulation of feedback_loop.py.

Question: `benchmarks/feedback_loop.py` reports the share of the static-to-oracle NDCG@10 gap a
learning loop closes on held-out queries. How much of that gap is reachable by re-ordering what
the static ranker already shows, and how much by content features alone, without any clicks?

Protocol (same world as feedback_loop.py: `search_world` with the same flags and seeds):
* static: the engine's BM25-only hybrid search, top 10 (the baseline of both benchmarks);
  oracle: the static top 50 sorted by true grade (the loop benchmark's label oracle).
* reorder@d: the static top d sorted by true grade, the rest of the top 50 after it in static
  order — what a ranker could reach if it learned perfectly about the items in the top d only
  (d = 10: what the static ranker already shows).
* content ceiling: LambdaMART (`feedback.ltr.LambdaMARTRanker`, the loop's learner, one booster as
  when the committed result was measured; the loop now averages five) trained on
  the TRUE grades of the training queries' top 50 (grade -> label round(1.5 * (grade - 1)), 0-3),
  with the loop's `FeatureAssembler` over an empty online state — retrieval scores, BM25 rank,
  matched terms, no click counters — and applied to the held-out queries' top 50. With
  `--dense` (default) the candidates and features also carry the packaged MiniLM's dense score.
  A loop that learns from clicks cannot learn content better than from true labels, so this
  bounds what content features contribute on held-out queries. It moves by up to 0.005 NDCG@10
  between runs (the dense index's candidate lists are not bit-identical run to run); the
  static, oracle and reorder rows are deterministic.
* All figures: mean NDCG@10 over held-out queries (the simulator's gain grade - 1), and the share
  of the static-to-oracle gap, per seed and averaged.

Run: ``python benchmarks/feedback_headroom.py --data-dir ../shared/data --seeds 3
--out benchmarks/results/feedback_headroom.json`` (about a minute per seed on 2 cores with the
dense encoder, product vectors cached under var/cache).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from feedback_loop import add_world_arguments, make_search_engine, search_world  # noqa: E402  (same world and engines)
from results_io import write_results  # noqa: E402

from shoploop.evaluation.simulator import SearchShopperConfig, SearchShoppers, SimulatedClock  # noqa: E402
from shoploop.feedback.features import FeatureAssembler, FeatureContext  # noqa: E402
from shoploop.feedback.ltr import LambdaMARTRanker, RankerConfig  # noqa: E402

DEPTHS = (6, 10, 20, 30)
POOL = 50


def parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", type=Path, required=True, help="../shared/data (homedepot/)")
    p.add_argument("--out", type=Path, required=True)
    add_world_arguments(p)
    p.add_argument("--seeds", type=int, default=3, help="worlds with seeds seed, seed+1, ...")
    p.add_argument("--dense", action=argparse.BooleanOptionalAction, default=True)
    p.add_argument("--cache-dir", type=Path, default=ROOT / "var" / "cache" / "embeddings")
    return p.parse_args(argv)


def say(msg: str) -> None:
    print(f"[feedback_headroom {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def grade_labels(grades: np.ndarray) -> np.ndarray:
    """Simulator grades 1-3 -> lambdarank labels 0-3."""
    return np.clip(np.round(1.5 * (grades - 1.0)), 0, 3).astype(np.int32)


def one_seed(args: argparse.Namespace, seed: int) -> dict[str, Any]:
    world = argparse.Namespace(**{**vars(args), "seed": seed})
    products, judgments, queries, train = search_world(world)
    clock = SimulatedClock()
    shoppers = SearchShoppers(judgments, SearchShopperConfig(), clock=clock)
    static_engine = make_search_engine(products, clock)  # the loop benchmark's static arm
    content_engine = (
        make_search_engine(products, clock, dense=True, embedding_cache_dir=args.cache_dir)
        if args.dense
        else static_engine
    )
    held = [q for q in queries if q not in train]
    scores: dict[str, list[float]] = {"static": [], "oracle": [], **{f"reorder@{d}": [] for d in DEPTHS}}
    for q in held:
        shown = [i.item_id for i in static_engine.search(q, k=10).items]
        pool = [h.item_id for h in static_engine.searcher.search(q, k=POOL).items]
        scores["static"].append(shoppers.ndcg(q, shown))
        scores["oracle"].append(shoppers.ndcg(q, shoppers.oracle(q, pool)))
        for d in DEPTHS:
            head = shoppers.oracle(q, pool[:d])
            scores[f"reorder@{d}"].append(shoppers.ndcg(q, head + pool[d:]))
    # Content ceiling: features of each query's top 50 with no click history at all.
    assembler = FeatureAssembler()
    feats: dict[str, tuple[list[str], np.ndarray]] = {}
    for q in queries:
        hits = content_engine.searcher.search(q, k=POOL).items
        if not hits:
            continue
        ids = [h.item_id for h in hits]
        expl = [{**h.explanation, "retrieval_score": h.score} for h in hits]
        ctx = FeatureContext(content_engine.online, content_engine.products.get, query=q)
        feats[q] = (ids, assembler.transform(ids, expl, ctx))
    fit_q = [q for q in queries if q in train and q in feats]
    X = np.concatenate([feats[q][1] for q in fit_q])
    y = np.concatenate([grade_labels(shoppers.grades(q, feats[q][0])) for q in fit_q])
    group = np.array([len(feats[q][0]) for q in fit_q])
    ranker = LambdaMARTRanker(RankerConfig(num_threads=2, seed=seed, bags=1)).fit(X, y, group)
    scores["content_ceiling"] = []
    for q in held:
        if q not in feats:
            scores["content_ceiling"].append(shoppers.ndcg(q, []))
            continue
        ids, x = feats[q]
        order = np.argsort(-ranker.predict(x), kind="stable")
        scores["content_ceiling"].append(shoppers.ndcg(q, [ids[i] for i in order]))
    means = {name: float(np.nanmean(v)) for name, v in scores.items()}
    gap = means["oracle"] - means["static"]
    return {
        "seed": seed,
        "held_out_queries": len(held),
        "ndcg10": {k: round(v, 4) for k, v in means.items()},
        "gap_share": {
            k: round((v - means["static"]) / gap, 4) if gap > 0 else None for k, v in means.items()
        },
    }


def to_markdown(result: dict[str, Any]) -> str:
    names = list(result["seeds"][0]["ndcg10"])
    lines = [
        "# Feedback loop headroom — where the gain can come from",
        "",
        f"Data: {result['data_dir']}; {result['args']['queries']} queries per world, held-out half; "
        f"content features {'with' if result['args']['dense'] else 'without'} the dense score; "
        f"{result['seconds']:.0f} s on {result['machine']}.",
        "",
        "| ceiling | "
        + " | ".join(f"seed {r['seed']} NDCG@10 / gap share" for r in result["seeds"])
        + " | mean gap share |",
        "|---|" + "---:|" * (len(result["seeds"]) + 1),
    ]
    for name in names:
        cells = [
            f"{r['ndcg10'][name]:.4f} / {100 * (r['gap_share'][name] or 0):.1f}%" for r in result["seeds"]
        ]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {100 * result['mean_gap_share'][name]:.1f}% |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse(argv)
    t0 = time.perf_counter()
    seeds = []
    for s in range(args.seed, args.seed + args.seeds):
        seeds.append(one_seed(args, s))
        say(f"seed {s}: gap share {seeds[-1]['gap_share']} ({time.perf_counter() - t0:.0f}s)")
    names = list(seeds[0]["gap_share"])
    result = {
        "benchmark": "feedback_headroom",
        "data_dir": str(args.data_dir),
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "machine": f"{os.cpu_count()} CPU cores, no GPU",
        "seeds": seeds,
        "mean_gap_share": {
            n: round(float(np.mean([r["gap_share"][n] or 0.0 for r in seeds])), 4) for n in names
        },
        "seconds": round(time.perf_counter() - t0, 1),
    }
    write_results(args.out, result, to_markdown(result))
    say(f"wrote {args.out} and {args.out.with_suffix('.md')}")
    return result


if __name__ == "__main__":
    main()
