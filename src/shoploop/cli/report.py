"""`shoploop report`: the self-contained HTML evaluation report of a shop home."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from shoploop.cli.common import HomeOption


def report(
    home: HomeOption = None,
    out: Annotated[Path, typer.Option("--out", help="Where to write the HTML file.")] = Path("report.html"),
    period: Annotated[str, typer.Option(help="KPI period: day, week or all.")] = "day",
) -> None:
    """Write one HTML file (inline CSS + SVG, no scripts): model metrics, KPIs, experiments."""
    from shoploop.evaluation.report import report_data_from_stores, write_report
    from shoploop.store.home import open_stores

    home = home or Path(os.environ.get("SHOPLOOP_HOME") or "./var/shoploop")
    if not (home / "shoploop.sqlite").is_file():
        typer.secho(f"error: no shop at {home} (expected {home / 'shoploop.sqlite'})", err=True, fg="red")
        raise typer.Exit(2)
    if period not in ("day", "week", "all"):
        typer.secho(f"error: --period: expected day, week or all, got {period!r}", err=True, fg="red")
        raise typer.Exit(2)
    with open_stores(home) as stores:
        data = report_data_from_stores(stores, period=period, title=f"shoploop report – {home.name}")
    path = write_report(data, out)
    typer.echo(f"report written to {path}")
