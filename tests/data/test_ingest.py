"""Ingestion end to end: idempotency, quarantine round trip, typed records, reports, property tests."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rich.console import Console

from shoploop.data.cleaning import CleaningConfig
from shoploop.data.ingest import (
    derive_event_id,
    import_catalog,
    import_events,
    import_file,
    import_records,
    reimport_quarantine,
)
from shoploop.data.readers import SourceRow
from shoploop.data.report import ImportReport, load_report, print_report, save_report
from shoploop.domain import ClickEvent, Product, PurchaseEvent, PurchaseLine, ViewEvent
from shoploop.store.home import Stores, memory_stores, open_stores


@pytest.fixture(params=["memory", "sqlite"])
def stores(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Stores]:
    s = memory_stores(tmp_path / "artifacts") if request.param == "memory" else open_stores(tmp_path / "home")
    yield s
    s.close()


def _cfg(t0: datetime) -> CleaningConfig:
    return CleaningConfig(now=t0 + timedelta(days=1))


def _write_jsonl(path: Path, rows: list[Any]) -> Path:
    lines = [r if isinstance(r, str) else json.dumps(r) for r in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _events(t0: datetime, n: int) -> list[dict[str, Any]]:
    # no event_id on purpose: ids are derived from the row content
    return [
        {
            "type": "view",
            "user_id": f"u{k % 7}",
            "item_id": f"p{k % 5}",
            "timestamp": (t0 + timedelta(seconds=k)).isoformat(),
        }
        for k in range(n)
    ]


def _seed_catalog(stores: Stores, t0: datetime, ids: list[str]) -> None:
    rows = [{"item_id": i, "title": f"Product {i}", "price": 5.0} for i in ids]
    import_catalog(rows, stores, source="seed", config=_cfg(t0), progress=False)


def test_reimporting_the_same_file_adds_nothing(stores: Stores, tmp_path: Path, t0: datetime) -> None:
    _seed_catalog(stores, t0, [f"p{k}" for k in range(5)])
    rows = [
        *_events(t0, 40),
        "{broken",
        {"type": "view", "user_id": "u1", "item_id": "zz", "timestamp": t0.isoformat()},
    ]
    path = _write_jsonl(tmp_path / "events.jsonl", rows)
    first = import_file(path, "events", stores, config=_cfg(t0), batch_size=16, progress=False)
    assert (first.rows_read, first.accepted, first.duplicates) == (42, 40, 0)
    assert first.quarantined_by_reason == {"invalid_json": 1, "unknown_item": 1}
    n_events, n_quarantine = len(stores.events), len(stores.quarantine)

    second = import_file(path, "events", stores, config=_cfg(t0), batch_size=16, progress=False)
    assert (second.accepted, second.duplicates, second.quarantined) == (0, 40, 2)
    assert second.already_quarantined == 2
    assert (len(stores.events), len(stores.quarantine)) == (n_events, n_quarantine)
    bad = stores.quarantine.list(reason_contains="invalid JSON")
    assert len(bad) == 1 and bad[0].row_number == 41 and bad[0].source == "events.jsonl"


def test_derived_event_ids_are_deterministic_and_content_based(t0: datetime) -> None:
    row = {"type": "view", "user_id": "u", "item_id": "a", "timestamp": t0.isoformat()}
    same = dict(reversed(list(row.items())))
    assert derive_event_id(row) == derive_event_id(same)
    assert derive_event_id(row) == derive_event_id({**row, "event_id": "ignored"})
    assert derive_event_id(row) != derive_event_id({**row, "user_id": "v"})
    assert derive_event_id(row).startswith("h") and len(derive_event_id(row)) == 33


def test_catalog_reimport_of_identical_products_keeps_the_version(stores: Stores, tmp_path: Path) -> None:
    path = tmp_path / "catalog.csv"
    path.write_text(
        "sku,name,cost,category_path\nA,Drill,99,Tools > Power\nB,Saw,20,Tools\nA,Drill,99,Tools > Power\n",
        encoding="utf-8",
    )
    mapping = {"item_id": "sku", "title": "name", "price": "cost"}
    first = import_file(path, "catalog", stores, column_map=mapping, progress=False)
    assert (first.accepted, first.duplicates) == (2, 1)  # the repeated row A is a duplicate
    version = stores.catalog.version
    assert stores.catalog.get("A").category_path == ("Tools", "Power")
    again = import_file(path, "catalog", stores, column_map=mapping, progress=False)
    assert (again.accepted, again.duplicates) == (0, 3)
    assert stores.catalog.version == version
    path.write_text("sku,name,cost\nA,Drill,89\n", encoding="utf-8")
    changed = import_file(path, "catalog", stores, column_map=mapping, progress=False)
    assert changed.accepted == 1 and stores.catalog.version > version
    assert stores.catalog.get("A").price == 89


def test_quarantine_fix_catalog_then_reimport(stores: Stores, t0: datetime) -> None:
    _seed_catalog(stores, t0, ["p0"])
    rows = [
        {"type": "click", "user_id": "u1", "item_id": "p0", "timestamp": t0.isoformat()},
        {"type": "click", "user_id": "u1", "item_id": "p1", "timestamp": t0.isoformat()},
        {"type": "click", "user_id": "u2", "item_id": "p2", "timestamp": t0.isoformat()},
        {"type": "rating", "user_id": "u2", "item_id": "p0", "rating": 7, "timestamp": t0.isoformat()},
    ]
    report = import_events(rows, stores, source="clicks", config=_cfg(t0), progress=False)
    assert report.quarantined_by_reason == {"invalid_field:rating": 1, "unknown_item": 2}
    assert len(stores.events) == 1

    # the catalog gains p1 only; re-import everything
    _seed_catalog(stores, t0, ["p1"])
    (rep,) = reimport_quarantine(stores, config=_cfg(t0))
    assert (rep.rows_read, rep.accepted) == (3, 1)
    assert rep.quarantined_by_reason == {"invalid_field:rating": 1, "unknown_item": 1}
    left = sorted(q.reason for q in stores.quarantine.list())
    assert left == [
        "rating: Input should be less than or equal to 5",
        "unknown_item: item ids not in the catalog: p2",
    ]
    assert {e.item_id for e in stores.events.scan()} == {"p0", "p1"}

    # re-importing only selected ids; once p2 exists the last event passes too
    _seed_catalog(stores, t0, ["p2"])
    target = stores.quarantine.list(reason_contains="unknown_item")[0].id
    (rep,) = reimport_quarantine(stores, ids=[target], config=_cfg(t0))
    assert rep.accepted == 1
    assert [q.reason for q in stores.quarantine.list()] == ["rating: Input should be less than or equal to 5"]
    # and a re-import of a row that is already in the log just leaves the quarantine (duplicate)
    assert len(stores.events) == 3


def test_reimport_quarantine_applies_a_column_map(stores: Stores) -> None:
    import_catalog([{"item_id": "a", "name": "Drill"}], stores, source="c", progress=False)
    assert stores.quarantine.counts_by_reason() == {
        "title: Field required; name: Extra inputs are not permitted": 1
    }
    (rep,) = reimport_quarantine(stores, column_map={"title": "name"})
    assert rep.accepted == 1 and len(stores.quarantine) == 0
    assert stores.catalog.get("a").title == "Drill"


def test_reimport_keeps_double_clicks_out(stores: Stores, t0: datetime) -> None:
    _seed_catalog(stores, t0, ["p0"])
    rows = [
        {"type": "click", "user_id": "u", "item_id": "p0", "timestamp": t0.isoformat()},
        {
            "type": "click",
            "user_id": "u",
            "item_id": "p0",
            "timestamp": (t0 + timedelta(seconds=1)).isoformat(),
        },
    ]
    import_events(rows, stores, source="dc", config=_cfg(t0), progress=False)
    (rep,) = reimport_quarantine(stores, config=_cfg(t0))
    # the kept click is in the log, not in this run's memory: the log is consulted
    assert rep.quarantined_by_reason == {"duplicate_click": 1} and len(stores.quarantine) == 1


def test_import_records_applies_the_same_rules(stores: Stores, t0: datetime) -> None:
    products = [Product(item_id="a", title="A", price=3.0), Product(item_id="b", title="B")]
    events = [
        ViewEvent(event_id="v1", user_id="u", item_id="a", timestamp=t0),
        ClickEvent(event_id="c1", user_id="u", item_id="ghost", timestamp=t0),
        PurchaseEvent(
            event_id="p1",
            user_id="u",
            timestamp=t0,
            items=(PurchaseLine(item_id="b", price=2.0, quantity=2),),
        ),
        ViewEvent(event_id="v2", user_id="u", item_id="a", timestamp=t0 + timedelta(days=30)),
    ]
    cat, evs = import_records(products, events, stores, source="demo", config=_cfg(t0), progress=False)
    assert (cat.accepted, evs.accepted) == (2, 2)
    assert evs.quarantined_by_reason == {"future_timestamp": 1, "unknown_item": 1}
    ghost = stores.quarantine.list(reason_contains="ghost")[0]
    assert ghost.raw["event_id"] == "c1" and ghost.row_number == 2  # typed records are quarantined as dicts
    cat2, evs2 = import_records(products, events, stores, source="demo", config=_cfg(t0), progress=False)
    assert (cat2.accepted, cat2.duplicates, evs2.accepted, evs2.duplicates) == (0, 2, 0, 2)


def test_plain_mappings_and_source_rows_mix(stores: Stores, t0: datetime) -> None:
    _seed_catalog(stores, t0, ["a"])
    rows: list[Any] = [
        SourceRow(10, {"type": "view", "user_id": "u", "item_id": "a", "timestamp": t0.isoformat()}),
        SourceRow(11, {"_unparsed_line": "{"}, "line 11: invalid JSON: Expecting value at column 2"),
        "not a mapping",
    ]
    report = import_events(rows, stores, source="mix", config=_cfg(t0), progress=False)
    assert report.accepted == 1
    assert report.quarantined_by_reason == {"invalid_json": 1, "invalid_row": 1}
    assert sorted(q.row_number for q in stores.quarantine.list()) == [3, 11]


def test_progress_bar_renders(stores: Stores, t0: datetime) -> None:
    _seed_catalog(stores, t0, [f"p{k}" for k in range(5)])
    report = import_events(_events(t0, 10), stores, source="p", config=_cfg(t0), progress=True, batch_size=3)
    assert report.accepted == 10 and report.rows_per_s > 0


def test_report_print_save_load(tmp_path: Path) -> None:
    report = ImportReport(source="my file.csv", kind="events", rows_read=5, accepted=2, duplicates=1)
    report.add_rejection("unknown_item")
    report.add_rejection("invalid_field:price")
    report.flagged_users.append("bot")
    report.finish(0.5)
    console = Console(record=True, width=120)
    print_report(report, console)
    text = console.export_text()
    assert "invalid_field:price" in text and "unknown_item" in text and "10 rows/s" in text
    path = save_report(report, tmp_path)
    assert path.parent == tmp_path / "reports" and path.suffix == ".json"
    assert [p.name for p in (tmp_path / "reports").iterdir()] == [path.name]  # no temp file left behind
    data = json.loads(path.read_text())
    assert data["quarantined"] == 2 and data["rows_per_s"] == 10.0
    assert load_report(path) == report


# ------------------------------------------------------------------ property test

_ITEMS = ["a", "b", "c", "zz"]
_field_values = {
    "type": st.sampled_from(["view", "click", "rating", "purchase", "search", "nope", "", None, 3]),
    "user_id": st.one_of(st.sampled_from(["u1", "u2", ""]), st.text(max_size=5), st.none()),
    "item_id": st.one_of(st.sampled_from(_ITEMS), st.text(max_size=4), st.integers()),
    "timestamp": st.one_of(
        st.sampled_from(
            [
                "2026-01-01T12:00:00Z",
                "2026-01-01T12:00:01+00:00",
                "2040-01-01T00:00:00Z",
                "1990-01-01T00:00:00Z",
                "2026-01-01",
                "x",
            ]
        ),
        st.integers(min_value=-(10**12), max_value=10**12),
    ),
    "rating": st.one_of(st.integers(-3, 8), st.text(max_size=3)),
    "event_id": st.one_of(st.sampled_from(["e1", "e2", "e3"]), st.text(max_size=3)),
    "items": st.one_of(
        st.just('[{"item_id": "a", "price": 2}]'),
        st.just([{"item_id": "b", "price": -1}]),
        st.text(max_size=6),
        st.lists(st.dictionaries(st.sampled_from(["item_id", "price", "x"]), st.integers(-2, 3)), max_size=2),
    ),
    "query": st.text(max_size=8),
    "context": st.one_of(st.just("{}"), st.just('{"a": 1}'), st.text(max_size=4)),
    "extra": st.integers(),
}
_row = st.fixed_dictionaries({}, optional=_field_values)
_anything = st.one_of(
    _row, st.sampled_from([SourceRow(99, {"_unparsed_line": "{"}, "line 99: invalid JSON: x")])
)


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(_anything, max_size=25), batch_size=st.integers(1, 6))
def test_arbitrary_event_rows_never_crash_and_are_all_accounted_for(
    tmp_path: Path, t0: datetime, rows: list[Any], batch_size: int
) -> None:
    s = memory_stores(tmp_path / "a")
    import_catalog([{"item_id": i, "title": i} for i in _ITEMS[:3]], s, source="c", progress=False)
    report = import_events(rows, s, source="prop", config=_cfg(t0), batch_size=batch_size, progress=False)
    assert report.rows_read == len(rows)
    assert report.rows_read == report.accepted + report.duplicates + report.quarantined
    # every rejected row is findable in the quarantine with a reason
    assert len(s.quarantine) == report.quarantined
    assert all(q.reason for q in s.quarantine.list())
    assert len(s.events) == report.accepted
    again = import_events(rows, s, source="prop", config=_cfg(t0), batch_size=batch_size, progress=False)
    assert again.accepted == 0 and len(s.quarantine) == report.quarantined


_product_values = {
    "item_id": st.one_of(st.sampled_from(["a", "b", " c ", ""]), st.text(max_size=4), st.integers()),
    "title": st.one_of(st.text(max_size=6), st.none()),
    "price": st.one_of(st.floats(allow_nan=True), st.integers(-2, 5), st.text(max_size=3)),
    "category_path": st.one_of(
        st.text(max_size=8), st.just('["A", "B"]'), st.lists(st.text(max_size=3), max_size=2)
    ),
    "attributes": st.one_of(
        st.just('{"k": 1}'),
        st.text(max_size=4),
        st.dictionaries(st.text(max_size=2), st.integers(), max_size=2),
    ),
    "in_stock": st.one_of(st.booleans(), st.sampled_from(["true", "0", "maybe"])),
}


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.fixed_dictionaries({}, optional=_product_values), max_size=20))
def test_arbitrary_catalog_rows_never_crash(tmp_path: Path, rows: list[dict[str, Any]]) -> None:
    s = memory_stores(tmp_path / "a")
    report = import_catalog(rows, s, source="prop", batch_size=4, progress=False)
    assert report.rows_read == report.accepted + report.duplicates + report.quarantined
    assert len(s.quarantine) == report.quarantined
    version = s.catalog.version
    again = import_catalog(rows, s, source="prop", batch_size=4, progress=False)
    # a second pass may still "accept" rows when the file itself holds two versions of one item
    assert again.quarantined == report.quarantined and len(s.quarantine) == report.quarantined
    if report.accepted == len({str(r.get("item_id")) for r in rows}) == report.rows_read - report.quarantined:
        assert s.catalog.version == version


def test_parquet_events_with_nested_items_and_timestamps(
    stores: Stores, tmp_path: Path, t0: datetime
) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    _seed_catalog(stores, t0, ["a", "b"])
    table = pa.table(
        {
            "type": ["purchase", "view"],
            "user": ["u1", "u2"],
            "timestamp": pa.array([t0, t0 + timedelta(seconds=5)], type=pa.timestamp("us", tz="UTC")),
            "items": [[{"item_id": "a", "price": 2.5, "quantity": 2}], None],
            "item_id": [None, "b"],
        }
    )
    path = tmp_path / "events.parquet"
    pq.write_table(table, path)
    report = import_file(
        path, "events", stores, column_map={"user_id": "user"}, config=_cfg(t0), progress=False
    )
    assert (report.accepted, report.quarantined) == (2, 0), report
    purchase = next(e for e in stores.events.scan(types=["purchase"]))
    assert purchase.revenue == 5.0 and purchase.timestamp == t0
    again = import_file(
        path, "events", stores, column_map={"user_id": "user"}, config=_cfg(t0), progress=False
    )
    assert again.duplicates == 2  # derived ids are stable for Parquet rows too (datetimes, nulls)


_line = st.one_of(
    st.sampled_from(
        [
            '{"type": "view", "user_id": "u", "item_id": "a", "timestamp": "2026-01-01T12:00:00Z"}',
            '{"type": "click", "user_id": "u", "item_id": "a", "timestamp": "2026-01-01T12:00:01Z"}',
            '{"item_id": "zz", "type": "view", "user_id": "u", "timestamp": "2026-01-01T12:00:00Z"}',
            "[]",
            "null",
            "{",
            "",
            '{"type": "search"}',
            "\ufeff{}",
        ]
    ),
    st.text(max_size=30),
)


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    lines=st.lists(_line, max_size=15),
    junk=st.binary(max_size=8),
    suffix=st.sampled_from([".jsonl", ".csv"]),
)
def test_arbitrary_file_content_never_crashes_the_importer(
    tmp_path: Path, t0: datetime, lines: list[str], junk: bytes, suffix: str
) -> None:
    s = memory_stores(tmp_path / "a")
    import_catalog([{"item_id": "a", "title": "A"}], s, source="c", progress=False)
    path = tmp_path / f"events{suffix}"
    body = "\n".join(lines).encode("utf-8", errors="surrogatepass") + b"\n" + junk
    if suffix == ".csv":
        body = b"type,user_id,item_id,timestamp\n" + body
    path.write_bytes(body)
    report = import_file(path, "events", s, config=_cfg(t0), batch_size=4, progress=False)
    assert report.rows_read == report.accepted + report.duplicates + report.quarantined
    assert len(s.quarantine) == report.quarantined


def test_non_utf8_jsonl_line_is_quarantined(stores: Stores, tmp_path: Path, t0: datetime) -> None:
    _seed_catalog(stores, t0, ["a"])
    good = b'{"type": "view", "user_id": "u", "item_id": "a", "timestamp": "2026-01-01T12:00:00Z"}'
    path = tmp_path / "e.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + good + b"\n\xff\xfe{oops}\n")
    report = import_file(path, "events", stores, config=_cfg(t0), progress=False)
    assert report.accepted == 1 and report.quarantined_by_reason == {"invalid_json": 1}
    (row,) = stores.quarantine.list()
    assert row.reason == "line 2: invalid JSON: not UTF-8 at byte 0" and row.row_number == 2


def test_truncated_gzip_is_a_reader_error(stores: Stores, tmp_path: Path) -> None:
    import gzip

    from shoploop.data.readers import ReaderError

    data = gzip.compress(b"".join(b'{"item_id": "p%d", "title": "T"}\n' % k for k in range(2000)))
    path = tmp_path / "c.jsonl.gz"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(ReaderError, match="truncated"):
        import_file(path, "catalog", stores, progress=False)
