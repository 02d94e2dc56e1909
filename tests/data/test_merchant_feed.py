"""Google Merchant Center feeds as the catalog: prices, sale windows, availability, categories,
the XML and text shapes, and `shoploop import merchant` end to end (bad products quarantined
with the attribute named, re-importing adds nothing)."""

from __future__ import annotations

import gzip
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from shoploop.cli.main import app
from shoploop.data.merchant_feed import (
    MerchantFeed,
    MerchantFeedError,
    parse_price,
    product_row,
    products_to_remove,
    sale_applies,
)
from shoploop.data.readers import ReaderError
from shoploop.domain.products import Product
from shoploop.store.home import open_stores
from tests.feed_server import FeedServer, rss_feed

runner = CliRunner()
NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("15.00 USD", (15.0, "USD")),
        ("USD 15.00", (15.0, "USD")),
        ("1,299.99 usd", (1299.99, "USD")),
        ("15,50 EUR", (15.5, "EUR")),
        ("12 GBP", (12.0, "GBP")),
        ("1,299 USD", (1299.0, "USD")),  # three digits after the comma: thousands
    ],
)
def test_prices_are_read_as_amount_and_currency(text, expected):
    assert parse_price(text) == expected


@pytest.mark.parametrize(
    "text", ["15.00", "USD", "abc USD", "15.00 US", "0.00 USD", "15.00 USD extra", "-3 USD"]
)
def test_unreadable_prices_name_the_attribute(text):
    with pytest.raises(MerchantFeedError, match=r"^sale_price: "):
        parse_price(text, "sale_price")


@given(
    cents=st.integers(min_value=1, max_value=10**11),
    currency=st.sampled_from(["USD", "EUR", "GBP", "JPY", "CHF"]),
    thousands=st.booleans(),
    code_first=st.booleans(),
)
def test_price_round_trip(cents, currency, thousands, code_first):
    amount = f"{cents / 100:,.2f}" if thousands else f"{cents / 100:.2f}"
    text = f"{currency} {amount}" if code_first else f"{amount} {currency}"
    value, code = parse_price(text)
    assert code == currency
    assert value == pytest.approx(cents / 100)


@given(st.text(max_size=40))
def test_price_parser_never_crashes(text):
    try:
        value, code = parse_price(text)
    except MerchantFeedError as err:
        assert str(err).startswith("price: ")
    else:
        assert value > 0 and len(code) == 3


def test_sale_price_holds_only_inside_its_window():
    assert sale_applies(None, NOW)
    assert sale_applies("2026-12-01T00:00+01:00/2026-12-24T23:59+01:00", NOW)
    assert not sale_applies("2026-11-01T00:00Z/2026-11-30T23:59Z", NOW)
    assert sale_applies("2026-12-07/2026-12-08", NOW)  # dates without zone are UTC
    with pytest.raises(MerchantFeedError, match="sale_price_effective_date"):
        sale_applies("next week", NOW)


def test_a_feed_product_becomes_a_valid_product():
    row = product_row(
        {
            "id": "SKU-1",
            "title": "Cordless drill 18V",
            "description": "Two batteries.",
            "price": "129.00 USD",
            "sale_price": "99.00 USD",
            "sale_price_effective_date": "2026-12-01T00:00Z/2026-12-31T00:00Z",
            "availability": "in stock",
            "product_type": ["Tools > Power Tools > Drills", "Sale"],
            "google_product_category": "1167",
            "brand": "Bosch",
            "gtin": "04006381333931",
            "link": "https://shop.example/drill",
            "additional_image_link": ["a.jpg", "b.jpg"],
        },
        now=NOW,
    )
    product = Product.model_validate(row)
    assert (product.item_id, product.price, product.currency, product.in_stock) == (
        "SKU-1",
        99.0,
        "USD",
        True,
    )
    assert product.category_path == ("Tools", "Power Tools", "Drills")
    assert product.brand == "Bosch"
    assert product.attributes == {
        "regular_price": "129.00 USD",
        "availability": "in_stock",
        "google_product_category": "1167",
        "gtin": "04006381333931",
        "link": "https://shop.example/drill",
    }


def test_availability_and_textual_google_category():
    row = product_row(
        {
            "id": "2",
            "title": "Kettle",
            "availability": "preorder",
            "google_product_category": "Home & Garden > Kitchen & Dining > Kitchen Appliances",
            "sale_price": "20.00 EUR",
            "sale_price_effective_date": "2026-01-01T00:00Z/2026-01-02T00:00Z",  # over
            "price": "25.00 EUR",
        },
        now=NOW,
    )
    assert row["in_stock"] is False
    assert row["price"] == 25.0 and row["currency"] == "EUR"
    assert row["category_path"] == "Home & Garden > Kitchen & Dining > Kitchen Appliances"
    with pytest.raises(MerchantFeedError, match=r"^availability: 'soon'"):
        product_row({"id": "3", "title": "x", "availability": "soon"}, now=NOW)
    with pytest.raises(MerchantFeedError, match=r"^id: "):
        product_row({"title": "no id"}, now=NOW)


RSS = """<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0" xmlns:g="http://base.google.com/ns/1.0">
 <channel>
  <title>Example shop</title>
  <item>
   <g:id>A1</g:id>
   <title>Garden hose 25 m</title>
   <g:price>29.90 EUR</g:price>
   <g:availability>in_stock</g:availability>
   <g:product_type>Garden &gt; Watering</g:product_type>
   <g:shipping><g:country>DE</g:country><g:price>4.90 EUR</g:price></g:shipping>
  </item>
  <item>
   <g:id>A2</g:id>
   <g:title>Hose reel</g:title>
   <g:price>cheap</g:price>
  </item>
  <item>
   <g:id>A3</g:id>
   <g:title>Sprinkler</g:title>
   <g:price>12.50 EUR</g:price>
   <g:availability>out_of_stock</g:availability>
  </item>
 </channel>
</rss>
"""

ATOM = """<?xml version="1.0"?>
<feed xmlns="http://www.w3.org/2005/Atom" xmlns:g="http://base.google.com/ns/1.0">
 <entry>
  <g:id>B1</g:id>
  <title>Watering can</title>
  <link href="https://shop.example/can"/>
  <g:price>9.00 EUR</g:price>
 </entry>
</feed>
"""


def test_rss_feed_streams_products_and_counts_what_is_left_out(tmp_path):
    path = tmp_path / "feed.xml"
    path.write_text(RSS, encoding="utf-8")
    feed = MerchantFeed(path, now=NOW)
    rows = list(feed.catalog_rows())
    assert [r.row_number for r in rows] == [1, 2, 3]
    assert rows[0].error is None and rows[0].raw["category_path"] == "Garden > Watering"
    assert rows[1].error is not None and rows[1].error.startswith("price: ")
    assert rows[1].raw["price"] == "cheap"  # the product kept as it was, for the quarantine
    assert rows[2].raw["in_stock"] is False
    assert feed.products == 3 and feed.skipped == {"shipping": 1}


def test_atom_feed_and_gzip(tmp_path):
    path = tmp_path / "feed.atom.gz"
    path.write_bytes(gzip.compress(ATOM.encode()))
    rows = list(MerchantFeed(path, now=NOW).catalog_rows())
    assert rows[0].raw["item_id"] == "B1"
    assert rows[0].raw["attributes"]["link"] == "https://shop.example/can"


@pytest.mark.parametrize("name", ["feed", "feed.xml", "download.tmp"])
def test_a_compressed_feed_is_read_whatever_its_name(tmp_path, name):
    """A feed URL without a suffix that serves gzip is saved without one: the bytes decide."""
    path = tmp_path / name
    path.write_bytes(gzip.compress(ATOM.encode()))
    rows = list(MerchantFeed(path, now=NOW).catalog_rows())
    assert [r.raw["item_id"] for r in rows][:1] == ["B1"]


def test_broken_xml_is_a_clear_error_after_the_good_products(tmp_path):
    path = tmp_path / "feed.xml"
    path.write_text(RSS.split("<item>\n   <g:id>A3")[0] + "<item><g:id>A3</g:id>", encoding="utf-8")
    feed = MerchantFeed(path, now=NOW)
    rows = feed.catalog_rows()
    first, second = next(rows), next(rows)
    assert (first.raw["item_id"], second.raw["id"]) == ("A1", "A2")  # kept before the break
    with pytest.raises(ReaderError, match=r"feed\.xml: not well-formed XML after product 2"):
        next(rows)


def test_tab_separated_text_feed(tmp_path):
    path = tmp_path / "feed.txt"
    path.write_text(
        "g:id\ttitle\tprice\tavailability\tbrand\tcolor\n"
        "T1\tDoormat\t15.00 USD\tin stock\tAcme\tgrey\n"
        "T2\tBroom\t\tout of stock\t\t\n"
        "T3\tragged row\n",
        encoding="utf-8",
    )
    rows = list(MerchantFeed(path, now=NOW).catalog_rows())
    assert rows[0].raw == {
        "item_id": "T1",
        "title": "Doormat",
        "price": 15.0,
        "currency": "USD",
        "in_stock": True,
        "brand": "Acme",
        "attributes": {"availability": "in_stock", "color": "grey"},
    }
    assert "price" not in rows[1].raw and rows[1].raw["in_stock"] is False
    assert rows[2].error is not None and "expected 6 columns" in rows[2].error


def test_import_merchant_end_to_end(tmp_path, monkeypatch):
    monkeypatch.delenv("SHOPLOOP_PSEUDONYM_KEY", raising=False)
    home, path = tmp_path / "home", tmp_path / "feed.xml"
    path.write_text(RSS, encoding="utf-8")
    args = ["import", "merchant", str(path), "--home", str(home), "--no-progress"]
    result = runner.invoke(app, args, env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "left out (no product field holds them): shipping (1)" in result.output
    with open_stores(home) as stores:
        products = stores.catalog.get_many(["A1", "A2", "A3"])
        assert sorted(products) == ["A1", "A3"]
        assert products["A1"].price == 29.9 and products["A1"].currency == "EUR"
        assert products["A3"].in_stock is False
        [bad] = stores.quarantine.list()
        assert bad.reason.startswith("price: ") and bad.raw["id"] == "A2"
    again = runner.invoke(app, args, env={"COLUMNS": "200"})
    assert again.exit_code == 0
    with open_stores(home) as stores:
        assert len(stores.catalog) == 2
        assert stores.catalog.get("A1").price == 29.9
    missing = runner.invoke(app, ["import", "merchant", str(tmp_path / "nope.xml"), "--home", str(home)])
    assert missing.exit_code != 0 and "file not found" in missing.output


def test_hostile_xml_is_refused(tmp_path):
    """The module docstring's promise: no external entities, no exponential entity expansion."""
    laughs = ['<!ENTITY l0 "lollollollollollollollollollol">']
    laughs += [f'<!ENTITY l{i} "{("&l" + str(i - 1) + ";") * 10}">' for i in range(1, 10)]
    cases = {
        "laughs.xml": f"<!DOCTYPE r [{''.join(laughs)}]><rss><item><id>1</id><title>&l9;</title>"
        "</item></rss>",
        "xxe.xml": '<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><rss><item><id>1</id>'
        "<title>&x;</title></item></rss>",
    }
    for name, text in cases.items():
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        with pytest.raises(ReaderError, match="not well-formed XML after product 0"):
            list(MerchantFeed(path, now=NOW).catalog_rows())


def test_products_to_remove_and_the_cut_short_guard():
    catalog = [f"p{i}" for i in range(10)]
    assert products_to_remove(catalog, set(catalog[:8]) | {"new"}) == ["p8", "p9"]
    assert products_to_remove([], {"a"}) == []
    assert products_to_remove(catalog, set(catalog)) == []
    with pytest.raises(MerchantFeedError, match=r"lists 4 of the catalog's 10 products \(40%"):
        products_to_remove(catalog, set(catalog[:4]))
    assert len(products_to_remove(catalog, set(catalog[:4]), min_share=0.4)) == 6


def test_fetch_only_when_the_feed_changed(tmp_path):
    from shoploop.data.feed_fetch import FeedFetchError, fetch_feed, remember

    for validators in (True, False):
        home = tmp_path / f"home-{validators}"
        server = FeedServer(rss_feed(("a", "A")), validators=validators)
        try:
            first = fetch_feed(server.url, home)
            assert first.path is not None and first.path.read_bytes() == server.body
            assert first.path.suffix == ".xml"
            # not remembered yet (the import might fail): downloaded again in full
            assert fetch_feed(server.url, home).path is not None
            remember(home, first, products=1)
            again = fetch_feed(server.url, home)
            assert again.unchanged
            if validators:  # answered 304 without a body
                assert server.requests[-1].get("If-None-Match") == first.etag
            assert fetch_feed(server.url, home, force=True).path is not None
            server.body = rss_feed(("a", "A"), ("b", "B"))
            assert fetch_feed(server.url, home).path.read_bytes() == server.body
            with pytest.raises(FeedFetchError, match="answered 404"):
                fetch_feed(server.url.replace("google.xml", "other.xml"), home)
        finally:
            server.close()
    with pytest.raises(FeedFetchError, match="not an http"):
        fetch_feed("ftp://example.com/feed.xml", tmp_path)


def test_import_merchant_from_a_url_with_remove_missing(tmp_path, monkeypatch):
    monkeypatch.delenv("SHOPLOOP_PSEUDONYM_KEY", raising=False)
    home = tmp_path / "home"
    server = FeedServer(rss_feed(*[(f"p{i}", f"Product {i}") for i in range(10)]))
    args = ["import", "merchant", server.url, "--home", str(home), "--no-progress", "--remove-missing"]
    try:
        first = runner.invoke(app, args, env={"COLUMNS": "200"})
        assert first.exit_code == 0, first.output
        with open_stores(home) as stores:
            assert len(stores.catalog) == 10
        unchanged = runner.invoke(app, args, env={"COLUMNS": "200"})
        assert unchanged.exit_code == 0 and "unchanged since the last import" in unchanged.output
        from shoploop.data.feed_fetch import load_state

        entry = load_state(home)[server.url]
        assert entry["checked_at"] > entry["imported_at"]  # looked at, for shoploop doctor
        # two products dropped from the feed, one added: removed and added
        server.body = rss_feed(*[(f"p{i}", f"Product {i}") for i in range(8)], ("p10", "Product 10"))
        changed = runner.invoke(app, args, env={"COLUMNS": "200"})
        assert changed.exit_code == 0, changed.output
        assert "removed 2 products the feed no longer lists" in changed.output
        with open_stores(home) as stores:
            assert sorted(p.item_id for p in stores.catalog.iter_products()) == sorted(
                [f"p{i}" for i in range(8)] + ["p10"]
            )
        # a feed cut short keeps 3 of 9: refused, nothing removed, and retried next time
        server.body = rss_feed(*[(f"p{i}", f"Product {i}") for i in range(3)])
        refused = runner.invoke(app, args, env={"COLUMNS": "200"})
        assert refused.exit_code != 0 and "refusing to remove 6" in refused.output
        with open_stores(home) as stores:
            assert len(stores.catalog) == 9
        retried = runner.invoke(app, [*args, "--min-share", "0.3"], env={"COLUMNS": "200"})
        assert retried.exit_code == 0 and "removed 6 products" in retried.output
        assert not [p for p in (home / "feeds").iterdir() if p.name.startswith("feed-")]  # no leftovers
    finally:
        server.close()


def test_a_repeated_id_is_quarantined_and_the_first_product_kept(tmp_path, monkeypatch):
    monkeypatch.delenv("SHOPLOOP_PSEUDONYM_KEY", raising=False)
    path, home = tmp_path / "feed.xml", tmp_path / "home"
    path.write_bytes(rss_feed(("d1", "Desk lamp"), ("d2", "Floor lamp"), ("d1", "Desk lamp, brass")))
    rows = list(MerchantFeed(path, now=NOW).catalog_rows())
    assert rows[2].error == "id: 'd1' is listed again (first as product 1)"
    args = ["import", "merchant", str(path), "--home", str(home), "--no-progress"]
    assert runner.invoke(app, args).exit_code == 0
    with open_stores(home) as stores:
        version = stores.catalog.version
    assert runner.invoke(app, args).exit_code == 0
    with open_stores(home) as stores:
        assert stores.catalog.version == version  # re-imported: nothing flips between the two
        assert stores.catalog.get("d1").title == "Desk lamp"
        assert [r.reason for r in stores.quarantine.list()] == [
            "id: 'd1' is listed again (first as product 1)"
        ]
