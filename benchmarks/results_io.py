"""Writing a benchmark's result: the JSON file and its Markdown rendering next to it.

Every benchmark program ends the same way: the result dict as indented JSON and a Markdown table
for people. `write_results` does both, creating the folder, and writes each file atomically (a
temporary file in the same folder, then `os.replace`), so a run that is interrupted or fails while
writing leaves the previous result whole instead of a half-written one.

Benchmarks run as scripts (`python benchmarks/x.py`) with this folder on `sys.path`, and import it
as a sibling module: `from results_io import write_results`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
from collections.abc import Mapping
from datetime import date, datetime, time, timedelta
from pathlib import Path, PurePath
from typing import Any

__all__ = ["json_default", "to_json", "write_json", "write_results", "write_text_atomic"]


def json_default(value: Any) -> Any:
    """`json.dumps(default=...)` for what the standard encoder refuses: numpy scalars become plain
    numbers (`np.int64` an int, `np.float32` a float, `np.bool_` a bool), arrays (and anything
    else with `tolist`, e.g. a torch tensor) nested lists, paths strings, dates ISO strings,
    durations seconds, sets sorted lists, dataclasses dicts; anything else its `str`."""
    tolist = getattr(value, "tolist", None)
    if callable(tolist):  # numpy scalar or array (a numpy scalar's tolist is its Python value)
        return tolist()
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, set | frozenset):
        try:
            return sorted(value)
        except TypeError:  # mixed types that do not order
            return sorted(value, key=repr)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return str(value)


def to_json(result: Mapping[str, Any]) -> str:
    """The result as the benchmarks write it: indented by 2, ending with a newline."""
    return json.dumps(result, indent=2, default=json_default) + "\n"


def write_text_atomic(path: Path, text: str) -> None:
    """Write `text` (UTF-8) to `path` through a temporary file in the same folder and `os.replace`,
    so `path` holds either its old content or all of the new; the temporary file never outlives a
    failure. The folder must exist."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    # 0o666 so the umask applies, as it does for `Path.write_text`; O_EXCL: never someone else's file
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with open(fd, "w", encoding="utf-8", newline="\n") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_json(path: Path, result: Mapping[str, Any]) -> None:
    """`result` as JSON (see `to_json`) at `path`, atomically, creating its folder."""
    path = Path(path)
    text = to_json(result)  # serialise first: a value that cannot be written fails before any file
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, text)


def write_results(
    json_path: Path, result: Mapping[str, Any], markdown: str, md_path: Path | None = None
) -> None:
    """`result` as JSON at `json_path` and `markdown` at `md_path` (by default `json_path` with the
    suffix `.md`), each written atomically; creates the folders."""
    json_path = Path(json_path)
    md_path = json_path.with_suffix(".md") if md_path is None else Path(md_path)
    write_json(json_path, result)
    md_path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(md_path, markdown)
