"""A shopper in a real browser: search, click, add to cart, buy — and the loop closes.

Checks that the events reached the store with the `request_id` (and position) of the list
they came from, and that the shopper's home feed changed because of them. Screenshots go
to the test's tmp dir, and also to $SHOPLOOP_SCREENSHOT_DIR when set (docs/img).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from shoploop.api import create_app
from tests.api.conftest import make_settings
from tests.browser.conftest import ServerThread
from tests.engine.conftest import make_engine

pytestmark = pytest.mark.browser


def shot(page, tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path), full_page=False)
    target = os.environ.get("SHOPLOOP_SCREENSHOT_DIR")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(target) / f"{name}.png"), full_page=False)
    return path


def wait_events(page, at_least: int) -> None:
    """Until shop.js has no request in flight and `at_least` events were accepted on this page."""
    page.wait_for_function(
        "n => document.body.dataset.eventsPending === '0' && Number(document.body.dataset.eventsSent) >= n",
        arg=at_least,
    )


@pytest.fixture(scope="module")
def shop():
    engine, _ = make_engine(n_products=300, n_users=80)
    app = create_app(engine, make_settings(public_reads=True, max_body_bytes=256 * 1024))
    server = ServerThread(app).start()
    try:
        yield server, engine, app
    finally:
        server.stop()


def test_search_click_cart_buy_closes_the_loop(shop, page, tmp_path):
    server, engine, _ = shop
    page.goto(server.base + "/")
    user = page.evaluate("document.body.dataset.user")
    assert user.startswith("visitor-")
    before = page.eval_on_selector_all("#recommended li.card", "els => els.map(e => e.dataset.item)")
    assert before, "a new visitor still gets a feed (trending fallback)"
    assert "don't know you yet" in page.inner_text("#recommended .help")

    page.fill("header input[name=q]", "jackte")
    page.click("header button[type=submit]")
    page.wait_for_selector("#search-results")
    assert page.inner_text("#corrected-query") == "jacket"
    rid = page.get_attribute("#search-results", "data-request-id")
    wait_events(page, 1)  # the search event
    second = page.locator("#search-results li.card").nth(1)
    item = second.get_attribute("data-item")
    shot(page, tmp_path, "storefront-search")
    second.locator("a.product-link").click()

    page.wait_for_selector("#product")
    assert page.get_attribute("#product", "data-rid") == rid
    wait_events(page, 2)  # click + view
    page.click("#add-to-cart")
    wait_events(page, 3)
    assert page.inner_text("#cart-count") == "1"

    page.goto(server.base + "/cart")
    assert item in page.evaluate("JSON.stringify(window.shoploop.readCart())")
    page.click("#checkout")
    page.wait_for_selector("#order-id")
    order = page.inner_text("#order-id")

    stored = {e.type: e for e in engine.stores.events.scan(user_id=user) if e.type != "impression"}
    assert stored["search"].request_id == rid
    assert (
        stored["click"].request_id == rid
        and stored["click"].item_id == item
        and stored["click"].position == 2
    )
    assert stored["view"].item_id == item
    assert stored["add_to_cart"].request_id == rid and stored["add_to_cart"].item_id == item
    purchase = stored["purchase"]
    assert purchase.request_id == rid and purchase.order_id == order
    assert [line.item_id for line in purchase.items] == [item]
    impression = engine.stores.events.get_impression(rid)
    assert impression.user_id == user and impression.surface == "search"
    assert {s.item_id: s.position for s in impression.items}[item] == 2

    page.goto(server.base + "/")
    after = page.eval_on_selector_all("#recommended li.card", "els => els.map(e => e.dataset.item)")
    assert after != before, "the home feed reacts to what the shopper just did"
    assert "Based on what you viewed" in page.inner_text("#recommended .help")
    assert item not in after, "a purchased item is not recommended again"
    shot(page, tmp_path, "storefront-home")


def test_dashboard_shows_the_traffic(shop, page, tmp_path):
    server, _, _ = shop
    page.goto(server.base + "/")  # a home feed and a search, so the test stands on its own
    page.goto(server.base + "/search?q=cable")
    page.goto(server.base + "/dashboard")
    page.fill("#admin-key", "admin-key-1234")
    page.click("button[type=submit]")
    page.wait_for_selector("#surface-kpis")
    table = page.inner_text("#surface-kpis")
    assert "search" in table and "home" in table
    assert "GET /v1/search" in page.content() or "GET /search" in page.content()
    assert page.locator("#models tr").count() >= 3
    page.fill("#rule-form input[name=name]", "Hide retired stock")
    page.select_option("#rule-form select[name=kind]", "hide")
    page.fill("#rule-form input[name=match_brands]", "Nobrand")
    page.click("#rule-form button[type=submit]")
    page.wait_for_selector("#flash")
    assert "is live" in page.inner_text("#flash")
    shot(page, tmp_path, "dashboard")


def test_dashboard_erases_a_shopper_after_the_id_is_typed_twice(shop, page):
    server, engine, _ = shop
    user = next(e.user_id for e in engine.stores.events.scan(types=["click"]))
    page.goto(server.base + "/dashboard")
    page.fill("#admin-key", "admin-key-1234")
    page.click("button[type=submit]")
    page.wait_for_selector("#privacy")
    form = "#shopper-erase-form"
    page.fill(f"{form} input[name=user_id]", user)
    page.fill(f"{form} input[name=confirm]", user + "x")
    page.click(f"{form} button[type=submit]")
    page.wait_for_selector("#flash")
    assert "nothing erased" in page.inner_text("#flash")
    assert list(engine.stores.events.scan(user_id=user))
    page.fill(f"{form} input[name=user_id]", user)
    page.fill(f"{form} input[name=confirm]", user)
    page.click(f"{form} button[type=submit]")
    page.wait_for_selector("#flash")
    assert f"erased {user}" in page.inner_text("#flash")
    assert not list(engine.stores.events.scan(user_id=user))


def test_search_box_suggests_as_the_shopper_types(shop, page, tmp_path):
    server, engine, _ = shop
    page.goto(server.base + "/")
    box = page.locator('form.searchbar input[name="q"]')
    box.press_sequentially("jack", delay=40)  # real keystrokes, each an input event
    page.wait_for_function(
        "() => { const d = document.getElementById('search-suggestions');"
        " return d.dataset.q === 'jack' && d.options.length > 0; }"
    )
    offered = page.eval_on_selector_all("#search-suggestions option", "els => els.map(e => e.value)")
    assert offered == [s.text for s in engine.suggest("jack", k=8)]
    shot(page, tmp_path, "storefront-suggest")
    # picking a suggestion (the browser's list fills the box with one "insertReplacementText"
    # input) and submitting searches for it; the search event says it was picked, and where
    page.evaluate(
        """(text) => { const box = document.querySelector('form.searchbar input[name="q"]');
           box.value = text;
           const pick = {inputType: "insertReplacementText", bubbles: true};
           box.dispatchEvent(new InputEvent("input", pick)); }""",
        offered[1],
    )
    box.press("Enter")
    page.wait_for_url("**/search?q=*")
    assert page.locator("#search-results").get_attribute("data-query") == offered[1]
    assert page.locator("#search-results li.card").count() > 0
    wait_events(page, 1)
    rid = page.locator("#search-results").get_attribute("data-request-id")
    (logged,) = [e for e in engine.stores.events.scan(types=["search"]) if e.request_id == rid]
    assert logged.context["suggestion"] == {"typed": "jack", "position": 2}
    # a query typed in full is not a pick
    box = page.locator('form.searchbar input[name="q"]')
    box.fill("")
    box.press_sequentially("jacket", delay=20)
    box.press("Enter")
    page.wait_for_url("**/search?q=jacket*")
    wait_events(page, 1)
    rid = page.locator("#search-results").get_attribute("data-request-id")
    (logged,) = [e for e in engine.stores.events.scan(types=["search"]) if e.request_id == rid]
    assert "suggestion" not in logged.context
