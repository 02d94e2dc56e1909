"""Does the search box's autocomplete finish what real shoppers type, and what does learning
from the shop's own searches (and the privacy rule) add or cost?

Protocol
--------
* Data: `DIR/products.csv` and `DIR/judgments.csv` in the `../shared/data/homedepot` format.
  The catalog is the products' titles; the shoppers' queries are the judgments' distinct
  `search_term`s, normalised as search normalises them (typos kept: a shopper who typed
  "cordles drill" wanted to submit exactly that).
* Demand (a modelling assumption, the data has no query counts): each search picks a query
  from a Zipf law (exponent `--zipf`, default 1.0) over the distinct queries in a seeded random
  order, and a shopper uniformly from `--shoppers`; searches are spread evenly over 28 days.
  Query logs are heavy-tailed like this; the exponent sets how much traffic repeats.
* The first half of `--searches` is what the systems learn from; the second half is evaluated.
  From it, `--eval-searches` searches (a seeded sample, so frequent queries weigh as much as
  shoppers meet them) are "typed" one character at a time: for every prefix of the normalised
  query, each system returns its top `--k` suggestions.
* Metrics per system: MRR@k (mean over searches of the mean reciprocal rank of the query over
  its prefixes of length 1..min(len, 12)); success@k after 2, 4 and 6 typed characters; share of
  keystrokes saved (a shopper who takes the query as soon as it is offered skips the rest of
  it; 0 if it never is); separately for evaluated searches whose query was seen in the learning
  half ("seen") or not ("unseen"); and suggest latency p50/p99 in ms over every call.
* Systems, side by side in one run:
  - `mpc` (baseline): Most Popular Completion (Bar-Yossef & Kraus, WWW 2011), the standard
    query-autocomplete baseline: past queries that start with the prefix, most searched first;
    no privacy rule, no catalog, whole-query prefixes only.
  - `title-prefix` (baseline): what a search engine's completion field on product titles gives
    (the usual Elasticsearch set-up): whole titles that start with the prefix, shortest first.
  - `shoploop-catalog`: our suggester before any search was logged (catalog phrases only).
  - `shoploop`: our suggester after the learning half (searches + catalog, `min_users` 3).
  - `shoploop-min-users-1`: the same without the privacy rule, to measure what it costs.
* Typo rescue: our suggester gets the catalog's typo corrector, as the engine wires it.

Usage:
    python benchmarks/suggest.py --data-dir ../shared/data/homedepot
writes `benchmarks/results/<name>.json` and `.md` (`--name`, default `suggest`).
"""

from __future__ import annotations

import argparse
import bisect
import heapq
import os
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

# a sibling program module: benchmarks run as scripts, with this directory on sys.path
from results_io import write_results

from shoploop.data.datasets.homedepot import read_homedepot
from shoploop.domain import Product, SearchEvent
from shoploop.retrieval.query_understanding import TypoCorrector, token_counts
from shoploop.retrieval.suggest import QuerySuggester, SuggestConfig
from shoploop.text.normalize import normalize

REPO = Path(__file__).resolve().parents[1]
MAX_PREFIX = 12
SUCCESS_AT = (2, 4, 6)
Suggest = Callable[[str, int], list[str]]


class MostPopularCompletion:
    """Baseline: past queries starting with the prefix, most frequent first."""

    def __init__(self, queries: Counter[str]) -> None:
        self.keys = sorted(queries)
        self.counts = [queries[q] for q in self.keys]

    def __call__(self, prefix: str, k: int) -> list[str]:
        lo = bisect.bisect_left(self.keys, prefix)
        hi = bisect.bisect_left(self.keys, prefix + "\U0010ffff", lo)
        best = heapq.nsmallest(k, range(lo, hi), key=lambda i: (-self.counts[i], self.keys[i]))
        return [self.keys[i] for i in best]


class TitlePrefix:
    """Baseline: whole product titles starting with the prefix, shortest first."""

    def __init__(self, titles: Sequence[str]) -> None:
        self.keys = sorted(set(titles))

    def __call__(self, prefix: str, k: int) -> list[str]:
        lo = bisect.bisect_left(self.keys, prefix)
        hi = bisect.bisect_left(self.keys, prefix + "\U0010ffff", lo)
        return heapq.nsmallest(k, self.keys[lo:hi], key=lambda t: (len(t), t))


def demand_stream(
    queries: Sequence[str], n: int, *, zipf: float, n_shoppers: int, seed: int
) -> list[tuple[str, str]]:
    """n (query, shopper) searches: queries Zipf-distributed over a seeded order."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(queries))
    weights = 1.0 / np.arange(1, len(queries) + 1) ** zipf
    picks = rng.choice(len(queries), size=n, p=weights / weights.sum())
    shoppers = rng.integers(0, n_shoppers, size=n)
    return [(queries[order[p]], f"shopper-{s}") for p, s in zip(picks, shoppers, strict=True)]


def evaluate(name: str, suggest: Suggest, cases: Sequence[tuple[str, bool]], k: int) -> dict[str, Any]:
    """Type each case's query one character at a time; see the module docstring for the metrics."""
    latencies: list[float] = []
    per: dict[str, list[list[float]]] = {"all": [], "seen": [], "unseen": []}
    started = time.perf_counter()
    for n, (query, seen) in enumerate(cases, 1):
        rr: list[float] = []
        offered_at: int | None = None
        hit_at: dict[int, bool] = {}
        for length in range(1, len(query) + 1):
            t = time.perf_counter()
            got = suggest(query[:length], k)
            latencies.append((time.perf_counter() - t) * 1000)
            hit_at[length] = query in got
            if length <= MAX_PREFIX:
                rr.append(1.0 / (got.index(query) + 1) if hit_at[length] else 0.0)
            if hit_at[length] and offered_at is None:
                offered_at = length
            if offered_at is not None and length >= MAX_PREFIX:
                break  # nothing later changes a metric
        # a query shorter than x characters has been typed in full after x
        hits = {x: float(hit_at[min(x, len(query))]) for x in SUCCESS_AT}
        saved = (len(query) - offered_at) / len(query) if offered_at is not None else 0.0
        row = [float(np.mean(rr)), *(hits[x] for x in SUCCESS_AT), saved]
        per["all"].append(row)
        per["seen" if seen else "unseen"].append(row)
        if n % 1000 == 0:
            rate = n / (time.perf_counter() - started)
            print(
                f"  {name}: {n}/{len(cases)} searches, {rate:.0f}/s, ETA {(len(cases) - n) / rate:.0f} s",
                file=sys.stderr,
            )
    out: dict[str, Any] = {}
    for part, rows in per.items():
        if not rows:
            continue
        m = np.mean(np.array(rows), axis=0)
        out[part] = {
            "n": len(rows),
            f"mrr@{k}": round(float(m[0]), 4),
            **{f"success@{k}_after_{x}": round(float(v), 4) for x, v in zip(SUCCESS_AT, m[1:4], strict=True)},
            "keystrokes_saved": round(float(m[4]), 4),
        }
    out["latency_ms"] = {
        "p50": round(float(np.percentile(latencies, 50)), 3),
        "p99": round(float(np.percentile(latencies, 99)), 3),
        "calls": len(latencies),
    }
    return out


def _ours(
    products: Sequence[Product],
    learn: Sequence[tuple[str, str]],
    t0: datetime,
    span: timedelta,
    min_users: int,
) -> tuple[QuerySuggester, float]:
    started = time.perf_counter()
    end = t0 + span
    s = QuerySuggester(
        SuggestConfig(min_users=min_users, rebuild_seconds=3600), clock=lambda: end.timestamp()
    )
    s.set_catalog(products)
    step = span / max(len(learn), 1)
    for i, (query, shopper) in enumerate(learn):
        s.observe(SearchEvent(query=query, user_id=shopper, n_results=10, timestamp=t0 + i * step))
    s.rebuild()
    return s, time.perf_counter() - started


def _markdown(result: dict[str, Any]) -> str:
    k, r0 = result["k"], result
    header = (
        f"| system | MRR@{k} | success after 2 / 4 / 6 chars | keystrokes saved "
        "| seen: MRR / saved | unseen: MRR / saved | p50 / p99 ms | build s |"
    )
    lines = [
        f"# Autocomplete on Home Depot queries ({r0['n_queries']} distinct, {r0['n_products']} products)",
        "",
        f"{r0['searches']} simulated searches (Zipf {r0['zipf']}, {r0['shoppers']} shoppers, "
        f"seed {r0['seed']}): "
        f"the first half is learned from, {r0['eval_searches']} searches of the second half are typed one "
        f"character at a time ({r0['eval_seen_share']:.0%} of them repeat a query seen while learning). "
        f"Top {k} suggestions per prefix. Load average {r0['load_average']}.",
        "",
        header,
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, r in result["systems"].items():
        a, seen, unseen = r["all"], r.get("seen", {}), r.get("unseen", {})
        succ = " / ".join(f"{a[f'success@{k}_after_{x}']:.3f}" for x in SUCCESS_AT)
        lines.append(
            f"| {name} | {a[f'mrr@{k}']:.4f} | {succ} | {a['keystrokes_saved']:.1%} | "
            f"{seen.get(f'mrr@{k}', 0):.4f} / {seen.get('keystrokes_saved', 0):.1%} | "
            f"{unseen.get(f'mrr@{k}', 0):.4f} / {unseen.get('keystrokes_saved', 0):.1%} | "
            f"{r['latency_ms']['p50']:.2f} / {r['latency_ms']['p99']:.2f} | {r['build_seconds']:.1f} |"
        )
    lines += [
        "",
        "Baselines: `mpc` = Most Popular Completion over the learned searches (no privacy rule, no catalog); "
        "`title-prefix` = whole product titles by prefix. See the program's docstring for the protocol.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--searches", type=int, default=200_000)
    parser.add_argument("--eval-searches", type=int, default=3_000)
    parser.add_argument("--shoppers", type=int, default=30_000)
    parser.add_argument("--zipf", type=float, default=1.0)
    parser.add_argument("--k", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--results-dir", type=Path, default=REPO / "benchmarks" / "results")
    parser.add_argument("--name", default="suggest")
    args = parser.parse_args(argv)

    products_df, judgments = read_homedepot(args.data_dir)
    products = [
        Product(item_id=uid, title=title)
        for uid, title in zip(products_df["product_uid"], products_df["product_title"], strict=True)
        if title.strip()
    ]
    queries = sorted({q for q in (normalize(str(x)) for x in judgments["search_term"].dropna()) if q})
    print(f"{len(products)} products, {len(queries)} distinct queries", file=sys.stderr)
    stream = demand_stream(queries, args.searches, zipf=args.zipf, n_shoppers=args.shoppers, seed=args.seed)
    half = len(stream) // 2
    learn, later = stream[:half], stream[half:]
    learned = Counter(q for q, _ in learn)
    rng = np.random.default_rng(args.seed + 1)
    picks = rng.choice(len(later), size=min(args.eval_searches, len(later)), replace=False)
    cases = [(later[i][0], later[i][0] in learned) for i in sorted(picks)]

    t0, span = datetime(2026, 1, 1, tzinfo=UTC), timedelta(days=28)
    typo = TypoCorrector().fit(token_counts(p.title for p in products))
    systems: dict[str, tuple[Suggest, float]] = {}
    started = time.perf_counter()
    systems["mpc"] = (MostPopularCompletion(learned), time.perf_counter() - started)
    started = time.perf_counter()
    systems["title-prefix"] = (
        TitlePrefix([normalize(p.title) for p in products]),
        time.perf_counter() - started,
    )
    for name, observed, min_users in (
        ("shoploop-catalog", [], 3),
        ("shoploop", learn, 3),
        ("shoploop-min-users-1", learn, 1),
    ):
        s, seconds = _ours(products, observed, t0, span, min_users)
        systems[name] = (
            lambda p, k, s=s: [x.text for x in s.suggest(p, k, correct=typo.correct_token)],
            seconds,
        )
        print(f"built {name} in {seconds:.1f} s: {s.stats()}", file=sys.stderr)

    result: dict[str, Any] = {
        "data_dir": str(args.data_dir),
        "n_products": len(products),
        "n_queries": len(queries),
        "searches": args.searches,
        "eval_searches": len(cases),
        "eval_seen_share": round(sum(seen for _, seen in cases) / max(len(cases), 1), 4),
        "shoppers": args.shoppers,
        "zipf": args.zipf,
        "k": args.k,
        "seed": args.seed,
        "load_average": round(os.getloadavg()[0], 2),
        "systems": {},
    }
    for name, (fn, seconds) in systems.items():
        print(f"evaluating {name}", file=sys.stderr)
        result["systems"][name] = {**evaluate(name, fn, cases, args.k), "build_seconds": round(seconds, 2)}
    markdown = _markdown(result)
    write_results(args.results_dir / f"{args.name}.json", result, markdown)
    print(markdown)
    return result


if __name__ == "__main__":
    main()
