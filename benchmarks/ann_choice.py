"""Which ANN library for the dense product index? hnswlib vs faiss (HNSW, flat) vs usearch vs numpy.

Protocol
--------
* Vectors: all-MiniLM-L6-v2 (packaged, torch) embeddings of every product title in
  `DIR/products.csv` (cached under `--cache-dir` by model + text hash), 384-d, L2-normalised.
* Queries: up to `--n-queries` distinct `search_term`s from `DIR/judgments.csv` (seeded sample),
  encoded with the same model — real query vectors, not held-out products.
* Ground truth: exact inner-product top-100 (numpy mat-mul).
* For each backend (same HNSW parameters M=16, efConstruction=128, efSearch=256 where they apply):
  build time, single-query latency p50/p99 (one query at a time, as the searcher calls it),
  recall@100 vs exact, index memory (serialised size; numpy = the matrix itself), and whether
  it supports incremental delete. Baseline: `numpy-exact` (a float32 mat-vec + argpartition).
* Threads: every library is limited to `--threads` (default 2; the machine has 2 shared cores).

Usage:
    python benchmarks/ann_choice.py --data-dir ../shared/data/homedepot \\
        --out benchmarks/results/ann_choice.json
Writes JSON + a Markdown table next to `--out`.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

# the sibling module, also when a test imports this as `benchmarks.ann_choice`
sys.path.insert(0, str(Path(__file__).resolve().parent))
from results_io import write_results

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def _latencies(fn, queries: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    out, times = [], []
    for q in queries:
        t = time.perf_counter()
        out.append(np.asarray(fn(q), dtype=np.int64))
        times.append((time.perf_counter() - t) * 1e3)
    return out, np.asarray(times)


def _recall(found: list[np.ndarray], truth: np.ndarray) -> float:
    return float(
        np.mean([len(set(f.tolist()) & set(t.tolist())) / len(t) for f, t in zip(found, truth, strict=True)])
    )


def _file_mb(path: Path) -> float:
    return path.stat().st_size / 2**20


def run_backends(vectors: np.ndarray, queries: np.ndarray, k: int, threads: int) -> list[dict]:
    n, dim = vectors.shape
    k = min(k, n)
    truth = np.argsort(-(queries @ vectors.T), axis=1, kind="stable")[:, :k]
    keys = np.arange(n, dtype=np.int64)
    results: list[dict] = []
    M, efc, efs = 16, 128, 256
    tmp = Path(tempfile.mkdtemp(prefix="ann_choice_"))

    def record(name, build_s, search, mem_mb, incremental):
        found, lat = _latencies(search, queries)
        row = {
            "backend": name,
            "build_s": round(build_s, 3),
            "p50_ms": round(float(np.percentile(lat, 50)), 3),
            "p99_ms": round(float(np.percentile(lat, 99)), 3),
            f"recall@{k}": round(_recall(found, truth), 4),
            "memory_mb": round(mem_mb, 1),
            "incremental_delete": incremental,
        }
        results.append(row)
        print(f"[ann_choice] {row}", file=sys.stderr, flush=True)

    # numpy exact (baseline)
    t = time.perf_counter()
    mat = np.ascontiguousarray(vectors, dtype=np.float32)
    build = time.perf_counter() - t

    def np_search(q):
        s = mat @ q
        top = np.argpartition(-s, k - 1)[:k]
        return top[np.argsort(-s[top])]

    record("numpy-exact", build, np_search, mat.nbytes / 2**20, "yes (mask)")

    # usearch HNSW
    from usearch.index import Index

    t = time.perf_counter()
    ui = Index(ndim=dim, metric="ip", dtype="f32", connectivity=M, expansion_add=efc, expansion_search=efs)
    ui.add(keys.astype(np.uint64), mat, threads=threads)
    build = time.perf_counter() - t
    ui.save(str(tmp / "u.usearch"))
    record(
        "usearch-hnsw-f32", build, lambda q: ui.search(q, k).keys, _file_mb(tmp / "u.usearch"), "yes (remove)"
    )

    # usearch with f16 storage (half the memory)
    t = time.perf_counter()
    uh = Index(ndim=dim, metric="ip", dtype="f16", connectivity=M, expansion_add=efc, expansion_search=efs)
    uh.add(keys.astype(np.uint64), mat, threads=threads)
    build = time.perf_counter() - t
    uh.save(str(tmp / "h.usearch"))
    record(
        "usearch-hnsw-f16", build, lambda q: uh.search(q, k).keys, _file_mb(tmp / "h.usearch"), "yes (remove)"
    )

    # hnswlib
    import hnswlib

    t = time.perf_counter()
    hi = hnswlib.Index(space="ip", dim=dim)
    hi.init_index(max_elements=n, ef_construction=efc, M=M)
    hi.set_num_threads(threads)
    hi.add_items(mat, keys)
    hi.set_ef(efs)
    build = time.perf_counter() - t
    hi.save_index(str(tmp / "h.bin"))
    hi.set_num_threads(1)
    record(
        "hnswlib",
        build,
        lambda q: hi.knn_query(q[None, :], k=k)[0][0],
        _file_mb(tmp / "h.bin"),
        "mark-deleted",
    )

    # faiss
    import faiss

    faiss.omp_set_num_threads(threads)
    t = time.perf_counter()
    fh = faiss.IndexHNSWFlat(dim, M, faiss.METRIC_INNER_PRODUCT)
    fh.hnsw.efConstruction = efc
    fh.add(mat)
    fh.hnsw.efSearch = efs
    build = time.perf_counter() - t
    faiss.write_index(fh, str(tmp / "f.faiss"))
    faiss.omp_set_num_threads(1)  # single-query calls: OpenMP start-up would dominate
    record("faiss-hnsw", build, lambda q: fh.search(q[None, :], k)[1][0], _file_mb(tmp / "f.faiss"), "no")
    t = time.perf_counter()
    ff = faiss.IndexFlatIP(dim)
    ff.add(mat)
    build = time.perf_counter() - t
    faiss.write_index(ff, str(tmp / "ff.faiss"))
    record(
        "faiss-flat",
        build,
        lambda q: ff.search(q[None, :], k)[1][0],
        _file_mb(tmp / "ff.faiss"),
        "yes (remove_ids, O(n))",
    )
    return results


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data-dir", type=Path, required=True)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--n-queries", type=int, default=1000)
    ap.add_argument("--k", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--cache-dir", type=Path, default=Path("var/cache/embeddings"))
    ap.add_argument("--fake-encoder", action="store_true", help=argparse.SUPPRESS)  # smoke test only
    args = ap.parse_args(argv)

    products = pd.read_csv(args.data_dir / "products.csv", dtype={"product_uid": str})
    judgments = pd.read_csv(args.data_dir / "judgments.csv", dtype={"product_uid": str, "search_term": str})
    titles = products["product_title"].fillna("").astype(str).tolist()
    terms = sorted(set(judgments["search_term"].dropna().astype(str)))
    rng = np.random.default_rng(args.seed)
    terms = [terms[i] for i in rng.permutation(len(terms))[: args.n_queries]]

    if args.fake_encoder:
        rng2 = np.random.default_rng(1)
        vecs = rng2.normal(size=(len(titles), 32)).astype(np.float32)
        qv = rng2.normal(size=(len(terms), 32)).astype(np.float32)
        model = "fake"
    else:
        from shoploop.text.encoder import EncoderConfig, TextEncoder, encode_with_cache

        enc = TextEncoder(EncoderConfig(num_threads=args.threads))
        vecs = encode_with_cache(enc, titles, args.cache_dir)
        qv = enc.encode(terms, progress=True)
        model = "all-MiniLM-L6-v2 (packaged)"
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True).clip(1e-12)
    qv /= np.linalg.norm(qv, axis=1, keepdims=True).clip(1e-12)
    rows = run_backends(vecs, qv, args.k, args.threads)
    result = {
        "benchmark": "ann_choice",
        "data_dir": str(args.data_dir),
        "n_vectors": len(vecs),
        "dim": int(vecs.shape[1]),
        "n_queries": len(terms),
        "k": args.k,
        "model": model,
        "machine": f"{os.cpu_count()} cores, CPU only, threads={args.threads}",
        "params": {"M": 16, "efConstruction": 128, "efSearch": 256},
        "results": rows,
    }
    kcol = f"recall@{args.k}"
    lines = [
        f"# ANN choice — {len(vecs)} vectors x {vecs.shape[1]}d, {len(terms)} real queries, k={args.k}",
        "",
        "| backend | build s | p50 ms | p99 ms | " + kcol + " | memory MB | incremental delete |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['backend']} | {r['build_s']} | {r['p50_ms']} | {r['p99_ms']} | {r[kcol]} | "
            f"{r['memory_mb']} | {r['incremental_delete']} |"
        )
    write_results(args.out, result, "\n".join(lines) + "\n")
    print("\n".join(lines))
    return result


if __name__ == "__main__":
    main()
