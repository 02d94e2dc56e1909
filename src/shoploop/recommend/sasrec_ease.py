"""The sequential transformer blended with EASE: what the shopper did last, plus what goes together.

The two models see different things. SASRec reads the order of a history and the items' text;
EASE (a closed-form item-item model) reads which items co-occur in whole histories, order-free.
On short, sparse histories (Amazon Scientific: 7 items per shopper on average) each alone lands
near the other, and their errors differ, so a blend is better than either (measured in
`benchmarks/sequential.py`, row `sasrec-text+ease`).

Scores are put on one scale per request before they are mixed: each model's row is
standardised over the catalog (z-score), then

    score = (1 - w) * z(SASRec) + w * z(EASE),        w = `ease_weight`

A z-score, not raw scores, because SASRec's logits and EASE's regression outputs have unrelated
scales that also vary from shopper to shopper; standardising keeps `w` meaningful for all of them.
`w` is picked on validation NDCG@10 by whoever trains the blend (the benchmark does it on a grid).

EASE abstains on items it never saw in training (its z-score is taken over the items it knows):
those keep SASRec's z-score whole, so new products stay as recommendable as SASRec's text side
makes them. Similar items come from SASRec alone (its item table knows text, so cold items have
neighbours).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

import numpy as np

from shoploop.recommend.base import NEG_INF, RecommenderMixin, read_config, write_config
from shoploop.recommend.ease import EASE, EASEConfig
from shoploop.recommend.sasrec import SASRec, SASRecConfig


@dataclass(frozen=True)
class SASRecEASEConfig:
    sasrec: SASRecConfig = field(default_factory=SASRecConfig)
    ease: EASEConfig = field(default_factory=EASEConfig)
    ease_weight: float = 0.1  # share of EASE's z-score; 0.1 was best on Amazon Scientific validation

    def __post_init__(self) -> None:
        if not 0.0 <= self.ease_weight <= 1.0:
            raise ValueError(f"ease_weight must be within [0, 1], got {self.ease_weight}")


def standardise_rows(scores: np.ndarray, over: np.ndarray | None = None) -> np.ndarray:
    """Each row of (n, n_items+1) scores minus its mean over columns 1.. over its std (float64).

    `over` (n_items+1,) bool: take mean and std over these columns only (all by default); every
    column is standardised with them. Column 0 (padding) is ignored and returned as -inf; a
    constant row becomes all zeros.
    """
    body = np.asarray(scores, dtype=np.float64)[:, 1:]
    ref = body if over is None else body[:, np.asarray(over, dtype=bool)[1:]]
    mean = ref.mean(axis=1, keepdims=True)
    std = ref.std(axis=1, keepdims=True)
    # a constant row's std is rounding noise (1e-18 for a row of 0.01s), not spread: call it 0
    constant = std <= 1e-9 * np.abs(ref).max(axis=1, keepdims=True)
    z = np.where(constant, 0.0, (body - mean) / np.where(constant, 1.0, std))
    return np.hstack([np.full((len(z), 1), NEG_INF), z])


def pick_ease_weight(
    sasrec: SASRec, ease: EASE, weights: Sequence[float], quality: Callable[[SASRecEASE], float]
) -> tuple[float, dict[float, float]]:
    """EASE's share among `weights` whose blend scores best by `quality` (the caller's held-out
    NDCG@10: this layer does not evaluate), and every share's score. Ties go to the smaller share,
    the one closer to SASRec alone."""
    if not weights:
        raise ValueError("weights must hold at least one share")
    by_weight = {w: quality(SASRecEASE.of_fitted(sasrec, ease, w)) for w in weights}
    return max(by_weight, key=lambda w: (by_weight[w], -w)), by_weight


class SASRecEASE(RecommenderMixin):
    kind = "sasrec_ease"

    def __init__(self, config: SASRecEASEConfig = SASRecEASEConfig()) -> None:
        self.config = config

    @classmethod
    def of_fitted(cls, sasrec: SASRec, ease: EASE, ease_weight: float) -> Self:
        """A blend of two models already fitted on the same catalog (no training)."""
        if sasrec.n_items_ != ease.n_items_:
            raise ValueError(f"n_items differ: SASRec {sasrec.n_items_}, EASE {ease.n_items_}")
        return cls(SASRecEASEConfig(sasrec.config, ease.config, ease_weight))._attach(sasrec, ease)

    def _attach(self, sasrec: SASRec, ease: EASE) -> Self:
        self.sasrec_, self.ease_, self.n_items_ = sasrec, ease, sasrec.n_items_
        # the items EASE has a column for (seen in its training data), fixed once it is fitted
        self._ease_known = np.zeros(self.n_items_ + 1, dtype=bool)
        self._ease_known[ease.items_] = True
        return self

    def fit(
        self,
        sequences: Sequence[Sequence[int]],
        n_items: int,
        *,
        item_text_emb: np.ndarray | None = None,
        item_texts: Sequence[str] | None = None,
        timestamps: Sequence[Sequence[float]] | None = None,
        valid: tuple[Sequence[Sequence[int]], Sequence[int]] | None = None,
    ) -> Self:
        """Fit both models on the same sequences; `valid` drives SASRec's early stopping."""
        sasrec = SASRec(self.config.sasrec).fit(
            sequences, n_items, item_text_emb=item_text_emb, item_texts=item_texts, valid=valid
        )
        return self._attach(sasrec, EASE(self.config.ease).fit(sequences, n_items))

    def score(self, histories: Sequence[Sequence[int]]) -> np.ndarray:
        # each member cleans and truncates the histories its own way (SASRec keeps its window)
        w = self.config.ease_weight
        out = np.full((len(histories), self.n_items_ + 1), NEG_INF, dtype=np.float32)
        z_sasrec = standardise_rows(self.sasrec_.score(histories))[:, 1:]
        if w == 0:
            out[:, 1:] = z_sasrec
            return out
        # EASE abstains on items it never saw in training (new products): they keep SASRec's
        # z-score whole instead of EASE's "no evidence", which would bury exactly the items the
        # text side is there to surface.
        known = self._ease_known
        z_ease = standardise_rows(self.ease_.score(histories), over=known)[:, 1:]
        out[:, 1:] = (1.0 - w) * z_sasrec + w * np.where(known[1:], z_ease, z_sasrec)
        return out

    def item_embeddings(self) -> np.ndarray:
        """SASRec's (n_items+1, d) item table: the blend's item space for similar items."""
        return self.sasrec_.item_embeddings()

    def similar_items(self, item: int, k: int) -> tuple[np.ndarray, np.ndarray]:
        return self.sasrec_.similar_items(item, k)

    def save(self, directory: Path) -> None:
        write_config(directory, self.kind, _WeightOnly(self.config.ease_weight), {"n_items": self.n_items_})
        self.sasrec_.save(directory / "sasrec")
        self.ease_.save(directory / "ease")

    @classmethod
    def load(cls, directory: Path) -> Self:
        saved, _ = read_config(directory, cls.kind, _WeightOnly)
        sasrec, ease = SASRec.load(directory / "sasrec"), EASE.load(directory / "ease")
        return cls.of_fitted(sasrec, ease, saved.ease_weight)


@dataclass(frozen=True)
class _WeightOnly:
    """What `config.json` holds; the members' configs live in their own folders."""

    ease_weight: float = 0.1
