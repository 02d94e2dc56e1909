"""`shoploop backup`, `shoploop verify-backup`, `shoploop restore`: a verified copy of a shop home.

    shoploop backup [--home DIR] --out FILE [--include-cache] [--without-secrets]
    shoploop verify-backup FILE
    shoploop restore FILE [--home DIR] [--force]

`verify-backup` is its own command rather than `backup verify`: a Typer group whose callback
takes the backup itself would make `--out` required only when no subcommand follows, which
Typer cannot express, and `--help` would show `backup [OPTIONS] COMMAND`, suggesting the backup
needs a subcommand. Three flat commands also read the way they run from cron.

What goes into a backup and why is in `shoploop.store.backup`. Exit status: 2 when the command
cannot start (no shop, target home not empty without --force, archive path inside the home,
missing file), 1 when the archive is bad (a member altered, the database fails its check).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.filesize import decimal

from shoploop.cli.common import HomeOption, default_home, progress_bar
from shoploop.cli.common import fail as _fail

if TYPE_CHECKING:  # the library loads inside the commands, so `shoploop --help` stays instant
    from shoploop.store.backup import BackupError, BackupManifest

ProgressOption = Annotated[bool, typer.Option("--progress/--no-progress", help="Show a progress bar.")]
# The server reads these before the home's files (privacy/pseudonymize.py KEY_ENV; api/settings.py
# ENV_KEYS, not imported because loading the API package would load the whole engine).
_SECRET_ENV = ("SHOPLOOP_PSEUDONYM_KEY", "SHOPLOOP_API_KEYS")


def _summary(manifest: BackupManifest) -> list[str]:
    counts = manifest.counts
    lines = [
        f"  {len(manifest.files):,} files, {decimal(manifest.total_bytes)} before compression; "
        f"created {manifest.created_at:%Y-%m-%d %H:%M:%S} UTC by shoploop {manifest.shoploop_version}, "
        f"schema v{manifest.schema_version}",
        f"  products {counts.get('products', 0):,}, events {counts.get('events', 0):,}, "
        f"model versions {counts.get('model_versions', 0):,}"
        + (f", experiments {counts['experiments']:,}" if "experiments" in counts else ""),
    ]
    if manifest.secrets_included:
        lines.append(f"  secrets included: {', '.join(manifest.secrets_included)} (keep this file private)")
    for path, reason in manifest.skipped:
        lines.append(f"  left out: {path} - {reason}")
    return lines


def _error_exit(err: BackupError) -> typer.Exit:
    from shoploop.store.backup import BackupRefusedError

    # Refused = the command could not start (usage, like other commands' 2); else the archive is bad.
    return _fail(str(err), 2 if isinstance(err, BackupRefusedError) else 1)


def backup(
    out: Annotated[
        Path,
        typer.Option(
            "--out", "-o", help="Archive to write (.tar.gz, or .tar for no compression); outside the home."
        ),
    ],
    home: HomeOption = None,
    include_cache: Annotated[
        bool, typer.Option("--include-cache", help="Also keep cache/ (regenerable embeddings).")
    ] = False,
    without_secrets: Annotated[
        bool,
        typer.Option(
            "--without-secrets",
            help="Leave out api_keys.json and pseudonym.key (without the key, restored pseudonyms no "
            "longer match shoppers' ids: keep it somewhere safe).",
        ),
    ] = False,
    progress: ProgressOption = True,
) -> None:
    """Back up a shop home into one archive, safely while the server runs.

    Holds a consistent snapshot of the database (SQLite online backup), the model files of
    every version it names, rules, synonyms, blocklist, import reports and, unless
    --without-secrets, the API keys and the pseudonymisation key.
    """
    from shoploop.store.backup import BackupError, create_backup

    home = home or default_home()
    try:
        with progress_bar(progress, "backup", unit="bytes") as on_progress:
            manifest = create_backup(
                home,
                out,
                include_cache=include_cache,
                include_secrets=not without_secrets,
                progress=on_progress,
            )
    except BackupError as err:
        raise _error_exit(err) from None
    except OSError as err:
        raise _fail(f"cannot write {out}: {err.strerror or err}", 1) from None
    typer.echo(f"backup written to {out} ({decimal(out.stat().st_size)})")
    for line in _summary(manifest):
        typer.echo(line)
    for name in _SECRET_ENV:
        if os.environ.get(name):
            typer.echo(f"  note: ${name} is set; that value is not in the home, so not in this backup")


def verify_backup(
    archive: Annotated[Path, typer.Argument(help="The archive written by `shoploop backup`.")],
    progress: ProgressOption = True,
) -> None:
    """Check a backup: every file against its sha256 in the manifest, and the database's integrity."""
    from shoploop.store.backup import BackupError
    from shoploop.store.backup import verify_backup as verify

    try:
        with progress_bar(progress, "verify", unit="bytes") as on_progress:
            manifest = verify(archive, progress=on_progress)
    except BackupError as err:
        raise _error_exit(err) from None
    typer.echo(f"ok: {archive} ({decimal(archive.stat().st_size)})")
    for line in _summary(manifest):
        typer.echo(line)


def restore(
    archive: Annotated[Path, typer.Argument(help="The archive written by `shoploop backup`.")],
    home: HomeOption = None,
    force: Annotated[
        bool,
        typer.Option("--force", help="Replace a home that is not empty (its current contents are deleted)."),
    ] = False,
    progress: ProgressOption = True,
) -> None:
    """Restore a backup into a shop home (stop the server of that home first).

    The archive is extracted beside the home and verified there; only then is it swapped in, so
    a failed restore leaves the old home untouched. Model paths are pointed at the new home.
    """
    from shoploop.store.backup import BackupError, restore_backup

    home = home or default_home()
    try:
        with progress_bar(progress, "restore", unit="bytes") as on_progress:
            manifest = restore_backup(archive, home, force=force, progress=on_progress)
    except BackupError as err:
        raise _error_exit(err) from None
    except OSError as err:
        raise _fail(f"cannot restore into {home}: {err.strerror or err}", 1) from None
    typer.echo(f"restored {archive} into {home}")
    for line in _summary(manifest):
        typer.echo(line)
    if manifest.secrets_left_out:
        typer.secho(
            f"warning: this backup holds no {' / '.join(manifest.secrets_left_out)}: put the shop's own "
            f"copies into {home} before starting the server (without the original pseudonym.key, new "
            "events no longer get the pseudonyms stored ones have, and access or erasure requests "
            "miss a shopper's past events)",
            err=True,
            fg=typer.colors.YELLOW,
        )
