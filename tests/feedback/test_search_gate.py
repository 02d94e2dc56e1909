"""The replay gate for fine-tuned search models: metric by hand, hold-out split, decisions."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from shoploop.feedback.click_models import ExaminationCurve
from shoploop.feedback.search_gate import SearchGate, SearchGateConfig, recent_holdout, replay_ndcg
from shoploop.feedback.training_data import LoggedList


def logged(
    items: str = "abc", labels=(0, 1, 2), *, ts: float = 0.0, query: str | None = "q", rid: str = "r"
) -> LoggedList:
    n = len(items)
    return LoggedList(
        rid, "search", query, "u", ts, tuple(items), np.arange(1, n + 1), np.ones(n), np.array(labels)
    )


def test_replay_ndcg_by_hand() -> None:
    # b (click, gain 1) logged at slot 2, c (purchase-like grade 2, gain 3) at slot 3
    lst = logged()
    # ranking c, x, b: DCG = 3/log2(2) + 1/log2(4) = 3.5; ideal = 3 + 1/log2(3)
    assert replay_ndcg(["c", "x", "b"], lst, k=3) == pytest.approx(3.5 / (3 + 1 / math.log2(3)))
    assert replay_ndcg(["c", "b"], lst, k=3) == pytest.approx(1.0)
    assert replay_ndcg(["x", "y", "z", "c"], lst, k=3) == 0.0  # the chosen items fall below k
    # slot weights 1/theta: b at slot 2 -> gain 1 * 2, c at slot 3 -> gain 3 * 4
    curve = ExaminationCurve((1.0, 0.5, 0.25), "test", 0)
    weighted = replay_ndcg(["c", "x", "b"], lst, k=3, curve=curve)
    assert weighted == pytest.approx((12 + 2 / 2) / (12 + 2 / math.log2(3)))


@given(st.lists(st.sampled_from("abcdefgh"), max_size=12, unique=True))
def test_replay_ndcg_is_a_share_between_0_and_1(ranking: list[str]) -> None:
    value = replay_ndcg(ranking, logged("abcd", (0, 3, 1, 0)), k=5)
    assert 0.0 <= value <= 1.0 + 1e-12


def test_recent_holdout_keeps_clicked_searches_and_cuts_by_time() -> None:
    lists = [logged(ts=float(t), rid=f"r{t}") for t in range(10)]
    lists += [logged(labels=(0, 0, 0), ts=20.0, rid="unclicked"), logged(ts=21.0, query=None, rid="feed")]
    earlier, held, cut = recent_holdout(lists, 0.3)
    assert [x.request_id for x in held] == ["r7", "r8", "r9"]
    assert cut == 7.0 and all(x.timestamp < cut for x in earlier) and len(earlier) == 7
    assert recent_holdout(lists[:2], 0.3) == (lists[:2], [], None)


def test_recent_holdout_never_splits_lists_logged_at_the_same_time() -> None:
    lists = [logged(ts=t, rid=str(i)) for i, t in enumerate([0.0, 1.0, 2.0, 2.0, 2.0])]
    earlier, held, cut = recent_holdout(lists, 0.2)  # the cut lands inside the tie: all go to held
    assert cut == 2.0 and len(held) == 3 and len(earlier) == 2


def test_candidate_that_ranks_the_chosen_products_higher_is_promoted() -> None:
    gate = SearchGate(SearchGateConfig(min_lists=20, n_boot=50))
    held = [logged(ts=float(i), rid=str(i)) for i in range(40)]
    good = gate.evaluate(held, lambda q: ["c", "b", "a"], lambda q: ["a", "x", "y"])
    assert good.promote and good.reason.startswith("better")
    assert good.metrics["replay_ndcg10_candidate"] == pytest.approx(1.0)
    assert good.metrics["replay_ndcg10_active"] == 0.0
    bad = gate.evaluate(held, lambda q: ["a", "x", "y"], lambda q: ["c", "b", "a"])
    assert not bad.promote and bad.reason.startswith("no gain")
    same = gate.evaluate(held, lambda q: ["c", "b"], lambda q: ["c", "b"])
    assert not same.promote  # equal is not better: a fine-tuned model must earn its cost


def test_a_noisy_difference_is_rejected_as_too_uncertain() -> None:
    gate = SearchGate(SearchGateConfig(min_lists=20, n_boot=200, tolerance=0.01))
    held = [logged(ts=float(i), rid=str(i), query=f"q{i}") for i in range(40)]
    active = ["x", "b", "c"]  # NDCG 0.587

    def candidate(lst: LoggedList) -> list[str]:
        i = int((lst.query or "")[1:])  # 20 queries +0.413, 14 queries -0.587, 6 equal: mean +0.001, wide CI
        return ["c", "b"] if i < 20 else ["z"] if i < 34 else active

    decision = gate.evaluate(held, candidate, lambda q: active)
    assert decision.metrics["replay_ndcg10_delta"] > 0
    assert decision.metrics["replay_ndcg10_delta_ci"][0] < -0.01
    assert not decision.promote and decision.reason.startswith("too uncertain")


def test_too_few_held_out_searches_is_not_evidence() -> None:
    gate = SearchGate(SearchGateConfig(min_lists=30))
    decision = gate.evaluate([logged()] * 5, lambda q: ["c"], lambda q: [])
    assert not decision.promote and "not enough" in decision.reason


@pytest.mark.parametrize(
    ("field", "value"),
    [("holdout_fraction", 0.0), ("holdout_fraction", 1.0), ("k", 0), ("replay", "everything")],
)
def test_bad_gate_settings_name_the_field(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        SearchGateConfig(**{field: value})
