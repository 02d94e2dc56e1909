"""`shoploop serve`: the HTTP API, storefront and dashboard for one shop home.

    shoploop serve [--home DIR] [--host 127.0.0.1] [--port 8000] [--demo] [--fast]
                   [--public-reads/--no-public-reads] [--retrain]

`--demo` is what `make demo` runs: it creates the demo shop if the home is empty, writes
one API key per role to `<home>/api_keys.json` (kept across runs), opens reads to the
storefront, and prints the URLs and keys once models are loaded. Models train on first
start (and are reused afterwards from the registry).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Annotated

import typer

from shoploop.cli.common import HomeOption, default_home


def _demo_store(home: Path, say: typer.echo) -> None:  # type: ignore[valid-type]
    from datetime import UTC, datetime

    from shoploop.data.demo import DemoConfig, generate_demo_store
    from shoploop.data.ingest import import_records
    from shoploop.store.home import open_stores

    started = time.perf_counter()
    # History ends now, so "trending" and the dashboard's daily charts look like a live shop.
    bundle = generate_demo_store(DemoConfig(end=datetime.now(UTC).replace(microsecond=0)))
    with open_stores(home) as stores:
        import_records(bundle.products, bundle.events, stores, source="demo", progress=False)
    say(f"demo shop created in {home}: {bundle.summary()} ({time.perf_counter() - started:.1f} s)")


def parse_origin_option(value: str) -> str:
    """One `--allow-origin` value, refused with the option's name when it is not an origin."""
    from shoploop.api.settings import parse_origin

    try:
        return parse_origin(value)
    except ValueError as err:
        raise typer.BadParameter(str(err), param_hint="--allow-origin") from None


def serve(
    home: HomeOption = None,
    host: Annotated[
        str, typer.Option(help="Interface to bind (keep 127.0.0.1 unless behind a proxy).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port.")] = 8000,
    demo: Annotated[
        bool, typer.Option("--demo", help="Create the demo shop if missing, generate keys, open reads.")
    ] = False,
    fast: Annotated[
        bool, typer.Option("--fast", help="BM25-only search and item-kNN (seconds to start; for tests).")
    ] = False,
    public_reads: Annotated[
        bool | None,
        typer.Option("--public-reads/--no-public-reads", help="Search/recommendations without a key."),
    ] = None,
    retrain: Annotated[bool, typer.Option("--retrain", help="Run the background retraining loop.")] = False,
    retention_minutes: Annotated[
        float,
        typer.Option(
            "--retention-minutes",
            min=0,
            help="Apply the shop's retention policy (if it has one) every N minutes; 0 = never "
            "(then schedule `shoploop retention apply`).",
        ),
    ] = 60.0,
    catalog_feed: Annotated[
        str | None,
        typer.Option(
            "--catalog-feed",
            help="The shop's Google Merchant Center feed (URL or file): imported at start, then "
            "every --feed-minutes when it changed.",
        ),
    ] = None,
    feed_minutes: Annotated[
        float, typer.Option("--feed-minutes", min=1, help="How often to check the feed.")
    ] = 60.0,
    feed_remove_missing: Annotated[
        bool,
        typer.Option(
            "--feed-remove-missing", help="The feed is the whole catalog: remove products it no longer lists."
        ),
    ] = False,
    allow_origin: Annotated[
        list[str] | None,
        typer.Option(
            "--allow-origin",
            help="An origin (https://shop.example) whose pages may call the API from the browser; "
            "repeat for more. Default: $SHOPLOOP_ALLOWED_ORIGINS, else none.",
        ),
    ] = None,
    log_level: Annotated[str, typer.Option(help="uvicorn log level.")] = "info",
) -> None:
    """Serve the HTTP API, the storefront (/) and the dashboard (/dashboard)."""
    import logging

    import uvicorn

    from shoploop.api import create_app, generate_demo_keys, settings_for_home
    from shoploop.api.process import limit_malloc_arenas
    from shoploop.engine import EngineConfig, RecommenderSettings, build_engine
    from shoploop.retrieval.config import HybridConfig

    limit_malloc_arenas()  # before models load and threads start allocating
    home = home or default_home()
    home.mkdir(parents=True, exist_ok=True)
    if demo:
        if not (home / "shoploop.sqlite").is_file():
            _demo_store(home, typer.echo)
        generate_demo_keys(home)
    origins = {"allowed_origins": [parse_origin_option(o) for o in allow_origin]} if allow_origin else {}
    try:
        settings = settings_for_home(
            home,
            public_reads=demo if public_reads is None else public_reads,
            retrain=retrain,
            retention_seconds=retention_minutes * 60,
            catalog_feed=catalog_feed,
            catalog_feed_seconds=feed_minutes * 60,
            catalog_feed_remove_missing=feed_remove_missing,
            **origins,
        )
    except ValueError as err:  # pydantic's ValidationError is one: a bad $SHOPLOOP_ALLOWED_ORIGINS
        typer.secho(f"error: {err}", err=True, fg=typer.colors.RED)
        raise typer.Exit(2) from None
    if not settings.keys:
        typer.secho(
            "warning: no API keys configured (set SHOPLOOP_API_KEYS or write api_keys.json, or use --demo);"
            " every write will answer 401",
            err=True,
            fg=typer.colors.YELLOW,
        )
    config = EngineConfig(home=home)
    if fast:
        config = EngineConfig(
            home=home, search=HybridConfig(use_dense=False), recommender=RecommenderSettings(kind="item_knn")
        )
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    engine = build_engine(config)
    started = time.perf_counter()

    def ready(_app: object) -> None:
        base = f"http://{host}:{port}"
        typer.secho(
            f"\nshoploop is ready in {time.perf_counter() - started:.1f} s ({engine.model_version})",
            bold=True,
        )
        typer.echo(f"  storefront : {base}/")
        typer.echo(f"  dashboard  : {base}/dashboard   (log in with the admin key)")
        typer.echo(f"  API docs   : {base}/docs")
        typer.echo(f"  metrics    : {base}/metrics")
        if settings.allowed_origins:
            typer.echo(f"  browser client : {base}/v1/client.js for {', '.join(settings.allowed_origins)}")
        if demo:
            typer.echo(f"  API keys ({home / 'api_keys.json'}):")
            for key, scopes in settings.keys.items():
                typer.echo(f"    {','.join(sorted(scopes)):<8} {key}")
            typer.echo(f'  try: curl -s "{base}/v1/search?q=drill&k=3"')
        typer.echo("")

    app = create_app(engine, settings, on_ready=ready)
    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=False)
