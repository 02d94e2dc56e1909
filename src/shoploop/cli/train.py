"""`shoploop train` and `shoploop rollback`: the retraining loop and its undo, from the shell.

    shoploop train [--home DIR] [--watch] [--every-events N] [--every-minutes M]
                   [--correction ipw|none] [--fast]
    shoploop train --model cross_encoder|bi_encoder|recommender|search [--minutes M] [--promote]
    shoploop train --model cross_encoder|bi_encoder --gate [--minutes M]
    shoploop rollback NAME [--home DIR] [--reason TEXT]

`train` runs one retrain round (or, with --watch, one whenever N new events or M minutes
have passed, until Ctrl-C): learn a ranker from the logged impressions and clicks, gate it
against the active one, promote or reject, and print what was decided and why.
`--model X --gate` fine-tunes X on all but the most recent clicked searches, replays those
through the active system with and without the candidate, and promotes it only if it ranks what
shoppers chose higher (`engine.finetune_gate`).
`rollback` re-activates the previous version of a model; a running server picks the change
up on its next start (or its own retrain loop's next promotion).
"""

from __future__ import annotations

import json
import signal
import threading
from dataclasses import replace
from typing import Annotated

import typer

from shoploop.cli.common import HomeOption
from shoploop.cli.common import existing_home as _home


def train(
    home: HomeOption = None,
    watch: Annotated[
        bool, typer.Option("--watch", help="Keep retraining whenever due, until Ctrl-C.")
    ] = False,
    every_events: Annotated[
        int, typer.Option("--every-events", min=1, help="Retrain after N new events.")
    ] = 1000,
    every_minutes: Annotated[
        float, typer.Option("--every-minutes", min=0.0, help="...or after M minutes with new events.")
    ] = 10.0,
    correction: Annotated[
        str, typer.Option("--correction", help="'ipw' (position-bias corrected) or 'none' (raw clicks).")
    ] = "ipw",
    recommender_every: Annotated[
        int,
        typer.Option(
            "--recommender-every", min=0, help="Also retrain the recommender after N new interactions."
        ),
    ] = 0,
    finetune_every: Annotated[
        int,
        typer.Option(
            "--finetune-every",
            min=0,
            help="Also fine-tune search's text encoder behind the replay gate after N new clicked "
            "searches (minutes of CPU each; 0 = never).",
        ),
    ] = 0,
    min_train_lists: Annotated[
        int | None,
        typer.Option(
            "--min-train-lists",
            min=1,
            help="Clicked search lists needed before a first candidate ranker is trained (default 50). "
            "Until then search serves retrieval plus the real-time click-through lift; in the "
            "feedback-loop benchmark 2,000 avoided the early, poorly generalising rankers that 50 "
            "promoted (docs/feedback-loop.md).",
        ),
    ] = None,
    fast: Annotated[
        bool, typer.Option("--fast", help="If models must be trained first: BM25-only search, item-kNN.")
    ] = False,
    model: Annotated[
        str,
        typer.Option(
            "--model",
            help="ranker (default: the gated feedback loop), or train one model once as a candidate: "
            "cross_encoder (fine-tuned on clicked searches), bi_encoder (search's text encoder "
            "fine-tuned on clicked searches, registered as a search version), recommender, search.",
        ),
    ] = "ranker",
    promote: Annotated[
        bool, typer.Option("--promote", help="With --model other than ranker: make the new version active.")
    ] = False,
    gate: Annotated[
        bool,
        typer.Option(
            "--gate",
            help="With --model cross_encoder / bi_encoder: train on all but the most recent clicked "
            "searches and promote only if replaying those ranks what shoppers chose higher.",
        ),
    ] = False,
    minutes: Annotated[
        float | None,
        typer.Option(
            "--minutes",
            min=0.1,
            help="Training time budget of --model cross_encoder / bi_encoder "
            "(default 10; they stop early when validation stops improving).",
        ),
    ] = None,
) -> None:
    """Retrain the learned ranker from shopper feedback, gate it, promote or reject it."""
    from shoploop.engine import EngineConfig, RecommenderSettings, build_engine
    from shoploop.feedback.retrain import RetrainConfig, RetrainLoop
    from shoploop.retrieval.config import HybridConfig

    if correction not in ("ipw", "none"):
        typer.secho("error: --correction must be 'ipw' or 'none'", err=True, fg="red")
        raise typer.Exit(2)
    config = EngineConfig(home=_home(home))
    if fast:
        config = EngineConfig(
            home=config.home,
            search=HybridConfig(use_dense=False),
            recommender=RecommenderSettings(kind="item_knn"),
        )
    if minutes is not None:
        serving = replace(config.serving, cross_encoder_minutes=minutes, bi_encoder_minutes=minutes)
        config = replace(config, serving=serving)
    if model not in ("ranker", "cross_encoder", "bi_encoder", "recommender", "search"):
        typer.secho(
            "error: --model must be ranker, cross_encoder, bi_encoder, recommender or search",
            err=True,
            fg="red",
        )
        raise typer.Exit(2)
    if gate and (model not in ("cross_encoder", "bi_encoder") or promote):
        typer.secho(
            "error: --gate goes with --model cross_encoder or bi_encoder, without --promote",
            err=True,
            fg="red",
        )
        raise typer.Exit(2)
    engine = build_engine(config).start(progress=lambda m: typer.echo(m))
    if gate:
        _gated(engine, model)
        return
    if model != "ranker":
        from shoploop.engine import InvalidRequest

        try:
            version = engine.train(model, promote=promote)
        except InvalidRequest as err:
            typer.secho(f"error: {err}", err=True, fg="red")
            raise typer.Exit(2) from None
        state = "active" if promote else "candidate (promote with the dashboard or the API)"
        typer.echo(f"{version.name}: v{version.version} registered, {state}; metrics {dict(version.metrics)}")
        return
    loop_config = RetrainConfig(
        every_events=every_events,
        every_minutes=every_minutes,
        correction=correction,  # type: ignore[arg-type]
        recommender_every_interactions=recommender_every,
        finetune_every_clicked_searches=finetune_every,
        **({} if min_train_lists is None else {"min_train_lists": min_train_lists}),
    )
    loop = RetrainLoop(engine, loop_config, say=typer.echo)
    if not watch:
        report = loop.run_once()
        typer.echo(json.dumps(report.to_dict(), indent=2, default=float))
        return
    stop = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    typer.echo(f"watching: retrain every {every_events} events or {every_minutes} minutes (Ctrl-C stops)")
    loop.run_forever(stop)


def _gated(engine, model: str) -> None:
    from shoploop.engine import InvalidRequest
    from shoploop.engine.finetune_gate import gated_finetune

    try:
        version, decision = gated_finetune(engine, model)
    except InvalidRequest as err:
        typer.secho(f"error: {err}", err=True, fg="red")
        raise typer.Exit(2) from None
    verdict = "promoted, now active" if decision.promote else "rejected, not served"
    typer.echo(f"{version.name}: v{version.version} {verdict}: {decision.reason}")


def rollback(
    name: Annotated[
        str,
        typer.Argument(
            help="Model name: ranker, browse_ranker, home_ranker, cross_encoder, search or recommender."
        ),
    ],
    home: HomeOption = None,
    reason: Annotated[str, typer.Option("--reason", help="Recorded in the registry's audit log.")] = "manual",
) -> None:
    """Re-activate the previous version of a model (the current one is marked rejected). A
    re-ranker's first version rolls back to none: lists are served as before it existed."""
    from shoploop.engine.variants import OPTIONAL_MODELS
    from shoploop.store.home import open_stores

    with open_stores(_home(home)) as stores:
        try:
            restored = stores.registry.rollback(name, reason=reason, to_none=name in OPTIONAL_MODELS)
        except (LookupError, KeyError) as err:
            typer.secho(f"error: {err}", err=True, fg="red")
            raise typer.Exit(1) from None
    if restored.status == "active":
        typer.echo(f"{name}: v{restored.version} is active again")
    else:
        typer.echo(f"{name}: v{restored.version} switched off; lists are served without a {name}")
