"""Read a shop's Google Merchant Center product feed as its catalog.

Almost every shop platform (Shopify, WooCommerce, Magento, BigCommerce...) can already export
this feed, so it is the cheapest way for a shop to hand shoploop its whole catalog and keep it
current: point `shoploop import merchant` at the same file the shop sends Google.

Accepted shapes (Google's documented feed formats):

* XML: RSS 2.0 (`<rss><channel><item>`) or Atom 1.0 (`<feed><entry>`), with the attributes in
  the `g:` namespace (`http://base.google.com/ns/1.0`) or without a namespace;
* delimited text (`.tsv`/`.txt` tab-separated, `.csv` comma-separated) whose header holds the
  attribute names (`id`, `title`, `price`, ...; a `g:` prefix is tolerated).

What goes where:

* `id` → item_id; `title`; `description`;
* `price` ("15.00 USD") → price and currency; a `sale_price` replaces it while its
  `sale_price_effective_date` ("start/end", ISO 8601) covers the import time, or when it has
  no such date; the regular price is kept as the attribute `regular_price`;
* `availability`: `in_stock` (or "in stock") → in stock; `out_of_stock`, `preorder` and
  `backorder` → not in stock (none can be shipped today); the value itself stays an attribute;
* `product_type` ("Home > Kitchen > Knives"; the first one when repeated) → category_path,
  else a textual `google_product_category`; a numeric Google category id is only an attribute;
* `brand`; `updated_at` is not in the format, so the importer stamps nothing;
* every other attribute with one value (gtin, mpn, color, size, link, image_link, condition,
  item_group_id, custom_label_0...) → attributes; nested groups (`shipping`, `tax`) and
  repeated values other than those above are left out and counted per name in `skipped`.

A product that cannot be converted (no id, an unreadable price) becomes a row with the
reason, naming the attribute, so it lands in the quarantine with what it held; the
ordinary catalog importer does the rest (validation, idempotent upserts, reports).
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from collections import Counter
from collections.abc import Collection, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from shoploop.data.feed_fetch import FetchedFeed
from shoploop.data.readers import ReaderError, SourceRow, open_binary, read_rows

GOOGLE_NS = "http://base.google.com/ns/1.0"
IN_STOCK = frozenset({"in_stock", "in stock"})
KNOWN_AVAILABILITY = IN_STOCK | {"out_of_stock", "out of stock", "preorder", "backorder"}
# Attributes that map onto Product fields (or decide them) instead of becoming attributes.
_MAPPED = frozenset(
    {
        "id",
        "title",
        "description",
        "price",
        "sale_price",
        "sale_price_effective_date",
        "availability",
        "product_type",
        "google_product_category",
        "brand",
    }
)
_AMOUNT = re.compile(r"^(?P<num>\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:[.,]\d+)?)$")
_CURRENCY = re.compile(r"^[A-Za-z]{3}$")


class MerchantFeedError(ValueError):
    """One product of the feed could not be converted; the text names the attribute."""


def parse_price(text: str, field: str = "price") -> tuple[float, str]:
    """ "15.00 USD" (or "USD 15.00", "1,299.00 USD", "15,00 EUR") → (15.0, "USD").

    A comma is a thousands separator when groups of three digits follow it and a decimal
    comma when one or two digits do. Raises `MerchantFeedError` naming `field`."""
    parts = text.strip().split()
    if len(parts) != 2:
        raise MerchantFeedError(f"{field}: {text!r} is not an amount and a currency, e.g. '15.00 USD'")
    amount, currency = (parts[1], parts[0]) if _CURRENCY.match(parts[0]) else parts
    if not _CURRENCY.match(currency):
        raise MerchantFeedError(f"{field}: {text!r} has no three-letter currency code, e.g. '15.00 USD'")
    match = _AMOUNT.match(amount)
    if match is None:
        raise MerchantFeedError(f"{field}: {amount!r} in {text!r} is not a number")
    if "," in amount and "." not in amount and re.search(r",\d{1,2}$", amount):
        amount = amount.replace(",", ".")  # decimal comma
    value = float(amount.replace(",", ""))
    if value <= 0:
        raise MerchantFeedError(f"{field}: {text!r} must be above zero")
    return value, currency.upper()


def sale_applies(window: str | None, now: datetime) -> bool:
    """Whether a sale price with this `sale_price_effective_date` ("start/end") holds at `now`.
    No window: the sale holds. An unreadable window raises (the shop meant something)."""
    if not window or not window.strip():
        return True
    start_text, sep, end_text = window.strip().partition("/")
    if not sep:
        raise MerchantFeedError(
            f"sale_price_effective_date: {window!r} is not 'start/end', e.g. "
            "'2026-12-01T00:00+01:00/2026-12-24T23:59+01:00'"
        )
    try:
        start, end = (datetime.fromisoformat(t.strip()) for t in (start_text, end_text))
    except ValueError:
        raise MerchantFeedError(f"sale_price_effective_date: {window!r} is not two ISO 8601 times") from None
    start, end = (t if t.tzinfo else t.replace(tzinfo=UTC) for t in (start, end))
    return start <= now <= end


def _first(value: str | list[str] | None) -> str | None:
    if isinstance(value, list):
        value = next((v for v in value if v.strip()), None)
    return value.strip() if value is not None and value.strip() else None


def product_row(
    item: Mapping[str, str | list[str]], *, now: datetime | None = None, skipped: Counter[str] | None = None
) -> dict[str, Any]:
    """One feed product (attribute name without namespace → text, or list when repeated) as a
    row of our product fields. Raises `MerchantFeedError` naming the attribute at fault."""
    now = now or datetime.now(UTC)
    item_id = _first(item.get("id"))
    if item_id is None:
        raise MerchantFeedError("id: every product in the feed needs an id")
    row: dict[str, Any] = {"item_id": item_id}
    for ours in ("title", "description", "brand"):
        text = _first(item.get(ours))
        if text is not None:
            row[ours] = text
    attributes: dict[str, str] = {}
    price_text = _first(item.get("price"))
    if price_text is not None:
        row["price"], row["currency"] = parse_price(price_text)
    sale_text = _first(item.get("sale_price"))
    if sale_text is not None and sale_applies(_first(item.get("sale_price_effective_date")), now):
        sale, currency = parse_price(sale_text, "sale_price")
        if "price" in row:
            attributes["regular_price"] = price_text or ""
        row["price"], row["currency"] = sale, currency
    availability = _first(item.get("availability"))
    if availability is not None:
        key = availability.lower().replace("-", "_")
        if key not in KNOWN_AVAILABILITY:
            raise MerchantFeedError(
                f"availability: {availability!r} is not one of in_stock, out_of_stock, preorder, backorder"
            )
        row["in_stock"] = key in IN_STOCK
        attributes["availability"] = key.replace(" ", "_")
    path = _first(item.get("product_type"))
    google_category = _first(item.get("google_product_category"))
    if google_category is not None:
        attributes["google_product_category"] = google_category
    if path is None and google_category is not None and not google_category.isdigit():
        path = google_category
    if path is not None:
        row["category_path"] = path
    for name, value in item.items():
        if name in _MAPPED:
            continue
        if isinstance(value, str) and value.strip():
            attributes[name] = value.strip()
        elif skipped is not None and value:
            skipped[name] += 1
    if attributes:
        row["attributes"] = attributes
    return row


def products_to_remove(
    catalog_ids: Iterable[str], listed: Collection[str], *, min_share: float = 0.5
) -> list[str]:
    """The catalog's products that the feed no longer lists, for a shop whose feed is its whole
    catalog. A feed that keeps fewer than `min_share` of the catalog's products is far more
    likely cut short or exported with a filter than a shop that stopped selling most of what it
    had, so that raises `MerchantFeedError` instead of emptying the shop."""
    catalog = list(catalog_ids)
    missing = sorted(set(catalog) - set(listed))
    if catalog and missing and (len(catalog) - len(missing)) / len(catalog) < min_share:
        kept = len(catalog) - len(missing)
        raise MerchantFeedError(
            f"the feed lists {kept:,} of the catalog's {len(catalog):,} products "
            f"({kept / len(catalog):.0%}, below --min-share {min_share:g}): refusing to remove "
            f"{len(missing):,}; check the feed, or lower --min-share if the shop really changed that much"
        )
    return missing


def _as_text(fields: Mapping[str, str | list[str]]) -> dict[str, str]:
    """A product as the quarantine keeps it: every attribute as text (repeats joined)."""
    return {k: v if isinstance(v, str) else "; ".join(v) for k, v in fields.items()}


def _local(tag: str) -> str:
    """'{http://base.google.com/ns/1.0}price' → 'price'; 'g:price' (text headers) → 'price'."""
    return tag.rsplit("}", 1)[-1].split(":", 1)[-1].strip().lower()


def _item_fields(element: ET.Element, skipped: Counter[str]) -> dict[str, str | list[str]]:
    fields: dict[str, str | list[str]] = {}
    for child in element:
        name = _local(child.tag)
        if name == "link" and child.get("href"):  # Atom: <link href="..."/>
            text = child.get("href", "")
        elif len(child):  # a nested group (shipping, tax, ...): no product field holds it
            skipped[name] += 1
            continue
        else:
            text = (child.text or "").strip()
        if name in fields:
            previous = fields[name]
            fields[name] = [*previous, text] if isinstance(previous, list) else [previous, text]
        else:
            fields[name] = text
    return fields


class MerchantFeed:
    """A feed file; `catalog_rows()` streams its products as `SourceRow`s for `import_catalog`.
    After a pass, `products` counts the products read, `listed` holds every id the feed names
    (including products that failed to convert: the shop still sells them) with the number of
    the product that first named it, and `skipped` counts the attribute values left out. A
    repeated id is quarantined, the first product with it kept."""

    def __init__(self, path: Path, *, now: datetime | None = None) -> None:
        self.path = Path(path)
        self.now = now or datetime.now(UTC)
        self.products = 0
        self.listed: dict[str, int] = {}  # id -> the number of the product that first listed it
        self.skipped: Counter[str] = Counter()
        if not self.path.is_file():
            raise FileNotFoundError(f"file not found: {self.path}")

    def _suffix(self) -> str:
        """The name's last suffix under a .gz: ".xml", ".txt", ".csv"... ("" for none)."""
        suffixes = [s.lower() for s in self.path.suffixes if s.lower() != ".gz"]
        return suffixes[-1] if suffixes else ""

    def is_xml(self) -> bool:
        if self._suffix() == ".xml":
            return True
        with open_binary(self.path) as handle:
            return handle.read(512).lstrip().startswith(b"<")

    def catalog_rows(self) -> Iterator[SourceRow]:
        self.products, self.listed, self.skipped = 0, {}, Counter()
        yield from self._xml_rows() if self.is_xml() else self._text_rows()

    def _convert(self, number: int, fields: dict[str, str | list[str]]) -> SourceRow:
        self.products += 1
        item_id = _first(fields.get("id"))
        if item_id is not None and item_id in self.listed:
            # Merchant Center refuses a feed's repeated ids too. Keeping the first makes the
            # import deterministic; taking both would flip the product between two versions on
            # every import and hide that the feed is wrong.
            first = self.listed[item_id]
            return SourceRow(
                number, _as_text(fields), f"id: {item_id!r} is listed again (first as product {first})"
            )
        if item_id is not None:
            self.listed[item_id] = number
        try:
            return SourceRow(number, product_row(fields, now=self.now, skipped=self.skipped))
        except MerchantFeedError as err:
            return SourceRow(number, _as_text(fields), str(err))  # kept whole in the quarantine

    def _xml_rows(self) -> Iterator[SourceRow]:
        number = 0
        with open_binary(self.path) as handle:
            # iterparse streams: each product is converted and cleared as soon as it closes, so
            # memory stays flat for a feed of any size. Python's expat refuses external
            # entities and caps entity expansion, so a hostile feed cannot read files or explode.
            events = ET.iterparse(handle, events=("end",))
            try:
                for _, element in events:
                    if _local(element.tag) not in ("item", "entry"):
                        continue
                    number += 1
                    yield self._convert(number, _item_fields(element, self.skipped))
                    element.clear()
            except ET.ParseError as exc:
                raise ReaderError(
                    f"{self.path.name}: not well-formed XML after product {number}: {exc}"
                ) from None

    def _text_rows(self) -> Iterator[SourceRow]:
        # Google's text feeds are tab-separated, usually named .txt or .tsv; .csv means commas
        delimiter = "," if self._suffix() == ".csv" else "\t"
        for row in read_rows(self.path, fmt="csv", delimiter=delimiter):
            if row.error is not None:
                self.products += 1
                yield row
                continue
            fields = {_local(k): v for k, v in row.raw.items() if isinstance(v, str)}
            yield self._convert(row.row_number, fields)


# ------------------------------------------------------------------------- keeping in sync


@dataclass
class FeedSync:
    """What one `sync_feed` did: nothing (`unchanged`), or an import with its report."""

    source: str
    unchanged: bool = False
    report: Any = None  # data.report.ImportReport
    removed: int = 0
    products: int = 0
    skipped: Counter[str] = field(default_factory=Counter)


def sync_feed(
    stores: Any,
    source: str,
    *,
    remove_missing: bool = False,
    min_share: float = 0.5,
    force: bool = False,
    progress: bool = False,
    fetched: FetchedFeed | None = None,
) -> FeedSync:
    """Import the feed at `source` (a file, or an http(s) URL fetched only when it changed) into
    `stores.catalog`; with `remove_missing`, remove the products it no longer lists (refused for
    a feed that keeps under `min_share` of the catalog). The one code path of `shoploop import
    merchant` and the server's catalog-feed job. Raises FeedFetchError, ReaderError,
    MerchantFeedError or OSError; a URL's state is recorded only after a successful import.
    `fetched`: the URL already downloaded by the caller (the CLI shows the download's own
    progress bar before the import's)."""
    from shoploop.data.feed_fetch import fetch_feed, is_url, mark_checked, remember
    from shoploop.data.ingest import import_catalog

    if is_url(source):
        fetched = fetched or fetch_feed(source, stores.home, force=force)
        if fetched.path is None:
            mark_checked(stores.home, source)
            return FeedSync(source, unchanged=True)
        path = fetched.path
    else:
        path = Path(source)
    try:
        feed = MerchantFeed(path)
        report = import_catalog(feed.catalog_rows(), stores, source=Path(source).name, progress=progress)
        missing = (
            products_to_remove(
                (p.item_id for p in stores.catalog.iter_products()), feed.listed, min_share=min_share
            )
            if remove_missing
            else []
        )
    finally:
        if fetched is not None and fetched.path is not None:
            fetched.path.unlink(missing_ok=True)
    if missing:
        stores.catalog.delete(missing)
    if fetched is not None:
        remember(stores.home, fetched, products=feed.products)
    return FeedSync(source, report=report, removed=len(missing), products=feed.products, skipped=feed.skipped)
