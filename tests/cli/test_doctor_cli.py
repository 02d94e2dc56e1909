"""`shoploop doctor` end to end on tmp_path homes (CliRunner): table, --json and exit codes."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from shoploop.cli.main import app
from shoploop.domain import Product, ViewEvent
from shoploop.store.home import open_stores

runner = CliRunner()


@pytest.fixture(autouse=True)
def _no_key_in_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SHOPLOOP_PSEUDONYM_KEY", raising=False)


@pytest.fixture
def home(tmp_path: Path) -> Path:
    src = tmp_path / "model-src"
    src.mkdir()
    (src / "weights.json").write_text("{}")
    shop = tmp_path / "shop"
    # Recent events: the command takes `now` from the clock.
    recent = datetime.now(UTC) - timedelta(hours=1)
    with open_stores(shop) as stores:
        stores.catalog.upsert([Product(item_id=f"i{n}", title=f"Product {n}") for n in range(3)])
        stores.events.append(
            [ViewEvent(event_id=f"e{n}", user_id="u1", timestamp=recent, item_id=f"i{n}") for n in range(3)]
        )
        mv = stores.registry.register("ranker", src)
        stores.registry.promote("ranker", mv.version)
    return shop


def _doctor(home: Path, *args: str):
    return runner.invoke(app, ["doctor", "--home", str(home), *args])


def test_a_healthy_home_exits_0_with_a_table(home: Path):
    result = _doctor(home)
    assert result.exit_code == 0, result.output
    for text in ("database", "models", "retention", "0 problem(s)"):
        assert text in result.output


def test_json_parses_into_findings(home: Path):
    result = _doctor(home, "--json")
    assert result.exit_code == 0, result.output
    findings = json.loads(result.output)
    assert isinstance(findings, list) and findings
    assert set(findings[0]) == {"check", "status", "detail", "fix"}
    assert {f["status"] for f in findings} <= {"ok", "warning", "problem"}


def test_warnings_alone_exit_0(home: Path):
    with open_stores(home) as stores:
        stores.quarantine.add([(1, "unknown_item: 'x'", {})], source="feed.csv", kind="event")
    result = _doctor(home, "--json")
    assert result.exit_code == 0, result.output
    statuses = {f["check"]: f["status"] for f in json.loads(result.output)}
    assert statuses["quarantine"] == "warning"


def test_a_problem_exits_1(home: Path):
    key = home / "pseudonym.key"
    key.write_text("ab" * 32)
    key.chmod(0o644)
    result = _doctor(home)
    assert result.exit_code == 1, result.output
    assert "chmod 600" in result.output and "1 problem(s)" in result.output


def test_no_shop_exits_2(tmp_path: Path):
    result = _doctor(tmp_path / "nothing")
    assert result.exit_code == 2
    assert "no shop at" in result.output


def test_doctor_is_listed_in_help():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0 and "doctor" in result.output
