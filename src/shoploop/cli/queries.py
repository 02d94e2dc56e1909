"""`shoploop queries`: what shoppers searched for, what found nothing, what nobody clicked.

    shoploop queries [--home DIR] [--days 30 | --all] [--top 15] [--min-lists 10] [--json]

Three tables from the event log (`evaluation.search_queries`): the most searched queries with
their click-through and conversion, the queries that found nothing (candidates for products,
synonyms or a redirect rule) and the often-served queries whose results are rarely clicked.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import TYPE_CHECKING, Annotated

import typer

from shoploop.cli.common import HomeOption
from shoploop.cli.common import existing_home as _home

if TYPE_CHECKING:
    from shoploop.evaluation.search_queries import QueryRow


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{v:.1%}"


def queries(
    home: HomeOption = None,
    days: Annotated[float, typer.Option("--days", min=0.01, help="Searches of the last N days.")] = 30.0,
    all_time: Annotated[bool, typer.Option("--all", help="Every search in the log, not --days.")] = False,
    top: Annotated[int, typer.Option("--top", min=1, max=1000, help="Rows per table.")] = 15,
    min_lists: Annotated[
        int, typer.Option("--min-lists", min=1, help="Result lists a query needs to count as rarely clicked.")
    ] = 10,
    as_json: Annotated[bool, typer.Option("--json", help="All three views as one JSON object.")] = False,
) -> None:
    """Search analytics per query: top searches, searches with no results, unclicked searches."""
    from rich.console import Console
    from rich.table import Table

    from shoploop.evaluation.search_queries import merchandiser_views, query_report_from_log
    from shoploop.store.home import open_stores

    with open_stores(_home(home)) as stores:
        rows = query_report_from_log(stores.events, days=None if all_time else days)
        # An imported history often ends before today; say why the window is empty.
        older = not rows and not all_time and stores.events.count(types=["search"]) > 0
    views = merchandiser_views(rows, top, min_lists=min_lists)
    if as_json:
        typer.echo(json.dumps({"window_days": None if all_time else days, **asdict(views)}, indent=2))
        return
    console = Console(width=max(Console().width, 110))
    window = "all time" if all_time else f"last {days:g} days"
    console.print(f"{len(rows):,} distinct queries searched ({window}, bot-flagged shoppers left out)")
    if older:
        console.print("the log holds older searches: widen the window with --days N, or use --all")
    if uptake := views.uptake_sentence():
        console.print(uptake)
    tables: list[tuple[str, list[QueryRow]]] = [
        ("Most searched", views.top),
        ("Searches that found nothing (add products, synonyms or a redirect rule)", views.no_results),
        (f"Served at least {min_lists} times, rarely clicked (results need attention)", views.unclicked),
    ]
    for title, view in tables:
        table = Table(title=title)
        table.add_column("query")
        for col in ("searches", "shoppers", "no results", "list CTR", "mean click pos", "conversion"):
            table.add_column(col, justify="right")
        for r in view:
            pos = "-" if r.mean_click_position is None else f"{r.mean_click_position:.1f}"
            table.add_row(
                r.query,
                f"{r.searches:,}",
                f"{r.shoppers:,}",
                f"{r.no_result_searches:,}",
                _pct(r.list_ctr),
                pos,
                _pct(r.conversion),
            )
        console.print(table if view else f"{title}: none")
