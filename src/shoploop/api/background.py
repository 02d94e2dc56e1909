"""Background work started by the server's lifespan: the retraining loop, the sync with
what other processes write to the shop's home (`StoreSync`), the retention policy
(`RetentionJob`) and the shop's product feed (`CatalogFeedJob`).

`shoploop.feedback.retrain.RetrainLoop` learns a ranker from the logs, gates it and
promotes it (the engine swaps it in at once). It is blocking, so it runs in a worker
thread and is told to stop through a `threading.Event` on shutdown; serving is never
blocked by it. Imported lazily: a server without `--retrain` never loads the LTR stack.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from typing import Any

log = logging.getLogger("shoploop.api")


class RetrainHook:
    """Owns the retraining thread for the lifetime of the app."""

    def __init__(self, engine: Any, interval_seconds: float) -> None:
        self.engine = engine
        self.interval_seconds = interval_seconds
        self.loop_obj: Any = None
        self.task: asyncio.Future[Any] | None = None
        self._stop = threading.Event()
        self.status = "disabled"

    async def start(self) -> None:
        try:
            from shoploop.feedback.retrain import RetrainConfig, RetrainLoop
        except ImportError as err:  # a trimmed install without the LTR dependencies
            self.status = f"unavailable ({err})"
            log.warning("retraining loop %s", self.status)
            return
        config = RetrainConfig(every_minutes=self.interval_seconds / 60.0)
        self.loop_obj = RetrainLoop(self.engine, config)
        self.task = asyncio.ensure_future(asyncio.to_thread(self.loop_obj.run_forever, self._stop))
        self.status = f"running (every {config.every_events} events or {config.every_minutes:.0f} min)"
        log.info("retraining loop %s", self.status)

    def describe(self) -> str:
        reports = getattr(self.loop_obj, "reports", None)
        if not reports:
            return self.status
        last = reports[-1]
        verdict = "promoted" if last.promoted else "kept the active ranker"
        return f"{self.status}; last round: ranker v{last.version} {verdict} ({last.reason})"

    async def stop(self) -> None:
        self._stop.set()
        if self.task is not None:
            with contextlib.suppress(Exception):  # shutting down either way
                await asyncio.wait_for(self.task, timeout=30)
            self.status = "stopped"


class _EveryInterval:
    """Runs `tick()` in a worker thread every `interval_seconds` (0 = never) until stopped; a
    failing round is logged and the next one tries again."""

    what = "background job"
    first_round_at_start = False  # True: one round right away, then every interval

    def __init__(self, interval_seconds: float) -> None:
        self.interval_seconds = interval_seconds
        self.task: asyncio.Task[None] | None = None

    def tick(self) -> None:
        raise NotImplementedError

    def start(self) -> None:
        if self.interval_seconds > 0:
            self.task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        if not self.first_round_at_start:
            await asyncio.sleep(self.interval_seconds)
        while True:
            try:
                await asyncio.to_thread(self.tick)
            except Exception:  # a locked or briefly unavailable store: try again next round
                log.exception("%s failed", self.what)
            await asyncio.sleep(self.interval_seconds)

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self.task


class StoreSync(_EveryInterval):
    """Every `interval_seconds`, `engine.sync_with_stores()` in a worker thread: catalog
    changes, shopper events, retention purges and model promotions/rollbacks written by another
    process (the CLI, a retraining job) reach the running server within seconds instead of at
    its next restart."""

    what = "sync with the shop's stores"

    def __init__(self, engine: Any, interval_seconds: float) -> None:
        super().__init__(interval_seconds)
        self.engine = engine
        self.last_changes: dict[str, int] = {}

    def tick(self) -> None:
        changed = self.engine.sync_with_stores()
        if changed:
            self.last_changes = changed
            log.info("picked up changes written by another process: %s", changed)


class RetentionJob(_EveryInterval):
    """Applies the shop's retention policy (`HOME/retention.json`, `shoploop retention set`)
    every `interval_seconds`, so data older than the shop keeps it is erased without anyone
    remembering to run `shoploop retention apply`. Re-read each round: a policy edited from the
    CLI applies from the next round. The stores erase in short chunks, so serving and intake
    carry on meanwhile. The purge notes the shoppers who lost events in the log's purge record,
    and `engine.sync_with_stores()` rebuilds their in-memory state from what is left: right
    after this round, and at the next store sync for a purge the CLI (`shoploop retention
    apply`) or another server on the home ran."""

    what = "applying the retention policy"

    def __init__(self, engine: Any, interval_seconds: float, experiments: Any = None) -> None:
        super().__init__(interval_seconds)
        self.engine = engine
        self.experiments = experiments  # A/B exposures follow the impressions' limit
        self.last_report: Any = None

    def tick(self) -> None:
        from shoploop.privacy.retention import apply_retention, load_policy

        home = self.engine.stores.home
        policy = load_policy(home) if home is not None else None
        if policy is None or policy.keeps_everything:
            return
        report = apply_retention(
            self.engine.stores, policy, now=self.engine.clock(), experiments=self.experiments
        )
        self.last_report = report
        if report.total_rows:
            # What the server holds about those shoppers (profiles, recent items and queries)
            # follows the log: rebuilt at once from the events they have left, through the
            # purge record the sync follows (so a concurrent `StoreSync` round cannot rebuild
            # them a second time, and they are rebuilt even with the store sync switched off).
            rebuilt = self.engine.sync_with_stores().get("purged_shoppers", 0)
            log.info(
                "retention erased %d rows (events %d); %d shoppers' state rebuilt in this round",
                report.total_rows,
                report.events_rows,
                rebuilt,
            )


class CatalogFeedJob(_EveryInterval):
    """Keeps the catalog in step with the shop's product feed (`shoploop serve --catalog-feed
    URL`): every `interval_seconds` the feed is fetched if it changed (ETag / Last-Modified /
    digest) and imported through the same code as `shoploop import merchant`, then the engine
    applies the catalog changes at once instead of at the next store sync. The first round runs
    right after start-up, so a new server does not wait an hour for its catalog."""

    what = "syncing the catalog feed"  # a failing round (unreachable feed, bad XML) keeps the catalog
    first_round_at_start = True

    def __init__(
        self, engine: Any, interval_seconds: float, source: str | None, *, remove_missing: bool = False
    ) -> None:
        super().__init__(interval_seconds if source else 0.0)
        self.engine = engine
        self.source = source
        self.remove_missing = remove_missing
        self.last_sync: Any = None  # data.merchant_feed.FeedSync of the last round that imported
        self.last_error: str | None = None
        self.last_success_at: float | None = None  # unix time of the last round without error
        self.failures = 0

    def describe(self) -> str:
        """One line for the dashboard: where the catalog comes from and how the last round went."""
        if not self.source:
            return "off"
        parts = [self.source]
        if self.last_success_at is not None:
            stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(self.last_success_at))
            parts.append(f"last checked cleanly {stamp}")
        if self.last_sync is not None:
            report = self.last_sync.report
            parts.append(
                f"last import {self.last_sync.products:,} products, {report.accepted:,} added or changed, "
                f"{report.quarantined:,} quarantined, {self.last_sync.removed:,} removed"
            )
        if self.last_error:
            parts.append(f"FAILING ({self.failures} rounds so far): {self.last_error}")
        return "; ".join(parts)

    def tick(self) -> None:
        from shoploop.data.merchant_feed import sync_feed

        assert self.source is not None
        try:
            done = sync_feed(self.engine.stores, self.source, remove_missing=self.remove_missing)
        except Exception as exc:
            self.last_error = f"{type(exc).__name__}: {exc}"
            self.failures += 1
            raise
        self.last_error = None
        self.last_success_at = time.time()
        if done.unchanged:
            return
        self.last_sync = done
        changed = self.engine.sync_with_stores()
        report = done.report
        log.info(
            "catalog feed imported: %d products read, %d added or changed, %d quarantined, %d removed; %s",
            done.products,
            report.accepted,
            report.quarantined,
            done.removed,
            changed,
        )
