"""Prometheus metrics of one server: requests, latency, batch sizes, queue depth, errors.

Each app gets its own CollectorRegistry, so several apps (tests, several models) never
collide. Routes are labelled by their template (`/v2/models/{name}/infer`), never by the
raw path, so a client cannot blow up the number of series.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from modelyard.serve.engine import BatchStats

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class ServeMetrics:
    """The metric families of one server and helpers that feed them."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "modelyard_requests", "HTTP requests answered.", ["route", "method", "code"], registry=r
        )
        self.errors = Counter(
            "modelyard_errors", "HTTP answers with status >= 400.", ["code"], registry=r
        )
        self.latency = Histogram(
            "modelyard_request_seconds",
            "Time to answer a request.",
            ["route"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_size = Histogram(
            "modelyard_batch_size",
            "Texts per forward pass.",
            ["model"],
            buckets=_BATCH_BUCKETS,
            registry=r,
        )
        self.batch_seconds = Histogram(
            "modelyard_batch_seconds",
            "Time of one forward pass.",
            ["model"],
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.truncated = Counter(
            "modelyard_texts_truncated",
            "Texts cut to the model's maximum length.",
            ["model"],
            registry=r,
        )
        self.queue_depth = Gauge(
            "modelyard_queue_depth", "Texts waiting for a forward pass.", ["model"], registry=r
        )
        self.version = Gauge(
            "modelyard_model_version", "Version being served.", ["model"], registry=r
        )
        self.generation = GenerationMetrics(r)

    def batch_hook(self, model: str) -> Callable[[BatchStats], None]:
        """Return a callback that records one forward pass of `model`."""
        size, seconds, cut = (
            self.batch_size.labels(model),
            self.batch_seconds.labels(model),
            self.truncated.labels(model),
        )

        def record(stats: BatchStats) -> None:
            size.observe(stats.size)
            seconds.observe(stats.seconds)
            if stats.truncated:
                cut.inc(stats.truncated)

        return record

    def watch_queue(self, model: str, depth: Callable[[], int]) -> None:
        """Report `depth()` as the queue depth of `model` at every scrape."""
        self.queue_depth.labels(model).set_function(lambda: float(depth()))

    def render(self) -> bytes:
        """Return every metric in the Prometheus text format."""
        return generate_latest(self.registry)

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        """Record one answered request."""
        self.requests.labels(route, method, str(status)).inc()
        self.latency.labels(route).observe(seconds)
        if status >= 400:
            self.errors.labels(str(status)).inc()


_TTFT_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
_RATE_WINDOW_S = 10.0


class GenerationMetrics:
    """Metrics of generation models: tokens, tokens/s, time to first token, sequences, queue."""

    def __init__(self, r: CollectorRegistry) -> None:
        self.tokens = Counter(
            "modelyard_generated_tokens", "Completion tokens generated.", ["model"], registry=r
        )
        self.prompt_tokens = Counter(
            "modelyard_prompt_tokens", "Prompt tokens read (prefilled).", ["model"], registry=r
        )
        self.tokens_per_s = Gauge(
            "modelyard_generation_tokens_per_second",
            f"Completion tokens per second over the last {_RATE_WINDOW_S:g} s.",
            ["model"],
            registry=r,
        )
        self.ttft = Histogram(
            "modelyard_time_to_first_token_seconds",
            "From a request's arrival to its first generated token.",
            ["model"],
            buckets=_TTFT_BUCKETS,
            registry=r,
        )
        self.active = Gauge(
            "modelyard_active_sequences", "Sequences being generated.", ["model"], registry=r
        )
        self.waiting = Gauge(
            "modelyard_generation_queue_depth",
            "Generation requests waiting for a slot.",
            ["model"],
            registry=r,
        )
        self.finished = Counter(
            "modelyard_sequences_finished",
            "Sequences ended, by finish reason (stop, length, cancelled, timeout, error).",
            ["model", "reason"],
            registry=r,
        )

    def watch(self, model: str, active: Callable[[], int], waiting: Callable[[], int]) -> None:
        """Report `active()` and `waiting()` for `model` at every scrape."""
        self.active.labels(model).set_function(lambda: float(active()))
        self.waiting.labels(model).set_function(lambda: float(waiting()))

    def step_hook(self, model: str) -> Callable[[int], None]:
        """Return a callback counting the tokens of one engine step and updating tokens/s."""
        counter, gauge = self.tokens.labels(model), self.tokens_per_s.labels(model)
        recent: deque[tuple[float, int]] = deque()

        def record(tokens: int) -> None:
            now = time.monotonic()
            counter.inc(tokens)
            recent.append((now, tokens))
            while recent and recent[0][0] < now - _RATE_WINDOW_S:
                recent.popleft()
            span = max(now - recent[0][0], 1e-3) if len(recent) > 1 else _RATE_WINDOW_S
            gauge.set(sum(n for _, n in recent) / span)

        return record


def route_template(app: ASGIApp, scope: Scope) -> str:
    """Return the path template of the route `scope` matches, or `unmatched`."""
    for route in getattr(app, "routes", []):
        match, _ = route.matches(scope)
        if match == Match.FULL:
            return str(getattr(route, "path", "unmatched"))
    return "unmatched"


class MetricsMiddleware:
    """Outermost ASGI layer: times every HTTP request and counts its status."""

    def __init__(self, app: ASGIApp, metrics: ServeMetrics, router: ASGIApp) -> None:
        self.app, self.metrics, self.router = app, metrics, router

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        began, status = time.perf_counter(), 500

        async def send_wrapper(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            route = route_template(self.router, scope)
            self.metrics.observe(route, scope["method"], status, time.perf_counter() - began)
