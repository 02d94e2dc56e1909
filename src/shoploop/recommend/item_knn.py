"""Item-kNN over co-occurrence: items that appear close together in shoppers' sequences.

Two similarity flavours:
- "cosine": pairs within `window` positions (or `window_seconds` when timestamps are given)
  counted with separate forward/backward weights, normalised as C_ij / (n_i^a * n_j^(1-a)).
  The window matters for next-item prediction: items bought in the same week say more than
  items bought a year apart by the same person.
- "bm25": the user x item incidence matrix re-weighted with BM25 (as in `implicit`), then
  item-item dot products; a strong classic for whole-history co-occurrence.

Only the top `n_neighbours` per item are kept, so the model is a sparse (n+1, n+1) matrix
and scoring a user is a sparse row-vector product.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Self

import numpy as np
import scipy.sparse as sp

from shoploop.recommend.base import (
    NEG_INF,
    RecommenderMixin,
    item_counts,
    load_arrays,
    read_config,
    save_arrays,
    top_k,
    write_config,
)


@dataclass(frozen=True)
class ItemKNNConfig:
    similarity: Literal["cosine", "bm25"] = "cosine"
    window: int = 10  # positions; pairs further apart in a sequence don't count (cosine only)
    window_seconds: float | None = None  # used instead of `window` when timestamps are given
    forward_weight: float = 1.0  # j after i
    backward_weight: float = 0.5  # j before i: weaker evidence for "what comes next"
    alpha: float = 0.5  # asymmetric cosine exponent (0.5 = plain cosine)
    n_neighbours: int = 200
    recency_decay: float = 0.8  # weight of history item t steps before the last: decay**t
    max_len: int = 50  # history items used for scoring
    bm25_k1: float = 1.2
    bm25_b: float = 0.75


class ItemKNN(RecommenderMixin):
    kind = "item_knn"

    def __init__(self, config: ItemKNNConfig = ItemKNNConfig()) -> None:
        self.config = config

    def _max_len(self) -> int | None:
        return self.config.max_len

    def fit(
        self,
        sequences: Sequence[Sequence[int]],
        n_items: int,
        *,
        item_text_emb: np.ndarray | None = None,
        timestamps: Sequence[Sequence[float]] | None = None,
    ) -> Self:
        self.n_items_ = int(n_items)
        m = n_items + 1
        self.popularity_ = item_counts(sequences, n_items).astype(np.float32)
        if self.config.similarity == "bm25":
            sim = self._bm25_similarity(sequences, m)
        else:
            sim = self._window_similarity(sequences, m, timestamps)
        sim.setdiag(0)
        sim.eliminate_zeros()
        self.sim_ = _keep_top_n(sim.tocsr(), self.config.n_neighbours)
        return self

    def _window_similarity(
        self, sequences: Sequence[Sequence[int]], m: int, timestamps: Sequence[Sequence[float]] | None
    ) -> sp.csr_matrix:
        cfg = self.config
        lens = np.asarray([len(s) for s in sequences], dtype=np.int64)
        flat = np.fromiter((i for s in sequences for i in s), dtype=np.int64, count=int(lens.sum()))
        seq_id = np.repeat(np.arange(len(sequences)), lens)
        ts = None
        if timestamps is not None and cfg.window_seconds is not None:
            ts = np.fromiter((t for s in timestamps for t in s), dtype=np.float64, count=int(lens.sum()))
        valid = (flat > 0) & (flat < m)
        rows, cols, vals = [], [], []
        max_offset = cfg.window if ts is None else max(int(lens.max(initial=1)), 1)
        for d in range(1, max_offset + 1):
            a, b = slice(0, len(flat) - d), slice(d, len(flat))
            ok = (seq_id[a] == seq_id[b]) & valid[a] & valid[b]
            if ts is not None:
                ok &= (ts[b] - ts[a]) <= cfg.window_seconds
            if not ok.any():
                break
            i, j = flat[a][ok], flat[b][ok]
            rows += [i, j]
            cols += [j, i]
            vals += [np.full(len(i), cfg.forward_weight), np.full(len(i), cfg.backward_weight)]
        if not rows:
            return sp.csr_matrix((m, m), dtype=np.float32)
        co = sp.coo_matrix(
            (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(m, m)
        ).tocsr()
        n = np.asarray(co.sum(axis=1)).ravel() + 1e-9
        left = sp.diags(n**-cfg.alpha)
        right = sp.diags(n ** -(1.0 - cfg.alpha))
        return (left @ co @ right).astype(np.float32).tocsr()

    def _bm25_similarity(self, sequences: Sequence[Sequence[int]], m: int) -> sp.csr_matrix:
        cfg = self.config
        rows = np.fromiter((u for u, s in enumerate(sequences) for _ in s), dtype=np.int64)
        cols = np.fromiter((i for s in sequences for i in s), dtype=np.int64)
        ok = (cols > 0) & (cols < m)
        x = sp.coo_matrix((np.ones(ok.sum()), (rows[ok], cols[ok])), shape=(len(sequences), m)).tocsr()
        x.data[:] = 1.0  # repeats count once
        n_users = max(x.shape[0], 1)
        df = np.bincount(x.indices, minlength=m)
        idf = np.log(n_users) - np.log1p(df)
        row_len = np.diff(x.indptr)
        avg = row_len.mean() if row_len.size else 1.0
        length_norm = (1.0 - cfg.bm25_b) + cfg.bm25_b * row_len / max(avg, 1e-9)
        x = x.tocoo()
        x.data = x.data * (cfg.bm25_k1 + 1.0) / (cfg.bm25_k1 * length_norm[x.row] + x.data) * idf[x.col]
        x = x.tocsr()
        sim = (x.T @ x).tocsr()
        norms = np.sqrt(sim.diagonal()) + 1e-9
        return (sp.diags(1.0 / norms) @ sim @ sp.diags(1.0 / norms)).astype(np.float32).tocsr()

    def _score_batch(self, histories: list[list[int]]) -> np.ndarray:
        m = self.n_items_ + 1
        rows, cols, vals = [], [], []
        for r, h in enumerate(histories):
            w = self.config.recency_decay ** np.arange(len(h) - 1, -1, -1, dtype=np.float64)
            rows.append(np.full(len(h), r))
            cols.append(np.asarray(h, dtype=np.int64))
            vals.append(w)
        if rows:
            q = sp.csr_matrix(
                (np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                shape=(len(histories), m),
            )
            scores = np.asarray((q @ self.sim_).todense(), dtype=np.float32)
        else:
            scores = np.zeros((0, m), dtype=np.float32)
        # A tiny popularity prior breaks the many zero ties (and serves empty histories).
        pop = self.popularity_ / max(self.popularity_.max(), 1.0)
        return scores + 1e-6 * pop[None, :]

    def similar_items(self, item: int, k: int) -> tuple[np.ndarray, np.ndarray]:
        if not 0 < item <= self.n_items_:
            return np.zeros(k, dtype=np.int64), np.full(k, NEG_INF, dtype=np.float32)
        row = np.full(self.n_items_ + 1, NEG_INF, dtype=np.float32)
        start, end = self.sim_.indptr[item], self.sim_.indptr[item + 1]
        row[self.sim_.indices[start:end]] = self.sim_.data[start:end]
        row[item] = NEG_INF
        row[0] = NEG_INF
        idx, vals = top_k(row[None, :], k)
        return idx[0], vals[0]

    def save(self, directory: Path) -> None:
        write_config(directory, self.kind, self.config, {"n_items": self.n_items_})
        save_arrays(
            directory,
            data=self.sim_.data,
            indices=self.sim_.indices,
            indptr=self.sim_.indptr,
            popularity=self.popularity_,
        )

    @classmethod
    def load(cls, directory: Path) -> Self:
        config, payload = read_config(directory, cls.kind, ItemKNNConfig)
        model = cls(config)
        model.n_items_ = int(payload["n_items"])
        arr = load_arrays(directory)
        m = model.n_items_ + 1
        model.sim_ = sp.csr_matrix((arr["data"], arr["indices"], arr["indptr"]), shape=(m, m))
        model.popularity_ = arr["popularity"]
        return model


def _keep_top_n(sim: sp.csr_matrix, n: int) -> sp.csr_matrix:
    """Keep the n largest entries per row (the neighbourhood), dropping the long tail."""
    sim = sim.tocsr()
    sim.sort_indices()
    data, indices, indptr = [], [], [0]
    for r in range(sim.shape[0]):
        s, e = sim.indptr[r], sim.indptr[r + 1]
        d, c = sim.data[s:e], sim.indices[s:e]
        if len(d) > n:
            keep = np.argpartition(-d, n - 1)[:n]
            keep.sort()
            d, c = d[keep], c[keep]
        data.append(d)
        indices.append(c)
        indptr.append(indptr[-1] + len(d))
    return sp.csr_matrix(
        (
            np.concatenate(data) if data else np.zeros(0, np.float32),
            np.concatenate(indices) if indices else np.zeros(0, np.int32),
            np.asarray(indptr),
        ),
        shape=sim.shape,
    )
