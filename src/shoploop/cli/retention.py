"""`shoploop retention`: how long the shop keeps shopper data, and erasing what is older.

    shoploop retention show [--home DIR] [--json]
    shoploop retention set [--events-days N] [--quarantine-days N] [--type search=90 ...] [--home DIR]
    shoploop retention apply [--dry-run] [--yes] [--json] [--home DIR]

`set` replaces the saved policy (`HOME/retention.json`) with exactly what it is given; a
setting left out keeps that data forever. `show` prints the policy and what applying it now
would erase (a dry run); A/B exposures follow the impressions' limit. `apply` counts, asks
before erasing (unless --yes), erases in short transactions a running server can write
between, and prints what went. Schedule it (cron, a systemd timer) to keep the shop within
its policy, or let the server do it (`RetentionJob`); a re-run after an interruption
finishes the job. A server running on the same home rebuilds what it holds about the
shoppers who lost events (profiles, recent items, autocomplete) at its next store sync,
within seconds: the purge notes them in the event log's purge record, which servers follow.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from shoploop.cli.common import HomeOption, progress_bar, stores_and_experiments
from shoploop.cli.common import existing_home as _home
from shoploop.cli.common import fail as _fail

if TYPE_CHECKING:  # loaded inside the commands, so `shoploop --help` stays instant
    from rich.console import Console

    from shoploop.privacy.retention import RetentionPolicy, RetentionPolicyError, RetentionReport

retention_app = typer.Typer(help="Retention policy: how long shopper data is kept, and erasing older data.")

JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON object instead of tables.")]
# Where a policy field comes from on the command line, so an error names what the user typed.
_OPTION_OF = {"events_days": "--events-days", "quarantine_days": "--quarantine-days", "per_type": "--type"}


def _option_error(err: RetentionPolicyError) -> typer.Exit:
    name, _, rest = err.field.partition(".")
    option = _OPTION_OF.get(name)
    if option is None:
        return _fail(str(err))
    return _fail(f"{option} {rest}: {err.problem}" if rest else f"{option}: {err.problem}")


def _load(home: Path) -> RetentionPolicy | None:
    from shoploop.privacy.retention import POLICY_FILENAME, load_policy

    try:
        return load_policy(home)
    except ValueError as err:  # edited by hand into something that is not a policy
        raise _fail(f"{home / POLICY_FILENAME}: {err}") from None


def _kept(days: float | None) -> str:
    if days is None:
        return "forever"
    return f"{days:g} day" + ("" if days == 1 else "s")


def _print_policy(policy: RetentionPolicy, console: Console) -> None:
    overrides = ", ".join(f"{t} {_kept(d)}" for t, d in policy.per_type.items()) or "none"
    console.print(
        f"events: {_kept(policy.events_days)}; per type: {overrides}; "
        f"quarantined rows: {_kept(policy.quarantine_days)}"
    )
    for warning in policy.warnings():
        console.print(f"[yellow]warning:[/yellow] {warning}")


_LINE_NAMES = {
    "quarantine": "quarantined rows",
    "experiment_exposures": "A/B exposures (as impressions)",
    "import_reports": "import reports (as quarantine)",
    "bot_flags": "bot flags",
}


def _print_report(report: RetentionReport, console: Console) -> None:
    from rich.table import Table

    verb = "to erase" if report.dry_run else "erased"
    title = f"Retention at {report.now:%Y-%m-%d %H:%M} UTC" + (" (dry run)" if report.dry_run else "")
    table = Table(title=title)
    table.add_column("data")
    table.add_column("kept")
    table.add_column("erase if older than")
    table.add_column(f"rows {verb}", justify="right")
    for line in report.lines:
        cutoff = "-" if line.cutoff is None else f"{line.cutoff.astimezone(UTC):%Y-%m-%d %H:%M}"
        name = _LINE_NAMES.get(line.target) or f"{line.target} events"
        kept = "while the shopper has events" if line.target == "bot_flags" else _kept(line.days)
        table.add_row(name, kept, cutoff, f"{line.rows:,}")
    console.print(table)
    console.print(
        f"{report.events_rows:,} events, {report.quarantine.rows:,} quarantined rows, "
        f"{report.exposures.rows if report.exposures else 0:,} A/B exposures, "
        f"{report.flags.rows if report.flags else 0:,} bot flags {verb}"
        + (" (nothing changed)" if report.dry_run else "")
    )


@retention_app.command("show")
def show(home: HomeOption = None, as_json: JsonOption = False) -> None:
    """The saved policy, and what applying it now would erase (a dry run; nothing changes)."""
    from rich.console import Console

    from shoploop.privacy.retention import apply_retention

    home = _home(home)
    policy = _load(home)
    report = None
    if policy is not None:
        with stores_and_experiments(home) as (stores, experiments):
            report = apply_retention(
                stores, policy, now=datetime.now(UTC), dry_run=True, experiments=experiments
            )
    if as_json:
        payload = {
            "policy": policy.to_dict() if policy is not None else None,
            "warnings": policy.warnings() if policy is not None else [],
            "report": report.to_dict() if report is not None else None,
        }
        typer.echo(json.dumps(payload, indent=2))
        return
    console = Console()
    if policy is None or report is None:
        console.print(
            "no retention policy: shopper data is kept forever "
            f"(set one with `shoploop retention set --home {home} --events-days 365`)"
        )
        return
    _print_policy(policy, console)
    _print_report(report, console)


@retention_app.command("set")
def set_policy(
    home: HomeOption = None,
    events_days: Annotated[
        float | None,
        typer.Option("--events-days", help="Keep events N days (every type without its own --type)."),
    ] = None,
    quarantine_days: Annotated[
        float | None, typer.Option("--quarantine-days", help="Keep rejected input rows N days.")
    ] = None,
    per_type: Annotated[
        list[str] | None,
        typer.Option("--type", help="TYPE=DAYS for one event type, e.g. search=90; repeatable."),
    ] = None,
) -> None:
    """Replace the retention policy; a setting left out keeps that data forever."""
    from rich.console import Console

    from shoploop.privacy.retention import RetentionPolicy, RetentionPolicyError, parse_type_days, save_policy

    home = _home(home)
    try:
        overrides = parse_type_days(per_type or [])
        if events_days is None and quarantine_days is None and not overrides:
            raise _fail("give at least one of --events-days, --quarantine-days, --type TYPE=DAYS")
        policy = RetentionPolicy(events_days=events_days, quarantine_days=quarantine_days, per_type=overrides)
    except RetentionPolicyError as err:
        raise _option_error(err) from None
    path = save_policy(home, policy)
    console = Console()
    _print_policy(policy, console)
    console.print(f"saved to {path}; see what it would erase with `shoploop retention show --home {home}`")


@retention_app.command("apply")
def apply(
    home: HomeOption = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Only count what would be erased.")] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Erase without asking (for schedulers).")] = False,
    as_json: JsonOption = False,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show a progress bar.")] = True,
) -> None:
    """Erase events and quarantined rows older than the policy keeps them, after confirming."""
    from rich.console import Console

    from shoploop.privacy.retention import apply_retention

    home = _home(home)
    if as_json and not (yes or dry_run):
        raise _fail("--json needs --yes or --dry-run (a JSON run cannot stop to ask)")
    policy = _load(home)
    if policy is None:
        raise _fail(f"no retention policy in {home}; set one with `shoploop retention set --events-days N`")
    console = Console(stderr=as_json)  # with --json, stdout holds the JSON alone
    # One `now` for the preview and the purge: what the user confirms is what is erased.
    now = datetime.now(UTC)
    with stores_and_experiments(home) as (stores, experiments):
        preview = apply_retention(stores, policy, now=now, dry_run=True, experiments=experiments)
        if dry_run or preview.total_rows == 0:
            report = preview
        else:
            if not as_json:
                _print_report(preview, console)
            question = f"Erase these {preview.total_rows:,} rows? This cannot be undone"
            if not yes and not typer.confirm(question):
                console.print("nothing erased")
                raise typer.Exit(1)
            with progress_bar(progress, "erasing") as on_progress:
                report = apply_retention(
                    stores, policy, now=now, experiments=experiments, progress=on_progress
                )
    if as_json:
        typer.echo(json.dumps(report.to_dict(), indent=2))
    else:
        _print_report(report, console)
