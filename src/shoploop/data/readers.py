"""Stream rows out of CSV, JSONL and Parquet files without loading them whole.

A reader yields `SourceRow`s: the row as it was read (after renaming columns through
the column map), its 1-based row number, and — for lines that could not be parsed at
all — an error text instead of data. Unparseable lines are never fatal: the importer
quarantines them like any other rejected row.

Row numbers: for JSONL the physical line number (blank lines are skipped but counted);
for CSV the record number after the header (record 1 is the first data row); for
Parquet the 1-based row index.

Values are normalised by `normalize_row` (kept separate so that quarantined rows can be
re-validated later with exactly the same rules):

* CSV empty strings and nulls/NaN become *missing* (the key is dropped), so model
  defaults apply instead of "" failing validation;
* nested fields (`items`, `context`, `attributes`, `filters`, `category_path`) may arrive
  as JSON text in CSV and are decoded.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import gzip
import io
import json
import math
import sys
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path
from typing import IO, Any

FORMATS: tuple[str, ...] = ("csv", "jsonl", "parquet")
# Suffix -> format; ".json" and ".ndjson" are taken as JSON Lines, which is what shops export.
_SUFFIXES = {".csv": "csv", ".tsv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl"}
_SUFFIXES.update({".parquet": "parquet", ".pq": "parquet"})

# Fields whose values are lists/objects; CSV can only carry them as JSON text.
NESTED_FIELDS: frozenset[str] = frozenset({"items", "context", "attributes", "filters", "category_path"})

# Marker key of a raw row that could not be parsed: holds the line text verbatim.
UNPARSED_KEY = "_unparsed_line"

# csv refuses fields over 128 KiB by default; product descriptions can be longer.
csv.field_size_limit(min(sys.maxsize, 2**31 - 1))


class ReaderError(ValueError):
    """A user-facing problem with the input as a whole (unknown format, bad column map)."""


@dataclass(frozen=True, slots=True)
class SourceRow:
    """One input row. `error` is set (and `raw` holds the line text) when it could not be parsed."""

    row_number: int
    raw: dict[str, Any]
    error: str | None = None


def detect_format(path: Path, fmt: str | None = None) -> str:
    """`fmt` when given, else from the suffix (`.csv`, `.jsonl`, `.parquet`, optionally `.gz`)."""
    if fmt is not None:
        fmt = fmt.lower().lstrip(".")
        fmt = {"ndjson": "jsonl", "json": "jsonl", "pq": "parquet", "tsv": "csv"}.get(fmt, fmt)
        if fmt not in FORMATS:
            raise ReaderError(f"unknown format {fmt!r}; expected one of {', '.join(FORMATS)}")
        return fmt
    suffixes = [s.lower() for s in Path(path).suffixes]
    if suffixes and suffixes[-1] == ".gz":
        suffixes = suffixes[:-1]
    if suffixes and suffixes[-1] in _SUFFIXES:
        return _SUFFIXES[suffixes[-1]]
    raise ReaderError(
        f"cannot tell the format of {Path(path).name!r} from its suffix; pass --format ({', '.join(FORMATS)})"
    )


def parse_column_map(spec: str | Mapping[str, str] | None) -> dict[str, str]:
    """Parse `"title=name,price=cost"` into `{"title": "name", "price": "cost"}` (ours -> theirs)."""
    if spec is None:
        return {}
    if isinstance(spec, Mapping):
        return {str(k): str(v) for k, v in spec.items()}
    mapping: dict[str, str] = {}
    for part in spec.split(","):
        if not part.strip():
            continue
        ours, sep, theirs = part.partition("=")
        ours, theirs = ours.strip(), theirs.strip()
        if not sep or not ours or not theirs:
            raise ReaderError(f"bad column mapping {part.strip()!r}; expected our_field=their_column")
        if ours in mapping:
            raise ReaderError(f"column mapping names {ours!r} twice")
        mapping[ours] = theirs
    theirs_seen = list(mapping.values())
    if len(set(theirs_seen)) != len(theirs_seen):
        raise ReaderError("column mapping uses one source column for two fields")
    return mapping


def rename_columns(row: Mapping[str, Any], column_map: Mapping[str, str] | None) -> dict[str, Any]:
    """Rename `their_column` keys to `our_field`; other keys pass through unchanged.

    Idempotent: a row whose columns already carry our names is returned as is, which
    lets quarantined rows (stored renamed) be re-imported with or without the map.
    """
    if not column_map:
        return dict(row)
    theirs_to_ours = {theirs: ours for ours, theirs in column_map.items()}
    out: dict[str, Any] = {}
    for key, value in row.items():
        out[theirs_to_ours.get(key, key)] = value
    return out


def _is_missing(value: Any) -> bool:
    if value is None:
        return True
    if isinstance(value, str):
        return value.strip() == ""
    return isinstance(value, float) and math.isnan(value)


def normalize_row(raw: Mapping[str, Any]) -> dict[str, Any]:
    """The dict handed to the domain models: missing values dropped, JSON text decoded.

    A nested field whose text is not valid JSON is left as text, so validation reports
    it against the field name (e.g. `items: Input should be a valid tuple`).
    """
    out: dict[str, Any] = {}
    for key, value in raw.items():
        # hot path (every row of every import): type checks inlined instead of _is_missing()
        if value is None:
            continue
        if value.__class__ is str:
            text = value.strip()
            if not text:
                continue
            if key in NESTED_FIELDS and text[:1] in ("[", "{"):
                with contextlib.suppress(json.JSONDecodeError):
                    value = json.loads(text)
        elif _is_missing(value):
            continue
        out[key] = value
    return out


def jsonable(value: Any) -> Any:
    """A JSON-serialisable copy (Parquet rows carry datetimes, bytes, NaN) for the quarantine."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if hasattr(value, "item"):  # numpy scalars
        return jsonable(value.item())
    return str(value)


def _open_text(path: Path) -> IO[str]:
    # utf-8-sig swallows the byte-order mark spreadsheet exports put in front of the header.
    # errors="replace": one mis-encoded byte in a CSV must not abort a multi-GB import; the
    # affected value carries U+FFFD and usually fails validation visibly.
    if is_gzip(path):
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8-sig", errors="replace", newline="")
    return open(path, encoding="utf-8-sig", errors="replace", newline="")


def is_gzip(path: Path) -> bool:
    """Named .gz, or starting with gzip's magic bytes: a feed downloaded from a URL without a
    suffix, or a compressed export renamed by a browser, is still read (a text file cannot
    start with byte 0x1f 0x8b)."""
    if path.suffix.lower() == ".gz":
        return True
    with open(path, "rb") as handle:
        return handle.read(2) == b"\x1f\x8b"


def open_binary(path: Path) -> IO[bytes]:
    """The file's bytes, gunzipped when it is gzip-compressed (`is_gzip`)."""
    if is_gzip(path):
        return gzip.open(path, "rb")  # type: ignore[return-value]
    return open(path, "rb")


def _read_jsonl(path: Path, column_map: Mapping[str, str] | None) -> Iterator[SourceRow]:
    # Binary line iteration: memory stays flat however large the file is, lines split on
    # "\n" only, and a line that is not UTF-8 becomes one rejected row, not a crash.
    with open_binary(path) as handle:
        for line_no, blob in enumerate(handle, start=1):
            if line_no == 1 and blob.startswith(codecs.BOM_UTF8):
                blob = blob[len(codecs.BOM_UTF8) :]
            try:
                line = blob.decode("utf-8")
            except UnicodeDecodeError as exc:
                shown = blob.decode("utf-8", errors="replace").rstrip("\r\n")
                error = f"line {line_no}: invalid JSON: not UTF-8 at byte {exc.start}"
                yield SourceRow(line_no, {UNPARSED_KEY: shown}, error)
                continue
            text = line.strip()
            if not text:
                continue
            try:
                value = json.loads(text)
            except json.JSONDecodeError as exc:
                yield SourceRow(line_no, {UNPARSED_KEY: line.rstrip("\r\n")}, _json_error(line_no, exc))
                continue
            except RecursionError:
                error = f"line {line_no}: invalid JSON: nested too deeply"
                yield SourceRow(line_no, {UNPARSED_KEY: line.rstrip("\r\n")[:10_000]}, error)
                continue
            if not isinstance(value, dict):
                error = f"line {line_no}: expected a JSON object, got {type(value).__name__}"
                yield SourceRow(line_no, {UNPARSED_KEY: line.rstrip("\r\n")}, error)
                continue
            yield SourceRow(line_no, rename_columns(value, column_map))


def _json_error(line_no: int, exc: json.JSONDecodeError) -> str:
    return f"line {line_no}: invalid JSON: {exc.msg} at column {exc.colno}"


def _read_csv(
    path: Path, column_map: Mapping[str, str] | None, delimiter: str | None = None
) -> Iterator[SourceRow]:
    # The stdlib reader streams record by record and, unlike pandas' C parser, lets a
    # ragged row become one rejected row instead of aborting the whole file.
    if delimiter is None:
        delimiter = "\t" if ".tsv" in [s.lower() for s in path.suffixes] else ","
    with _open_text(path) as handle:
        reader = csv.reader(handle, delimiter=delimiter)
        try:
            header = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise ReaderError(f"{path.name}: cannot read the CSV header: {exc}") from None
        header = [h.strip() for h in header]
        if len(set(header)) != len(header):
            dupes = sorted({h for h in header if header.count(h) > 1})
            raise ReaderError(f"{path.name}: duplicate column(s) in header: {', '.join(dupes)}")
        width = len(header)
        record = 0
        while True:
            record += 1
            try:
                values = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                yield SourceRow(record, {UNPARSED_KEY: ""}, f"row {record}: unreadable CSV: {exc}")
                continue
            if not values or (len(values) == 1 and not values[0].strip()):
                record -= 1  # blank line: not a record
                continue
            if len(values) != width:
                error = f"row {record}: expected {width} columns, got {len(values)}"
                yield SourceRow(record, {UNPARSED_KEY: delimiter.join(values)}, error)
                continue
            yield SourceRow(record, rename_columns(dict(zip(header, values, strict=True)), column_map))


def _read_parquet(path: Path, column_map: Mapping[str, str] | None, chunk_rows: int) -> Iterator[SourceRow]:
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises ArrowInvalid/OSError variants for non-parquet input
        raise ReaderError(f"{path.name}: not a readable Parquet file: {exc}") from None
    row_no = 0
    with parquet:
        # iter_batches decodes one record batch at a time, never the whole file.
        for batch in parquet.iter_batches(batch_size=chunk_rows):
            for row in batch.to_pylist():
                row_no += 1
                yield SourceRow(row_no, rename_columns(row, column_map))


def read_rows(
    path: Path,
    *,
    fmt: str | None = None,
    column_map: Mapping[str, str] | None = None,
    chunk_rows: int = 10_000,
    delimiter: str | None = None,
) -> Iterator[SourceRow]:
    """Stream the rows of a CSV / JSONL / Parquet file (optionally gzip-compressed).

    CSV's delimiter is a tab for `.tsv` files and a comma otherwise, unless `delimiter` says.

    Raises `ReaderError` up front for an unknown format and `FileNotFoundError` for a
    missing file; per-row problems come back as `SourceRow.error`.
    """
    path = Path(path)
    kind = detect_format(path, fmt)
    if not path.is_file():
        raise FileNotFoundError(f"file not found: {path}")
    if kind == "jsonl":
        return _guard(_read_jsonl(path, column_map), path)
    if kind == "csv":
        return _guard(_read_csv(path, column_map, delimiter), path)
    if path.suffix.lower() == ".gz":
        raise ReaderError("gzip-compressed Parquet is not supported (Parquet compresses internally)")
    return _read_parquet(path, column_map, chunk_rows)


def _guard(rows: Iterator[SourceRow], path: Path) -> Iterator[SourceRow]:
    """Turn a corrupt or truncated gzip stream into a clear `ReaderError` (rows before it are kept)."""
    last = 0
    try:
        for row in rows:
            last = row.row_number
            yield row
    except (EOFError, gzip.BadGzipFile, zlib.error) as exc:
        raise ReaderError(
            f"{path.name}: corrupt or truncated compressed data after row {last}: {exc}"
        ) from None
