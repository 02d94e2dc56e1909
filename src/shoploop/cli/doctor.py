"""`shoploop doctor`: check a shop home and say, per check, what is wrong and what to do.

    shoploop doctor [--home DIR] [--json]

Read-only (see `shoploop.engine.doctor`), so it is safe while the server runs. Exit status:
0 when nothing is a problem (warnings alone still exit 0, so a cron job or a health probe
fails only on what needs fixing), 1 when any check found a problem, 2 when there is no shop
at the home.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated

import typer

from shoploop.cli.common import HomeOption, existing_home

_STYLE = {"ok": "green", "warning": "yellow", "problem": "bold red"}


def doctor(
    home: HomeOption = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print a JSON list of findings instead of a table.")
    ] = False,
) -> None:
    """Check a shop home: database, models, keys, retention, data quality, disk space."""
    # Imported here so `shoploop --help` stays instant.
    from shoploop.engine.doctor import examine_home, worst_status

    root = existing_home(home)
    findings = examine_home(root, now=datetime.now(UTC))
    if as_json:
        typer.echo(json.dumps([f.to_dict() for f in findings], indent=2))
    else:
        from rich.console import Console
        from rich.markup import escape
        from rich.table import Table

        table = Table(title=f"shoploop doctor: {root}")
        table.add_column("check", no_wrap=True)
        table.add_column("status", no_wrap=True)
        table.add_column("detail", overflow="fold")
        table.add_column("fix", overflow="fold")
        for f in findings:
            # escape(): details quote file contents and error texts, which may hold "[...]".
            table.add_row(
                f.check,
                f"[{_STYLE[f.status]}]{f.status}[/]",
                escape(f.detail),
                escape(f.fix or ""),
            )
        console = Console()
        console.print(table)
        problems = sum(f.status == "problem" for f in findings)
        warnings = sum(f.status == "warning" for f in findings)
        console.print(f"{problems} problem(s), {warnings} warning(s)")
    if worst_status(findings) == "problem":
        raise typer.Exit(1)
