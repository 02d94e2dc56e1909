"""Dense (embedding) retrieval with incremental upsert/delete.

ANN choice — measured by `benchmarks/ann_choice.py` on the 54,667 Home Depot titles (384-d
packaged MiniLM vectors), 1,000 real query vectors, k=100, M=16 / efConstruction=128 /
efSearch=256, 2 CPU cores shared with other jobs (load average ~9, so p99 and build times are
noisy; `benchmarks/results/ann_choice.md`):

    backend            build s   p50 ms   p99 ms   recall@100   MB     incremental delete
    numpy exact          0.0      23.4     48.7      1.000       80    mask
    faiss flat           0.2      15.6     33.1      1.000       80    remove_ids, O(n)
    usearch HNSW f32   118.9       1.50     9.5      0.978       88    remove(key)
    usearch HNSW f16    50.7       0.95    13.2      0.978       48    remove(key)
    hnswlib             45.6       0.58    12.8      0.978       88    mark_deleted only
    faiss HNSW          58.9       0.87    13.4      0.978       88    none

Exact search is out: 15-25 ms per query alone would break the 20 ms p99 budget. The three HNSW
libraries have the same recall and all answer in about 1 ms, far less than the query encoder,
so speed does not decide. **usearch with f16 storage** is the default because it (1) deletes for
real by 64-bit key (hnswlib only mark-deletes, faiss HNSW cannot delete without an IDMap and a
side mask), which the incremental-update requirement needs; (2) stores half the memory at the
same recall@100 (fusion uses the exact float32 vectors kept beside the index, so f16 never
changes a fused score); (3) saves/restores one file without pickle. hnswlib stays selectable.
An `exact` backend is kept for tiny catalogs and for selective filters (see `exact_filter_share`).

Vectors are stored by key alongside the ANN index, so fusion can compute the exact dense
score of any candidate (including BM25-only candidates) with one small mat-vec, and a
per-key text hash lets the caller skip re-encoding products whose text did not change.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np

__all__ = ["ANN_CHOICE_NOTE", "DenseConfig", "DenseIndex"]

ANN_CHOICE_NOTE = "usearch HNSW f16: true delete, half the memory, same recall (benchmarks/ann_choice.py)"


@dataclass(frozen=True)
class DenseConfig:
    backend: Literal["usearch", "hnswlib", "exact"] = "usearch"
    dtype: Literal["f32", "f16"] = "f16"  # usearch storage; same recall@100 as f32 at half the memory
    connectivity: int = 16  # HNSW M
    ef_construction: int = 128
    ef_search: int = 256  # >= the candidate count we ask for, so recall does not collapse at k=200
    # Below this share of allowed rows a filtered query scans the allowed rows exactly: cheaper and
    # exact, where an ANN search + post-filter would need a huge oversampling factor.
    exact_filter_share: float = 0.2
    threads: int = 2


class DenseIndex:
    """Inner-product search over L2-normalised vectors addressed by int keys."""

    def __init__(self, config: DenseConfig = DenseConfig()) -> None:
        self.config = config

    # ----------------------------------------------------------------- state helpers
    def _new_ann(self, dim: int):
        c = self.config
        if c.backend == "usearch":
            from usearch.index import Index

            return Index(
                ndim=dim,
                metric="ip",
                dtype=c.dtype,
                connectivity=c.connectivity,
                expansion_add=c.ef_construction,
                expansion_search=c.ef_search,
            )
        if c.backend == "hnswlib":
            import hnswlib

            idx = hnswlib.Index(space="ip", dim=dim)
            idx.init_index(max_elements=1024, ef_construction=c.ef_construction, M=c.connectivity)
            idx.set_ef(c.ef_search)
            idx.set_num_threads(c.threads)
            return idx
        return None

    def _ensure_capacity(self, max_key: int) -> None:
        if max_key < len(self.vectors_):
            return
        cap = max(max_key + 1, int(len(self.vectors_) * 1.5) + 16)
        vecs = np.zeros((cap, self.dim_), dtype=np.float32)
        vecs[: len(self.vectors_)] = self.vectors_
        present = np.zeros(cap, dtype=bool)
        present[: len(self.present_)] = self.present_
        self.vectors_, self.present_ = vecs, present

    def _ann_add(self, keys: np.ndarray, vectors: np.ndarray) -> None:
        if self.ann_ is None or len(keys) == 0:
            return
        if self.config.backend == "usearch":
            self.ann_.add(keys.astype(np.uint64), vectors, threads=self.config.threads)
        else:
            need = self.ann_.get_current_count() + len(keys)
            if need > self.ann_.get_max_elements():
                self.ann_.resize_index(max(need, int(self.ann_.get_max_elements() * 1.5)))
            self.ann_.add_items(vectors, keys, num_threads=self.config.threads)

    def _ann_remove(self, keys: Sequence[int]) -> None:
        if self.ann_ is None:
            return
        for key in keys:
            if self.config.backend == "usearch":
                self.ann_.remove(int(key))
            else:
                self.ann_.mark_deleted(int(key))

    # ----------------------------------------------------------------- building / updates
    def fit(self, keys: Sequence[int], vectors: np.ndarray, hashes: Sequence[str]) -> DenseIndex:
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or len(vectors) != len(keys) or len(hashes) != len(keys):
            raise ValueError("vectors: expected shape (len(keys), dim) and one hash per key")
        self.dim_ = int(vectors.shape[1])
        self.vectors_ = np.zeros((0, self.dim_), dtype=np.float32)
        self.present_ = np.zeros(0, dtype=bool)
        self.hashes_: dict[int, str] = {}
        self.ann_ = self._new_ann(self.dim_)
        self._put(np.asarray(keys, dtype=np.int64), vectors, hashes)
        return self

    def _put(self, keys: np.ndarray, vectors: np.ndarray, hashes: Sequence[str]) -> None:
        if len(keys) == 0:
            return
        self._ensure_capacity(int(keys.max()))
        self.vectors_[keys] = vectors
        self.present_[keys] = True
        for k, h in zip(keys.tolist(), hashes, strict=True):
            self.hashes_[k] = h
        self._ann_add(keys, vectors)

    def needs_encoding(self, key: int, text_hash: str) -> bool:
        """False when `key` already holds a vector for exactly this text: skip the encoder."""
        return self.hashes_.get(int(key)) != text_hash

    def upsert(self, keys: Sequence[int], vectors: np.ndarray, hashes: Sequence[str]) -> None:
        keys_arr = np.asarray(keys, dtype=np.int64)
        existing = [k for k in keys_arr.tolist() if k < len(self.present_) and self.present_[k]]
        if self.config.backend == "usearch":
            self._ann_remove(existing)
        # hnswlib: add_items on a known label overwrites it (and un-deletes a mark-deleted one).
        self._put(keys_arr, np.ascontiguousarray(vectors, dtype=np.float32), hashes)

    def delete(self, keys: Sequence[int]) -> None:
        live = [int(k) for k in keys if int(k) < len(self.present_) and self.present_[int(k)]]
        self._ann_remove(live)
        for k in live:
            self.present_[k] = False
            self.hashes_.pop(k, None)

    def __len__(self) -> int:
        return int(self.present_.sum())

    # ----------------------------------------------------------------- search
    def scores(self, query: np.ndarray, keys: np.ndarray) -> np.ndarray:
        """Exact inner products for `keys` (absent keys score 0)."""
        keys = np.asarray(keys, dtype=np.int64)
        out = self.vectors_[keys] @ query.astype(np.float32)
        out[~self.present_[keys]] = 0.0
        return out

    def search(
        self, query: np.ndarray, k: int, *, allow: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Top-k (keys, inner products), best first. `allow`: bool mask over key space (filters)."""
        n = len(self.present_)
        if n == 0 or k <= 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        if allow is not None and len(allow) < n:  # keys beyond the caller's key space are not allowed
            allow = np.concatenate([allow, np.zeros(n - len(allow), dtype=bool)])
        mask = self.present_ if allow is None else (self.present_ & allow[:n])
        n_live = int(mask.sum())
        if n_live == 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
        use_exact = self.ann_ is None or (
            allow is not None and n_live < self.config.exact_filter_share * len(self)
        )
        if use_exact:
            rows = np.flatnonzero(mask)
            sims = self.vectors_[rows] @ query.astype(np.float32)
            kk = min(k, len(rows))
            top = np.argpartition(-sims, kk - 1)[:kk]
            top = top[np.argsort(-sims[top], kind="stable")]
            return rows[top], sims[top]
        # ANN, oversampled when a (broad) filter will drop some results afterwards.
        want = min(k if allow is None else int(k / max(n_live / len(self), 1e-3)) + 10, len(self))
        if self.config.backend == "usearch":
            res = self.ann_.search(query.astype(np.float32), want)
            keys, sims = res.keys.astype(np.int64), 1.0 - res.distances.astype(np.float32)
        else:
            self.ann_.set_ef(max(self.config.ef_search, want))
            labels, dist = self.ann_.knn_query(query.astype(np.float32)[None, :], k=want)
            keys, sims = labels[0].astype(np.int64), 1.0 - dist[0].astype(np.float32)
        ok = mask[keys]
        return keys[ok][:k], sims[ok][:k]

    # ----------------------------------------------------------------- persistence
    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        keys = np.flatnonzero(self.present_)
        np.savez(
            directory / "dense.npz",
            keys=keys,
            vectors=self.vectors_[keys],
            hashes=np.asarray([self.hashes_[int(k)] for k in keys], dtype=str),
        )
        (directory / "dense.json").write_text(json.dumps({"config": asdict(self.config), "dim": self.dim_}))
        if self.config.backend == "usearch":
            self.ann_.save(str(directory / "ann.usearch"))
        elif self.config.backend == "hnswlib":
            self.ann_.save_index(str(directory / "ann.hnswlib"))

    @classmethod
    def load(cls, directory: Path) -> DenseIndex:
        meta = json.loads((directory / "dense.json").read_text())
        self = cls(DenseConfig(**meta["config"]))
        with np.load(directory / "dense.npz", allow_pickle=False) as z:
            keys, vectors, hashes = z["keys"].astype(np.int64), z["vectors"], z["hashes"].tolist()
        self.dim_ = int(meta["dim"])
        self.vectors_ = np.zeros((0, self.dim_), dtype=np.float32)
        self.present_ = np.zeros(0, dtype=bool)
        self.hashes_ = {}
        c = self.config
        if c.backend == "usearch" and (directory / "ann.usearch").exists():
            from usearch.index import Index

            self.ann_ = Index.restore(str(directory / "ann.usearch"))
            self.ann_.expansion_search = c.ef_search
            saved_ann, self.ann_ = self.ann_, None  # fill arrays without re-adding to the restored index
            self._put(keys, vectors, hashes)
            self.ann_ = saved_ann
        elif c.backend == "hnswlib" and (directory / "ann.hnswlib").exists():
            import hnswlib

            idx = hnswlib.Index(space="ip", dim=self.dim_)
            idx.load_index(str(directory / "ann.hnswlib"))
            idx.set_ef(c.ef_search)
            self.ann_ = None
            self._put(keys, vectors, hashes)
            self.ann_ = idx
        else:
            self.ann_ = self._new_ann(self.dim_)
            self._put(keys, vectors, hashes)
        return self
