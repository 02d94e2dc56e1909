"""The `shoploop` command line: a thin shell over the library (no business logic here).

    shoploop demo-data [--home DIR] [--seed N] [--products N] [--users N] [--days N] [--end DATE|now]
    shoploop stats [--home DIR] [--json] [--include-flagged]
    shoploop import catalog|events|dataset|quarantine ...
    shoploop serve [--home DIR] [--host 127.0.0.1] [--port 8000] [--demo] [--fast]
    shoploop report [--home DIR] [--out report.html]
    shoploop models list|log [NAME] [--action KIND] [--limit N] [--json]
    shoploop queries [--home DIR] [--days N | --all] [--top N] [--json]
    shoploop backup [--home DIR] --out FILE [--include-cache] [--without-secrets]
    shoploop verify-backup FILE
    shoploop restore FILE [--home DIR] [--force]
    shoploop privacy export USER_ID [--home DIR] [--out FILE]
    shoploop privacy pseudonymize [--home DIR] [--force]
    shoploop retention show [--home DIR] [--json]
    shoploop retention set [--events-days N] [--quarantine-days N] [--type TYPE=DAYS ...]
    shoploop retention apply [--dry-run] [--yes] [--json]
    shoploop doctor [--home DIR] [--json]

The shop home defaults to $SHOPLOOP_HOME, else ./var/shoploop. Heavy modules are imported
inside the commands so `shoploop --help` stays instant.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Annotated

import typer

from shoploop.cli.backup import backup as backup_command
from shoploop.cli.backup import restore as restore_command
from shoploop.cli.backup import verify_backup as verify_backup_command
from shoploop.cli.common import HomeOption, default_home
from shoploop.cli.common import fail as _fail
from shoploop.cli.doctor import doctor as doctor_command
from shoploop.cli.importing import import_app
from shoploop.cli.models import models_app
from shoploop.cli.privacy import privacy_app
from shoploop.cli.queries import queries as queries_command
from shoploop.cli.report import report
from shoploop.cli.retention import retention_app
from shoploop.cli.serve import serve
from shoploop.cli.train import rollback as rollback_command
from shoploop.cli.train import train as train_command

app = typer.Typer(
    name="shoploop",
    help="Self-hosted search and recommendations for online shops that learn from shopper feedback.",
    no_args_is_help=True,
    pretty_exceptions_show_locals=False,
)
app.add_typer(import_app, name="import")
app.add_typer(models_app, name="models")
app.add_typer(retention_app, name="retention")
app.add_typer(privacy_app, name="privacy")
app.command("train")(train_command)
app.command("rollback")(rollback_command)
app.command("serve")(serve)
app.command("report")(report)
app.command("queries")(queries_command)
app.command("backup")(backup_command)
app.command("verify-backup")(verify_backup_command)
app.command("restore")(restore_command)
app.command("doctor")(doctor_command)

DB_FILES = ("shoploop.sqlite", "shoploop.sqlite-wal", "shoploop.sqlite-shm")


def _parse_end(value: str | None) -> datetime | None:
    if value is None:
        return None
    if value.strip().lower() == "now":
        return datetime.now(UTC).replace(microsecond=0)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise _fail(f"--end: expected an ISO date like 2026-11-01 or 'now', got {value!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@app.command("demo-data")
def demo_data(
    home: HomeOption = None,
    seed: Annotated[int, typer.Option(help="Random seed; the same seed gives the same shop.")] = 7,
    products: Annotated[int, typer.Option("--products", min=20, help="Number of products.")] = 3000,
    users: Annotated[int, typer.Option("--users", min=1, help="Number of simulated shoppers.")] = 600,
    days: Annotated[int, typer.Option(min=1, help="Days of history.")] = 30,
    end: Annotated[
        str | None,
        typer.Option(
            help="Last day of history (ISO date or 'now') [default: a fixed date, for reproducibility]."
        ),
    ] = None,
    fresh: Annotated[bool, typer.Option("--fresh", help="Delete the home's database first.")] = False,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show progress bars.")] = True,
) -> None:
    """Generate a simulated shop (catalog + a month of shopper events) and import it.

    The events go through the same cleaning as any import, so the report shows bots
    flagged, double clicks and unknown items quarantined.
    """
    from rich.console import Console

    from shoploop.data.demo import DemoConfig, generate_demo_store
    from shoploop.data.ingest import import_records
    from shoploop.data.report import print_report, save_report
    from shoploop.store.home import open_stores

    console = Console()
    home = home or default_home()
    options: dict[str, object] = {"seed": seed, "n_products": products, "n_users": users, "days": days}
    parsed_end = _parse_end(end)
    if parsed_end is not None:
        options["end"] = parsed_end
    try:
        config = DemoConfig(**options)  # type: ignore[arg-type]
    except ValueError as exc:
        raise _fail(str(exc)) from None
    try:
        home.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _fail(f"cannot create home directory {home}: {exc.strerror or exc}") from None
    if fresh:
        for name in DB_FILES:
            (home / name).unlink(missing_ok=True)

    started = time.perf_counter()
    bundle = generate_demo_store(config)
    console.print(
        f"generated {bundle.summary()} in {time.perf_counter() - started:.1f} s "
        f"({config.start:%Y-%m-%d} .. {config.end:%Y-%m-%d})"
    )
    with open_stores(home) as stores:
        reports = import_records(
            bundle.products, bundle.events, stores, source=f"demo-seed{seed}", progress=progress
        )
        for report in reports:
            print_report(report, console)
            save_report(report, home)
    planted = set(bundle.notes.get("bot_users", []))  # type: ignore[arg-type]
    caught = planted & set(reports[1].flagged_users)
    console.print(
        f"bots planted by the simulator: {len(planted)}, flagged by ingestion: {len(caught)}; "
        f"shop home: {home}  (next: shoploop stats --home {home})"
    )


@app.command("stats")
def stats(
    home: HomeOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of tables.")] = False,
    include_flagged: Annotated[
        bool, typer.Option("--include-flagged", help="Count users flagged as bots in the behaviour figures.")
    ] = False,
) -> None:
    """Counts and KPIs of a shop home: catalog, events, CTR by surface, funnel, quarantine, bots."""
    from shoploop.cli.stats import compute_stats, print_stats
    from shoploop.store.home import open_stores

    home = home or default_home()
    if not (home / DB_FILES[0]).is_file():
        raise _fail(
            f"no shop at {home} (expected {home / DB_FILES[0]}); try `shoploop demo-data --home {home}`"
        )
    with open_stores(home) as stores:
        result = compute_stats(stores, exclude_flagged=not include_flagged)
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2, sort_keys=True))
    else:
        print_stats(result)


if __name__ == "__main__":  # pragma: no cover
    app()
