import numpy as np

from shoploop.feedback.click_pairs import click_pairs
from shoploop.feedback.training_data import LoggedList


def served(query, items, labels, request_id="r"):
    n = len(items)
    return LoggedList(
        request_id, "search", query, "u", 0.0, tuple(items), np.arange(1, n + 1), np.ones(n), np.array(labels)
    )


TEXT = {"a": "Drill A", "b": "Drill B", "c": "Saw C", "d": "Pan D"}.get


def test_skip_above_negatives_and_graded_positives():
    out = click_pairs([served("Drill", ["a", "b", "c", "d"], [0, 0, 3, 0])], TEXT, valid_frac=0.0)
    labels = {p.doc: p.label for p in out.train}
    # a and b were skipped above the purchase of c; d (below the last click) is not used
    assert labels == {"Drill A": 0.0, "Drill B": 0.0, "Saw C": 1.0}
    assert out.positives == 1
    assert out.negatives == 2
    assert all(p.query == "drill" for p in out.train)


def test_click_grade_scales_label_and_unclicked_lists_are_ignored():
    lists = [served("pan", ["d", "a"], [1, 0]), served("saw", ["c", "a"], [0, 0])]
    out = click_pairs(lists, TEXT, valid_frac=0.0)
    assert [(p.doc, round(p.label, 3)) for p in out.train] == [("Pan D", 0.333)]
    assert out.queries == 1


def test_validation_split_is_by_query_and_deterministic():
    lists = [served(f"q{i}", ["a", "b"], [0, 1], request_id=str(i)) for i in range(30)]
    one = click_pairs(lists, TEXT, valid_frac=0.2, seed=3)
    two = click_pairs(lists, TEXT, valid_frac=0.2, seed=3)
    assert one == two
    assert {p.query for p in one.valid}.isdisjoint({p.query for p in one.train})
    assert len({p.query for p in one.valid}) == 6


def test_unknown_products_are_skipped():
    out = click_pairs([served("x", ["zz", "a"], [0, 1])], TEXT, valid_frac=0.0)
    assert [p.doc for p in out.train] == ["Drill A"]
