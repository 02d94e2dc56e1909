"""`shoploop models`: what the model registry holds, and why each model went live or did not.

    shoploop models list [--home DIR] [--json]
    shoploop models log [NAME] [--action promote --action reject ...] [--limit 20] [--home DIR] [--json]

`log` reads the registry's audit trail, newest first: every registration, promotion, rejection,
retirement and rollback, with the reason (a gate's verdict carries its numbers) — the answer
to "why is this ranker serving?" without opening the database.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated, Any

import typer

from shoploop.cli.common import HomeOption
from shoploop.cli.common import existing_home as _home

if TYPE_CHECKING:  # the store and rich load inside the commands, so `shoploop --help` stays instant
    from shoploop.store.protocols import ModelVersion, RegistryDecision

models_app = typer.Typer(help="Model versions and the audit trail of promotions and rejections.")


def _version_row(mv: ModelVersion) -> dict[str, Any]:
    return {
        "name": mv.name,
        "version": mv.version,
        "status": mv.status,
        "created_at": mv.created_at.isoformat(),
        "metrics": mv.numeric_metrics(),
    }


def _decision_row(d: RegistryDecision) -> dict[str, Any]:
    return {
        "at": d.at.isoformat(),
        "name": d.name,
        "version": d.version,
        "action": d.action,
        "reason": d.reason,
        "evidence": dict(d.metrics),
    }


def _short_metrics(metrics: dict[str, Any], limit: int = 4) -> str:
    return ", ".join(f"{k}={v:.4g}" for k, v in list(metrics.items())[:limit])


@models_app.command("list")
def list_versions(
    home: HomeOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Every registered version: status (active, candidate, retired, rejected) and its metrics."""
    from rich.console import Console
    from rich.table import Table

    from shoploop.store.home import open_stores

    with open_stores(_home(home)) as stores:
        rows = [_version_row(mv) for mv in stores.registry.versions()]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table(title="Model versions")
    for col in ("model", "version", "status", "created", "metrics"):
        table.add_column(col)
    for r in rows:
        table.add_row(
            r["name"], f"v{r['version']}", r["status"], r["created_at"][:16], _short_metrics(r["metrics"])
        )
    Console().print(table if rows else "no model registered yet")


@models_app.command("log")
def log(
    name: Annotated[
        str | None, typer.Argument(help="Only this model (ranker, search, recommender, ...).")
    ] = None,
    action: Annotated[
        list[str] | None,
        typer.Option(
            "--action", help="Only these kinds, repeatable: register, promote, reject, retire, rollback."
        ),
    ] = None,
    limit: Annotated[int, typer.Option("--limit", min=1, help="At most this many entries.")] = 20,
    home: HomeOption = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Machine-readable output, with the full evidence.")
    ] = False,
) -> None:
    """Why models changed, newest first: each promotion, rejection and rollback with its reason."""
    from rich.console import Console
    from rich.table import Table

    from shoploop.store.audit import BadTrailQuery, recent_decisions
    from shoploop.store.home import open_stores

    with open_stores(_home(home)) as stores:
        try:
            trail = recent_decisions(stores.registry, name, actions=action, limit=limit)
        except BadTrailQuery as err:
            flag = "--action" if err.field == "actions" else "--limit"
            typer.secho(f"error: {flag}: {err.message}", err=True, fg="red")
            raise typer.Exit(2) from None
    rows = [_decision_row(d) for d in trail]
    if as_json:
        typer.echo(json.dumps(rows, indent=2, default=str))
        return
    if not rows:
        typer.echo(f"no decisions recorded{f' for {name!r}' if name else ''}")
        return
    table = Table(title="Model decisions (newest first)")
    for col in ("when", "model", "action", "reason"):
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(r["at"][:19], f"{r['name']} v{r['version']}", r["action"], r["reason"] or "-")
    Console(width=max(Console().width, 120)).print(table)


__all__ = ["models_app"]
