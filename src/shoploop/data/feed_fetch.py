"""Download a shop's product feed from its URL, only when it changed since the last import.

Shop platforms publish the Merchant Center feed at a fixed URL and regenerate it on a
schedule; a cron job that re-imports it every hour should cost nothing when nothing changed.
So the last successful import's validators are kept per URL in `HOME/feeds/state.json`:
`ETag` and `Last-Modified` go back as `If-None-Match` / `If-Modified-Since` (a 304 answer means
unchanged), and for servers that send neither, the SHA-256 of the body is compared after the
download. The state is written only by `remember`, after the import succeeded, so a failed
import is retried in full next time.

The body streams to a temporary file inside the home (never held in memory), with progress.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from shoploop.store.files import atomic_write_text

FEEDS_DIRNAME = "feeds"
STATE_FILENAME = "state.json"
CHUNK_BYTES = 1 << 16


class FeedFetchError(RuntimeError):
    """The feed could not be downloaded; the text says what the server or network did."""


@dataclass(frozen=True)
class FetchedFeed:
    url: str
    path: Path | None  # the downloaded body; None when the feed is unchanged
    etag: str | None
    last_modified: str | None
    sha256: str | None
    size: int

    @property
    def unchanged(self) -> bool:
        return self.path is None


def is_url(source: str) -> bool:
    return source.startswith(("http://", "https://"))


def _state_path(home: Path) -> Path:
    return home / FEEDS_DIRNAME / STATE_FILENAME


def load_state(home: Path) -> dict[str, dict[str, Any]]:
    path = _state_path(home)
    if not path.is_file():
        return {}
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return {}  # a damaged state only costs one full download
    return state if isinstance(state, dict) else {}


def fetch_feed(
    url: str,
    home: Path,
    *,
    force: bool = False,
    timeout: float = 60.0,
    progress: Callable[[int, int], None] | None = None,
    transport: httpx.BaseTransport | None = None,
) -> FetchedFeed:
    """Download `url` into `HOME/feeds/` unless it is unchanged since `remember` last recorded
    it (`force` downloads and imports regardless). Raises `FeedFetchError`."""
    if not is_url(url):
        raise FeedFetchError(f"not an http(s) URL: {url!r}")
    previous = {} if force else load_state(home).get(url, {})
    headers = {}
    if previous.get("etag"):
        headers["If-None-Match"] = previous["etag"]
    if previous.get("last_modified"):
        headers["If-Modified-Since"] = previous["last_modified"]
    directory = home / FEEDS_DIRNAME
    directory.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha256()
    size = 0
    handle, name = tempfile.mkstemp(prefix="feed-", suffix=_suffix(url), dir=directory)
    path = Path(name)
    try:
        with (
            os.fdopen(handle, "wb") as out,
            httpx.Client(timeout=timeout, follow_redirects=True, transport=transport) as client,
            client.stream("GET", url, headers=headers) as response,
        ):
            if response.status_code == 304:
                path.unlink(missing_ok=True)
                return FetchedFeed(url, None, previous.get("etag"), previous.get("last_modified"), None, 0)
            if response.status_code != 200:
                raise FeedFetchError(
                    f"{url}: the server answered {response.status_code} {response.reason_phrase}"
                )
            total = int(response.headers.get("content-length") or 0)
            # iter_bytes undoes a Content-Encoding only; a .gz feed file stays compressed on disk
            for chunk in response.iter_bytes(CHUNK_BYTES):
                out.write(chunk)
                digest.update(chunk)
                size += len(chunk)
                if progress is not None:
                    progress(size, max(total, size))
            etag, modified = response.headers.get("etag"), response.headers.get("last-modified")
    except httpx.HTTPError as exc:
        path.unlink(missing_ok=True)
        raise FeedFetchError(f"{url}: {type(exc).__name__}: {exc}") from None
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    sha = digest.hexdigest()
    if not force and previous.get("sha256") == sha:
        path.unlink(missing_ok=True)  # a server without validators sent the same bytes again
        return FetchedFeed(url, None, etag, modified, sha, size)
    return FetchedFeed(url, path, etag, modified, sha, size)


def remember(home: Path, fetched: FetchedFeed, *, products: int) -> None:
    """Record a successful import of `fetched` (its validators and digest) for the next fetch."""
    state = load_state(home)
    now = datetime.now(UTC).isoformat()
    state[fetched.url] = {
        "etag": fetched.etag,
        "last_modified": fetched.last_modified,
        "sha256": fetched.sha256,
        "size": fetched.size,
        "products": products,
        "imported_at": now,
        "checked_at": now,
    }
    atomic_write_text(_state_path(home), json.dumps(state, indent=2, sort_keys=True))


def mark_checked(home: Path, url: str) -> None:
    """Record that `url` was fetched and found unchanged, so `shoploop doctor` can tell a feed
    nobody has looked at for days (a stopped cron job) from one that simply did not change."""
    state = load_state(home)
    if url in state:
        state[url]["checked_at"] = datetime.now(UTC).isoformat()
        atomic_write_text(_state_path(home), json.dumps(state, indent=2, sort_keys=True))


def _suffix(url: str) -> str:
    """The URL path's suffixes (".xml", ".txt.gz"...), so the reader can tell the shape."""
    name = httpx.URL(url).path.rsplit("/", 1)[-1]
    suffixes = "".join(Path(name).suffixes)[-12:]
    return suffixes if suffixes.replace(".", "").isalnum() else ""
