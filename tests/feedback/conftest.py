"""Tiny search traffic against a real engine: hidden 'liked' items, position-biased clicks."""

from __future__ import annotations

import zlib
from dataclasses import replace
from datetime import UTC, datetime

import numpy as np
import pytest

from shoploop.feedback.exploration import ExplorationConfig
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


@pytest.fixture
def explore_engine():
    """A fresh tiny engine whose search explores on 30% of requests."""
    config = replace(FAST, exploration=ExplorationConfig(budget=0.3))
    return make_engine(config, n_products=200, n_users=40)[0]


@pytest.fixture
def traffic():
    return simulate
