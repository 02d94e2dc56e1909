"""SASRec's text side: whitening of the sentence embeddings and the learnable bag of words."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from shoploop.recommend.sasrec import pca_whiten, word_bag_ids


def anisotropic(n: int, dim: int, seed: int = 0) -> np.ndarray:
    """(n+1, dim) rows (row 0 padding) that share a large common direction, like sentence embeddings."""
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, dim)) * np.linspace(5.0, 0.1, dim) + 3.0
    return np.vstack([np.zeros((1, dim)), x]).astype(np.float32)


def test_whitening_without_shrinkage_gives_identity_covariance() -> None:
    emb = anisotropic(500, 16)
    out = pca_whiten(emb, shrinkage=0.0)
    assert np.all(out[0] == 0.0)
    rows = out[1:].astype(np.float64)
    np.testing.assert_allclose(rows.mean(0), 0.0, atol=1e-5)
    np.testing.assert_allclose(rows.T @ rows / len(rows), np.eye(16), atol=1e-4)


def test_shrinkage_damps_the_weakest_directions_most() -> None:
    out = pca_whiten(anisotropic(500, 16), shrinkage=0.1)
    var = out[1:].astype(np.float64).var(0)  # principal axes, strongest first
    # var_i / (var_i + 0.1 * mean var): near 1 for strong directions, well below for weak ones
    assert var[0] > 0.95 and var[-1] < 0.5
    assert np.all(np.diff(var) <= 1e-9)


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 8), dim=st.integers(2, 12), seed=st.integers(0, 1000))
def test_whitening_a_small_catalog_stays_finite(n: int, dim: int, seed: int) -> None:
    """Fewer items than dimensions leaves directions empty: they must come out 0, not inf/NaN."""
    out = pca_whiten(anisotropic(n, dim, seed))
    assert out.shape == (n + 1, dim) and out.dtype == np.float32
    assert np.isfinite(out).all() and np.all(out[0] == 0.0)


def test_items_without_a_text_vector_stay_zero_and_do_not_shift_the_others() -> None:
    emb = anisotropic(300, 8)
    with_gaps = emb.copy()
    with_gaps[[5, 50]] = 0.0  # two products the search index does not hold
    out, reference = pca_whiten(with_gaps), pca_whiten(np.delete(emb, [5, 50], axis=0))
    assert np.all(out[[0, 5, 50]] == 0.0)
    np.testing.assert_allclose(np.delete(out, [5, 50], axis=0), reference, atol=1e-5)


def test_word_bag_keeps_shared_words_in_first_use_order() -> None:
    texts = [
        "ignored padding text",
        "Red drill, cordless drill",  # "drill" twice counts once
        "red hammer",
        "drill bits",
        "",
    ]
    ids = word_bag_ids(texts, min_items=2, max_tokens=8)
    # shared by >= 2 items: "drill" (1, 3) and "red" (1, 2); vocabulary ids in sorted order
    drill, red = 1, 2
    assert ids.tolist() == [[0, 0], [red, drill], [red, 0], [drill, 0], [0, 0]]
    assert word_bag_ids(texts, min_items=2, max_tokens=1)[1].tolist() == [red]
    assert word_bag_ids(texts, min_items=4, max_tokens=8).tolist() == [[0]] * 5
