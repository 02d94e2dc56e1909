"""The SASRec + EASE blend: its scale-free mixing, checked by hand, and its edge cases."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from shoploop.recommend.ease import EASE, EASEConfig
from shoploop.recommend.sasrec import SASRec
from shoploop.recommend.sasrec_ease import SASRecEASE, SASRecEASEConfig, pick_ease_weight, standardise_rows
from tests.recommend.test_recommender_contract import tiny_sasrec


def test_standardise_rows_by_hand() -> None:
    # row [pad, 1, 2, 3]: mean 2, std sqrt(2/3); a constant row standardises to zeros
    out = standardise_rows(np.array([[-np.inf, 1.0, 2.0, 3.0], [-np.inf, 5.0, 5.0, 5.0]]))
    s = np.sqrt(2 / 3)
    np.testing.assert_allclose(out[0, 1:], [-1 / s, 0.0, 1 / s])
    np.testing.assert_array_equal(out[1, 1:], [0.0, 0.0, 0.0])
    assert np.isneginf(out[:, 0]).all()


@settings(max_examples=50, deadline=None)
@given(
    # scores on a grid, as a model's float32 outputs are; the row may be constant
    arrays(np.int64, st.tuples(st.integers(1, 4), st.integers(2, 30)), elements=st.integers(-1000, 1000)),
    st.floats(0.01, 1e3),
    st.floats(-1e3, 1e3),
)
def test_standardising_ignores_each_models_scale_and_offset(rows, scale, shift) -> None:
    rows = np.hstack([np.full((len(rows), 1), -np.inf), rows / 7.0])
    a, b = standardise_rows(rows), standardise_rows(rows * scale + shift)
    assert np.isfinite(a[:, 1:]).all()
    np.testing.assert_allclose(a[:, 1:], b[:, 1:], atol=1e-6)


@pytest.fixture(scope="module")
def members(chain_data: dict) -> tuple[SASRec, EASE]:
    sasrec = SASRec(tiny_sasrec(use_text=True)).fit(
        chain_data["train"], chain_data["n_items"], item_text_emb=chain_data["emb"], valid=chain_data["valid"]
    )
    return sasrec, EASE(EASEConfig(l2=10.0)).fit(chain_data["train"], chain_data["n_items"])


def test_blend_is_the_weighted_sum_of_standardised_scores(members, chain_data: dict) -> None:
    sasrec, ease = members
    assert len(ease.items_) == chain_data["n_items"]  # EASE knows every item here: a plain mix
    histories = chain_data["test_history"][:9]
    blend = SASRecEASE.of_fitted(sasrec, ease, 0.25)
    z_sasrec, z_ease = standardise_rows(sasrec.score(histories)), standardise_rows(ease.score(histories))
    expected = 0.75 * z_sasrec + 0.25 * z_ease
    np.testing.assert_allclose(blend.score(histories)[:, 1:], expected[:, 1:], rtol=1e-5, atol=1e-5)


def test_standardising_over_a_subset_by_hand() -> None:
    # mean and std from columns 1-2 only ([2, 4]: mean 3, std 1), applied to every column
    out = standardise_rows(np.array([[-np.inf, 2.0, 4.0, 9.0]]), over=np.array([False, True, True, False]))
    np.testing.assert_allclose(out[0, 1:], [-1.0, 1.0, 6.0])


def test_ease_abstains_on_items_it_never_saw(chain_data: dict) -> None:
    """A product nobody touched keeps SASRec's z-score whole; known ones get the mix."""
    cold = 17
    train = [[i for i in s if i != cold] for s in chain_data["train"]]
    n = chain_data["n_items"]
    sasrec = SASRec(tiny_sasrec(use_text=True)).fit(train, n, item_text_emb=chain_data["emb"])
    ease = EASE(EASEConfig(l2=10.0)).fit(train, n)
    assert cold not in ease.items_
    histories = [[15, 16], [3, 4, 5]]
    blended = SASRecEASE.of_fitted(sasrec, ease, 0.4).score(histories)
    known = np.ones(n + 1, dtype=bool)
    known[[0, cold]] = False
    z_sasrec = standardise_rows(sasrec.score(histories))
    z_ease = standardise_rows(ease.score(histories), over=known)
    np.testing.assert_allclose(blended[:, cold], z_sasrec[:, cold], rtol=1e-5, atol=1e-5)
    expected = 0.6 * z_sasrec[:, known] + 0.4 * z_ease[:, known]
    np.testing.assert_allclose(blended[:, known], expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize(("weight", "which"), [(0.0, 0), (1.0, 1)])
def test_the_end_weights_serve_one_member_order(members, chain_data: dict, weight: float, which: int) -> None:
    histories = chain_data["test_history"][:12]
    blend = SASRecEASE.of_fitted(*members, weight)
    expected = members[which].recommend(histories, 10)[0]
    np.testing.assert_array_equal(blend.recommend(histories, 10)[0], expected)


def test_a_blend_differs_from_both_members(members, chain_data: dict) -> None:
    histories = chain_data["test_history"][:40]
    blend = SASRecEASE.of_fitted(*members, 0.5).recommend(histories, 10)[0]
    for member in members:
        assert not np.array_equal(blend, member.recommend(histories, 10)[0])


def test_refuses_members_of_different_catalogs_and_weights_outside_0_1(members, chain_data: dict) -> None:
    sasrec, _ = members
    other = EASE().fit(chain_data["train"], chain_data["n_items"] + 3)
    with pytest.raises(ValueError, match="n_items"):
        SASRecEASE.of_fitted(sasrec, other, 0.1)
    with pytest.raises(ValueError, match="ease_weight"):
        SASRecEASEConfig(ease_weight=1.5)


def test_pick_ease_weight_takes_the_best_share_and_the_smaller_one_on_ties(members) -> None:
    sasrec, ease = members
    made = {0.1: 0.30, 0.2: 0.35, 0.3: 0.35, 0.5: 0.10}  # 0.2 and 0.3 tie: the smaller wins
    weight, by_weight = pick_ease_weight(sasrec, ease, list(made), lambda m: made[m.config.ease_weight])
    assert weight == 0.2
    assert by_weight == made
    with pytest.raises(ValueError, match="weights"):
        pick_ease_weight(sasrec, ease, [], lambda m: 0.0)
