"""A running engine picks up what another process writes to the same shop home."""

from __future__ import annotations

import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np

from shoploop.domain import Product
from shoploop.engine import build_engine
from shoploop.feedback.features import FEATURE_NAMES
from shoploop.feedback.ltr import LambdaMARTRanker, LearnedRanker, RankerConfig
from tests.engine.conftest import FAST, make_engine


def test_catalog_changes_and_model_promotions_from_another_process_reach_a_running_engine(tmp_path):
    config = replace(FAST, home=tmp_path / "shop")
    server, _ = make_engine(config, n_products=80, n_users=30)
    other = build_engine(config)  # e.g. `shoploop import` / `shoploop promote`: own connections
    assert server.sync_with_stores() == {}  # nothing new yet

    new = Product(item_id="zz-1", title="Zyzzyva telescopic ladder", category_path=("Tools",), price=99.0)
    other.stores.catalog.upsert([new])
    gone = next(iter(server.products))
    other.stores.catalog.delete([gone])
    assert not any(i.item_id == "zz-1" for i in server.search("zyzzyva ladder", k=5).items)
    assert server.sync_with_stores() == {"catalog": 2}
    assert server.search("zyzzyva ladder", k=5).items[0].item_id == "zz-1"
    assert gone not in server.products
    assert server.sync_with_stores() == {}  # applied once

    first = server.versions["recommender"]
    retrained = other.train("recommender")
    other.stores.registry.promote("recommender", retrained.version, reason="test")
    assert server.sync_with_stores() == {"recommender": retrained.version}
    assert server.versions["recommender"] == retrained.version
    other.stores.registry.rollback("recommender", reason="test")
    assert server.sync_with_stores() == {"recommender": first}
    assert server.recommend(None, k=3).model_version.count(f"recommender:v{first}") == 1

    # A re-ranker switched off elsewhere (`shoploop rollback` of its first version) stops serving here.
    ranker = _tiny_ranker(server)
    with tempfile.TemporaryDirectory() as tmp:
        ranker.save(Path(tmp))
        version = other.stores.registry.register("browse_ranker", Path(tmp), metrics={})
    other.stores.registry.promote("browse_ranker", version.version, reason="test")
    assert server.sync_with_stores() == {"browse_ranker": version.version}
    assert server.browse_ranker is not None
    other.rollback("browse_ranker", reason="test")
    assert server.sync_with_stores() == {"browse_ranker": 0}
    assert server.browse_ranker is None and "browse_ranker" not in server.versions
    assert server.sync_with_stores() == {}


def _tiny_ranker(engine) -> LearnedRanker:
    rng = np.random.default_rng(0)
    X = rng.random((40, len(FEATURE_NAMES))).astype(np.float32)
    y = (X[:, 0] > 0.5).astype(int)
    model = LambdaMARTRanker(RankerConfig(n_estimators=5, valid_fraction=0.0, bags=1))
    return LearnedRanker(model.fit(X, y, np.array([10, 10, 10, 10])))


def test_events_another_process_appends_reach_a_running_engine_once(tmp_path):
    from datetime import UTC, datetime

    config = replace(FAST, home=tmp_path / "shop")
    server, _ = make_engine(config, n_products=80, n_users=30)
    other = build_engine(config)  # e.g. `shoploop import` of an event file: its own connections
    item = next(iter(server.products))
    now = datetime.now(UTC)
    ts = now.isoformat()

    def carts() -> float:
        return server.online.item_count(item, "cart", now=now)

    base = carts()
    server.ingest_events([{"type": "add_to_cart", "user_id": "own-1", "item_id": item, "timestamp": ts}])
    assert carts() == base + 1  # applied at intake ...
    assert server.sync_with_stores() == {}  # ... and not again by the follower

    other.ingest_events(
        [
            {"type": "add_to_cart", "user_id": "imported-1", "item_id": item, "timestamp": ts},
            {"type": "view", "user_id": "imported-1", "item_id": item, "timestamp": ts},
        ]
    )
    assert not server.online.known_user("imported-1")
    server.ingest_events([{"type": "view", "user_id": "own-2", "item_id": item, "timestamp": ts}])
    assert server.sync_with_stores() == {"events": 2}  # the other process's two, not our own view
    assert server.online.known_user("imported-1") and carts() == base + 2
    assert item in server.online.profile("imported-1").recent_items
    assert server.sync_with_stores() == {}

    # A privacy erasure of the newest events, then a new event: it is not missed.
    other.delete_user("imported-1")
    other.ingest_events([{"type": "view", "user_id": "imported-2", "item_id": item, "timestamp": ts}])
    assert server.sync_with_stores() == {"events": 1}
    assert server.online.known_user("imported-2")
