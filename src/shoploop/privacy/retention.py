"""Data retention: how long a shop keeps shopper data, and the purge that applies it.

Storage limitation (GDPR art. 5(1)(e)): personal data is kept no longer than its purpose
needs. A shop sets a `RetentionPolicy` once (`home/retention.json`, written by
`shoploop retention set`) and `apply_retention` erases what has outlived it: events older
than their type's limit, and quarantined rows (rejected input, verbatim, so shopper data
too) older than the quarantine limit.

Semantics, the same in every store:

* An event goes when `timestamp < now - days` (the cutoff is exclusive: an event exactly
  `days` old stays). The quarantine goes by when a row was quarantined, not by the times
  inside the raw row, which may be missing or malformed.
* `per_type` overrides `events_days` for the types it names, in either direction; `None`
  (or a missing setting) keeps that data forever.
* What is erased is raw data only. Models retrained afterwards no longer see it; models
  already trained still reflect it until then.
* What a running server holds about a shopper (profile, recent items and queries, affinities,
  autocomplete's per-shopper counts) follows the log, whichever process purges: after each
  committed chunk, `apply_retention` notes the stored ids of the shoppers who lost events in
  the event log's purge record (`EventLog.note_purged`), and every server on the shop's home
  rebuilds their state from what the log still holds at its next store sync (every few
  seconds, `Engine.sync_with_stores`). A server started later replays the log as it is and
  skips the older record.
* The purge record keeps as little as it can: stored (pseudonymised, when the shop
  pseudonymises) ids and when they were noted, nothing about the erased events. Entries
  older than `store.protocols.PURGE_RECORD_HORIZON` (2 days) are pruned whenever a purge
  writes to it, so it never becomes a second, longer-lived list of shoppers (a server whose
  syncs failed for longer than that rebuilds those shoppers only at its next restart).

`apply_retention` takes `now` explicitly, so a test (or a re-run after an interruption)
gets exactly the same cutoffs. It counts first, then erases type by type in the stores'
chunked transactions; applying the same policy twice erases nothing the second time.
Shoppers are noted chunk by chunk, and an interrupted run notes those of the chunks it
committed on the way out, so the servers catch up even when nothing is left for a re-run.
"""

from __future__ import annotations

import contextlib
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from shoploop.data.report import REPORT_STAMP, REPORTS_DIRNAME
from shoploop.domain.events import EVENT_TYPES
from shoploop.store.files import atomic_write_text
from shoploop.store.progress import Progress, running_total

if TYPE_CHECKING:
    from shoploop.evaluation.ab import ExperimentStore
    from shoploop.store.home import Stores

__all__ = [
    "MAX_DAYS",
    "POLICY_FILENAME",
    "RetentionLine",
    "RetentionPolicy",
    "RetentionPolicyError",
    "RetentionReport",
    "apply_retention",
    "load_policy",
    "parse_policy",
    "parse_type_days",
    "policy_text",
    "save_policy",
]

# JSON, not TOML: the standard library reads and writes it, so the file the CLI writes is the
# file it reads back, and there is no second parser to disagree with.
POLICY_FILENAME = "retention.json"
# Anything longer is "forever" in practice; the cap keeps `timedelta(days=...)` in range and
# catches typos such as an extra row of zeros (leave a setting unset to keep data forever).
MAX_DAYS = 1_000_000
_SETTINGS = ("events_days", "quarantine_days", "per_type")
# Interactions that point back at the served list (request_id) they came from.
_JOINED_TO_IMPRESSIONS = ("click", "add_to_cart", "purchase")


class RetentionPolicyError(ValueError):
    """A setting that is not a valid retention; `field` names it ("per_type.search")."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


def _days(name: str, value: object) -> float:
    # bool is an int subclass: `true` in the file must not read as "1 day".
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RetentionPolicyError(name, f"must be a number of days, got {value!r}")
    days = float(value)
    if not math.isfinite(days) or days <= 0:
        raise RetentionPolicyError(name, f"must be a number of days > 0 (unset keeps forever), got {value!r}")
    if days > MAX_DAYS:
        limit = f"must be at most {MAX_DAYS:,} days (unset keeps forever)"
        raise RetentionPolicyError(name, f"{limit}, got {value!r}")
    return days


def _optional_days(name: str, value: object) -> float | None:
    return None if value is None else _days(name, value)


def _plain(days: float | None) -> float | int | None:
    # 90, not 90.0, in the file a person may read.
    return int(days) if days is not None and days.is_integer() else days


@dataclass(frozen=True)
class RetentionPolicy:
    """How long each kind of shopper data is kept, in days (None: forever).

    `per_type` maps event type names (`shoploop.domain.events.EVENT_TYPES`) to days and wins
    over `events_days` for those types, e.g. keep searches 90 days and the rest 365:
    `RetentionPolicy(events_days=365, quarantine_days=30, per_type={"search": 90})`.
    Invalid values raise `RetentionPolicyError` naming the field.
    """

    events_days: float | None
    quarantine_days: float | None
    # Read-only after validation; left out of the hash (a mapping has none), kept in ==.
    per_type: Mapping[str, float] = field(default_factory=dict, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "events_days", _optional_days("events_days", self.events_days))
        object.__setattr__(self, "quarantine_days", _optional_days("quarantine_days", self.quarantine_days))
        if not isinstance(self.per_type, Mapping):
            raise RetentionPolicyError("per_type", f"must map event types to days, got {self.per_type!r}")
        checked: dict[str, float] = {}
        for name, days in self.per_type.items():
            where = f"per_type.{name}"
            if name not in EVENT_TYPES:
                raise RetentionPolicyError(where, f"unknown event type (known: {', '.join(EVENT_TYPES)})")
            checked[name] = _days(where, days)
        # Copied, so a caller changing its dict afterwards cannot change a frozen policy.
        object.__setattr__(self, "per_type", MappingProxyType(dict(sorted(checked.items()))))

    def days_for(self, event_type: str) -> float | None:
        """How long events of `event_type` are kept (None: forever)."""
        return self.per_type.get(event_type, self.events_days)

    @property
    def keeps_everything(self) -> bool:
        return self.events_days is None and self.quarantine_days is None and not self.per_type

    def event_cutoffs(self, now: datetime) -> dict[str, datetime | None]:
        """For every event type, the instant before which its events are erased (None: never)."""
        return {t: _cutoff(now, self.days_for(t)) for t in EVENT_TYPES}

    def quarantine_cutoff(self, now: datetime) -> datetime | None:
        return _cutoff(now, self.quarantine_days)

    def warnings(self) -> list[str]:
        """Combinations that are legal but probably not meant."""
        shown = self.days_for("impression")
        if shown is None:
            return []
        longer = [t for t in _JOINED_TO_IMPRESSIONS if (d := self.days_for(t)) is None or d > shown]
        if not longer:
            return []
        return [
            f"impressions are kept {shown:g} days, {', '.join(longer)} events longer: older ones lose "
            "the served list they point to, so learning to rank and off-policy evaluation cannot "
            "use them (keep impressions at least as long)"
        ]

    def to_dict(self) -> dict[str, Any]:
        return {
            "events_days": _plain(self.events_days),
            "quarantine_days": _plain(self.quarantine_days),
            "per_type": {name: _plain(days) for name, days in self.per_type.items()},
        }

    @classmethod
    def from_dict(cls, data: object) -> RetentionPolicy:
        """The policy in `data` (as `to_dict` writes it); a missing setting means unset.

        Unknown keys are refused rather than ignored: a misspelt "event_days" silently
        dropped would keep data the shop believes is being erased.
        """
        if not isinstance(data, Mapping):
            raise RetentionPolicyError("policy", f"must be an object with {', '.join(_SETTINGS)}")
        for key in data:
            if key not in _SETTINGS:
                raise RetentionPolicyError(str(key), f"unknown setting (known: {', '.join(_SETTINGS)})")
        per_type = data.get("per_type")
        return cls(
            events_days=data.get("events_days"),  # type: ignore[arg-type]  # checked in __post_init__
            quarantine_days=data.get("quarantine_days"),  # type: ignore[arg-type]
            per_type={} if per_type is None else per_type,  # type: ignore[arg-type]
        )


def _cutoff(now: datetime, days: float | None) -> datetime | None:
    if days is None:
        return None
    try:
        return now - timedelta(days=days)
    except OverflowError:
        # Further back than a datetime goes: nothing can be older, and the smallest
        # datetime says so without a special case in the stores.
        return datetime.min.replace(tzinfo=UTC)


# ------------------------------------------------------------------------------ the file


def days_from_text(text: str, field: str) -> float | None:
    """A number of days typed as text (a form, a TYPE=DAYS item); empty is None, kept forever.
    RetentionPolicyError naming `field` otherwise; the range is `RetentionPolicy`'s to check."""
    text = text.strip()
    if not text:
        return None
    try:
        return float(text)
    except ValueError:
        raise RetentionPolicyError(field, f"must be a number of days, got {text!r}") from None


def parse_type_days(items: Iterable[str]) -> dict[str, float]:
    """`TYPE=DAYS` items (`search=90`) as a per-type mapping; RetentionPolicyError naming
    `per_type` or `per_type.<type>` for an item that is not one. Types and day values are
    checked by `RetentionPolicy` itself."""
    days: dict[str, float] = {}
    for item in items:
        name, sep, value = item.partition("=")
        name = name.strip()
        if not sep or not name:
            raise RetentionPolicyError(
                "per_type", f"expected TYPE=DAYS such as search=90, got {item.strip()!r}"
            )
        if name in days:
            raise RetentionPolicyError(f"per_type.{name}", "given twice")
        value_days = days_from_text(value, f"per_type.{name}")
        if value_days is None:
            raise RetentionPolicyError(f"per_type.{name}", "must be a number of days, got ''")
        days[name] = value_days
    return days


def parse_policy(text: str) -> RetentionPolicy:
    """The policy in a `retention.json` text; RetentionPolicyError naming the field if bad."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise RetentionPolicyError(POLICY_FILENAME, f"not valid JSON ({err})") from None
    return RetentionPolicy.from_dict(data)


def policy_text(policy: RetentionPolicy) -> str:
    return json.dumps(policy.to_dict(), indent=2, sort_keys=True) + "\n"


def load_policy(home: Path) -> RetentionPolicy | None:
    """The shop's saved policy, or None when it has none (everything is kept)."""
    path = Path(home) / POLICY_FILENAME
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    return parse_policy(text)


def save_policy(home: Path, policy: RetentionPolicy) -> Path:
    """Write the policy to `home/retention.json`; readers see the old file or the new, never half."""
    path = Path(home) / POLICY_FILENAME
    atomic_write_text(path, policy_text(policy))
    return path


# ----------------------------------------------------------------------------- applying


@dataclass(frozen=True)
class RetentionLine:
    """One kind of data: its limit, its cutoff and how many rows went (or would go)."""

    target: str  # an event type, or "quarantine"
    days: float | None  # None: kept forever
    cutoff: datetime | None  # rows strictly older than this are erased; None: none are
    rows: int  # erased, or in a dry run, that would be erased now

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "days": _plain(self.days),
            "cutoff": self.cutoff.isoformat() if self.cutoff is not None else None,
            "rows": self.rows,
        }


@dataclass(frozen=True)
class RetentionReport:
    now: datetime
    dry_run: bool
    events: tuple[RetentionLine, ...]  # one line per event type, in EVENT_TYPES order
    quarantine: RetentionLine
    # A/B exposures (who saw which variant, when) follow the impressions' limit: an exposure is
    # logged when a list is served. None when no experiment store was given.
    exposures: RetentionLine | None = None
    # Import reports (`HOME/reports/*.json`) list the shoppers an import flagged as bots, so they
    # go with the quarantine's limit (both describe rejected input). None without a home.
    reports: RetentionLine | None = None
    # A bot flag names a shopper; it goes once none of their events is left (nothing remains for
    # it to keep out of training), so it never outlives the data it was raised about.
    flags: RetentionLine | None = None

    @property
    def events_rows(self) -> int:
        return sum(line.rows for line in self.events)

    @property
    def lines(self) -> tuple[RetentionLine, ...]:
        """Every line: events first, then the quarantine, the exposures and the import reports
        (when there were any to look at)."""
        extra = tuple(line for line in (self.exposures, self.reports, self.flags) if line is not None)
        return (*self.events, self.quarantine, *extra)

    @property
    def total_rows(self) -> int:
        return self.events_rows + sum(line.rows for line in self.lines[len(self.events) :])

    def to_dict(self) -> dict[str, Any]:
        return {
            "now": self.now.isoformat(),
            "dry_run": self.dry_run,
            "events": [line.to_dict() for line in self.events],
            "quarantine": self.quarantine.to_dict(),
            "experiment_exposures": self.exposures.to_dict() if self.exposures else None,
            "import_reports": self.reports.to_dict() if self.reports else None,
            "bot_flags": self.flags.to_dict() if self.flags else None,
            "events_rows": self.events_rows,
            "total_rows": self.total_rows,
        }


def apply_retention(
    stores: Stores,
    policy: RetentionPolicy,
    *,
    now: datetime,
    dry_run: bool = False,
    progress: Progress | None = None,
    erased_users: set[str] | None = None,
    experiments: ExperimentStore | None = None,
) -> RetentionReport:
    """Erase the events and quarantined rows that `policy` no longer keeps at `now`.

    `erased_users`, when given, receives the ids of the shoppers who lost events. They are
    also noted in the event log's purge record, chunk by chunk (`EventLog.note_purged` at
    `now`), so every server on the shop rebuilds what it holds about them at its next store
    sync; a run that erases nothing still prunes that record.
    With `experiments`, A/B exposures older than the impressions' limit are erased too.

    `stores` needs only `.events` (EventLog) and `.quarantine` (Quarantine). With `dry_run`
    nothing is erased and each line counts what would be. Otherwise each line holds what was
    erased, which can exceed the count taken first if old events were imported meanwhile.
    The stores erase in short atomic chunks, so an interrupted run can simply be repeated.
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(f"now must be timezone-aware, got {now!r}")
    cutoffs = policy.event_cutoffs(now)
    q_cutoff = policy.quarantine_cutoff(now)
    # Counted per type (one probe of the (type, ts) index each): the report says what each
    # type lost, and the progress bar knows its total before the first row goes.
    counts = {t: stores.events.count_before(c, types=[t]) if c is not None else 0 for t, c in cutoffs.items()}
    q_count = stores.quarantine.count_before(q_cutoff) if q_cutoff is not None else 0
    home = getattr(stores, "home", None)
    old_reports = _old_reports(Path(home), q_cutoff) if home is not None and q_cutoff is not None else []
    x_cutoff = cutoffs.get("impression")
    x_count = experiments.count_exposures_before(x_cutoff) if experiments and x_cutoff else 0

    if not dry_run:
        step = running_total(sum(counts.values()) + q_count + x_count, progress)
        # Shoppers of the chunks erased since the last note: the store adds them inside a
        # chunk's transaction, and calls `progress` once that chunk is committed.
        pending: set[str] = set()

        def note_pending() -> None:
            stores.events.note_purged(pending, now)
            if erased_users is not None:
                erased_users.update(pending)
            pending.clear()

        def chunk_done(n: int) -> None:
            # Noted per chunk, not once at the end: an interrupted purge leaves its erased
            # chunks committed, and a re-run would find nothing left to name the shoppers by.
            note_pending()
            step(n)

        # Every type with a cutoff is purged, even one counted empty: an import may have added
        # old events since the count, and a purge that finds nothing costs one index probe.
        try:
            for event_type, cutoff in cutoffs.items():
                if cutoff is not None:
                    counts[event_type] = stores.events.delete_before(
                        cutoff, types=[event_type], progress=chunk_done, erased_users=pending
                    )
        except BaseException:
            # Interrupted (Ctrl-C, a locked database) after a chunk committed but before it was
            # noted: note it now. `pending` may also hold a rolled-back chunk's shoppers, which
            # costs a server one needless rebuild.
            if pending:
                with contextlib.suppress(Exception):
                    note_pending()
            raise
        note_pending()  # normally nothing is pending here; the write prunes notes past the horizon
        if q_cutoff is not None:
            q_count = stores.quarantine.remove_before(q_cutoff, progress=step)
        if experiments is not None and x_cutoff is not None:
            x_count = experiments.delete_exposures_before(x_cutoff)
            step(x_count)
        for path in old_reports:
            path.unlink(missing_ok=True)
        flags = stores.events.unflag_users(
            [u for u in stores.events.flagged_users() if next(stores.events.scan(user_id=u), None) is None]
        )
    else:
        flags = sum(_all_events_go(stores, user, cutoffs) for user in stores.events.flagged_users())

    return RetentionReport(
        now=now,
        dry_run=dry_run,
        events=tuple(RetentionLine(t, policy.days_for(t), cutoffs[t], counts[t]) for t in EVENT_TYPES),
        quarantine=RetentionLine("quarantine", policy.quarantine_days, q_cutoff, q_count),
        exposures=(
            RetentionLine("experiment_exposures", policy.days_for("impression"), x_cutoff, x_count)
            if experiments is not None
            else None
        ),
        reports=(
            RetentionLine("import_reports", policy.quarantine_days, q_cutoff, len(old_reports))
            if home is not None
            else None
        ),
        flags=RetentionLine("bot_flags", None, None, flags),
    )


def _all_events_go(stores: Stores, user_id: str, cutoffs: Mapping[str, datetime | None]) -> bool:
    """Whether applying `cutoffs` would leave this shopper without events (dry runs only: the
    flagged are few, and a real run simply checks what is left)."""
    for event in stores.events.scan(user_id=user_id):
        cutoff = cutoffs.get(event.type)
        if cutoff is None or event.timestamp >= cutoff:
            return False
    return True


def _old_reports(home: Path, cutoff: datetime) -> list[Path]:
    """Import reports written before `cutoff`, dated by the UTC stamp that starts their name
    (`data.report.save_report`), which survives a copy or a restore; by the file's time when
    a name has none."""
    directory = home / REPORTS_DIRNAME
    if not directory.is_dir():
        return []
    old = []
    for path in directory.glob("*.json"):
        try:
            written = datetime.strptime(path.name.split("-", 1)[0], REPORT_STAMP).replace(tzinfo=UTC)
        except ValueError:
            written = datetime.fromtimestamp(path.stat().st_mtime, UTC)
        if written < cutoff:
            old.append(path)
    return sorted(old)
