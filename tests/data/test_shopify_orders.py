"""Shopify order exports as purchase history: one purchase per order, lines found by SKU,
e-mails never stored, cancelled/refunded orders left out, re-importing adds nothing."""

from __future__ import annotations

import csv
from datetime import UTC, datetime, timedelta

from typer.testing import CliRunner

from shoploop.cli.main import app
from shoploop.data.shopify_orders import email_user_id, parse_time
from shoploop.store.home import open_stores
from tests.data.test_shopify_csv import OLD, OLD_ROWS, write_csv

runner = CliRunner()
HEADER = [
    "Name", "Email", "Financial Status", "Paid at", "Currency", "Lineitem quantity", "Lineitem name",
    "Lineitem price", "Lineitem sku", "Billing Name", "Billing Address1", "Phone", "Cancelled at",
    "Created at",
]  # fmt: skip


def _when(days: int) -> str:
    return (datetime.now(UTC) - timedelta(days=days)).strftime("%Y-%m-%d %H:%M:%S +0000")


ORDERS = [
    ["#1001", "Ana@Example.com", "paid", _when(30), "EUR", "2", "Organic tee - Blue", "22.00", "TEE-B",
     "Ana Lima", "Rua 1", "+351 1", "", _when(30)],
    ["#1001", "", "", "", "", "1", "Enamel mug", "9.50", "MUG", "", "", "", "", ""],
    ["#1001", "", "", "", "", "1", "Gift wrap", "2.00", "WRAP", "", "", "", "", ""],
    ["#1002", "bo@example.com", "refunded", _when(20), "EUR", "1", "Enamel mug", "9.50", "MUG",
     "Bo", "Street 2", "", "", _when(20)],
    ["#1003", "cy@example.com", "paid", "", "EUR", "1", "Enamel mug", "9.50", "MUG", "Cy", "", "",
     _when(9), _when(10)],
    ["#1004", "", "paid", _when(5), "EUR", "1", "Organic tee - Red", "25.00", "TEE-R", "", "", "", "",
     _when(5)],
    ["#1005", "di@example.com", "paid", _when(2), "EUR", "1", "Old sticker", "1.00", "STICK", "Di Secret",
     "Secret Lane 9", "+1 555", "", _when(2)],
]  # fmt: skip


def test_shopify_times_read_as_iso():
    assert parse_time("2024-01-05 10:11:12 +0100") == "2024-01-05T10:11:12+01:00"
    assert email_user_id(" Ana@Example.com ") == email_user_id("ana@example.com")
    assert "ana" not in email_user_id("ana@example.com")


def test_import_orders_end_to_end(tmp_path, monkeypatch):
    monkeypatch.delenv("SHOPLOOP_PSEUDONYM_KEY", raising=False)
    home, products, orders = tmp_path / "home", tmp_path / "products.csv", tmp_path / "orders_export.csv"
    write_csv(products, OLD, OLD_ROWS)
    with orders.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        writer.writerows(ORDERS)
    before = runner.invoke(app, ["import", "shopify-orders", str(orders), "--home", str(home)])
    assert before.exit_code != 0 and "import the products first" in before.output
    assert (
        runner.invoke(
            app, ["import", "shopify", str(products), "--home", str(home), "--no-progress"]
        ).exit_code
        == 0
    )
    args = ["import", "shopify-orders", str(orders), "--home", str(home), "--no-progress"]
    result = runner.invoke(app, args, env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    left_out = next(line for line in result.output.splitlines() if line.startswith("left out: "))
    assert sorted(left_out.removeprefix("left out: ").split(", ")) == [
        "1 cancelled",
        "1 lines with an unknown SKU",
        "1 refunded",
    ]
    with open_stores(home) as stores:
        events = {e.event_id: e for e in stores.events.scan()}
        assert set(events) == {"shopify-order-#1001", "shopify-order-#1004"}
        first = events["shopify-order-#1001"]
        assert first.type == "purchase" and first.currency == "EUR" and first.order_id == "#1001"
        assert [(line.item_id, line.quantity, line.price) for line in first.items] == [
            ("tee", 2, 22.0),
            ("mug", 1, 9.5),
        ]
        assert first.user_id == email_user_id("ana@example.com")
        assert events["shopify-order-#1004"].user_id == "shopify-guest-#1004"
        # the order whose only line is unknown waits in the quarantine, without any personal data
        [bad] = [r for r in stores.quarantine.list() if r.source == "orders_export.csv"]
        assert bad.reason.startswith("items: no line of order #1005 names a SKU of the catalog ('STICK')")
        stored = str(bad.raw)
        assert "di@example.com" not in stored and "Secret" not in stored and "+1 555" not in stored
        assert bad.raw["user_id"] == email_user_id("di@example.com")
        assert not any("example.com" in str(e.model_dump()) for e in stores.events.scan())
    again = runner.invoke(app, args, env={"COLUMNS": "200"})
    assert again.exit_code == 0
    with open_stores(home) as stores:
        assert len(stores.events) == 2  # re-importing adds nothing


def test_a_pseudonymising_shop_stores_keyed_pseudonyms(tmp_path, monkeypatch):
    monkeypatch.setenv("SHOPLOOP_PSEUDONYM_KEY", "ab" * 32)
    home, products, orders = tmp_path / "home", tmp_path / "products.csv", tmp_path / "orders.csv"
    write_csv(products, OLD, OLD_ROWS)
    with orders.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows([HEADER, ORDERS[0]])
    assert (
        runner.invoke(
            app, ["import", "shopify", str(products), "--home", str(home), "--no-progress"]
        ).exit_code
        == 0
    )
    assert (
        runner.invoke(
            app, ["import", "shopify-orders", str(orders), "--home", str(home), "--no-progress"]
        ).exit_code
        == 0
    )
    with open_stores(home) as stores:
        [event] = list(stores.events.scan())
        assert event.user_id.startswith("p_") and event.user_id != email_user_id("ana@example.com")
