"""What an import did: counts per outcome and per rejection reason, printable and saved as JSON."""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from rich.console import Console
from rich.table import Table

from shoploop.store.files import atomic_write_text


@dataclass
class ImportReport:
    """Outcome of one import. Every row read ends in exactly one bucket:
    `rows_read == accepted + duplicates + quarantined`.

    `duplicates` are rows that changed nothing: events whose `event_id` was already in
    the log or earlier in the same batch, and catalog rows identical to the stored
    product. `quarantined_by_reason` is keyed by short codes (see `shoploop.data.cleaning`).
    `already_quarantined` counts rejected rows that an earlier import of the same source
    had already quarantined (not stored twice, still counted as quarantined).
    """

    source: str
    kind: Literal["catalog", "events"]
    rows_read: int = 0
    accepted: int = 0
    duplicates: int = 0
    quarantined_by_reason: dict[str, int] = field(default_factory=dict)
    already_quarantined: int = 0
    flagged_users: list[str] = field(default_factory=list)
    duration_s: float = 0.0
    rows_per_s: float = 0.0
    started_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    @property
    def quarantined(self) -> int:
        return sum(self.quarantined_by_reason.values())

    def add_rejection(self, code: str) -> None:
        self.quarantined_by_reason[code] = self.quarantined_by_reason.get(code, 0) + 1

    def finish(self, duration_s: float) -> ImportReport:
        self.duration_s = duration_s
        self.rows_per_s = self.rows_read / duration_s if duration_s > 0 else 0.0
        self.quarantined_by_reason = dict(sorted(self.quarantined_by_reason.items()))
        return self

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["quarantined"] = self.quarantined
        return data


def print_report(report: ImportReport, console: Console | None = None) -> None:
    """A rich table of the counts, one row per rejection reason."""
    console = console or Console()
    table = Table(title=f"import {report.kind}: {report.source}", show_header=True)
    table.add_column("outcome")
    table.add_column("rows", justify="right")
    table.add_row("read", f"{report.rows_read:,}")
    table.add_row("accepted", f"{report.accepted:,}")
    table.add_row("duplicates / unchanged", f"{report.duplicates:,}")
    table.add_row("quarantined", f"{report.quarantined:,}")
    for code, n in report.quarantined_by_reason.items():
        table.add_row(f"  {code}", f"{n:,}")
    if report.already_quarantined:
        table.add_row("  (already in quarantine)", f"{report.already_quarantined:,}")
    if report.kind == "events":
        table.add_row("users flagged as bots", f"{len(report.flagged_users):,}")
    table.add_row("time", f"{report.duration_s:.2f} s ({report.rows_per_s:,.0f} rows/s)")
    console.print(table)


REPORTS_DIRNAME = "reports"
# Every report's name starts with when it was written (UTC), which a copy or a restore keeps
# and file times do not: retention dates reports by it.
REPORT_STAMP = "%Y%m%dT%H%M%S%fZ"


def save_report(report: ImportReport, home: Path) -> Path:
    """Write the report as JSON under `home/reports/`; temp file + rename so it is never half-written."""
    directory = Path(home) / REPORTS_DIRNAME
    directory.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime(REPORT_STAMP)
    safe_source = re.sub(r"[^A-Za-z0-9._-]+", "_", report.source)[:80] or "source"
    target = directory / f"{stamp}-{report.kind}-{safe_source}.json"
    atomic_write_text(target, json.dumps(report.to_dict(), indent=2, sort_keys=True))
    return target


def load_report(path: Path) -> ImportReport:
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    data.pop("quarantined", None)
    return ImportReport(**data)
