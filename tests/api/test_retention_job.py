"""The server applies the shop's retention policy by itself, re-reading it each round."""

from __future__ import annotations

import time
from dataclasses import replace

from fastapi.testclient import TestClient

from shoploop.api import create_app
from shoploop.privacy.retention import RetentionPolicy, save_policy
from tests.api.conftest import make_settings, wait_for
from tests.engine.conftest import FAST, make_engine


def test_the_server_erases_what_the_policy_no_longer_keeps(tmp_path):
    engine, _ = make_engine(replace(FAST, home=tmp_path), n_users=20)
    events = engine.stores.events
    searches, others = events.count(types=["search"]), len(events) - events.count(types=["search"])
    assert searches > 0 and others > 0
    shopper = next(
        u for u in {e.user_id for e in events.scan(types=["search"])} if engine.online.profile(u).recent_items
    )
    before = engine.online.profile(shopper)
    assert before.recent_queries and before.recent_items
    app = create_app(engine, make_settings(retention_seconds=0.05))
    with TestClient(app):
        time.sleep(0.3)
        assert events.count(types=["search"]) == searches  # no policy yet: everything is kept
        # Set while the server runs (as `shoploop retention set` would): picked up next round.
        # The demo shop's history is days old, so a one-hour limit on searches erases them all.
        save_policy(
            tmp_path, RetentionPolicy(events_days=None, quarantine_days=None, per_type={"search": 1 / 24})
        )
        assert wait_for(lambda: events.count(types=["search"]) == 0)
        assert len(events) == others  # other types have no limit
        # What the server holds about a shopper follows the log: their searches are gone from
        # their profile too, while what they viewed and bought (still in the log) stays.
        assert wait_for(lambda: engine.online.profile(shopper).recent_queries == ())
        assert engine.online.profile(shopper).recent_items == before.recent_items
        report = app.state.retention.last_report
        assert report is not None and report.events_rows in (0, searches)
    engine.stores.close()
