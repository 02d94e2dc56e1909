"""The browser client on a shop's own page, served from another origin than the API.

A real Chromium loads a page from one loopback port and `GET /v1/client.js` from the API on
another, so every call is cross-origin and passes only through the server's CORS answer. The
shopper searches, clicks the second result and buys it; the events must reach the store with
the request_id and position of the list, under the id the client kept for the shopper.
"""

from __future__ import annotations

import pytest
from starlette.applications import Starlette
from starlette.responses import HTMLResponse
from starlette.routing import Route

from shoploop.api import create_app
from tests.api.conftest import KEYS, make_settings
from tests.browser.conftest import ServerThread, free_port
from tests.engine.conftest import make_engine

pytestmark = pytest.mark.browser

# A shop page the way a shop would write one: its own markup, our script, ~20 lines of glue.
SHOP_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>My shop</title>
<script src="{api}/v1/client.js"></script></head>
<body>
<form id="search"><input name="q" value="jacket"><button>Search</button></form>
<ul id="results"></ul>
<script>
  const shop = Shoploop.connect({{ endpoint: "{api}", key: "{key}" }});
  window.shop = shop;
  let last = null;
  document.getElementById("search").addEventListener("submit", async (e) => {{
    e.preventDefault();
    last = await shop.search(e.target.q.value, {{ k: 5 }});
    const ul = document.getElementById("results");
    ul.innerHTML = "";
    for (const item of last.items) {{
      const li = document.createElement("li");
      li.innerHTML = '<a href="#" data-shoploop-item=""></a>';
      li.firstChild.setAttribute("data-shoploop-item", item.item_id);
      li.firstChild.textContent = item.title;
      ul.appendChild(li);
    }}
    ul.dataset.requestId = last.request_id;
    shop.bind(ul, last);
  }});
  window.lastList = () => last;
  window.buy = (itemId) =>
    shop.purchase([{{ item_id: itemId, price: 10, quantity: 1 }}], {{ list: last, order_id: "o-1" }});
</script></body></html>"""


KEY = "search-events-key"  # what a shop hands its pages: read and report, nothing else


@pytest.fixture(scope="module")
def api_and_shop():
    engine, _ = make_engine(n_products=300, n_users=80)
    page_port = free_port()
    origin = f"http://127.0.0.1:{page_port}"
    settings = make_settings(
        keys={**KEYS, KEY: frozenset({"search", "events"})}, allowed_origins=[origin], storefront=False
    )
    api = ServerThread(create_app(engine, settings)).start()
    html = SHOP_PAGE.format(api=api.base, key=KEY)

    async def index(_request):
        return HTMLResponse(html)

    shop = ServerThread(Starlette(routes=[Route("/", index)]), port=page_port).start()
    try:
        yield api, shop, engine
    finally:
        shop.stop()
        api.stop()


def wait_sent(page) -> None:
    page.wait_for_function("window.shop.pending === 0")


def test_a_shop_page_on_another_origin_searches_and_reports_back(api_and_shop, page):
    _, shop, engine = api_and_shop
    page.goto(shop.base + "/")
    user = page.evaluate("window.shop.userId")
    assert user.startswith("anon-")
    page.click("#search button")
    page.wait_for_selector("#results li")
    rid = page.get_attribute("#results", "data-request-id")
    second = page.locator("#results a").nth(1)
    item = second.get_attribute("data-shoploop-item")
    second.click()
    wait_sent(page)
    page.evaluate("id => window.buy(id)", item)
    wait_sent(page)
    # every feedback call the client offers is accepted as it builds it (unknown fields are refused)
    answers = page.evaluate(
        """id => Promise.all([
            window.shop.view(id, { list: { request_id: "carried-over", position: 2 } }),
            window.shop.addToCart(id, { list: window.lastList(), price: 10 }),
            window.shop.dislike(id, { list: window.lastList() }),
            window.shop.rate(id, 4),
            window.shop.track("remove_from_cart", { item_id: id }),
        ]).then(all => all.map(a => a.accepted))""",
        item,
    )
    assert answers == [1, 1, 1, 1, 1]

    stored = {e.type: e for e in engine.stores.events.scan(user_id=user) if e.type != "impression"}
    assert stored["add_to_cart"].request_id == rid and stored["view"].request_id == "carried-over"
    assert stored["search"].request_id == rid and stored["search"].query == "jacket"
    click = stored["click"]
    assert (click.request_id, click.item_id, click.position) == (rid, item, 2)
    assert stored["purchase"].request_id == rid and stored["purchase"].order_id == "o-1"
    assert stored["search"].session_id == click.session_id, "one visit, one session"
    impression = engine.stores.events.get_impression(rid)
    assert impression.user_id == user and impression.surface == "search"

    # The same shopper comes back: the id is kept, and a re-sent order is a duplicate, not a second one.
    page.reload()
    assert page.evaluate("window.shop.userId") == user
    again = page.evaluate("id => window.buy(id).then(a => a.duplicate)", item)
    assert again == 1


def test_the_client_sends_several_brands_and_an_order(api_and_shop, page):
    _, shop, engine = api_and_shop
    page.goto(shop.base + "/")
    answer = page.evaluate(
        """() => window.shop.search("jacket", { brand: ["Northpine", "Stormline"], sort: "price_asc",
            track: false }).then(r => ({ sort: r.sort, items: r.items.map(i => [i.item_id, i.price]) }))"""
    )
    assert answer["sort"] == "price_asc"
    assert [p for _, p in answer["items"]] == sorted(p for _, p in answer["items"])
    assert {engine.products[i].brand for i, _ in answer["items"]} == {"Northpine", "Stormline"}
    category = page.evaluate(
        """() => window.shop.browse("Clothing > Jackets", { k: 4, page: 2 })
            .then(r => ({ surface: r.surface, positions: r.items.map(i => i.position) }))"""
    )
    assert category == {"surface": "browse", "positions": [5, 6, 7, 8]}


def test_the_client_reports_refusals_with_the_field(api_and_shop, page):
    _, shop, _ = api_and_shop
    page.goto(shop.base + "/")
    error = page.evaluate(
        """() => window.shop.rate("no-such-item-field-check", 9).then(() => null, e => ({
            name: e.name, status: e.status, message: e.message }))"""
    )
    assert error["name"] == "ShoploopError" and error["status"] == 422
    assert "rating" in error["message"]
    bad_key = page.evaluate(
        """(api) => Shoploop.connect({ endpoint: api, key: "wrong-key-123" }).trending()
            .then(() => null, e => ({ status: e.status, field: e.field }))""",
        shop_api_base(page),
    )
    assert bad_key == {"status": 401, "field": "X-API-Key"}


def test_events_the_server_could_not_take_are_sent_later_exactly_once(api_and_shop, page):
    _, shop, engine = api_and_shop
    page.goto(shop.base + "/")
    user = page.evaluate("window.shop.userId")
    items = sorted(engine.products)[:3]
    page.context.set_offline(True)
    answers = page.evaluate("ids => Promise.all(ids.map(id => window.shop.rate(id, 5)))", items)
    assert [a["queued"] for a in answers] == [1, 1, 1]
    assert page.evaluate("window.shop.queued") == 3
    page.context.set_offline(False)  # the browser says it is online again: the outbox goes
    page.wait_for_function("window.shop.queued === 0 && window.shop.pending === 0")
    rated = sorted(e.item_id for e in engine.stores.events.scan(user_id=user) if e.type == "rating")
    assert rated == items

    # A page that closed with events still queued: the next page of the shop sends them, and
    # sending the same event twice (two tabs, a retry) stores it once.
    event = {
        "type": "view",
        "user_id": user,
        "item_id": items[0],
        "timestamp": "2026-12-07T10:00:00+00:00",
        "event_id": "ev-left-behind-1",
    }
    for _ in range(2):
        page.evaluate("ev => localStorage.setItem('shoploop_outbox', JSON.stringify([ev]))", event)
        page.reload()
        page.wait_for_function("window.shop.queued === 0 && window.shop.pending === 0")
    views = [e for e in engine.stores.events.scan(user_id=user) if e.event_id == "ev-left-behind-1"]
    assert len(views) == 1 and views[0].item_id == items[0]


def test_a_page_from_an_origin_the_shop_did_not_allow_gets_nothing(api_and_shop, page):
    api, _, _ = api_and_shop
    stranger = ServerThread(Starlette(routes=[Route("/", _blank)])).start()
    try:
        page.goto(stranger.base + "/")
        page.add_script_tag(url=api.base + "/v1/client.js")  # the script itself is public
        error = page.evaluate(
            """([api, key]) => Shoploop.connect({ endpoint: api, key: key }).search("jacket")
                .then(() => null, e => ({ status: e.status, code: e.code }))""",
            [api.base, KEY],
        )
    finally:
        stranger.stop()
    assert error == {"status": 0, "code": "network"}, "the browser withholds the answer"


async def _blank(_request):
    return HTMLResponse("<!doctype html><title>elsewhere</title><p>elsewhere</p>")


def shop_api_base(page) -> str:
    return page.evaluate("window.shop.endpoint")
