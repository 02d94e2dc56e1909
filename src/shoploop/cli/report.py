"""`shoploop report`: the self-contained HTML evaluation report of a shop home."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from shoploop.cli.common import HomeOption, existing_home, fail


def report(
    home: HomeOption = None,
    out: Annotated[Path, typer.Option("--out", help="Where to write the HTML file.")] = Path("report.html"),
    period: Annotated[str, typer.Option(help="KPI period: day, week or all.")] = "day",
) -> None:
    """Write one HTML file (inline CSS + SVG, no scripts): model metrics, KPIs, experiments."""
    from shoploop.evaluation.report import report_data_from_stores, write_report
    from shoploop.store.home import open_stores

    home = existing_home(home)
    if period not in ("day", "week", "all"):
        raise fail(f"--period: expected day, week or all, got {period!r}")
    with open_stores(home) as stores:
        data = report_data_from_stores(stores, period=period, title=f"shoploop report – {home.name}")
    path = write_report(data, out)
    typer.echo(f"report written to {path}")
