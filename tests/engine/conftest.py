"""A tiny real engine: demo shop, in-memory stores, BM25-only search and item-kNN (fast)."""

from __future__ import annotations

import pytest

from shoploop.data.demo import DemoConfig, generate_demo_store
from shoploop.data.ingest import import_records
from shoploop.engine import EngineConfig, RecommenderSettings, build_engine
from shoploop.feedback.exploration import ExplorationConfig
from shoploop.retrieval.config import HybridConfig

FAST = EngineConfig(
    search=HybridConfig(use_dense=False),
    recommender=RecommenderSettings(kind="item_knn"),
    exploration=ExplorationConfig(budget=0.0),
)


def make_engine(config: EngineConfig = FAST, *, n_products: int = 200, n_users: int = 60):
    bundle = generate_demo_store(DemoConfig(n_products=n_products, n_users=n_users, days=7, n_bots=1))
    engine = build_engine(config)
    import_records(bundle.products, bundle.events, engine.stores, source="demo", progress=False)
    return engine.start(), bundle


@pytest.fixture(scope="module")
def engine_and_bundle():
    return make_engine()
