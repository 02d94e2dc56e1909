"""Tiny search traffic against a real engine: hidden 'liked' items, position-biased clicks."""

from __future__ import annotations

import tempfile
import zlib
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from shoploop.feedback.exploration import ExplorationConfig
from shoploop.feedback.ltr import LambdaMARTRanker, LearnedRanker, RankerConfig
from shoploop.feedback.training_data import featurize, join_logs, training_set
from tests.engine.conftest import FAST, make_engine

QUERIES = ("drill", "jacket", "lamp", "shoes", "chair", "blender", "tent", "watch")


def liked(item_id: str) -> bool:
    """The hidden truth shoppers act on: a fixed third of the catalog."""
    return zlib.crc32(item_id.encode()) % 3 == 0


def simulate(engine, n: int, seed: int = 0, *, k: int = 10, eta: float = 1.0) -> int:
    """n searches; shoppers examine slot r with prob 1/r^eta and click liked items (noise 5%)."""
    rng = np.random.default_rng(seed)
    clicks = 0
    for s in range(n):
        user = f"shopper-{rng.integers(200)}"
        served = engine.search(QUERIES[rng.integers(len(QUERIES))], user_id=user, k=k)
        rows = []
        for item in served.items:
            if rng.random() >= item.position**-eta:
                continue
            p = 0.7 if liked(item.item_id) else 0.05
            if rng.random() < p:
                rows.append(
                    {
                        "type": "click",
                        "event_id": f"sim-{seed}-{s}-{item.position}",
                        "user_id": user,
                        "item_id": item.item_id,
                        "request_id": served.request_id,
                        "position": item.position,
                        "timestamp": datetime.now(UTC).isoformat(),
                    }
                )
        if rows:
            clicks += sum(o.status == "accepted" for o in engine.ingest_events(rows))
    return clicks


def visit(engine, n: int, seed: int, serve, *, prefix: str) -> int:
    """n visits of a browsing surface: `serve(rng)` -> (served list, user); shoppers examine slot
    r with prob 1/r and click liked items with p=0.7, others with 0.05. Returns accepted clicks."""
    rng = np.random.default_rng(seed)
    clicks = 0
    for s in range(n):
        served, user = serve(rng)
        rows = [
            {
                "type": "click",
                "event_id": f"{prefix}-{seed}-{s}-{item.position}",
                "user_id": user,
                "item_id": item.item_id,
                "request_id": served.request_id,
                "position": item.position,
                "timestamp": datetime.now(UTC).isoformat(),
            }
            for item in served.items
            if rng.random() < 1 / item.position and rng.random() < (0.7 if liked(item.item_id) else 0.05)
        ]
        if rows:
            clicks += sum(o.status == "accepted" for o in engine.ingest_events(rows))
    return clicks


def ranker_from_logs(engine, surface: str) -> LambdaMARTRanker:
    """A small ranker fitted (no gate) on the surface's clicked lists that logged base scores."""
    events = list(engine.stores.events.scan())
    lists = [
        lst for lst in join_logs(events, surfaces=(surface,)) if lst.clicked and lst.base_scores is not None
    ]
    ts = training_set(featurize(events, lists, products=engine.products.get, explain=None), None)
    return LambdaMARTRanker(RankerConfig(n_estimators=60, valid_fraction=0.0)).fit(ts.X, ts.y, ts.group)


def promote_ranker(engine, name: str, model: LambdaMARTRanker) -> int:
    """Register `model` as `name` and make it active in `engine`; returns its version."""
    with tempfile.TemporaryDirectory() as tmp:
        LearnedRanker(model).save(Path(tmp))
        version = engine.stores.registry.register(name, Path(tmp), metrics={})
    engine.promote(name, version.version, reason="test")
    return version.version


def liked_dcg(items) -> float:
    """DCG@10 of the hidden preference the simulated shoppers clicked on."""
    return sum(liked(i.item_id) / np.log2(rank + 2) for rank, i in enumerate(items[:10]))


@pytest.fixture
def explore_engine():
    """A fresh tiny engine whose search explores on 30% of requests."""
    config = replace(FAST, exploration=ExplorationConfig(budget=0.3))
    return make_engine(config, n_products=200, n_users=40)[0]


@pytest.fixture
def traffic():
    return simulate
