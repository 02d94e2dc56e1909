"""RetroTech: the Best Buy catalog and synthetic click sessions from "AI-Powered Search".

Catalog: `products.csv` (upc, name, manufacturer, short_description, long_description),
written with backslash escapes. About 2,000 UPCs occur twice (one row often a shorter
duplicate); we keep, per UPC, the row with the most text.

Sessions: `sessions/*.gz` (sess_id, query, rank, clicked_doc_id, clicked), one row per
shown document. Each (sess_id, query) pair becomes one served list: a `search` event, an
`impression` listing the documents at 1-based positions (rank + 1), and a `click` per
clicked row pointing back at the impression's request_id. The files store doc ids as
numbers, which drops leading zeros, so ids are zero-padded back to 12 digits. The
sessions carry no clock: timestamps are synthetic (one served list per minute from
`SYNTHETIC_EPOCH`, in sess_id order), and sess_id doubles as user and session id.
"""

from __future__ import annotations

import itertools
import re
from datetime import timedelta
from pathlib import Path

import pandas as pd
from pydantic import TypeAdapter

from shoploop.data.datasets._common import (
    clean_text,
    progress_iter,
    require_columns,
    require_dir,
    require_file,
    synthetic_time,
)
from shoploop.data.datasets.types import DatasetBundle
from shoploop.domain import ClickEvent, Event, ImpressionEvent, Product, SearchEvent, ShownItem

PRODUCT_COLUMNS = ("upc", "name", "manufacturer", "short_description", "long_description")
SESSION_COLUMNS = ("sess_id", "query", "rank", "clicked_doc_id", "clicked")
_NO_BRAND = {"", "unknown", "n/a", "na", "none"}
MAX_DESCRIPTION = 20_000
_SHOWN: TypeAdapter[tuple[ShownItem, ...]] = TypeAdapter(tuple[ShownItem, ...])


def read_retrotech_products(directory: Path) -> pd.DataFrame:
    """The raw catalog frame (all columns strings, one row per UPC)."""
    path = require_file(Path(directory) / "products.csv", "retrotech catalog")
    frame = pd.read_csv(path, dtype=str, escapechar="\\", keep_default_na=False, encoding="utf-8")
    require_columns(frame, PRODUCT_COLUMNS, path)
    frame = frame.copy()
    frame["upc"] = frame["upc"].str.strip()
    text_len = (
        frame["name"].str.len() + frame["short_description"].str.len() + frame["long_description"].str.len()
    )
    frame["_len"] = text_len
    # Sort is stable, so among equally long duplicates the first row in the file wins.
    frame = frame.sort_values("_len", ascending=False, kind="stable").drop_duplicates("upc", keep="first")
    return frame.sort_index().drop(columns="_len").reset_index(drop=True)


def read_retrotech_sessions(directory: Path, *, queries: list[str] | None = None) -> pd.DataFrame:
    """All session rows, with doc ids zero-padded to UPC width and rank as int (0-based)."""
    session_dir = require_dir(Path(directory) / "sessions", "retrotech sessions")
    files = sorted(session_dir.glob("*_sessions.gz"))
    if not files:
        raise FileNotFoundError(f"retrotech sessions: no *_sessions.gz files in {session_dir}")
    frames = []
    for path in files:
        frame = pd.read_csv(path, dtype={"clicked_doc_id": str, "query": str})
        require_columns(frame, SESSION_COLUMNS, path)
        if queries is not None and not frame["query"].isin(queries).any():
            continue
        frames.append(frame)
    if not frames:
        raise ValueError(f"retrotech sessions: none of the queries {queries} found in {session_dir}")
    rows = pd.concat(frames, ignore_index=True)
    if queries is not None:
        rows = rows[rows["query"].isin(queries)]
    rows["rank"] = rows["rank"].astype(int)
    rows["clicked_doc_id"] = rows["clicked_doc_id"].str.strip().str.zfill(12)
    rows["clicked"] = rows["clicked"].astype(str).str.lower().isin(["true", "1"])
    return rows.sort_values(["sess_id", "query", "rank"], kind="stable").reset_index(drop=True)


def _product(row: dict[str, str]) -> Product | None:
    title = clean_text(row["name"])
    if not title or not row["upc"]:
        return None
    brand = clean_text(row["manufacturer"])
    short, long = clean_text(row["short_description"]), clean_text(row["long_description"])
    description = short if not long or long == short else (f"{short} {long}".strip())
    return Product(
        item_id=row["upc"],
        title=title,
        brand=None if brand.lower() in _NO_BRAND else brand,
        description=description[:MAX_DESCRIPTION],
    )


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def load_retrotech(
    directory: Path,
    *,
    with_sessions: bool = True,
    queries: list[str] | None = None,
    max_sessions: int | None = None,
    drop_unknown_items: bool = True,
    progress: bool = False,
) -> DatasetBundle:
    """Catalog + (optionally) the sessions as search / impression / click events.

    `max_sessions` keeps the first N (sess_id, query) lists (in sess_id order) — the
    full log has 65,000 lists of ~27 items each. With `drop_unknown_items`, documents
    missing from the catalog (~4% of shown rows) are left out of the impression and
    their clicks dropped, so the events pass ingestion's catalog check.
    """
    directory = Path(directory)
    frame = read_retrotech_products(directory)
    products = [p for p in (_product(row) for row in frame.to_dict("records")) if p is not None]
    notes: dict[str, object] = {"catalog_rows": len(frame), "timestamps": "synthetic"}
    events: list[Event] = []
    if with_sessions:
        known = {p.item_id for p in products}
        rows = read_retrotech_sessions(directory, queries=queries)
        dropped = 0
        # Plain lists + boundaries instead of DataFrame.groupby: iterating 65,000 pandas
        # groups costs more than everything else here.
        sess_ids, query_col = rows["sess_id"].tolist(), rows["query"].tolist()
        docs, ranks, clicked_col = (
            rows["clicked_doc_id"].tolist(),
            rows["rank"].tolist(),
            rows["clicked"].tolist(),
        )
        bounds = [0] + [
            i
            for i in range(1, len(sess_ids))
            if sess_ids[i] != sess_ids[i - 1] or query_col[i] != query_col[i - 1]
        ]
        bounds.append(len(sess_ids))
        lists = progress_iter(
            itertools.pairwise(bounds), total=len(bounds) - 1, label="retrotech sessions", enabled=progress
        )
        for n_list, (lo, hi) in enumerate(lists):
            if max_sessions is not None and n_list >= max_sessions:
                break
            sess_id, query = sess_ids[lo], query_col[lo]
            request_id = f"retrotech-{sess_id}-{_slug(query)}"
            user = f"rt-{sess_id}"
            start = synthetic_time(n_list)
            slots: list[dict[str, object]] = []
            clicks: list[tuple[str, int]] = []
            for doc, rank, clicked in zip(docs[lo:hi], ranks[lo:hi], clicked_col[lo:hi], strict=True):
                if drop_unknown_items and doc not in known:
                    dropped += 1
                    continue
                slots.append({"item_id": doc, "position": rank + 1})
                if clicked:
                    clicks.append((doc, rank + 1))
            # One pydantic-core call per list instead of one Python constructor per slot.
            shown = _SHOWN.validate_python(slots)
            common = {"user_id": user, "session_id": user}
            events.append(
                SearchEvent(
                    event_id=f"{request_id}:search",
                    timestamp=start,
                    query=query,
                    request_id=request_id,
                    n_results=hi - lo,
                    **common,
                )
            )
            if not shown:
                continue
            events.append(
                ImpressionEvent(
                    event_id=f"{request_id}:impression",
                    timestamp=start + timedelta(milliseconds=200),
                    request_id=request_id,
                    surface="search",
                    query=query,
                    items=shown,
                    policy="retrotech-log",
                    **common,
                )
            )
            for k, (doc, position) in enumerate(clicks):
                events.append(
                    ClickEvent(
                        event_id=f"{request_id}:click:{position}",
                        timestamp=start + timedelta(seconds=5 * (k + 1)),
                        item_id=doc,
                        request_id=request_id,
                        position=position,
                        **common,
                    )
                )
        notes["dropped_unknown_rows"] = dropped
    return DatasetBundle(products=products, events=events, name="retrotech", notes=notes)
