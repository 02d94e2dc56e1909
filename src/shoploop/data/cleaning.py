"""Validation and cleaning rules applied to every imported row.

Each rejection carries a short *code* (what the import report counts) and a *reason*
text naming the field(s) and why (what the quarantine stores). Codes:

| code                   | rule                                                              |
|------------------------|-------------------------------------------------------------------|
| `invalid_json`         | a JSONL line that is not valid JSON                               |
| `invalid_row`          | a line that is not a record (non-object JSON, ragged CSV row)     |
| `invalid_field:<name>` | the domain model rejected field `<name>` (first failing field)     |
| `non_positive_price`   | a product, cart or purchase-line price <= 0                       |
| `unknown_item`         | an event names item ids the catalog does not have                 |
| `duplicate_click`      | same user clicked the same item again within the click window     |
| `future_timestamp`     | event timestamp later than now + `future_tolerance`               |
| `too_old`              | event timestamp earlier than now - `max_age`                      |

Exact re-sends (same `event_id`) are *duplicates*, not rejections: importing the same
file twice is harmless. Bot-like users are not rejected either: they are flagged in the
event log (their events stay; training reads with `exclude_flagged=True`).
"""

from __future__ import annotations

import bisect
import re
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import ValidationError

from shoploop.domain import (
    EVENT_TYPES,
    ClickEvent,
    ImpressionEvent,
    PurchaseEvent,
    SearchEvent,
    event_item_ids,
)


@dataclass(frozen=True)
class CleaningConfig:
    """Thresholds of the cleaning rules; the defaults suit a typical small shop.

    Attributes:
        unknown_items: "reject" quarantines events naming items missing from the catalog
            (import the catalog first); "accept" keeps them (e.g. the catalog is partial).
        unknown_columns: "reject" treats columns the models do not know as an error of
            that row (catches a forgotten `--map`); "ignore" drops them silently.
        duplicate_click_window: seconds within which a repeated click by the same user on
            the same item counts as a double click (2 s: a human double-click or a retry).
        future_tolerance: how far past "now" a timestamp may lie (clock skew between the
            shop server and us); 5 minutes.
        max_age: oldest timestamp accepted; 3650 days (ten years) catches epoch-zero and
            unit mix-ups (ms vs s) without rejecting old but real history.
        bot_max_events_per_minute: more events than this in any 60 s window flags the user.
        bot_max_distinct_items_per_minute: more distinct items than this in any 60 s window
            flags the user (impressions are not counted: a page shows many items).
        now: the reference time for the timestamp rules; None = wall clock at import start
            (fixed in tests so they do not depend on when they run).
    """

    unknown_items: Literal["reject", "accept"] = "reject"
    unknown_columns: Literal["reject", "ignore"] = "reject"
    duplicate_click_window: float = 2.0
    future_tolerance: timedelta = timedelta(minutes=5)
    max_age: timedelta = timedelta(days=3650)
    bot_max_events_per_minute: int = 120
    bot_max_distinct_items_per_minute: int = 60
    now: datetime | None = None

    def __post_init__(self) -> None:
        if self.unknown_items not in ("reject", "accept"):
            raise ValueError(f"unknown_items must be 'reject' or 'accept', got {self.unknown_items!r}")
        if self.unknown_columns not in ("reject", "ignore"):
            raise ValueError(f"unknown_columns must be 'reject' or 'ignore', got {self.unknown_columns!r}")
        if self.duplicate_click_window < 0:
            raise ValueError("duplicate_click_window must be >= 0")
        if self.bot_max_events_per_minute < 1 or self.bot_max_distinct_items_per_minute < 1:
            raise ValueError("bot thresholds must be >= 1")
        if self.now is not None and self.now.tzinfo is None:
            raise ValueError("now must be timezone-aware")


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a row was refused: `code` for counting, `reason` (names the field) for humans."""

    code: str
    reason: str


# ---------------------------------------------------------------------------------------
# pydantic errors -> compact reasons

_MAX_ERRORS_IN_REASON = 3
_FIELD_PREFIX = re.compile(r"^([A-Za-z_][\w.]*): ")


def _loc_text(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc)


def rejection_from_validation(exc: ValidationError, row: Mapping[str, Any] | None = None) -> Rejection:
    """Compact, field-naming rejection from a pydantic error, e.g. `price: Input should be greater than 0`.

    The discriminated event union puts the event type in front of every location
    (`("rating", "rating")`); that tag is stripped so the reason names only the field.
    """
    tag = row.get("type") if isinstance(row, Mapping) else None
    errors = exc.errors(include_url=False)
    items: list[tuple[tuple[Any, ...], str, str, Any]] = []
    for err in errors:
        loc = tuple(err["loc"])
        if loc and isinstance(tag, str) and tag in EVENT_TYPES and loc[0] == tag:
            loc = loc[1:]
        msg = str(err["msg"])
        if err["type"] in ("union_tag_not_found", "union_tag_invalid"):
            loc = ("type",)
            msg = "missing event type" if err["type"] == "union_tag_not_found" else _bad_tag_msg(tag)
        elif err["type"] == "value_error":
            msg = msg.removeprefix("Value error, ")
            match = _FIELD_PREFIX.match(msg)
            if not loc and match:  # model-level validators name the field in their message
                loc = tuple(match.group(1).split("."))
                msg = msg[match.end() :]
        items.append((loc, msg, str(err["type"]), err.get("input")))
    # A failing list element also makes pydantic report the list as too short; the
    # element's own error is the useful one, so drop errors on a prefix of another's loc.
    locs = [loc for loc, *_ in items]
    items = [it for it in items if not any(len(o) > len(it[0]) and o[: len(it[0])] == it[0] for o in locs)]
    if not items:  # pragma: no cover - pydantic always reports something
        return Rejection("invalid_field:row", "row: invalid")
    parts = [f"{_loc_text(loc) or 'row'}: {msg}" for loc, msg, _, _ in items[:_MAX_ERRORS_IN_REASON]]
    if len(items) > _MAX_ERRORS_IN_REASON:
        parts.append(f"(+{len(items) - _MAX_ERRORS_IN_REASON} more)")
    loc, _, err_type, _value = items[0]
    if loc and loc[-1] == "price" and err_type == "greater_than":
        code = "non_positive_price"
    else:
        code = f"invalid_field:{loc[0] if loc else 'row'}"
    return Rejection(code, "; ".join(parts))


def _bad_tag_msg(tag: Any) -> str:
    return f"unknown event type {tag!r}; expected one of {', '.join(EVENT_TYPES)}"


def reason_code(reason: str) -> str:
    """The report code of a stored quarantine reason text (inverse of the formats above)."""
    for code in ("unknown_item", "duplicate_click", "future_timestamp", "too_old"):
        if reason.startswith(code + ":"):
            return code
    if re.match(r"^line \d+: invalid JSON", reason):
        return "invalid_json"
    if re.match(r"^(line|row) \d+: ", reason):
        return "invalid_row"
    match = _FIELD_PREFIX.match(reason)
    if match:
        loc = match.group(1)
        if loc.split(".")[-1] == "price" and "greater than 0" in reason.split(";")[0]:
            return "non_positive_price"
        return f"invalid_field:{loc.split('.')[0]}"
    return "invalid_field:row"


# ---------------------------------------------------------------------------------------
# row-level rules on validated events


def check_timestamp(ts: datetime, now: datetime, config: CleaningConfig) -> Rejection | None:
    if ts > now + config.future_tolerance:
        ahead = (ts - now).total_seconds()
        limit = config.future_tolerance.total_seconds()
        return Rejection(
            "future_timestamp",
            f"future_timestamp: timestamp {ts.isoformat()} is {ahead:.0f} s in the future "
            f"(tolerance {limit:.0f} s)",
        )
    if ts < now - config.max_age:
        return Rejection(
            "too_old",
            f"too_old: timestamp {ts.isoformat()} is older than {config.max_age.days} days",
        )
    return None


def unknown_item_rejection(missing: Iterable[str]) -> Rejection:
    ids = sorted(set(missing))
    shown = ", ".join(ids[:5]) + (f" (+{len(ids) - 5} more)" if len(ids) > 5 else "")
    return Rejection("unknown_item", f"unknown_item: item ids not in the catalog: {shown}")


class ClickDeduper:
    """Finds repeated clicks by the same user on the same item within a short window.

    State spans the whole import (every batch), keyed by (user, item) -> last kept click.
    A click carrying the *same* event_id as the kept one is an exact re-send — left to
    the event-id de-duplication — and not a double click. To bound memory on huge
    imports, pairs whose last click is far behind the newest timestamp are pruned.
    """

    _PRUNE_AT = 1_000_000
    _PRUNE_HORIZON = timedelta(hours=1)

    def __init__(self, window_s: float) -> None:
        self.window = timedelta(seconds=window_s)
        self._last: dict[tuple[str, str], tuple[datetime, str]] = {}
        self._newest: datetime | None = None

    def check(self, event: ClickEvent) -> Rejection | None:
        """Rejection if `event` double-clicks; otherwise remember it as the last click."""
        key = (event.user_id, event.item_id)
        prev = self._last.get(key)
        if prev is not None and prev[1] != event.event_id and abs(event.timestamp - prev[0]) <= self.window:
            return duplicate_click_rejection(event, prev[1], self.window)
        self.remember(event)
        return None

    def remember(self, event: ClickEvent) -> None:
        self._last[(event.user_id, event.item_id)] = (event.timestamp, event.event_id)
        if self._newest is None or event.timestamp > self._newest:
            self._newest = event.timestamp
        if len(self._last) > self._PRUNE_AT and self._newest is not None:
            horizon = self._newest - self._PRUNE_HORIZON
            self._last = {k: v for k, v in self._last.items() if v[0] >= horizon}


def duplicate_click_rejection(event: ClickEvent, kept_id: str, window: timedelta) -> Rejection:
    return Rejection(
        "duplicate_click",
        f"duplicate_click: user {event.user_id} clicked item {event.item_id} again within "
        f"{window.total_seconds():g} s (kept event {kept_id})",
    )


@dataclass
class _UserWindow:
    times: list[float] = field(default_factory=list)  # sorted epoch seconds of counted events
    items: deque[tuple[float, str]] = field(default_factory=deque)  # (ts, item) in ts order


def fast_item_ids(event: Any) -> list[str]:
    # event_item_ids() goes through getattr on pydantic models, which is slow for absent
    # fields; the importer calls this per event on hot paths, so branch on the class.
    if isinstance(event, ImpressionEvent | PurchaseEvent):
        return [it.item_id for it in event.items]
    if isinstance(event, SearchEvent):
        return []
    item = event.__dict__.get("item_id")
    return [item] if item else event_item_ids(event)


class BotDetector:
    """Per-user sliding 60 s windows across the whole import (not one batch).

    A user is flagged once they have more than `bot_max_events_per_minute` events, or
    more than `bot_max_distinct_items_per_minute` distinct items, within 60 s (both ends
    inclusive). Timestamps are inserted in order (bisect), so moderately shuffled input
    is handled; state older than 60 s behind the user's newest event is pruned to keep
    memory bounded, so an event arriving more than 60 s out of order counts only toward
    windows still in memory. Impressions count as events but not toward distinct items
    (one page shows many items).
    """

    WINDOW_S = 60.0

    def __init__(self, config: CleaningConfig) -> None:
        self.max_events = config.bot_max_events_per_minute
        self.max_items = config.bot_max_distinct_items_per_minute
        self._users: dict[str, _UserWindow] = {}
        self.flagged: dict[str, str] = {}  # user -> reason, in the order they were flagged

    def observe(self, event: Any, item_ids: list[str] | None = None) -> str | None:
        """Count `event`; return a reason when this event makes its user bot-like (once per user).

        `item_ids` may be passed when the caller already knows them (saves work).
        """
        user = event.user_id
        if user in self.flagged:
            return None
        state = self._users.get(user)
        if state is None:
            state = self._users[user] = _UserWindow()
        ts = event.timestamp.timestamp()
        times = state.times
        if not times or ts >= times[-1]:
            times.append(ts)
        else:
            bisect.insort(times, ts)
        # keep only what a window ending at the newest event can hold
        cut = bisect.bisect_left(times, times[-1] - self.WINDOW_S)
        if cut:
            del times[:cut]
        if len(times) > self.max_events:
            return self._flag(user, f"bot: more than {self.max_events} events in 60 s")
        if isinstance(event, ImpressionEvent):
            return None
        items = state.items
        for item in fast_item_ids(event) if item_ids is None else item_ids:
            items.append((ts, item))
        if len(items) > 1 and items[-2][0] > ts:  # out of order: keep the deque sorted
            items = state.items = deque(sorted(items))
        horizon = items[-1][0] - self.WINDOW_S if items else 0.0
        while items and items[0][0] < horizon:
            items.popleft()
        if len(items) > self.max_items and len({item for _, item in items}) > self.max_items:
            return self._flag(user, f"bot: more than {self.max_items} distinct items in 60 s")
        return None

    def _flag(self, user: str, reason: str) -> str:
        self.flagged[user] = reason
        self._users.pop(user, None)
        return reason
