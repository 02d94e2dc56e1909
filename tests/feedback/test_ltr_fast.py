"""`LearnedRanker.rerank` serves what it always served: the same order, scores and (once
`full_explanation()` is called, as the engine does for shown items) the same explanations,
key for key, as the eager implementation it replaced, kept below as the oracle; and the
TreeSHAP contributions are only computed when one of the explained items is shown."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
import pytest

from shoploop.domain import ClickEvent, ImpressionEvent, ShownItem
from shoploop.feedback.features import FEATURE_NAMES, FeatureContext
from shoploop.feedback.ltr import LambdaMARTRanker, LearnedRanker, RankerConfig, bounded_promotion
from shoploop.feedback.online import OnlineState, UserProfile
from shoploop.ranking.rules import Candidate
from tests.feedback.test_features_fast import FakeProduct, reference_transform


def reference_rerank(
    ranker: LearnedRanker,
    cands: list[Candidate],
    ctx: FeatureContext,
    *,
    max_promotion: int | None = None,
    explain_top: int | None = None,
) -> list[Candidate]:
    """The eager re-rank as it was: contributions computed and attached before returning."""
    if not cands:
        return []
    X = reference_transform([c.item_id for c in cands], [c.explanation for c in cands], ctx)
    learned = ranker.model.predict(X)
    scores = learned
    if max_promotion is None:
        order = np.argsort(-learned, kind="stable")
    else:
        order = bounded_promotion(learned, max_promotion)
        scores = learned.copy()
        scores[order] = np.minimum.accumulate(learned[order])
    top = order[: ranker.explain_top if explain_top is None else explain_top]
    contrib = ranker.model.contributions(X[top])
    names = ranker.model.feature_names_
    explained: dict[int, dict[str, Any]] = {}
    for row, i in enumerate(top.tolist()):
        c = contrib[row, :-1]
        best = np.argsort(-np.abs(c))[: ranker.top_contributions]
        explained[i] = {
            "score": float(learned[i]),
            "bias": float(contrib[row, -1]),
            "contributions": {names[j]: round(float(c[j]), 5) for j in best if c[j] != 0.0},
        }
    out = []
    for i in order.tolist():
        cand = cands[i]
        expl = dict(cand.explanation)
        expl["ltr"] = explained.get(i, {"score": float(learned[i])})
        out.append(replace(cand, score=float(scores[i]), explanation=expl))
    return out


def served(ranked: list[Candidate]) -> list[tuple[Any, ...]]:
    """What a shopper sees: ids, exact scores, full explanations and their key order."""
    out = []
    for c in ranked:
        expl = c.full_explanation()
        out.append((c.item_id, c.score, expl, list(expl), list(expl.get("ltr", {}))))
    return out


@pytest.fixture(scope="module")
def ranker() -> LearnedRanker:
    rng = np.random.default_rng(3)
    n_lists, size = 60, 12
    X = rng.gamma(2.0, 1.0, (n_lists * size, len(FEATURE_NAMES))).astype(np.float32)
    signal = X[:, 0] + 0.5 * np.sin(3 * X[:, 5]) + 0.3 * X[:, 9] * X[:, 11] + rng.normal(0, 0.5, len(X))
    y = np.digitize(signal, np.quantile(signal, [0.7, 0.9, 0.97]))
    config = RankerConfig(n_estimators=40, bags=3, valid_fraction=0.0)
    return LearnedRanker(LambdaMARTRanker(config).fit(X, y, np.full(n_lists, size)), explain_top=5)


T0 = datetime(2024, 3, 1, tzinfo=UTC)


def world(seed: int, n: int, *, query: str | None, known: bool) -> tuple[list[Candidate], FeatureContext]:
    """A category page or a search: counters from shown and clicked lists, a shopper, candidates
    whose explanations look like the engine's (some items not in the catalog)."""
    rng = np.random.default_rng(seed)
    items = [f"sku-{k}" for k in range(n)]
    catalog = {
        i: FakeProduct(
            ("Home", ("Lamps", "Rugs")[k % 2]), ("acme", "bolt", None)[k % 3], float(rng.uniform(5, 500))
        )
        for k, i in enumerate(items)
        if k % 7
    }
    online = OnlineState(lookup=lambda _i: None)
    surface = "search" if query else "browse"
    for r in range(40):
        shown = rng.choice(items, size=min(8, n), replace=False)
        ts = T0 + timedelta(minutes=17 * r)
        online.update(
            ImpressionEvent(
                user_id="u",
                timestamp=ts,
                request_id=f"r{r}",
                surface=surface,
                query=query,
                items=tuple(ShownItem(item_id=str(i), position=p + 1) for p, i in enumerate(shown)),
            )
        )
        for p, i in enumerate(shown):
            if rng.random() < 0.4 / (p + 1):
                online.update(ClickEvent(user_id="u", timestamp=ts, item_id=str(i), request_id=f"r{r}"))
    profile = (
        UserProfile(
            "u",
            ("sku-1",),
            (),
            {"Home": 4.0, "Lamps": 2.5, "Rugs": -1.0},
            {"acme": 3.0},
            frozenset(),
            frozenset({"sku-2"}),
        )
        if known
        else UserProfile("new", (), (), {}, {}, frozenset(), frozenset())
    )
    ctx = FeatureContext(online, catalog.get, query=query, profile=profile, surface=surface)
    cands = []
    for k, i in enumerate(items):
        if query:
            expl: dict[str, Any] = {
                "retrieval_score": float(rng.random()),
                "scores": {"bm25": float(rng.gamma(2.0)), "dense": float(rng.random())},
                "retrievers": {"bm25": {"rank": k + 1}},
                "matched_terms": ["red", "lamp"][: k % 3],
            }
        else:
            expl = {"popularity": float(rng.gamma(1.0)), "featured_score": float(n - k + rng.random())}
        cands.append(Candidate(i, float(n - k), expl, ["popular here"]))
    return cands, ctx


@pytest.mark.parametrize("query", [None, "red lamp"])
@pytest.mark.parametrize("known", [False, True])
@pytest.mark.parametrize(
    ("max_promotion", "explain_top"), [(None, 3), (None, None), (2, 3), (0, 0), (None, 100)]
)
def test_rerank_serves_what_the_eager_implementation_served(ranker, query, known, max_promotion, explain_top):
    for seed, n in ((0, 50), (1, 12), (2, 1)):
        cands, ctx = world(seed, n, query=query, known=known)
        want = reference_rerank(ranker, cands, ctx, max_promotion=max_promotion, explain_top=explain_top)
        got = ranker.rerank(cands, ctx, max_promotion=max_promotion, explain_top=explain_top)
        assert served(got) == served(want)
        explained = sum("contributions" in c.explanation["ltr"] for c in got)
        assert explained == min(n, ranker.explain_top if explain_top is None else explain_top)
        assert [c.reasons for c in got] == [c.reasons for c in want]
    assert rerank_empty(ranker) == []


def rerank_empty(ranker: LearnedRanker) -> list[Candidate]:
    return ranker.rerank([], world(0, 3, query=None, known=False)[1])


def counting(ranker: LearnedRanker) -> tuple[LearnedRanker, list[int]]:
    """The ranker with its model's `contributions` counting the rows it is asked for."""
    calls: list[int] = []
    model = LambdaMARTRanker(ranker.model.config)
    model.__dict__.update(ranker.model.__dict__)
    inner = model.contributions

    def contributions(X: np.ndarray) -> np.ndarray:
        calls.append(len(X))
        return inner(X)

    model.contributions = contributions  # type: ignore[method-assign]
    return LearnedRanker(model, explain_top=ranker.explain_top), calls


def test_contributions_are_computed_once_and_only_when_an_explained_item_is_shown(ranker):
    counted, calls = counting(ranker)
    cands, ctx = world(0, 60, query=None, known=True)
    want = served(reference_rerank(ranker, cands, ctx, explain_top=3))
    ranked = counted.rerank(cands, ctx, explain_top=3)
    assert calls == []  # re-ranking alone explains nothing
    assert all(list(c.explanation["ltr"]) == ["score"] for c in ranked)
    for c in ranked[24:48]:  # page 2 of 24: none of the top three is shown
        c.full_explanation()
    assert calls == []
    ranked[1].full_explanation()  # page 1: one call explains all three
    assert calls == [3]
    assert served(ranked) == want and calls == [3]


def test_copies_and_earlier_details_see_the_same_explanation(ranker):
    cands, ctx = world(1, 20, query="red lamp", known=True)
    # a detail not yet merged (the searcher's per-hit one): it still comes first, and the keys
    # the candidate's explanation has override it
    cands = [
        replace(c, detail=lambda k=k: {"bm25_terms": k, "retrieval_score": -1.0}) for k, c in enumerate(cands)
    ]
    want = served(reference_rerank(ranker, cands, ctx, explain_top=4))
    assert all(next(iter(expl)) == "bm25_terms" and expl["retrieval_score"] >= 0 for _, _, expl, _, _ in want)
    assert served(ranker.rerank(cands, ctx, explain_top=4)) == want
    # rules copy candidates (a new explanation dict, the same detail); every copy is complete
    ranked = ranker.rerank(cands, ctx, explain_top=4)
    copies = [Candidate(c.item_id, c.score, dict(c.explanation), list(c.reasons), c.detail) for c in ranked]
    assert served(copies) == want and served(ranked) == want
