"""Shopify product exports (both header sets) folded into one product per handle, and
`shoploop import shopify` end to end."""

from __future__ import annotations

import csv

from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from shoploop.cli.main import app
from shoploop.data.shopify_csv import ShopifyExport, html_to_text
from shoploop.domain.products import Product
from shoploop.store.home import open_stores

runner = CliRunner()

OLD = [
    "Handle", "Title", "Body (HTML)", "Vendor", "Product Category", "Type", "Tags", "Published",
    "Option1 Name", "Option1 Value", "Variant SKU", "Variant Inventory Tracker", "Variant Inventory Qty",
    "Variant Inventory Policy", "Variant Price", "Variant Compare At Price", "Variant Barcode", "Image Src",
    "Status",
]  # fmt: skip
OLD_ROWS = [
    ["tee", "Organic tee", "<p>Soft <b>organic</b> cotton &amp; more</p>", "Acme",
     "Apparel & Accessories > Clothing > Shirts & Tops", "Shirts", "cotton, summer", "TRUE",
     "Color", "Red", "TEE-R", "shopify", "0", "deny", "25.00", "30.00", "4006381333931", "https://img/1.jpg",
     "active"],
    ["tee", "", "", "", "", "", "", "", "", "Blue", "TEE-B", "shopify", "3", "deny", "22.00", "", "", "", ""],
    ["tee", "", "", "", "", "", "", "", "", "", "", "", "", "", "", "", "", "https://img/2.jpg", ""],
    ["mug", "Enamel mug", "", "Camp Co", "", "Kitchen", "", "TRUE", "Title", "Default Title", "MUG",
     "shopify", "0", "deny", "9.50", "", "", "", "active"],
    ["poster", "Poster", "", "Acme", "", "Art", "", "TRUE", "Title", "Default Title", "P", "", "", "deny",
     "12", "", "", "", "draft"],
    ["hidden", "Hidden", "", "Acme", "", "Art", "", "FALSE", "Title", "Default Title", "H", "", "", "deny",
     "12", "", "", "", "active"],
    ["broken", "Broken", "", "Acme", "", "Art", "", "TRUE", "Title", "Default Title", "B", "", "", "deny",
     "twelve", "", "", "", "active"],
]  # fmt: skip


def write_csv(path, header, rows) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)


def test_variants_fold_into_one_product_per_handle(tmp_path):
    path = tmp_path / "products_export.csv"
    write_csv(path, OLD, OLD_ROWS)
    export = ShopifyExport(path, currency="eur")
    rows = list(export.catalog_rows())
    assert [r.row_number for r in rows] == [1, 4, 7]  # tee, mug, broken (its first row each)
    tee = Product.model_validate(rows[0].raw)
    assert (tee.item_id, tee.title, tee.brand, tee.price, tee.currency) == (
        "tee",
        "Organic tee",
        "Acme",
        22.0,
        "EUR",
    )
    assert tee.description == "Soft organic cotton & more"
    assert tee.category_path == ("Apparel & Accessories", "Clothing", "Shirts & Tops")
    assert tee.in_stock  # the blue one has 3
    assert tee.attributes == {
        "regular_price": "30.00 EUR",
        "product_type": "Shirts",
        "tags": "cotton, summer",
        "sku": "TEE-R",
        "gtin": "4006381333931",
        "image_link": "https://img/1.jpg",
        "Color": "Red, Blue",
        "variants": "2",
        "skus": "TEE-R, TEE-B",
    }
    mug = Product.model_validate(rows[1].raw)
    assert not mug.in_stock and mug.category_path == ("Kitchen",) and "Title" not in mug.attributes
    assert rows[2].error == "Variant Price: 'twelve' is not a number (row 7)"
    assert export.products == 5 and export.left_out == {"draft": 1, "unpublished": 1}


def test_a_handle_split_across_the_file_is_quarantined_not_imported_twice(tmp_path):
    path = tmp_path / "products_export.csv"
    write_csv(path, OLD, [OLD_ROWS[0], OLD_ROWS[3], OLD_ROWS[1]])  # tee, mug, then tee's blue variant
    rows = list(ShopifyExport(path).catalog_rows())
    assert [r.raw.get("item_id") for r in rows[:2]] == ["tee", "mug"]
    assert rows[2].error == "Handle: 'tee' appears again after other products (its product starts at row 1)"


def test_the_newer_header_set_reads_the_same(tmp_path):
    new = [
        "Title", "URL handle", "Description", "Vendor", "Product category", "Type", "Tags",
        "Published on online store", "Status", "SKU", "Barcode", "Option1 name", "Option1 value", "Price",
        "Compare-at price", "Inventory quantity", "Continue selling when out of stock", "Product image URL",
    ]  # fmt: skip
    rows = [
        ["Organic tee", "tee", "<p>Soft</p>", "Acme", "Apparel & Accessories", "Shirts", "", "TRUE", "Active",
         "TEE-R", "", "Color", "Red", "25.00", "", "0", "FALSE", ""],
        ["", "tee", "", "", "", "", "", "", "", "TEE-B", "", "", "Blue", "23.00", "", "0", "TRUE", ""],
    ]  # fmt: skip
    path = tmp_path / "export.csv"
    write_csv(path, new, rows)
    [row] = list(ShopifyExport(path).catalog_rows())
    product = Product.model_validate(row.raw)
    assert (product.item_id, product.price, product.description) == ("tee", 23.0, "Soft")
    assert product.in_stock  # out of stock, but the blue one keeps selling
    assert product.attributes["Color"] == "Red, Blue"


# Without "&": an escaped "&lt;div&gt;" in the text rightly comes out as the characters "<div>".
@given(st.text(alphabet=st.characters(exclude_characters="&"), max_size=200))
def test_html_to_text_never_keeps_a_tag_or_crashes(text):
    out = html_to_text(f"<div>{text}</div>")
    assert "<div>" not in out and out == out.strip()


def test_import_shopify_end_to_end(tmp_path, monkeypatch):
    monkeypatch.delenv("SHOPLOOP_PSEUDONYM_KEY", raising=False)
    path, home = tmp_path / "products_export.csv", tmp_path / "home"
    write_csv(path, OLD, OLD_ROWS)
    args = ["import", "shopify", str(path), "--currency", "EUR", "--home", str(home), "--no-progress"]
    result = runner.invoke(app, args, env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "left out (not for sale in the shop): 1 draft, 1 unpublished" in result.output
    with open_stores(home) as stores:
        assert sorted(p.item_id for p in stores.catalog.iter_products()) == ["mug", "tee"]
        [bad] = stores.quarantine.list()
        assert bad.reason.startswith("Variant Price: 'twelve'")
        version = stores.catalog.version
    assert runner.invoke(app, args).exit_code == 0
    with open_stores(home) as stores:
        assert stores.catalog.version == version  # unchanged products are skipped
    bad_currency = runner.invoke(
        app, ["import", "shopify", str(path), "--currency", "euro", "--home", str(home)]
    )
    assert bad_currency.exit_code != 0 and "--currency" in bad_currency.output
