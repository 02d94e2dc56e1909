"""One contract test suite, run on every `Recommender` implementation."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from shoploop.recommend.base import Recommender, top_k
from shoploop.recommend.ease import EASE, EASEConfig
from shoploop.recommend.item_knn import ItemKNN, ItemKNNConfig
from shoploop.recommend.popularity import Popularity, TrendingConfig, TrendingPopularity
from shoploop.recommend.sasrec import SASRec, SASRecConfig
from shoploop.recommend.sasrec_ease import SASRecEASE, SASRecEASEConfig
from shoploop.recommend.sasrec_trainer import TrainConfig

TINY_TRAIN = TrainConfig(epochs=40, batch_size=64, lr=5e-3, patience=40, budget_minutes=1.0, num_threads=1)


def tiny_sasrec(**overrides: Any) -> SASRecConfig:
    """A SASRec small enough to train on the chain data in seconds."""
    base: dict[str, Any] = {"max_len": 8, "hidden": 16, "n_blocks": 1, "n_heads": 1, "dropout": 0.1}
    return SASRecConfig(**{"train": TINY_TRAIN, **base, **overrides})


FACTORIES: dict[str, Callable[[], Recommender]] = {
    "popularity": Popularity,
    "trending": lambda: TrendingPopularity(TrendingConfig(half_life_days=3.0)),
    "item_knn": lambda: ItemKNN(ItemKNNConfig(window=3)),
    "item_knn_bm25": lambda: ItemKNN(ItemKNNConfig(similarity="bm25")),
    "ease": lambda: EASE(EASEConfig(l2=10.0)),
    "sasrec_id": lambda: SASRec(tiny_sasrec(use_text=False)),
    "sasrec_text": lambda: SASRec(tiny_sasrec(use_text=True)),
    "sasrec_text_cosine": lambda: SASRec(tiny_sasrec(use_text=True, cosine_temperature=0.1, id_dropout=0.2)),
    "sasrec_text_bag": lambda: SASRec(
        tiny_sasrec(
            use_text=True,
            text_whitening=True,
            token_bag=True,
            cosine_temperature=0.1,
            train=replace(TINY_TRAIN, future_targets=2),
        )
    ),
    "sasrec_ease": lambda: SASRecEASE(SASRecEASEConfig(tiny_sasrec(use_text=True), EASEConfig(l2=10.0), 0.3)),
}
SEQUENTIAL = {
    "item_knn",
    "item_knn_bm25",
    "ease",
    "sasrec_id",
    "sasrec_text",
    "sasrec_text_cosine",
    "sasrec_text_bag",
    "sasrec_ease",
}


@pytest.fixture(scope="module")
def fitted(chain_data: dict) -> dict[str, Recommender]:
    out = {}
    for name, make in FACTORIES.items():
        model = make()
        if isinstance(model, SASRec | SASRecEASE):
            model.fit(
                chain_data["train"],
                chain_data["n_items"],
                item_text_emb=chain_data["emb"],
                item_texts=chain_data["texts"],
                valid=chain_data["valid"],
            )
        else:
            model.fit(chain_data["train"], chain_data["n_items"], item_text_emb=chain_data["emb"])
        out[name] = model
    return out


def hit_rate(model: Recommender, histories: list[list[int]], targets: list[int], k: int = 5) -> float:
    idx, _ = model.recommend(histories, k)
    return float(np.mean([t in row for t, row in zip(targets, idx, strict=True)]))


@pytest.mark.parametrize("name", list(FACTORIES))
def test_is_a_recommender(fitted: dict, name: str) -> None:
    assert isinstance(fitted[name], Recommender)


@pytest.mark.parametrize("name", list(FACTORIES))
def test_beats_random(fitted: dict, chain_data: dict, name: str) -> None:
    hr = hit_rate(fitted[name], chain_data["test_history"], chain_data["test_target"])
    random_hr = 5 / chain_data["n_items"]
    assert hr > random_hr + 0.05
    if name in SEQUENTIAL:  # the planted "i -> i+1" structure is easy for every sequential model
        assert hr > 0.8


@pytest.mark.parametrize("name", list(FACTORIES))
def test_scores_shape_and_padding_column(fitted: dict, chain_data: dict, name: str) -> None:
    scores = fitted[name].score(chain_data["test_history"][:7])
    assert scores.shape == (7, chain_data["n_items"] + 1)
    assert np.all(np.isneginf(scores[:, 0]))
    assert np.all(np.isfinite(scores[:, 1:]))


@pytest.mark.parametrize("name", list(FACTORIES))
def test_batch_and_single_agree(fitted: dict, chain_data: dict, name: str) -> None:
    model = fitted[name]
    histories = [*chain_data["test_history"][:6], [], [3]]
    batch_idx, batch_val = model.recommend(histories, 10)
    batch_scores = model.score(histories)
    for r, h in enumerate(histories):
        idx, val = model.recommend_one(h, 10)
        np.testing.assert_array_equal(idx, batch_idx[r])
        np.testing.assert_allclose(val, batch_val[r], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(model.score([h])[0, 1:], batch_scores[r, 1:], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", list(FACTORIES))
def test_save_load_gives_identical_scores(fitted: dict, chain_data: dict, name: str, tmp_path: Path) -> None:
    model = fitted[name]
    model.save(tmp_path / name)
    assert not list((tmp_path / name).glob("*.pkl"))
    loaded = type(model).load(tmp_path / name)
    histories = chain_data["test_history"][:10]
    np.testing.assert_allclose(loaded.score(histories), model.score(histories), rtol=1e-6)
    np.testing.assert_array_equal(loaded.similar_items(5, 5)[0], model.similar_items(5, 5)[0])


@pytest.mark.parametrize("name", list(FACTORIES))
def test_unknown_items_and_empty_histories(fitted: dict, chain_data: dict, name: str) -> None:
    model = fitted[name]
    n = chain_data["n_items"]
    idx, val = model.recommend([[], [0, -4, n + 7], [n + 100]], 5)
    assert idx.shape == (3, 5)
    assert np.all((idx >= 1) & (idx <= n))
    assert np.all(np.isfinite(val))
    # unknown ids are dropped: same as the history without them
    np.testing.assert_allclose(model.score([[2, n + 9, 3]]), model.score([[2, 3]]), rtol=1e-5, atol=1e-6)
    sim_idx, _ = model.similar_items(n + 50, 3)
    assert sim_idx.shape == (3,)


@pytest.mark.parametrize("name", list(FACTORIES))
def test_over_long_history_is_truncated(fitted: dict, name: str) -> None:
    model = fitted[name]
    long = [(t % 40) + 1 for t in range(500)]
    scores = model.score([long])
    assert np.all(np.isfinite(scores[:, 1:]))
    if isinstance(model, SASRec):
        window = long[-model.config.max_len :]
        np.testing.assert_allclose(scores, model.score([window]), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", list(FACTORIES))
def test_exclusions(fitted: dict, chain_data: dict, name: str) -> None:
    model = fitted[name]
    history = [5, 6, 7]
    idx, _ = model.recommend_one(history, 10, exclude=[8, 9])
    assert not set(idx.tolist()) & {5, 6, 7, 8, 9}
    idx_all, _ = model.recommend_one(history, 10, exclude_seen=False)
    assert len(set(idx_all.tolist())) == 10


@pytest.mark.parametrize("name", list(FACTORIES))
def test_similar_items_excludes_the_item(fitted: dict, name: str) -> None:
    idx, val = fitted[name].similar_items(10, 5)
    assert idx.shape == val.shape == (5,)
    assert 10 not in idx.tolist()
    assert np.all(np.diff(val[np.isfinite(val)]) <= 1e-7)


def test_sequential_similar_items_find_chain_neighbours(fitted: dict) -> None:
    for name in ("item_knn", "ease"):
        idx, _ = fitted[name].similar_items(10, 2)
        assert set(idx.tolist()) & {9, 11}, name


def test_text_sasrec_keeps_cold_items_recommendable(chain_data: dict) -> None:
    """Items absent from training still get a text-derived embedding (id row masked to 0)."""
    cold = {20, 21}
    train = [[i for i in s if i not in cold] for s in chain_data["train"]]
    model = SASRec(tiny_sasrec(use_text=True)).fit(
        train, chain_data["n_items"], item_text_emb=chain_data["emb"]
    )
    table = model.item_embeddings()
    assert np.linalg.norm(table[20]) > 0
    assert model.module_.id_mask[20].item() == 0.0
    assert model.module_.id_mask[19].item() == 1.0


def test_word_bag_alone_keeps_cold_items_recommendable(chain_data: dict) -> None:
    """Without the sentence embedding, an untrained item's row is the mean of its shared words."""
    cold = {20, 21}
    train = [[i for i in s if i not in cold] for s in chain_data["train"]]
    config = tiny_sasrec(use_text=False, token_bag=True)
    model = SASRec(config).fit(train, chain_data["n_items"], item_texts=chain_data["texts"])
    assert model.module_.id_mask[20].item() == 0.0
    table = model.item_embeddings()
    # items 17-20 share "echorange": cold item 20's row is exactly the trained mean of its words
    assert np.linalg.norm(table[20]) > 0
    words = model.module_.tokens[20]
    expected = model.module_.bag.weight[words[words > 0]].mean(0).detach().numpy()
    np.testing.assert_allclose(table[20], expected, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="item_texts"):
        SASRec(config).fit(train, chain_data["n_items"])


def test_top_k_breaks_ties_by_lower_index_and_pads() -> None:
    scores = np.array([[-np.inf, 1.0, 2.0, 2.0, -np.inf]], dtype=np.float32)
    idx, val = top_k(scores, 4)
    assert idx.tolist() == [[2, 3, 1, 0]]
    assert val[0, 3] == -np.inf
    idx_small, _ = top_k(np.array([[0.0, 1.0, 1.0, 1.0, 0.5]]), 2)
    assert idx_small.tolist() == [[1, 2]]
