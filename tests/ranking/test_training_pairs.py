"""mine_pairs: labels, counts, determinism, and never calling a judged item a negative."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shoploop.ranking.training_pairs import GradedPair, group_by_query, mine_pairs, relevance_to_label

CATALOG = {f"p{i}": f"product {i}" for i in range(40)}
JUDGMENTS = [
    ("hammer", "p1", 3.0),
    ("hammer", "p2", 1.0),
    ("hammer", "p3", 2.0),
    ("drill", "p4", 2.5),
    ("drill", "p1", 1.5),
]


def ranked(query: str, k: int) -> list[str]:
    # a fixed "retriever": judged items first (as real retrievers often do), then p5.. in order
    head = [i for q, i, _ in JUDGMENTS if q == query]
    return (head + [f"p{i}" for i in range(5, 40)])[:k]


def test_labels_are_linear_in_relevance() -> None:
    assert relevance_to_label(1.0) == 0.0
    assert relevance_to_label(3.0) == 1.0
    assert relevance_to_label(2.0) == pytest.approx(0.5)
    assert relevance_to_label(2.5, max_relevance=3.0) == pytest.approx(0.75)
    assert relevance_to_label(7.0) == 1.0  # clipped


def test_judged_pairs_keep_graded_labels() -> None:
    pairs = mine_pairs(JUDGMENTS, CATALOG, ranked, n_hard=0, n_random=0, seed=0)
    got = {(p.query, p.doc_id): p.label for p in pairs}
    assert got == {
        ("drill", "p1"): 0.25,
        ("drill", "p4"): 0.75,
        ("hammer", "p1"): 1.0,
        ("hammer", "p2"): 0.0,
        ("hammer", "p3"): 0.5,
    }
    assert all(p.kind == "judged" and p.doc == CATALOG[p.doc_id] for p in pairs)


def test_counts_and_negatives_never_judged() -> None:
    pairs = mine_pairs(JUDGMENTS, CATALOG, ranked, n_hard=3, n_random=2, seed=1)
    judged = {(q, i) for q, i, _ in JUDGMENTS}
    for query, group in group_by_query(pairs).items():
        kinds = [p.kind for p in group]
        assert kinds.count("hard") == 3
        assert kinds.count("random") == 2
        ids = [p.doc_id for p in group]
        assert len(ids) == len(set(ids)), "an item appears twice for one query"
        for p in group:
            if p.kind != "judged":
                assert (query, p.doc_id) not in judged
                assert p.label == 0.0


def test_hard_negatives_come_from_the_rank_window() -> None:
    pairs = mine_pairs(JUDGMENTS, CATALOG, ranked, n_hard=4, n_random=0, seed=3, skip_top=5, hard_window=12)
    for query, group in group_by_query(pairs).items():
        window = set(ranked(query, 12)[5:12])
        assert {p.doc_id for p in group if p.kind == "hard"} <= window


def test_deterministic_for_a_seed_and_varies_across_seeds() -> None:
    a = mine_pairs(JUDGMENTS, CATALOG, ranked, n_hard=3, n_random=3, seed=7)
    b = mine_pairs(JUDGMENTS, CATALOG, ranked, n_hard=3, n_random=3, seed=7)
    c = mine_pairs(JUDGMENTS, CATALOG, ranked, n_hard=3, n_random=3, seed=8)
    assert a == b
    assert a != c


def test_pairs_of_a_query_are_contiguous() -> None:
    pairs = mine_pairs(JUDGMENTS, CATALOG, ranked, n_hard=2, n_random=2, seed=0)
    order = [p.query for p in pairs]
    assert order == sorted(order)


def test_label_outside_unit_interval_is_rejected() -> None:
    with pytest.raises(ValueError, match="label"):
        GradedPair("q", "d", 1.5)


@given(
    st.lists(
        st.tuples(st.sampled_from(["a", "b", "c"]), st.sampled_from(sorted(CATALOG)), st.floats(1.0, 3.0)),
        min_size=1,
        max_size=30,
    ),
    st.integers(0, 5),
    st.integers(0, 5),
    st.integers(0, 1000),
)
def test_property_no_judged_item_becomes_a_negative(triples, n_hard, n_random, seed) -> None:
    pairs = mine_pairs(
        triples, CATALOG, lambda q, k: sorted(CATALOG)[:k], n_hard=n_hard, n_random=n_random, seed=seed
    )
    judged = {(q, i) for q, i, _ in triples}
    for p in pairs:
        assert 0.0 <= p.label <= 1.0
        if p.kind != "judged":
            assert (p.query, p.doc_id) not in judged
    for group in group_by_query(pairs).values():
        assert sum(p.kind == "hard" for p in group) <= n_hard
        assert sum(p.kind == "random" for p in group) <= n_random
        assert len({p.doc_id for p in group}) == len(group)
