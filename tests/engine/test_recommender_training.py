"""The engine's recommender training: when it blends SASRec with EASE, and that the blend survives
the registry's save/load."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from shoploop.domain import Product
from shoploop.engine import RecommenderSettings
from shoploop.engine.training import Interactions, RecommenderBundle, train_recommender
from shoploop.evaluation.sequential_protocol import evaluate_next_item
from shoploop.recommend.sasrec_ease import SASRecEASE
from tests.recommend.conftest import N_ITEMS, chain_sequences

# epochs kept small: these tests check the wiring, not how well SASRec learns
FAST_SASREC = {
    "kind": "sasrec",
    "use_text": False,
    "word_bag": False,
    "hidden": 16,
    "max_len": 8,
    "epochs": 3,
}


@pytest.fixture(scope="module")
def shop() -> tuple[list[Product], Interactions]:
    products = [Product(item_id=f"p{i}", title=f"widget {i}") for i in range(1, N_ITEMS + 1)]
    sequences = {f"u{u}": [f"p{i}" for i in seq] for u, seq in enumerate(chain_sequences(120))}
    stamps = {u: [float(t) for t in range(len(s))] for u, s in sequences.items()}
    return products, Interactions(sequences, stamps, [], [], {})


def train(shop, **settings) -> tuple[RecommenderBundle, dict[str, float]]:
    products, interactions = shop
    config = RecommenderSettings(**{**FAST_SASREC, **settings})
    return train_recommender(products, interactions, config, text_vectors=None, seed=0)


def test_a_forced_share_serves_the_blend_and_it_round_trips(shop, tmp_path: Path) -> None:
    bundle, metrics = train(shop, ease_weights=(0.4,))
    assert bundle.kind == "sasrec_ease" and isinstance(bundle.model, SASRecEASE)
    assert metrics["ease_weight"] == 0.4 and metrics["ease_seconds"] >= 0
    bundle.save(tmp_path / "rec")
    loaded = RecommenderBundle.load(tmp_path / "rec")
    assert loaded.kind == "sasrec_ease"
    histories = [[1, 2, 3], [7], []]
    np.testing.assert_allclose(loaded.model.score(histories), bundle.model.score(histories), rtol=1e-6)


def test_the_share_is_the_best_on_the_held_out_last_steps(shop) -> None:
    products, interactions = shop
    bundle, metrics = train(shop, ease_weights=(0.3, 0.6, 1.0))
    blend = bundle.model
    index = {p.item_id: i + 1 for i, p in enumerate(products)}
    seqs = [[index[i] for i in s] for s in interactions.sequences.values()]
    held_out = [(s[:-1], s[-1]) for s in seqs if len(s) >= 3]  # the steps SASRec stopped on

    def ndcg(w: float) -> float:
        model = SASRecEASE.of_fitted(blend.sasrec_, blend.ease_, w)
        return evaluate_next_item(model, [h for h, _ in held_out], [t for _, t in held_out], N_ITEMS)[
            "ndcg@10"
        ]

    by_weight = {w: ndcg(w) for w in (0.3, 0.6, 1.0)}
    assert metrics["ease_weight"] == max(by_weight, key=lambda w: (by_weight[w], -w))
    assert metrics["valid_ndcg10"] == pytest.approx(by_weight[metrics["ease_weight"]])


@pytest.mark.parametrize("settings", [{"ease_weights": (0.0,)}, {"ease_max_items": N_ITEMS - 1}])
def test_no_blend_when_switched_off_or_the_catalog_is_too_large(shop, settings) -> None:
    bundle, metrics = train(shop, **settings)
    assert bundle.kind == "sasrec" and "ease_weight" not in metrics
