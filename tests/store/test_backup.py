"""Backup / verify / restore of a real SQLite shop home (store.backup), on tmp_path homes."""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import os
import re
import shutil
import stat
import tarfile
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pytest
from store_factories import minutes, small_shop, view

from shoploop.store.backup import (
    BackupError,
    BackupRefusedError,
    create_backup,
    restore_backup,
    verify_backup,
)
from shoploop.store.home import open_stores


def _write_secret(path: Path, text: str) -> None:
    path.write_text(text)
    path.chmod(0o600)


def _build_shop(home: Path, tmp_path: Path, t0: datetime) -> Path:
    small_shop(home, tmp_path / "model-src", t0, users=2)
    (home / "rules.json").write_text("[]")
    (home / "synonyms.txt").write_text("tee => t-shirt\n")
    (home / "reports").mkdir()
    (home / "reports" / "20260101-events-demo.json").write_text("{}")
    _write_secret(home / "pseudonym.key", "ab" * 32)
    _write_secret(home / "api_keys.json", '{"keys": {"sl_admin_x": ["admin"]}}')
    (home / "cache" / "embeddings").mkdir(parents=True)
    (home / "cache" / "embeddings" / "emb-minilm.npz").write_bytes(b"vectors")
    return home


@pytest.fixture
def shop(tmp_path: Path, t0: datetime) -> Path:
    return _build_shop(tmp_path / "shop", tmp_path, t0)


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _rewrite(archive: Path, out: Path, change: Callable[[str, bytes], bytes]) -> Path:
    """A copy of `archive` with `change(name, data)` applied to every member (a re-packed tar,
    so the damage is inside a member, where gzip's own CRC cannot catch it)."""
    with tarfile.open(archive) as src, tarfile.open(out, "w:gz") as dst:
        for member in src.getmembers():
            handle = src.extractfile(member)
            assert handle is not None
            data = change(member.name, handle.read())
            member.size = len(data)
            dst.addfile(member, io.BytesIO(data))
    return out


# ---------------------------------------------------------------------------------------
# round trip


@pytest.mark.parametrize("relative_home", [False, True], ids=["absolute-home", "relative-home"])
def test_round_trip_into_another_directory(tmp_path, t0, monkeypatch, relative_home):
    if relative_home:
        # A relative --home makes the registry store a path relative to the working directory.
        monkeypatch.chdir(tmp_path)
        home = _build_shop(Path("shop"), tmp_path, t0)
    else:
        home = _build_shop(tmp_path / "shop", tmp_path, t0)
    with open_stores(home) as stores:
        products = sorted(p.item_id for p in stores.catalog.iter_products())
        events = [e.event_id for e in stores.events.scan()]
        versions = [(v.name, v.version, v.status, v.metrics) for v in stores.registry.versions()]
        decisions = [(d.action, d.reason) for d in stores.registry.decisions()]
        assert str(stores.registry.versions()[0].path).startswith(str(home))  # the OLD location

    seen: list[tuple[int, int]] = []
    archive = tmp_path / "backups" / "shop.tar.gz"
    manifest = create_backup(home, archive, progress=lambda done, total: seen.append((done, total)))
    assert manifest.counts["products"] == 5
    assert manifest.counts["events"] == 12
    assert manifest.counts["model_versions"] == 1
    assert manifest.model_versions == (("ranker", 1),)
    assert seen and seen[-1][0] == seen[-1][1] == manifest.total_bytes
    assert all(a[0] <= b[0] for a, b in itertools.pairwise(seen))

    shutil.rmtree(home)  # nothing may still point at the old home
    target = tmp_path / "elsewhere" / "restored"
    restored = restore_backup(archive, target)
    assert restored.counts == manifest.counts
    with open_stores(target) as stores:
        assert sorted(p.item_id for p in stores.catalog.iter_products()) == products
        assert [e.event_id for e in stores.events.scan()] == events
        assert [(v.name, v.version, v.status, v.metrics) for v in stores.registry.versions()] == versions
        assert [(d.action, d.reason) for d in stores.registry.decisions()] == decisions
        active = stores.registry.active("ranker")
        assert active is not None
        assert active.path == target / "artifacts" / "ranker" / "1"
        assert json.loads((active.path / "weights.json").read_text()) == {"w": [1, 2, 3]}
        # The restored home keeps working: a new registration lands beside the restored one.
        stores.registry.register("ranker", tmp_path / "model-src")
        assert len(stores.registry.versions("ranker")) == 2
    assert (target / "rules.json").read_text() == "[]"
    assert (target / "synonyms.txt").read_text() == "tee => t-shirt\n"
    assert (target / "reports" / "20260101-events-demo.json").is_file()
    assert not (target / "cache").exists()
    assert sorted(p.name for p in target.parent.iterdir()) == ["restored"]  # no staging left behind


def test_uncompressed_tar_when_out_ends_in_tar(shop, tmp_path):
    archive = tmp_path / "shop.tar"
    create_backup(shop, archive)
    with tarfile.open(archive, "r:") as tar:  # "r:" fails on a compressed file
        names = tar.getnames()
    assert names[0] == "home/shoploop.sqlite"
    assert names[-1] == "manifest.json"
    assert verify_backup(archive).counts["events"] == 12


def test_backup_while_events_are_appended_is_consistent(shop, tmp_path, t0):
    stop = threading.Event()
    batch = 20
    with open_stores(shop) as stores:
        before = len(stores.events)

        def keep_appending() -> None:
            n = 0
            while not stop.is_set():
                stores.events.append(
                    [view(f"bg{n}-{k}", "writer", minutes(t0, 100 + n), item="i1") for k in range(batch)]
                )
                n += 1

        writer = threading.Thread(target=keep_appending)
        writer.start()
        try:
            while len(stores.events) == before:  # the backup must race real commits
                time.sleep(0.001)
            manifest = create_backup(shop, tmp_path / "live.tar.gz")
        finally:
            stop.set()
            writer.join()
        after = len(stores.events)

    taken = manifest.counts["events"]
    assert before < taken <= after
    assert (taken - before) % batch == 0  # whole batches only: a snapshot never sees half a commit
    assert verify_backup(tmp_path / "live.tar.gz").counts["events"] == taken  # integrity_check ok
    restore_backup(tmp_path / "live.tar.gz", tmp_path / "restored")
    with open_stores(tmp_path / "restored") as stores:
        assert len(stores.events) == taken


# ---------------------------------------------------------------------------------------
# what is in, what is out


def test_secrets_are_kept_owner_only_by_default(shop, tmp_path):
    (shop / "api_keys.json").chmod(0o644)  # even when someone loosened it
    archive = tmp_path / "b.tar.gz"
    manifest = create_backup(shop, archive)
    assert set(manifest.secrets_included) == {"api_keys.json", "pseudonym.key"}
    assert stat.S_IMODE(archive.stat().st_mode) == 0o600  # the archive itself holds them
    restore_backup(archive, tmp_path / "restored")
    for name in ("api_keys.json", "pseudonym.key"):
        restored = tmp_path / "restored" / name
        assert restored.read_bytes() == (shop / name).read_bytes()
        assert stat.S_IMODE(restored.stat().st_mode) == 0o600


def test_without_secrets_leaves_them_out(shop, tmp_path):
    archive = tmp_path / "b.tar.gz"
    manifest = create_backup(shop, archive, include_secrets=False)
    with tarfile.open(archive) as tar:
        names = set(tar.getnames())
    assert "home/api_keys.json" not in names
    assert "home/pseudonym.key" not in names
    assert set(manifest.secrets_left_out) == {"api_keys.json", "pseudonym.key"}
    restore_backup(archive, tmp_path / "restored")
    assert not (tmp_path / "restored" / "pseudonym.key").exists()
    assert not (tmp_path / "restored" / "api_keys.json").exists()


def test_cache_only_on_request(shop, tmp_path):
    (shop / "cache" / "embeddings" / "emb-minilm.tmp.npz").write_bytes(b"half")  # being rewritten
    without = create_backup(shop, tmp_path / "a.tar.gz")
    assert not any(f.path.startswith("cache/") for f in without.files)
    assert ("cache/", "regenerable cache (include it with --include-cache)") in without.skipped
    with_cache = create_backup(shop, tmp_path / "b.tar.gz", include_cache=True)
    assert [f.path for f in with_cache.files if f.path.startswith("cache/")] == [
        "cache/embeddings/emb-minilm.npz"
    ]


def test_unregistered_artifact_dirs_and_temp_files_are_left_out(shop, tmp_path):
    # A registration in flight: files renamed into place, row not committed yet (or a crash).
    (shop / "artifacts" / "ranker" / "2").mkdir()
    (shop / "artifacts" / "ranker" / "2" / "half.bin").write_bytes(b"x" * 100)
    (shop / "artifacts" / ".staging-abc" / "files").mkdir(parents=True)
    (shop / "artifacts" / ".staging-abc" / "files" / "w.bin").write_bytes(b"y")
    (shop / ".rules-x1.json").write_text("[")  # an atomic write's temp file
    manifest = create_backup(shop, tmp_path / "b.tar.gz")
    paths = {f.path for f in manifest.files}
    assert "artifacts/ranker/1/weights.json" in paths
    assert not any(
        p.startswith(("artifacts/ranker/2", "artifacts/.staging")) or p.startswith(".") for p in paths
    )
    assert ("artifacts/ranker/2", "no registry row in the snapshot (being registered, or a leftover)") in (
        manifest.skipped
    )


def test_unknown_files_are_kept_and_links_are_not_followed(shop, tmp_path):
    outside = tmp_path / "outside.txt"
    outside.write_text("not the shop's")
    (shop / "retention.json").write_text("{}")  # a file this module does not name
    (shop / "link.txt").symlink_to(outside)
    manifest = create_backup(shop, tmp_path / "b.tar.gz")
    paths = {f.path for f in manifest.files}
    assert "retention.json" in paths
    assert "link.txt" not in paths
    assert any(p == "link.txt" and "symbolic link" in why for p, why in manifest.skipped)


def test_missing_artifact_dir_of_a_registered_version_fails(shop, tmp_path):
    shutil.rmtree(shop / "artifacts" / "ranker" / "1")
    with pytest.raises(BackupError, match=r"'ranker' v1 .*artifacts/ranker/1 is missing"):
        create_backup(shop, tmp_path / "b.tar.gz")
    assert list(tmp_path.glob("*b.tar.gz*")) == []


# ---------------------------------------------------------------------------------------
# refusals and crash safety


def test_refuses_to_write_inside_the_home(shop):
    with pytest.raises(BackupRefusedError, match="inside the shop home"):
        create_backup(shop, shop / "backups" / "b.tar.gz")
    assert not (shop / "backups").exists()


def test_refuses_a_directory_without_a_shop(tmp_path):
    with pytest.raises(BackupRefusedError, match="no shop at"):
        create_backup(tmp_path / "nothing", tmp_path / "b.tar.gz")


def test_interrupted_backup_leaves_no_archive(shop, tmp_path):
    out_dir = tmp_path / "backups"
    out_dir.mkdir()
    (out_dir / "b.tar.gz").write_bytes(b"yesterday's backup")

    def interrupt(done: int, total: int) -> None:
        if done > 0:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        create_backup(shop, out_dir / "b.tar.gz", progress=interrupt)
    # The previous archive under the final name is intact and no partial file is left around.
    assert [p.name for p in out_dir.iterdir()] == ["b.tar.gz"]
    assert (out_dir / "b.tar.gz").read_bytes() == b"yesterday's backup"


# ---------------------------------------------------------------------------------------
# verification


@pytest.fixture
def archive(shop, tmp_path) -> Path:
    path = tmp_path / "good.tar.gz"
    create_backup(shop, path)
    return path


def test_verify_accepts_a_good_archive(archive):
    manifest = verify_backup(archive)
    assert manifest.counts["events"] == 12
    assert {f.path for f in manifest.files} >= {
        "shoploop.sqlite",
        "rules.json",
        "artifacts/ranker/1/weights.json",
    }


def test_verify_names_a_member_with_a_changed_byte(archive, tmp_path):
    def flip(name: str, data: bytes) -> bytes:
        return data.replace(b"tee", b"tea") if name == "home/synonyms.txt" else data

    bad = _rewrite(archive, tmp_path / "bad.tar.gz", flip)
    with pytest.raises(BackupError, match=r"synonyms\.txt does not match its sha256"):
        verify_backup(bad)


def test_verify_names_a_member_whose_manifest_hash_was_changed(archive, tmp_path):
    def edit_manifest(name: str, data: bytes) -> bytes:
        if name != "manifest.json":
            return data
        raw = json.loads(data)
        for entry in raw["files"]:
            if entry["path"] == "artifacts/ranker/1/weights.json":
                entry["sha256"] = "0" * 64
        return json.dumps(raw).encode()

    bad = _rewrite(archive, tmp_path / "bad.tar.gz", edit_manifest)
    with pytest.raises(BackupError, match=r"artifacts/ranker/1/weights\.json does not match"):
        verify_backup(bad)


def test_verify_reports_a_missing_member(archive, tmp_path):
    with tarfile.open(archive) as src, tarfile.open(tmp_path / "bad.tar.gz", "w:gz") as dst:
        for member in src.getmembers():
            if member.name != "home/rules.json":
                dst.addfile(member, src.extractfile(member))
    with pytest.raises(BackupError, match=r"rules\.json is listed in the manifest but missing"):
        verify_backup(tmp_path / "bad.tar.gz")


def test_verify_runs_the_database_integrity_check(archive, tmp_path):
    def break_db(name: str, data: bytes) -> bytes:
        if name != "home/shoploop.sqlite":
            return data
        page = 8192  # the store's page size: garble the second page (a B-tree page)
        return data[:page] + b"\xff" * 64 + data[page + 64 :]

    bad = _rewrite(archive, tmp_path / "bad.tar.gz", break_db)
    # Re-sign the damaged database so only SQLite's own check can catch it.
    with tarfile.open(bad) as tar:
        handle = tar.extractfile("home/shoploop.sqlite")
        assert handle is not None
        data = handle.read()

    def resign(name: str, body: bytes) -> bytes:
        if name != "manifest.json":
            return body
        raw = json.loads(body)
        for entry in raw["files"]:
            if entry["path"] == "shoploop.sqlite":
                entry["sha256"] = hashlib.sha256(data).hexdigest()
        return json.dumps(raw).encode()

    resigned = _rewrite(bad, tmp_path / "resigned.tar.gz", resign)
    with pytest.raises(BackupError, match=r"shoploop\.sqlite"):
        verify_backup(resigned)


def test_verify_reports_a_corrupt_compressed_stream(archive, tmp_path):
    data = bytearray(archive.read_bytes())
    data[len(data) // 2] ^= 0xFF
    bad = tmp_path / "bad.tar.gz"
    bad.write_bytes(bytes(data))
    with pytest.raises(BackupError, match=re.escape(str(bad))):
        verify_backup(bad)


def test_verify_refuses_something_that_is_not_a_backup(tmp_path):
    plain = tmp_path / "notes.tar.gz"
    with tarfile.open(plain, "w:gz") as tar:
        info = tarfile.TarInfo("home/notes.txt")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"hi"))
    with pytest.raises(BackupError, match=r"no manifest\.json"):
        verify_backup(plain)


# ---------------------------------------------------------------------------------------
# restore: refusals, swaps, hostile archives


def test_restore_refuses_a_non_empty_home_and_leaves_it_untouched(archive, tmp_path):
    target = tmp_path / "busy"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    with pytest.raises(BackupRefusedError, match=re.escape(str(target))):
        restore_backup(archive, target)
    assert _tree(target) == {"keep.txt": b"mine"}


def test_restore_with_force_replaces_the_home(archive, tmp_path):
    target = tmp_path / "busy"
    target.mkdir()
    (target / "keep.txt").write_text("old")
    restore_backup(archive, target, force=True)
    assert not (target / "keep.txt").exists()
    assert (target / "shoploop.sqlite").is_file()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # old copy removed


def test_failed_restore_leaves_the_old_home_untouched(archive, tmp_path):
    target = tmp_path / "busy"
    target.mkdir()
    (target / "keep.txt").write_text("old")
    bad = _rewrite(archive, tmp_path / "bad.tar.gz", lambda n, d: d + b"!" if n == "home/rules.json" else d)
    with pytest.raises(BackupError, match=r"rules\.json"):
        restore_backup(bad, target, force=True)
    assert _tree(target) == {"keep.txt": b"old"}
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # staging removed


def _hostile_archive(path: Path, member: tarfile.TarInfo, data: bytes = b"pwned") -> Path:
    with tarfile.open(path, "w:gz") as tar:
        if member.isreg():
            member.size = len(data)
            tar.addfile(member, io.BytesIO(data))
        else:
            tar.addfile(member)
        manifest = tarfile.TarInfo("manifest.json")
        body = b"{}"
        manifest.size = len(body)
        tar.addfile(manifest, io.BytesIO(body))
    return path


def _member(name: str, kind: bytes = tarfile.REGTYPE, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = link
    return info


@pytest.mark.parametrize(
    "member",
    [
        _member("../evil"),
        _member("home/../../evil"),
        _member("home/../evil"),
        _member("/tmp/shoploop-test-evil-absolute"),
        _member("home/link", tarfile.SYMTYPE, "../../evil"),
        _member("home/hard", tarfile.LNKTYPE, "/etc/passwd"),
    ],
    ids=["dotdot", "home-dotdot-dotdot", "home-dotdot", "absolute", "symlink", "hardlink"],
)
def test_restore_refuses_members_that_would_land_outside(tmp_path, member):
    hostile = _hostile_archive(tmp_path / "hostile.tar.gz", member)
    before = _tree(tmp_path)
    target = tmp_path / "shops" / "target"
    with pytest.raises(BackupError, match=re.escape(member.name)):
        restore_backup(hostile, target)
    assert _tree(tmp_path) == before  # nothing written anywhere under tmp_path
    assert not target.exists()
    assert not Path("/tmp/shoploop-test-evil-absolute").exists()
    with pytest.raises(BackupError, match=re.escape(member.name)):
        verify_backup(hostile)


def test_restore_refuses_an_archive_inside_the_home_it_replaces(archive, tmp_path):
    target = tmp_path / "busy"
    target.mkdir()
    inside = target / "b.tar.gz"
    shutil.copy(archive, inside)
    with pytest.raises(BackupRefusedError, match="inside the home"):
        restore_backup(inside, target, force=True)
    assert inside.is_file()


def test_restored_file_modes_follow_the_archive(shop, tmp_path):
    os.chmod(shop / "rules.json", 0o600)  # a shop that keeps a file private keeps it private
    archive = tmp_path / "b.tar.gz"
    create_backup(shop, archive)
    restore_backup(archive, tmp_path / "restored")
    assert stat.S_IMODE((tmp_path / "restored" / "rules.json").stat().st_mode) == 0o600
