"""Prometheus metrics, one registry per app (so tests can build many apps in one process).

* `shoploop_http_request_duration_seconds{route,method,status}` — histogram per route template;
* `shoploop_events_total{status}` — accepted / duplicate / rejected intake rows;
* `shoploop_served_lists_total{surface}`;
* gauges computed at scrape time from the live window: `shoploop_surface_ctr`,
  `shoploop_surface_add_to_cart_rate`, `shoploop_surface_conversion`, `shoploop_surface_impressions`
  (per surface), `shoploop_events_per_minute`, `shoploop_model_active_version{model}`,
  `shoploop_catalog_products`, `shoploop_ready`;
* with `--catalog-feed`: `shoploop_catalog_feed_last_success_timestamp_seconds` (alert when it
  falls behind), `shoploop_catalog_feed_failures_total`, `shoploop_catalog_feed_products`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from shoploop.api.live import LiveStats

# Search and recommendations should answer in milliseconds; the buckets resolve that range.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.075, 0.1, 0.25, 0.5, 1, 2.5)


class _LiveCollector(Collector):
    def __init__(self, live: LiveStats, engine: Any, owner: ApiMetrics) -> None:
        self.live = live
        self.engine = engine
        self.owner = owner  # background jobs are attached to it once the lifespan starts them

    def collect(self) -> Iterator[GaugeMetricFamily]:
        families = {
            name: GaugeMetricFamily(f"shoploop_surface_{name}", help_, labels=["surface"])
            for name, help_ in (
                ("ctr", "clicked (list, item) pairs / impressed items, recent window"),
                ("add_to_cart_rate", "carted (list, item) pairs / impressed items, recent window"),
                ("conversion", "purchases attributed to the surface / lists served, recent window"),
                ("impressions", "lists served on the surface, recent window"),
            )
        }
        for row in self.live.kpis():
            for name, value in (
                ("ctr", row.ctr),
                ("add_to_cart_rate", row.add_to_cart_rate),
                ("conversion", row.conversion),
                ("impressions", float(row.impressions)),
            ):
                if value is not None:
                    families[name].add_metric([row.surface], float(value))
        yield from families.values()
        epm = GaugeMetricFamily("shoploop_events_per_minute", "accepted events in the last 60 s")
        epm.add_metric([], self.live.events_per_minute())
        yield epm
        models = GaugeMetricFamily(
            "shoploop_model_active_version", "active model version per model", labels=["model"]
        )
        for name, version in sorted(self.engine.versions.items()):
            models.add_metric([name], float(version))
        yield models
        products = GaugeMetricFamily("shoploop_catalog_products", "products in the served catalog")
        products.add_metric([], float(len(self.engine.products)))
        yield products
        ready = GaugeMetricFamily("shoploop_ready", "1 when models are loaded and serving")
        ready.add_metric([], 1.0 if self.engine.ready else 0.0)
        yield ready
        feed = self.owner.catalog_feed
        if feed is not None and feed.source:
            yield from _feed_families(feed)


def _feed_families(feed: Any) -> Iterator[GaugeMetricFamily | CounterMetricFamily]:
    last = GaugeMetricFamily(
        "shoploop_catalog_feed_last_success_timestamp_seconds",
        "when the catalog feed was last fetched (changed or not) and imported without error; 0 = never",
    )
    last.add_metric([], feed.last_success_at or 0.0)
    failures = CounterMetricFamily("shoploop_catalog_feed_failures", "catalog feed rounds that failed")
    failures.add_metric([], float(feed.failures))
    yield last
    yield failures
    if feed.last_sync is not None:
        products = GaugeMetricFamily("shoploop_catalog_feed_products", "products in the last imported feed")
        products.add_metric([], float(feed.last_sync.products))
        yield products


class ApiMetrics:
    def __init__(self, live: LiveStats, engine: Any) -> None:
        self.registry = CollectorRegistry()
        self.latency = Histogram(
            "shoploop_http_request_duration_seconds",
            "request latency per route template",
            ["route", "method", "status"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.events = Counter("shoploop_events", "intake rows by outcome", ["status"], registry=self.registry)
        self.served = Counter(
            "shoploop_served_lists", "lists served per surface", ["surface"], registry=self.registry
        )
        self.catalog_feed: Any = None  # api.background.CatalogFeedJob, set by the lifespan
        self.registry.register(_LiveCollector(live, engine, self))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class TimingMiddleware:
    """Pure ASGI: times each request under its route *template* (bounded label cardinality)."""

    def __init__(self, app: Any, metrics: ApiMetrics, live: LiveStats) -> None:
        self.app = app
        self.metrics = metrics
        self.live = live

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = {"code": 500}

        async def send_wrapper(message: dict) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            if not template.startswith("/static"):
                elapsed = time.perf_counter() - started
                self.metrics.latency.labels(template, scope["method"], f"{status['code'] // 100}xx").observe(
                    elapsed
                )
                self.live.record_latency(f"{scope['method']} {template}", elapsed)
