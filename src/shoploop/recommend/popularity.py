"""Popularity baselines: global counts, and trending counts with exponential time decay.

Both ignore the user's history when scoring (only `exclude_seen` uses it), which makes them
the fallback for unknown users and the floor every personalised model must clear.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Self

import numpy as np

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
class PopularityConfig:
    pass


class Popularity(RecommenderMixin):
    """Scores every user with the item's share of training interactions."""

    kind = "popularity"

    def __init__(self, config: PopularityConfig = PopularityConfig()) -> None:
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
        total = counts.sum()
        self.scores_ = (counts / total if total > 0 else counts).astype(np.float32)
        return self

    def _score_batch(self, histories: list[list[int]]) -> np.ndarray:
        return np.broadcast_to(self.scores_, (len(histories), self.n_items_ + 1)).copy()

    def similar_items(self, item: int, k: int) -> tuple[np.ndarray, np.ndarray]:
        # Without co-occurrence information, "similar" degrades to "popular, not this one".
        s = self.scores_.copy()
        s[0] = NEG_INF
        if 0 < item <= self.n_items_:
            s[item] = NEG_INF
        idx, vals = top_k(s[None, :], k)
        return idx[0], vals[0]

    def save(self, directory: Path) -> None:
        write_config(directory, self.kind, self.config, {"n_items": self.n_items_})
        save_arrays(directory, scores=self.scores_)

    @classmethod
    def load(cls, directory: Path) -> Self:
        config, payload = read_config(directory, cls.kind, PopularityConfig)
        model = cls(config)
        model.n_items_ = int(payload["n_items"])
        model.scores_ = load_arrays(directory)["scores"]
        return model


@dataclass(frozen=True)
class TrendingConfig:
    half_life_days: float = 7.0
    # Timestamps are seconds (unix); "now" defaults to the latest event seen in training.
    now: float | None = None


class TrendingPopularity(Popularity):
    """Each interaction weighs 0.5 ** (age / half_life): recent activity dominates.

    Without timestamps it falls back to position-in-sequence as a proxy for time (the last
    item of each sequence is "now"), which keeps it usable on datasets that ship only order.
    """

    kind = "trending"

    def __init__(self, config: TrendingConfig = TrendingConfig()) -> None:  # type: ignore[assignment]
        self.config = config  # type: ignore[assignment]

    def fit(
        self,
        sequences: Sequence[Sequence[int]],
        n_items: int,
        *,
        item_text_emb: np.ndarray | None = None,
        timestamps: Sequence[Sequence[float]] | None = None,
    ) -> Self:
        self.n_items_ = int(n_items)
        scores = np.zeros(n_items + 1, dtype=np.float64)
        if timestamps is None:
            half_life = max(self.config.half_life_days, 1e-9)  # in "steps" here
            for seq in sequences:
                ages = np.arange(len(seq) - 1, -1, -1, dtype=np.float64)
                self._accumulate(scores, seq, 0.5 ** (ages / half_life))
        else:
            now = self.config.now
            if now is None:
                now = max((max(ts) for ts in timestamps if len(ts)), default=0.0)
            half_life_s = self.config.half_life_days * 86400.0
            for seq, ts in zip(sequences, timestamps, strict=True):
                ages = np.maximum(now - np.asarray(ts, dtype=np.float64), 0.0)
                self._accumulate(scores, seq, 0.5 ** (ages / half_life_s))
        total = scores.sum()
        self.scores_ = (scores / total if total > 0 else scores).astype(np.float32)
        return self

    def _accumulate(self, scores: np.ndarray, seq: Sequence[int], weights: np.ndarray) -> None:
        ids = np.asarray(seq, dtype=np.int64)
        ok = (ids > 0) & (ids <= self.n_items_)
        np.add.at(scores, ids[ok], weights[ok])

    @classmethod
    def load(cls, directory: Path) -> Self:
        config, payload = read_config(directory, cls.kind, TrendingConfig)
        model = cls(config)
        model.n_items_ = int(payload["n_items"])
        model.scores_ = load_arrays(directory)["scores"]
        return model
