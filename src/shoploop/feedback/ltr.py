"""LambdaMART learning to rank (LightGBM) with feature contributions as the explanation.

`LambdaMARTRanker` follows the estimator contract: `__init__` keeps a frozen config,
`fit` returns self, learned state ends in `_`, `save`/`load` write LightGBM's own text
model format plus JSON (never pickle). `LearnedRanker` wraps it with the shared
`FeatureAssembler` and re-orders the engine's candidates, attaching each item's top
feature contributions (`pred_contrib=True`, i.e. TreeSHAP values) to its explanation so
a merchant can see why an item moved (computed only once such an item is shown: see
`LearnedRanker.rerank`).

Training takes per-row weights: the feedback loop passes clipped inverse examination
propensities (see `training_data`), which LightGBM's lambdarank objective multiplies into
each document's gradient, so a click at a rarely examined slot counts for more.
"""

from __future__ import annotations

import heapq
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import lightgbm as lgb
import numpy as np

from shoploop.feedback.features import FEATURE_NAMES, FeatureAssembler, FeatureContext
from shoploop.ranking.rules import Candidate


@dataclass(frozen=True)
class RankerConfig:
    n_estimators: int = 300
    learning_rate: float = 0.05
    num_leaves: int = 15
    min_data_in_leaf: int = 20
    feature_fraction: float = 0.9
    early_stopping_rounds: int = 30  # on a query-group held-out split of the training data
    valid_fraction: float = 0.2
    label_gain: tuple[float, ...] = (0.0, 1.0, 3.0, 7.0)  # none, click, cart, purchase
    eval_at: int = 10
    num_threads: int = 1  # the loop retrains next to a serving process: stay on one core
    seed: int = 0
    # (feature name, +1 / -1): the score may only rise (+1) or fall (-1) with that feature, all
    # else equal. A name the model's features lack is refused at fit time (a typo would
    # otherwise leave the model silently unconstrained).
    monotone: tuple[tuple[str, int], ...] = ()
    # Boosters averaged into one score, each fitted with its own seed and its own split of the
    # lists into training and early-stopping parts. One booster's quality on new queries moves
    # a lot from one retrain to the next (the feedback loop's served NDCG steps up and down at
    # promotions); the mean of five varies less, and on benchmarks/feedback_loop.py (six seeds)
    # raised the share of the gap closed from 48.2% to 49.5% (naive training 43.1% to 46.3%).
    bags: int = 5

    def __post_init__(self) -> None:
        if self.bags < 1:
            raise ValueError(f"bags must be >= 1, got {self.bags!r}")
        for name, direction in self.monotone:
            if direction not in (-1, 1):
                raise ValueError(f"monotone[{name!r}] must be +1 or -1, got {direction!r}")


class LambdaMARTRanker:
    """LightGBM lambdarank; `X` (n, d), `y` (n,) int grades, `group` (n_queries,) list sizes."""

    def __init__(self, config: RankerConfig = RankerConfig()) -> None:
        self.config = config

    def _params(self, feature_names: Sequence[str]) -> dict[str, Any]:
        c = self.config
        params: dict[str, Any] = {
            "objective": "lambdarank",
            "metric": "ndcg",
            "eval_at": [c.eval_at],
            "learning_rate": c.learning_rate,
            "num_leaves": c.num_leaves,
            "min_data_in_leaf": c.min_data_in_leaf,
            "feature_fraction": c.feature_fraction,
            "label_gain": list(c.label_gain),
            "lambdarank_truncation_level": 20,
            "num_threads": c.num_threads,
            "seed": c.seed,
            "deterministic": True,
            "force_row_wise": True,
            "verbosity": -1,
        }
        if c.monotone:
            direction = dict(c.monotone)
            unknown = sorted(set(direction) - set(feature_names))
            if unknown:
                raise ValueError(f"monotone names features the ranker does not have: {unknown}")
            params["monotone_constraints"] = [direction.get(n, 0) for n in feature_names]
        return params

    def fit(
        self,
        X: np.ndarray,
        y: np.ndarray,
        group: np.ndarray,
        *,
        weight: np.ndarray | None = None,
        feature_names: Sequence[str] = FEATURE_NAMES,
    ) -> LambdaMARTRanker:
        X = np.asarray(X, dtype=np.float32)
        y = np.asarray(y, dtype=np.int32)
        group = np.asarray(group, dtype=np.int64)
        if X.shape[0] != y.shape[0] or int(group.sum()) != X.shape[0]:
            raise ValueError("X, y and group disagree: sum(group) must equal len(X) == len(y)")
        if X.shape[1] != len(feature_names):
            raise ValueError(f"X has {X.shape[1]} columns but {len(feature_names)} feature names")
        if int(y.max(initial=0)) >= len(self.config.label_gain):
            raise ValueError(f"labels must be < {len(self.config.label_gain)} (len(label_gain))")
        started = time.perf_counter()
        w = None if weight is None else np.asarray(weight, dtype=np.float64)
        fits = [
            self._fit_one(X, y, group, w, feature_names, self.config.seed + b)
            for b in range(self.config.bags)
        ]
        self.boosters_ = [booster for booster, _, _ in fits]
        self.best_iterations_ = [it for _, it, _ in fits]
        self.feature_names_ = tuple(feature_names)
        scores = [m["valid_ndcg"] for _, _, m in fits]
        self.metrics_ = {
            **fits[0][2],
            "bags": len(fits),
            "best_iteration": self.best_iterations_[0] if len(fits) == 1 else list(self.best_iterations_),
            "valid_ndcg": float(np.mean(scores)),
            "fit_seconds": time.perf_counter() - started,
        }
        return self

    def _fit_one(
        self,
        X: np.ndarray,
        y: np.ndarray,
        group: np.ndarray,
        weight: np.ndarray | None,
        feature_names: Sequence[str],
        seed: int,
    ) -> tuple[lgb.Booster, int, dict[str, Any]]:
        """One booster: a random share of the lists held out for early stopping, by `seed`."""
        rng = np.random.default_rng(seed)
        n_groups = len(group)
        valid = np.zeros(n_groups, dtype=bool)
        if n_groups >= 10 and self.config.valid_fraction > 0:
            valid[rng.permutation(n_groups)[: max(1, int(n_groups * self.config.valid_fraction))]] = True
        rows_valid = np.repeat(valid, group)

        def dataset(mask_rows: np.ndarray, mask_groups: np.ndarray, ref: lgb.Dataset | None = None):
            return lgb.Dataset(
                X[mask_rows],
                label=y[mask_rows],
                group=group[mask_groups],
                weight=None if weight is None else weight[mask_rows],
                feature_name=list(feature_names),
                reference=ref,
                free_raw_data=True,
            )

        train_set = dataset(~rows_valid, ~valid)
        callbacks = []
        valid_sets = []
        if valid.any():
            valid_sets = [dataset(rows_valid, valid, train_set)]
            callbacks.append(lgb.early_stopping(self.config.early_stopping_rounds, verbose=False))
        booster = lgb.train(
            {**self._params(feature_names), "seed": seed},
            train_set,
            num_boost_round=self.config.n_estimators,
            valid_sets=valid_sets,
            callbacks=callbacks,
        )
        best_iteration = int(booster.best_iteration or booster.current_iteration())
        best = booster.best_score.get("valid_0", {}) if valid.any() else {}
        metrics = {
            "train_rows": int((~rows_valid).sum()),
            "train_lists": int((~valid).sum()),
            "valid_lists": int(valid.sum()),
            "best_iteration": best_iteration,
            "valid_ndcg": float(next(iter(best.values()))) if best else float("nan"),
        }
        return booster, best_iteration, metrics

    def _mean(self, X: np.ndarray, **kw: Any) -> np.ndarray:
        X = np.asarray(X, dtype=np.float32)
        out = [
            np.asarray(b.predict(X, num_iteration=it, num_threads=1, **kw))
            for b, it in zip(self.boosters_, self.best_iterations_, strict=True)
        ]
        return out[0] if len(out) == 1 else np.mean(out, axis=0)

    def predict(self, X: np.ndarray) -> np.ndarray:
        """(n,) scores; higher ranks first (the mean over the bagged boosters)."""
        if len(X) == 0:
            return np.zeros(0)
        return self._mean(X)

    def contributions(self, X: np.ndarray) -> np.ndarray:
        """(n, d + 1) per-feature contributions; the last column is the bias. Rows sum to `predict`
        (contributions are additive, so the bag's are the mean of its boosters')."""
        if len(X) == 0:
            return np.zeros((0, len(self.feature_names_) + 1))
        return self._mean(X, pred_contrib=True)

    def feature_importance(self) -> dict[str, float]:
        gains = np.mean(
            [
                b.feature_importance(importance_type="gain", iteration=it)
                for b, it in zip(self.boosters_, self.best_iterations_, strict=True)
            ],
            axis=0,
        )
        return {n: float(g) for n, g in zip(self.feature_names_, gains, strict=True)}

    @staticmethod
    def _model_file(bag: int) -> str:
        # The first booster keeps LightGBM's plain file name, so one-booster rankers saved before
        # bagging existed still load.
        return "model.txt" if bag == 0 else f"model_{bag}.txt"

    def save(self, directory: Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        for bag, (booster, it) in enumerate(zip(self.boosters_, self.best_iterations_, strict=True)):
            (directory / self._model_file(bag)).write_text(booster.model_to_string(num_iteration=it))
        meta = {
            "config": {**asdict(self.config), "label_gain": list(self.config.label_gain)},
            "feature_names": list(self.feature_names_),
            "best_iteration": self.best_iterations_[0],
            "best_iterations": list(self.best_iterations_),
            "metrics": self.metrics_,
        }
        (directory / "ranker.json").write_text(json.dumps(meta, indent=2))

    @classmethod
    def load(cls, directory: Path) -> LambdaMARTRanker:
        directory = Path(directory)
        meta = json.loads((directory / "ranker.json").read_text())
        cfg = dict(meta["config"])
        cfg["label_gain"] = tuple(cfg["label_gain"])
        cfg["monotone"] = tuple((str(n), int(d)) for n, d in cfg.get("monotone", ()))
        cfg.setdefault("bags", 1)  # saved before bagging existed: one booster, whatever today's default
        self = cls(RankerConfig(**cfg))
        self.best_iterations_ = [int(i) for i in meta.get("best_iterations", [meta["best_iteration"]])]
        self.boosters_ = [
            lgb.Booster(model_str=(directory / cls._model_file(bag)).read_text())
            for bag in range(len(self.best_iterations_))
        ]
        self.feature_names_ = tuple(meta["feature_names"])
        self.metrics_ = dict(meta["metrics"])
        return self


def bounded_promotion(scores: np.ndarray, max_promotion: int) -> np.ndarray:
    """Order items (given in their base order, best first) by `scores`, except that no item
    may rise more than `max_promotion` places above its base rank; demotion is free.

    Greedy by slot: slot s takes the best-scored item among those not yet placed whose base
    rank is at most s + max_promotion (ties: the better base rank). The set is never empty:
    the best-based remaining item has base rank <= s. Returns the indices in serving order.
    """
    if max_promotion < 0:
        raise ValueError(f"max_promotion must be >= 0, got {max_promotion}")
    n = len(scores)
    order = np.empty(n, dtype=np.int64)
    heap: list[tuple[float, int]] = []
    nxt = 0
    for slot in range(n):
        while nxt < n and nxt <= slot + max_promotion:
            heapq.heappush(heap, (-float(scores[nxt]), nxt))
            nxt += 1
        order[slot] = heapq.heappop(heap)[1]
    return order


class LearnedRanker:
    """The serving side: features for candidates -> LambdaMART scores -> re-ordered candidates.

    `examination` is the curve the training features' click-through rates were debiased
    with (None: raw CTR); the engine weighs live impressions by it while this ranker is
    active, so serving features are built the way training features were.
    """

    def __init__(
        self,
        model: LambdaMARTRanker,
        *,
        examination: tuple[float, ...] | None = None,
        explain_top: int = 20,
        top_contributions: int = 5,
    ) -> None:
        names = tuple(model.feature_names_)
        if not set(names) <= set(FeatureAssembler.names):
            unknown = sorted(set(names) - set(FeatureAssembler.names))
            raise ValueError(
                f"ranker was trained on features this version does not build ({unknown}); retrain it"
            )
        # A ranker trained before features were added still serves: it reads the columns it
        # knows, by name (None: the assembler's columns exactly, the usual case).
        self._columns = (
            None
            if names == FeatureAssembler.names
            else np.array([FeatureAssembler.names.index(n) for n in names])
        )
        self.model = model
        self.examination = None if examination is None else tuple(float(t) for t in examination)
        self.assembler = FeatureAssembler()
        self.explain_top = explain_top
        self.top_contributions = top_contributions

    def own_columns(self, X: np.ndarray) -> np.ndarray:
        """The columns of the assembler's features `X` (n, len(FEATURE_NAMES)) this ranker reads."""
        return X if self._columns is None else X[:, self._columns]

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Scores for rows of the assembler's features (as the promotion gate replays them)."""
        return self.model.predict(self.own_columns(X))

    def scores(self, cands: Sequence[Candidate], ctx: FeatureContext) -> tuple[np.ndarray, np.ndarray]:
        """(the features the ranker reads (n, d), scores (n,)) for candidates."""
        X = self.assembler.transform([c.item_id for c in cands], [c.explanation for c in cands], ctx)
        X = self.own_columns(X)
        return X, self.model.predict(X)

    def rerank(
        self,
        cands: Sequence[Candidate],
        ctx: FeatureContext,
        *,
        max_promotion: int | None = None,
        explain_top: int | None = None,
    ) -> list[Candidate]:
        """Candidates sorted by the learned score; the top `explain_top` (default: the ranker's
        own setting) carry their feature contributions, which cost far more than the scores.

        The contributions are computed when first needed, not here: each of the top items gets a
        `Candidate.detail` that fills in its `explanation["ltr"]` ("bias", "contributions") when
        `full_explanation()` is called, as the engine does for the items it shows. TreeSHAP for
        three items of a full-size ranker (5 x 300 trees) costs ~6.5 ms, three quarters of a
        re-rank of 50 candidates, and on page 2 and later none of the top items is shown. Until
        then `explanation["ltr"]` holds the learned "score" only.

        `max_promotion`: no candidate rises more than this many places above its place in
        `cands` (see `bounded_promotion`); the served scores are then made non-increasing down
        the list (the learned score stays in the explanation), so a later stable re-sort (a
        merchandising boost) keeps this order among untouched items."""
        if not cands:
            return []
        X, learned = self.scores(cands, ctx)
        scores = learned
        if max_promotion is None:
            order = np.argsort(-learned, kind="stable")
        else:
            order = bounded_promotion(learned, max_promotion)
            scores = learned.copy()
            scores[order] = np.minimum.accumulate(learned[order])
        ltr = [{"score": s} for s in learned.tolist()]  # each item's explanation["ltr"]
        top = order[: self.explain_top if explain_top is None else explain_top].tolist()
        fill = _Contributions(self.model, X[top], [ltr[i] for i in top], self.top_contributions)
        explained = set(top)
        out = []
        for i, score in zip(order.tolist(), scores[order].tolist(), strict=True):
            cand = cands[i]
            expl = dict(cand.explanation)
            expl["ltr"] = ltr[i]
            detail = fill.then(cand.detail) if i in explained else cand.detail
            out.append(replace(cand, score=score, explanation=expl, detail=detail))
        return out

    def save(self, directory: Path) -> None:
        self.model.save(directory)
        (Path(directory) / "features.json").write_text(json.dumps({"examination": self.examination}))

    @classmethod
    def load(cls, directory: Path) -> LearnedRanker:
        spec = Path(directory) / "features.json"
        examination = json.loads(spec.read_text())["examination"] if spec.exists() else None
        return cls(LambdaMARTRanker.load(directory), examination=examination)


class _Contributions:
    """The top items' TreeSHAP explanations, computed once, the first time one is needed.

    `then(previous)` is a `Candidate.detail` for one of the items: it fills in every top item's
    "ltr" entry (one LightGBM call per booster for all of them, rather than per item: the top
    items are nearly always shown together), then returns what the candidate's earlier detail,
    if any, returns (`{}` otherwise), so `full_explanation()` merges as it would have. The
    values are those an eager call would give: the same feature rows, the same model. The
    entries are filled in place, so copies of the candidate (rules copy the explanation dict,
    not the entries in it) see the same contributions, and the keys keep their eager order
    ("score", "bias", "contributions"). A list is served by one request thread; were two
    threads to fill at once they would write the same values.
    """

    def __init__(
        self, model: LambdaMARTRanker, X: np.ndarray, entries: list[dict[str, Any]], top_contributions: int
    ) -> None:
        self._model = model
        self._X: np.ndarray | None = X
        self._entries = entries
        self._top = top_contributions

    def fill(self) -> None:
        X = self._X
        if X is None:
            return
        contrib = self._model.contributions(X)
        names = self._model.feature_names_
        for row, entry in enumerate(self._entries):
            c = contrib[row, :-1]
            best = np.argsort(-np.abs(c))[: self._top]
            entry["bias"] = float(contrib[row, -1])
            entry["contributions"] = {names[j]: round(float(c[j]), 5) for j in best if c[j] != 0.0}
        self._X = None

    def then(self, previous: Callable[[], dict[str, Any]] | None) -> Callable[[], dict[str, Any]]:
        def detail() -> dict[str, Any]:
            self.fill()
            return previous() if previous is not None else {}

        return detail
