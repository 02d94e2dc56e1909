"""Team-draft interleaving: construction rules, credit, and the preference test on simulated clicks."""

from __future__ import annotations

import numpy as np
import pytest

from shoploop.evaluation.interleaving import (
    TEAM_A,
    TEAM_B,
    credit,
    preference_test,
    query_outcome,
    team_draft,
)


def test_team_draft_structure() -> None:
    rng = np.random.default_rng(0)
    a = ["x", "y", "z", "w"]
    b = ["y", "q", "x", "r"]
    for _ in range(50):
        items, teams = team_draft(a, b, 4, rng)
        assert len(items) == len(set(items)) == 4
        # team sizes never differ by more than one at any prefix (the draft alternates fairly)
        diff = np.cumsum([1 if t == TEAM_A else -1 for t in teams])
        assert np.abs(diff).max() <= 1
        # each team's items appear in the order of its own ranking
        for team, ranking in ((TEAM_A, a), (TEAM_B, b)):
            mine = [i for i, t in zip(items, teams, strict=True) if t == team]
            assert mine == sorted(mine, key=ranking.index)


def test_team_draft_by_hand_with_fixed_coin() -> None:
    class Coin:
        """rng stub: first coin says A, then B."""

        def __init__(self) -> None:
            self.flips = iter([0, 1])

        def integers(self, lo: int, hi: int) -> int:
            return next(self.flips)

    # round 1 tie -> coin 0 -> A drafts 1 ; then B has fewer -> B drafts its top unseen: 3
    # round 3 tie -> coin 1 -> B drafts 2 (its next unseen) ; then A has fewer -> A drafts 4
    items, teams = team_draft([1, 2, 4], [3, 2, 5], 4, Coin())  # type: ignore[arg-type]
    assert items == [1, 3, 2, 4]
    assert teams == [TEAM_A, TEAM_B, TEAM_B, TEAM_A]


def test_team_draft_short_rankings_and_k() -> None:
    rng = np.random.default_rng(1)
    items, _teams = team_draft([1], [2, 3, 4], 10, rng)
    assert sorted(items) == [1, 2, 3, 4]  # A ran out; B fills
    assert team_draft([], [], 5, rng) == ([], [])
    assert len(team_draft([1, 2, 3], [3, 2, 1], 2, rng)[0]) == 2


def test_credit_and_outcome() -> None:
    teams = [TEAM_A, TEAM_B, TEAM_B, TEAM_A]
    assert credit(teams, [0, 1, 2, 2]) == (1, 2)  # duplicate click on slot 2 counts once
    assert query_outcome(teams, [0, 1, 2]) == -1
    assert query_outcome(teams, [0, 3]) == 1
    assert query_outcome(teams, []) == 0
    with pytest.raises(ValueError):
        credit(teams, [7])


def test_preference_statistic_by_hand() -> None:
    # 6 wins A, 2 wins B, 2 ties: Delta = (6 + 1) / 10 - 0.5 = 0.2
    res = preference_test([1] * 6 + [-1] * 2 + [0] * 2)
    assert (res.wins_a, res.wins_b, res.ties) == (6, 2, 2)
    assert res.delta_ab == pytest.approx(0.2)
    # sign test on 6 of 8: two-sided p = 2 * P(X >= 6 | n=8) = 2 * (28 + 8 + 1) / 256 = 0.2890625
    assert res.p_value == pytest.approx(74 / 256)
    empty = preference_test([])
    assert empty.delta_ab == 0.0 and empty.p_value == 1.0


def _simulate(ranker_a, ranker_b, n_queries: int, seed: int):
    """Users click each slot with P = relevance * position bias; relevance is 1 for the first 5 items."""
    rng = np.random.default_rng(seed)
    n_items = 30
    bias = 1.0 / np.arange(1, 11)
    outcomes = []
    for _ in range(n_queries):
        relevant = rng.choice(n_items, 5, replace=False)
        rel = np.zeros(n_items)
        rel[relevant] = 0.8
        items, teams = team_draft(ranker_a(rel, rng), ranker_b(rel, rng), 10, rng)
        p = rel[np.asarray(items)] * bias[: len(items)]
        clicked = np.flatnonzero(rng.random(len(items)) < p)
        if clicked.size:
            outcomes.append(query_outcome(teams, clicked))
    return preference_test(outcomes)


def _good(rel, rng):  # relevant items first (noisy order)
    return list(np.argsort(-(rel + 0.3 * rng.random(rel.shape[0]))))


def _random(rel, rng):
    return list(rng.permutation(rel.shape[0]))


def test_identical_rankers_show_no_preference() -> None:
    def fixed(rel, rng):
        return list(np.argsort(-rel, kind="stable"))

    res = _simulate(fixed, fixed, 600, seed=3)
    assert abs(res.delta_ab) < 0.05
    assert res.p_value > 0.05


def test_planted_better_ranker_wins() -> None:
    res = _simulate(_good, _random, 300, seed=4)
    assert res.delta_ab > 0.2
    assert res.p_value < 1e-6
    flipped = _simulate(_random, _good, 300, seed=4)
    assert flipped.delta_ab < -0.2
