"""The one `Recommender` contract and the helpers every implementation shares.

Items are dense ints 1..n_items (see `shoploop.domain.IdMap`); 0 is padding. Every score
matrix has `n_items + 1` columns so that column j is item j; column 0 is always -inf.

Conventions shared by all recommenders (and checked by one contract test suite):
- histories may contain unknown items (<= 0 or > n_items): they are dropped, never an error;
- empty histories are allowed: the model falls back to what it knows without a user
  (popularity for the baselines, the learned "empty" state for the transformer);
- `recommend` and `recommend_one` agree; ties are broken by lower item index so results are
  deterministic (the evaluation protocol breaks ties the same way);
- when fewer than k items have a finite score, the remaining slots hold index 0 and -inf.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, fields, is_dataclass
from pathlib import Path
from typing import Any, Protocol, Self, runtime_checkable

import numpy as np

NEG_INF = -np.inf


@runtime_checkable
class Recommender(Protocol):
    """Next-item recommender over dense item indices 1..n_items."""

    n_items_: int

    def fit(
        self,
        sequences: Sequence[Sequence[int]],
        n_items: int,
        *,
        item_text_emb: np.ndarray | None = None,
        timestamps: Sequence[Sequence[float]] | None = None,
    ) -> Self: ...

    def score(self, histories: Sequence[Sequence[int]]) -> np.ndarray:
        """(n, n_items + 1) float32 scores, column 0 = -inf (padding)."""
        ...

    def recommend(
        self,
        histories: Sequence[Sequence[int]],
        k: int,
        *,
        exclude_seen: bool = True,
        exclude: Sequence[Sequence[int]] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]: ...

    def recommend_one(
        self,
        history: Sequence[int],
        k: int,
        *,
        exclude_seen: bool = True,
        exclude: Sequence[int] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]: ...

    def similar_items(self, item: int, k: int) -> tuple[np.ndarray, np.ndarray]: ...

    def save(self, directory: Path) -> None: ...

    @classmethod
    def load(cls, directory: Path) -> Self: ...


# ----------------------------------------------------------------------------- helpers


def clean_history(history: Sequence[int], n_items: int, max_len: int | None = None) -> list[int]:
    """Drop unknown items (<= 0 or > n_items) and keep the most recent `max_len`."""
    out = [int(i) for i in history if 0 < int(i) <= n_items]
    if max_len is not None and len(out) > max_len:
        out = out[-max_len:]
    return out


def top_k(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-k columns per row of `scores` (n, m), best first, ties -> lower index first.

    Returns (indices (n, k) int64, values (n, k) float32); slots without a finite score
    hold index 0 and -inf.
    """
    scores = np.asarray(scores, dtype=np.float32)
    n, m = scores.shape
    k_eff = min(k, m)
    if k_eff < m:
        # argpartition is O(m); widen by ties at the boundary so tie-breaking stays exact.
        part = np.argpartition(-scores, k_eff - 1, axis=1)[:, :k_eff]
        kth = np.min(np.take_along_axis(scores, part, axis=1), axis=1, keepdims=True)
        idx_rows = []
        for r in range(n):
            cand = np.flatnonzero(scores[r] >= kth[r])
            order = np.lexsort((cand, -scores[r, cand]))[:k_eff]
            idx_rows.append(cand[order])
        idx = np.stack(idx_rows) if n else np.zeros((0, k_eff), dtype=np.int64)
    else:
        idx = np.lexsort((np.broadcast_to(np.arange(m), scores.shape), -scores), axis=1)[:, :k_eff]
    idx = idx.astype(np.int64)
    vals = np.take_along_axis(scores, idx, axis=1)
    finite = np.isfinite(vals)
    idx = np.where(finite, idx, 0)
    vals = np.where(finite, vals, NEG_INF).astype(np.float32)
    if k_eff < k:
        pad = k - k_eff
        idx = np.pad(idx, ((0, 0), (0, pad)))
        vals = np.pad(vals, ((0, 0), (0, pad)), constant_values=NEG_INF)
    return idx, vals


def mask_items(
    scores: np.ndarray,
    histories: Sequence[Sequence[int]] | None,
    exclude: Sequence[Sequence[int]] | None,
) -> np.ndarray:
    """Set the given items' scores to -inf in place (unknown items are ignored); returns scores."""
    m = scores.shape[1]
    for source in (histories, exclude):
        if source is None:
            continue
        for r, items in enumerate(source):
            ids = np.asarray([i for i in items if 0 < int(i) < m], dtype=np.int64)
            if ids.size:
                scores[r, ids] = NEG_INF
    scores[:, 0] = NEG_INF
    return scores


def unit_rows(emb: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (zero rows stay zero), float32."""
    emb = np.asarray(emb, dtype=np.float32)
    norms = np.linalg.norm(emb, axis=1, keepdims=True)
    return emb / np.where(norms > 0, norms, 1.0)


def cosine_neighbours(unit: np.ndarray, item: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Items most cosine-similar to `item`; `unit` = `unit_rows(emb)` (n_items+1, d), cached by
    the caller so a request costs one (n, d) @ (d,) product. Excludes the item itself and 0."""
    n = unit.shape[0]
    if not 0 < item < n:
        return np.zeros(k, dtype=np.int64), np.full(k, NEG_INF, dtype=np.float32)
    sims = unit @ unit[item]
    sims[0] = NEG_INF
    sims[item] = NEG_INF
    idx, vals = top_k(sims[None, :], k)
    return idx[0], vals[0]


class RecommenderMixin:
    """`recommend`, `recommend_one` and a batched `score` loop built on `_score_batch`."""

    n_items_: int
    score_batch_size: int = 512

    def _score_batch(self, histories: list[list[int]]) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def _max_len(self) -> int | None:
        return None

    def score(self, histories: Sequence[Sequence[int]]) -> np.ndarray:
        cleaned = [clean_history(h, self.n_items_, self._max_len()) for h in histories]
        out = np.empty((len(cleaned), self.n_items_ + 1), dtype=np.float32)
        for start in range(0, len(cleaned), self.score_batch_size):
            chunk = cleaned[start : start + self.score_batch_size]
            out[start : start + len(chunk)] = self._score_batch(chunk)
        out[:, 0] = NEG_INF
        return out

    def recommend(
        self,
        histories: Sequence[Sequence[int]],
        k: int,
        *,
        exclude_seen: bool = True,
        exclude: Sequence[Sequence[int]] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        scores = self.score(histories)
        mask_items(scores, histories if exclude_seen else None, exclude)
        return top_k(scores, k)

    def recommend_one(
        self,
        history: Sequence[int],
        k: int,
        *,
        exclude_seen: bool = True,
        exclude: Sequence[int] | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        idx, vals = self.recommend(
            [history], k, exclude_seen=exclude_seen, exclude=None if exclude is None else [exclude]
        )
        return idx[0], vals[0]


# --------------------------------------------------------------------------- persistence


def write_config(directory: Path, kind: str, config: Any, extra: dict[str, Any] | None = None) -> None:
    """Write `config.json` = {"kind", "config", **extra}; config must be a dataclass."""
    directory.mkdir(parents=True, exist_ok=True)
    payload = {"kind": kind, "config": asdict(config) if is_dataclass(config) else config}
    payload.update(extra or {})
    (directory / "config.json").write_text(json.dumps(payload, indent=2), encoding="utf-8")


def read_config(directory: Path, kind: str, config_cls: type) -> tuple[Any, dict[str, Any]]:
    payload = json.loads((directory / "config.json").read_text(encoding="utf-8"))
    if payload.get("kind") != kind:
        raise ValueError(f"{directory} holds a {payload.get('kind')!r} model, not {kind!r}")
    names = {f.name for f in fields(config_cls)}
    raw = {k: (tuple(v) if isinstance(v, list) else v) for k, v in payload["config"].items() if k in names}
    return config_cls(**raw), payload


def save_arrays(directory: Path, **arrays: np.ndarray) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    np.savez(directory / "arrays.npz", **arrays)


def load_arrays(directory: Path) -> dict[str, np.ndarray]:
    with np.load(directory / "arrays.npz", allow_pickle=False) as data:
        return {k: data[k] for k in data.files}


def item_counts(sequences: Sequence[Sequence[int]], n_items: int) -> np.ndarray:
    """(n_items+1,) float64 occurrence counts; unknown ids ignored."""
    flat = np.fromiter((i for s in sequences for i in s), dtype=np.int64)
    flat = flat[(flat > 0) & (flat <= n_items)]
    return np.bincount(flat, minlength=n_items + 1).astype(np.float64)
