"""`shoploop import ...` through typer's CliRunner on tiny files and a SQLite home in tmp_path."""

from __future__ import annotations

import json
import sys
import types
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from shoploop.cli.importing import import_app
from shoploop.domain import ClickEvent, Product
from shoploop.store.home import open_stores

runner = CliRunner()


def _now_iso(offset_s: float = 0) -> str:
    # The CLI uses the wall clock for the timestamp rules, so the files use recent times.
    return (datetime.now(UTC) - timedelta(hours=1) + timedelta(seconds=offset_s)).isoformat()


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


def _invoke(*args: str):
    # wide terminal: rich would otherwise fold table cells at 80 columns
    return runner.invoke(import_app, [*args], catch_exceptions=False, env={"COLUMNS": "250"})


def _catalog_csv(tmp_path: Path) -> Path:
    path = tmp_path / "products.csv"
    path.write_text("sku,name,cost\nA,Drill,99\nB,Saw,-3\nC,Hammer,12\n", encoding="utf-8")
    return path


def test_catalog_then_events_then_quarantine(tmp_path: Path, home: Path) -> None:
    result = _invoke(
        "catalog",
        str(_catalog_csv(tmp_path)),
        "--map",
        "item_id=sku,title=name,price=cost",
        "--home",
        str(home),
        "--no-progress",
    )
    assert result.exit_code == 0, result.output
    assert "non_positive_price" in result.output
    events = tmp_path / "events.jsonl"
    events.write_text(
        "\n".join(
            [
                json.dumps({"type": "click", "user_id": "u1", "item_id": "A", "timestamp": _now_iso()}),
                json.dumps({"type": "click", "user_id": "u1", "item_id": "B", "timestamp": _now_iso(5)}),
                "{oops",
            ]
        )
        + "\n",
        encoding="utf-8",
    )
    result = _invoke("events", str(events), "--home", str(home), "--no-progress")
    assert result.exit_code == 0, result.output
    assert "unknown_item" in result.output and "invalid_json" in result.output
    reports = sorted((home / "reports").glob("*.json"))
    assert len(reports) == 2
    saved = json.loads(reports[-1].read_text())
    assert (saved["rows_read"], saved["accepted"], saved["quarantined"]) == (3, 1, 2)

    result = _invoke("quarantine", "list", "--home", str(home), "--reason", "unknown_item")
    assert result.exit_code == 0, result.output
    assert "item ids not in the catalog: B" in result.output and "oops" not in result.output

    # fix the catalog (B gets a valid price) and re-import the quarantine
    fixed = tmp_path / "fix.jsonl"
    fixed.write_text(json.dumps({"item_id": "B", "title": "Saw", "price": 3}) + "\n", encoding="utf-8")
    assert _invoke("catalog", str(fixed), "--home", str(home), "--no-progress").exit_code == 0
    result = _invoke("quarantine", "reimport", "--home", str(home))
    assert result.exit_code == 0, result.output
    with open_stores(home) as stores:
        assert len(stores.events) == 2
        left = sorted(q.reason.split(":")[0] for q in stores.quarantine.list())
    # the bad-price catalog row (B,-3) and the broken JSON line stay
    assert left == ["line 3", "price"]


def test_events_reimport_is_idempotent(tmp_path: Path, home: Path) -> None:
    events = tmp_path / "events.csv"
    events.write_text(
        "kind,user,item_id,timestamp\n" + "".join(f"view,u{k},X,{_now_iso(k)}\n" for k in range(5)),
        encoding="utf-8",
    )
    args = ("events", str(events), "--map", "type=kind,user_id=user", "--accept-unknown-items")
    first = _invoke(*args, "--home", str(home), "--no-progress")
    second = _invoke(*args, "--home", str(home), "--no-progress")
    assert first.exit_code == second.exit_code == 0
    with open_stores(home) as stores:
        assert len(stores.events) == 5 and len(stores.quarantine) == 0
    assert "duplicates" in second.output


def test_home_defaults_to_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHOPLOOP_HOME", str(tmp_path / "envhome"))
    result = _invoke(
        "catalog", str(_catalog_csv(tmp_path)), "--map", "item_id=sku,title=name,price=cost", "--no-progress"
    )
    assert result.exit_code == 0, result.output
    assert (tmp_path / "envhome" / "shoploop.sqlite").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("catalog", "missing.csv"), "file not found"),
        (("catalog", "products.xml"), "cannot tell the format"),
        (("catalog", "products.csv", "--format", "xml"), "unknown format 'xml'"),
        (("catalog", "products.csv", "--map", "title"), "bad column mapping"),
        (("dataset", "ml-100k", "--from", "nowhere"), "dataset directory not found"),
        (("quarantine", "list", "--kind", "bogus"), "--kind must be catalog or event"),
    ],
)
def test_user_errors_exit_non_zero_without_traceback(
    tmp_path: Path, home: Path, monkeypatch: pytest.MonkeyPatch, args: tuple[str, ...], message: str
) -> None:
    monkeypatch.chdir(tmp_path)
    _catalog_csv(tmp_path)
    (tmp_path / "products.xml").write_text("<x/>", encoding="utf-8")
    result = runner.invoke(import_app, [*args, "--home", str(home)])
    assert result.exit_code == 2
    assert message in result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


def test_dataset_command_uses_the_adapter(
    tmp_path: Path, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    when = datetime.now(UTC) - timedelta(days=1)

    bundle = types.SimpleNamespace(
        name="fake",
        products=[Product(item_id="a", title="A"), Product(item_id="b", title="B")],
        events=[ClickEvent(event_id="c1", user_id="u", item_id="a", timestamp=when)],
    )

    calls: list[tuple[str, Path]] = []

    def load_dataset(name: str, directory: Path, **_: object) -> types.SimpleNamespace:
        calls.append((name, directory))
        return bundle

    fake = types.ModuleType("shoploop.data.datasets")
    fake.load_dataset = load_dataset  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "shoploop.data.datasets", fake)
    data_dir = tmp_path / "ml"
    data_dir.mkdir()
    result = _invoke("dataset", "ml-100k", "--from", str(data_dir), "--home", str(home), "--no-progress")
    assert result.exit_code == 0, result.output
    assert calls == [("ml-100k", data_dir)]
    with open_stores(home) as stores:
        assert len(stores.catalog) == 2 and len(stores.events) == 1


def test_quarantine_reimport_on_empty_home(home: Path) -> None:
    result = _invoke("quarantine", "reimport", "--home", str(home))
    assert result.exit_code == 0 and "nothing to re-import" in result.output


def test_hints_point_at_the_likely_fix(tmp_path: Path, home: Path) -> None:
    events = tmp_path / "events.jsonl"
    events.write_text(
        json.dumps({"type": "view", "user_id": "u", "item_id": "A", "timestamp": _now_iso()}) + "\n",
        encoding="utf-8",
    )
    result = _invoke("events", str(events), "--home", str(home), "--no-progress")
    assert result.exit_code == 0
    assert "the catalog is empty" in result.output and "quarantine list" in result.output
    products = tmp_path / "p.csv"
    products.write_text("sku,name\nA,Drill\n", encoding="utf-8")
    result = _invoke("catalog", str(products), "--home", str(home), "--no-progress")
    assert "check the column names" in result.output


@pytest.mark.parametrize(
    ("needle", "expected"),
    [
        ("non_positive_price", 1),
        ("invalid_field:title", 1),
        ("invalid_json", 1),
        ("price", 1),
        ("nothing", 0),
    ],
)
def test_quarantine_list_filters_by_code_or_text(
    tmp_path: Path, home: Path, needle: str, expected: int
) -> None:
    products = tmp_path / "p.jsonl"
    products.write_text(
        '{"item_id": "a", "title": "A", "price": -1}\n{"item_id": "b"}\n{nope\n', encoding="utf-8"
    )
    _invoke("catalog", str(products), "--home", str(home), "--no-progress")
    result = _invoke("quarantine", "list", "--home", str(home), "--reason", needle)
    assert result.exit_code == 0
    assert f"quarantine: {expected} matching row(s)" in result.output
