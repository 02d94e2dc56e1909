"""Read a Shopify product export (Products → Export → CSV) as the catalog.

Most small shops run on Shopify, and its product CSV is the one file every such shop can
produce without an app. Its shape is not one row per product: a product's first row carries
the product (title, description, vendor...) and its first variant, and each further row with
the same handle adds a variant (or only an image). This module folds those rows into one
shoploop product per handle, and reads both header sets Shopify has used ("Handle", "Body
(HTML)", "Variant Price", "Variant Inventory Qty" and the newer "URL handle", "Description",
"Price", "Inventory quantity"), matched without regard to case.

What goes where (one product per handle, the handle is the item id):

* Title; the description with its HTML reduced to text; Vendor → brand;
* Product category (Shopify's taxonomy path, "a > b > c") → category path, else Type;
* price = the lowest variant price (in `currency`: the export carries none); when a
  variant's compare-at price is higher, it is kept as the attribute `regular_price`;
* in stock when any variant can be sold: inventory not tracked, a quantity above 0, or
  "continue selling when out of stock";
* Type, Tags, the first SKU, barcode (→ `gtin`) and image, and each option's values
  ("Color": "Red, Blue") → attributes; with several variants, all their SKUs (`skus`), which
  is how `shopify_orders` finds the product an order line names;
* a product that is not active (Status draft / archived) or not published is left out and
  counted, since the shop does not sell it; a product whose price cannot be read is
  quarantined with the column named.
"""

from __future__ import annotations

import html
import re
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from shoploop.data.readers import SourceRow, read_rows

# our key -> the header names Shopify has used for it (compared lower-cased)
COLUMNS: Mapping[str, tuple[str, ...]] = {
    "handle": ("handle", "url handle"),
    "title": ("title",),
    "description": ("body (html)", "description"),
    "vendor": ("vendor",),
    "category": ("product category", "standard product type"),
    "type": ("type", "custom product type"),
    "tags": ("tags",),
    "published": ("published", "published on online store"),
    "status": ("status",),
    "price": ("variant price", "price"),
    "compare_at": ("variant compare at price", "compare-at price"),
    "quantity": ("variant inventory qty", "inventory quantity"),
    "tracker": ("variant inventory tracker", "inventory tracker"),
    "policy": ("variant inventory policy", "continue selling when out of stock"),
    "sku": ("variant sku", "sku"),
    "barcode": ("variant barcode", "barcode"),
    "image": ("image src", "product image url"),
}
_OPTION = re.compile(r"^option([123]) (name|value)$")
_TAG = re.compile(r"<[^>]+>")
_SPACE = re.compile(r"\s+")


class ShopifyRowError(ValueError):
    """A product of the export cannot be converted; the text names the column."""


def html_to_text(text: str) -> str:
    """Product descriptions are HTML; search wants the words."""
    return _SPACE.sub(" ", html.unescape(_TAG.sub(" ", text))).strip()


def _number(text: str, column: str, row: int) -> float:
    try:
        return float(text.replace(",", ""))
    except ValueError:
        raise ShopifyRowError(f"{column}: {text!r} is not a number (row {row})") from None


@dataclass
class RowGroup:
    """The rows of one product (or order) of a Shopify export; `first_row` is the first's number."""

    first_row: int
    rows: list[dict[str, str]] = field(default_factory=list)


def grouped_rows(
    path: Path, key_of: Callable[[Mapping[str, str]], str], column: str, what: str
) -> Iterator[RowGroup | SourceRow]:
    """A Shopify export's rows (headers lower-cased, values stripped) gathered into one group per
    key (a product's handle, an order's name). Shopify writes a group's rows together; an
    unreadable row, a row without its key, or a key that comes back after other groups (it would
    import as two versions of one product, the later silently winning) is yielded as a
    `SourceRow` with the reason."""
    current: RowGroup | None = None
    finished: dict[str, int] = {}  # key -> its group's first row
    for row in read_rows(path, fmt="csv"):
        if row.error is not None:
            yield row
            continue
        fields = {k.strip().lower(): (v or "").strip() for k, v in row.raw.items() if isinstance(k, str)}
        key = key_of(fields)
        if not key:
            yield SourceRow(row.row_number, row.raw, f"{column}: empty; every row must name its {what}")
            continue
        if current is not None and key_of(current.rows[0]) != key:
            finished[key_of(current.rows[0])] = current.first_row
            yield current
            current = None
        if current is None and key in finished:
            error = f"{column}: {key!r} appears again after other {what}s (its {what} starts at row "
            yield SourceRow(row.row_number, row.raw, error + f"{finished[key]})")
            continue
        if current is None:
            current = RowGroup(row.row_number)
        current.rows.append(fields)
    if current is not None:
        yield current


class ShopifyExport:
    """A product export; `catalog_rows()` streams one `SourceRow` per product for
    `import_catalog`. Afterwards `products` counts the handles read and `left_out` the products
    not imported, by reason ("draft", "archived", "unpublished")."""

    def __init__(self, path: Path, *, currency: str = "USD") -> None:
        self.path = Path(path)
        self.currency = currency.upper()
        self.products = 0
        self.left_out: Counter[str] = Counter()
        if not self.path.is_file():
            raise FileNotFoundError(f"file not found: {self.path}")

    def catalog_rows(self) -> Iterator[SourceRow]:
        self.products, self.left_out = 0, Counter()
        for group in grouped_rows(self.path, lambda f: _get(f, "handle"), "Handle", "product"):
            if isinstance(group, SourceRow):
                yield group
            else:
                yield from self._finish(group)

    def _finish(self, product: RowGroup) -> Iterator[SourceRow]:
        self.products += 1
        first = product.rows[0]
        status = _get(first, "status").lower()
        if status and status != "active":
            self.left_out[status] += 1
            return
        if _get(first, "published").lower() == "false":
            self.left_out["unpublished"] += 1
            return
        try:
            yield SourceRow(product.first_row, self._convert(product))
        except ShopifyRowError as err:
            yield SourceRow(product.first_row, dict(first), str(err))

    def _convert(self, product: RowGroup) -> dict[str, Any]:
        first = product.rows[0]
        out: dict[str, Any] = {"item_id": _get(first, "handle"), "currency": self.currency}
        if title := _get(first, "title"):
            out["title"] = title
        if description := html_to_text(_get(first, "description")):
            out["description"] = description[:20_000]
        if vendor := _get(first, "vendor"):
            out["brand"] = vendor
        category = _get(first, "category") or _get(first, "type")
        if category:
            out["category_path"] = category
        attributes: dict[str, str] = {}
        prices: list[float] = []
        regular: list[float] = []
        sellable = False
        variants = 0
        skus: list[str] = []
        options: dict[str, list[str]] = {}
        names = {n: first.get(f"option{n} name", "") for n in "123"}
        for number, fields in enumerate(product.rows):
            row = product.first_row + number
            price_text = _get(fields, "price")
            if not price_text:
                continue  # an image-only row
            variants += 1
            price = _number(price_text, "Variant Price", row)
            prices.append(price)
            if compare := _get(fields, "compare_at"):
                regular.append(_number(compare, "Variant Compare At Price", row))
            sellable = sellable or _can_sell(fields, row)
            if (sku := _get(fields, "sku")) and sku not in skus:
                skus.append(sku)
            for key, value in fields.items():
                match = _OPTION.match(key)
                if match and match.group(2) == "value" and value and names[match.group(1)]:
                    name = names[match.group(1)]
                    if name.lower() != "title" and value not in options.setdefault(name, []):
                        options[name].append(value)
        if prices:
            out["price"] = min(prices)
            higher = [r for r in regular if r > out["price"]]
            if higher:
                attributes["regular_price"] = f"{min(higher):.2f} {self.currency}"
        out["in_stock"] = sellable if variants else False
        for ours, key in (("product_type", "type"), ("tags", "tags"), ("sku", "sku"), ("gtin", "barcode")):
            if value := _get(first, key):
                attributes[ours] = value
        image = next((_get(f, "image") for f in product.rows if _get(f, "image")), "")
        if image:
            attributes["image_link"] = image
        for name, values in options.items():
            attributes[name] = ", ".join(values)
        attributes["variants"] = str(variants)
        if len(skus) > 1:  # every variant's SKU, so an order's line (which names a SKU) finds its product
            attributes["skus"] = ", ".join(skus)
        out["attributes"] = attributes
        return out


def column_value(fields: Mapping[str, str], headers: tuple[str, ...]) -> str:
    """The first non-empty value among a column's header names (lower-cased), else ""."""
    return next((fields[h] for h in headers if fields.get(h)), "")


def _get(fields: Mapping[str, str], key: str) -> str:
    return column_value(fields, COLUMNS[key])


def _can_sell(fields: Mapping[str, str], row: int) -> bool:
    """A variant can be sold when its inventory is untracked, above zero, or sold regardless."""
    if _get(fields, "policy").lower() in ("continue", "true"):
        return True
    quantity = _get(fields, "quantity")
    tracked = _get(fields, "tracker") or quantity
    if not tracked:
        return True
    return bool(quantity) and _number(quantity, "Variant Inventory Qty", row) > 0
