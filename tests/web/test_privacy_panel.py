"""The dashboard's privacy panel through the app: a shopper's data downloaded or erased (the
erasure asks for the id twice), and the retention policy set from a form."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from fastapi.testclient import TestClient

from shoploop.api import create_app
from shoploop.privacy.retention import load_policy
from tests.api.conftest import make_client, make_settings
from tests.engine.conftest import FAST, make_engine

ADMIN_KEY = "admin-key-1234"


@pytest.fixture
def admin():
    client, engine, bundle = make_client()
    with client:
        client.cookies.set("sl_admin", ADMIN_KEY)
        yield client, engine, bundle


def test_the_panel_downloads_a_shoppers_data_and_erases_only_when_confirmed(admin):
    client, engine, _ = admin
    page = client.get("/dashboard").text
    panel = page[page.index('id="privacy"') : page.index('id="models"')]
    assert "stored as the shop sends them" in panel and "No retention policy" in panel
    assert 'id="retention-form"' not in panel  # an in-memory shop has nowhere to keep one
    user = next(e.user_id for e in engine.stores.events.scan(types=["purchase"]))
    n_events = sum(1 for _ in engine.stores.events.scan(user_id=user))

    r = client.get("/dashboard/shopper", params={"user_id": user})
    assert r.status_code == 200 and r.headers["content-disposition"].startswith("attachment;")
    doc = json.loads(r.text)
    assert doc["user_id"] == user and len(doc["events"]) == n_events
    assert doc["experiment_exposures"] == []  # the app's experiment store was asked

    wrong = client.post("/dashboard/shopper/erase", data={"user_id": user, "confirm": "someone else"})
    assert "nothing erased" in wrong.text
    assert sum(1 for _ in engine.stores.events.scan(user_id=user)) == n_events
    done = client.post("/dashboard/shopper/erase", data={"user_id": user, "confirm": user})
    assert f"erased {user}: {n_events} events" in done.text
    assert not list(engine.stores.events.scan(user_id=user)) and not engine.online.known_user(user)
    memory_only = client.post("/dashboard/retention", data={"events_days": "30"})
    assert "keeps its data in memory only" in memory_only.text

    client.cookies.clear()
    assert client.get("/dashboard/shopper", params={"user_id": user}).status_code == 401


def test_the_retention_form_saves_the_policy_or_names_the_field(tmp_path):
    engine, _ = make_engine(replace(FAST, home=tmp_path), n_users=20)
    with TestClient(create_app(engine, make_settings())) as client:
        client.cookies.set("sl_admin", ADMIN_KEY)
        r = client.post(
            "/dashboard/retention",
            data={"events_days": "365", "quarantine_days": "", "per_type": "search=90\r\n\r\nview = 30\r\n"},
        )
        assert "retention policy saved; applied by this server within 60 minutes" in r.text
        policy = load_policy(tmp_path)
        assert policy.events_days == 365 and policy.quarantine_days is None
        assert dict(policy.per_type) == {"search": 90, "view": 30}
        panel = r.text[r.text.index('id="privacy"') : r.text.index('id="models"')]
        assert "search 90 days" in panel and 'value="365"' in panel and "search=90\nview=30" in panel
        for data, field in (
            ({"events_days": "a year"}, "events_days"),
            ({"per_type": "nosuch=3"}, "per_type.nosuch"),
            ({"per_type": "search"}, "per_type"),
            ({"quarantine_days": "-1"}, "quarantine_days"),
        ):
            bad = client.post("/dashboard/retention", data=data)
            assert f"retention not saved: {field}" in bad.text, (data, bad.text[:300])
        assert load_policy(tmp_path) == policy  # nothing changed by the refused forms
    engine.stores.close()
