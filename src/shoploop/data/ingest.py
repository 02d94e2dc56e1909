"""Validate, clean and write imported rows; quarantine what fails, with the reason.

Flow per batch (default 5,000 rows): parse -> validate through the domain models ->
cleaning rules (`shoploop.data.cleaning`) -> write the accepted rows (`EventLog.append`
is atomic per batch, `CatalogStore.upsert` one transaction) -> store rejected rows in the
`Quarantine` with reason, row number and raw row. No row is dropped silently: every row
read ends as accepted, duplicate or quarantined, and the report says how many of each.

Idempotency. Re-importing a file adds nothing:
* events are keyed by `event_id`; a row *without* one gets a deterministic id derived
  from a hash of its (normalised) content, `"h" + blake2b-128 hex`. The same row content
  therefore always gets the same id. Consequence: two genuinely identical rows without
  ids (same user, type, item, timestamp, ...) collapse into one event — they are
  indistinguishable anyway;
* catalog rows identical to the stored product are skipped, so the catalog version
  (and the change feed that drives index refreshes) does not move;
* a rejected row already quarantined by an earlier import of the same source (same
  row number and raw content) is not stored a second time.

Quarantined rows are stored after column renaming (our field names, original values),
so `reimport_quarantine` re-validates them with the same rules without needing the map.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ValidationError

from shoploop.data.cleaning import (
    BotDetector,
    CleaningConfig,
    ClickDeduper,
    Rejection,
    check_timestamp,
    duplicate_click_rejection,
    fast_item_ids,
    reason_code,
    rejection_from_validation,
    unknown_item_rejection,
)
from shoploop.data.readers import (
    UNPARSED_KEY,
    SourceRow,
    jsonable,
    normalize_row,
    read_rows,
    rename_columns,
)
from shoploop.data.report import ImportReport
from shoploop.domain import (
    ANONYMOUS_USER,
    AddToCartEvent,
    ClickEvent,
    DislikeEvent,
    Event,
    ImpressionEvent,
    Product,
    PurchaseEvent,
    RatingEvent,
    RemoveFromCartEvent,
    SearchEvent,
    ViewEvent,
    event_to_dict,
    parse_event,
)

if TYPE_CHECKING:
    from shoploop.store.home import Stores

Kind = Literal["catalog", "events"]

_EVENT_CLASSES: tuple[type[BaseModel], ...] = (
    SearchEvent,
    ImpressionEvent,
    ViewEvent,
    ClickEvent,
    AddToCartEvent,
    RemoveFromCartEvent,
    PurchaseEvent,
    RatingEvent,
    DislikeEvent,
)
_EVENT_FIELDS: dict[str, frozenset[str]] = {
    cls.model_fields["type"].default: frozenset(cls.model_fields) for cls in _EVENT_CLASSES
}
_PRODUCT_FIELDS = frozenset(Product.model_fields)


# Rows per transaction. Each commit rewrites every index page it dirtied, and event ids are
# random, so a batch touches leaf pages all over the id and user indexes whatever its size:
# bigger batches amortise that. On 500k events, 20,000 per batch stored 7-10% more events/s
# than 5,000 (benchmarks/ingest.py reports both); a batch of ~15 MB of JSON is still small.
DEFAULT_BATCH_SIZE = 20_000


def derive_event_id(data: Mapping[str, Any]) -> str:
    """Deterministic event id from a row's content (any given `event_id` is ignored)."""
    payload = {k: v for k, v in data.items() if k != "event_id"}
    try:  # rows from JSON/CSV are JSON-ready already; only Parquet rows need converting
        text = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError):
        text = json.dumps(jsonable(payload), sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return "h" + hashlib.blake2b(text.encode("utf-8"), digest_size=16).hexdigest()


# ---------------------------------------------------------------------------------------
# candidates: one row on its way through the pipeline


@dataclass(slots=True)
class _Candidate:
    row_number: int | None
    raw: dict[str, Any] | None  # renamed source row; None for already-typed records
    error: str | None = None  # the reader could not parse the line
    record: Any = None  # a typed Product / Event (import_records)
    quarantine_id: int | None = None  # set when re-importing from the quarantine

    def raw_row(self) -> dict[str, Any]:
        if self.raw is None:
            if isinstance(self.record, Product):
                self.raw = self.record.model_dump(mode="json")
            else:
                self.raw = event_to_dict(self.record)
        return jsonable(self.raw)


def _candidates(rows: Iterable[Mapping[str, Any] | SourceRow]) -> Iterator[_Candidate]:
    for i, row in enumerate(rows, start=1):
        if isinstance(row, SourceRow):
            yield _Candidate(row.row_number, row.raw, row.error)
        elif isinstance(row, Mapping):
            yield _Candidate(i, dict(row))
        else:
            yield _Candidate(i, {UNPARSED_KEY: repr(row)[:1000]}, f"row {i}: expected a mapping")


def _record_candidates(records: Iterable[Any]) -> Iterator[_Candidate]:
    for i, record in enumerate(records, start=1):
        yield _Candidate(i, None, record=record)


def _batches(items: Iterator[_Candidate], size: int) -> Iterator[list[_Candidate]]:
    batch: list[_Candidate] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _reader_rejection(error: str) -> Rejection:
    return Rejection(reason_code(error), error)


def _drop_unknown_columns(data: dict[str, Any], allowed: frozenset[str] | None) -> dict[str, Any]:
    if allowed is None:
        return data
    return {k: v for k, v in data.items() if k in allowed}


# ---------------------------------------------------------------------------------------
# per-kind batch processors: decide each candidate's fate, write accepted rows


@dataclass
class _Outcome:
    accepted: int = 0
    duplicates: int = 0
    rejected: list[tuple[_Candidate, Rejection]] = field(default_factory=list)
    newly_flagged: dict[str, str] = field(default_factory=dict)
    # The event of every candidate that passed validation and cleaning, and the ids the
    # log actually inserted: together they tell a live caller each row's fate.
    passed: dict[int, Event] = field(default_factory=dict)  # id(candidate) -> event
    inserted: set[str] = field(default_factory=set)


class _CatalogBatcher:
    def __init__(self, stores: Stores, config: CleaningConfig) -> None:
        self.stores = stores
        self.config = config

    def validate(self, cand: _Candidate) -> Product | Rejection:
        if cand.error is not None:
            return _reader_rejection(cand.error)
        if cand.record is not None:
            return cand.record
        assert cand.raw is not None
        data = normalize_row(cand.raw)
        if self.config.unknown_columns == "ignore":
            data = _drop_unknown_columns(data, _PRODUCT_FIELDS)
        try:
            return Product.model_validate(data)
        except ValidationError as exc:
            return rejection_from_validation(exc, data)

    def process(self, batch: Sequence[_Candidate]) -> _Outcome:
        out = _Outcome()
        latest: dict[str, Product] = {}  # later rows of the same item win, as in an upsert
        for cand in batch:
            result = self.validate(cand)
            if isinstance(result, Rejection):
                out.rejected.append((cand, result))
                continue
            previous = latest.get(result.item_id)
            if previous is not None and previous == result:
                out.duplicates += 1
                continue
            if previous is not None:
                out.accepted += 1  # the earlier version was superseded within the batch
            latest[result.item_id] = result
        stored = self.stores.catalog.get_many(list(latest))
        changed = [p for p in latest.values() if stored.get(p.item_id) != p]
        out.duplicates += len(latest) - len(changed)
        if changed:
            self.stores.catalog.upsert(changed)
        out.accepted += len(changed)
        return out


UserIdMap = Callable[[str], str]


class _EventBatcher:
    def __init__(
        self,
        stores: Stores,
        config: CleaningConfig,
        *,
        check_log_clicks: bool = False,
        user_ids: UserIdMap | None = None,
    ) -> None:
        self.stores = stores
        self.config = config
        # The shop's pseudonymiser, applied to the row itself before anything else sees it, so
        # neither the log, the derived event id nor a quarantined copy ever holds the raw id.
        self.user_ids = user_ids
        self.now = config.now or datetime.now(UTC)
        self.clicks = ClickDeduper(config.duplicate_click_window)
        self.bots = BotDetector(config)
        self.known_items: set[str] = set()
        self.missing_items: set[str] = set()
        # When re-importing single rows from the quarantine the click that was kept is not
        # in this run's memory, so double clicks are also looked up in the log.
        self.check_log_clicks = check_log_clicks

    def validate(self, cand: _Candidate) -> Event | Rejection:
        if cand.error is not None:
            return _reader_rejection(cand.error)
        if self.user_ids is not None:
            self._map_user_id(cand, self.user_ids)
        if cand.record is not None:
            return cand.record
        assert cand.raw is not None
        data = normalize_row(cand.raw)
        if self.config.unknown_columns == "ignore":
            data = _drop_unknown_columns(data, _EVENT_FIELDS.get(str(data.get("type"))))
        if "event_id" not in data:
            data["event_id"] = derive_event_id(data)
        try:
            return parse_event(data)
        except ValidationError as exc:
            return rejection_from_validation(exc, data)

    @staticmethod
    def _map_user_id(cand: _Candidate, user_ids: UserIdMap) -> None:
        if cand.record is not None:
            user = cand.record.user_id
            if user and user != ANONYMOUS_USER:
                cand.record = cand.record.model_copy(update={"user_id": user_ids(user)})
            return
        raw = cand.raw or {}
        user = raw.get("user_id")
        if user is not None and str(user).strip():
            cand.raw = {**raw, "user_id": user_ids(str(user).strip())}

    def _resolve_items(self, id_lists: Iterable[list[str]]) -> None:
        wanted = {
            item
            for ids in id_lists
            for item in ids
            if item not in self.known_items and item not in self.missing_items
        }
        if not wanted:
            return
        found = self.stores.catalog.get_many(sorted(wanted))
        self.known_items.update(found)
        # The catalog does not change during an event import, so misses can be cached too.
        self.missing_items.update(wanted.difference(found))

    def _log_double_click(self, ev: ClickEvent) -> Rejection | None:
        window = timedelta(seconds=self.config.duplicate_click_window)
        for other in self.stores.events.scan(
            since=ev.timestamp - window,
            until=ev.timestamp + window + timedelta(microseconds=1),
            user_id=ev.user_id,
            types=["click"],
        ):
            if getattr(other, "item_id", None) == ev.item_id and other.event_id != ev.event_id:
                return duplicate_click_rejection(ev, other.event_id, window)
        return None

    def process(self, batch: Sequence[_Candidate]) -> _Outcome:
        out = _Outcome()
        valid: list[tuple[_Candidate, Event, list[str]]] = []
        for cand in batch:
            result = self.validate(cand)
            if isinstance(result, Rejection):
                out.rejected.append((cand, result))
                continue
            rejection = check_timestamp(result.timestamp, self.now, self.config)
            if rejection is not None:
                out.rejected.append((cand, rejection))
                continue
            valid.append((cand, result, fast_item_ids(result)))

        if self.config.unknown_items == "reject":
            self._resolve_items(ids for _, _, ids in valid)
            missing_items = self.missing_items
            kept: list[tuple[_Candidate, Event, list[str]]] = []
            for cand, ev, ids in valid:
                missing = [i for i in ids if i in missing_items]
                if missing:
                    out.rejected.append((cand, unknown_item_rejection(missing)))
                else:
                    kept.append((cand, ev, ids))
            valid = kept

        to_write: list[Event] = []
        seen: set[str] = set()
        for cand, ev, ids in valid:
            if ev.event_id in seen:  # exact re-send inside the batch: idempotent, not an error
                out.duplicates += 1
                out.passed[id(cand)] = ev
                continue
            if isinstance(ev, ClickEvent):
                rejection = self.clicks.check(ev)
                if rejection is None and self.check_log_clicks:
                    rejection = self._log_double_click(ev)
                if rejection is not None:
                    out.rejected.append((cand, rejection))
                    continue
            seen.add(ev.event_id)
            to_write.append(ev)
            out.passed[id(cand)] = ev
            reason = self.bots.observe(ev, ids)
            if reason is not None:
                out.newly_flagged[ev.user_id] = reason

        if to_write:
            result = self.stores.events.append(to_write)
            out.accepted += len(result.inserted)
            out.duplicates += len(result.duplicates)
            out.inserted.update(result.inserted)
        by_reason: dict[str, list[str]] = {}
        for user, reason in out.newly_flagged.items():
            by_reason.setdefault(reason, []).append(user)
        for reason, users in by_reason.items():
            self.stores.events.flag_users(users, reason)
        return out


# ---------------------------------------------------------------------------------------
# progress


@contextmanager
def _progress(enabled: bool, label: str) -> Iterator[Callable[[int], None]]:
    if not enabled:
        yield lambda n: None
        return
    from rich.progress import Progress, ProgressColumn, SpinnerColumn, Task, TextColumn, TimeElapsedColumn
    from rich.text import Text

    class _RateColumn(ProgressColumn):
        def render(self, task: Task) -> Text:
            speed = task.finished_speed or task.speed
            return Text(f"{speed:,.0f} rows/s" if speed else "- rows/s", style="cyan")

    columns = (
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TextColumn("{task.completed:,.0f} rows"),
        _RateColumn(),
        TimeElapsedColumn(),
    )
    with Progress(*columns, transient=False) as bar:
        task = bar.add_task(label, total=None)
        yield lambda n: bar.advance(task, n)


# ---------------------------------------------------------------------------------------
# the import loop shared by catalog, events and the quarantine re-import


def _fingerprint(row_number: int | None, raw: Mapping[str, Any]) -> str:
    return f"{row_number}|" + json.dumps(jsonable(raw), sort_keys=True, default=str)


def _run(
    candidates: Iterator[_Candidate],
    batcher: _CatalogBatcher | _EventBatcher,
    stores: Stores,
    *,
    kind: Kind,
    source: str,
    batch_size: int,
    progress: bool,
    on_rejected: Callable[[list[tuple[_Candidate, Rejection]]], int] | None = None,
    on_passed: Callable[[list[_Candidate]], None] | None = None,
) -> ImportReport:
    if batch_size < 1:
        raise ValueError("batch_size must be >= 1")
    q_kind: Literal["catalog", "event"] = "catalog" if kind == "catalog" else "event"
    report = ImportReport(source=source, kind=kind)
    started = time.perf_counter()
    already: set[str] | None = None

    def quarantine(rejected: list[tuple[_Candidate, Rejection]]) -> int:
        nonlocal already
        if already is None:  # loaded lazily: clean imports never read the quarantine
            already = {
                _fingerprint(r.row_number, r.raw) for r in stores.quarantine.list(kind=q_kind, source=source)
            }
        fresh: list[tuple[int | None, str, Mapping[str, Any]]] = []
        for cand, rej in rejected:
            raw = cand.raw_row()
            key = _fingerprint(cand.row_number, raw)
            if key in already:  # only rows stored by *earlier* imports count here
                continue
            fresh.append((cand.row_number, rej.reason, raw))
        if fresh:
            stores.quarantine.add(fresh, source=source, kind=q_kind)
        return len(rejected) - len(fresh)

    with _progress(progress, f"import {kind} {source}") as advance:
        for batch in _batches(candidates, batch_size):
            outcome = batcher.process(batch)
            report.rows_read += len(batch)
            report.accepted += outcome.accepted
            report.duplicates += outcome.duplicates
            for _, rej in outcome.rejected:
                report.add_rejection(rej.code)
            if outcome.rejected:
                handler = on_rejected or quarantine
                report.already_quarantined += handler(outcome.rejected)
            if on_passed is not None:
                failed = {id(c) for c, _ in outcome.rejected}
                on_passed([c for c in batch if id(c) not in failed])
            report.flagged_users.extend(outcome.newly_flagged)
            advance(len(batch))
    return report.finish(time.perf_counter() - started)


# ---------------------------------------------------------------------------------------
# public API


def import_catalog(
    rows: Iterable[Mapping[str, Any] | SourceRow],
    stores: Stores,
    *,
    source: str,
    config: CleaningConfig = CleaningConfig(),
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: bool = True,
) -> ImportReport:
    """Validate product rows and upsert them; unchanged products are skipped (no version bump).

    `rows` are dicts with our field names (or `SourceRow`s from `read_rows`, which carry
    row numbers and parse errors). Invalid rows go to the quarantine.
    """
    return _run(
        _candidates(rows),
        _CatalogBatcher(stores, config),
        stores,
        kind="catalog",
        source=source,
        batch_size=batch_size,
        progress=progress,
    )


def import_events(
    rows: Iterable[Mapping[str, Any] | SourceRow],
    stores: Stores,
    *,
    source: str,
    config: CleaningConfig = CleaningConfig(),
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: bool = True,
    user_ids: UserIdMap | None = None,
) -> ImportReport:
    """Validate event rows, apply the cleaning rules, append the good ones, flag bot-like users.

    `user_ids` maps each shopper id before it is stored (the shop's pseudonymiser).

    Import the catalog first: with the default `unknown_items="reject"` events naming
    items the catalog lacks are quarantined (re-import them later with
    `reimport_quarantine`).
    """
    return _run(
        _candidates(rows),
        _EventBatcher(stores, config, user_ids=user_ids),
        stores,
        kind="events",
        source=source,
        batch_size=batch_size,
        progress=progress,
    )


def import_file(
    path: Path,
    kind: Kind,
    stores: Stores,
    *,
    fmt: str | None = None,
    column_map: Mapping[str, str] | None = None,
    config: CleaningConfig = CleaningConfig(),
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: bool = True,
    user_ids: UserIdMap | None = None,
) -> ImportReport:
    """Stream a CSV / JSONL / Parquet file (optionally .gz) into the stores.

    `column_map` is `{"our_field": "their_column"}`. Raises `ReaderError` for an unknown
    format and `FileNotFoundError` for a missing file; bad rows never raise.
    """
    if kind not in ("catalog", "events"):
        raise ValueError(f"kind must be 'catalog' or 'events', got {kind!r}")
    path = Path(path)
    rows = read_rows(path, fmt=fmt, column_map=column_map, chunk_rows=batch_size)
    if kind == "catalog":
        return import_catalog(
            rows, stores, source=path.name, config=config, batch_size=batch_size, progress=progress
        )
    return import_events(
        rows,
        stores,
        source=path.name,
        config=config,
        batch_size=batch_size,
        progress=progress,
        user_ids=user_ids,
    )


def import_records(
    products: Iterable[Product],
    events: Iterable[Event],
    stores: Stores,
    *,
    source: str,
    config: CleaningConfig = CleaningConfig(),
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: bool = True,
    user_ids: UserIdMap | None = None,
) -> tuple[ImportReport, ImportReport]:
    """Import already-typed records (dataset adapters, demo generator): catalog first, then events.

    Validation is skipped (the records are typed already) but every cleaning rule —
    unknown items, timestamps, double clicks, duplicates, bot flagging — applies as for files.
    """
    catalog = _run(
        _record_candidates(products),
        _CatalogBatcher(stores, config),
        stores,
        kind="catalog",
        source=source,
        batch_size=batch_size,
        progress=progress,
    )
    events_report = _run(
        _record_candidates(events),
        _EventBatcher(stores, config, user_ids=user_ids),
        stores,
        kind="events",
        source=source,
        batch_size=batch_size,
        progress=progress,
    )
    return catalog, events_report


def _reimport_candidate(row: Any, column_map: Mapping[str, str] | None) -> _Candidate:
    raw = dict(row.raw)
    if UNPARSED_KEY in raw and len(raw) == 1:
        # A line that was not valid JSON stays unparseable unless it parses now.
        try:
            value = json.loads(str(raw[UNPARSED_KEY]))
        except json.JSONDecodeError:
            value = None
        if not isinstance(value, dict):
            return _Candidate(row.row_number, raw, row.reason, quarantine_id=row.id)
        raw = value
    return _Candidate(row.row_number, rename_columns(raw, column_map), quarantine_id=row.id)


def reimport_quarantine(
    stores: Stores,
    ids: Iterable[int] | None = None,
    column_map: Mapping[str, str] | None = None,
    *,
    config: CleaningConfig = CleaningConfig(),
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: bool = False,
) -> list[ImportReport]:
    """Re-validate quarantined rows (all, or `ids`); rows that now pass leave the quarantine.

    Catalog rows go first so that products fixed there make quarantined `unknown_item`
    events pass in the same call. A row that fails again stays; if it fails for a
    different reason now, its reason is updated (stored again, old entry removed).
    Returns one report per kind that had rows (source `"quarantine"`).
    """
    wanted = set(ids) if ids is not None else None
    rows = [r for r in stores.quarantine.list() if wanted is None or r.id in wanted]
    reports: list[ImportReport] = []
    for q_kind, kind in (("catalog", "catalog"), ("event", "events")):
        group = [r for r in rows if r.kind == q_kind]
        if not group:
            continue
        by_id = {r.id: r for r in group}
        passed_ids: list[int] = []

        def on_passed(cands: list[_Candidate], passed_ids: list[int] = passed_ids) -> None:
            passed_ids.extend(c.quarantine_id for c in cands if c.quarantine_id is not None)

        def on_rejected(
            rejected: list[tuple[_Candidate, Rejection]],
            by_id: dict[int, Any] = by_id,
            q_kind: Literal["catalog", "event"] = q_kind,  # type: ignore[assignment]
        ) -> int:
            unchanged = 0
            for cand, rej in rejected:
                old = by_id[cand.quarantine_id]  # type: ignore[index]
                if old.reason == rej.reason:
                    unchanged += 1
                    continue
                stores.quarantine.add([(old.row_number, rej.reason, old.raw)], source=old.source, kind=q_kind)
                stores.quarantine.remove([old.id])
            return unchanged

        batcher: _CatalogBatcher | _EventBatcher
        if kind == "catalog":
            batcher = _CatalogBatcher(stores, config)
        else:
            batcher = _EventBatcher(stores, config, check_log_clicks=True)
        report = _run(
            (_reimport_candidate(r, column_map) for r in group),
            batcher,
            stores,
            kind=kind,  # type: ignore[arg-type]
            source="quarantine",
            batch_size=batch_size,
            progress=progress,
            on_rejected=on_rejected,
            on_passed=on_passed,
        )
        stores.quarantine.remove(passed_ids)
        reports.append(report)
    return reports


# ---------------------------------------------------------------------------------------
# live intake: the same rules, one answer per row (the HTTP API's POST /v1/events)


@dataclass(frozen=True)
class RowOutcome:
    """The fate of one submitted row: `accepted`, `duplicate` (already stored) or `rejected`."""

    index: int  # position in the submitted batch, 0-based
    status: Literal["accepted", "duplicate", "rejected"]
    event_id: str | None
    reason: str | None = None  # names the field for rejections
    event: Event | None = None  # the stored event, for accepted rows


class EventIntake:
    """Validates, cleans and stores batches of live events with per-row answers.

    Unlike a file import it lives as long as the server: the double-click and bot
    detectors keep their windows across requests, and rejected rows go to the quarantine
    under `source` so nothing a client sent is lost.
    """

    def __init__(
        self,
        stores: Stores,
        config: CleaningConfig = CleaningConfig(),
        *,
        source: str = "api",
        user_ids: UserIdMap | None = None,
    ) -> None:
        self.stores = stores
        self.config = config
        self.source = source
        self._batcher = _EventBatcher(stores, config, user_ids=user_ids)

    def submit(self, rows: Sequence[Mapping[str, Any]]) -> list[RowOutcome]:
        batcher = self._batcher
        # Live traffic is judged against the wall clock of each request, and the catalog
        # may have grown since the last request, so neither may be cached across batches.
        batcher.now = self.config.now or datetime.now(UTC)
        batcher.missing_items.clear()
        candidates = [_Candidate(i, dict(row)) for i, row in enumerate(rows)]
        outcome = batcher.process(candidates)
        rejected = {id(c): r for c, r in outcome.rejected}
        if outcome.rejected:
            self.stores.quarantine.add(
                [(c.row_number, r.reason, c.raw_row()) for c, r in outcome.rejected],
                source=self.source,
                kind="event",
            )
        answers: list[RowOutcome] = []
        for i, cand in enumerate(candidates):
            rej = rejected.get(id(cand))
            if rej is not None:
                answers.append(RowOutcome(i, "rejected", (cand.raw or {}).get("event_id"), rej.reason))
                continue
            event = outcome.passed[id(cand)]
            if event.event_id in outcome.inserted:
                outcome.inserted.discard(event.event_id)  # a second copy in the batch is a duplicate
                answers.append(RowOutcome(i, "accepted", event.event_id, event=event))
            else:
                answers.append(RowOutcome(i, "duplicate", event.event_id))
        return answers
