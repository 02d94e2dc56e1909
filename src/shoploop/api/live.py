"""Recent traffic, kept in memory for the live dashboard and the /metrics gauges.

The event log is the source of truth, but scanning it on every dashboard refresh or
Prometheus scrape would cost seconds on a real shop. The API sees every list it serves
and every event it accepts, so it keeps the last `window` of them and computes the KPIs
over that window with the same function the reports use (`business_kpis`), so the live
numbers and the offline ones are defined identically.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from shoploop.domain import BaseEvent, ImpressionEvent, ShownItem
from shoploop.domain.served import ServedList
from shoploop.evaluation.business import ALL_SURFACES, business_kpis

LATENCY_SAMPLES = 4096  # per route: enough for a stable p99, small enough to sort per refresh


@dataclass(frozen=True)
class SurfaceKPIs:
    surface: str
    impressions: int
    clicks: int
    add_to_carts: int
    purchases: int
    ctr: float | None
    add_to_cart_rate: float | None
    conversion: float | None  # purchases attributed to the surface / lists served on it
    revenue: float

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


class LiveStats:
    """Thread-safe: routes run in FastAPI's threadpool."""

    def __init__(self, window: int = 50_000, cache_seconds: float = 2.0) -> None:
        self._events: deque[BaseEvent] = deque(maxlen=window)
        self._arrivals: deque[float] = deque(maxlen=window)  # monotonic arrival time of accepted events
        self._latency: dict[str, deque[float]] = {}
        self._lock = threading.Lock()
        self._cache_seconds = cache_seconds
        self._cached: tuple[float, list[SurfaceKPIs]] | None = None
        self.started = time.monotonic()
        self.accepted = 0
        self.rejected = 0
        self.duplicates = 0
        self.served = 0

    # ---------------------------------------------------------------- recording
    def record_served(self, served: ServedList, user_id: str | None, session_id: str | None) -> None:
        if not served.items:
            return
        event = ImpressionEvent.model_construct(
            event_id=served.request_id,
            request_id=served.request_id,
            surface=served.surface,
            query=served.query,
            items=tuple(
                ShownItem.model_construct(item_id=i.item_id, position=i.position) for i in served.items
            ),
            policy=served.policy,
            model_version=served.model_version,
            user_id=user_id or "anonymous",
            session_id=session_id,
            timestamp=datetime.now(UTC),
            context={},
            type="impression",
        )
        with self._lock:
            self._events.append(event)
            self.served += 1

    def record_events(self, accepted: Iterable[BaseEvent], rejected: int, duplicates: int) -> None:
        now = time.monotonic()
        with self._lock:
            for event in accepted:
                self._events.append(event)
                self._arrivals.append(now)
                self.accepted += 1
            self.rejected += rejected
            self.duplicates += duplicates

    def record_latency(self, route: str, seconds: float) -> None:
        samples = self._latency.get(route)
        if samples is None:
            with self._lock:
                samples = self._latency.setdefault(route, deque(maxlen=LATENCY_SAMPLES))
        samples.append(seconds)  # deque.append is atomic under the GIL

    # ---------------------------------------------------------------- reading
    def events_per_minute(self) -> float:
        cutoff = time.monotonic() - 60.0
        with self._lock:
            return float(sum(1 for t in self._arrivals if t >= cutoff))

    def latency(self) -> dict[str, dict[str, float]]:
        """route -> {"count", "p50_ms", "p99_ms"} over the last samples."""
        out = {}
        for route, samples in sorted(self._latency.items()):
            values = np.fromiter(list(samples), dtype=float)
            if len(values):
                p50, p99 = np.percentile(values, [50, 99]) * 1000.0
                out[route] = {"count": float(len(values)), "p50_ms": float(p50), "p99_ms": float(p99)}
        return out

    def kpis(self) -> list[SurfaceKPIs]:
        """Per surface plus "*" (all surfaces) over the window, cached for a moment."""
        now = time.monotonic()
        cached = self._cached
        if cached is not None and now - cached[0] < self._cache_seconds:
            return cached[1]
        with self._lock:
            events = list(self._events)
        rows = business_kpis(events, period="all") if events else []
        out = [
            SurfaceKPIs(
                surface=r.surface,
                impressions=r.impressions,
                clicks=r.clicks,
                add_to_carts=r.add_to_carts,
                purchases=r.purchases,
                ctr=r.ctr,
                add_to_cart_rate=r.add_to_cart_rate,
                conversion=(r.purchases / r.impressions) if r.impressions else None,
                revenue=r.revenue,
            )
            for r in rows
        ]
        out.sort(key=lambda k: (k.surface == ALL_SURFACES, k.surface))
        self._cached = (now, out)
        return out

    def snapshot(self) -> dict[str, Any]:
        return {
            "uptime_seconds": time.monotonic() - self.started,
            "served_lists": self.served,
            "events_accepted": self.accepted,
            "events_rejected": self.rejected,
            "events_duplicate": self.duplicates,
            "events_per_minute": self.events_per_minute(),
            "surfaces": [k.to_dict() for k in self.kpis()],
            "latency": self.latency(),
        }
