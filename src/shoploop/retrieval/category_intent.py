"""Category intent: which categories a query is about, learned from (query, category) evidence.

TF-IDF over our analyzer's tokens (plus word bigrams) feeding a multinomial logistic
regression. The training pairs come from judgments or clicks: each (query, category of a
judged/clicked product) is one example, weighted by relevance or click count, so a query whose
good products fall in two categories learns a split distribution. Prediction is a softmax we
compute ourselves from the saved coefficients, so `load` needs only numpy (no pickle).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from shoploop.text.normalize import analyze

__all__ = ["CategoryIntentConfig", "CategoryIntentModel"]


@dataclass(frozen=True)
class CategoryIntentConfig:
    C: float = 4.0  # inverse L2 strength; queries are short and sparse, so regularise lightly
    min_df: int = 1
    max_iter: int = 300
    bigrams: bool = True
    seed: int = 0


class CategoryIntentModel:
    def __init__(self, config: CategoryIntentConfig = CategoryIntentConfig()) -> None:
        self.config = config

    def _features(self, query: str) -> list[str]:
        toks = analyze(query)
        if self.config.bigrams:
            toks = toks + [f"{a}_{b}" for a, b in itertools.pairwise(toks)]
        return toks

    def _matrix(self, queries: Sequence[str]) -> sp.csr_matrix:
        rows, cols, vals = [], [], []
        for i, q in enumerate(queries):
            feats: dict[int, float] = {}
            for t in self._features(q):
                j = self.vocab_.get(t)
                if j is not None:
                    feats[j] = feats.get(j, 0.0) + 1.0
            for j, tf in feats.items():
                rows.append(i)
                cols.append(j)
                vals.append((1.0 + np.log(tf)) * self.idf_[j])
        X = sp.csr_matrix((vals, (rows, cols)), shape=(len(queries), len(self.vocab_)), dtype=np.float64)
        norms = np.sqrt(np.asarray(X.multiply(X).sum(axis=1)).ravel())
        norms[norms == 0] = 1.0
        return sp.csr_matrix(X.multiply(1.0 / norms[:, None]))

    def fit(
        self, queries: Sequence[str], categories: Sequence[str], weights: Sequence[float] | None = None
    ) -> CategoryIntentModel:
        """One row per (query, category) example; `weights` e.g. relevance or click counts."""
        from sklearn.linear_model import LogisticRegression

        if len(queries) != len(categories):
            raise ValueError("categories: must have the same length as queries")
        uniq = sorted(set(queries))
        df: dict[str, int] = {}
        for q in uniq:
            for t in set(self._features(q)):
                df[t] = df.get(t, 0) + 1
        terms = sorted(t for t, c in df.items() if c >= self.config.min_df)
        self.vocab_ = {t: i for i, t in enumerate(terms)}
        n = len(uniq)
        self.idf_ = np.asarray([np.log((1 + n) / (1 + df[t])) + 1.0 for t in terms], dtype=np.float64)
        self.classes_ = sorted(set(categories))
        if len(self.classes_) < 2:
            # One category: nothing to learn, every query predicts it with probability 1.
            self.coef_ = np.zeros((1, len(terms)))
            self.intercept_ = np.zeros(1)
            return self
        cls_idx = {c: i for i, c in enumerate(self.classes_)}
        X = self._matrix(queries)
        y = np.asarray([cls_idx[c] for c in categories])
        w = None if weights is None else np.asarray(weights, dtype=np.float64)
        lr = LogisticRegression(C=self.config.C, max_iter=self.config.max_iter, random_state=self.config.seed)
        lr.fit(X, y, sample_weight=w)
        coef, intercept = lr.coef_, lr.intercept_
        if len(self.classes_) == 2:  # sklearn stores one row for binary problems; expand to softmax form
            coef = np.vstack([-coef[0] / 2, coef[0] / 2])
            intercept = np.asarray([-intercept[0] / 2, intercept[0] / 2])
        self.coef_, self.intercept_ = coef, intercept
        return self

    def predict_proba(self, queries: Sequence[str]) -> np.ndarray:
        """(n, n_classes) probabilities; rows sum to 1."""
        if len(self.classes_) == 1:
            return np.ones((len(queries), 1))
        logits = self._matrix(queries) @ self.coef_.T + self.intercept_
        logits = logits - logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        return p / p.sum(axis=1, keepdims=True)

    def predict(self, query: str, top: int = 3) -> list[tuple[str, float]]:
        """Top categories with probabilities, best first."""
        p = self.predict_proba([query])[0]
        order = np.argsort(-p, kind="stable")[:top]
        return [(self.classes_[i], float(p[i])) for i in order]

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        meta = {"config": asdict(self.config), "classes": self.classes_, "vocab": list(self.vocab_)}
        (directory / "intent.json").write_text(json.dumps(meta))
        np.savez(directory / "intent.npz", idf=self.idf_, coef=self.coef_, intercept=self.intercept_)

    @classmethod
    def load(cls, directory: Path) -> CategoryIntentModel:
        meta = json.loads((directory / "intent.json").read_text())
        self = cls(CategoryIntentConfig(**meta["config"]))
        self.classes_ = meta["classes"]
        self.vocab_ = {t: i for i, t in enumerate(meta["vocab"])}
        with np.load(directory / "intent.npz", allow_pickle=False) as z:
            self.idf_, self.coef_, self.intercept_ = z["idf"], z["coef"], z["intercept"]
        return self
