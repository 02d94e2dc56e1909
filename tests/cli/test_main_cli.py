"""`shoploop demo-data` and `shoploop stats` end to end on tmp homes (CliRunner)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from shoploop.cli.main import app
from shoploop.cli.stats import compute_stats
from shoploop.domain import ClickEvent, ImpressionEvent, Product, PurchaseEvent, PurchaseLine, SearchEvent
from shoploop.store.home import memory_stores

runner = CliRunner()
SMALL = ["--products", "150", "--users", "40", "--days", "7", "--no-progress"]


@pytest.fixture(scope="module")
def demo_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    home = tmp_path_factory.mktemp("home")
    result = runner.invoke(app, ["demo-data", "--home", str(home), "--seed", "11", *SMALL])
    assert result.exit_code == 0, result.output
    return home


def test_demo_data_imports_through_cleaning(demo_home: Path):
    assert (demo_home / "shoploop.sqlite").is_file()
    assert list((demo_home / "reports").glob("*-events-demo-seed11.json"))


def test_stats_json_matches_the_store(demo_home: Path):
    result = runner.invoke(app, ["stats", "--home", str(demo_home), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["n_products"] == 150
    assert data["n_events"] == sum(data["events_by_type"].values())
    assert set(data["surfaces"]) == {"search", "home"}
    assert 0 < data["overall"]["ctr"] < 1
    assert 0 <= data["conversion"] <= 1
    assert data["quarantine_by_reason"].get("unknown_item", 0) > 0  # the retired SKUs
    assert len(data["flagged_users"]) >= 1  # the planted bots
    assert data["first_event"] < data["last_event"]


def test_stats_tables(demo_home: Path):
    result = runner.invoke(app, ["stats", "--home", str(demo_home)])
    assert result.exit_code == 0, result.output
    for heading in ("served lists by surface", "funnel", "top queries", "data quality"):
        assert heading in result.output


def test_demo_data_twice_is_idempotent(demo_home: Path):
    before = json.loads(runner.invoke(app, ["stats", "--home", str(demo_home), "--json"]).output)
    result = runner.invoke(app, ["demo-data", "--home", str(demo_home), "--seed", "11", *SMALL])
    assert result.exit_code == 0, result.output
    after = json.loads(runner.invoke(app, ["stats", "--home", str(demo_home), "--json"]).output)
    assert after["n_events"] == before["n_events"]


def test_stats_on_missing_home_is_a_clear_error(tmp_path: Path):
    result = runner.invoke(app, ["stats", "--home", str(tmp_path / "nothing")])
    assert result.exit_code == 2
    assert "no shop at" in result.output


def test_demo_data_rejects_bad_end(tmp_path: Path):
    result = runner.invoke(app, ["demo-data", "--home", str(tmp_path), "--end", "yesterday", *SMALL])
    assert result.exit_code == 2
    assert "--end" in result.output


def test_home_defaults_to_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("SHOPLOOP_HOME", str(tmp_path / "env-home"))
    result = runner.invoke(app, ["stats"])
    assert result.exit_code == 2 and "env-home" in result.output


def test_import_subcommand_is_wired():
    result = runner.invoke(app, ["import", "--help"])
    assert result.exit_code == 0 and "catalog" in result.output


def test_compute_stats_by_hand(tmp_path: Path, t0):
    """Two lists, hand-counted: CTR = distinct shown+clicked pairs / items shown."""
    stores = memory_stores(tmp_path)
    stores.catalog.upsert([Product(item_id=i, title=i, price=10.0) for i in ("a", "b", "c")])
    u = {"user_id": "u1", "session_id": "s1", "timestamp": t0}
    events = [
        SearchEvent(query="Drill", request_id="r1", n_results=3, **u),
        ImpressionEvent(request_id="r1", surface="search", items=_shown("a", "b", "c"), **u),
        ClickEvent(item_id="a", request_id="r1", position=1, **u),
        ClickEvent(item_id="c", request_id="r1", position=3, **u),
        ImpressionEvent(request_id="r2", surface="home", items=_shown("a", "b"), **u),
        PurchaseEvent(items=(PurchaseLine(item_id="a", quantity=2, price=10.0),), **u),
        ImpressionEvent(request_id="r3", surface="home", items=_shown("c"), **{**u, "session_id": "s2"}),
    ]
    stores.events.append(events)
    stats = compute_stats(stores)
    assert stats.surfaces["search"].ctr == pytest.approx(2 / 3)
    assert stats.surfaces["search"].list_click_rate == 1.0
    assert stats.surfaces["home"].ctr == 0.0 and stats.surfaces["home"].impressions == 2
    assert stats.overall.ctr == pytest.approx(2 / 6)
    assert stats.conversion == 0.5 and stats.n_sessions == 2
    assert stats.revenue == {"USD": 20.0}
    assert stats.top_queries == [("drill", 1)]
    assert stats.events_by_type["impression"] == 3


def _shown(*ids: str) -> tuple:
    from shoploop.domain import ShownItem

    return tuple(ShownItem(item_id=i, position=k + 1) for k, i in enumerate(ids))


def test_train_names_every_model_it_knows_on_a_wrong_one(demo_home: Path):
    result = runner.invoke(app, ["train", "--home", str(demo_home), "--model", "nonsense"])
    assert result.exit_code == 2
    assert "bi_encoder" in result.output and "cross_encoder" in result.output


def test_train_bi_encoder_without_dense_search_is_a_clear_error(demo_home: Path):
    # --fast serves BM25 only, so there is no text encoder to fine-tune
    result = runner.invoke(app, ["train", "--home", str(demo_home), "--fast", "--model", "bi_encoder"])
    assert result.exit_code == 2
    assert "search: uses no dense retrieval" in result.output


def test_queries_shows_top_unfound_and_unclicked_searches(demo_home: Path):
    from shoploop.evaluation.search_queries import search_query_report
    from shoploop.store.home import open_stores

    result = runner.invoke(app, ["queries", "--home", str(demo_home), "--all", "--json", "--top", "5"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    with open_stores(demo_home) as stores:
        rows = search_query_report(stores.events.scan(exclude_flagged=True))
    assert data["distinct_queries"] == len(rows) > 0
    assert [r["query"] for r in data["top"]] == [r.query for r in rows[:5]]
    assert all(r["no_result_searches"] > 0 for r in data["no_results"])
    tables = runner.invoke(app, ["queries", "--home", str(demo_home), "--all"])
    assert tables.exit_code == 0 and "Most searched" in tables.output and rows[0].query in tables.output
    assert runner.invoke(app, ["queries", "--home", str(demo_home / "nowhere")]).exit_code == 2
    # the demo's history ends before today: an empty window says where the searches are
    recent = runner.invoke(app, ["queries", "--home", str(demo_home), "--days", "1"], env={"COLUMNS": "200"})
    assert recent.exit_code == 0 and "0 distinct queries" in recent.output
    assert "widen the window with --days N, or use --all" in recent.output
