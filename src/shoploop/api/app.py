"""`create_app(engine, settings)`: the FastAPI application around one engine.

Nothing is built at import time. The lifespan loads (or trains) models with
`engine.start()` in a worker thread, opens the experiment store, starts the optional
retraining loop, and undoes all of it on shutdown.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio.to_thread
from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware

from shoploop.api.background import CatalogFeedJob, RetentionJob, RetrainHook, StoreSync
from shoploop.api.errors import install_error_handlers
from shoploop.api.limits import BodyLimitMiddleware
from shoploop.api.live import LiveStats
from shoploop.api.metrics import ApiMetrics, TimingMiddleware
from shoploop.api.routers import admin, client, ops, serving, writes
from shoploop.api.settings import ApiSettings
from shoploop.engine import Engine
from shoploop.evaluation.ab import MemoryExperimentStore, SqliteExperimentStore

log = logging.getLogger("shoploop.api")

DESCRIPTION = """
Search, recommendations and feedback intake for one shop.

**Auth**: send an API key in `X-API-Key` (or `Authorization: Bearer <key>`). Scopes:
`search` (search, recommendations, product reads), `events` (`POST /v1/events`),
`catalog` (item writes), `admin` (everything, incl. models, rules, experiments and user
erasure). Reads may be open when the server runs with public reads (the demo storefront).
401 = missing/unknown key, 403 = key without the scope.

**Errors** always look like `{"error": {"code", "message", "field"}}`; `field` names the
bad input (`k`, `q`, `events.3.timestamp`).

**The loop**: every list carries a `request_id` and is logged as an impression; send clicks,
carts and purchases back with that `request_id` (and the clicked `position`).
"""


def create_app(
    engine: Engine,
    settings: ApiSettings | None = None,
    *,
    on_ready: Callable[[FastAPI], None] | None = None,
    train_if_missing: bool = True,
) -> FastAPI:
    settings = settings or ApiSettings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        anyio.to_thread.current_default_thread_limiter().total_tokens = settings.handler_threads()
        if engine.started_at is None:
            # Blocking model loading/training off the event loop (but before serving traffic).
            await asyncio.to_thread(engine.start, train_if_missing=train_if_missing)
        app.state.running_experiments = app.state.experiments.list(status="running")
        retrain = RetrainHook(engine, settings.retrain_interval_seconds)
        app.state.retrain = retrain
        if settings.retrain:
            await retrain.start()
        sync = StoreSync(engine, settings.store_sync_seconds)
        app.state.store_sync = sync
        sync.start()
        retention = RetentionJob(engine, settings.retention_seconds, app.state.experiments)
        app.state.retention = retention
        retention.start()
        feed = CatalogFeedJob(
            engine,
            settings.catalog_feed_seconds,
            settings.catalog_feed,
            remove_missing=settings.catalog_feed_remove_missing,
        )
        app.state.catalog_feed = feed
        app.state.metrics.catalog_feed = feed
        feed.start()
        if on_ready is not None:
            on_ready(app)
        try:
            yield
        finally:
            await feed.stop()
            await retention.stop()
            await sync.stop()
            await retrain.stop()
            close = getattr(app.state.experiments, "close", None)
            if close is not None:
                close()

    app = FastAPI(
        title="shoploop",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        openapi_tags=[
            {"name": "search & recommendations", "description": "served lists with a request_id"},
            {"name": "events", "description": "shopper feedback intake"},
            {"name": "catalog", "description": "products; changes apply without a restart"},
            {"name": "privacy", "description": "erasure with a receipt"},
            {"name": "models", "description": "registry: list, promote, roll back"},
            {"name": "rules", "description": "merchandising rules"},
            {"name": "experiments", "description": "A/B tests"},
            {"name": "operations", "description": "health and metrics"},
        ],
    )
    live = LiveStats(window=settings.live_window)
    metrics = ApiMetrics(live, engine)
    app.state.engine = engine
    app.state.settings = settings
    app.state.live = live
    app.state.metrics = metrics
    app.state.experiments = _experiment_store(engine)
    app.state.running_experiments = []
    install_error_handlers(app)
    for router in (
        serving.router,
        writes.events_router,
        writes.catalog_router,
        writes.users_router,
        admin.router,
        ops.router,
        client.router,
    ):
        app.include_router(router)
    if settings.storefront:
        from shoploop.web import mount_web

        mount_web(app)
    # Outermost first: the body limit refuses before timing, timing wraps everything else.
    app.add_middleware(TimingMiddleware, metrics=metrics, live=live)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    if settings.allowed_origins:
        # Outermost of all, so a refusal (401, 413, 422) also carries the CORS headers and the
        # shop's script can read why instead of an opaque network error. Browsers need only
        # reads and event posts; the key header is the one credential (no cookies).
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.allowed_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["X-API-Key", "Authorization", "Content-Type"],
            max_age=600,
        )
    return app


def _experiment_store(engine: Engine) -> Any:
    home: Path | None = engine.stores.home
    if home is None:
        return MemoryExperimentStore()
    # Its own tables in the shop's database, so `shoploop report` finds the experiments too.
    return SqliteExperimentStore(home / "shoploop.sqlite")
