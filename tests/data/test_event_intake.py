"""Live intake: one answer per submitted row, same cleaning rules as file imports."""

from datetime import UTC, datetime, timedelta

import pytest

from shoploop.data.cleaning import CleaningConfig
from shoploop.data.ingest import EventIntake
from shoploop.domain import Product
from shoploop.store.home import memory_stores


@pytest.fixture
def intake(tmp_path):
    stores = memory_stores(tmp_path)
    stores.catalog.upsert([Product(item_id="a", title="A"), Product(item_id="b", title="B")])
    now = datetime(2026, 3, 1, 12, tzinfo=UTC)
    return EventIntake(stores, CleaningConfig(now=now)), stores, now


def view(event_id, now, item="a", **extra):
    return {
        "type": "view",
        "event_id": event_id,
        "user_id": "u",
        "item_id": item,
        "timestamp": now.isoformat(),
        **extra,
    }


def test_each_row_gets_its_own_fate(intake):
    ix, stores, now = intake
    rows = [
        view("e1", now),
        view("e1", now),  # same id twice in one batch -> second is a duplicate
        view("e2", now, item="nope"),  # unknown item
        {
            "type": "rating",
            "event_id": "e3",
            "user_id": "u",
            "item_id": "a",
            "rating": 9,
            "timestamp": now.isoformat(),
        },
        view("e4", now + timedelta(days=1)),  # future
    ]
    out = ix.submit(rows)
    assert [o.status for o in out] == ["accepted", "duplicate", "rejected", "rejected", "rejected"]
    assert out[0].event is not None
    assert "unknown_item" in out[2].reason
    assert "rating" in out[3].reason
    assert "future" in out[4].reason
    assert len(stores.events) == 1
    # nothing is lost: every rejected row is in the quarantine with its reason
    assert len(stores.quarantine.list(kind="event", source="api")) == 3


def test_resending_a_batch_is_idempotent(intake):
    ix, stores, now = intake
    first = ix.submit([view("e1", now), view("e2", now, item="b")])
    again = ix.submit([view("e1", now), view("e2", now, item="b")])
    assert [o.status for o in first] == ["accepted", "accepted"]
    assert [o.status for o in again] == ["duplicate", "duplicate"]
    assert len(stores.events) == 2


def test_double_click_window_spans_requests(intake):
    ix, _, now = intake
    click = {"type": "click", "user_id": "u", "item_id": "a", "timestamp": now.isoformat()}
    assert ix.submit([{**click, "event_id": "c1"}])[0].status == "accepted"
    later = (now + timedelta(seconds=1)).isoformat()
    assert ix.submit([{**click, "event_id": "c2", "timestamp": later}])[0].status == "rejected"


def test_items_added_to_the_catalog_later_are_accepted(intake):
    ix, stores, now = intake
    assert ix.submit([view("e1", now, item="c")])[0].status == "rejected"
    stores.catalog.upsert([Product(item_id="c", title="C")])
    assert ix.submit([view("e2", now, item="c")])[0].status == "accepted"
