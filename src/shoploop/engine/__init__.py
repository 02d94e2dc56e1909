"""The one place that names concrete classes and wires them: `build_engine(config)`."""

from __future__ import annotations

import os
import tempfile
from dataclasses import replace
from pathlib import Path

from shoploop.engine.config import EngineConfig, RecommenderSettings, ServingSettings
from shoploop.engine.engine import Engine, InvalidRequest, NotFound
from shoploop.store.home import memory_stores, open_stores


def build_engine(config: EngineConfig = EngineConfig()) -> Engine:
    """An engine over the shop home in `config.home` (SQLite), or in memory when it is None.

    Models are not loaded here: call `engine.start()` (the API does it in its lifespan).
    """
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    if config.home is None:
        stores = memory_stores(Path(tempfile.mkdtemp(prefix="shoploop-artifacts-")))
    else:
        stores = open_stores(Path(config.home))
        if config.search.embedding_cache_dir is None:
            # Product vectors keyed by (model, text hash): retraining or restarting never
            # re-encodes a product whose text did not change.
            cache = str(Path(config.home) / "cache" / "embeddings")
            config = replace(config, search=replace(config.search, embedding_cache_dir=cache))
    return Engine(config, stores)


__all__ = [
    "Engine",
    "EngineConfig",
    "InvalidRequest",
    "NotFound",
    "RecommenderSettings",
    "ServingSettings",
    "build_engine",
]
