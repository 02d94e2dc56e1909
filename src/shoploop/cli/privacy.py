"""`shoploop privacy ...`: a shopper's data on request, and pseudonymised shopper ids.

    shoploop privacy export USER_ID [--home DIR] [--out FILE]
    shoploop privacy pseudonymize [--home DIR] [--force]

`export` answers an access request without a running server: the same document as
`GET /v1/users/{id}/data` (`shoploop.privacy.access`), the in-memory parts rebuilt from the
shopper's own events. Erasure stays with the server (`DELETE /v1/users/{id}`), because only
the running engine can also drop what it holds in memory.

`pseudonymize` turns keyed pseudonymisation on for the shop by creating its key; from then on
the server, `shoploop import events` and access requests all store and look up `p_<hmac>`
instead of the shop's own ids.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

from shoploop.cli.common import HomeOption, stores_and_experiments
from shoploop.cli.common import existing_home as _home
from shoploop.cli.common import fail as _fail

privacy_app = typer.Typer(
    help="A shopper's data on request; pseudonymised shopper ids.", no_args_is_help=True
)


@privacy_app.command("export")
def export(
    user_id: Annotated[str, typer.Argument(help="The shopper's id, as the shop knows them.")],
    home: HomeOption = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="Write the JSON document here (default: standard output).")
    ] = None,
) -> None:
    """Everything the shop's home holds about one shopper, as JSON (right of access)."""
    from shoploop.privacy.access import shopper_document_from_stores
    from shoploop.privacy.pseudonymize import shop_pseudonymizer
    from shoploop.store.files import atomic_write_text

    if not user_id.strip():
        raise _fail("user_id: must not be empty")
    path = _home(home)
    pseudonymizer = shop_pseudonymizer(path)
    stored_as = pseudonymizer(user_id) if pseudonymizer is not None else user_id
    with stores_and_experiments(path) as (stores, experiments):
        doc = shopper_document_from_stores(
            stores, user_id, stored_as=stored_as, now=datetime.now(UTC), experiments=experiments
        )
    text = json.dumps(doc, indent=2, ensure_ascii=False)
    if out is None:
        typer.echo(text)
        return
    atomic_write_text(out, text + "\n")
    typer.echo(
        f"{len(doc['events'])} events, {len(doc['quarantined_rows'])} quarantined rows and "
        f"{len(doc['experiment_exposures'] or [])} experiment exposures of {user_id} written to {out}",
        err=True,
    )


@privacy_app.command("pseudonymize")
def pseudonymize(
    home: HomeOption = None,
    force: Annotated[
        bool,
        typer.Option("--force", help="Turn it on although the log already holds shoppers' own ids."),
    ] = False,
) -> None:
    """Store shoppers under keyed pseudonyms from now on (creates the shop's key, mode 0600)."""
    from shoploop.cli.common import default_home
    from shoploop.domain import ANONYMOUS_USER
    from shoploop.privacy.pseudonymize import KEY_FILE, PREFIX, Pseudonymizer, shop_pseudonymizer
    from shoploop.store.home import DB_FILENAME, open_stores

    # A shop without a database yet is the best moment: no shopper is stored under their own id.
    path = home or default_home()
    if shop_pseudonymizer(path) is not None:
        typer.echo(f"{path} already pseudonymises shopper ids")
        return
    if (path / DB_FILENAME).is_file():
        with open_stores(path) as stores:
            own_id = next(
                (
                    e.user_id
                    for e in stores.events.scan()
                    if e.user_id not in (ANONYMOUS_USER, "") and not e.user_id.startswith(PREFIX)
                ),
                None,
            )
        if own_id is not None and not force:
            # A returning shopper would be two people to every model: their past under the
            # shop's id, their future under the pseudonym. Say so rather than split them.
            raise _fail(
                "the event log already holds shoppers under the shop's own ids (e.g. "
                f"{own_id!r}); pseudonymising now splits each returning shopper in two (old id, "
                "pseudonym). Pass --force to accept that, or turn it on before the first events."
            )
    Pseudonymizer.from_home(path)
    typer.echo(
        f"shopper ids in {path} are pseudonymised from now on; keep {path / KEY_FILE} safe (back it up)"
    )
