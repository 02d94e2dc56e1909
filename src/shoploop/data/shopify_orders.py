"""Read a Shopify order export (Orders → Export → plain CSV) as purchase history.

A shop that starts with shoploop has years of orders and no events. Those orders are what
"bought together", popularity and the sequential recommender learn from first, so a Shopify
shop can bring them on day one instead of waiting for new traffic.

The export has one row per order line; the order's own columns (Email, Paid at, Currency,
Financial Status, Cancelled at) are filled on its first row only. Each order becomes one
`purchase` event:

* `event_id` "shopify-order-<Name>" (re-importing adds nothing), `order_id` the order's Name;
* the time it was paid (else created), the currency, each line's SKU mapped to the product
  that has it (the handle of `shoploop import shopify`, whose `sku` / `skus` attributes list
  them), with the line's unit price and quantity;
* the shopper: the order's e-mail, lower-cased, mapped by `user_id` before anything is stored:
  the shop's keyed pseudonym when it pseudonymises ids, otherwise an unkeyed hash ("email-" +
  16 hex digits of SHA-256), so no address is written to the log or the quarantine. An unkeyed
  hash of an e-mail can be reversed by trying addresses, so a shop that must protect them
  should run `shoploop privacy pseudonymize` before importing. The export's names, addresses
  and phone numbers are never read: a quarantined order keeps only its order columns.
* Left out and counted: cancelled orders, refunded or voided ones, and lines whose SKU no
  product has (an order with no known line at all is quarantined with the reason).
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from shoploop.data.readers import SourceRow
from shoploop.data.shopify_csv import RowGroup, column_value, grouped_rows

COLUMNS: Mapping[str, tuple[str, ...]] = {
    "name": ("name",),
    "email": ("email",),
    "financial": ("financial status",),
    "paid_at": ("paid at",),
    "created_at": ("created at",),
    "cancelled_at": ("cancelled at",),
    "currency": ("currency",),
    "quantity": ("lineitem quantity",),
    "price": ("lineitem price",),
    "sku": ("lineitem sku",),
    "line_name": ("lineitem name",),
}
NOT_SOLD = frozenset({"refunded", "voided"})


def _get(fields: Mapping[str, str], key: str) -> str:
    return column_value(fields, COLUMNS[key])


def email_user_id(email: str) -> str:
    """A stable shopper id for an order's e-mail that does not spell the address out."""
    return "email-" + hashlib.sha256(email.strip().lower().encode("utf-8")).hexdigest()[:16]


def parse_time(text: str) -> str:
    """Shopify writes "2024-01-05 10:11:12 +0100"; ISO 8601 passes through. Returns ISO text."""
    for fmt in ("%Y-%m-%d %H:%M:%S %z", "%Y-%m-%d %H:%M %z"):
        try:
            return datetime.strptime(text.strip(), fmt).isoformat()
        except ValueError:
            continue
    return text.strip()  # left for the event's own validation to accept or name


def sku_index(products: Any) -> dict[str, str]:
    """SKU -> item id over the catalog's `sku` / `skus` attributes (first product wins)."""
    index: dict[str, str] = {}
    for product in products:
        for key in ("sku", "skus"):
            for sku in str(product.attributes.get(key, "")).split(","):
                if sku.strip():
                    index.setdefault(sku.strip(), product.item_id)
    return index


class ShopifyOrders:
    """An order export; `event_rows()` streams one purchase `SourceRow` per order for
    `import_events`. Afterwards `orders` counts the orders read and `left_out` what was not
    imported, by reason ("cancelled", "refunded", "voided", "lines with an unknown SKU")."""

    def __init__(
        self, path: Path, skus: Mapping[str, str], *, user_id: Callable[[str], str] = email_user_id
    ) -> None:
        self.path = Path(path)
        self.skus = skus
        self.user_id = user_id
        self.orders = 0
        self.left_out: Counter[str] = Counter()
        if not self.path.is_file():
            raise FileNotFoundError(f"file not found: {self.path}")

    def event_rows(self) -> Iterator[SourceRow]:
        self.orders, self.left_out = 0, Counter()
        for group in grouped_rows(self.path, lambda f: _get(f, "name"), "Name", "order"):
            if isinstance(group, SourceRow):
                yield group
            else:
                yield from self._finish(group)

    def _finish(self, order: RowGroup) -> Iterator[SourceRow]:
        self.orders += 1
        first = order.rows[0]
        if _get(first, "cancelled_at"):
            self.left_out["cancelled"] += 1
            return
        status = _get(first, "financial").lower()
        if status in NOT_SOLD:
            self.left_out[status] += 1
            return
        lines, unknown = [], []
        for fields in order.rows:
            sku = _get(fields, "sku")
            if not sku and not _get(fields, "line_name"):
                continue  # a row without a line (shipping, a note)
            item_id = self.skus.get(sku)
            if item_id is None:
                unknown.append(sku or _get(fields, "line_name"))
                continue
            lines.append(
                {
                    "item_id": item_id,
                    "quantity": _get(fields, "quantity") or "1",
                    "price": _get(fields, "price"),
                }
            )
        self.left_out["lines with an unknown SKU"] += len(unknown) if lines else 0
        name = _get(first, "name")
        email = _get(first, "email").lower()
        shopper = self.user_id(email) if email else f"shopify-guest-{name}"
        if not lines:
            shown = ", ".join(repr(u) for u in unknown[:3]) or "none"
            kept = {h: first[h] for key in COLUMNS for h in COLUMNS[key] if h in first and key != "email"}
            yield SourceRow(
                order.first_row,
                {**kept, "user_id": shopper},
                f"items: no line of order {name} names a SKU of the catalog ({shown}); "
                "import the products first (shoploop import shopify)",
            )
            return
        row: dict[str, Any] = {
            "type": "purchase",
            "event_id": f"shopify-order-{name}",
            "order_id": name,
            "user_id": shopper,
            "timestamp": parse_time(_get(first, "paid_at") or _get(first, "created_at")),
            "items": lines,
        }
        if currency := _get(first, "currency"):
            row["currency"] = currency.upper()
        yield SourceRow(order.first_row, row)
