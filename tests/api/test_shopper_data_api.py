"""Right of access and erasure over HTTP, A/B exposures included, with and without pseudonymised
shopper ids."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from fastapi.testclient import TestClient

from shoploop.api import create_app
from tests.api.conftest import ADMIN, SEARCH, make_settings
from tests.engine.conftest import FAST, make_engine

HOME_TEST = {
    "id": "home-test",
    "surface": "home",
    "variants": [{"name": "control", "share": 0.5}, {"name": "treatment", "share": 0.5}],
    "primary_metric": {"name": "click"},
}


def _shop_and_click(client: TestClient, user: str) -> str:
    """Start an experiment, serve the shopper a home feed and record their click on it."""
    assert client.post("/v1/experiments", json=HOME_TEST, headers=ADMIN).status_code == 201
    feed = client.get("/v1/recommendations/home", params={"user_id": user, "k": 3}, headers=SEARCH).json()
    click = {
        "type": "click",
        "user_id": user,
        "item_id": feed["items"][0]["item_id"],
        "request_id": feed["request_id"],
        "position": 1,
        "timestamp": datetime.now(UTC).isoformat(),
    }
    r = client.post("/v1/events", json={"events": [click]}, headers=ADMIN)
    assert r.status_code == 200 and r.json()["accepted"] == 1, r.text
    return feed["request_id"]


def test_access_then_erasure_over_http(fresh):
    client, _, _ = fresh
    request_id = _shop_and_click(client, "ab-alice")
    assert client.get("/v1/users/ab-alice/data", headers=SEARCH).status_code == 403  # admin only

    doc = client.get("/v1/users/ab-alice/data", headers=ADMIN).json()
    assert doc["event_counts"] == {"click": 1, "impression": 1}  # the feed she was served, and her click
    assert {e["request_id"] for e in doc["events"]} == {request_id}
    assert [(x["experiment_id"], x["request_id"]) for x in doc["experiment_exposures"]] == [
        ("home-test", request_id)
    ]

    receipt = client.delete("/v1/users/ab-alice", headers=ADMIN).json()
    assert receipt["events_deleted"] == 2 and receipt["experiment_exposures_deleted"] == 1
    after = client.get("/v1/users/ab-alice/data", headers=ADMIN).json()
    assert after["events"] == [] and after["experiment_exposures"] == []
    assert client.get("/v1/experiments/home-test", headers=ADMIN).json()["exposures"] == {}


def test_pseudonymised_exposures_join_the_event_log(tmp_path, monkeypatch):
    monkeypatch.delenv("SHOPLOOP_PSEUDONYM_KEY", raising=False)
    engine, _ = make_engine(replace(FAST, home=tmp_path, pseudonymize_user_ids=True), n_users=20)
    with TestClient(create_app(engine, make_settings()), raise_server_exceptions=False) as client:
        _shop_and_click(client, "alice@example.com")
        stored = engine.stored_user_id("alice@example.com")
        assert stored is not None and stored.startswith("p_")
        exposures = client.app.state.experiments.exposures("home-test")
        # Recorded under the id the event log uses, so the read-out can join them (it could
        # not when exposures kept the shop's own id and events the pseudonym) ...
        assert [x.user_id for x in exposures] == [stored]
        assert {e.user_id for e in engine.stores.events.scan(user_id=stored)} == {stored}
        assert not any("alice" in str(x) for x in exposures)  # ... and the raw id is stored nowhere
        doc = client.get("/v1/users/alice@example.com/data", headers=ADMIN).json()
        assert doc["stored_as"] == stored and len(doc["experiment_exposures"]) == 1
        assert (
            client.delete("/v1/users/alice@example.com", headers=ADMIN).json()["experiment_exposures_deleted"]
            == 1
        )
    engine.stores.close()
