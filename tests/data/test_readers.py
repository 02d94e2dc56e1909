"""Readers: every format, gzip, column mapping, missing values, nested JSON, bad lines."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given
from hypothesis import strategies as st

from shoploop.data.readers import (
    UNPARSED_KEY,
    ReaderError,
    detect_format,
    jsonable,
    normalize_row,
    parse_column_map,
    read_rows,
    rename_columns,
)


def _write_csv(path: Path, text: str) -> Path:
    if path.suffix == ".gz":
        with gzip.open(path, "wt", encoding="utf-8", newline="") as handle:
            handle.write(text)
    else:
        path.write_text(text, encoding="utf-8", newline="")
    return path


CSV_TEXT = 'sku,name,cost,brand,attributes\nA1,Cordless drill,99.5,,"{""voltage"": 18}"\nB2,Hammer,12,Acme,\n'


@pytest.mark.parametrize("name", ["products.csv", "products.csv.gz"])
def test_csv_with_column_map_and_missing_values(tmp_path: Path, name: str) -> None:
    path = _write_csv(tmp_path / name, CSV_TEXT)
    rows = list(read_rows(path, column_map={"item_id": "sku", "title": "name", "price": "cost"}))
    assert [r.row_number for r in rows] == [1, 2]
    assert rows[0].error is None
    assert rows[0].raw == {
        "item_id": "A1",
        "title": "Cordless drill",
        "price": "99.5",
        "brand": "",
        "attributes": '{"voltage": 18}',
    }
    # normalisation: empty CSV cells become missing, JSON text in nested fields is decoded
    assert normalize_row(rows[0].raw) == {
        "item_id": "A1",
        "title": "Cordless drill",
        "price": "99.5",
        "attributes": {"voltage": 18},
    }
    assert normalize_row(rows[1].raw) == {"item_id": "B2", "title": "Hammer", "price": "12", "brand": "Acme"}


def test_csv_ragged_row_and_blank_line_and_bom(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_bytes("\ufeffitem_id,title\nA,Drill\n\nB,Saw,extra\nC,Nail\n".encode())
    rows = list(read_rows(path))
    assert [(r.row_number, r.error) for r in rows] == [
        (1, None),
        (2, "row 2: expected 2 columns, got 3"),
        (3, None),
    ]
    assert rows[0].raw == {"item_id": "A", "title": "Drill"}  # BOM did not leak into the header
    assert rows[1].raw == {UNPARSED_KEY: "B,Saw,extra"}


def test_csv_events_with_nested_json_items(tmp_path: Path) -> None:
    items = json.dumps([{"item_id": "A", "position": 1}, {"item_id": "B", "position": 2}])
    path = tmp_path / "events.csv"
    with path.open("w", encoding="utf-8", newline="") as handle:
        handle.write("type,user_id,timestamp,request_id,surface,items,context\n")
        handle.write(
            f'impression,u1,2026-01-01T00:00:00Z,r1,search,"{items.replace(chr(34), 2 * chr(34))}",\n'
        )
    (row,) = read_rows(path)
    data = normalize_row(row.raw)
    assert data["items"] == [{"item_id": "A", "position": 1}, {"item_id": "B", "position": 2}]
    assert "context" not in data


@pytest.mark.parametrize("name", ["events.jsonl", "events.jsonl.gz", "events.ndjson"])
def test_jsonl_bad_line_is_a_row_error_not_fatal(tmp_path: Path, name: str) -> None:
    lines = ['{"user": "u1", "n": 1}', "", "{not json", "[1, 2]", '{"user": "u2"}']
    text = "\n".join(lines) + "\n"
    path = tmp_path / name
    if name.endswith(".gz"):
        with gzip.open(path, "wt", encoding="utf-8") as handle:
            handle.write(text)
    else:
        path.write_text(text, encoding="utf-8")
    rows = list(read_rows(path, column_map={"user_id": "user"}))
    assert [r.row_number for r in rows] == [1, 3, 4, 5]  # line numbers; the blank line is skipped
    assert rows[0].raw == {"user_id": "u1", "n": 1}
    assert rows[1].error is not None and rows[1].error.startswith("line 3: invalid JSON: ")
    assert rows[1].raw == {UNPARSED_KEY: "{not json"}
    assert rows[2].error == "line 4: expected a JSON object, got list"
    assert rows[3].raw == {"user_id": "u2"} and rows[3].error is None


def test_parquet_streams_in_batches_with_mapping(tmp_path: Path) -> None:
    n = 25
    table = pa.table(
        {
            "sku": [f"I{i}" for i in range(n)],
            "name": [f"Item {i}" for i in range(n)],
            "cost": [float(i + 1) if i % 5 else None for i in range(n)],
            "tags": [["a", "b"]] * n,
        }
    )
    path = tmp_path / "p.parquet"
    pq.write_table(table, path, row_group_size=10)
    rows = list(
        read_rows(path, column_map={"item_id": "sku", "title": "name", "price": "cost"}, chunk_rows=4)
    )
    assert [r.row_number for r in rows] == list(range(1, n + 1))
    assert rows[1].raw == {"item_id": "I1", "title": "Item 1", "price": 2.0, "tags": ["a", "b"]}
    assert "price" not in normalize_row(rows[0].raw)  # a Parquet null is a missing value


def test_format_detection_and_errors(tmp_path: Path) -> None:
    assert detect_format(Path("x.CSV")) == "csv"
    assert detect_format(Path("x.jsonl.gz")) == "jsonl"
    assert detect_format(Path("x.parquet")) == "parquet"
    assert detect_format(Path("x.txt"), "JSONL") == "jsonl"
    with pytest.raises(ReaderError, match="cannot tell the format"):
        detect_format(Path("x.txt"))
    with pytest.raises(ReaderError, match="unknown format 'xml'"):
        detect_format(Path("x.csv"), "xml")
    with pytest.raises(FileNotFoundError):
        read_rows(tmp_path / "missing.csv")


def test_parse_column_map() -> None:
    assert parse_column_map("title=name, price=cost") == {"title": "name", "price": "cost"}
    assert parse_column_map(None) == {}
    assert parse_column_map("") == {}
    for bad in ("title", "title=", "=name", "a=x,a=y", "a=x,b=x"):
        with pytest.raises(ReaderError):
            parse_column_map(bad)


def test_rename_is_idempotent_for_already_renamed_rows() -> None:
    mapping = {"title": "name"}
    once = rename_columns({"name": "Drill", "item_id": "A"}, mapping)
    assert once == {"title": "Drill", "item_id": "A"}
    assert rename_columns(once, mapping) == once


_values = st.one_of(
    st.none(),
    st.text(max_size=20),
    st.integers(),
    st.floats(allow_nan=True),
    st.lists(st.integers(), max_size=3),
)


@given(st.dictionaries(st.sampled_from(["items", "context", "title", "x", "price"]), _values, max_size=5))
def test_normalize_and_jsonable_never_raise(row: dict) -> None:
    out = normalize_row(row)
    assert all(v is not None and v != "" for v in out.values())
    json.dumps(jsonable(row), allow_nan=False)  # always storable in the quarantine
