"""`shoploop privacy ...` on a SQLite home in tmp_path: turning pseudonymisation on, and every way
in (the importer, the engine, access requests, erasure) agreeing on the shopper's pseudonym."""

from __future__ import annotations

import json
import stat
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from shoploop.cli.main import app
from shoploop.engine import build_engine
from shoploop.store.home import open_stores
from tests.engine.conftest import FAST

runner = CliRunner()


@pytest.fixture(autouse=True)
def _no_key_in_the_environment(monkeypatch):
    monkeypatch.delenv("SHOPLOOP_PSEUDONYM_KEY", raising=False)


def _invoke(*args: str):
    return runner.invoke(app, list(args), catch_exceptions=False, env={"COLUMNS": "250"})


def _searches(path: Path, users: list[str]) -> Path:
    when = (datetime.now(UTC) - timedelta(hours=1)).isoformat()
    rows = [
        {"type": "search", "user_id": u, "query": f"lamp {i}", "n_results": 3, "timestamp": when}
        for i, u in enumerate(users)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def test_a_pseudonymising_shop_stores_imports_under_pseudonyms_and_answers_for_them(tmp_path):
    home = tmp_path / "home"
    on = _invoke("privacy", "pseudonymize", "--home", str(home))
    assert on.exit_code == 0, on.output
    assert stat.S_IMODE((home / "pseudonym.key").stat().st_mode) == 0o600
    assert "already" in _invoke("privacy", "pseudonymize", "--home", str(home)).output

    events = _searches(tmp_path / "events.jsonl", ["alice@example.com", "alice@example.com", "bob"])
    assert _invoke("import", "events", str(events), "--home", str(home), "--no-progress").exit_code == 0
    with open_stores(home) as stores:
        stored = {e.user_id for e in stores.events.scan()}
    assert len(stored) == 2 and all(u.startswith("p_") for u in stored)  # nobody under their own id

    out = tmp_path / "alice.json"
    r = _invoke("privacy", "export", "alice@example.com", "--home", str(home), "--out", str(out))
    assert r.exit_code == 0, r.output
    doc = json.loads(out.read_text())
    assert doc["user_id"] == "alice@example.com" and doc["stored_as"] in stored
    assert doc["event_counts"] == {"search": 2}
    assert doc["online_profile"]["recent_queries"] == ["lamp 0", "lamp 1"]  # rebuilt from her events
    assert doc["experiment_exposures"] == []

    # The engine on the same home follows the shop's choice without being told, so the server
    # erases the shopper the importer stored.
    engine = build_engine(replace(FAST, home=home)).start()
    assert engine.delete_user("alice@example.com")["events_deleted"] == 2
    engine.stores.close()
    gone = json.loads(_invoke("privacy", "export", "alice@example.com", "--home", str(home)).output)
    assert gone["events"] == [] and gone["online_profile"] is None


def test_turning_it_on_late_is_refused_unless_forced(tmp_path):
    home = tmp_path / "home"
    events = _searches(tmp_path / "events.jsonl", ["carol"])
    assert _invoke("import", "events", str(events), "--home", str(home), "--no-progress").exit_code == 0
    refused = _invoke("privacy", "pseudonymize", "--home", str(home))
    assert refused.exit_code == 2 and "splits each returning shopper" in refused.output
    assert not (home / "pseudonym.key").exists()
    assert _invoke("privacy", "pseudonymize", "--home", str(home), "--force").exit_code == 0
    assert (home / "pseudonym.key").is_file()


def test_export_of_a_stranger_and_bad_ids(tmp_path):
    home = tmp_path / "home"
    events = _searches(tmp_path / "events.jsonl", ["dave"])
    assert _invoke("import", "events", str(events), "--home", str(home), "--no-progress").exit_code == 0
    doc = json.loads(_invoke("privacy", "export", "erin", "--home", str(home)).output)
    assert doc["stored_as"] == "erin" and doc["events"] == [] and doc["online_profile"] is None
    blank = _invoke("privacy", "export", "  ", "--home", str(home))
    assert blank.exit_code == 2 and "user_id" in blank.output
    assert _invoke("privacy", "export", "dave", "--home", str(tmp_path / "nowhere")).exit_code == 2
