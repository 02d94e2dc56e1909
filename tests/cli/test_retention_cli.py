"""`shoploop retention set|show|apply` on a tmp shop home (CliRunner)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from shoploop.cli.main import app
from shoploop.domain import SearchEvent, ViewEvent
from shoploop.privacy.retention import POLICY_FILENAME
from shoploop.store.home import open_stores

runner = CliRunner()


@pytest.fixture
def home(tmp_path: Path) -> Path:
    # The CLI measures ages from the real clock, so the events are placed relative to it,
    # far enough from every cutoff that the seconds a test takes cannot matter.
    now = datetime.now(UTC)
    with open_stores(tmp_path) as stores:
        stores.events.append(
            [
                ViewEvent(event_id="v-old", user_id="u1", timestamp=now - timedelta(days=400), item_id="i"),
                SearchEvent(event_id="s-old", user_id="u1", timestamp=now - timedelta(days=100), query="x"),
                SearchEvent(event_id="s-new", user_id="u1", timestamp=now - timedelta(days=10), query="y"),
                ViewEvent(event_id="v-new", user_id="u2", timestamp=now - timedelta(days=1), item_id="i"),
            ]
        )
        stores.quarantine.add([(1, "price: must be > 0", {"user_id": "u1"})], source="f.csv", kind="event")
    return tmp_path


def run(home: Path, *args: str, input: str | None = None):
    # wide terminal: Rich would fold the summary line at 80 columns
    return runner.invoke(app, ["retention", *args, "--home", str(home)], input=input, env={"COLUMNS": "200"})


def event_ids(home: Path) -> list[str]:
    with open_stores(home) as stores:
        return sorted(e.event_id for e in stores.events.scan())


def test_show_without_a_policy_says_everything_is_kept(home: Path):
    result = run(home, "show")
    assert result.exit_code == 0, result.output
    assert "no retention policy" in result.output


def test_set_show_apply(home: Path):
    result = run(home, "set", "--events-days", "365", "--type", "search=90", "--quarantine-days", "30")
    assert result.exit_code == 0, result.output
    saved = json.loads((home / POLICY_FILENAME).read_text())
    assert saved == {"events_days": 365, "quarantine_days": 30, "per_type": {"search": 90}}

    shown = run(home, "show")
    assert shown.exit_code == 0, shown.output
    assert "dry run" in shown.output and "search events" in shown.output and "90 days" in shown.output
    data = json.loads(run(home, "show", "--json").stdout)
    assert data["policy"] == saved and data["report"]["dry_run"] is True
    assert {line["target"]: line["rows"] for line in data["report"]["events"] if line["rows"]} == {
        "view": 1,
        "search": 1,
    }
    assert event_ids(home) == ["s-new", "s-old", "v-new", "v-old"]  # show changed nothing

    applied = run(home, "apply", "--yes", "--no-progress")
    assert applied.exit_code == 0, applied.output
    assert "2 events, 0 quarantined rows, 0 A/B exposures, 0 bot flags erased" in applied.output
    assert event_ids(home) == ["s-new", "v-new"]

    again = json.loads(run(home, "apply", "--yes", "--json").stdout)
    assert again["total_rows"] == 0  # applying twice erases nothing more


def test_apply_asks_first_and_a_no_erases_nothing(home: Path):
    assert run(home, "set", "--events-days", "30").exit_code == 0
    declined = run(home, "apply", input="n\n")
    assert declined.exit_code == 1
    assert "Erase these 2 rows?" in declined.output and "nothing erased" in declined.output
    assert len(event_ids(home)) == 4
    dry = run(home, "apply", "--dry-run")
    assert dry.exit_code == 0 and "(nothing changed)" in dry.output
    assert len(event_ids(home)) == 4
    accepted = run(home, "apply", "--progress", input="y\n")
    assert accepted.exit_code == 0, accepted.output
    assert event_ids(home) == ["s-new", "v-new"]


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (["--type", "nosuchtype=5"], "--type nosuchtype: unknown event type"),
        (["--events-days", "-1"], "--events-days: must be a number of days > 0"),
        (["--quarantine-days", "0"], "--quarantine-days: must be a number of days > 0"),
        (["--type", "search"], "--type: expected TYPE=DAYS"),
        (["--type", "search=soon"], "--type search: must be a number of days"),
        (["--type", "search=nan"], "--type search: must be a number of days > 0"),
        (["--type", "search=9", "--type", "search=8"], "--type search: given twice"),
        ([], "give at least one of"),
    ],
)
def test_bad_settings_are_refused_naming_the_option(home: Path, args: list[str], named: str):
    result = run(home, "set", *args)
    assert result.exit_code == 2
    assert named in result.output and "Traceback" not in result.output
    assert not (home / POLICY_FILENAME).exists()  # nothing half-saved


def test_apply_without_a_policy_and_a_broken_file_are_errors(home: Path):
    result = run(home, "apply", "--yes")
    assert result.exit_code == 2 and "no retention policy" in result.output
    (home / POLICY_FILENAME).write_text('{"events_days": 365, "per_type": {"serch": 90}}')
    broken = run(home, "show")
    assert broken.exit_code == 2 and "per_type.serch: unknown event type" in broken.output
    assert len(event_ids(home)) == 4


def test_json_apply_never_stops_to_ask(home: Path):
    assert run(home, "set", "--events-days", "30").exit_code == 0
    result = run(home, "apply", "--json")
    assert result.exit_code == 2 and "--json needs --yes or --dry-run" in result.output
