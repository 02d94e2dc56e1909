"""`ApiSettings`: API keys with scopes, open reads, and the request limits, in one typed object.

Keys come from `SHOPLOOP_API_KEYS` ("key1:search,events;key2:admin") or, when that is unset,
from `<home>/api_keys.json` (`{"keys": {"<key>": ["search", "events"]}}`). `admin` implies
every other scope, so one merchant key can do everything; a shop's front end gets a key
with `events` (and `search` when reads are not public) only.

A shop's own pages on another origin call the API from the browser only if that origin is
allowed (`SHOPLOOP_ALLOWED_ORIGINS` or `shoploop serve --allow-origin`): browsers refuse a
cross-origin answer without the CORS headers, and by default none are sent.
"""

from __future__ import annotations

import json
import os
import secrets
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

Scope = Literal["search", "events", "catalog", "admin"]
SCOPES: tuple[str, ...] = ("search", "events", "catalog", "admin")
KEYS_FILENAME = "api_keys.json"
ENV_KEYS = "SHOPLOOP_API_KEYS"
ENV_ORIGINS = "SHOPLOOP_ALLOWED_ORIGINS"
_DEFAULT_PORTS = {"http": 80, "https": 443}


def parse_origin(text: str) -> str:
    """`text` as a browser writes it in the `Origin` header: `scheme://host[:port]`, lower-case,
    without a default port; `*` stays `*` (any origin). A path, query, user name or another
    scheme is refused with a ValueError saying what to drop, because the browser would never
    send it and the entry would silently match nothing."""
    value = text.strip()
    if value == "*":
        return value
    try:
        parts = urlsplit(value)
        port = parts.port
    except ValueError as err:
        raise ValueError(f"{value!r} is not an origin ({err})") from None
    if parts.scheme.lower() not in _DEFAULT_PORTS or not parts.hostname:
        raise ValueError(f"{value!r} is not an origin: expected http(s)://host[:port]")
    if "@" in parts.netloc:
        raise ValueError(f"{value!r}: an origin has no user name; drop the part before '@'")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError(
            f"{value!r}: an origin has no path, query or fragment; use {parts.scheme}://{parts.netloc}"
        )
    scheme, host = parts.scheme.lower(), parts.hostname.lower()
    if ":" in host:  # an IPv6 literal keeps its brackets
        host = f"[{host}]"
    if port is not None and port != _DEFAULT_PORTS[scheme]:
        host = f"{host}:{port}"
    return f"{scheme}://{host}"


def parse_origins(spec: str | Iterable[object]) -> tuple[str, ...]:
    """Origins -> their `parse_origin` forms, duplicates dropped. A string holds them comma- or
    space-separated (the environment variable's form)."""
    parts = spec.replace(",", " ").split() if isinstance(spec, str) else [str(v) for v in spec]
    return tuple(dict.fromkeys(parse_origin(part) for part in parts))


class ApiSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    # key -> scopes; never logged or rendered except the storefront's events-only key.
    keys: dict[str, frozenset[Scope]] = Field(default_factory=dict, repr=False)
    # Search and recommendation reads without a key (a public storefront); writes never.
    public_reads: bool = False
    # Limits. Body size guards memory before JSON parsing; the rest name the field in a 422.
    max_body_bytes: int = Field(default=2 * 1024 * 1024, ge=1024)
    max_batch: int = Field(default=1000, ge=1, le=100_000)
    max_query_length: int = Field(default=200, ge=1, le=10_000)
    max_k: int = Field(default=100, ge=1, le=1000)
    max_page: int = Field(default=50, ge=1)
    # Origins whose pages may call the API from the browser (CORS), as `parse_origin` writes
    # them; empty = same-origin only (the built-in storefront needs nothing here).
    allowed_origins: tuple[str, ...] = ()
    # The events-scoped key the storefront pages hand to their JS (None = storefront off).
    storefront_key: str | None = Field(default=None, repr=False)
    storefront: bool = True
    # Background retraining (shoploop.feedback.retrain) started by the lifespan when True.
    retrain: bool = False
    retrain_interval_seconds: float = Field(default=3600.0, gt=0)
    # How many recent served lists / events the live dashboard and /metrics gauges look at.
    live_window: int = Field(default=50_000, ge=100)
    # How often the server looks for catalog changes and model promotions/rollbacks written
    # by other processes (CLI, retraining job); 0 turns it off.
    store_sync_seconds: float = Field(default=5.0, ge=0)
    # How often the server applies the shop's retention policy (HOME/retention.json), if it
    # has one; 0 turns it off (then run `shoploop retention apply` from cron instead).
    retention_seconds: float = Field(default=3600.0, ge=0)  # `shoploop serve --retention-minutes`
    # The shop's product feed (Google Merchant Center format; a URL or a file), imported at start
    # and then every `catalog_feed_seconds` when it changed (`shoploop serve --catalog-feed`).
    catalog_feed: str | None = None
    catalog_feed_seconds: float = Field(default=3600.0, gt=0)
    # The feed is the whole catalog: remove products it no longer lists (refused for a feed that
    # keeps under half of the catalog, see data.merchant_feed.products_to_remove).
    catalog_feed_remove_missing: bool = False
    # Threads that run the (synchronous, CPU-bound) route handlers; None = CPU cores + 1. The
    # engine holds the GIL for most of a request, so more threads only add lock hand-offs
    # (spot runs of benchmarks/serving.py's search phase, 8 clients on 2 cores: 3 threads
    # 175 req/s, p99 69 ms; the framework's default of 40: 145 req/s, p99 118 ms).
    worker_threads: int | None = Field(default=None, ge=1, le=1000)

    def handler_threads(self) -> int:
        return self.worker_threads or (os.cpu_count() or 1) + 1

    @field_validator("keys")
    @classmethod
    def _keys_valid(cls, value: dict[str, frozenset[str]]) -> dict[str, frozenset[str]]:
        for key, scopes in value.items():
            if len(key) < 8:
                raise ValueError("keys: every API key must be at least 8 characters")
            if not scopes:
                raise ValueError("keys: every API key needs at least one scope")
        return value

    @field_validator("allowed_origins", mode="before")
    @classmethod
    def _origins_valid(cls, value: object) -> tuple[str, ...]:
        if not isinstance(value, str | list | tuple | set | frozenset):
            raise ValueError("allowed_origins: expected a list of origins such as https://shop.example")
        try:
            return parse_origins(value)
        except ValueError as err:
            raise ValueError(f"allowed_origins: {err}") from None

    def scopes_of(self, key: str) -> frozenset[str] | None:
        """Constant-time lookup: every stored key is compared, so timing says nothing."""
        import hmac

        found: frozenset[str] | None = None
        given = key.encode()
        for stored, scopes in self.keys.items():
            if hmac.compare_digest(stored.encode(), given):
                found = scopes
        return found

    def key_with(self, scope: str) -> str | None:
        """A key holding `scope` exactly or through admin (used by the demo and the storefront)."""
        for key, scopes in self.keys.items():
            if scope in scopes:
                return key
        for key, scopes in self.keys.items():
            if "admin" in scopes:
                return key
        return None


def parse_keys(spec: str) -> dict[str, frozenset[str]]:
    """`"k1:search,events;k2:admin"` -> {"k1": {"search", "events"}, "k2": {"admin"}}."""
    out: dict[str, frozenset[str]] = {}
    for part in spec.split(";"):
        part = part.strip()
        if not part:
            continue
        key, sep, scopes = part.partition(":")
        if not sep or not key.strip():
            raise ValueError(f"{ENV_KEYS}: expected 'key:scope,scope', got {part[:4]!r}...")
        names = frozenset(s.strip() for s in scopes.split(",") if s.strip())
        unknown = names - set(SCOPES)
        if unknown:
            raise ValueError(f"{ENV_KEYS}: unknown scope(s) {sorted(unknown)}; known: {list(SCOPES)}")
        out[key.strip()] = names
    return out


def load_keys(home: Path | None, env: Mapping[str, str] | None = None) -> dict[str, frozenset[str]]:
    env = os.environ if env is None else env
    if env.get(ENV_KEYS):
        return parse_keys(env[ENV_KEYS])
    if home is not None and (home / KEYS_FILENAME).is_file():
        raw = json.loads((home / KEYS_FILENAME).read_text(encoding="utf-8"))
        return {k: frozenset(v) for k, v in raw.get("keys", {}).items()}
    return {}


def generate_demo_keys(home: Path) -> dict[str, frozenset[str]]:
    """Create `<home>/api_keys.json` with one key per role (kept if it exists), readable by owner only."""
    path = home / KEYS_FILENAME
    if path.is_file():
        raw = json.loads(path.read_text(encoding="utf-8"))
        return {k: frozenset(v) for k, v in raw.get("keys", {}).items()}
    roles = {"storefront": ["events"], "search": ["search"], "catalog": ["catalog"], "admin": ["admin"]}
    keys = {f"sl_{role}_{secrets.token_urlsafe(18)}": scopes for role, scopes in roles.items()}
    home.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"keys": keys}, indent=1), encoding="utf-8")
    path.chmod(0o600)
    return {k: frozenset(v) for k, v in keys.items()}


def settings_for_home(home: Path | None, **overrides: object) -> ApiSettings:
    """Settings with keys from the environment or the home's key file; the storefront key is the
    first events-only key (a front end must never hold more than it needs)."""
    keys = load_keys(home)
    storefront_key = next((k for k, s in keys.items() if s == frozenset({"events"})), None)
    values: dict[str, object] = {"keys": keys, "storefront_key": storefront_key}
    if os.environ.get(ENV_ORIGINS):
        values["allowed_origins"] = os.environ[ENV_ORIGINS]
    values.update(overrides)
    return ApiSettings(**values)  # type: ignore[arg-type]
