"""Leave-one-out full-ranking protocol against values computed by hand on a 5-item toy."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import pytest

from shoploop.evaluation.sequential_protocol import ProtocolConfig, evaluate_next_item, target_ranks


class FixedScorer:
    """Item 1 best, then 2, 3, 4, 5 - whatever the history."""

    def score(self, histories: Sequence[Sequence[int]]) -> np.ndarray:
        row = np.array([-np.inf, 0.5, 0.4, 0.3, 0.2, 0.1], dtype=np.float32)
        return np.tile(row, (len(histories), 1))


class ConstantScorer:
    def score(self, histories: Sequence[Sequence[int]]) -> np.ndarray:
        out = np.zeros((len(histories), 6), dtype=np.float32)
        out[:, 0] = -np.inf
        return out


HISTORIES = [[1], [], [2, 3]]
TARGETS = [2, 4, 5]


def test_ranks_exclude_history_by_default() -> None:
    # case 1: 1 excluded -> 2 is first; case 2: 1,2,3 ahead -> 4; case 3: 2,3 excluded -> 1,4 ahead -> 3
    ranks, lists = target_ranks(FixedScorer(), HISTORIES, TARGETS, 5, top_lists=2)
    assert ranks.tolist() == [1, 4, 3]
    assert lists.tolist() == [[2, 3], [1, 2], [1, 4]]
    ranks_all, _ = target_ranks(FixedScorer(), HISTORIES, TARGETS, 5, ProtocolConfig(exclude_history=False))
    assert ranks_all.tolist() == [2, 4, 5]


def test_metrics_match_hand_computation() -> None:
    counts = np.array([0, 4, 2, 1, 1, 0], dtype=float)  # p = .5, .25, .125, .125, 0
    m = evaluate_next_item(
        FixedScorer(),
        HISTORIES,
        TARGETS,
        5,
        item_popularity=counts,
        config=ProtocolConfig(ks=(1, 3), coverage_k=2, batch_size=2),  # batch 2: exercises batching
    )
    assert m["recall@1"] == pytest.approx(1 / 3)
    assert m["hr@3"] == pytest.approx(2 / 3)
    assert m["ndcg@3"] == pytest.approx((1.0 + 0.0 + 1 / math.log2(4)) / 3)
    assert m["ndcg@1"] == pytest.approx(1 / 3)
    assert m["mrr"] == pytest.approx((1 + 1 / 4 + 1 / 3) / 3)
    assert m["coverage@2"] == pytest.approx(4 / 5)  # items 1-4 appear in some top-2 list
    # novelty: [2,3] -> (2+3)/2, [1,2] -> (1+2)/2, [1,4] -> (1+3)/2; mean = 2
    assert m["novelty@2"] == pytest.approx(2.0)
    assert m["n_cases"] == 3


def test_ties_count_against_the_target() -> None:
    ranks, _ = target_ranks(ConstantScorer(), HISTORIES, TARGETS, 5)
    assert ranks.tolist() == [4, 5, 3]  # every non-excluded item ranks ahead of the target


def test_target_in_history_is_still_ranked() -> None:
    ranks, _ = target_ranks(FixedScorer(), [[1, 2]], [2], 5)
    assert ranks.tolist() == [1]  # 1 is excluded, the target itself is not


def test_wrong_width_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="columns"):
        target_ranks(FixedScorer(), [[1]], [2], 7)
