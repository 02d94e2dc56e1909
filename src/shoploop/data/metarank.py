"""Bring a shop's history over from Metarank: its JSON event format, converted to shoploop rows.

A shop moving from Metarank keeps its past: the item metadata becomes the catalog, each
`ranking` event (what a visitor was shown, in order) becomes an impression with positions,
and each `interaction` (click, purchase, ...) becomes the matching shoploop event, joined to
its ranking by the ranking's id, as shoploop joins feedback to a served list by request id.
The format is Metarank's documented event schema (`item` / `user` / `ranking` /
`interaction`, each with `id`, `timestamp` and a list of named `fields`).

The conversion produces plain row dicts that then go through the ordinary importers
(`import_catalog`, `import_events`): the same validation, cleaning, quarantine and idempotency
as any other file. A line that cannot be converted becomes a `SourceRow` with the reason, so
it lands in the quarantine with its raw text rather than being dropped. `user` metadata
events have no place in shoploop (it keeps no shopper attributes); they are counted and
reported as skipped, never silently lost.

What comes from where:

* item → `Product`: `title` (or `name`), `price`, `brand` (or `vendor` / `manufacturer`),
  `category` / `categories` (a list, or one string split on ">" or "/"), `description`,
  `in_stock` (or `available`); every other scalar field becomes an attribute.
* ranking → `impression`: `request_id` = the ranking's id, items in the order given with
  their `relevancy` as the score; `query` from the `query` field; the surface from the
  `source` field when it is a valid surface name, else "search" when there is a query and
  "home" when there is none. No propensities: Metarank does not log them.
* interaction → by `type`, through a mapping (default below; `--interaction like=click`
  adds to it): `position` is the item's place in its ranking when that ranking came earlier
  in the file; purchases take `count` / `quantity` and `price` fields, or the item's catalog
  price; ratings take a `rating` (or `value`) field.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from shoploop.data.readers import SourceRow, read_rows
from shoploop.domain.events import ANONYMOUS_USER, EVENT_TYPES

# Metarank interaction type -> shoploop event type. Shops name their interactions freely in
# Metarank's config; these are the common names, and the importer takes more.
DEFAULT_INTERACTIONS: Mapping[str, str] = {
    "click": "click",
    "view": "view",
    "purchase": "purchase",
    "buy": "purchase",
    "add-to-cart": "add_to_cart",
    "add_to_cart": "add_to_cart",
    "cart": "add_to_cart",
    "remove-from-cart": "remove_from_cart",
    "remove_from_cart": "remove_from_cart",
    "rating": "rating",
    "dislike": "dislike",
}
# Interactions carry an item, so these are the shoploop types one can map to.
INTERACTION_TARGETS = tuple(t for t in EVENT_TYPES if t not in ("search", "impression"))
_SURFACE = re.compile(r"[a-z][a-z0-9_\-]{0,63}")  # shoploop's surface names
_RANKINGS_KEPT = 200_000  # positions of the most recent rankings; interactions follow within minutes


class MetarankError(ValueError):
    """A line that cannot become a shoploop row; the message names the field."""


def parse_interaction_map(items: list[str] | None) -> dict[str, str]:
    """`NAME=TYPE` items (`like=click`) on top of `DEFAULT_INTERACTIONS`."""
    mapping = dict(DEFAULT_INTERACTIONS)
    for item in items or []:
        name, sep, target = item.partition("=")
        name, target = name.strip(), target.strip()
        if not sep or not name or not target:
            raise MetarankError(f"--interaction: expected NAME=TYPE such as like=click, got {item!r}")
        if target not in INTERACTION_TARGETS:
            raise MetarankError(
                f"--interaction {name}: {target!r} is not a shoploop event type "
                f"({', '.join(INTERACTION_TARGETS)})"
            )
        mapping[name] = target
    return mapping


def _bad_timestamp(value: Any) -> MetarankError:
    return MetarankError(f"timestamp: expected epoch milliseconds or ISO 8601, got {value!r}")


def _timestamp(value: Any) -> str:
    """Metarank timestamps: milliseconds since the epoch as a string or a number, or ISO 8601."""
    if isinstance(value, bool) or value is None:
        raise _bad_timestamp(value)
    if isinstance(value, int | float) or (isinstance(value, str) and value.strip().isdigit()):
        try:
            return datetime.fromtimestamp(int(value) / 1000, tz=UTC).isoformat()
        except (OverflowError, OSError, ValueError):  # beyond the calendar, NaN, digits like "²"
            raise _bad_timestamp(value) from None
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value.strip())
        except ValueError:
            raise _bad_timestamp(value) from None
        return (parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)).isoformat()
    raise _bad_timestamp(value)


def _fields(raw: Mapping[str, Any]) -> dict[str, Any]:
    fields = raw.get("fields") or []
    if not isinstance(fields, list) or not all(isinstance(f, dict) and "name" in f for f in fields):
        raise MetarankError('fields: expected a list of {"name": ..., "value": ...}')
    return {str(f["name"]): f.get("value") for f in fields}


def _required(raw: Mapping[str, Any], name: str) -> str:
    value = raw.get(name)
    if value is None or not str(value).strip():
        raise MetarankError(f"{name}: required for a Metarank {raw.get('event')} event")
    return str(value)


def _category_path(value: Any) -> list[str]:
    if isinstance(value, list):
        return [str(v).strip() for v in value if str(v).strip()]
    text = str(value)
    sep = ">" if ">" in text else "/"
    return [part.strip() for part in text.split(sep) if part.strip()]


_ITEM_FIELDS = {
    "title": ("title", "name"),
    "price": ("price",),
    "brand": ("brand", "vendor", "manufacturer"),
    "description": ("description",),
    "in_stock": ("in_stock", "available"),
}


def item_row(raw: Mapping[str, Any]) -> dict[str, Any]:
    """A Metarank `item` event as a catalog row (validated later by the catalog importer)."""
    fields = _fields(raw)
    row: dict[str, Any] = {"item_id": _required(raw, "item"), "updated_at": _timestamp(raw.get("timestamp"))}
    used: set[str] = set()
    for ours, theirs in _ITEM_FIELDS.items():
        for name in theirs:
            if name in fields:
                row[ours] = fields[name]
                used.add(name)
                break
    for name in ("category", "categories"):
        if name in fields:
            row["category_path"] = _category_path(fields[name])
            used.add(name)
            break
    attributes = {
        k: v
        for k, v in fields.items()
        if k not in used and isinstance(v, str | int | float | bool) and v is not None
    }
    if attributes:
        row["attributes"] = attributes
    return row


@dataclass
class MetarankEvents:
    """Converts Metarank ranking / interaction events to shoploop event rows, in file order
    (an interaction's position comes from the ranking read before it)."""

    interactions: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_INTERACTIONS))
    # The catalog's price of an item, for purchases that do not carry one.
    price_of: Callable[[str], float | None] = lambda item: None
    _positions: OrderedDict[str, dict[str, int]] = field(default_factory=OrderedDict)

    def row(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        kind = raw.get("event")
        if kind == "ranking":
            return self._ranking(raw)
        if kind == "interaction":
            return self._interaction(raw)
        raise MetarankError(f"event: expected ranking or interaction here, got {kind!r}")

    @staticmethod
    def _who(raw: Mapping[str, Any]) -> dict[str, Any]:
        user = raw.get("user")
        session = raw.get("session")
        return {
            "user_id": str(user) if user not in (None, "") else ANONYMOUS_USER,
            **({"session_id": str(session)} if session not in (None, "") else {}),
        }

    def _ranking(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        ranking_id = _required(raw, "id")
        fields = _fields(raw)
        items = raw.get("items")
        if not isinstance(items, list) or not items:
            raise MetarankError("items: a ranking event needs a non-empty list of items")
        shown = []
        for position, item in enumerate(items, start=1):
            if not isinstance(item, dict) or not item.get("id"):
                raise MetarankError(f"items.{position - 1}.id: required")
            entry: dict[str, Any] = {"item_id": str(item["id"]), "position": position}
            if isinstance(item.get("relevancy"), int | float) and not isinstance(item.get("relevancy"), bool):
                entry["score"] = float(item["relevancy"])
            shown.append(entry)
        query = fields.get("query")
        source = str(fields.get("source") or "").strip().lower()
        surface = source if _SURFACE.fullmatch(source) else None
        self._positions[ranking_id] = {e["item_id"]: e["position"] for e in reversed(shown)}
        while len(self._positions) > _RANKINGS_KEPT:
            self._positions.popitem(last=False)
        return {
            "type": "impression",
            "event_id": ranking_id,
            "request_id": ranking_id,
            "timestamp": _timestamp(raw.get("timestamp")),
            **self._who(raw),
            "surface": surface or ("search" if query else "home"),
            **({"query": str(query)} if query else {}),
            "items": shown,
            "context": {"source": "metarank"},
        }

    def _interaction(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        name = _required(raw, "type")
        ours = self.interactions.get(name)
        if ours is None:
            raise MetarankError(
                f"type: no shoploop event type for the Metarank interaction {name!r}; "
                f"map it with --interaction {name}=click (or another type)"
            )
        item = _required(raw, "item")
        fields = _fields(raw)
        row: dict[str, Any] = {
            "type": ours,
            "event_id": _required(raw, "id"),
            "timestamp": _timestamp(raw.get("timestamp")),
            **self._who(raw),
            "context": {"source": "metarank", "interaction": name},
        }
        ranking = raw.get("ranking")
        if ranking:
            row["request_id"] = str(ranking)
        if ours == "purchase":
            price = fields["price"] if "price" in fields else self.price_of(item)
            if price is None:
                raise MetarankError(
                    f"price: a purchase needs a price; the interaction has no price field and item {item!r} "
                    "has no catalog price"
                )
            quantity = fields.get("count", fields.get("quantity", 1))
            row["items"] = [{"item_id": item, "quantity": quantity, "price": price}]
            return row
        row["item_id"] = item
        if ours == "click" and ranking:
            position = self._positions.get(str(ranking), {}).get(item)
            if position is not None:
                row["position"] = position
        elif ours in ("add_to_cart", "remove_from_cart"):
            row["quantity"] = fields.get("count", fields.get("quantity", 1))
            if ours == "add_to_cart" and "price" in fields:
                row["price"] = fields["price"]
        elif ours == "rating":
            rating = fields.get("rating", fields.get("value"))
            if rating is None:
                raise MetarankError("rating: a rating interaction needs a rating (or value) field")
            row["rating"] = rating
        return row


@dataclass
class MetarankFile:
    """One Metarank event dump (JSON lines, optionally .gz), read in two passes: the catalog
    first (so events can be checked against it), then the events in file order."""

    path: Path
    interactions: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_INTERACTIONS))
    user_events: int = 0  # `user` metadata events seen in the last events pass (not imported)

    def _lines(self) -> Iterator[SourceRow]:
        yield from read_rows(self.path, fmt="jsonl")

    def catalog_rows(self) -> Iterator[SourceRow]:
        for line in self._lines():
            if line.error is not None or line.raw.get("event") != "item":
                continue  # bad lines are reported once, by the events pass
            try:
                yield SourceRow(line.row_number, item_row(line.raw))
            except MetarankError as err:
                yield SourceRow(line.row_number, dict(line.raw), str(err))  # kept whole in the quarantine

    def event_rows(self, price_of: Callable[[str], float | None] | None = None) -> Iterator[SourceRow]:
        converter = MetarankEvents(interactions=self.interactions, price_of=price_of or (lambda item: None))
        self.user_events = 0
        for line in self._lines():
            if line.error is not None:
                yield line
                continue
            kind = line.raw.get("event")
            if kind == "item":
                continue
            if kind == "user":
                self.user_events += 1
                continue
            try:
                yield SourceRow(line.row_number, converter.row(line.raw))
            except MetarankError as err:
                yield SourceRow(line.row_number, dict(line.raw), str(err))  # kept whole in the quarantine
