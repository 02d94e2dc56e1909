"""EASE (Steck, WWW 2019): a closed-form item-item linear autoencoder.

    P = (X^T X + lambda I)^-1,   B = I - P / diag(P)  (column-wise),  diag(B) = 0

X is the binary user x item matrix. The inverse is dense: O(m^2) memory and O(m^3) time.
That is fine up to ~20k items (20k^2 float64 = 3.2 GB, a few minutes on 2 cores); above
`max_items` only the `max_items` most popular items get an EASE model and the rest are
scored by a small popularity prior, so EASE degrades gracefully instead of running out of
memory. Use `ItemKNN` (sparse) for long-tail catalogs.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Self

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
class EASEConfig:
    l2: float = 250.0
    max_items: int = 20_000  # dense inverse above this would not fit comfortably in memory


class EASE(RecommenderMixin):
    kind = "ease"

    def __init__(self, config: EASEConfig = EASEConfig()) -> None:
        self.config = config

    def fit(
        self,
        sequences: Sequence[Sequence[int]],
        n_items: int,
        *,
        item_text_emb: np.ndarray | None = None,
        timestamps: Sequence[Sequence[float]] | None = None,
    ) -> Self:
        self.n_items_ = int(n_items)
        counts = item_counts(sequences, n_items)
        self.popularity_ = (counts / max(counts.max(), 1.0)).astype(np.float32)
        order = np.argsort(-counts[1:], kind="stable") + 1
        kept = np.sort(order[: self.config.max_items])
        kept = kept[counts[kept] > 0]
        self.items_ = kept.astype(np.int64)  # model column c is item items_[c]
        col_of = np.full(n_items + 1, -1, dtype=np.int64)
        col_of[kept] = np.arange(len(kept))
        rows = np.fromiter((u for u, s in enumerate(sequences) for _ in s), dtype=np.int64)
        ids = np.fromiter((i for s in sequences for i in s), dtype=np.int64)
        ok = (ids > 0) & (ids <= n_items)
        cols = col_of[ids[ok]]
        ok_rows = rows[ok][cols >= 0]
        cols = cols[cols >= 0]
        x = sp.csr_matrix((np.ones(len(cols)), (ok_rows, cols)), shape=(len(sequences), len(kept)))
        x.data[:] = 1.0
        gram = (x.T @ x).toarray().astype(np.float64)
        gram[np.diag_indices_from(gram)] += self.config.l2
        p = np.linalg.inv(gram)
        b = -p / np.diag(p)[None, :]
        b[np.diag_indices_from(b)] = 0.0
        self.B_ = b.astype(np.float32)
        self._col_of = col_of
        return self

    def _score_batch(self, histories: list[list[int]]) -> np.ndarray:
        m = self.n_items_ + 1
        x = np.zeros((len(histories), len(self.items_)), dtype=np.float32)
        for r, h in enumerate(histories):
            c = self._col_of[np.asarray(h, dtype=np.int64)] if h else np.zeros(0, np.int64)
            x[r, c[c >= 0]] = 1.0
        out = np.zeros((len(histories), m), dtype=np.float32)
        out[:, self.items_] = x @ self.B_
        # popularity prior: breaks ties, serves empty histories and items outside the model
        return out + 1e-4 * self.popularity_[None, :]

    def similar_items(self, item: int, k: int) -> tuple[np.ndarray, np.ndarray]:
        row = np.full(self.n_items_ + 1, NEG_INF, dtype=np.float32)
        c = self._col_of[item] if 0 < item <= self.n_items_ else -1
        if c >= 0:
            row[self.items_] = self.B_[c]
            row[item] = NEG_INF
        row[0] = NEG_INF
        idx, vals = top_k(row[None, :], k)
        return idx[0], vals[0]

    def save(self, directory: Path) -> None:
        write_config(directory, self.kind, self.config, {"n_items": self.n_items_})
        save_arrays(directory, B=self.B_, items=self.items_, popularity=self.popularity_)

    @classmethod
    def load(cls, directory: Path) -> Self:
        config, payload = read_config(directory, cls.kind, EASEConfig)
        model = cls(config)
        model.n_items_ = int(payload["n_items"])
        arr = load_arrays(directory)
        model.B_, model.items_, model.popularity_ = arr["B"], arr["items"], arr["popularity"]
        model._col_of = np.full(model.n_items_ + 1, -1, dtype=np.int64)
        model._col_of[model.items_] = np.arange(len(model.items_))
        return model
