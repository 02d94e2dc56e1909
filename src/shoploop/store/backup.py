"""Backup and restore of a shop home: one verified archive, taken while the server runs.

What a backup holds, and why. The layout of the home is decided by `store.home`; the files the
engine, the API and the importers add beside the database were found by grepping for `home /`
and for file names (`rules.json`, `api_keys.json`, ...):

    in   shoploop.sqlite          a snapshot by SQLite's online backup API (one read transaction,
                                  so it is consistent while a server writes): catalog, events,
                                  quarantine, flagged users, model registry + audit trail and the
                                  A/B experiments (`ab_*` tables) all live in this one file
    out  shoploop.sqlite-wal/-shm/-journal
                                  their committed content is inside the snapshot; copying them
                                  beside a main file taken at another instant would corrupt it
    in   artifacts/<name>/<v>/    only the versions the SNAPSHOT's `models` table names: a
                                  directory being registered right now (no committed row yet) or
                                  left by a crash is not included, and a named version whose
                                  directory is missing fails the backup instead of losing a model
    out  artifacts/.staging-*     registrations in flight (see `memory.stage_copy`)
    in   rules.json, synonyms.txt, suggest_blocklist.txt
                                  merchandising the shop wrote by hand (engine, `store.files`)
    in   reports/                 import reports: small JSON, the history of data quality
    in   api_keys.json, pseudonym.key
                                  secrets. The pseudonymisation key links a shopper's pseudonym to
                                  their id: without it erasure requests and returning shoppers no
                                  longer match, so a backup keeps it by default (restored 0600);
                                  `include_secrets=False` leaves both out for an archive that is
                                  going somewhere less trusted. Keys given by environment variables
                                  ($SHOPLOOP_PSEUDONYM_KEY, $SHOPLOOP_API_KEYS) are not in the home
                                  and so never in a backup.
    out  cache/                   regenerable (product embeddings by text hash); can be large, and
                                  the next start rebuilds it. `include_cache=True` keeps it.
    out  .* (dot names)           temp files of atomic writes (`.rules-*.json`) and staging dirs;
                                  inside a registered artifact version every file is kept
    in   anything else            kept rather than lost: a file added later (e.g. the retention
                                  policy's `retention.json`) is backed up without a change here
    out  symbolic links           following one could pull in files from outside the home, and a
                                  restore never creates links; listed in the manifest as skipped

Registry paths. `models.path` holds the directory exactly as the registry was opened with it:
absolute, or relative to the working directory of the process that registered (a relative
`--home`), so it names the OLD location either way. A backup therefore reads each version from
its canonical place `home/artifacts/<name>/<version>` (where `open_stores` always puts it), and a
restore rewrites every row's path to the absolute canonical place in the NEW home, so a home
restored to another directory (or read by a server started elsewhere) finds its models.

The archive is a tar (gzip unless `out` ends in `.tar`): the home's files as `home/<path>`, then
`manifest.json` LAST. Last, because each file is read exactly once and hashed while it streams
into the archive; hashing first and copying second could disagree when a merchandiser saves
`rules.json` in between. The manifest lists every member's size and sha256, the counts
(products, events, model versions), the schema version and what was left out. The hashes catch
corruption and accidental edits; they are not a signature against a deliberate forger, who could
rewrite the manifest too (keep archives where only the shop can write).
"""

from __future__ import annotations

import contextlib
import errno
import gzip
import hashlib
import io
import json
import os
import secrets
import shutil
import sqlite3
import stat
import tarfile
import tempfile
import time
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from shoploop import __version__
from shoploop.store.home import ARTIFACTS_DIRNAME, DB_FILENAME
from shoploop.store.memory import check_model_name
from shoploop.store.progress import Progress, running_total
from shoploop.store.sqlite_db import SCHEMA_VERSION

FORMAT = "shoploop-backup"
FORMAT_VERSION = 1
MANIFEST_NAME = "manifest.json"
HOME_PREFIX = "home"  # members are `home/<path>`, so no home file can collide with the manifest
CACHE_DIRNAME = "cache"
# Named here, not imported: `store` sits below `api` and `privacy` in the layering
# (api/settings.py KEYS_FILENAME, privacy/pseudonymize.py Pseudonymizer.from_home).
SECRET_FILES = ("api_keys.json", "pseudonym.key")
_DB_SIDE_FILES = frozenset(DB_FILENAME + suffix for suffix in ("-wal", "-shm", "-journal"))
_CHUNK = 1 << 20
_MAX_MANIFEST_BYTES = 64 << 20  # a manifest for millions of files; more is not a manifest
_GZIP_LEVEL = 6  # level 9 costs ~2x the CPU for ~1% smaller archives (model files hardly compress)
# progress callbacks here count bytes: (done, total)


class BackupError(Exception):
    """The backup or the archive is wrong; the message names the file and what is wrong."""


class BackupRefusedError(BackupError):
    """A precondition failed before anything was read or written (no shop, target not empty...)."""


@dataclass(frozen=True)
class BackupFile:
    path: str  # POSIX path relative to the home
    size: int
    sha256: str
    mode: int  # permission bits at backup time; owner-only files are restored owner-only


@dataclass(frozen=True)
class BackupManifest:
    created_at: datetime
    shoploop_version: str
    source_home: str
    schema_version: int | None
    counts: dict[str, int]
    files: tuple[BackupFile, ...]
    model_versions: tuple[tuple[str, int], ...]
    include_cache: bool
    include_secrets: bool
    skipped: tuple[tuple[str, str], ...] = ()  # (path, why) of what the home had but the backup has not
    format_version: int = FORMAT_VERSION

    @property
    def total_bytes(self) -> int:
        return sum(f.size for f in self.files)

    @property
    def secrets_included(self) -> tuple[str, ...]:
        return tuple(f.path for f in self.files if f.path in SECRET_FILES)

    @property
    def secrets_left_out(self) -> tuple[str, ...]:
        return tuple(path for path, _ in self.skipped if path in SECRET_FILES)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "format_version": self.format_version,
            "shoploop_version": self.shoploop_version,
            "created_at": self.created_at.isoformat(),
            "source_home": self.source_home,
            "schema_version": self.schema_version,
            "counts": dict(self.counts),
            "include_cache": self.include_cache,
            "include_secrets": self.include_secrets,
            "model_versions": [{"name": n, "version": v} for n, v in self.model_versions],
            "files": [
                {"path": f.path, "size": f.size, "sha256": f.sha256, "mode": f.mode} for f in self.files
            ],
            "skipped": [{"path": p, "reason": r} for p, r in self.skipped],
        }

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any]) -> BackupManifest:
        try:
            if raw.get("format") != FORMAT:
                raise ValueError(f"format is {raw.get('format')!r}, expected {FORMAT!r}")
            version = int(raw["format_version"])
            if version > FORMAT_VERSION:
                raise ValueError(
                    f"format version {version} was written by a newer shoploop "
                    f"(this one reads up to {FORMAT_VERSION})"
                )
            created = datetime.fromisoformat(raw["created_at"])
            schema = raw.get("schema_version")
            return cls(
                created_at=created if created.tzinfo else created.replace(tzinfo=UTC),
                shoploop_version=str(raw["shoploop_version"]),
                source_home=str(raw["source_home"]),
                schema_version=None if schema is None else int(schema),
                counts={str(k): int(v) for k, v in raw["counts"].items()},
                files=tuple(
                    BackupFile(
                        path=_safe_relative(str(f["path"])),
                        size=int(f["size"]),
                        sha256=str(f["sha256"]),
                        mode=int(f["mode"]),
                    )
                    for f in raw["files"]
                ),
                model_versions=tuple(
                    (check_model_name(str(m["name"])), int(m["version"])) for m in raw["model_versions"]
                ),
                include_cache=bool(raw["include_cache"]),
                include_secrets=bool(raw["include_secrets"]),
                skipped=tuple((str(s["path"]), str(s["reason"])) for s in raw.get("skipped", [])),
                format_version=version,
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise BackupError(f"{MANIFEST_NAME}: not a valid shoploop backup manifest ({exc})") from None


# ---------------------------------------------------------------------------------------
# backup


@dataclass(frozen=True)
class _Source:
    rel: str  # POSIX path relative to the home
    path: Path  # where to read it now
    required: bool  # the database and artifacts must be there; a report may vanish meanwhile


@dataclass(frozen=True)
class _Snapshot:
    schema_version: int | None
    counts: dict[str, int]
    model_versions: tuple[tuple[str, int], ...]


def create_backup(
    home: Path,
    out: Path,
    *,
    include_cache: bool = False,
    include_secrets: bool = True,
    progress: Progress | None = None,
) -> BackupManifest:
    """Write a consistent archive of `home` to `out` (safe while a server is writing).

    Raises `BackupRefusedError` when there is no shop at `home` or `out` lies inside it, and
    `BackupError` when a model version named by the registry has no directory. `out` appears
    only when complete: the archive is written beside it and renamed into place.
    """
    home, out = Path(home), Path(out)
    db_path = home / DB_FILENAME
    if not db_path.is_file():
        raise BackupRefusedError(f"no shop at {home} (expected {db_path})")
    if out.resolve().is_relative_to(home.resolve()):
        # The archive would end up in the next backup of this home (each one holding all the
        # previous ones) and a restore with force would delete it.
        raise BackupRefusedError(f"refusing to write the backup {out} inside the shop home {home}")
    if out.is_dir():
        raise BackupRefusedError(f"{out} is a directory; give the archive's file name")
    out.parent.mkdir(parents=True, exist_ok=True)

    # One private work directory beside `out` (same file system, so the final rename is atomic)
    # holds the database snapshot and the partial archive; a crash leaves only this dot-dir.
    work = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".partial", dir=out.parent))
    try:
        snapshot_path = work / DB_FILENAME
        shot = _snapshot_database(db_path, snapshot_path)
        # The copy keeps the live file's permissions (a shop may keep its database owner-only).
        snapshot_path.chmod(stat.S_IMODE(db_path.stat().st_mode))
        sources, skipped = _plan(home, snapshot_path, shot.model_versions, include_cache, include_secrets)
        partial = work / "archive.partial"

        def finish(files: tuple[BackupFile, ...], vanished: list[str]) -> BackupManifest:
            return BackupManifest(
                created_at=datetime.now(UTC),
                shoploop_version=__version__,
                source_home=str(home.resolve()),
                schema_version=shot.schema_version,
                counts=shot.counts,
                files=files,
                model_versions=shot.model_versions,
                include_cache=include_cache,
                include_secrets=include_secrets,
                skipped=(*skipped, *((rel, "deleted while the backup ran") for rel in vanished)),
            )

        gzip = not out.name.endswith(".tar")
        manifest = _write_archive(partial, sources, gzip=gzip, progress=progress, finish=finish)
        os.replace(partial, out)
        _fsync_dir(out.parent)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return manifest


def _snapshot_database(source: Path, target: Path) -> _Snapshot:
    try:
        src = sqlite3.connect(source, timeout=30.0)
        try:
            src.execute("PRAGMA query_only=ON")
            dst = sqlite3.connect(target)
            try:
                # pages=-1 (the default): the whole copy in ONE step, i.e. one read transaction.
                # A stepped copy restarts whenever another connection commits between steps, so
                # against a busy server it might never finish; under WAL one long read does not
                # block the writer (https://www.sqlite.org/backup.html, "Example 2").
                src.backup(dst)
                # The copied header says WAL; a rollback-journal file is self-contained (no -wal
                # to carry along) and opens read-only. `open_stores` switches it back to WAL.
                dst.execute("PRAGMA journal_mode=DELETE")
                return _describe(dst)
            finally:
                dst.close()
        finally:
            src.close()
    except sqlite3.Error as exc:
        raise BackupError(f"{source}: cannot take a snapshot of the database ({exc})") from exc


def _describe(conn: sqlite3.Connection) -> _Snapshot:
    tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    # The table names are fixed below, never input, so formatting them into SQL is safe.
    counts = {
        label: int(conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0])
        for label, table in (
            ("products", "products"),
            ("events", "events"),
            ("model_versions", "models"),
            ("experiments", "ab_experiments"),
            ("quarantined_rows", "quarantine"),
        )
        if table in tables
    }
    versions: tuple[tuple[str, int], ...] = ()
    if "models" in tables:
        versions = tuple(
            (str(name), int(version))
            for name, version in conn.execute("SELECT name, version FROM models ORDER BY name, version")
        )
    schema = int(conn.execute("PRAGMA user_version").fetchone()[0])
    return _Snapshot(schema_version=schema or None, counts=counts, model_versions=versions)


def _plan(
    home: Path,
    snapshot: Path,
    model_versions: tuple[tuple[str, int], ...],
    include_cache: bool,
    include_secrets: bool,
) -> tuple[list[_Source], list[tuple[str, str]]]:
    """The files to archive (database snapshot first) and what was deliberately left out."""
    sources = [_Source(DB_FILENAME, snapshot, required=True)]
    skipped: list[tuple[str, str]] = []

    named = set()
    for name, version in model_versions:
        check_model_name(name)  # the name becomes a path component
        rel_dir = f"{ARTIFACTS_DIRNAME}/{name}/{version}"
        directory = home / ARTIFACTS_DIRNAME / name / str(version)
        named.add(rel_dir)
        if not directory.is_dir():
            raise BackupError(
                f"model {name!r} v{version} is in the registry but its directory {directory} is missing"
            )
        for rel, entry in _walk(directory, rel_dir, keep_dot=True):
            if not entry.is_file(follow_symlinks=False):
                # A loader would read the link's target, which is not in the archive.
                raise BackupError(f"{home / rel}: artifact files must be regular files, not links")
            sources.append(_Source(rel, Path(entry.path), required=True))
    artifacts = home / ARTIFACTS_DIRNAME
    if artifacts.is_dir():
        for model_dir in sorted(p for p in artifacts.iterdir() if p.is_dir() and not p.name.startswith(".")):
            for version_dir in sorted(model_dir.iterdir()):
                rel_dir = f"{ARTIFACTS_DIRNAME}/{model_dir.name}/{version_dir.name}"
                if rel_dir not in named and not version_dir.name.startswith("."):
                    skipped.append(
                        (rel_dir, "no registry row in the snapshot (being registered, or a leftover)")
                    )

    for entry in sorted(os.scandir(home), key=lambda e: e.name):
        name = entry.name
        if name in (DB_FILENAME, ARTIFACTS_DIRNAME) or name in _DB_SIDE_FILES or name.startswith("."):
            continue
        if name == CACHE_DIRNAME and not include_cache:
            skipped.append((f"{name}/", "regenerable cache (include it with --include-cache)"))
            continue
        if name in SECRET_FILES and not include_secrets:
            skipped.append((name, "secret left out (--without-secrets)"))
            continue
        if entry.is_dir(follow_symlinks=False):
            for rel, sub in _walk(Path(entry.path), name, keep_dot=False):
                if name == CACHE_DIRNAME and (".tmp." in sub.name or sub.name.endswith(".tmp")):
                    continue  # a cache file being rewritten (text.encoder writes *.tmp.npz, then renames)
                if _is_plain_file(sub, rel, skipped):
                    sources.append(_Source(rel, Path(sub.path), required=False))
        elif _is_plain_file(entry, name, skipped):
            sources.append(_Source(name, Path(entry.path), required=False))
    return sources, skipped


def _is_plain_file(entry: os.DirEntry[str], rel: str, skipped: list[tuple[str, str]]) -> bool:
    if entry.is_symlink():
        skipped.append((rel, "symbolic link (not followed; a restore never creates links)"))
        return False
    if not entry.is_file(follow_symlinks=False):
        skipped.append((rel, "not a regular file"))
        return False
    return True


def _walk(directory: Path, rel: str, *, keep_dot: bool) -> Iterator[tuple[str, os.DirEntry[str]]]:
    """Every non-directory entry below `directory`, sorted, without following links."""
    with os.scandir(directory) as it:
        entries = sorted(it, key=lambda e: e.name)
    for entry in entries:
        if not keep_dot and entry.name.startswith("."):
            continue
        entry_rel = f"{rel}/{entry.name}"
        if entry.is_dir(follow_symlinks=False):
            yield from _walk(Path(entry.path), entry_rel, keep_dot=keep_dot)
        else:
            yield entry_rel, entry


class _HashingReader:
    """Hands a file to tarfile while hashing exactly the bytes that go into the archive."""

    def __init__(self, handle: IO[bytes], advance: Callable[[int], None]) -> None:
        self._handle = handle
        self._advance = advance
        self.sha256 = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self._handle.read(size)
        self.sha256.update(data)
        self._advance(len(data))
        return data


def _write_archive(
    partial: Path,
    sources: list[_Source],
    *,
    gzip: bool,
    progress: Progress | None,
    finish: Callable[[tuple[BackupFile, ...], list[str]], BackupManifest],
) -> BackupManifest:
    """Stream every source into a tar at `partial`, then `finish(files, vanished)`'s manifest."""
    total = 0
    for src in sources:
        with contextlib.suppress(FileNotFoundError):
            total += src.path.stat().st_size
    advance = running_total(total, progress)
    files: list[BackupFile] = []
    vanished: list[str] = []
    # Owner-only: the archive holds shoppers' events (and by default the secrets) whatever the
    # umask says; the rename into place keeps this mode.
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as raw:
        options: dict[str, Any] = {"compresslevel": _GZIP_LEVEL} if gzip else {}
        with tarfile.open(
            fileobj=raw,
            mode="w:gz" if gzip else "w",
            format=tarfile.PAX_FORMAT,
            copybufsize=_CHUNK,
            **options,
        ) as tar:
            for src in sources:
                try:
                    handle = src.path.open("rb")
                except FileNotFoundError:
                    if src.required:
                        raise BackupError(f"{src.path} disappeared during the backup") from None
                    vanished.append(src.rel)  # e.g. a report deleted meanwhile: nothing to keep
                    continue
                with handle:
                    # fstat of the OPEN file: an atomic replace (rules.json) points the name at a new
                    # inode, but this handle keeps reading the old, complete one.
                    st = os.fstat(handle.fileno())
                    info = _tar_info(
                        f"{HOME_PREFIX}/{src.rel}", st.st_size, stat.S_IMODE(st.st_mode), st.st_mtime
                    )
                    reader = _HashingReader(handle, advance)
                    try:
                        tar.addfile(info, reader)  # type: ignore[arg-type]  # tarfile needs only .read()
                    except OSError as exc:  # the file shrank under us: tarfile's "unexpected end of data"
                        raise BackupError(f"{src.path}: changed while it was being archived ({exc})") from exc
                    files.append(BackupFile(src.rel, st.st_size, reader.sha256.hexdigest(), info.mode))
            manifest = finish(tuple(files), vanished)
            body = json.dumps(manifest.to_dict(), indent=1).encode("utf-8")
            tar.addfile(_tar_info(MANIFEST_NAME, len(body), 0o644, time.time()), io.BytesIO(body))
        raw.flush()
        os.fsync(raw.fileno())  # the rename that publishes the archive must not outrun its bytes
    return manifest


def _tar_info(name: str, size: int, mode: int, mtime: float) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = size, mode, int(mtime)
    # Ownership is not restored (the restoring user owns the files), so do not leak it either.
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def _fsync_dir(directory: Path) -> None:
    # Makes a rename durable; some file systems cannot open a directory, which is fine to skip.
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


# ---------------------------------------------------------------------------------------
# reading an archive: verify, restore


def _safe_relative(path: str) -> str:
    """`path` if it is a plain relative POSIX path (no `..`, no absolute, no empty parts)."""
    parts = path.split("/")
    if not path or "\x00" in path or any(p in ("", ".", "..") for p in parts):
        raise ValueError(f"unsafe path {path!r} (absolute, '..' or empty parts)")
    return path


def _member_path(archive: Path, member: tarfile.TarInfo) -> str:
    """The home-relative path of a `home/...` member; anything that could land outside is refused.

    Refused outright rather than sanitised (tarfile's `data` filter strips a leading `/`): a
    backup this module wrote never has such a member, so one that does was made by something else.
    """
    name = member.name
    if not member.isreg():
        kind = "link" if member.issym() or member.islnk() else "directory" if member.isdir() else "special"
        raise BackupError(f"{archive}: member {name!r} is a {kind}; a backup holds regular files only")
    head, _, rest = name.partition("/")
    try:
        if head != HOME_PREFIX:
            raise ValueError(f"not under {HOME_PREFIX}/")
        return _safe_relative(rest)
    except ValueError as exc:
        raise BackupError(
            f"{archive}: member {name!r} refused, it would land outside the home ({exc})"
        ) from None


class _CountingReader:
    """The raw archive file, reporting compressed bytes read (progress for verify and restore)."""

    def __init__(self, handle: IO[bytes], total: int, progress: Progress | None) -> None:
        self._handle, self._total, self._progress = handle, total, progress
        self._done = 0

    def read(self, size: int = -1) -> bytes:
        data = self._handle.read(size)
        self._done += len(data)
        if self._progress is not None:
            self._progress(self._done, max(self._total, self._done))
        return data


def _copy_member(source: IO[bytes], target: Path | None, *, private: bool, mtime: float) -> tuple[int, str]:
    """Hash a member's bytes and, when `target` is given, write them there (never overwriting)."""
    digest = hashlib.sha256()
    size = 0
    handle: IO[bytes] | None = None
    if target is not None:
        target.parent.mkdir(parents=True, exist_ok=True)
        # O_EXCL: a second member with the same name cannot overwrite the first; the mode is set
        # at creation, so a secret is never readable by others, not even for a moment.
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600 if private else 0o666)
        handle = os.fdopen(fd, "wb")
    try:
        while chunk := source.read(_CHUNK):
            digest.update(chunk)
            size += len(chunk)
            if handle is not None:
                handle.write(chunk)
        if handle is not None:
            handle.flush()
            os.fsync(handle.fileno())
    finally:
        if handle is not None:
            handle.close()
    if target is not None:
        os.utime(target, (mtime, mtime))  # CheckedTextFile and friends reload by mtime
    return size, digest.hexdigest()


def _scan(archive: Path, dest: Path, *, extract_all: bool, progress: Progress | None) -> BackupManifest:
    """Read `archive` once: check every member against the manifest and the database copy.

    Writes every member under `dest` when `extract_all`, else only the database (to run
    `PRAGMA integrity_check` on it). Raises `BackupError` naming the member and the problem.
    """
    if not archive.is_file():
        raise BackupRefusedError(f"no backup file at {archive}")
    seen: dict[str, tuple[int, str]] = {}
    manifest_body: bytes | None = None
    trailer_error: BackupError | None = None
    current = "the archive header"
    try:
        with archive.open("rb") as raw:
            compressed = raw.read(2) == b"\x1f\x8b"
            raw.seek(0)
            counted = _CountingReader(raw, archive.stat().st_size, progress)
            # Decompressed here rather than by tarfile ("r|gz"), which never checks gzip's CRC:
            # draining the stream below makes GzipFile check it, so a flipped bit anywhere in the
            # file is reported, even one that only garbles a tar header (tarfile would take that
            # for the end of the archive) or the padding after it.
            stream: Any = gzip.GzipFile(fileobj=counted, mode="rb") if compressed else counted
            # "r|": a forward-only stream, one pass (seeking back through gzip means re-inflating).
            with tarfile.open(fileobj=stream, mode="r|") as tar:
                for member in tar:
                    current = repr(member.name)
                    if member.name == MANIFEST_NAME:
                        if manifest_body is not None or not member.isreg():
                            raise BackupError(f"{archive}: more than one {MANIFEST_NAME}, or not a file")
                        if member.size > _MAX_MANIFEST_BYTES:
                            raise BackupError(f"{archive}: {MANIFEST_NAME} is {member.size:,} bytes, too big")
                        manifest_body = _read_member(tar, member)
                        continue
                    rel = _member_path(archive, member)
                    if rel in seen:
                        raise BackupError(f"{archive}: member {member.name!r} appears twice")
                    target = dest / rel if extract_all or rel == DB_FILENAME else None
                    private = rel in SECRET_FILES or not (member.mode & 0o077)
                    source = tar.extractfile(member)
                    assert source is not None  # a regular file always has contents
                    seen[rel] = _copy_member(source, target, private=private, mtime=member.mtime)
            try:
                while stream.read(_CHUNK):
                    pass
            except (OSError, EOFError, zlib.error) as exc:
                # Reported after the manifest checks, which can name the damaged member.
                trailer_error = BackupError(
                    f"{archive}: damaged, the compressed stream fails its check ({exc})"
                )
    except BackupError:
        raise
    except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
        raise BackupError(f"{archive}: damaged or unreadable at {current}: {exc}") from exc

    def damaged_or(message: str) -> BackupError:
        # A stream that fails its check explains a missing manifest or member better than the symptom.
        return trailer_error or BackupError(message)

    if manifest_body is None:
        after = f" after {current}" if seen else ""
        raise damaged_or(
            f"{archive}: no {MANIFEST_NAME}, the archive ends{after} (not a shoploop backup, or cut short)"
        )
    try:
        raw_manifest = json.loads(manifest_body)
        if not isinstance(raw_manifest, dict):
            raise ValueError("not a JSON object")
    except ValueError as exc:
        raise damaged_or(f"{archive}: {MANIFEST_NAME} is not a JSON object ({exc})") from None
    try:
        manifest = BackupManifest.from_dict(raw_manifest)
    except BackupError as exc:
        raise damaged_or(f"{archive}: {exc}") from None

    listed = {f.path: f for f in manifest.files}
    for path, entry in listed.items():
        if path not in seen:
            raise damaged_or(f"{archive}: {path} is listed in the manifest but missing from the archive")
        size, digest = seen[path]
        if size != entry.size:
            raise BackupError(f"{archive}: {path} is {size:,} bytes, the manifest says {entry.size:,}")
        if digest != entry.sha256:
            raise BackupError(
                f"{archive}: {path} does not match its sha256 in the manifest (altered or corrupt)"
            )
    extra = sorted(set(seen) - set(listed))
    if extra:
        raise BackupError(f"{archive}: {extra[0]} is in the archive but not in the manifest")
    if DB_FILENAME not in seen:
        raise damaged_or(f"{archive}: no {DB_FILENAME} in the archive")
    if trailer_error is not None:
        raise trailer_error
    _check_database(archive, dest / DB_FILENAME, manifest)
    return manifest


def _read_member(tar: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    handle = tar.extractfile(member)
    assert handle is not None
    return handle.read()


def _check_database(archive: Path, db: Path, manifest: BackupManifest) -> None:
    """`PRAGMA integrity_check` on the copy, and the registry it holds matches the manifest."""
    where = f"{archive}: {DB_FILENAME}"
    try:
        # Read-only: verifying must not change the bytes a restore then swaps in.
        conn = sqlite3.connect(f"{db.resolve().as_uri()}?mode=ro", uri=True)
        try:
            problems = [row[0] for row in conn.execute("PRAGMA integrity_check")]
            if problems != ["ok"]:
                raise BackupError(f"{where}: integrity check failed: {'; '.join(problems[:5])}")
            shot = _describe(conn)
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise BackupError(f"{where}: cannot be opened as a database ({exc})") from exc
    if set(shot.model_versions) != set(manifest.model_versions):
        missing = sorted(set(shot.model_versions) ^ set(manifest.model_versions))
        raise BackupError(f"{where}: its registry and the manifest disagree on model versions {missing}")
    prefixes = {f"{ARTIFACTS_DIRNAME}/{n}/{v}/" for n, v in manifest.model_versions}
    for f in manifest.files:
        if f.path.startswith(f"{ARTIFACTS_DIRNAME}/") and not any(f.path.startswith(p) for p in prefixes):
            raise BackupError(f"{archive}: {f.path} belongs to no registered model version")


def verify_backup(archive: Path, *, progress: Progress | None = None) -> BackupManifest:
    """Re-hash every member against the manifest and integrity-check the database copy.

    Only the database is written out, to a temporary directory (honours $TMPDIR) for SQLite to
    check; nothing else touches the disk.
    """
    with tempfile.TemporaryDirectory(prefix="shoploop-verify-") as tmp:
        return _scan(Path(archive), Path(tmp), extract_all=False, progress=progress)


def restore_backup(
    archive: Path, home: Path, *, force: bool = False, progress: Progress | None = None
) -> BackupManifest:
    """Replace (or create) the shop home `home` with the contents of `archive`.

    The archive is extracted into a directory beside `home` and checked there - every member
    against the manifest, the database with `integrity_check` - before anything touches
    `home`. That is the verification, done on the very bytes that get swapped in (verifying the
    file and then extracting it again would trust a second read). Then two renames swap the
    new home in; a failure at any point leaves the old home as it was. Stop the server of
    this home first: it would keep writing to the replaced (deleted) files.
    """
    archive = Path(archive)
    # resolve(): when --home is a symlink, replace the directory it points to, not the link.
    target = Path(home).resolve()
    if not target.name:
        raise BackupRefusedError(f"cannot restore into {target}")
    if not archive.is_file():
        raise BackupRefusedError(f"no backup file at {archive}")
    if target.exists() and not target.is_dir():
        raise BackupRefusedError(f"{target} exists and is not a directory")
    if target.is_dir() and any(target.iterdir()):
        if not force:
            raise BackupRefusedError(
                f"{target} is not empty; restoring would replace it (use --force to do that)"
            )
        if archive.resolve().is_relative_to(target):
            # The old home is deleted once the new one is in place, and the archive with it.
            raise BackupRefusedError(
                f"the backup {archive} is inside the home it would replace; move it out first"
            )
    target.parent.mkdir(parents=True, exist_ok=True)

    token = secrets.token_hex(4)
    staging = target.parent / f".{target.name}.restore-{token}"
    staging.mkdir()  # not mkdtemp: the restored home should get the usual umask mode, not 0700
    try:
        manifest = _scan(archive, staging, extract_all=True, progress=progress)
        if manifest.schema_version is not None and manifest.schema_version > SCHEMA_VERSION:
            raise BackupError(
                f"{archive}: database schema v{manifest.schema_version} is newer than this shoploop "
                f"knows (v{SCHEMA_VERSION}); restore it with the shoploop that made it "
                f"({manifest.shoploop_version}) or newer"
            )
        for name, version in manifest.model_versions:
            # A version whose directory held no files still gets its directory.
            (staging / ARTIFACTS_DIRNAME / name / str(version)).mkdir(parents=True, exist_ok=True)
        _rewrite_registry_paths(staging / DB_FILENAME, target / ARTIFACTS_DIRNAME)
        if target.is_dir():
            shutil.copymode(target, staging)  # the home keeps its permissions
        _fsync_dir(staging)
        _swap_in(staging, target, token)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return manifest


def _rewrite_registry_paths(db: Path, artifacts_root: Path) -> None:
    """Point every `models.path` at the canonical directory in the restored home (absolute,
    so it does not depend on the working directory of whoever opens the home)."""
    try:
        conn = sqlite3.connect(db, isolation_level=None)
        try:
            tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            if "models" not in tables:
                return
            rows = conn.execute("SELECT id, name, version FROM models").fetchall()
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(
                "UPDATE models SET path = ? WHERE id = ?",
                [(str(artifacts_root / name / str(version)), row_id) for row_id, name, version in rows],
            )
            conn.execute("COMMIT")
        finally:
            conn.close()
    except sqlite3.Error as exc:
        raise BackupError(f"{db}: cannot update the registry's artifact paths ({exc})") from exc


def _swap_in(staging: Path, target: Path, token: str) -> None:
    if not target.exists():
        os.rename(staging, target)
    else:
        old = target.parent / f".{target.name}.replaced-{token}"
        try:
            os.rename(target, old)
        except OSError as exc:
            if exc.errno not in (errno.EBUSY, errno.EXDEV):
                raise
            # Typically a mount point (a Docker volume): it cannot be renamed away.
            raise BackupError(
                f"cannot swap out {target} ({exc.strerror}); it looks like a mount point: restore into "
                f"a directory inside it (--home {target / 'shop'}) and point the server there"
            ) from exc
        try:
            os.rename(staging, target)
        except BaseException:
            os.rename(old, target)  # put the old home back exactly as it was
            raise
        # The restore is complete; a failure to delete the old copy must not report otherwise.
        shutil.rmtree(old, ignore_errors=True)
    _fsync_dir(target.parent)
