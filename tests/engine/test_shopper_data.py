"""A shopper's data, on request and on erasure: the access document shows every store that names
them, and erasing them empties every one of those sections (the two are kept in step here)."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from shoploop.engine import InvalidRequest, build_engine
from shoploop.evaluation.ab import Exposure, MemoryExperimentStore
from shoploop.retrieval.suggest import SuggestConfig
from tests.engine.conftest import FAST, make_engine

NOW_CONFIG = replace(FAST, suggest=SuggestConfig(rebuild_seconds=0))


@pytest.fixture(scope="module")
def engine():
    return make_engine(NOW_CONFIG)[0]


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _leave_traces(engine, user: str, item: str) -> MemoryExperimentStore:
    """Everything a shopper can leave behind: searches (three shoppers, so autocomplete keeps the
    query), a click, a rejected row, and an A/B exposure."""
    rows = [
        {"type": "search", "user_id": u, "query": "walnut desk lamp", "n_results": 4, "timestamp": _now()}
        for u in (user, f"{user}-b", f"{user}-c")
    ]
    rows.append({"type": "click", "user_id": user, "item_id": item, "timestamp": _now()})
    rows.append({"type": "rating", "user_id": user, "item_id": item, "rating": 11, "timestamp": _now()})
    outcomes = engine.ingest_events(rows)
    assert [o.status for o in outcomes] == ["accepted"] * 4 + [
        "rejected"
    ]  # rejected rows go to the quarantine
    experiments = MemoryExperimentStore()
    experiments.record_exposures(
        [
            Exposure("home-v2", user, "treatment", datetime.now(UTC), "home", "r-1"),
            Exposure("home-v2", f"{user}-b", "control", datetime.now(UTC)),
        ]
    )
    return experiments


def test_the_document_shows_every_trace_and_erasure_empties_each(engine):
    item = next(iter(engine.products))
    experiments = _leave_traces(engine, "acc-1", item)

    doc = engine.export_user("acc-1", experiments=experiments)
    json.dumps(doc)  # the whole document is JSON as it stands
    assert doc["user_id"] == doc["stored_as"] == "acc-1"
    assert doc["event_counts"] == {"click": 1, "search": 1}
    assert {e["user_id"] for e in doc["events"]} == {"acc-1"}
    assert [r["reason"].split(":")[0] for r in doc["quarantined_rows"]] == ["rating"]
    assert doc["quarantined_rows"][0]["raw"]["rating"] == 11
    assert doc["online_profile"]["recent_items"] == [item]
    assert doc["online_profile"]["recent_queries"] == ["walnut desk lamp"]
    assert doc["autocomplete_queries"] == ["walnut desk lamp"]
    assert [(x["experiment_id"], x["variant"]) for x in doc["experiment_exposures"]] == [
        ("home-v2", "treatment")
    ]
    assert doc["flagged_as_bot"] is None
    assert "totals over all shoppers" in doc["not_included"]

    receipt = engine.delete_user("acc-1", experiments=experiments)
    assert receipt["events_deleted"] == 2 and receipt["quarantined_rows_deleted"] == 1
    assert receipt["experiment_exposures_deleted"] == 1
    after = engine.export_user("acc-1", experiments=experiments)
    assert after["events"] == [] and after["event_counts"] == {}
    assert after["quarantined_rows"] == [] and after["experiment_exposures"] == []
    assert after["online_profile"] is None and after["autocomplete_queries"] == []
    # the other shoppers keep theirs
    assert engine.export_user("acc-1-b", experiments=experiments)["experiment_exposures"] != []


def test_a_stranger_gets_an_empty_document_and_no_experiment_store_says_unknown(engine):
    doc = engine.export_user("never-seen")
    assert doc["events"] == [] and doc["online_profile"] is None and doc["quarantined_rows"] == []
    assert doc["experiment_exposures"] is None  # not asked, so not claimed empty


def test_a_flagged_bot_is_told_so(engine):
    engine.ingest_events([{"type": "search", "user_id": "acc-bot", "query": "x", "timestamp": _now()}])
    engine.stores.events.flag_users(["acc-bot"], "120 clicks a minute")
    assert engine.export_user("acc-bot")["flagged_as_bot"] == "120 clicks a minute"


def test_an_empty_id_is_refused_naming_the_field(engine):
    for call in (engine.export_user, engine.delete_user):
        with pytest.raises(InvalidRequest, match="user_id"):
            call("  ")


def test_pseudonymised_shop_answers_under_the_shoppers_own_id(tmp_path, monkeypatch):
    monkeypatch.delenv("SHOPLOOP_PSEUDONYM_KEY", raising=False)
    engine = build_engine(replace(FAST, home=tmp_path, pseudonymize_user_ids=True))
    engine.start()
    then = (datetime.now(UTC) - timedelta(minutes=1)).isoformat()
    engine.ingest_events(
        [{"type": "search", "user_id": "alice@example.com", "query": "lamp", "timestamp": then}]
    )
    doc = engine.export_user("alice@example.com")
    assert doc["user_id"] == "alice@example.com" and doc["stored_as"].startswith("p_")
    assert doc["event_counts"] == {"search": 1}
    assert "alice" not in json.dumps(doc["events"])  # the log holds the pseudonym only
    assert engine.stored_user_id("alice@example.com") == doc["stored_as"]
    assert engine.delete_user("alice@example.com")["events_deleted"] == 1
    assert engine.export_user("alice@example.com")["events"] == []
    engine.stores.close()


def test_a_retention_purge_reaches_profiles_and_autocomplete(engine):
    two_days_ago = (datetime.now(UTC) - timedelta(days=2)).isoformat()
    rows = [
        {
            "type": "search",
            "user_id": u,
            "query": "velvet armchair",
            "n_results": 5,
            "timestamp": two_days_ago,
        }
        for u in ("ret-1", "ret-2", "ret-3")
    ]
    item = next(iter(engine.products))
    rows.append({"type": "view", "user_id": "ret-1", "item_id": item, "timestamp": _now()})
    assert all(o.status == "accepted" for o in engine.ingest_events(rows))
    assert [s.text for s in engine.suggest("velvet ar")] == ["velvet armchair"]
    assert engine.online.profile("ret-1").recent_queries == ("velvet armchair",)

    erased: set[str] = set()
    cutoff = datetime.now(UTC) - timedelta(days=1)
    assert engine.stores.events.delete_before(cutoff, types=["search"], erased_users=erased) >= 3
    assert {"ret-1", "ret-2", "ret-3"} <= erased
    engine.refresh_shoppers(erased)
    assert engine.online.profile("ret-1").recent_queries == ()  # the purged searches are gone
    assert engine.online.profile("ret-1").recent_items == (item,)  # the view is still in the log
    assert not engine.online.known_user("ret-2")
    assert engine.suggest("velvet ar") == []  # nobody left who searched it
