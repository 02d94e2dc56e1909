"""BM25 over our analyzer (`shoploop.text.normalize.analyze`) with incremental updates.

bm25s builds a static, precomputed sparse score matrix (fast: one query = a sum of a few
sparse columns). It cannot add or remove documents, so updates work like a small LSM tree:

* a **deleted-key set** masks main-index documents (deleted or replaced by an upsert);
* a **delta** holds recently upserted documents, scored at query time with the same Lucene
  BM25 formula and the main index's statistics (df, N, avgdl), so delta and main scores are
  on the same scale;
* when the delta grows past `delta_rebuild_threshold`, or on an explicit `rebuild()`, the main
  index is rebuilt from all live documents and the delta/deleted set are cleared.

Documents are addressed by integer keys chosen by the caller (the hybrid searcher's catalog
row), so every retriever shares one key space and filters are plain boolean masks.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from shoploop.text.normalize import analyze

__all__ = ["BM25Config", "BM25Index"]


@dataclass(frozen=True)
class BM25Config:
    k1: float = 1.2
    b: float = 0.75
    stem: bool = True
    remove_stopwords: bool = True
    delta_rebuild_threshold: int = 2000


class BM25Index:
    """Lucene-variant BM25 keyed by int keys; see module docstring."""

    def __init__(self, config: BM25Config = BM25Config()) -> None:
        self.config = config

    # ----------------------------------------------------------------- building
    def analyze(self, text: str) -> list[str]:
        from shoploop.text.normalize import STOPWORDS

        return analyze(
            text, stopwords=STOPWORDS if self.config.remove_stopwords else None, stem=self.config.stem
        )

    def fit(
        self, keys: Sequence[int], texts: Sequence[str], *, tokens: Sequence[list[str]] | None = None
    ) -> BM25Index:
        """Index `texts` under `keys`. `tokens` (already analyzed) skips re-analysis on rebuilds."""
        if len(keys) != len(texts):
            raise ValueError("keys: must have the same length as texts")
        toks = list(tokens) if tokens is not None else [self.analyze(t) for t in texts]
        self._build(np.asarray(keys, dtype=np.int64), toks)
        return self

    def _build(self, keys: np.ndarray, toks: list[list[str]]) -> None:
        import bm25s

        self.main_keys_ = keys
        # Main-index documents are kept for rebuilds, df and "matched terms", as one
        # space-joined string each: a list of token strings per document cost ~115 MiB on a
        # 46k-product catalog, the joined strings ~15 MiB (splitting on demand is ~1 us).
        self.main_docs_ = [" ".join(t) for t in toks]
        self.key_to_main_ = {int(k): i for i, k in enumerate(keys)}
        self.deleted_: set[int] = set()
        self.delta_: dict[int, list[str]] = {}
        self.df_: Counter[str] = Counter()
        for t in toks:
            self.df_.update(set(t))
        self.n_docs_ = max(len(toks), 1)
        self.avgdl_ = (sum(len(t) for t in toks) / len(toks)) if toks else 1.0
        # bm25s needs at least one document with one token; an empty catalog gets a placeholder.
        corpus = toks if any(toks) else [["\x00"]]
        model = bm25s.BM25(k1=self.config.k1, b=self.config.b, method="lucene")
        model.index(corpus, show_progress=False)
        self.bm25_ = model

    # ----------------------------------------------------------------- updates
    def upsert(self, keys: Sequence[int], texts: Sequence[str]) -> None:
        for key, text in zip(keys, texts, strict=True):
            key = int(key)
            if key in self.key_to_main_:
                self.deleted_.add(key)  # the main copy is stale; the delta copy wins
            self.delta_[key] = self.analyze(text)
        if len(self.delta_) > self.config.delta_rebuild_threshold:
            self.rebuild()

    def delete(self, keys: Sequence[int]) -> None:
        for key in keys:
            key = int(key)
            self.delta_.pop(key, None)
            if key in self.key_to_main_:
                self.deleted_.add(key)

    def rebuild(self) -> None:
        """Fold the delta into a fresh main index (drops deleted documents)."""
        live_keys: list[int] = []
        live_toks: list[list[str]] = []
        for key, doc in zip(self.main_keys_.tolist(), self.main_docs_, strict=True):
            if key not in self.deleted_:
                live_keys.append(key)
                live_toks.append(doc.split())
        for key, toks in self.delta_.items():
            live_keys.append(key)
            live_toks.append(toks)
        self._build(np.asarray(live_keys, dtype=np.int64), live_toks)

    # ----------------------------------------------------------------- scoring
    def idf(self, token: str) -> float:
        df = self.df_.get(token, 0)
        return math.log(1 + (self.n_docs_ - df + 0.5) / (df + 0.5))

    def _delta_score(self, query: list[str], doc: list[str]) -> float:
        k1, b = self.config.k1, self.config.b
        tf = Counter(doc)
        norm = k1 * (1 - b + b * len(doc) / self.avgdl_)
        return float(sum(self.idf(t) * tf[t] / (tf[t] + norm) for t in query if t in tf))

    def score_all(self, query_tokens: Sequence[str], n_keys: int) -> np.ndarray:
        """(n_keys,) float32 scores in key space; deleted keys and keys never indexed score 0."""
        out = np.zeros(n_keys, dtype=np.float32)
        vocab = self.bm25_.vocab_dict
        ids = [vocab[t] for t in query_tokens if t in vocab]
        if ids:
            main = self.bm25_.get_scores_from_ids(ids)[: len(self.main_keys_)]
            valid = self.main_keys_ < n_keys
            out[self.main_keys_[valid]] = main[valid]
            if self.deleted_:
                dead = np.fromiter((k for k in self.deleted_ if k < n_keys), dtype=np.int64)
                out[dead] = 0.0
        q = list(query_tokens)
        for key, toks in self.delta_.items():
            if key < n_keys:
                out[key] = self._delta_score(q, toks)
        return out

    def doc_tokens(self, key: int) -> list[str]:
        """Analyzed tokens of the live document under `key` (for "matched terms" explanations)."""
        if key in self.delta_:
            return self.delta_[key]
        i = self.key_to_main_.get(int(key))
        return [] if i is None or key in self.deleted_ else self.main_docs_[i].split()

    def matched_terms(self, key: int, tokens: Iterable[str]) -> list[str]:
        """The query `tokens` that occur in the live document under `key`, sorted."""
        if key in self.delta_:
            doc = set(self.delta_[key])
            return sorted(t for t in set(tokens) if t in doc)
        i = self.key_to_main_.get(int(key))
        if i is None or key in self.deleted_:
            return []
        # Substring tests on the stored joined document: no split of every hit per query.
        padded = f" {self.main_docs_[i]} "
        return sorted(t for t in set(tokens) if f" {t} " in padded)

    def live_keys(self) -> np.ndarray:
        main = [k for k in self.main_keys_.tolist() if k not in self.deleted_]
        return np.asarray(sorted(set(main) | set(self.delta_)), dtype=np.int64)

    # ----------------------------------------------------------------- persistence
    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.bm25_.save(str(directory / "bm25s"))
        state = {
            "config": asdict(self.config),
            "deleted": sorted(self.deleted_),
            "delta": {str(k): v for k, v in self.delta_.items()},
            "n_docs": self.n_docs_,
            "avgdl": self.avgdl_,
        }
        (directory / "bm25_state.json").write_text(json.dumps(state))
        # Main tokens are needed for rebuilds and df; one space-joined line per document.
        np.savez_compressed(
            directory / "bm25_main.npz",
            keys=self.main_keys_,
            tokens=np.asarray(self.main_docs_, dtype=object).astype(str),
        )

    @classmethod
    def load(cls, directory: Path) -> BM25Index:
        import bm25s

        state = json.loads((directory / "bm25_state.json").read_text())
        self = cls(BM25Config(**state["config"]))
        with np.load(directory / "bm25_main.npz", allow_pickle=False) as z:
            keys = z["keys"].astype(np.int64)
            docs = [str(d) for d in z["tokens"].tolist()]
        self.main_keys_ = keys
        self.main_docs_ = docs  # joined strings, as in _build
        self.key_to_main_ = {int(k): i for i, k in enumerate(keys)}
        self.df_ = Counter()
        for doc in docs:
            self.df_.update(set(doc.split()))
        self.n_docs_ = state["n_docs"]
        self.avgdl_ = state["avgdl"]
        self.deleted_ = set(state["deleted"])
        self.delta_ = {int(k): v for k, v in state["delta"].items()}
        self.bm25_ = bm25s.BM25.load(str(directory / "bm25s"), mmap=False)
        return self
