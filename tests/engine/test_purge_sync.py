"""A retention purge run by another process (`shoploop retention apply` while a server runs)
reaches the running server's in-memory state at its next store sync, through the event log's
purge record; a server started after the purge has nothing to rebuild."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from shoploop.data.demo import DEFAULT_END
from shoploop.engine import build_engine
from shoploop.privacy.retention import RetentionPolicy, apply_retention
from shoploop.store.home import open_stores
from tests.engine.conftest import FAST, make_engine

# The demo shop's events are the week before DEFAULT_END; a 100-day limit keeps all of them.
NOW = DEFAULT_END
POLICY = RetentionPolicy(events_days=100, quarantine_days=None)
OLD = (NOW - timedelta(days=200)).isoformat()  # past the limit
RECENT = (NOW - timedelta(days=1)).isoformat()


def _cli_purge(home, now=NOW) -> int:
    # What `shoploop retention apply --yes` does: its own connections to the shop's database.
    with open_stores(home) as stores:
        return apply_retention(stores, POLICY, now=now).events_rows


def test_a_purge_from_another_process_reaches_the_running_engine_at_its_next_sync(tmp_path):
    home = tmp_path / "shop"
    config = replace(FAST, home=home)
    server, bundle = make_engine(config, n_products=80, n_users=30)
    purged_item, kept_item, other_item = list(server.products)[:3]
    rows = [
        {"type": "view", "user_id": "mixed", "item_id": purged_item, "timestamp": OLD},
        {"type": "search", "user_id": "mixed", "query": "velvet armchair", "n_results": 3, "timestamp": OLD},
        {"type": "view", "user_id": "mixed", "item_id": kept_item, "timestamp": RECENT},
        {"type": "view", "user_id": "recent-only", "item_id": other_item, "timestamp": RECENT},
    ]
    assert all(o.status == "accepted" for o in server.ingest_events(rows))
    assert server.online.profile("mixed", now=NOW).recent_items == (purged_item, kept_item)
    assert server.online.profile("mixed", now=NOW).recent_queries == ("velvet armchair",)
    demo_shopper = next(e.user_id for e in bundle.events if server.online.profile(e.user_id).recent_items)
    untouched = {u: server.online.profile(u, now=NOW) for u in ("recent-only", demo_shopper)}
    assert server.sync_with_stores() == {}

    assert _cli_purge(home) == 2
    # Until the next sync, the server still holds what the purge erased ...
    assert purged_item in server.online.profile("mixed", now=NOW).recent_items
    assert server.sync_with_stores() == {"purged_shoppers": 1}
    # ... and after it, the shopper's state is rebuilt from what the log still holds.
    mixed = server.online.profile("mixed", now=NOW)
    assert mixed.recent_items == (kept_item,) and mixed.recent_queries == ()
    assert {u: server.online.profile(u, now=NOW) for u in untouched} == untouched
    assert server.sync_with_stores() == {}  # rebuilt once

    # A server started after the purge replays the log as it now is, and does not rebuild the
    # shoppers of purges from before its start.
    fresh = build_engine(config).start(train_if_missing=False)
    assert fresh.online.profile("mixed", now=NOW).recent_items == (kept_item,)
    refreshed: list[set[str]] = []
    original = fresh.refresh_shoppers
    fresh.refresh_shoppers = lambda users: refreshed.append(set(users)) or original(users)  # type: ignore[method-assign]
    assert fresh.sync_with_stores() == {}
    assert refreshed == []

    # A later purge reaches both.
    server.ingest_events([{"type": "view", "user_id": "late", "item_id": other_item, "timestamp": OLD}])
    assert fresh.sync_with_stores() == {"events": 1}  # the server's write, followed by the other
    assert _cli_purge(home) == 1
    assert server.sync_with_stores() == {"purged_shoppers": 1}
    assert fresh.sync_with_stores() == {"purged_shoppers": 1} and refreshed == [{"late"}]
    assert not server.online.known_user("late") and not fresh.online.known_user("late")
    for engine in (server, fresh):
        engine.stores.close()
