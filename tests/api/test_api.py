"""Every route of the HTTP API: happy path, auth failures, bad input naming the field, idempotency."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.api.conftest import ADMIN, CATALOG, EVENTS, SEARCH, make_client
from tests.engine.conftest import make_engine


def now_iso(offset_s: float = 0) -> str:
    return (datetime.now(UTC) - timedelta(seconds=offset_s)).isoformat()


def error(r) -> dict:
    body = r.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"code", "message", "field"}, body
    return body["error"]


# ------------------------------------------------------------------------------------------ reads
def test_search_answers_a_logged_list_with_facets_and_understood_query(shared):
    client, engine, _ = shared
    r = client.get("/v1/search", params={"q": "drill", "k": 5, "user_id": "u-api"}, headers=SEARCH)
    assert r.status_code == 200
    body = r.json()
    assert body["request_id"] and body["surface"] == "search"
    assert 1 <= len(body["items"]) <= 5
    assert [i["position"] for i in body["items"]] == list(range(1, len(body["items"]) + 1))
    assert all(i["reasons"] is not None and "score" in i for i in body["items"])
    assert body["understood_query"]["original"] == "drill"
    assert body["facets"]
    logged = engine.stores.events.get_impression(body["request_id"])
    assert logged is not None and logged.user_id == "u-api"
    assert [s.item_id for s in logged.items] == [i["item_id"] for i in body["items"]]


def test_search_filters_and_pages(shared):
    client, _, _ = shared
    first = client.get("/v1/search", params={"q": "drill", "k": 3, "page": 1}, headers=SEARCH).json()
    second = client.get("/v1/search", params={"q": "drill", "k": 3, "page": 2}, headers=SEARCH).json()
    assert [i["position"] for i in second["items"]] == [4, 5, 6][: len(second["items"])]
    assert not {i["item_id"] for i in first["items"]} & {i["item_id"] for i in second["items"]}
    cheap = client.get("/v1/search", params={"q": "drill", "max_price": 20}, headers=SEARCH).json()
    assert all(i["price"] is None or i["price"] <= 20 for i in cheap["items"])


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/v1/recommendations/home", {"user_id": "user-0001", "k": 4}),
        ("/v1/recommendations/home", {"k": 4}),
        ("/v1/trending", {"k": 4}),
    ],
)
def test_recommendation_surfaces(shared, path, params):
    client, _, _ = shared
    r = client.get(path, params=params, headers=SEARCH)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["request_id"] and len(body["items"]) <= 4
    assert all(i["reasons"] for i in body["items"])


def test_item_surfaces_and_product_lookup(shared):
    client, _, bundle = shared
    item = next(e.items[0].item_id for e in bundle.events if e.type == "purchase")
    for path, surface in (
        (f"/v1/items/{item}/similar", "similar"),
        (f"/v1/items/{item}/bought-together", "bought_together"),
    ):
        body = client.get(path, params={"k": 5}, headers=SEARCH).json()
        assert body["surface"] == surface and body["request_id"]
        assert item not in [i["item_id"] for i in body["items"]]
    assert client.get(f"/v1/items/{item}", headers=SEARCH).json()["item_id"] == item


def test_suggest_completes_from_searches_and_catalog(shared):
    client, engine, _ = shared
    popular = client.get("/v1/suggest", headers=SEARCH).json()
    assert popular["q"] == "" and popular["suggestions"]
    assert {s["source"] for s in popular["suggestions"]} == {"searches"}
    first = popular["suggestions"][0]["text"]
    body = client.get("/v1/suggest", params={"q": first[:3], "k": 50}, headers=SEARCH).json()
    assert [s["text"] for s in body["suggestions"]] == [s.text for s in engine.suggest(first[:3], k=50)]
    assert first in [s["text"] for s in body["suggestions"]]
    assert client.get("/v1/suggest", params={"q": "drill"}, headers=EVENTS).status_code == 403
    assert error(client.get("/v1/suggest", params={"k": 0}, headers=SEARCH))["field"] == "k"
    assert error(client.get("/v1/suggest", params={"q": "x" * 201}, headers=SEARCH))["field"] == "q"


def test_query_analytics_for_admins(shared):
    client, engine, _ = shared
    body = client.get("/v1/analytics/queries", params={"all_time": True, "top": 3}, headers=ADMIN).json()
    rows = engine.search_queries(None)
    assert body["window_days"] is None and body["distinct_queries"] == len(rows) > 0
    assert [r["query"] for r in body["top"]] == [r.query for r in rows[:3]]
    assert all(r["no_result_searches"] > 0 for r in body["no_results"])
    assert all(r["lists"] >= 10 for r in body["unclicked"])
    assert body["from_suggestion_share"] == 0.0 and body["keystrokes_saved"] is None  # demo: no picks
    assert client.get("/v1/analytics/queries", headers=SEARCH).status_code == 403
    assert error(client.get("/v1/analytics/queries", params={"days": 0}, headers=ADMIN))["field"] == "days"


def test_synonyms_are_read_and_replaced_live(fresh):
    client, _, _ = fresh
    assert client.get("/v1/synonyms", headers=ADMIN).json()["rules"] == ""
    before = client.get("/v1/search", params={"q": "zorblax"}, headers=SEARCH).json()["understood_query"][
        "synonyms"
    ]
    assert before == []
    r = client.put("/v1/synonyms", json={"rules": "zorblax => jacket\n"}, headers=ADMIN)
    assert r.status_code == 200 and r.json()["rewrites"] == 1
    after = client.get("/v1/search", params={"q": "zorblax"}, headers=SEARCH).json()
    assert after["understood_query"]["synonyms"] == ["zorblax => jacket"] and after["items"]
    bad = client.put("/v1/synonyms", json={"rules": "ok, fine\nzorblax\n"}, headers=ADMIN)
    assert bad.status_code == 422 and error(bad)["field"] == "rules" and "line 2" in error(bad)["message"]
    assert client.get("/v1/synonyms", headers=ADMIN).json()["rules"] == "zorblax => jacket\n"
    assert client.put("/v1/synonyms", json={"rules": ""}, headers=SEARCH).status_code == 403


def test_suggest_blocklist_takes_suggestions_down_at_once(fresh):
    client, _, _ = fresh
    first = client.get("/v1/suggest", headers=SEARCH).json()["suggestions"][0]["text"]
    r = client.put("/v1/suggest/blocklist", json={"terms": f"{first}\n"}, headers=ADMIN)
    assert r.status_code == 200 and r.json()["count"] == 1
    assert first not in [s["text"] for s in client.get("/v1/suggest", headers=SEARCH).json()["suggestions"]]
    assert client.get("/v1/suggest/blocklist", headers=ADMIN).json() == {"terms": f"{first}\n", "count": 1}
    bad = client.put("/v1/suggest/blocklist", json={"terms": "???"}, headers=ADMIN)
    assert bad.status_code == 422 and error(bad)["field"] == "terms"
    assert client.put("/v1/suggest/blocklist", json={"terms": ""}, headers=SEARCH).status_code == 403


def test_unknown_item_is_404_naming_it(shared):
    client, _, _ = shared
    for path in ("/v1/items/nope/similar", "/v1/items/nope/bought-together", "/v1/items/nope"):
        r = client.get(path, headers=SEARCH)
        assert r.status_code == 404
        assert error(r)["field"] == "item_id"


# ------------------------------------------------------------------------------------------ auth
@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("get", "/v1/search?q=drill", None),
        ("get", "/v1/trending", None),
        ("post", "/v1/events", {"events": []}),
        ("put", "/v1/items/X1", {"title": "x"}),
        ("post", "/v1/items/batch", {"items": []}),
        ("delete", "/v1/items/X1", None),
        ("delete", "/v1/users/u1", None),
        ("get", "/v1/models", None),
        ("get", "/v1/models/decisions", None),
        ("get", "/v1/suggest?q=dr", None),
        ("get", "/v1/analytics/queries", None),
        ("put", "/v1/synonyms", {"rules": ""}),
        ("put", "/v1/suggest/blocklist", {"terms": ""}),
        ("post", "/v1/models/search/1/promote", None),
        ("post", "/v1/models/search/rollback", None),
        ("get", "/v1/rules", None),
        ("post", "/v1/rules", {}),
        ("delete", "/v1/rules/r1", None),
        ("get", "/v1/experiments", None),
        ("post", "/v1/experiments/e1/stop", None),
    ],
)
def test_missing_or_unknown_key_is_401(shared, method, path, body):
    client, _, _ = shared
    kwargs = {"json": body} if body is not None else {}
    for headers in ({}, {"X-API-Key": "not-a-real-key"}, {"Authorization": "Bearer not-a-real-key"}):
        r = client.request(method, path, headers=headers, **kwargs)
        assert r.status_code == 401, (path, headers, r.text)
        assert error(r)["code"] == "unauthorized"


@pytest.mark.parametrize(
    ("method", "path", "key"),
    [
        ("get", "/v1/search?q=drill", EVENTS),
        ("post", "/v1/events", SEARCH),
        ("put", "/v1/items/X1", EVENTS),
        ("delete", "/v1/items/X1", SEARCH),
        ("delete", "/v1/users/u1", CATALOG),
        ("get", "/v1/models", CATALOG),
        ("get", "/v1/models/decisions", SEARCH),
        ("get", "/v1/rules", EVENTS),
        ("post", "/v1/experiments", SEARCH),
    ],
)
def test_wrong_scope_is_403(shared, method, path, key):
    client, _, _ = shared
    r = client.request(method, path, headers=key, json={"events": []} if method != "get" else None)
    assert r.status_code == 403, r.text
    assert error(r)["code"] == "forbidden"


def test_bearer_token_and_admin_superset(shared):
    client, _, _ = shared
    assert client.get("/v1/trending", headers={"Authorization": "Bearer search-key-123"}).status_code == 200
    assert client.get("/v1/trending", headers=ADMIN).status_code == 200  # admin holds every scope


def test_public_reads_open_reads_but_never_writes():
    client, _, _ = make_client(public_reads=True)
    with client:
        assert client.get("/v1/search", params={"q": "drill"}).status_code == 200
        assert client.get("/v1/trending").status_code == 200
        # a key that is sent must still be valid
        assert client.get("/v1/trending", headers={"X-API-Key": "typo-key-123"}).status_code == 401
        assert client.post("/v1/events", json={"events": []}).status_code == 401
        assert client.put("/v1/items/X1", json={"title": "x"}).status_code == 401
        assert client.get("/v1/models").status_code == 401


# ------------------------------------------------------------------------------------------ limits
@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"q": "drill", "k": 0}, "k"),
        ({"q": "drill", "k": 101}, "k"),
        ({"q": "drill", "k": "ten"}, "k"),
        ({"q": "drill", "page": 0}, "page"),
        ({"q": "drill", "page": 51}, "page"),
        ({"q": "x" * 201}, "q"),
        ({"q": ""}, "q"),
        ({"q": "   "}, "q"),
        ({}, "q"),
        ({"q": "drill", "min_price": -1}, "min_price"),
        ({"q": "drill", "min_price": 50, "max_price": 10}, "filters"),
        ({"q": "drill", "user_id": "u" * 201}, "user_id"),
    ],
)
def test_bad_search_input_is_422_naming_the_field(shared, params, field):
    client, _, _ = shared
    r = client.get("/v1/search", params=params, headers=SEARCH)
    assert r.status_code == 422, r.text
    assert error(r)["field"] == field


def test_k_limit_on_every_list_route(shared):
    client, _, bundle = shared
    item = bundle.products[0].item_id
    for path in ("/v1/recommendations/home", "/v1/trending", f"/v1/items/{item}/similar"):
        r = client.get(path, params={"k": 1000}, headers=SEARCH)
        assert r.status_code == 422 and error(r)["field"] == "k"


def test_body_too_large_is_413(shared):
    client, _, _ = shared
    big = {"events": [{"type": "view", "user_id": "u", "item_id": "x" * 100, "timestamp": now_iso()}] * 1000}
    r = client.post("/v1/events", json=big, headers=EVENTS)
    assert r.status_code == 413
    assert error(r)["field"] == "body"


def test_batch_too_large_is_422_naming_events(shared):
    client, _, bundle = shared
    item = bundle.products[0].item_id
    events = [{"type": "view", "user_id": "u", "item_id": item, "timestamp": now_iso()} for _ in range(51)]
    r = client.post("/v1/events", json={"events": events}, headers=EVENTS)
    assert r.status_code == 422 and error(r)["field"] == "events"


def test_malformed_json_is_422(shared):
    client, _, _ = shared
    r = client.post(
        "/v1/events", content=b"{not json", headers={**EVENTS, "Content-Type": "application/json"}
    )
    assert r.status_code == 422
    assert error(r)["code"] == "invalid_request"
    r = client.post("/v1/events", json={"rows": []}, headers=EVENTS)
    assert r.status_code == 422 and error(r)["field"] == "events"


# ------------------------------------------------------------------------------------------ events
def test_events_answer_per_row_and_resends_are_duplicates(shared):
    client, engine, _ = shared
    served = client.get("/v1/search", params={"q": "drill", "k": 3, "user_id": "u-ev"}, headers=SEARCH).json()
    item = served["items"][1]
    rows = [
        {
            "event_id": "api-click-1",
            "type": "click",
            "user_id": "u-ev",
            "item_id": item["item_id"],
            "request_id": served["request_id"],
            "position": 2,
            "timestamp": now_iso(5),
        },
        {
            "event_id": "api-bad-1",
            "type": "click",
            "user_id": "u-ev",
            "item_id": item["item_id"],
            "timestamp": "yesterday",
        },
        {
            "event_id": "api-bad-2",
            "type": "view",
            "user_id": "u-ev",
            "item_id": "no-such-item",
            "timestamp": now_iso(),
        },
    ]
    first = client.post("/v1/events", json={"events": rows}, headers=EVENTS).json()
    assert [r["status"] for r in first["results"]] == ["accepted", "rejected", "rejected"]
    assert first["accepted"] == 1 and first["rejected"] == 2
    assert "timestamp" in first["results"][1]["reason"]
    assert first["results"][2]["reason"]
    again = client.post("/v1/events", json={"events": rows[:1]}, headers=EVENTS).json()
    assert again["results"][0]["status"] == "duplicate"
    stored = [e for e in engine.stores.events.scan(user_id="u-ev", types=["click"])]
    assert len(stored) == 1
    assert stored[0].request_id == served["request_id"] and stored[0].position == 2


def test_empty_batch_is_fine(shared):
    client, _, _ = shared
    assert client.post("/v1/events", json={"events": []}, headers=EVENTS).json()["accepted"] == 0


# ------------------------------------------------------------------------------------------ catalog
def test_catalog_changes_are_visible_without_restart(fresh):
    client, _, _ = fresh
    body = {"title": "Zyxquartz telescope mount", "price": 99.0, "category_path": ["Optics"], "brand": "Zyx"}
    r = client.put("/v1/items/NEW-1", json=body, headers=CATALOG)
    assert r.status_code == 200 and r.json()["upserted"] == 1
    hits = client.get("/v1/search", params={"q": "zyxquartz"}, headers=SEARCH).json()["items"]
    assert hits[0]["item_id"] == "NEW-1" and hits[0]["price"] == 99.0
    # replace: the new price is served at once
    client.put("/v1/items/NEW-1", json={**body, "price": 79.0}, headers=CATALOG)
    assert client.get("/v1/items/NEW-1", headers=SEARCH).json()["price"] == 79.0
    batch = {
        "items": [{"item_id": f"B-{i}", "title": f"Plumbob gizmo {i}", "price": 5.0 + i} for i in range(3)]
    }
    r = client.post("/v1/items/batch", json=batch, headers=CATALOG)
    assert r.status_code == 200 and r.json()["upserted"] == 3
    found = {
        i["item_id"]
        for i in client.get("/v1/search", params={"q": "plumbob gizmo"}, headers=SEARCH).json()["items"]
    }
    assert {"B-0", "B-1", "B-2"} <= found
    assert client.delete("/v1/items/NEW-1", headers=CATALOG).status_code == 200
    after = client.get("/v1/search", params={"q": "zyxquartz telescope", "k": 50}, headers=SEARCH).json()[
        "items"
    ]
    assert "NEW-1" not in [i["item_id"] for i in after]
    assert client.get("/v1/items/NEW-1", headers=SEARCH).status_code == 404
    assert client.delete("/v1/items/NEW-1", headers=CATALOG).status_code == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"title": ""}, "title"),
        ({"title": "ok", "price": -3}, "price"),
        ({"title": "ok", "colour": "red"}, "colour"),
        ({"title": "ok", "item_id": "OTHER"}, "item_id"),
        ({"title": "ok", "currency": "dollars"}, "currency"),
    ],
)
def test_bad_product_is_422_naming_the_field(shared, body, field):
    client, _, _ = shared
    r = client.put("/v1/items/X1", json=body, headers=CATALOG)
    assert r.status_code == 422, r.text
    assert error(r)["field"] == field


def test_batch_is_all_or_nothing_and_names_the_row(shared):
    client, engine, _ = shared
    batch = {
        "items": [{"item_id": "OK-1", "title": "fine"}, {"item_id": "BAD-1", "title": "bad", "price": 0}]
    }
    r = client.post("/v1/items/batch", json=batch, headers=CATALOG)
    assert r.status_code == 422 and error(r)["field"] == "items.1.price"
    assert "OK-1" not in engine.products
    dup = {"items": [{"item_id": "D", "title": "a"}, {"item_id": "D", "title": "b"}]}
    assert error(client.post("/v1/items/batch", json=dup, headers=CATALOG))["field"] == "items"


# ------------------------------------------------------------------------------------------ users
def test_delete_user_erases_and_returns_a_receipt(fresh):
    client, engine, _ = fresh
    user = next(e.user_id for e in engine.stores.events.scan(types=["purchase"]))
    assert engine.online.known_user(user)
    r = client.delete(f"/v1/users/{user}", headers=ADMIN)
    assert r.status_code == 200, r.text
    receipt = r.json()
    assert receipt["user_id"] == user and receipt["events_deleted"] > 0
    assert "online_state" in receipt
    assert not list(engine.stores.events.scan(user_id=user))
    assert not engine.online.known_user(user)
    again = client.delete(f"/v1/users/{user}", headers=ADMIN).json()
    assert again["events_deleted"] == 0


# ------------------------------------------------------------------------------------------ models
def test_models_list_promote_and_rollback(fresh):
    client, engine, _ = fresh
    models = client.get("/v1/models", headers=ADMIN).json()
    assert {m["name"] for m in models} == {"search", "recommender"}
    assert all(m["active"] for m in models)
    before = [
        i["item_id"]
        for i in client.get("/v1/recommendations/home", params={"k": 8}, headers=SEARCH).json()["items"]
    ]
    v2 = engine.train("recommender")
    r = client.post(f"/v1/models/recommender/{v2.version}/promote", json={"reason": "test"}, headers=ADMIN)
    assert r.status_code == 200 and r.json()["active"] and r.json()["version"] == v2.version
    assert engine.versions["recommender"] == v2.version
    r = client.post("/v1/models/recommender/rollback", headers=ADMIN)
    assert r.status_code == 200 and r.json()["version"] == 1
    after = [
        i["item_id"]
        for i in client.get("/v1/recommendations/home", params={"k": 8}, headers=SEARCH).json()["items"]
    ]
    assert set(after) == set(before)
    assert client.post("/v1/models/recommender/99/promote", headers=ADMIN).status_code == 404
    assert client.post("/v1/models/search/rollback", headers=ADMIN).status_code == 409
    assert client.post("/v1/models/ranker/rollback", headers=ADMIN).status_code == 409, "none to switch off"
    assert error(client.post("/v1/models/recommender/zero/promote", headers=ADMIN))["field"] == "version"


def test_model_decisions_say_why_newest_first(fresh):
    client, engine, _ = fresh
    v2 = engine.train("recommender")
    client.post(
        f"/v1/models/recommender/{v2.version}/promote", json={"reason": "better offline"}, headers=ADMIN
    )
    client.post("/v1/models/recommender/rollback", json={"reason": "complaints"}, headers=ADMIN)
    trail = client.get("/v1/models/decisions", params={"name": "recommender"}, headers=ADMIN).json()
    assert [(d["version"], d["action"], d["reason"]) for d in trail[:4]] == [
        (1, "rollback", "complaints"),
        (v2.version, "reject", "rolled back: complaints"),
        (v2.version, "promote", "better offline"),
        (1, "retire", f"replaced by v{v2.version}"),
    ]
    assert trail[2]["evidence"] == dict(engine.stores.registry.get("recommender", v2.version).metrics)
    kinds = client.get(
        "/v1/models/decisions",
        params=[("action", "promote"), ("action", "rollback"), ("limit", "2")],
        headers=ADMIN,
    ).json()
    assert [(d["name"], d["action"]) for d in kinds] == [
        ("recommender", "rollback"),
        ("recommender", "promote"),
    ]
    assert {d["name"] for d in client.get("/v1/models/decisions", headers=ADMIN).json()} == {
        "recommender",
        "search",
    }
    bad = client.get("/v1/models/decisions", params={"action": "deploy"}, headers=ADMIN)
    assert bad.status_code == 422 and error(bad)["field"] == "action.0"
    assert error(client.get("/v1/models/decisions", params={"limit": 0}, headers=ADMIN))["field"] == "limit"


# ------------------------------------------------------------------------------------------ rules
def test_rules_crud_and_precedence_through_the_api(fresh):
    client, _, _ = fresh
    base = client.get("/v1/search", params={"q": "jacket", "k": 6}, headers=SEARCH).json()["items"]
    top, third, fifth = base[0]["item_id"], base[2]["item_id"], base[4]["item_id"]
    pin = {
        "rule_id": "pin-fifth",
        "name": "pin fifth to top",
        "kind": "pin",
        "item_id": fifth,
        "position": 1,
        "scope": {"query_contains": ["jacket"]},
    }
    r = client.post("/v1/rules", json=pin, headers=ADMIN)
    assert r.status_code == 201, r.text
    assert client.post("/v1/rules", json=pin, headers=ADMIN).status_code == 409
    items = client.get("/v1/search", params={"q": "jacket", "k": 6}, headers=SEARCH).json()["items"]
    assert items[0]["item_id"] == fifth
    assert items[0]["explanation"]["rules"][0]["name"] == "pin fifth to top"
    # hide beats pin
    hide = {"rule_id": "hide-fifth", "name": "recall", "kind": "hide", "match": {"item_ids": [fifth]}}
    assert client.post("/v1/rules", json=hide, headers=ADMIN).status_code == 201
    items = client.get("/v1/search", params={"q": "jacket", "k": 6}, headers=SEARCH).json()["items"]
    assert fifth not in [i["item_id"] for i in items]
    assert items[0]["item_id"] == top
    # boost the third past everything; scoped to search so home is untouched
    boost = {
        "name": "push",
        "kind": "boost",
        "strength": 1.0,
        "match": {"item_ids": [third]},
        "scope": {"surfaces": ["search"]},
    }
    created = client.post("/v1/rules", json=boost, headers=ADMIN).json()
    items = client.get("/v1/search", params={"q": "jacket", "k": 6}, headers=SEARCH).json()["items"]
    assert items[0]["item_id"] == third
    # redirect beats everything
    redirect = {
        "name": "go",
        "kind": "redirect",
        "redirect_url": "/sale",
        "scope": {"query_exact": ["jacket"]},
    }
    assert client.put("/v1/rules/redir", json=redirect, headers=ADMIN).status_code == 200
    body = client.get("/v1/search", params={"q": "jacket"}, headers=SEARCH).json()
    assert body["redirect"] == "/sale" and body["items"] == []
    assert len(client.get("/v1/rules", headers=ADMIN).json()) == 4
    assert client.get("/v1/rules/redir", headers=ADMIN).json()["kind"] == "redirect"
    for rid in ("redir", created["rule_id"], "hide-fifth", "pin-fifth"):
        assert client.delete(f"/v1/rules/{rid}", headers=ADMIN).status_code == 204
    assert client.delete("/v1/rules/redir", headers=ADMIN).status_code == 404
    assert client.get("/v1/rules/redir", headers=ADMIN).status_code == 404
    items = client.get("/v1/search", params={"q": "jacket", "k": 6}, headers=SEARCH).json()["items"]
    assert items[0]["item_id"] == top


def test_expired_rule_does_nothing(fresh):
    client, _, _ = fresh
    base = client.get("/v1/search", params={"q": "jacket", "k": 5}, headers=SEARCH).json()["items"]
    past = {
        "name": "old",
        "kind": "pin",
        "item_id": base[4]["item_id"],
        "position": 1,
        "start": "2020-01-01T00:00:00Z",
        "end": "2020-02-01T00:00:00Z",
    }
    assert client.post("/v1/rules", json=past, headers=ADMIN).status_code == 201
    items = client.get("/v1/search", params={"q": "jacket", "k": 5}, headers=SEARCH).json()["items"]
    assert items[0]["item_id"] == base[0]["item_id"]


@pytest.mark.parametrize(
    ("rule", "field"),
    [
        ({"name": "p", "kind": "pin", "item_id": "x"}, "body"),
        ({"name": "p", "kind": "shove"}, "kind"),
        ({"name": "b", "kind": "boost", "strength": 2, "match": {"brands": ["x"]}}, "strength"),
        ({"name": "", "kind": "hide", "match": {"brands": ["x"]}}, "name"),
        ({"name": "h", "kind": "hide", "match": {}}, "match"),
    ],
)
def test_bad_rule_is_422_naming_the_field(shared, rule, field):
    client, _, _ = shared
    r = client.post("/v1/rules", json=rule, headers=ADMIN)
    assert r.status_code == 422, r.text
    assert error(r)["field"] == field


# ------------------------------------------------------------------------------------------ experiments
def test_experiment_lifecycle_records_exposures(fresh):
    client, _, _ = fresh
    body = {
        "id": "home-test",
        "surface": "home",
        "variants": [{"name": "control", "share": 0.5}, {"name": "treatment", "share": 0.5}],
        "primary_metric": {"name": "click"},
    }
    r = client.post("/v1/experiments", json=body, headers=ADMIN)
    assert r.status_code == 201, r.text
    assert r.json()["experiment"]["status"] == "running"
    assert client.post("/v1/experiments", json=body, headers=ADMIN).status_code == 409
    for n in range(20):
        client.get("/v1/recommendations/home", params={"user_id": f"ab-user-{n}", "k": 3}, headers=SEARCH)
    client.get("/v1/trending", params={"user_id": "not-home"}, headers=SEARCH)  # other surface: no exposure
    got = client.get("/v1/experiments/home-test", headers=ADMIN).json()
    assert sum(got["exposures"].values()) == 20
    assert set(got["exposures"]) <= {"control", "treatment"}
    assert [e["experiment"]["id"] for e in client.get("/v1/experiments", headers=ADMIN).json()] == [
        "home-test"
    ]
    stopped = client.post("/v1/experiments/home-test/stop", headers=ADMIN)
    assert stopped.status_code == 200 and stopped.json()["experiment"]["status"] == "stopped"
    assert client.post("/v1/experiments/home-test/stop", headers=ADMIN).status_code == 409
    assert client.get("/v1/experiments/nope", headers=ADMIN).status_code == 404
    bad = {**body, "id": "x", "variants": [{"name": "a", "share": 0.7}, {"name": "b", "share": 0.7}]}
    r = client.post("/v1/experiments", json=bad, headers=ADMIN)
    assert r.status_code == 422 and error(r)["field"] == "variants"


def test_experiment_variants_must_be_servable(fresh):
    client, _, _ = fresh
    base = {"surface": "search", "primary_metric": {"name": "click"}}
    cases = [
        ({"model_version": "search:v2"}, "variants[1].model_version", "cannot differ per variant"),
        ({"model_version": "recommender:v7"}, "variants[1].model_version", "registry has no recommender v7"),
        ({"model_version": "ranker:v9"}, "variants[1].model_version", "registry has no ranker v9"),
        ({"model_version": "ranker"}, "variants[1].model_version", "is not 'name:vN'"),
        ({"policy": "greedy"}, "variants[1].policy", "must be one of"),
    ]
    for n, (treatment, field, why) in enumerate(cases):
        body = {
            **base,
            "id": f"v{n}",
            "variants": [{"name": "c", "share": 0.5}, {"name": "t", "share": 0.5, **treatment}],
        }
        r = client.post("/v1/experiments", json=body, headers=ADMIN)
        assert r.status_code == 422, r.text
        assert error(r)["field"] == field and why in error(r)["message"], r.text
        assert client.get(f"/v1/experiments/v{n}", headers=ADMIN).status_code == 404  # nothing stored


def test_a_search_experiment_serves_each_shopper_their_variant(fresh):
    from shoploop.feedback.exploration import ExplorationConfig, ExplorationPolicy

    client, engine, _ = fresh
    engine.exploration = ExplorationPolicy(ExplorationConfig(budget=1.0))  # the default always explores
    body = {
        "id": "calm-search",
        "surface": "search",
        "variants": [
            {"name": "explore", "share": 0.5},
            {"name": "calm", "share": 0.5, "policy": "deterministic"},
        ],
        "primary_metric": {"name": "click"},
    }
    assert client.post("/v1/experiments", json=body, headers=ADMIN).status_code == 201
    from shoploop.evaluation.ab import assign

    policies: dict[str, set[str]] = {"explore": set(), "calm": set()}
    for n in range(40):
        user = f"variant-user-{n}"
        arm = assign(user, salt="calm-search", variants=["explore", "calm"], shares=[0.5, 0.5])
        served = client.get("/v1/search", params={"q": "drill", "user_id": user}, headers=SEARCH).json()
        policies[arm].add(served["policy"])
    assert policies["calm"] == {"deterministic"}  # the variant switched exploration off
    assert policies["explore"] and policies["explore"] != {"deterministic"}  # the control explored
    got = client.get("/v1/experiments/calm-search", headers=ADMIN).json()
    assert sum(got["exposures"].values()) == 40


def test_a_variant_whose_model_cannot_load_is_served_the_defaults(fresh):
    from shoploop.engine.training import register

    client, engine, _ = fresh
    broken = register(
        engine.stores, "cross_encoder", lambda d: (d / "junk.txt").write_text("x"), metrics={}, config={}
    ).version
    body = {
        "id": "broken-ce",
        "surface": "search",
        "variants": [
            {"name": "control", "share": 0.5},
            {"name": "treatment", "share": 0.5, "model_version": f"cross_encoder:v{broken}"},
        ],
        "primary_metric": {"name": "click"},
    }
    assert client.post("/v1/experiments", json=body, headers=ADMIN).status_code == 201
    for n in range(12):  # about half of them are in the treatment
        r = client.get("/v1/search", params={"q": "drill", "user_id": f"b-{n}"}, headers=SEARCH)
        assert r.status_code == 200 and "cross_encoder" not in r.json()["model_version"]


def test_one_running_experiment_per_surface(fresh):
    client, _, _ = fresh
    arms = [{"name": "a", "share": 0.5}, {"name": "b", "share": 0.5}]
    first = {"id": "s1", "surface": "search", "variants": arms, "primary_metric": {"name": "click"}}
    assert client.post("/v1/experiments", json=first, headers=ADMIN).status_code == 201
    for n, surface in enumerate(["search", None]):  # the same surface, or every surface
        clash = {**first, "id": f"clash{n}", "surface": surface}
        r = client.post("/v1/experiments", json=clash, headers=ADMIN)
        assert r.status_code == 409 and error(r)["field"] == "surface" and "'s1'" in error(r)["message"]
    home = {**first, "id": "h1", "surface": "home"}
    assert client.post("/v1/experiments", json=home, headers=ADMIN).status_code == 201  # no overlap
    draft = {**first, "id": "s2", "start": False}
    assert client.post("/v1/experiments", json=draft, headers=ADMIN).status_code == 201
    assert client.post("/v1/experiments/s2/start", headers=ADMIN).status_code == 409
    assert client.post("/v1/experiments/s1/stop", headers=ADMIN).status_code == 200
    assert client.post("/v1/experiments/s2/start", headers=ADMIN).status_code == 200


def test_the_server_picks_up_catalog_changes_written_by_another_process():
    import time

    from shoploop.domain import Product

    client, engine, _ = make_client(store_sync_seconds=0.1)
    with client:
        # Written to the stores directly, as `shoploop import` in another process would.
        engine.stores.catalog.upsert([Product(item_id="sync-1", title="Qwertzuiop garden gnome", price=5.0)])
        deadline = time.monotonic() + 5.0
        found = False
        while not found and time.monotonic() < deadline:
            r = client.get("/v1/search", params={"q": "qwertzuiop gnome", "k": 3}, headers=SEARCH)
            found = any(i["item_id"] == "sync-1" for i in r.json()["items"])
            time.sleep(0.05)
        assert found
        assert client.app.state.store_sync.last_changes == {"catalog": 1}


# ------------------------------------------------------------------------------------------ operations
def test_health_ready_and_metrics(shared):
    client, _, _ = shared
    assert client.get("/healthz").json()["status"] == "ok"
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["ready"]
    client.get("/v1/search", params={"q": "drill"}, headers=SEARCH)
    text = client.get("/metrics").text
    assert 'shoploop_http_request_duration_seconds_bucket{le="0.001",method="GET",route="/v1/search"' in text
    assert 'shoploop_served_lists_total{surface="search"}' in text
    assert 'shoploop_model_active_version{model="recommender"} 1.0' in text
    assert "shoploop_surface_ctr" in text and "shoploop_events_per_minute" in text


def test_events_counters_and_ctr_gauge_follow_traffic():
    client, _, _ = make_client()
    with client:
        served = client.get("/v1/search", params={"q": "drill", "k": 4}, headers=SEARCH).json()
        item = served["items"][0]
        click = {
            "type": "click",
            "user_id": "m1",
            "item_id": item["item_id"],
            "request_id": served["request_id"],
            "position": 1,
            "timestamp": now_iso(1),
        }
        client.post("/v1/events", json={"events": [click, {"type": "nope"}]}, headers=EVENTS)
        text = client.get("/metrics").text
        assert 'shoploop_events_total{status="accepted"} 1.0' in text
        assert 'shoploop_events_total{status="rejected"} 1.0' in text
        ctr = next(
            line for line in text.splitlines() if line.startswith('shoploop_surface_ctr{surface="search"}')
        )
        assert float(ctr.split()[-1]) == pytest.approx(1 / len(served["items"]))


def test_readyz_is_503_until_started():
    from fastapi.testclient import TestClient

    from shoploop.api import create_app
    from shoploop.engine import build_engine
    from tests.api.conftest import make_settings
    from tests.engine.conftest import FAST

    engine = build_engine(FAST)
    engine.products["x"] = None  # a catalog but no index yet: not ready
    client = TestClient(create_app(engine, make_settings()))  # no `with`: the lifespan has not run
    assert client.get("/readyz").status_code == 503
    assert client.get("/healthz").status_code == 200


def test_openapi_documents_examples_and_security(shared):
    client, _, _ = shared
    spec = client.get("/openapi.json").json()
    paths = spec["paths"]
    for path in (
        "/v1/search",
        "/v1/recommendations/home",
        "/v1/items/{item_id}/similar",
        "/v1/items/{item_id}/bought-together",
        "/v1/trending",
        "/v1/events",
        "/v1/items/{item_id}",
        "/v1/items/batch",
        "/v1/users/{user_id}",
        "/v1/models",
        "/v1/models/{name}/{version}/promote",
        "/v1/models/{name}/rollback",
        "/v1/rules",
        "/v1/rules/{rule_id}",
        "/v1/experiments",
        "/v1/experiments/{experiment_id}",
        "/healthz",
        "/readyz",
        "/metrics",
    ):
        assert path in paths, path
    assert "APIKeyHeader" in spec["components"]["securitySchemes"]
    assert "EventBatch" in str(paths["/v1/events"]["post"]["requestBody"])
    assert spec["components"]["schemas"]["EventBatch"]["examples"][0]["events"][0]["request_id"]
    assert spec["components"]["schemas"]["ExperimentIn"]["examples"]
    assert paths["/v1/search"]["get"]["parameters"][0]["schema"]["examples"] == ["cordless drill"]
    assert "422" in paths["/v1/search"]["get"]["responses"]


def test_lifespan_starts_and_stops_the_retraining_loop():
    engine, _ = make_engine()
    from fastapi.testclient import TestClient

    from shoploop.api import create_app
    from tests.api.conftest import make_settings

    app = create_app(engine, make_settings(retrain=True, retrain_interval_seconds=3600))
    with TestClient(app) as client:
        hook = app.state.retrain
        assert hook.status.startswith("running")
        assert client.get("/healthz").status_code == 200
    assert hook.status == "stopped"
    assert hook.task.done()


def test_search_sorted_by_price_with_several_brands(shared):
    client, engine, _ = shared
    answer = client.get(
        "/v1/search",
        params=[("q", "jacket"), ("sort", "price_desc"), ("brand", "Northpine"), ("brand", "stormline")],
        headers=SEARCH,
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["sort"] == "price_desc" and body["policy"] == "sorted:price_desc"
    prices = [i["price"] for i in body["items"]]
    assert prices and prices == sorted(prices, reverse=True)
    assert {engine.products[i["item_id"]].brand for i in body["items"]} == {"Northpine", "Stormline"}
    bad = client.get("/v1/search", params={"q": "jacket", "sort": "cheap"}, headers=SEARCH)
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "sort"
    long = client.get("/v1/search", params=[("q", "jacket"), ("brand", "x" * 201)], headers=SEARCH)
    assert long.status_code == 422 and long.json()["error"]["field"] == "brand.0"


def test_a_category_page_over_http(shared):
    client, engine, _ = shared
    answer = client.get(
        "/v1/browse",
        params=[
            ("category", "Clothing > Jackets"),
            ("k", "5"),
            ("user_id", "u-browse"),
            ("brand", "Northpine"),
        ],
        headers=SEARCH,
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["surface"] == "browse" and body["category"] == "Clothing > Jackets"
    assert body["items"] and {engine.products[i["item_id"]].brand for i in body["items"]} == {"Northpine"}
    assert len(body["facets"]["brand"]) > 1
    assert engine.stores.events.get_impression(body["request_id"]).user_id == "u-browse"
    missing = client.get("/v1/browse", params={"category": "Spaceships"}, headers=SEARCH)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == "not_found"
    blank = client.get("/v1/browse", params={"category": " > "}, headers=SEARCH)
    assert blank.status_code == 422 and blank.json()["error"]["field"] == "category"
    assert client.get("/v1/browse", params={"category": "Clothing"}).status_code == 401
