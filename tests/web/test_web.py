"""Storefront and dashboard pages rendered through the app (no browser): content, links, forms."""

from __future__ import annotations

import re
from collections import Counter
from urllib.parse import parse_qs, urlparse

import pytest

from tests.api.conftest import make_client

ADMIN_KEY = "admin-key-1234"


@pytest.fixture(scope="module")
def site():
    client, engine, bundle = make_client()
    with client:
        yield client, engine, bundle


def product_links(html: str) -> list[tuple[str, dict]]:
    out = []
    for href in re.findall(r'href="(/product/[^"]+)"', html):
        url = urlparse(href.replace("&amp;", "&"))
        out.append((url.path.rsplit("/", 1)[-1], {k: v[0] for k, v in parse_qs(url.query).items()}))
    return out


def test_home_shows_feeds_with_request_ids_and_sets_a_shopper(site):
    client, engine, _ = site
    client.cookies.clear()
    r = client.get("/")
    assert r.status_code == 200
    assert "Recommended for you" in r.text and "Trending" in r.text
    user = r.cookies.get("sl_user")
    assert user and user.startswith("visitor-")
    assert 'data-key="events-key-123"' in r.text  # the events-only key, never another
    assert "admin-key" not in r.text and "search-key" not in r.text
    links = product_links(r.text)
    assert links and all({"rid", "pos", "src"} <= set(q) for _, q in links)
    rid = links[0][1]["rid"]
    logged = engine.stores.events.get_impression(rid)
    assert logged is not None and logged.user_id == user
    assert [s.position for s in logged.items if s.item_id == links[0][0]] == [int(links[0][1]["pos"])]
    assert '<script src="/static/shop.js"></script>' in r.text
    assert client.get("/static/shop.js").status_code == 200
    assert client.get("/static/app.css").status_code == 200


def test_search_page_shows_correction_facets_and_results(site):
    client, _, _ = site
    r = client.get("/search", params={"q": "jackte"})
    assert r.status_code == 200
    assert 'id="corrected-query">jacket<' in r.text
    assert "<h3>Category</h3>" in r.text and "<h3>Brand</h3>" in r.text
    links = product_links(r.text)
    assert links and links[0][1]["src"] == "search"
    facet = re.search(r'href="(/search\?[^"]*category=[^"]+)"', r.text).group(1).replace("&amp;", "&")
    narrowed = client.get(facet)
    assert narrowed.status_code == 200 and "clear filters" in narrowed.text


def test_search_page_sorts_by_price_and_keeps_the_order_in_its_links(site):
    client, engine, _ = site
    r = client.get("/search", params={"q": "jacket", "sort": "price_asc"})
    assert r.status_code == 200
    prices = [engine.products[item].price for item, _ in product_links(r.text)]
    assert len(prices) > 3 and prices == sorted(prices)
    assert '<option value="price_asc" selected>' in r.text and "by price: low to high" in r.text
    facet = re.search(r'href="(/search\?[^"]*brand=[^"]+)"', r.text).group(1).replace("&amp;", "&")
    assert "sort=price_asc" in facet, "narrowing by a facet keeps the chosen order"
    plain = client.get("/search", params={"q": "jacket"}).text
    assert '<option value="relevance" selected>' in plain and "sort=" not in plain.split("<aside")[1][:2000]
    assert client.get("/search", params={"q": "jacket", "sort": "cheapest"}).status_code == 422


def brand_facet(html: str) -> dict[str, tuple[bool, str]]:
    """Brand -> (ticked, link) from the search page's brand facet list."""
    block = html.split('<ul class="facet-brand">')[1].split("</ul>")[0]
    out = {}
    for ticked, href, name in re.findall(r'<li( class="ticked")?><a href="([^"]+)">[☑☐] ([^<]+)</a>', block):
        out[name] = (bool(ticked), href.replace("&amp;", "&"))
    return out


def test_brands_tick_on_and_off_and_the_others_stay_countable(site):
    client, engine, _ = site
    start = brand_facet(client.get("/search", params={"q": "jacket"}).text)
    assert len(start) >= 2 and not any(t for t, _ in start.values())
    first, second = sorted(start)[:2]
    one = client.get(start[first][1]).text
    facet = brand_facet(one)
    assert facet[first][0] and set(facet) == set(start), "the other brands stay listed with counts"
    shown = {engine.products[i].brand for i, _ in product_links(one)}
    assert shown == {first}
    both = client.get(facet[second][1]).text
    assert {engine.products[i].brand for i, _ in product_links(both)} == {first, second}
    assert f"by {first} or {second}" in both
    untick = brand_facet(both)[first][1]
    assert {engine.products[i].brand for i, _ in product_links(client.get(untick).text)} == {second}


def test_home_links_every_top_level_category_with_its_size(site):
    client, engine, _ = site
    html = client.get("/").text
    menu = html.split('<nav id="categories"')[1].split("</nav>")[0]
    found = dict(re.findall(r'<a href="/category\?path=[^"]+">([^<]+) <small>\((\d+)\)</small></a>', menu))
    expected = Counter(p.category_path[0] for p in engine.products.values() if p.category_path)
    assert {name: int(n) for name, n in found.items()} == dict(expected)


def test_category_pages_from_the_product_breadcrumbs(site):
    client, engine, _ = site
    jacket = next(p for p in engine.products.values() if p.category_path == ("Clothing", "Jackets"))
    product = client.get(f"/product/{jacket.item_id}").text
    crumbs = re.findall(r'<a href="(/category\?path=[^"]+)">([^<]+)</a>', product)
    assert [name for _, name in crumbs] == ["Clothing", "Jackets"]
    clothing = client.get(crumbs[0][0].replace("&amp;", "&"))
    assert clothing.status_code == 200 and 'id="category-results"' in clothing.text
    deeper = re.findall(r'href="(/category\?path=Clothing\+%3E\+[^"&]+)"', clothing.text)
    assert any("Jackets" in href for href in deeper), "subcategories link to their own pages"
    page = client.get("/category", params={"path": "Clothing > Jackets"})
    links = product_links(page.text)
    assert links and all(q["src"] == "browse" for _, q in links)
    assert {engine.products[i].category for i, _ in links} == {"Jackets"}
    rid = links[0][1]["rid"]
    assert engine.stores.events.get_impression(rid).surface == "browse"
    assert "search-results" not in page.text, "a category page sends no search event"
    ticked = brand_facet(page.text)
    one = min(ticked)
    narrowed = client.get(ticked[one][1]).text
    assert {engine.products[i].brand for i, _ in product_links(narrowed)} == {one}
    by_price = client.get("/category", params={"path": "Clothing > Jackets", "sort": "price_desc"}).text
    prices = [engine.products[i].price for i, _ in product_links(by_price)]
    assert prices == sorted(prices, reverse=True)
    clothing = client.get("/category", params={"path": "Clothing", "sort": "price_desc"}).text
    prices = [engine.products[i].price for i, _ in product_links(clothing)]
    next_page = re.search(r'<a href="\?([^"]+)">next →</a>', clothing).group(1).replace("&amp;", "&")
    assert "sort=price_desc" in next_page and next_page.endswith("page=2")
    second = client.get("/category?" + next_page).text
    more = [engine.products[i].price for i, _ in product_links(second)]
    assert more and max(more) <= min(prices), "page 2 goes on in the same order"
    missing = client.get("/category", params={"path": "Space<script"})
    assert missing.status_code == 404 and "<script" not in missing.text


def test_search_box_has_suggestions_as_the_shopper_types(site):
    client, engine, _ = site
    page = client.get("/").text
    assert 'list="search-suggestions"' in page and '<datalist id="search-suggestions">' in page
    r = client.get("/suggest", params={"q": "jack"})  # public, like the pages: no key
    assert r.status_code == 200
    assert r.json() == {"q": "jack", "suggestions": [s.text for s in engine.suggest("jack", k=8)]}
    assert r.json()["suggestions"] and all("jack" in t for t in r.json()["suggestions"])
    assert client.get("/suggest", params={"q": "x" * 201}).status_code == 422


def test_search_page_follows_a_redirect_rule(site):
    client, engine, _ = site
    from shoploop.ranking.rules import Rule

    engine.rules.put(
        Rule(
            rule_id="r-sale",
            name="sale",
            kind="redirect",
            redirect_url="/sale",
            scope={"query_exact": ["sale"]},
        )
    )
    try:
        r = client.get("/search", params={"q": "sale"}, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/sale"
    finally:
        engine.rules.delete("r-sale")


def test_product_page_has_similar_and_bought_together(site):
    client, _, bundle = site
    item = next(e.items[0].item_id for e in bundle.events if e.type == "purchase")
    r = client.get(f"/product/{item}", params={"rid": "abc", "pos": 3, "src": "search"})
    assert r.status_code == 200
    assert 'data-rid="abc"' in r.text and 'data-pos="3"' in r.text
    assert "Similar items" in r.text and "Often bought together" in r.text
    assert 'id="add-to-cart"' in r.text
    assert client.get("/product/does-not-exist").status_code == 404


def test_shopper_switcher_sets_cookie_and_lists_demo_shoppers(site):
    client, _, _ = site
    home = client.get("/")
    shoppers = re.findall(r'<option value="(user-\d+)"', home.text)
    assert shoppers, "demo shoppers from the store are offered"
    r = client.get("/shopper", params={"user_id": shoppers[0], "next": "/search?q=x"}, follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/search?q=x"
    assert r.cookies.get("sl_user") == shoppers[0]
    evil = client.get("/shopper", params={"user_id": "u", "next": "//evil.example"}, follow_redirects=False)
    assert evil.headers["location"] == "/"


def test_cart_page_renders(site):
    client, _, _ = site
    r = client.get("/cart")
    assert r.status_code == 200 and 'id="checkout"' in r.text


def test_dashboard_needs_an_admin_key(site):
    client, _, _ = site
    client.cookies.clear()
    assert 'name="key"' in client.get("/dashboard").text
    bad = client.post("/dashboard/login", data={"key": "events-key-123"})
    assert bad.status_code == 401 and "not an admin key" in bad.text
    assert client.get("/dashboard/live").status_code == 401
    refused = client.post("/dashboard/rules/x/delete")  # the login page again, nothing done
    assert refused.status_code == 401 and "Merchandising rules" not in refused.text


@pytest.fixture
def admin(site):
    client, engine, bundle = site
    r = client.post("/dashboard/login", data={"key": ADMIN_KEY}, follow_redirects=False)
    assert r.status_code == 303
    assert (
        "httponly" in r.headers["set-cookie"].lower() and "samesite=strict" in r.headers["set-cookie"].lower()
    )
    client.cookies.set("sl_admin", ADMIN_KEY)
    yield client, engine, bundle
    client.cookies.clear()


def test_dashboard_shows_kpis_latency_models_and_charts(admin):
    client, _, _ = admin
    client.get("/search", params={"q": "jacket"})
    client.app.state.dashboard_history = None  # computed at most once a minute: start afresh
    r = client.get("/dashboard")
    assert r.status_code == 200
    for text in (
        "Live KPIs per surface",
        "Latency",
        "Models",
        "Merchandising rules",
        "A/B experiments",
        "<svg",
    ):
        assert text in r.text, text
    assert "GET /search" in r.text
    assert re.search(r"<td>search</td><td class=\"num\">\d+</td>", r.text)
    assert "recommender" in r.text and "Roll back recommender" in r.text
    searches = r.text[r.text.index('id="searches"') : r.text.index('id="models"')]
    assert "Most searched" in searches and "Found nothing" in searches and "Rarely clicked" in searches
    assert "<td>jacket</td>" in searches  # searched just above, within the panel's window
    live = client.get("/dashboard/live")
    assert live.status_code == 200 and 'id="surface-kpis"' in live.text


def test_dashboard_saves_synonyms_or_says_which_line_is_wrong(admin):
    client, engine, _ = admin
    r = client.post("/dashboard/synonyms", data={"rules": "zorblax => jacket\r\n"}, follow_redirects=False)
    assert r.status_code == 303 and "msg=" in r.headers["location"]
    assert engine.synonyms()["rules"] == "zorblax => jacket\n"
    assert "zorblax =&gt; jacket" in client.get("/dashboard").text  # shown back in the form
    bad = client.post("/dashboard/synonyms", data={"rules": "lonely"}, follow_redirects=False)
    assert "err=" in bad.headers["location"] and "line%201" in bad.headers["location"]
    assert engine.synonyms()["rules"] == "zorblax => jacket\n"
    client.post("/dashboard/synonyms", data={"rules": ""})
    assert engine.synonyms()["rules"] == ""


def test_dashboard_saves_the_suggest_blocklist(admin):
    client, engine, _ = admin
    word = engine.suggest("", k=1)[0].text.split()[0]
    r = client.post("/dashboard/suggest-blocklist", data={"terms": f"{word}\r\n"}, follow_redirects=False)
    assert "msg=" in r.headers["location"]
    assert all(word not in s.text.split() for s in engine.suggest("", k=30))
    assert f">{word}\n</textarea>" in client.get("/dashboard").text
    bad = client.post("/dashboard/suggest-blocklist", data={"terms": "???"}, follow_redirects=False)
    assert "err=" in bad.headers["location"]
    client.post("/dashboard/suggest-blocklist", data={"terms": ""})
    assert engine.suggest_blocklist.text == ""


def test_dashboard_rules_create_and_delete(admin):
    client, engine, _ = admin
    r = client.post(
        "/dashboard/rules",
        data={"name": "push brand", "kind": "boost", "match_brands": "Acme", "strength": "0.8"},
        follow_redirects=False,
    )
    assert r.status_code == 303 and "msg=" in r.headers["location"]
    rule = next(x for x in engine.rules.all() if x.name == "push brand")
    assert rule.kind == "boost" and rule.match.brands == ("Acme",) and rule.strength == 0.8
    bad = client.post("/dashboard/rules", data={"name": "p", "kind": "pin"}, follow_redirects=False)
    assert "err=" in bad.headers["location"]
    client.post(f"/dashboard/rules/{rule.rule_id}/delete")
    assert engine.rules.get(rule.rule_id) is None


def test_dashboard_promote_rollback_and_experiments(admin):
    client, engine, _ = admin
    v2 = engine.train("recommender")
    r = client.post(f"/dashboard/models/recommender/{v2.version}/promote", follow_redirects=False)
    assert "msg=" in r.headers["location"] and engine.versions["recommender"] == v2.version
    client.post("/dashboard/models/recommender/rollback")
    assert engine.versions["recommender"] == 1
    # the audit trail says why, newest first: the rollback above the promotion it undid
    page = client.get("/dashboard").text
    trail = page[page.index('id="decisions"') :]
    rolled = re.search(
        r"<td>recommender v1</td>\s*<td>rolled back</td>\s*<td><small>dashboard</small>", trail
    )
    promoted = re.search(rf"<td>recommender v{v2.version}</td>\s*<td>promoted</td>", trail)
    assert rolled and promoted and rolled.start() < promoted.start(), trail[:2000]
    r = client.post(
        "/dashboard/experiments", data={"surface": "home", "metric": "click"}, follow_redirects=False
    )
    assert "started" in r.headers["location"]
    running = client.app.state.experiments.list(status="running")
    assert len(running) == 1
    client.post(f"/dashboard/experiments/{running[0].id}/stop")
    assert client.app.state.experiments.list(status="running") == []
