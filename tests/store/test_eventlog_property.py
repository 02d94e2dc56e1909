"""Property: any sequence of batches (with repeated ids) leaves exactly the unique ids."""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from store_factories import click, view

from shoploop.store.memory import MemoryEventLog
from shoploop.store.sqlite import SqliteEventLog

T0 = datetime(2026, 1, 1, tzinfo=UTC)

# (event id, user, minute offset, is_click): few ids so repeats are common.
event_specs = st.tuples(
    st.sampled_from([f"e{i}" for i in range(25)]),
    st.sampled_from(["u1", "u2", "u3"]),
    st.integers(-30, 30),
    st.booleans(),
)
batches = st.lists(st.lists(event_specs, max_size=12), max_size=8)


def _build(spec):
    eid, user, minute, is_click = spec
    when = T0 + timedelta(minutes=minute)
    return click(eid, user, when) if is_click else view(eid, user, when)


def _check(log, plan) -> None:
    first_seen: dict[str, object] = {}
    for raw_batch in plan:
        events = [_build(s) for s in raw_batch]
        before = set(first_seen)
        result = log.append(events)
        expected_new = list(dict.fromkeys(e.event_id for e in events if e.event_id not in before))
        assert result.inserted == expected_new
        assert len(result.inserted) + len(result.duplicates) == len(events)
        for e in events:
            first_seen.setdefault(e.event_id, e)
    stored = list(log.scan())
    assert len(log) == len(stored) == len(first_seen)
    assert {e.event_id: e for e in stored} == first_seen  # first occurrence of each id wins
    keys = [e.timestamp for e in stored]
    assert keys == sorted(keys)


@given(batches)
def test_memory_log_holds_unique_ids(plan):
    _check(MemoryEventLog(), plan)


@settings(max_examples=40)
@given(batches)
def test_sqlite_log_holds_unique_ids(plan):
    with tempfile.TemporaryDirectory() as tmp:
        log = SqliteEventLog(Path(tmp) / "s.sqlite")
        try:
            _check(log, plan)
        finally:
            log.close()


optional_text = st.none() | st.text(alphabet="abcxyz-", min_size=1, max_size=6)
context_values = st.none() | st.integers(-3, 3) | st.text(max_size=3)


@settings(max_examples=40)
@given(
    session=optional_text,
    request=optional_text,
    position=st.none() | st.integers(1, 50),
    context=st.dictionaries(st.sampled_from(["a", "b", "coupon"]), context_values, max_size=3),
)
def test_sqlite_log_round_trips_optional_fields_exactly(session, request, position, context):
    # The stored payload leaves out None-valued fields; reading it back must give the same
    # event, including None values that are data (inside `context`).
    event = click("e1", "u1", T0, request_id=request).model_copy(
        update={"session_id": session, "position": position, "context": context}
    )
    with tempfile.TemporaryDirectory() as tmp:
        log = SqliteEventLog(Path(tmp) / "s.sqlite")
        try:
            log.append([event])
            assert list(log.scan()) == [event]
        finally:
            log.close()
