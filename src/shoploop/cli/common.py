"""What every `shoploop` command shares: the `--home` option and where it defaults to, the check
that a shop exists there, and the one way a command fails (a red `error: ...` on stderr and a
non-zero exit, 2 by default: the command could not start)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import typer

if TYPE_CHECKING:  # loaded inside the commands, so `shoploop --help` stays instant
    from shoploop.evaluation.ab import ExperimentStore
    from shoploop.store.home import Stores

# No square brackets in the help text: Rich reads "[default: ...]" as markup and drops it.
HomeOption = Annotated[
    Path | None,
    typer.Option("--home", help="Shop home directory (default: $SHOPLOOP_HOME, else ./var/shoploop)."),
]


def default_home() -> Path:
    return Path(os.environ.get("SHOPLOOP_HOME") or "./var/shoploop")


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print `error: message` in red on stderr; returns the Exit for the caller to raise."""
    typer.secho(f"error: {message}", err=True, fg=typer.colors.RED)
    return typer.Exit(code)


def existing_home(home: Path | None) -> Path:
    """`home` (or the default) if a shop lives there; otherwise exit with a hint."""
    home = home or default_home()
    if not (home / "shoploop.sqlite").is_file():
        raise fail(f"no shop at {home}; try `shoploop demo-data --home {home}`")
    return home


@contextmanager
def stores_and_experiments(home: Path) -> Iterator[tuple[Stores, ExperimentStore]]:
    """The home's stores and its A/B experiment store, which names shoppers too (its own tables
    in the same database), opened together and closed together."""
    from shoploop.evaluation.ab import SqliteExperimentStore
    from shoploop.store.home import DB_FILENAME, open_stores

    experiments = SqliteExperimentStore(home / DB_FILENAME)
    try:
        with open_stores(home) as stores:
            yield stores, experiments
    finally:
        experiments.close()


@contextmanager
def progress_bar(
    enabled: bool, label: str, *, unit: Literal["rows", "bytes"] = "rows"
) -> Iterator[Callable[[int, int], None] | None]:
    """A Rich progress bar on stderr (stdout stays clean for scripts and cron mails), fed by
    `(done, total)` calls with rate and ETA; None when disabled."""
    if not enabled:
        yield None
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
        TransferSpeedColumn,
    )

    amounts = (DownloadColumn(), TransferSpeedColumn()) if unit == "bytes" else (MofNCompleteColumn(),)
    columns = (TextColumn("{task.description}"), BarColumn(), *amounts, TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(label, total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total)
