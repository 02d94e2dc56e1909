"""`examine_home`: what is wrong with a shop home, check by check, and what to do about it.

Each check is a small function that reads the home and returns `Finding`s (ok / warning /
problem, a one-line detail, the fix). The checks only read:

* The database is opened read-only. While a process has it open (a `-wal` file exists) the
  connection is an ordinary `mode=ro` reader, which under WAL reads beside the server's writer
  without blocking it. When there is no `-wal` file the database was closed cleanly and the main
  file holds everything; it is then opened `immutable=1`, because a plain read-only connection
  to a WAL database creates `-wal` and `-shm` files and leaves them behind (SQLite 3.40), which
  would change the home the doctor promises not to touch. Should a server start meanwhile, its
  writes go to its new WAL, not to the main file (checkpoints copy back only after ~80 MB or at
  close), so the doctor still reads a consistent, if slightly old, file. (One case still
  writes: a `-wal` left by a crash without its `-shm`; SQLite then creates the `-shm`, as the
  server's next start would. The data files are never written.)
* File checks use `stat` and directory listings; only the pseudonymisation key is read, to
  check that it parses.

One check raising does not stop the others: its exception becomes a "problem" finding.

It lives in the engine layer, which may import every layer, because it reads both the stores
and the privacy settings (the policy is parsed by `privacy.retention`, exactly as `shoploop
retention apply` reads it).
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import stat
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from rich.filesize import decimal

from shoploop.data.cleaning import reason_code
from shoploop.data.feed_fetch import FEEDS_DIRNAME, load_state
from shoploop.privacy.pseudonymize import KEY_ENV, KEY_FILE
from shoploop.privacy.retention import POLICY_FILENAME, load_policy
from shoploop.store.backup import SECRET_FILES
from shoploop.store.home import ARTIFACTS_DIRNAME, DB_FILENAME
from shoploop.store.memory import from_micros, to_micros
from shoploop.store.sqlite_db import SCHEMA_VERSION

Status = Literal["ok", "warning", "problem"]

# `Pseudonymizer` writes "p_" + 32 hex digits; matching the whole shape keeps a shop whose own
# ids happen to start with "p_" from being taken for a pseudonymising one.
_PSEUDONYM_GLOB = "p_" + "[0-9a-f]" * 32

MIB = 1024 * 1024
# The server checkpoints every ~80 MB of WAL (wal_autocheckpoint=10000 pages of 8 KiB) and
# truncates it back to 64 MiB (journal_size_limit, store/sqlite_db.py). A WAL several times
# that means checkpoints are not completing: a reader holding an old snapshot open (a stuck
# export, a forgotten `sqlite3` shell) keeps the checkpoint from passing it.
WAL_WARN_BYTES = 512 * MIB
# The server's RetentionJob runs hourly and a cron job daily; one missed run (a server down
# for a day) is not worth a warning, two days behind means nothing is applying the policy.
RETENTION_GRACE = timedelta(days=2)
# A feed followed hourly (or by a daily cron job) is checked well within this.
FEED_STALE = timedelta(days=2)
# A backup writes a second copy of the home and a restore extracts one beside the home before
# swapping it in, so free space below twice the home's size can make either fail halfway.
DISK_FACTOR = 2
_SHOWN = 5  # names listed in a one-line detail before "... and N more"


@dataclass(frozen=True)
class Finding:
    """One check's verdict: `detail` says what was found, `fix` what to do (None when ok)."""

    check: str
    status: Status
    detail: str
    fix: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class _DatabaseUnavailableError(Exception):
    """The database could not be opened; checks that need it say so once, in `database`."""


class _Home:
    """What the checks share: the paths, `now`, one read-only connection and the home's size."""

    def __init__(self, root: Path, now: datetime) -> None:
        self.root = root
        self.now = now
        self.db_path = root / DB_FILENAME
        self.wal_path = root / (DB_FILENAME + "-wal")
        self.artifacts = root / ARTIFACTS_DIRNAME
        self._conn: sqlite3.Connection | None = None
        self._open_error: str | None = None
        self._size: int | None = None

    def db(self) -> sqlite3.Connection:
        """The read-only connection, opened on first use; `_DatabaseUnavailableError` if it cannot be."""
        if self._conn is None and self._open_error is None:
            try:
                self._conn = _open_read_only(self.db_path, wal=self.wal_path.exists())
            except (sqlite3.Error, OSError) as exc:
                self._open_error = f"{type(exc).__name__}: {exc}"
        if self._conn is None:
            raise _DatabaseUnavailableError(self._open_error or "not opened")
        return self._conn

    def size(self) -> int:
        if self._size is None:
            self._size = _tree_size(self.root)
        return self._size

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def _open_read_only(path: Path, *, wal: bool) -> sqlite3.Connection:
    if not path.is_file():
        raise FileNotFoundError(f"no database file at {path}")
    # as_uri() escapes the path ("?" or "#" in a directory name would otherwise cut the URI).
    uri = path.resolve().as_uri() + ("?mode=ro" if wal else "?mode=ro&immutable=1")
    conn = sqlite3.connect(uri, uri=True, timeout=5.0)
    try:
        conn.execute("PRAGMA query_only=ON")
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()  # "file is not a database"
    except BaseException:
        conn.close()
        raise
    return conn


# ------------------------------------------------------------------------------ helpers


def _tree_size(root: Path) -> int:
    """Bytes of the regular files under `root`; links are not followed (they may leave it)."""
    if root.is_file():
        return root.stat().st_size
    total = 0
    for dirpath, _dirs, files in os.walk(root, followlinks=False):
        for name in files:
            try:
                st = os.lstat(os.path.join(dirpath, name))
            except OSError:  # removed while walking (a temp file of an atomic write)
                continue
            if stat.S_ISREG(st.st_mode):
                total += st.st_size
    return total


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def _listed(names: list[str]) -> str:
    shown = ", ".join(names[:_SHOWN])
    return shown + (f" and {len(names) - _SHOWN} more" if len(names) > _SHOWN else "")


def _need_db(home: _Home, check: str) -> sqlite3.Connection | Finding:
    try:
        return home.db()
    except _DatabaseUnavailableError:
        # Reported once by the database check; repeating it as a problem per check would
        # turn one broken file into six problems.
        return Finding(check, "warning", "not checked: the database could not be opened (see database)")


# ------------------------------------------------------------------------------ database


def check_database(home: _Home) -> list[Finding]:
    if not home.db_path.is_file():
        return [
            Finding(
                "database",
                "problem",
                f"no database at {home.db_path}",
                "point --home at the shop's directory, or restore it: shoploop restore FILE",
            )
        ]
    size = home.db_path.stat().st_size
    try:
        conn = home.db()
        # quick_check: the page and record structure, without integrity_check's O(N log N)
        # cross-check of every index against its table (minutes on a big event log).
        rows = [str(r[0]) for r in conn.execute("PRAGMA quick_check")]
    except (_DatabaseUnavailableError, sqlite3.Error) as exc:
        return [
            Finding(
                "database",
                "problem",
                f"{home.db_path.name} ({decimal(size)}) cannot be read: {exc}",
                "stop the server and restore the latest backup: shoploop restore FILE --force",
            )
        ]
    if rows != ["ok"]:
        return [
            Finding(
                "database",
                "problem",
                f"{home.db_path.name} fails quick_check: {'; '.join(rows[:3])}",
                "stop the server and restore the latest backup: shoploop restore FILE --force",
            )
        ]
    return [Finding("database", "ok", f"{home.db_path.name}: {decimal(size)}, quick_check ok")]


def check_schema(home: _Home) -> list[Finding]:
    conn = _need_db(home, "schema")
    if isinstance(conn, Finding):
        return [conn]
    # store/sqlite_db.py keeps the schema version in PRAGMA user_version.
    version = int(conn.execute("PRAGMA user_version").fetchone()[0])
    if version == SCHEMA_VERSION:
        return [Finding("schema", "ok", f"schema v{version}, the version this shoploop uses")]
    if version < SCHEMA_VERSION:
        return [
            Finding(
                "schema",
                "warning",
                f"schema v{version}, this shoploop uses v{SCHEMA_VERSION}: will be migrated at next start",
                "take a backup first (shoploop backup --out FILE); the next start migrates",
            )
        ]
    return [
        Finding(
            "schema",
            "problem",
            f"schema v{version} is newer than this shoploop (v{SCHEMA_VERSION}): the code is older "
            "than the data, and the server refuses to start on it",
            "upgrade shoploop to the version that last ran on this home (or newer)",
        )
    ]


def check_wal(home: _Home) -> list[Finding]:
    try:
        wal = home.wal_path.stat().st_size
    except FileNotFoundError:
        return [Finding("wal", "ok", "no WAL file: no process has the database open")]
    if wal > WAL_WARN_BYTES:
        return [
            Finding(
                "wal",
                "warning",
                f"the WAL is {decimal(wal)}: checkpoints are not finishing, most likely "
                "a reader holds an old snapshot open",
                "end long-running readers (an export, a backup, a sqlite3 shell); the WAL "
                "shrinks at the next checkpoint, at the latest when the server restarts",
            )
        ]
    return [Finding("wal", "ok", f"WAL {decimal(wal)}")]


# ------------------------------------------------------------------------------ models


def _artifact_entries(artifacts: Path) -> list[Path]:
    """Every `artifacts/<name>/<version>` entry, plus anything else at the top level."""
    found: list[Path] = []
    if not artifacts.is_dir():
        return found
    for top in sorted(artifacts.iterdir()):
        # Dot names are staging dirs of registrations (memory.stage_copy): in flight now, or
        # left by a crash. Either way no row names them, so they are listed as leftovers.
        if top.is_dir() and not top.is_symlink() and not top.name.startswith("."):
            found.extend(sorted(top.iterdir()))
        else:
            found.append(top)
    return found


def check_models(home: _Home) -> list[Finding]:
    conn = _need_db(home, "models")
    if isinstance(conn, Finding):
        return [conn]
    # The registry marks the active version with status = 'active' (at most one per name,
    # enforced by an index). Artifacts are looked for at their canonical place, not at
    # `models.path`, which may name the home's old location (see store/backup.py).
    active = conn.execute("SELECT name, version FROM models WHERE status = 'active' ORDER BY name").fetchall()
    if not active:
        return [Finding("models", "ok", "no active model versions (the server trains them on first start)")]
    broken: list[str] = []
    for name, version in active:
        directory = home.artifacts / name / str(version)
        if not directory.is_dir():
            broken.append(f"{name} v{version} (no {ARTIFACTS_DIRNAME}/{name}/{version})")
        elif not any(directory.iterdir()):
            broken.append(f"{name} v{version} ({ARTIFACTS_DIRNAME}/{name}/{version} is empty)")
    if broken:
        return [
            Finding(
                "models",
                "problem",
                f"active model files missing: {_listed(broken)}; the server cannot load them",
                "restore the artifacts from a backup, or switch back: shoploop rollback NAME "
                "(or retrain: shoploop train --model NAME, then promote)",
            )
        ]
    names = ", ".join(f"{n} v{v}" for n, v in active)
    return [Finding("models", "ok", f"active versions have their files: {names}")]


def check_leftover_artifacts(home: _Home) -> list[Finding]:
    # Listed before the registry is read: a registration renames its directory into place
    # inside the transaction that records it, so a directory seen here has its row visible by
    # the time the query below runs, unless that transaction is still open at this instant.
    entries = _artifact_entries(home.artifacts)
    conn = _need_db(home, "artifacts")
    if isinstance(conn, Finding):
        return [conn]
    named = {(str(n), str(v)) for n, v in conn.execute("SELECT name, version FROM models")}
    leftovers = [
        p for p in entries if p.parent.parent != home.artifacts or (p.parent.name, p.name) not in named
    ]
    if not leftovers:
        detail = f"every directory under {ARTIFACTS_DIRNAME}/ is a registered version"
        return [Finding("artifacts", "ok", detail)]
    size = sum(_tree_size(p) if not p.is_symlink() else 0 for p in leftovers)
    rel = [p.relative_to(home.artifacts).as_posix() for p in leftovers]
    return [
        Finding(
            "artifacts",
            "warning",
            f"{len(leftovers)} entr{'y' if len(leftovers) == 1 else 'ies'} under {ARTIFACTS_DIRNAME}/ "
            f"no registry row names, {decimal(size)}: {_listed(rel)}",
            "left by an interrupted registration: safe to delete once no process is registering "
            f"a model (no training running), e.g. rm -r {home.artifacts / rel[0]}",
        )
    ]


# ------------------------------------------------------------------------------ secrets


def check_secret_modes(home: _Home) -> list[Finding]:
    present = [home.root / name for name in SECRET_FILES if (home.root / name).exists()]
    if not present:
        return [Finding("secrets", "ok", "no key files in the home (keys from the environment, or none)")]
    # Group or others may read: anyone else on the machine can then call the admin API, or
    # link pseudonyms back to shoppers with the pseudonymisation key.
    loose = [(p, stat.S_IMODE(p.stat().st_mode)) for p in present if p.stat().st_mode & 0o077]
    if loose:
        names = ", ".join(f"{p.name} (mode {mode:04o})" for p, mode in loose)
        return [
            Finding(
                "secrets",
                "problem",
                f"readable by group or others: {names}",
                "chmod 600 " + " ".join(str(p) for p, _ in loose),
            )
        ]
    return [Finding("secrets", "ok", f"{', '.join(p.name for p in present)}: owner only")]


def _key_problem(text: str) -> str | None:
    """Why `text` is not a pseudonymisation key, or None (privacy/pseudonymize.py rules)."""
    try:
        key = bytes.fromhex(text.strip())
    except ValueError:
        return "not hex"
    return None if len(key) >= 16 else f"{len(key)} bytes, at least 16 needed"


def check_pseudonym_key(home: _Home) -> list[Finding]:
    conn = _need_db(home, "pseudonym key")
    if isinstance(conn, Finding):
        return [conn]
    # The range lets the (user_id, ts) index find candidates without a scan of the log
    # ("`" is the character after "_"); GLOB then keeps only the pseudonym shape.
    row = conn.execute(
        "SELECT user_id FROM events WHERE user_id >= 'p_' AND user_id < 'p`' AND user_id GLOB ? LIMIT 1",
        (_PSEUDONYM_GLOB,),
    ).fetchone()
    pseudonymised = row is not None
    env = os.environ.get(KEY_ENV)
    key_file = home.root / KEY_FILE
    if env:
        source, problem = f"${KEY_ENV}", _key_problem(env)
    elif key_file.is_file():
        text = key_file.read_text(encoding="utf-8", errors="replace")
        source, problem = KEY_FILE, _key_problem(text)
    else:
        source, problem = None, None
    if problem is not None:
        return [
            Finding(
                "pseudonym key",
                "problem",
                f"the key in {source} is not a valid key ({problem}); the server cannot map shopper ids",
                f"restore {KEY_FILE} from a backup (shoploop backup keeps it)",
            )
        ]
    if pseudonymised and source is None:
        return [
            Finding(
                "pseudonym key",
                "problem",
                f"the event log holds pseudonymised ids (e.g. {row[0]}) but there is no key "
                f"({KEY_FILE} or ${KEY_ENV}): new events would not match them, "
                "and access or erasure requests would not find the shopper",
                f"restore {KEY_FILE} from a backup (or run the doctor with the server's ${KEY_ENV} set)",
            )
        ]
    if source is None:
        return [Finding("pseudonym key", "ok", "user ids are not pseudonymised (no key)")]
    held = "holds pseudonymised ids" if pseudonymised else "holds no pseudonymised ids yet"
    return [Finding("pseudonym key", "ok", f"key in {source}; the event log {held}")]


# ------------------------------------------------------------------------------ retention


def _days_text(days: float | None) -> str:
    return "forever" if days is None else f"{days:g} days"


def check_retention(home: _Home) -> list[Finding]:
    path = home.root / POLICY_FILENAME
    if not path.exists():
        return [Finding("retention", "ok", f"no {POLICY_FILENAME}: shopper data is kept forever")]
    try:
        policy = load_policy(home.root)
    except (ValueError, OSError) as err:
        return [
            Finding(
                "retention",
                "problem",
                f"{path} is not a valid policy: {err}; nothing is being purged",
                "fix the file, or rewrite it: shoploop retention set --events-days N ...",
            )
        ]
    if policy is None:  # removed between the exists() and the read
        return [Finding("retention", "ok", f"no {POLICY_FILENAME}: shopper data is kept forever")]
    per_type = ", ".join(f"{t} {_days_text(d)}" for t, d in policy.per_type.items())
    summary = f"events {_days_text(policy.events_days)}" + (f" ({per_type})" if per_type else "")
    summary += f", quarantine {_days_text(policy.quarantine_days)}"
    conn = _need_db(home, "retention")
    if isinstance(conn, Finding):
        return [conn]
    findings: list[Finding] = []

    overdue_types: list[str] = []
    overdue_rows = 0
    worst = timedelta(0)
    for event_type, cutoff in policy.event_cutoffs(home.now).items():
        late = _overdue_since(cutoff)
        if late is None:
            continue
        # min(ts) per type is one probe of the (type, ts) index; the count runs only for the
        # types that are overdue.
        oldest = conn.execute("SELECT min(ts) FROM events WHERE type = ?", (event_type,)).fetchone()[0]
        if oldest is None or oldest >= to_micros(late):
            continue
        assert cutoff is not None
        overdue_types.append(event_type)
        overdue_rows += int(
            conn.execute(
                "SELECT count(*) FROM events WHERE type = ? AND ts < ?", (event_type, to_micros(cutoff))
            ).fetchone()[0]
        )
        worst = max(worst, cutoff - from_micros(oldest))
    q_cutoff = policy.quarantine_cutoff(home.now)
    q_rows = 0
    q_late = _overdue_since(q_cutoff)
    if q_late is not None and q_cutoff is not None:
        oldest_q = conn.execute("SELECT min(quarantined_at) FROM quarantine").fetchone()[0]
        if oldest_q is not None and oldest_q < to_micros(q_late):
            q_rows = int(
                conn.execute(
                    "SELECT count(*) FROM quarantine WHERE quarantined_at < ?", (to_micros(q_cutoff),)
                ).fetchone()[0]
            )
            worst = max(worst, q_cutoff - from_micros(oldest_q))
    if overdue_rows or q_rows:
        parts = []
        if overdue_rows:
            parts.append(f"{_count(overdue_rows, 'event')} ({', '.join(overdue_types)})")
        if q_rows:
            parts.append(_count(q_rows, "quarantined row"))
        findings.append(
            Finding(
                "retention",
                "warning",
                f"purge overdue: {' and '.join(parts)} past the policy's limit, the oldest by "
                f"{worst.days} days (policy: {summary})",
                "shoploop retention apply (schedule it, or let the server's retention job run)",
            )
        )
    else:
        findings.append(Finding("retention", "ok", f"policy: {summary}; no purge overdue"))
    for warning in policy.warnings():
        findings.append(
            Finding("retention", "warning", warning, "shoploop retention set ... (as the detail says)")
        )
    return findings


def _overdue_since(cutoff: datetime | None) -> datetime | None:
    """The instant before which data counts as overdue (cutoff - grace), or None if never."""
    if cutoff is None:
        return None
    try:
        return cutoff - RETENTION_GRACE
    except OverflowError:  # a cutoff at datetime.min: nothing can be older
        return None


# ------------------------------------------------------------------------------ data quality


# Quarantine reasons embed row numbers and values ("line 12: invalid JSON (...)",
# "unknown_item: 'sku-9' ..."); grouping on the head keeps one line per kind of problem.
# (data.cleaning.reason_code does this precisely, but `data` is a layer below `store`.)
def check_quarantine(home: _Home) -> list[Finding]:
    conn = _need_db(home, "quarantine")
    if isinstance(conn, Finding):
        return [conn]
    # Grouped by the importer's reason codes, the ones `shoploop import quarantine list --reason`
    # filters on.
    by_head: dict[str, int] = {}
    for reason, n in conn.execute("SELECT reason, count(*) FROM quarantine GROUP BY reason"):
        head = reason_code(str(reason))
        by_head[head] = by_head.get(head, 0) + int(n)
    total = sum(by_head.values())
    if total == 0:
        return [Finding("quarantine", "ok", "no quarantined rows")]
    top = sorted(by_head.items(), key=lambda kv: (-kv[1], kv[0]))[:3]
    reasons = ", ".join(f"{head} ({n:,})" for head, n in top)
    return [
        Finding(
            "quarantine",
            "warning",
            f"{_count(total, 'rejected row')} in quarantine; top reasons: {reasons}",
            "shoploop import quarantine list (fix the source, then shoploop import quarantine reimport)",
        )
    ]


def check_flagged_users(home: _Home) -> list[Finding]:
    conn = _need_db(home, "flagged users")
    if isinstance(conn, Finding):
        return [conn]
    n = int(conn.execute("SELECT count(*) FROM flagged_users").fetchone()[0])
    # Information, not a warning: flagging is the cleaning working as meant (bots are kept in
    # the log but left out of training and KPIs).
    return [Finding("flagged users", "ok", f"{_count(n, 'user')} flagged as bots")]


# ------------------------------------------------------------------------------ feeds


def check_catalog_feeds(home: _Home) -> list[Finding]:
    """Feeds imported from a URL (`shoploop import merchant URL`, `serve --catalog-feed`): one
    not checked for FEED_STALE means whatever fetched it stopped; a `feed-*` file is a download
    that was interrupted."""
    directory = home.root / FEEDS_DIRNAME
    if not directory.is_dir():
        return [Finding("catalog feed", "ok", "no catalog feed imported from a URL")]
    findings = []
    for url, entry in sorted(load_state(home.root).items()):
        seen = entry.get("checked_at") or entry.get("imported_at")
        try:
            checked = datetime.fromisoformat(seen) if isinstance(seen, str) else None
        except ValueError:
            checked = None
        if checked is None or home.now - checked > FEED_STALE:
            when = f"since {checked:%Y-%m-%d %H:%M} UTC" if checked else "ever (no time recorded)"
            findings.append(
                Finding(
                    "catalog feed",
                    "warning",
                    f"{url} has not been checked {when}: the catalog may be out of date",
                    "is the cron job (shoploop import merchant URL) or shoploop serve --catalog-feed "
                    "still running? Run the import once by hand to see why it stopped",
                )
            )
        else:
            findings.append(Finding("catalog feed", "ok", f"{url} checked {checked:%Y-%m-%d %H:%M} UTC"))
    partial = sorted(p for p in directory.glob("feed-*") if p.is_file())
    if partial:
        size = sum(p.stat().st_size for p in partial)
        findings.append(
            Finding(
                "catalog feed",
                "warning",
                f"{_count(len(partial), 'interrupted feed download')} under {FEEDS_DIRNAME}/, "
                f"{decimal(size)}: {_listed([p.name for p in partial])}",
                f"safe to delete when no import is running, e.g. rm {partial[0]}",
            )
        )
    return findings or [Finding("catalog feed", "ok", "no catalog feed imported from a URL")]


# ------------------------------------------------------------------------------ disk


def check_disk(home: _Home) -> list[Finding]:
    size = home.size()
    free = shutil.disk_usage(home.root).free
    if free < DISK_FACTOR * size:
        return [
            Finding(
                "disk",
                "warning",
                f"{decimal(free)} free on the home's filesystem, the home is {decimal(size)}: "
                "a backup or a restore needs room for a second copy",
                "free space or move the home to a larger disk; write backups to another disk "
                "(shoploop backup --out /other/disk/FILE)",
            )
        ]
    return [Finding("disk", "ok", f"{decimal(free)} free, the home is {decimal(size)}")]


# ------------------------------------------------------------------------------ running


CHECKS: tuple[tuple[str, Callable[[_Home], list[Finding]]], ...] = (
    ("database", check_database),
    ("schema", check_schema),
    ("wal", check_wal),
    ("models", check_models),
    ("artifacts", check_leftover_artifacts),
    ("secrets", check_secret_modes),
    ("pseudonym key", check_pseudonym_key),
    ("retention", check_retention),
    ("quarantine", check_quarantine),
    ("flagged users", check_flagged_users),
    ("catalog feed", check_catalog_feeds),
    ("disk", check_disk),
)


def _run(name: str, check: Callable[[_Home], list[Finding]], home: _Home) -> Iterator[Finding]:
    try:
        yield from check(home)
    except Exception as exc:  # one broken check must not hide what the others found
        yield Finding(
            name,
            "problem",
            f"the check failed: {type(exc).__name__}: {exc}",
            "see the error; if the home looks fine otherwise, report it as a shoploop bug",
        )


def examine_home(home: Path, *, now: datetime) -> list[Finding]:
    """Run every check on the shop home `home` (read-only) and return their findings in order.

    `now` (timezone-aware) is when retention cutoffs are taken, as in `apply_retention`.
    """
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(f"now must be timezone-aware, got {now!r}")
    state = _Home(Path(home), now)
    try:
        return [finding for name, check in CHECKS for finding in _run(name, check, state)]
    finally:
        state.close()


def worst_status(findings: list[Finding]) -> Status:
    statuses = {f.status for f in findings}
    return "problem" if "problem" in statuses else "warning" if "warning" in statuses else "ok"
