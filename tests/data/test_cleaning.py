"""One test (at least) per cleaning rule, on in-memory stores with a fixed clock."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from shoploop.data.cleaning import (
    BotDetector,
    CleaningConfig,
    ClickDeduper,
    reason_code,
    rejection_from_validation,
)
from shoploop.data.ingest import import_catalog, import_events
from shoploop.domain import ClickEvent, Product, ViewEvent, parse_event
from shoploop.store.home import Stores, memory_stores


@pytest.fixture
def stores(tmp_path: Path, t0: datetime) -> Stores:
    s = memory_stores(tmp_path / "artifacts")
    products = [{"item_id": f"i{k}", "title": f"Item {k}", "price": 10 + k} for k in range(100)]
    import_catalog(products, s, source="catalog", config=CleaningConfig(now=t0), progress=False)
    return s


def ev(t0: datetime, seconds: float = 0, **fields: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "type": "click",
        "user_id": "u1",
        "item_id": "i1",
        "timestamp": (t0 + timedelta(seconds=seconds)).isoformat(),
    }
    row.update(fields)
    return row


def run(stores: Stores, rows: list[dict[str, Any]], t0: datetime, **cfg: Any):
    config = CleaningConfig(now=t0 + timedelta(hours=1), **cfg)
    return import_events(rows, stores, source="test", config=config, progress=False)


def reasons(stores: Stores) -> list[str]:
    return [q.reason for q in stores.quarantine.list()]


# ------------------------------------------------------------------ malformed fields


def test_malformed_field_is_quarantined_with_the_field_name(stores: Stores, t0: datetime) -> None:
    report = run(stores, [ev(t0, type="rating", rating=9), ev(t0, user_id="")], t0)
    assert report.accepted == 0
    assert report.quarantined_by_reason == {"invalid_field:rating": 1, "invalid_field:user_id": 1}
    assert reasons(stores) == [
        "rating: Input should be less than or equal to 5",
        "user_id: Field required",  # an empty cell is a missing value
    ]
    (first, _) = stores.quarantine.list()
    assert first.row_number == 1 and first.raw["rating"] == 9  # raw row kept verbatim


def test_reason_strips_the_event_tag_and_names_nested_fields() -> None:
    def reason(data: dict[str, Any]) -> tuple[str, str]:
        with pytest.raises(ValidationError) as info:
            parse_event(data)
        rej = rejection_from_validation(info.value, data)
        return rej.code, rej.reason

    base = {"user_id": "u", "timestamp": "2026-01-01T00:00:00Z"}
    assert reason(base) == ("invalid_field:type", "type: missing event type")
    code, text = reason({**base, "type": "teleport"})
    assert code == "invalid_field:type" and text.startswith("type: unknown event type 'teleport'")
    shown = [{"item_id": "a", "position": 1}, {"item_id": "b", "position": 1}]
    code, text = reason({**base, "type": "impression", "request_id": "r", "surface": "home", "items": shown})
    assert (code, text) == ("invalid_field:items", "items: positions must be unique within one impression")
    code, text = reason({**base, "type": "purchase", "items": [{"item_id": "a", "price": -1}]})
    # only the element's error, not pydantic's follow-up "tuple too short" on the list itself
    assert (code, text) == ("non_positive_price", "items.0.price: Input should be greater than 0")
    assert reason_code(text) == code


def test_more_than_three_errors_are_summarised() -> None:
    with pytest.raises(ValidationError) as info:
        Product.model_validate({"item_id": "", "title": "", "price": 0, "currency": "x", "foo": 1})
    rej = rejection_from_validation(info.value)
    assert rej.code == "invalid_field:item_id"
    assert rej.reason.endswith("(+2 more)") and rej.reason.count(";") == 3


# ------------------------------------------------------------------ non-positive prices


def test_non_positive_prices_in_products_and_purchase_lines(stores: Stores, t0: datetime) -> None:
    cat = import_catalog(
        [{"item_id": "x", "title": "X", "price": 0}, {"item_id": "y", "title": "Y", "price": "-2.5"}],
        stores,
        source="bad-prices",
        progress=False,
    )
    assert cat.quarantined_by_reason == {"non_positive_price": 2}
    assert "price: Input should be greater than 0" in reasons(stores)
    line = [{"item_id": "i1", "price": 0, "quantity": 1}]
    rep = run(
        stores, [ev(t0, type="purchase", items=line, item_id=None), ev(t0, type="add_to_cart", price=-1)], t0
    )
    assert rep.quarantined_by_reason == {"non_positive_price": 2}


# ------------------------------------------------------------------ unknown items


def test_unknown_items_are_quarantined_by_default(stores: Stores, t0: datetime) -> None:
    shown = [{"item_id": "i1", "position": 1}, {"item_id": "ghost", "position": 2}]
    rows = [
        ev(t0, item_id="nope"),
        ev(t0, 10, type="impression", item_id=None, request_id="r1", surface="home", items=shown),
        ev(t0, 20, item_id="i2"),
    ]
    report = run(stores, rows, t0)
    assert report.accepted == 1
    assert report.quarantined_by_reason == {"unknown_item": 2}
    assert reasons(stores) == [
        "unknown_item: item ids not in the catalog: nope",
        "unknown_item: item ids not in the catalog: ghost",
    ]


def test_unknown_items_can_be_accepted(stores: Stores, t0: datetime) -> None:
    report = run(stores, [ev(t0, item_id="nope")], t0, unknown_items="accept")
    assert report.accepted == 1 and report.quarantined == 0


# ------------------------------------------------------------------ duplicates


def test_same_event_id_in_batch_and_in_log_are_duplicates_not_rejections(
    stores: Stores, t0: datetime
) -> None:
    rows = [ev(t0, event_id="e1"), ev(t0, event_id="e1"), ev(t0, 100, event_id="e2", type="view")]
    first = run(stores, rows, t0)
    assert (first.accepted, first.duplicates, first.quarantined) == (2, 1, 0)
    again = run(stores, rows, t0)
    assert (again.accepted, again.duplicates, again.quarantined) == (0, 3, 0)
    assert len(stores.events) == 2 and len(stores.quarantine) == 0


def test_double_click_within_window_is_quarantined(stores: Stores, t0: datetime) -> None:
    rows = [
        ev(t0, 0),
        ev(t0, 1.5),  # double click
        ev(t0, 1.5, item_id="i2"),  # other item: fine
        ev(t0, 1.5, user_id="u2"),  # other user: fine
        ev(t0, 5),  # beyond 2 s of the kept click: fine
        ev(t0, 6, type="view"),  # not a click
    ]
    report = run(stores, rows, t0)
    assert report.accepted == 5
    assert report.quarantined_by_reason == {"duplicate_click": 1}
    assert stores.quarantine.list()[0].row_number == 2


def test_double_click_detected_across_batches_and_window_configurable(stores: Stores, t0: datetime) -> None:
    rows = [ev(t0, 0), ev(t0, 1), ev(t0, 3)]
    config = CleaningConfig(now=t0 + timedelta(hours=1))
    report = import_events(rows, stores, source="b", config=config, batch_size=1, progress=False)
    assert report.quarantined_by_reason == {"duplicate_click": 1}
    wide = CleaningConfig(now=t0 + timedelta(hours=1), duplicate_click_window=10)
    rows = [ev(t0, 100, user_id="w"), ev(t0, 105, user_id="w")]
    assert import_events(rows, stores, source="w", config=wide, progress=False).quarantined == 1


def test_click_deduper_ignores_exact_resends(t0: datetime) -> None:
    dedupe = ClickDeduper(2.0)
    click = ClickEvent(event_id="c1", user_id="u", item_id="a", timestamp=t0)
    assert dedupe.check(click) is None
    assert dedupe.check(click) is None  # same event_id: the event-id dedupe handles it
    again = click.model_copy(update={"event_id": "c2", "timestamp": t0 - timedelta(seconds=1)})
    rej = dedupe.check(again)
    assert rej is not None and rej.code == "duplicate_click"


# ------------------------------------------------------------------ timestamps


def test_future_and_too_old_timestamps(stores: Stores, t0: datetime) -> None:
    now = t0 + timedelta(hours=1)
    rows = [
        ev(t0, 3600 + 299),  # 299 s ahead of "now": inside the 5 min tolerance
        ev(t0, 3600 + 301, item_id="i2"),  # 301 s ahead: future
        ev(t0, item_id="i3", timestamp=(now - timedelta(days=3649)).isoformat()),
        ev(t0, item_id="i4", timestamp=(now - timedelta(days=3651)).isoformat()),
        ev(t0, item_id="i5", timestamp="2026-01-01T00:00:00"),  # naive: malformed
    ]
    report = run(stores, rows, t0)
    assert report.accepted == 2
    assert report.quarantined_by_reason == {
        "future_timestamp": 1,
        "invalid_field:timestamp": 1,
        "too_old": 1,
    }
    assert any(r.startswith("future_timestamp: timestamp ") for r in reasons(stores))
    assert "timestamp: Input should have timezone info" in reasons(stores)


def test_tolerances_are_configurable(stores: Stores, t0: datetime) -> None:
    rows = [ev(t0, 3600 + 30), ev(t0, -86400 * 2, item_id="i2")]
    report = run(stores, rows, t0, future_tolerance=timedelta(seconds=10), max_age=timedelta(days=1))
    assert report.quarantined_by_reason == {"future_timestamp": 1, "too_old": 1}


# ------------------------------------------------------------------ bots


def test_too_many_events_per_minute_flags_the_user_across_batches(stores: Stores, t0: datetime) -> None:
    # 121 views in 60 s by "bot" (one every 0.5 s), spread over many small batches;
    # 120 views in 60 s by "human" stays under the threshold.
    bot = [ev(t0, k * 0.5, type="view", user_id="bot", item_id=f"i{k % 5}") for k in range(121)]
    human = [ev(t0, k * 0.5, type="view", user_id="human", item_id=f"i{k % 5}") for k in range(120)]
    config = CleaningConfig(now=t0 + timedelta(hours=1))
    report = import_events(bot + human, stores, source="bots", config=config, batch_size=7, progress=False)
    assert report.flagged_users == ["bot"]
    assert report.accepted == 241  # flagged users' events are kept in the log
    assert set(stores.events.flagged_users()) == {"bot"}
    assert "events in 60 s" in stores.events.flagged_users()["bot"]
    kept = {e.user_id for e in stores.events.scan(exclude_flagged=True)}
    assert kept == {"human"}


def test_too_many_distinct_items_per_minute_flags_the_user(stores: Stores, t0: datetime) -> None:
    crawler = [ev(t0, k, type="view", user_id="crawler", item_id=f"i{k}") for k in range(61)]
    browser = [ev(t0, k, type="view", user_id="browser", item_id=f"i{k}") for k in range(60)]
    slow = [ev(t0, 2 * k, type="view", user_id="slow", item_id=f"i{k}") for k in range(90)]
    report = run(stores, crawler + browser + slow, t0)
    assert report.flagged_users == ["crawler"]
    assert "distinct items" in stores.events.flagged_users()["crawler"]


def test_bot_detector_handles_out_of_order_events(t0: datetime) -> None:
    detector = BotDetector(CleaningConfig(bot_max_events_per_minute=3))
    times = [30, 0, 10, 20]  # 4 events within 30 s, arriving shuffled
    flags = [
        detector.observe(ViewEvent(user_id="u", item_id="a", timestamp=t0 + timedelta(seconds=s)))
        for s in times
    ]
    assert flags[:3] == [None, None, None] and flags[3] is not None
    sparse = BotDetector(CleaningConfig(bot_max_events_per_minute=3))
    flags = [
        sparse.observe(ViewEvent(user_id="u", item_id="a", timestamp=t0 + timedelta(seconds=s)))
        for s in (0, 40, 80, 120, 160)
    ]
    assert flags == [None] * 5


def test_config_validation() -> None:
    with pytest.raises(ValueError, match="unknown_items"):
        CleaningConfig(unknown_items="maybe")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="timezone-aware"):
        CleaningConfig(now=datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="bot thresholds"):
        CleaningConfig(bot_max_events_per_minute=0)


def test_unknown_columns_reject_or_ignore(stores: Stores, t0: datetime) -> None:
    rows = [ev(t0, referrer="google")]
    rejected = run(stores, rows, t0)
    assert rejected.quarantined_by_reason == {"invalid_field:referrer": 1}
    ignored = run(stores, rows, t0, unknown_columns="ignore")
    assert ignored.accepted == 1


@pytest.mark.parametrize(
    ("reason", "code"),
    [
        ("line 3: invalid JSON: Expecting value at column 1", "invalid_json"),
        ("row 2: expected 2 columns, got 3", "invalid_row"),
        ("unknown_item: item ids not in the catalog: a", "unknown_item"),
        ("duplicate_click: user u clicked item a again within 2 s (kept event e)", "duplicate_click"),
        ("future_timestamp: timestamp x", "future_timestamp"),
        ("too_old: timestamp x", "too_old"),
        ("price: Input should be greater than 0", "non_positive_price"),
        ("items.0.price: Input should be greater than 0", "non_positive_price"),
        ("price: Input should be a valid number", "invalid_field:price"),
        ("title: Field required; price: Input should be greater than 0", "invalid_field:title"),
    ],
)
def test_reason_code_parses_stored_reasons(reason: str, code: str) -> None:
    assert reason_code(reason) == code
