"""`shoploop backup`, `verify-backup` and `restore` end to end on tmp homes (CliRunner)."""

from __future__ import annotations

import io
import stat
import tarfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from shoploop.cli.main import app
from shoploop.domain import Product, ViewEvent
from shoploop.store.home import open_stores

runner = CliRunner()


def _invoke(*args: str):
    # Progress bars off: CliRunner is not a terminal, and the summary is what is checked.
    return runner.invoke(app, [*args], env={"COLUMNS": "200"})


@pytest.fixture
def home(tmp_path: Path) -> Path:
    home = tmp_path / "shop"
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    model_src = tmp_path / "model-src"
    model_src.mkdir()
    (model_src / "model.json").write_text("{}")
    with open_stores(home) as stores:
        stores.catalog.upsert([Product(item_id=f"i{n}", title=f"Product {n}") for n in range(3)])
        stores.events.append(
            [
                ViewEvent(event_id=f"e{n}", user_id="u1", timestamp=t0 + timedelta(minutes=n), item_id="i1")
                for n in range(4)
            ]
        )
        stores.registry.register("ranker", model_src)
    (home / "rules.json").write_text("[]")
    (home / "pseudonym.key").write_text("cd" * 32)
    (home / "pseudonym.key").chmod(0o600)
    return home


def test_backup_verify_restore(home: Path, tmp_path: Path):
    archive = tmp_path / "backups" / "shop.tar.gz"
    result = _invoke("backup", "--home", str(home), "--out", str(archive), "--no-progress")
    assert result.exit_code == 0, result.output
    assert f"backup written to {archive}" in result.output
    assert "products 3, events 4, model versions 1" in result.output
    assert "secrets included: pseudonym.key" in result.output

    result = _invoke("verify-backup", str(archive), "--no-progress")
    assert result.exit_code == 0, result.output
    assert f"ok: {archive}" in result.output
    assert "products 3, events 4, model versions 1" in result.output

    target = tmp_path / "restored"
    result = _invoke("restore", str(archive), "--home", str(target), "--no-progress")
    assert result.exit_code == 0, result.output
    assert f"restored {archive} into {target}" in result.output
    with open_stores(target) as stores:
        assert len(stores.catalog) == 3
        assert len(stores.events) == 4
        (version,) = stores.registry.versions()
        assert (version.path / "model.json").is_file()
    assert stat.S_IMODE((target / "pseudonym.key").stat().st_mode) == 0o600

    # A second restore into the now non-empty home needs --force (usage error: exit 2) ...
    (target / "rules.json").write_text('[{"changed": true}]')
    result = _invoke("restore", str(archive), "--home", str(target), "--no-progress")
    assert result.exit_code == 2
    assert "error:" in result.output
    assert "not empty" in result.output
    assert (target / "rules.json").read_text() == '[{"changed": true}]'
    # ... and with it, the backup's version comes back.
    result = _invoke("restore", str(archive), "--home", str(target), "--force", "--no-progress")
    assert result.exit_code == 0, result.output
    assert (target / "rules.json").read_text() == "[]"


def test_progress_bar_mode_runs(home: Path, tmp_path: Path):
    archive = tmp_path / "shop.tar.gz"
    result = _invoke("backup", "--home", str(home), "--out", str(archive))
    assert result.exit_code == 0, result.output
    assert _invoke("verify-backup", str(archive)).exit_code == 0


def test_without_secrets_warns_on_restore(home: Path, tmp_path: Path):
    archive = tmp_path / "shop.tar.gz"
    result = _invoke(
        "backup", "--home", str(home), "--out", str(archive), "--without-secrets", "--no-progress"
    )
    assert result.exit_code == 0, result.output
    assert "left out: pseudonym.key" in result.output
    result = _invoke("restore", str(archive), "--home", str(tmp_path / "restored"), "--no-progress")
    assert result.exit_code == 0, result.output
    assert "warning: this backup holds no pseudonym.key" in result.output
    assert not (tmp_path / "restored" / "pseudonym.key").exists()


def test_verify_of_a_tampered_archive_exits_1_naming_the_member(home: Path, tmp_path: Path):
    archive = tmp_path / "shop.tar.gz"
    assert _invoke("backup", "--home", str(home), "--out", str(archive), "--no-progress").exit_code == 0
    tampered = tmp_path / "tampered.tar.gz"
    with tarfile.open(archive) as src, tarfile.open(tampered, "w:gz") as dst:
        for member in src.getmembers():
            handle = src.extractfile(member)
            assert handle is not None
            data = handle.read()
            if member.name == "home/rules.json":
                data = b"{}"  # same size as "[]": only the hash can tell
            dst.addfile(member, io.BytesIO(data))
    result = _invoke("verify-backup", str(tampered), "--no-progress")
    assert result.exit_code == 1
    assert "error:" in result.output
    assert "rules.json does not match its sha256" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["backup", "--home", "{tmp}/none", "--out", "{tmp}/b.tar.gz"], "no shop at"),
        (["backup", "--home", "{home}", "--out", "{home}/b.tar.gz"], "refusing to write the backup"),
        (["verify-backup", "{tmp}/missing.tar.gz"], "no backup file at"),
        (["restore", "{tmp}/missing.tar.gz", "--home", "{tmp}/x"], "no backup file at"),
    ],
    ids=["no-shop", "out-inside-home", "verify-missing", "restore-missing"],
)
def test_usage_errors_exit_2(home: Path, tmp_path: Path, args: list[str], message: str):
    filled = [a.format(tmp=tmp_path, home=home) for a in args]
    result = _invoke(*filled, "--no-progress")
    assert result.exit_code == 2, result.output
    assert f"error: {message}" in result.output


def test_backup_requires_out(home: Path):
    result = _invoke("backup", "--home", str(home))
    assert result.exit_code == 2
    assert "--out" in result.output


def test_commands_are_listed_in_help():
    result = _invoke("--help")
    assert result.exit_code == 0
    for name in ("backup", "verify-backup", "restore"):
        assert name in result.output
