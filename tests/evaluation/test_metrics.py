"""Metric tests: every expected value is worked out by hand in the comments."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from shoploop.evaluation import metrics as M

LOG2_3 = math.log2(3)  # discount of rank 2 is 1/log2(3) ~ 0.6309
LOG2_5 = math.log2(5)  # discount of rank 4


def test_dcg_by_hand() -> None:
    # gains 3, 2, 0, 1 -> 3/log2(2) + 2/log2(3) + 0/log2(4) + 1/log2(5)
    g = np.array([[3.0, 2.0, 0.0, 1.0]])
    full = 3.0 + 2.0 / LOG2_3 + 0.0 + 1.0 / LOG2_5
    assert M.dcg_at_k(g, 4)[0] == pytest.approx(full)
    # k = 2 keeps 3 + 2/log2(3) = 3 + 1.26186 = 4.26186
    assert M.dcg_at_k(g, 2)[0] == pytest.approx(3.0 + 2.0 / LOG2_3)
    # k larger than the list: same as the full list
    assert M.dcg_at_k(g, 10)[0] == pytest.approx(full)


def test_ndcg_by_hand() -> None:
    # served gains 1, 3 ; ideal order 3, 1
    # DCG = 1 + 3/log2(3) = 1 + 1.89279 = 2.89279 ; IDCG = 3 + 1/log2(3) = 3.63093
    g = np.array([[1.0, 3.0]])
    expected = (1.0 + 3.0 / LOG2_3) / (3.0 + 1.0 / LOG2_3)
    assert M.ndcg_at_k(g, 2)[0] == pytest.approx(expected)
    assert expected == pytest.approx(0.79670, abs=1e-5)
    # with an external ideal that contains a relevant item the ranker missed (gain 2):
    # ideal sorted 3, 2, 1 -> IDCG@2 = 3 + 2/log2(3) = 4.26186 ; DCG@2 = 2.89279 ; ratio 0.67876
    ndcg = M.ndcg_at_k(g, 2, ideal_gains=np.array([[1.0, 2.0, 3.0]]))[0]
    assert ndcg == pytest.approx((1.0 + 3.0 / LOG2_3) / (3.0 + 2.0 / LOG2_3))


def test_ndcg_no_relevant_is_zero_and_perfect_is_one() -> None:
    g = np.array([[0.0, 0.0, 0.0], [2.0, 1.0, 0.0]])
    out = M.ndcg_at_k(g, 3)
    assert out[0] == 0.0  # no relevant item -> 0 by convention (documented)
    assert out[1] == pytest.approx(1.0)  # already ideal


def test_ndcg_from_rank() -> None:
    # rank 1 -> 1 ; rank 3 -> 1/log2(4) = 0.5 ; rank 11 with k=10 -> 0 ; rank 0 = not found -> 0
    out = M.ndcg_from_rank(np.array([1, 3, 11, 0]), 10)
    np.testing.assert_allclose(out, [1.0, 0.5, 0.0, 0.0])


def test_rank_of_target_pessimistic_ties_and_exclusion() -> None:
    scores = np.array([[0.1, 0.9, 0.5, 0.5], [1.0, 1.0, 1.0, 1.0]])
    # row 0: target item 2 (0.5); item 1 (0.9) and item 3 (0.5, tie) are ahead -> rank 3
    # row 1: all tied -> target ranks last = 4
    np.testing.assert_array_equal(M.rank_of_target(scores, [2, 0]), [3, 4])
    # excluding item 1 from row 0 moves the target to rank 2
    excl = np.zeros_like(scores, dtype=bool)
    excl[0, 1] = True
    assert M.rank_of_target(scores, [2, 0], exclude=excl)[0] == 2


def test_recall_precision_hit_rate_by_hand() -> None:
    hits = np.array([[1, 0, 1, 0], [0, 0, 0, 0], [0, 1, 0, 0]])
    n_rel = np.array([4, 0, 1])
    # recall@3: row0 2/4 = 0.5 ; row1 no relevant -> 0 ; row2 1/1
    np.testing.assert_allclose(M.recall_at_k(hits, n_rel, 3), [0.5, 0.0, 1.0])
    # precision@3: 2/3, 0, 1/3
    np.testing.assert_allclose(M.precision_at_k(hits, 3), [2 / 3, 0.0, 1 / 3])
    # precision@10 with a 4-long list divides by 10: 2/10, 0, 1/10
    np.testing.assert_allclose(M.precision_at_k(hits, 10), [0.2, 0.0, 0.1])
    # hit rate@1: only row0 has a hit at rank 1
    np.testing.assert_allclose(M.hit_rate_at_k(hits, 1), [1.0, 0.0, 0.0])
    np.testing.assert_allclose(M.hit_rate_at_k(hits, 2), [1.0, 0.0, 1.0])


def test_average_precision_and_map_by_hand() -> None:
    hits = np.array([[1, 0, 1, 0], [0, 1, 0, 1], [0, 0, 0, 0]])
    n_rel = np.array([2, 3, 0])
    # row0: hits at ranks 1 and 3: P@1 = 1, P@3 = 2/3 ; / min(2, 4) = 2 -> (1 + 0.6667)/2 = 0.83333
    # row1: hits at 2 and 4: P@2 = 1/2, P@4 = 2/4 ; / min(3, 4) = 3 -> 1/3
    # row2: no relevant -> 0
    ap = M.average_precision_at_k(hits, n_rel, 4)
    np.testing.assert_allclose(ap, [5 / 6, 1 / 3, 0.0])
    # MAP@4 = (0.83333 + 0.33333 + 0) / 3 = 0.38889
    assert M.map_at_k(hits, n_rel, 4) == pytest.approx((5 / 6 + 1 / 3) / 3)
    # AP@2: row0 only rank 1 counts: 1 / min(2,2) = 0.5 ; row1: P@2 = 0.5 / min(3,2) = 0.25
    np.testing.assert_allclose(M.average_precision_at_k(hits, n_rel, 2), [0.5, 0.25, 0.0])


def test_reciprocal_rank() -> None:
    hits = np.array([[0, 0, 1], [1, 1, 0], [0, 0, 0]])
    # first hit at rank 3 -> 1/3 ; rank 1 -> 1 ; none -> 0
    np.testing.assert_allclose(M.reciprocal_rank(hits), [1 / 3, 1.0, 0.0])
    # within top 2 only, row0 has no hit
    np.testing.assert_allclose(M.reciprocal_rank(hits, k=2), [0.0, 1.0, 0.0])


def test_hits_from_ranking() -> None:
    ranked = np.array([[5, 2, 7], [1, 0, 3]])
    out = M.hits_from_ranking(ranked, [{7, 5}, set()])
    np.testing.assert_array_equal(out, [[1, 0, 1], [0, 0, 0]])


def test_empty_inputs() -> None:
    empty = np.zeros((0, 5))
    assert M.dcg_at_k(empty, 3).shape == (0,)
    assert M.ndcg_at_k(empty, 3).shape == (0,)
    assert M.recall_at_k(empty, np.zeros(0), 3).shape == (0,)
    assert M.precision_at_k(empty, 3).shape == (0,)
    assert M.reciprocal_rank(empty).shape == (0,)
    assert M.map_at_k(empty, np.zeros(0), 3) == 0.0
    assert M.ndcg_from_rank(np.zeros(0), 10).shape == (0,)
    assert M.catalog_coverage(np.zeros((0, 3), dtype=int), 10) == 0.0
    assert M.gini([]) == 0.0
    assert M.novelty(np.zeros((0, 2), dtype=int), np.ones(3) / 3).shape == (0,)
    with pytest.raises(ValueError):
        M.precision_at_k(np.zeros((2, 2)), 0)


def test_catalog_coverage_ignores_padding() -> None:
    rec = np.array([[0, 1, -1], [1, 3, -1]])
    # distinct items {0, 1, 3} of 8 -> 3/8
    assert M.catalog_coverage(rec, 8) == pytest.approx(0.375)


def test_novelty_by_hand() -> None:
    p = np.array([0.5, 0.25, 0.125, 0.125])
    rec = np.array([[0, 1], [2, -1]])
    # row0: (-log2 .5 + -log2 .25)/2 = (1 + 2)/2 = 1.5 ; row1: -log2 .125 = 3
    np.testing.assert_allclose(M.novelty(rec, p), [1.5, 3.0])


def test_gini_by_hand() -> None:
    assert M.gini([5, 5, 5, 5]) == pytest.approx(0.0)  # perfectly even
    # all on one of 4 items: sorted 0,0,0,10 -> (2*4-4-1)*10 / (4*10) = 3/4
    assert M.gini([10, 0, 0, 0]) == pytest.approx(0.75)
    # counts 1, 3: sorted 1,3 -> ((2-2-1)*1 + (4-2-1)*3) / (2*4) = (-1 + 3)/8 = 0.25
    assert M.gini([3, 1]) == pytest.approx(0.25)


def test_intra_list_diversity_by_hand() -> None:
    emb = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0], [2.0, 0.0]])
    # list (0, 1): orthogonal -> 1 - 0 = 1
    # list (0, 3): same direction -> 0
    # list (0, 1, 2): pairs (0,1)=1, (0,2)=1-1/sqrt2, (1,2)=1-1/sqrt2 -> mean (3 - sqrt2)/3
    rec = np.array([[0, 1, -1], [0, 3, -1], [0, 1, 2], [2, -1, -1]])
    out = M.intra_list_diversity(rec, emb)
    np.testing.assert_allclose(out, [1.0, 0.0, (3 - math.sqrt(2)) / 3, 0.0], atol=1e-12)


@given(arrays(np.float64, st.tuples(st.integers(1, 5), st.integers(1, 8)), elements=st.floats(0, 3)))
def test_ndcg_bounded(gains: np.ndarray) -> None:
    out = M.ndcg_at_k(gains, 5)
    assert ((out >= 0) & (out <= 1 + 1e-12)).all()


@given(arrays(np.int8, st.tuples(st.integers(1, 5), st.integers(1, 8)), elements=st.integers(0, 1)))
def test_ap_recall_bounded(hits: np.ndarray) -> None:
    n_rel = hits.sum(axis=1) + 1
    for f in (M.average_precision_at_k(hits, n_rel, 4), M.recall_at_k(hits, n_rel, 4)):
        assert ((f >= 0) & (f <= 1 + 1e-12)).all()
