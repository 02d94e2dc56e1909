"""`engine.doctor.examine_home` on real tmp_path shop homes: each check's ok / warning / problem."""

from __future__ import annotations

import os
import shutil
import sqlite3
from collections import namedtuple
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from store_factories import minutes, small_shop, view

from shoploop.engine import doctor
from shoploop.engine.doctor import Finding, examine_home, worst_status
from shoploop.privacy import pseudonymize
from shoploop.privacy.retention import POLICY_FILENAME, RetentionPolicy, save_policy
from shoploop.store.home import DB_FILENAME, open_stores
from shoploop.store.sqlite import SqliteQuarantine
from shoploop.store.sqlite_db import SCHEMA_VERSION

KEY_HEX = "ab" * 32


@pytest.fixture(autouse=True)
def _no_key_in_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # A key in the developer's environment would change what the pseudonym check sees.
    monkeypatch.delenv(pseudonymize.KEY_ENV, raising=False)


@pytest.fixture
def home(tmp_path: Path, t0: datetime) -> Path:
    """A healthy shop: products, a day of events, one active model version."""
    return small_shop(tmp_path / "shop", tmp_path / "model-src", t0)


def _now(t0: datetime) -> datetime:
    return t0 + timedelta(hours=1)


def _by_check(findings: list[Finding], check: str) -> list[Finding]:
    found = [f for f in findings if f.check == check]
    assert found, f"no finding for {check!r}: {findings}"
    return found


def _one(findings: list[Finding], check: str) -> Finding:
    (finding,) = _by_check(findings, check)
    return finding


def test_a_healthy_home_has_no_problems(home: Path, t0: datetime):
    findings = examine_home(home, now=_now(t0))
    assert [f.check for f in findings] == [name for name, _ in doctor.CHECKS]
    # Disk space depends on the machine running the tests; everything else is ok.
    assert {f.status for f in findings if f.check != "disk"} == {"ok"}, findings
    assert worst_status(findings) != "problem"
    assert "quick_check ok" in _one(findings, "database").detail
    assert "ranker v1" in _one(findings, "models").detail
    assert "kept forever" in _one(findings, "retention").detail
    assert all(f.fix is None for f in findings if f.status == "ok")


def test_the_home_is_never_modified(home: Path, t0: datetime):
    # A home with something for every check to find, so every code path reads.
    (home / "artifacts" / "ranker" / "9").mkdir()
    (home / "artifacts" / "ranker" / "9" / "w.bin").write_bytes(b"x" * 10)
    (home / "pseudonym.key").write_text(KEY_HEX)
    (home / "pseudonym.key").chmod(0o644)
    save_policy(home, RetentionPolicy(events_days=1, quarantine_days=1))

    def listing() -> dict[str, tuple[int, int, int]]:
        out = {}
        for dirpath, dirs, files in os.walk(home):
            for name in [*dirs, *files, "."]:
                path = Path(dirpath) / name
                st = path.lstat()
                out[str(path.relative_to(home))] = (st.st_size, st.st_mtime_ns, st.st_mode)
        return out

    before = listing()
    findings = examine_home(home, now=t0 + timedelta(days=30))
    assert worst_status(findings) == "problem"  # it did look at everything
    assert listing() == before  # no -wal/-shm left behind, nothing rewritten


def test_it_reads_a_database_a_server_has_open(home: Path, t0: datetime, monkeypatch: pytest.MonkeyPatch):
    with open_stores(home) as stores:
        stores.events.append([view(f"live{n}", "u9", minutes(t0, 100 + n)) for n in range(50)])
        findings = examine_home(home, now=_now(t0))
        assert _one(findings, "database").status == "ok"
        assert _one(findings, "wal").status == "ok"
        monkeypatch.setattr(doctor, "WAL_WARN_BYTES", 1)
        wal = _one(examine_home(home, now=_now(t0)), "wal")
    assert wal.status == "warning" and "snapshot" in wal.detail and wal.fix


def test_a_missing_active_artifact_dir_is_a_problem_naming_it(home: Path, t0: datetime):
    shutil.rmtree(home / "artifacts" / "ranker" / "1")
    finding = _one(examine_home(home, now=_now(t0)), "models")
    assert finding.status == "problem"
    assert "ranker v1" in finding.detail and "artifacts/ranker/1" in finding.detail
    assert finding.fix and "rollback" in finding.fix


def test_an_empty_active_artifact_dir_is_a_problem(home: Path, t0: datetime):
    for file in (home / "artifacts" / "ranker" / "1").iterdir():
        file.unlink()
    finding = _one(examine_home(home, now=_now(t0)), "models")
    assert finding.status == "problem" and "is empty" in finding.detail


def test_orphan_artifact_dirs_are_a_warning_with_their_size(home: Path, t0: datetime):
    orphan = home / "artifacts" / "ranker" / "7"
    orphan.mkdir()
    (orphan / "weights.bin").write_bytes(b"x" * 3072)
    staging = home / "artifacts" / ".staging-abc" / "files"
    staging.mkdir(parents=True)
    (staging / "w.bin").write_bytes(b"y" * 1024)
    finding = _one(examine_home(home, now=_now(t0)), "artifacts")
    assert finding.status == "warning"
    assert "ranker/7" in finding.detail and ".staging-abc" in finding.detail
    assert "4.1 kB" in finding.detail  # 3072 + 1024 bytes
    assert finding.fix and "no process is registering" in finding.fix


def test_retired_versions_are_not_leftovers(home: Path, tmp_path: Path, t0: datetime):
    with open_stores(home) as stores:
        mv = stores.registry.register("ranker", tmp_path / "model-src")
        stores.registry.promote("ranker", mv.version)
    findings = examine_home(home, now=_now(t0))
    assert _one(findings, "artifacts").status == "ok"
    assert "ranker v2" in _one(findings, "models").detail


def test_a_key_readable_by_others_is_a_problem(home: Path, t0: datetime):
    key = home / "pseudonym.key"
    key.write_text(KEY_HEX)
    key.chmod(0o600)
    assert _one(examine_home(home, now=_now(t0)), "secrets").status == "ok"
    key.chmod(0o644)
    finding = _one(examine_home(home, now=_now(t0)), "secrets")
    assert finding.status == "problem" and "pseudonym.key" in finding.detail and "0644" in finding.detail
    assert finding.fix == f"chmod 600 {key}"


def test_pseudonyms_in_the_log_without_a_key_are_a_problem(
    home: Path, t0: datetime, monkeypatch: pytest.MonkeyPatch
):
    pseudonym = pseudonymize.Pseudonymizer(bytes.fromhex(KEY_HEX))("alice")
    with open_stores(home) as stores:
        stores.events.append([view("pe1", pseudonym, minutes(t0, 30))])
    key = home / "pseudonym.key"
    key.write_text(KEY_HEX)
    key.chmod(0o600)
    assert _one(examine_home(home, now=_now(t0)), "pseudonym key").status == "ok"

    key.unlink()
    finding = _one(examine_home(home, now=_now(t0)), "pseudonym key")
    assert finding.status == "problem" and pseudonym in finding.detail
    assert finding.fix and "backup" in finding.fix

    monkeypatch.setenv(pseudonymize.KEY_ENV, KEY_HEX)  # the key given the other way
    assert _one(examine_home(home, now=_now(t0)), "pseudonym key").status == "ok"


def test_raw_ids_that_merely_start_with_p_are_not_pseudonyms(home: Path, t0: datetime):
    with open_stores(home) as stores:
        stores.events.append([view("pe2", "p_1234", minutes(t0, 30))])
    assert _one(examine_home(home, now=_now(t0)), "pseudonym key").status == "ok"


def test_a_key_file_that_is_not_a_key_is_a_problem(home: Path, t0: datetime):
    key = home / "pseudonym.key"
    key.write_text("not hex at all")
    key.chmod(0o600)
    finding = _one(examine_home(home, now=_now(t0)), "pseudonym key")
    assert finding.status == "problem" and "not hex" in finding.detail


@pytest.mark.parametrize(
    ("text", "expected"),
    [("{ events_days: 30", "not valid JSON"), ('{"event_days": 30}', "unknown setting")],
)
def test_a_broken_retention_file_is_a_problem_naming_it(home: Path, t0: datetime, text: str, expected: str):
    (home / POLICY_FILENAME).write_text(text)
    finding = _one(examine_home(home, now=_now(t0)), "retention")
    assert finding.status == "problem"
    assert str(home / POLICY_FILENAME) in finding.detail and expected in finding.detail


def test_an_overdue_purge_is_a_warning(home: Path, t0: datetime):
    save_policy(home, RetentionPolicy(events_days=30, quarantine_days=None))
    # 31 days on: past the cutoff by a day, within the grace a missed daily run gets.
    assert _one(examine_home(home, now=t0 + timedelta(days=31)), "retention").status == "ok"
    finding = _one(examine_home(home, now=t0 + timedelta(days=40)), "retention")
    assert finding.status == "warning" and "purge overdue" in finding.detail
    assert "12 events (view)" in finding.detail
    assert finding.fix and finding.fix.startswith("shoploop retention apply")


def test_an_overdue_quarantine_purge_is_a_warning(home: Path, t0: datetime):
    save_policy(home, RetentionPolicy(events_days=None, quarantine_days=7))
    old = SqliteQuarantine(home / DB_FILENAME, clock=lambda: t0)
    old.add([(1, "unknown_item: 'x'", {"item_id": "x"})], source="s", kind="event")
    old.close()
    finding = _one(examine_home(home, now=t0 + timedelta(days=20)), "retention")
    assert finding.status == "warning" and "1 quarantined row past" in finding.detail


def test_a_policy_that_loses_impressions_first_is_flagged(home: Path, t0: datetime):
    save_policy(home, RetentionPolicy(events_days=365, quarantine_days=None, per_type={"impression": 30}))
    retention = _by_check(examine_home(home, now=_now(t0)), "retention")
    assert [f.status for f in retention] == ["ok", "warning"]


def test_quarantined_rows_are_a_warning_with_top_reasons(home: Path, t0: datetime):
    with open_stores(home) as stores:
        stores.quarantine.add(
            [
                (1, "unknown_item: 'sku-1' is not in the catalog", {}),
                (2, "unknown_item: 'sku-2' is not in the catalog", {}),
                (3, "line 3: invalid JSON (Expecting value)", {}),
                (4, "price: Input should be greater than 0", {}),
                (5, "future_timestamp: 3 days ahead", {}),
            ],
            source="feed.csv",
            kind="event",
        )
        stores.events.flag_users(["u1"], "bot")
    findings = examine_home(home, now=_now(t0))
    finding = _one(findings, "quarantine")
    assert finding.status == "warning" and finding.detail.startswith("5 rejected rows")
    assert "unknown_item (2)" in finding.detail  # grouped despite the different SKUs
    assert finding.fix and finding.fix.startswith("shoploop import quarantine list")
    flagged = _one(findings, "flagged users")
    assert flagged.status == "ok" and flagged.detail.startswith("1 user ")


def _set_schema_version(home: Path, version: int) -> None:
    conn = sqlite3.connect(home / DB_FILENAME)
    conn.execute(f"PRAGMA user_version={version}")
    conn.close()


def test_a_schema_newer_than_the_code_is_a_problem(home: Path, tmp_path: Path, t0: datetime):
    copy = tmp_path / "copy"
    shutil.copytree(home, copy)
    _set_schema_version(copy, SCHEMA_VERSION + 1)
    finding = _one(examine_home(copy, now=_now(t0)), "schema")
    assert finding.status == "problem" and "newer" in finding.detail and finding.fix
    _set_schema_version(copy, SCHEMA_VERSION - 1)
    finding = _one(examine_home(copy, now=_now(t0)), "schema")
    assert finding.status == "warning" and "migrated at next start" in finding.detail


def test_an_unreadable_database_is_one_problem_not_many(home: Path, t0: datetime):
    (home / DB_FILENAME).write_bytes(b"this is not a database" * 100)
    findings = examine_home(home, now=_now(t0))
    assert [f.check for f in findings if f.status == "problem"] == ["database"]
    assert _one(findings, "models").detail.startswith("not checked")


def test_low_disk_space_is_a_warning(home: Path, t0: datetime, monkeypatch: pytest.MonkeyPatch):
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(doctor.shutil, "disk_usage", lambda _path: usage(10**9, 10**9 - 1000, 1000))
    finding = _one(examine_home(home, now=_now(t0)), "disk")
    assert finding.status == "warning" and "second copy" in finding.detail


def test_a_failing_check_becomes_a_problem_and_the_rest_still_run(
    home: Path, t0: datetime, monkeypatch: pytest.MonkeyPatch
):
    def broken(_home: object) -> list[Finding]:
        raise RuntimeError("boom")

    monkeypatch.setattr(doctor, "CHECKS", (("broken", broken), *doctor.CHECKS))
    findings = examine_home(home, now=_now(t0))
    assert findings[0] == Finding(
        "broken", "problem", "the check failed: RuntimeError: boom", findings[0].fix
    )
    assert len(findings) == len(doctor.CHECKS)


def test_now_must_be_timezone_aware(home: Path):
    with pytest.raises(ValueError, match="timezone-aware"):
        examine_home(home, now=datetime(2026, 1, 1))


def test_a_feed_nobody_checked_for_days_and_a_broken_download_are_warnings(home: Path, t0: datetime):
    from shoploop.data.feed_fetch import FetchedFeed, mark_checked, remember

    assert "no catalog feed" in _one(examine_home(home, now=_now(t0)), "catalog feed").detail
    url = "https://shop.example/feeds/google.xml"
    remember(home, FetchedFeed(url, None, '"e1"', None, "00", 10), products=3)
    checked = datetime.fromisoformat(doctor.load_state(home)[url]["checked_at"])
    assert _one(examine_home(home, now=checked + timedelta(hours=5)), "catalog feed").status == "ok"
    stale = _one(examine_home(home, now=checked + timedelta(days=3)), "catalog feed")
    assert stale.status == "warning" and url in stale.detail and "not been checked since" in stale.detail
    mark_checked(home, url)  # an unchanged feed counts as checked
    assert doctor.load_state(home)[url]["checked_at"] >= checked.isoformat()
    (home / "feeds" / "feed-abc.xml").write_bytes(b"<rss>")
    findings = _by_check(examine_home(home, now=checked + timedelta(hours=5)), "catalog feed")
    partial = next(f for f in findings if "interrupted" in f.detail)
    assert partial.status == "warning" and "feed-abc.xml" in partial.detail and partial.fix.startswith("safe")
