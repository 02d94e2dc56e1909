from datetime import datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from shoploop.domain import (
    ClickEvent,
    ImpressionEvent,
    PurchaseEvent,
    event_item_id,
    event_item_ids,
    event_request_id,
    event_to_dict,
    parse_event,
)


def test_click_round_trips_through_json_dict(t0):
    raw = {
        "type": "click",
        "user_id": "u1",
        "item_id": "sku-1",
        "request_id": "r1",
        "position": 3,
        "timestamp": t0.isoformat(),
        "event_id": "e1",
    }
    event = parse_event(raw)
    assert isinstance(event, ClickEvent)
    assert event_item_id(event) == "sku-1"
    assert event_request_id(event) == "r1"
    assert parse_event(event_to_dict(event)) == event


def test_event_id_is_generated_when_absent(t0):
    a = parse_event({"type": "view", "user_id": "u", "item_id": "i", "timestamp": t0.isoformat()})
    b = parse_event({"type": "view", "user_id": "u", "item_id": "i", "timestamp": t0.isoformat()})
    assert a.event_id and b.event_id and a.event_id != b.event_id


def test_naive_timestamp_is_rejected_naming_the_field():
    with pytest.raises(ValidationError) as err:
        parse_event({"type": "view", "user_id": "u", "item_id": "i", "timestamp": "2026-01-01T10:00:00"})
    assert "timestamp" in str(err.value)


def test_unknown_type_is_rejected():
    with pytest.raises(ValidationError) as err:
        parse_event({"type": "teleport", "user_id": "u", "timestamp": "2026-01-01T10:00:00Z"})
    assert "type" in str(err.value)


@pytest.mark.parametrize("rating", [0, 6, -1])
def test_rating_outside_one_to_five_is_rejected(rating, t0):
    with pytest.raises(ValidationError) as err:
        parse_event({"type": "rating", "user_id": "u", "item_id": "i", "rating": rating, "timestamp": t0})
    assert "rating" in str(err.value)


def test_impression_positions_must_be_unique(t0):
    with pytest.raises(ValidationError, match="positions must be unique"):
        ImpressionEvent(
            request_id="r",
            surface="search",
            user_id="u",
            timestamp=t0,
            items=[{"item_id": "a", "position": 1}, {"item_id": "b", "position": 1}],
        )


def test_impression_propensity_must_be_a_probability(t0):
    with pytest.raises(ValidationError) as err:
        ImpressionEvent(
            request_id="r",
            surface="home",
            user_id="u",
            timestamp=t0,
            items=[{"item_id": "a", "position": 1, "propensity": 1.5}],
        )
    assert "propensity" in str(err.value)


def test_purchase_revenue_and_item_ids(t0):
    p = PurchaseEvent(
        user_id="u",
        timestamp=t0,
        items=[{"item_id": "a", "quantity": 2, "price": 3.5}, {"item_id": "b", "price": 1.0}],
    )
    assert p.revenue == pytest.approx(8.0)
    assert event_item_ids(p) == ["a", "b"]


@given(
    st.dictionaries(
        st.sampled_from(["type", "user_id", "item_id", "timestamp", "rating", "quantity"]),
        st.one_of(st.text(max_size=5), st.integers(-3, 8), st.none()),
    )
)
def test_parser_never_crashes_on_arbitrary_dicts(raw):
    # Bad input must come back as a ValidationError naming fields, never another exception.
    try:
        event = parse_event(raw)
    except ValidationError as err:
        assert err.errors()
    else:
        assert isinstance(event.timestamp, datetime) and event.timestamp.tzinfo is not None


def test_generated_event_ids_sort_by_creation_time():
    import time

    from shoploop.domain import new_event_id

    first = new_event_id()
    time.sleep(0.002)
    second = new_event_id()
    assert len(first) == len(second) == 32
    assert first < second
