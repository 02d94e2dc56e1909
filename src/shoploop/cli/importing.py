"""`shoploop import ...`: load a catalog, events, a Metarank event dump or a public dataset into
a shop home.

Every command validates rows, writes the good ones, quarantines the bad ones with a
reason and prints an import report. User errors (missing file, unknown format, bad
`--map`) print one clear line and exit with status 2 — never a traceback.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from shoploop.cli.common import HomeOption, default_home, progress_bar
from shoploop.cli.common import fail as _fail

if TYPE_CHECKING:  # imported lazily in the commands so `--help` stays fast
    from shoploop.store.home import Stores

import_app = typer.Typer(
    help="Import a catalog (a file, a Merchant Center feed, a Shopify export), shopper events, a shop's "
    "history or tuning from Metarank or Algolia, or a public dataset; manage the quarantine.",
    no_args_is_help=True,
)
quarantine_app = typer.Typer(help="Rows that failed validation, kept with the reason.", no_args_is_help=True)
import_app.add_typer(quarantine_app, name="quarantine")

FormatOption = Annotated[
    str | None,
    typer.Option("--format", "-f", help="csv, jsonl or parquet [default: from the file suffix]."),
]
MapOption = Annotated[
    str | None,
    typer.Option(
        "--map", "-m", help="Rename columns: our_field=their_column,... e.g. title=name,price=cost."
    ),
]
ProgressOption = Annotated[bool, typer.Option("--progress/--no-progress", help="Show a progress bar.")]


@contextmanager
def _stores(home: Path | None) -> Iterator[Stores]:
    from shoploop.store.home import open_stores

    path = home or default_home()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _fail(f"cannot create home directory {path}: {exc.strerror or exc}") from None
    stores = open_stores(path)
    try:
        yield stores
    finally:
        stores.close()


def _finish(report: Any, home: Path | None, console: Any) -> None:
    from shoploop.data.report import print_report, save_report

    print_report(report, console)
    saved = save_report(report, home or default_home())
    console.print(f"report saved to {saved}")


def _import_file(
    kind: str, file: Path, fmt: str | None, mapping: str | None, home: Path | None, progress: bool, **cfg: Any
) -> None:
    from rich.console import Console

    from shoploop.data.cleaning import CleaningConfig
    from shoploop.data.ingest import import_file
    from shoploop.data.readers import ReaderError, detect_format, parse_column_map
    from shoploop.privacy.pseudonymize import shop_pseudonymizer

    try:
        column_map = parse_column_map(mapping)
        detect_format(file, fmt)
    except ReaderError as exc:
        raise _fail(str(exc)) from None
    if not file.is_file():
        raise _fail(f"file not found: {file}")
    console = Console()
    with _stores(home) as stores:
        try:
            report = import_file(
                file,
                kind,  # type: ignore[arg-type]
                stores,
                fmt=fmt,
                column_map=column_map,
                config=CleaningConfig(**cfg),
                progress=progress,
                user_ids=shop_pseudonymizer(stores.home),  # as the server would store them
            )
        except (ReaderError, OSError) as exc:
            raise _fail(str(exc)) from None
        _finish(report, home, console)
        for hint in _hints(report, catalog_size=len(stores.catalog)):
            console.print(f"[yellow]hint:[/yellow] {hint}")


def _report_import(console: Any, report: Any, home: Path | None, stores: Any, notes: list[str]) -> None:
    """The end of every import: the report (printed and saved), what the importer left out or
    changed besides, and hints for systematic failures."""
    _finish(report, home, console)
    for note in notes:
        console.print(note, markup=False, highlight=False)
    for hint in _hints(report, catalog_size=len(stores.catalog)):
        console.print(f"[yellow]hint:[/yellow] {hint}")


def _hints(report: Any, *, catalog_size: int) -> list[str]:
    """Point at the likely fix when most rows fail for one systematic reason."""
    hints: list[str] = []
    counts = report.quarantined_by_reason
    if counts.get("unknown_item") and catalog_size == 0:
        hints.append("the catalog is empty: import it first, or pass --accept-unknown-items")
    extra = [c for c, n in counts.items() if c.startswith("invalid_field:") and n == report.rows_read]
    if extra and report.rows_read:
        fields = ", ".join(c.split(":", 1)[1] for c in extra)
        hints.append(
            f"every row failed on {fields}: check the column names (--map our_field=their_column) "
            "or pass --ignore-unknown-columns"
        )
    if report.quarantined:
        hints.append("inspect rejected rows with `shoploop import quarantine list`")
    return hints


@import_app.command("catalog")
def import_catalog_cmd(
    file: Annotated[Path, typer.Argument(help="Catalog file (.csv, .jsonl, .parquet, optionally .gz).")],
    fmt: FormatOption = None,
    mapping: MapOption = None,
    home: HomeOption = None,
    ignore_unknown_columns: Annotated[
        bool, typer.Option(help="Drop columns the product model does not know instead of rejecting rows.")
    ] = False,
    progress: ProgressOption = True,
) -> None:
    """Import products; unchanged products are skipped, invalid ones quarantined."""
    _import_file(
        "catalog",
        file,
        fmt,
        mapping,
        home,
        progress,
        unknown_columns="ignore" if ignore_unknown_columns else "reject",
    )


@import_app.command("events")
def import_events_cmd(
    file: Annotated[Path, typer.Argument(help="Events file (.csv, .jsonl, .parquet, optionally .gz).")],
    fmt: FormatOption = None,
    mapping: MapOption = None,
    home: HomeOption = None,
    accept_unknown_items: Annotated[
        bool,
        typer.Option(help="Keep events whose items are not in the catalog instead of quarantining them."),
    ] = False,
    ignore_unknown_columns: Annotated[
        bool, typer.Option(help="Drop columns the event models do not know instead of rejecting rows.")
    ] = False,
    max_age_days: Annotated[int, typer.Option(help="Oldest event accepted, in days.")] = 3650,
    progress: ProgressOption = True,
) -> None:
    """Import shopper events; re-importing the same file adds nothing (idempotent on event ids)."""
    _import_file(
        "events",
        file,
        fmt,
        mapping,
        home,
        progress,
        unknown_items="accept" if accept_unknown_items else "reject",
        unknown_columns="ignore" if ignore_unknown_columns else "reject",
        max_age=timedelta(days=max_age_days),
    )


@import_app.command("metarank")
def import_metarank_cmd(
    file: Annotated[Path, typer.Argument(help="Metarank event dump: JSON lines, optionally .gz.")],
    home: HomeOption = None,
    interaction: Annotated[
        list[str] | None,
        typer.Option(
            "--interaction",
            help="NAME=TYPE: a Metarank interaction type and the shoploop event it becomes, e.g. "
            "like=click (click, purchase, add-to-cart, rating, ... are known already); repeatable.",
        ),
    ] = None,
    accept_unknown_items: Annotated[
        bool,
        typer.Option(help="Keep events whose items are not in the catalog instead of quarantining them."),
    ] = False,
    max_age_days: Annotated[int, typer.Option(help="Oldest event accepted, in days.")] = 3650,
    progress: ProgressOption = True,
) -> None:
    """Move a shop's history over from Metarank: items become the catalog, rankings become
    impressions with positions, interactions become clicks, carts, purchases, ratings."""
    from rich.console import Console

    from shoploop.data.cleaning import CleaningConfig
    from shoploop.data.ingest import import_catalog, import_events
    from shoploop.data.metarank import MetarankError, MetarankFile, parse_interaction_map
    from shoploop.data.readers import ReaderError
    from shoploop.privacy.pseudonymize import shop_pseudonymizer

    if not file.is_file():
        raise _fail(f"file not found: {file}")
    try:
        dump = MetarankFile(file, interactions=parse_interaction_map(interaction))
    except MetarankError as exc:
        raise _fail(str(exc)) from None
    console = Console()
    with _stores(home) as stores:

        def price_of(item_id: str) -> float | None:
            product = stores.catalog.get(item_id)
            return product.price if product is not None else None

        config = CleaningConfig(
            unknown_items="accept" if accept_unknown_items else "reject", max_age=timedelta(days=max_age_days)
        )
        try:
            catalog = import_catalog(dump.catalog_rows(), stores, source=file.name, progress=progress)
            events = import_events(
                dump.event_rows(price_of),
                stores,
                source=file.name,
                config=config,
                progress=progress,
                user_ids=shop_pseudonymizer(stores.home),
            )
        except (ReaderError, OSError) as exc:
            raise _fail(str(exc)) from None
        for report in (catalog, events):
            _finish(report, home, console)
        if dump.user_events:
            console.print(
                f"skipped {dump.user_events:,} Metarank user-metadata events "
                "(shoploop keeps no shopper attributes)"
            )
        for hint in _hints(events, catalog_size=len(stores.catalog)):
            console.print(f"[yellow]hint:[/yellow] {hint}")


@import_app.command("merchant")
def import_merchant_cmd(
    source: Annotated[
        str,
        typer.Argument(
            help="Google Merchant Center feed: a file or an http(s) URL; RSS/Atom XML or "
            "tab-separated text, optionally .gz."
        ),
    ],
    home: HomeOption = None,
    remove_missing: Annotated[
        bool,
        typer.Option(help="The feed is the whole catalog: remove products it no longer lists."),
    ] = False,
    min_share: Annotated[
        float,
        typer.Option(
            min=0.0,
            max=1.0,
            help="With --remove-missing: refuse when the feed keeps fewer than this share of the "
            "catalog's products (a cut-short feed must not empty the shop).",
        ),
    ] = 0.5,
    force: Annotated[
        bool, typer.Option(help="Import a URL's feed even when it is unchanged since the last import.")
    ] = False,
    progress: ProgressOption = True,
) -> None:
    """Import the catalog from the product feed the shop already sends Google Merchant Center
    (id, title, price "15.00 USD", sale price, availability, product_type, brand, gtin...).
    From a URL, an unchanged feed is not downloaded again (ETag / Last-Modified / digest), so
    this can run from cron every hour."""
    from rich.console import Console

    from shoploop.data.feed_fetch import FeedFetchError, fetch_feed, is_url
    from shoploop.data.merchant_feed import MerchantFeedError, sync_feed
    from shoploop.data.readers import ReaderError

    if not is_url(source) and not Path(source).is_file():
        raise _fail(f"file not found: {source}")
    console = Console()
    with _stores(home) as stores:
        try:
            fetched = None
            if is_url(source):  # downloaded here so its progress bar closes before the import's
                with progress_bar(progress, "downloading the feed", unit="bytes") as step:
                    fetched = fetch_feed(source, stores.home, force=force, progress=step)
            done = sync_feed(
                stores,
                source,
                remove_missing=remove_missing,
                min_share=min_share,
                force=force,
                progress=progress,
                fetched=fetched,
            )
        except (FeedFetchError, ReaderError, OSError, MerchantFeedError) as exc:
            raise _fail(str(exc)) from None
        if done.unchanged:
            console.print(f"the feed is unchanged since the last import: nothing to do ({source})")
            return
        notes = [f"removed {done.removed:,} products the feed no longer lists"] if done.removed else []
        if done.skipped:
            left_out = ", ".join(f"{name} ({n:,})" for name, n in done.skipped.most_common())
            notes.append(f"left out (no product field holds them): {left_out}")
        _report_import(console, done.report, home, stores, notes)


@import_app.command("shopify")
def import_shopify_cmd(
    file: Annotated[Path, typer.Argument(help="Shopify product export (Products > Export > CSV).")],
    currency: Annotated[
        str, typer.Option(help="The shop's currency (the export does not say), e.g. EUR.")
    ] = "USD",
    home: HomeOption = None,
    progress: ProgressOption = True,
) -> None:
    """Import the catalog from a Shopify product export: one product per handle, its variants
    folded in (lowest price, in stock if any variant can be sold, option values as attributes);
    draft, archived and unpublished products are left out and counted."""
    import re

    from rich.console import Console

    from shoploop.data.ingest import import_catalog
    from shoploop.data.readers import ReaderError
    from shoploop.data.shopify_csv import ShopifyExport

    if not re.fullmatch(r"[A-Za-z]{3}", currency):
        raise _fail(f"--currency: {currency!r} is not a three-letter code such as USD or EUR")
    if not file.is_file():
        raise _fail(f"file not found: {file}")
    export = ShopifyExport(file, currency=currency)
    console = Console()
    with _stores(home) as stores:
        try:
            report = import_catalog(export.catalog_rows(), stores, source=file.name, progress=progress)
        except (ReaderError, OSError) as exc:
            raise _fail(str(exc)) from None
        left = ", ".join(f"{n:,} {why}" for why, n in export.left_out.most_common())
        _report_import(
            console, report, home, stores, [f"left out (not for sale in the shop): {left}"] if left else []
        )


@import_app.command("shopify-orders")
def import_shopify_orders_cmd(
    file: Annotated[Path, typer.Argument(help="Shopify order export (Orders > Export > plain CSV).")],
    home: HomeOption = None,
    max_age_days: Annotated[int, typer.Option(help="Oldest order accepted, in days.")] = 3650,
    progress: ProgressOption = True,
) -> None:
    """Bring a Shopify shop's order history in as purchases, so bought-together, popularity and
    the recommenders learn from day one. Import the products first (`shoploop import shopify`):
    order lines find their product by SKU. E-mails are stored only as the shop's pseudonym or a
    hash; cancelled, refunded and voided orders are left out and counted."""
    from rich.console import Console

    from shoploop.data.cleaning import CleaningConfig
    from shoploop.data.ingest import import_events
    from shoploop.data.readers import ReaderError
    from shoploop.data.shopify_orders import ShopifyOrders, email_user_id, sku_index
    from shoploop.privacy.pseudonymize import shop_pseudonymizer

    if not file.is_file():
        raise _fail(f"file not found: {file}")
    console = Console()
    with _stores(home) as stores:
        skus = sku_index(stores.catalog.iter_products())
        if not skus:
            raise _fail(
                "no product in the catalog has a SKU: import the products first (shoploop import shopify)"
            )
        orders = ShopifyOrders(file, skus, user_id=shop_pseudonymizer(stores.home) or email_user_id)
        config = CleaningConfig(max_age=timedelta(days=max_age_days))
        try:
            # ids are already mapped by ShopifyOrders (before a row can reach the quarantine)
            report = import_events(
                orders.event_rows(), stores, source=file.name, config=config, progress=progress
            )
        except (ReaderError, OSError) as exc:
            raise _fail(str(exc)) from None
        left = ", ".join(f"{n:,} {why}" for why, n in orders.left_out.most_common())
        _report_import(console, report, home, stores, [f"left out: {left}"] if left else [])


@import_app.command("algolia")
def import_algolia_cmd(
    synonyms: Annotated[
        Path | None, typer.Option("--synonyms", help="Algolia synonyms export (JSON array or JSON lines).")
    ] = None,
    rules: Annotated[
        Path | None, typer.Option("--rules", help="Algolia rules export (JSON array or JSON lines).")
    ] = None,
    home: HomeOption = None,
) -> None:
    """Move a shop's search tuning over from Algolia: synonyms join the shop's synonyms file (in
    a block that importing again replaces), query rules become pin / hide / boost / bury /
    redirect rules; whatever has no counterpart is listed, not dropped quietly. A running server
    picks both up within seconds."""
    from datetime import UTC, datetime

    from rich.console import Console

    from shoploop.ranking.algolia import (
        AlgoliaExportError,
        Conversion,
        merge_block,
        read_export,
        rule_id_prefix,
        rules_from_export,
        synonym_lines,
    )
    from shoploop.ranking.rules import RULES_FILENAME, RuleBook
    from shoploop.retrieval.shop_synonyms import FILE_NAME, check_rules
    from shoploop.store.files import CheckedTextFile

    if synonyms is None and rules is None:
        raise _fail("give --synonyms FILE, --rules FILE or both (exports from Algolia's dashboard or API)")
    for path in (p for p in (synonyms, rules) if p is not None):
        if not path.is_file():
            raise _fail(f"file not found: {path}")
    root = home or default_home()
    root.mkdir(parents=True, exist_ok=True)
    console = Console()
    try:
        if synonyms is not None:
            done = Conversion()
            lines = synonym_lines(read_export(synonyms), done, check=check_rules)
            shop_file = CheckedTextFile(root, FILE_NAME, check_rules)
            try:
                shop_file.set(merge_block(shop_file.text, lines, synonyms.name, datetime.now(UTC)))
            except ValueError as exc:
                raise _fail(f"the merged synonyms file would not check: {exc}") from None
            _print_conversion(console, "synonyms", done, f"lines in {root / FILE_NAME}")
        if rules is not None:
            done = Conversion()
            book = RuleBook(root / RULES_FILENAME)
            written = 0
            for object_id, converted in rules_from_export(read_export(rules), done):
                prefix = rule_id_prefix(object_id)
                for old in [r.rule_id for r in book.all() if r.rule_id.startswith(prefix)]:
                    book.delete(old)  # importing again replaces, never duplicates
                for rule in converted:
                    book.put(rule)
                written += len(converted)
            _print_conversion(console, "rules", done, f"shoploop rules ({written} written)")
    except AlgoliaExportError as exc:
        raise _fail(str(exc)) from None


def _print_conversion(console: Any, what: str, done: Any, became: str, shown: int = 40) -> None:
    console.print(f"{what}: {done.converted} converted into {became}; {len(done.notes)} notes")
    for note in done.notes[:shown]:
        console.print(f"  - {note}", markup=False, highlight=False)  # notes quote raw text
    if len(done.notes) > shown:
        console.print(f"  ... and {len(done.notes) - shown} more")


@import_app.command("dataset")
def import_dataset_cmd(
    name: Annotated[
        str, typer.Argument(help="homedepot, retrotech, amazon-scientific, ml-100k, ml-1m or obd.")
    ],
    directory: Annotated[Path, typer.Option("--from", help="Directory holding the downloaded dataset.")],
    home: HomeOption = None,
    max_age_days: Annotated[
        int, typer.Option(help="Oldest event accepted, in days (public datasets are often decades old).")
    ] = 36_500,
    progress: ProgressOption = True,
) -> None:
    """Load a public dataset through its adapter and import products and events."""
    from rich.console import Console

    from shoploop.data.cleaning import CleaningConfig
    from shoploop.data.ingest import import_records
    from shoploop.privacy.pseudonymize import shop_pseudonymizer

    if not directory.is_dir():
        raise _fail(f"dataset directory not found: {directory}")
    try:
        from shoploop.data.datasets import load_dataset
    except ImportError as exc:  # the adapters live in another module that may be missing
        raise _fail(f"dataset adapters are unavailable: {exc}") from None
    try:
        bundle = load_dataset(name, directory)  # type: ignore[arg-type]
    except (ValueError, KeyError, FileNotFoundError) as exc:
        raise _fail(f"cannot load dataset {name!r} from {directory}: {exc}") from None
    console = Console()
    with _stores(home) as stores:
        # Historical datasets (MovieLens is from the 1990s) would all fail the shop default
        # max_age of ten years, so the dataset command widens it.
        config = CleaningConfig(max_age=timedelta(days=max_age_days))
        reports = import_records(
            bundle.products,
            bundle.events,
            stores,
            source=name,
            config=config,
            progress=progress,
            user_ids=shop_pseudonymizer(stores.home),
        )
        for report in reports:
            _finish(report, home, console)


def _reason_prefilter(reason: str) -> str | None:
    """A substring every stored reason text matching `reason` (a code or text) contains, if any."""
    if reason.startswith("invalid_field:"):
        return reason.split(":", 1)[1] + ":"
    known = {"invalid_json": "invalid JSON", "non_positive_price": "greater than 0", "invalid_row": None}
    if reason in known:
        return known[reason]
    return reason


@quarantine_app.command("list")
def quarantine_list_cmd(
    reason: Annotated[
        str | None,
        typer.Option(help="Only rows whose reason code or text contains this, e.g. unknown_item or price."),
    ] = None,
    kind: Annotated[str | None, typer.Option(help="catalog or event.")] = None,
    limit: Annotated[int, typer.Option(help="Show at most this many rows.")] = 50,
    home: HomeOption = None,
) -> None:
    """Show quarantined rows with their reason, source and row number."""
    import json

    from rich.console import Console
    from rich.table import Table

    from shoploop.data.cleaning import reason_code

    if kind not in (None, "catalog", "event"):
        raise _fail(f"--kind must be catalog or event, got {kind!r}")
    console = Console()
    with _stores(home) as stores:
        # Let the store narrow the rows first (a text match), then match codes exactly here.
        prefilter = _reason_prefilter(reason) if reason else None
        rows = stores.quarantine.list(kind=kind, reason_contains=prefilter)  # type: ignore[arg-type]
        counts = stores.quarantine.counts_by_reason()
    if reason:
        needle = reason.lower()
        rows = [r for r in rows if needle in r.reason.lower() or needle in reason_code(r.reason)]
    by_code: dict[str, int] = {}
    for text, n in counts.items():
        by_code[reason_code(text)] = by_code.get(reason_code(text), 0) + n
    table = Table(title=f"quarantine: {len(rows)} matching row(s)")
    for column in ("id", "kind", "source", "row", "reason", "raw"):
        table.add_column(column, overflow="fold")
    for row in rows[:limit]:
        raw = json.dumps(dict(row.raw), default=str, ensure_ascii=False)
        table.add_row(
            str(row.id),
            row.kind,
            row.source,
            "" if row.row_number is None else str(row.row_number),
            row.reason,
            raw if len(raw) <= 160 else raw[:157] + "...",
        )
    console.print(table)
    if len(rows) > limit:
        console.print(f"... {len(rows) - limit} more (use --limit)")
    if by_code:
        console.print("by reason: " + ", ".join(f"{c}={n}" for c, n in sorted(by_code.items())))


@quarantine_app.command("reimport")
def quarantine_reimport_cmd(
    ids: Annotated[list[int] | None, typer.Argument(help="Quarantine row ids [default: all].")] = None,
    mapping: MapOption = None,
    home: HomeOption = None,
    accept_unknown_items: Annotated[
        bool, typer.Option(help="Accept events whose items are not in the catalog.")
    ] = False,
) -> None:
    """Re-validate quarantined rows (e.g. after fixing the catalog); passing rows leave the quarantine."""
    from rich.console import Console

    from shoploop.data.cleaning import CleaningConfig
    from shoploop.data.ingest import reimport_quarantine
    from shoploop.data.readers import ReaderError, parse_column_map

    try:
        column_map = parse_column_map(mapping)
    except ReaderError as exc:
        raise _fail(str(exc)) from None
    console = Console()
    config = CleaningConfig(unknown_items="accept" if accept_unknown_items else "reject")
    with _stores(home) as stores:
        reports = reimport_quarantine(stores, ids=ids or None, column_map=column_map, config=config)
        for report in reports:
            _finish(report, home, console)
        if not reports:
            console.print("quarantine is empty: nothing to re-import")
