"""Background work started by the server's lifespan: the retraining loop hook.

The FEEDBACK layer owns retraining (`shoploop.feedback.retrain`). When the settings enable
it and the module exists, the lifespan starts it here and stops it on shutdown; when it
is not installed yet the server runs without it and says so once in the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
from typing import Any

log = logging.getLogger("shoploop.api")


class RetrainHook:
    """Owns the retraining task for the lifetime of the app."""

    def __init__(self, engine: Any, interval_seconds: float) -> None:
        self.engine = engine
        self.interval_seconds = interval_seconds
        self.loop_obj: Any = None
        self.task: asyncio.Task[Any] | None = None
        self.status = "disabled"

    async def start(self) -> None:
        try:
            module = importlib.import_module("shoploop.feedback.retrain")
        except ImportError:
            self.status = "unavailable (shoploop.feedback.retrain not installed)"
            log.info("retraining loop %s", self.status)
            return
        factory = getattr(module, "RetrainLoop", None)
        if factory is None:
            self.status = "unavailable (no RetrainLoop in shoploop.feedback.retrain)"
            log.info("retraining loop %s", self.status)
            return
        self.loop_obj = _build(factory, self.engine, self.interval_seconds)
        runner = getattr(self.loop_obj, "run_forever", None) or getattr(self.loop_obj, "run", None)
        if runner is None:
            self.status = "unavailable (RetrainLoop has no run/run_forever)"
            return
        if asyncio.iscoroutinefunction(runner):
            self.task = asyncio.create_task(runner())
        else:  # a blocking loop runs in a worker thread so serving is never blocked
            self.task = asyncio.create_task(asyncio.to_thread(runner))
        self.status = "running"
        log.info("retraining loop started (every %.0f s)", self.interval_seconds)

    async def stop(self) -> None:
        stop = getattr(self.loop_obj, "stop", None)
        if stop is not None:
            stop()
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, TimeoutError, Exception):  # shutting down anyway
                await asyncio.wait_for(self.task, timeout=10)
            self.status = "stopped"


def _build(factory: Any, engine: Any, interval: float) -> Any:
    for kwargs in ({"interval_seconds": interval}, {}):
        try:
            return factory(engine, **kwargs)
        except TypeError:
            continue
    return factory(engine)
