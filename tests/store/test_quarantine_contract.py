"""Quarantine contract, run on every implementation."""

from __future__ import annotations

import math
from datetime import timedelta

import pytest

from shoploop.store.protocols import Quarantine


def test_is_a_quarantine(quarantine):
    assert isinstance(quarantine, Quarantine)


def test_add_list_and_filters(quarantine, t0):
    n = quarantine.add(
        [
            (2, "price: Input should be greater than 0", {"item_id": "a", "price": -1}),
            (5, "title: missing", {}),
        ],
        source="catalog.csv",
        kind="catalog",
    )
    assert n == 2
    quarantine.add([(None, "timestamp: naive", {"type": "view", "n": 1.5})], source="api-1", kind="event")

    rows = quarantine.list()
    assert [r.row_number for r in rows] == [2, 5, None]
    first = rows[0]
    assert first.source == "catalog.csv" and first.kind == "catalog"
    assert first.reason == "price: Input should be greater than 0"
    assert dict(first.raw) == {"item_id": "a", "price": -1}
    assert first.quarantined_at > t0
    assert len({r.id for r in rows}) == 3

    assert [r.row_number for r in quarantine.list(kind="event")] == [None]
    assert [r.row_number for r in quarantine.list(source="catalog.csv")] == [2, 5]
    assert [r.row_number for r in quarantine.list(reason_contains="PRICE")] == [2]
    assert [r.row_number for r in quarantine.list(limit=2)] == [2, 5]
    assert quarantine.list(kind="event", source="catalog.csv") == []


def test_raw_values_that_are_not_json_are_kept_as_text(quarantine, t0):
    quarantine.add([(1, "bad", {"when": t0, "nan": math.nan})], source="s", kind="event")
    raw = quarantine.list()[0].raw
    assert raw["when"] == str(t0)
    assert math.isnan(raw["nan"])


def test_remove_and_counts(quarantine):
    quarantine.add([(1, "r1", {}), (2, "r1", {}), (3, "r2", {})], source="s", kind="catalog")
    assert quarantine.counts_by_reason() == {"r1": 2, "r2": 1}
    ids = [r.id for r in quarantine.list(reason_contains="r1")]
    assert quarantine.remove([*ids, 999]) == 2
    assert quarantine.counts_by_reason() == {"r2": 1}
    assert quarantine.remove(ids) == 0
    assert [r.row_number for r in quarantine.list()] == [3]


def test_remove_before_is_exclusive_at_the_cutoff(quarantine, t0):
    # The fixture's clock ticks one second per add: rows land at t0+1s, t0+2s, t0+3s.
    quarantine.add([(1, "r", {"user_id": "u1"}), (2, "r", {})], source="a", kind="event")
    quarantine.add([(3, "r", {})], source="b", kind="event")
    quarantine.add([(4, "r", {})], source="c", kind="catalog")
    second = t0 + timedelta(seconds=2)
    assert [r.quarantined_at for r in quarantine.list()] == [
        t0 + timedelta(seconds=1),
        t0 + timedelta(seconds=1),
        second,
        t0 + timedelta(seconds=3),
    ]
    assert quarantine.count_before(second) == 2
    chunks: list[int] = []
    assert quarantine.remove_before(second, progress=chunks.append) == 2
    assert sum(chunks) == 2
    assert [r.row_number for r in quarantine.list()] == [3, 4]  # the row at the cutoff stays
    assert quarantine.remove_before(second) == 0
    assert quarantine.count_before(t0 + timedelta(days=1)) == 2
    assert quarantine.remove_before(t0 + timedelta(days=1)) == 2
    assert quarantine.list() == [] and quarantine.counts_by_reason() == {}


def test_remove_before_refuses_naive_cutoffs(quarantine, t0):
    quarantine.add([(1, "r", {})], source="a", kind="event")
    with pytest.raises(ValueError, match="aware"):
        quarantine.remove_before(t0.replace(tzinfo=None))
    with pytest.raises(ValueError, match="aware"):
        quarantine.count_before(t0.replace(tzinfo=None))
    assert len(quarantine.list()) == 1
