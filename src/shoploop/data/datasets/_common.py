"""Small helpers shared by the dataset adapters: clear errors and synthetic clocks."""

from __future__ import annotations

import html
import re
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import pandas as pd

# Datasets without timestamps get synthetic ones counted from this fixed instant, so two
# loads of the same files give identical events (and identical event ids).
SYNTHETIC_EPOCH = datetime(2024, 1, 1, tzinfo=UTC)

T = TypeVar("T")
_SPACES = re.compile(r"\s+")


def require_file(path: Path, what: str) -> Path:
    """`path` if it is a file, else a FileNotFoundError that names it and what it should hold."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what}: expected file {path} is missing")
    return path


def require_dir(path: Path, what: str) -> Path:
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"{what}: expected directory {path} is missing")
    return path


def require_columns(frame: pd.DataFrame, columns: Iterable[str], path: Path) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{path}: missing column(s) {', '.join(missing)} (found {', '.join(frame.columns)})")


def clean_text(value: object) -> str:
    """Unescape HTML entities (&#x2122;) and collapse whitespace; NaN and None become ''."""
    if value is None or (isinstance(value, float) and value != value):
        return ""
    text = html.unescape(str(value))
    return _SPACES.sub(" ", text).strip()


def synthetic_time(step: int, *, seconds_per_step: float = 60.0) -> datetime:
    """The `step`-th tick of a synthetic clock starting at SYNTHETIC_EPOCH."""
    return SYNTHETIC_EPOCH + timedelta(seconds=step * seconds_per_step)


def progress_iter(items: Iterable[T], *, total: int, label: str, enabled: bool) -> Iterator[T]:
    """`items`, with a rich progress bar (rate and ETA) on stderr when `enabled`."""
    if not enabled:
        yield from items
        return
    from rich.console import Console
    from rich.progress import Progress

    with Progress(*Progress.get_default_columns(), console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task(label, total=total)
        for n, item in enumerate(items, start=1):
            yield item
            if n % 1000 == 0:
                bar.update(task, completed=n)
        bar.update(task, completed=total)
