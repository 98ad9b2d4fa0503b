"""What one running server holds: settings, models, metrics, and whether it is ready."""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
import time
from types import FrameType

from modelyard.errors import ModelyardError
from modelyard.serve.limits import RateLimiter
from modelyard.serve.metrics import ServeMetrics
from modelyard.serve.models import ModelSet
from modelyard.serve.settings import ServeSettings

log = logging.getLogger("modelyard.serve")


class ServerState:
    """Models and metrics of one server process, and its readiness (false while draining)."""

    def __init__(self, settings: ServeSettings, models: ModelSet, metrics: ServeMetrics) -> None:
        self.settings, self.models, self.metrics = settings, models, metrics
        # generation models: prompt and completion tokens per API key
        self.token_limiter = RateLimiter(
            settings.token_rate_limit, settings.token_burst, unit="tokens"
        )
        self.started = False
        self.created = int(time.time())
        self.draining = False
        self._lock = threading.Lock()

    @property
    def ready(self) -> bool:
        """Return True when the models are loaded and the server is not shutting down."""
        return self.started and not self.draining

    def start(self) -> None:
        """Set the inference threads and load every model (once); raise ModelyardError on failure."""
        with self._lock:
            if self.started:
                return
            import torch

            torch.set_num_threads(self.settings.threads())
            self.models.load_all()
            self.started = True

    def begin_drain(self) -> None:
        """Turn readiness off and run queued texts at once; requests in flight still finish."""
        if not self.draining:
            log.info("shutting down: readiness is off, finishing requests in flight")
        self.draining = True
        self.models.drain()

    async def watch_aliases(self) -> None:
        """Every `watch_aliases_s`, swap models whose alias now points at another version."""
        interval = self.settings.watch_aliases_s
        if interval is None:
            return
        last = ""
        while True:
            await asyncio.sleep(interval)
            try:
                await self.models.check_aliases()
                last = ""
            except ModelyardError as exc:
                # a refused version (tampered, hostile) is one clear line, logged once per cause
                if str(exc) != last:
                    log.error("not following the registry: %s; will retry", exc)
                last = str(exc)
            except Exception:
                log.exception("checking the registry for new versions failed; will retry")

    def install_drain_hook(self) -> None:
        """Chain SIGTERM/SIGINT so readiness turns off before the server stops accepting work.

        Only in the main thread (where signal handlers live); the handler installed by the
        server (uvicorn) still runs after ours.
        """
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in (signal.SIGTERM, signal.SIGINT):
            previous = signal.getsignal(sig)

            def handler(signum: int, frame: FrameType | None, previous: object = previous) -> None:
                self.begin_drain()
                if callable(previous):
                    previous(signum, frame)

            signal.signal(sig, handler)
