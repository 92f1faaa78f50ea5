"""Prometheus metrics and health endpoints for operators (`METRICS_PORT`).

Knows nothing of Discord: the Discord layer records requests and outcomes and
hands in callables for what is read at scrape time (queue depth, gateway
latency, readiness). Each `BotMetrics` has its own registry, so several bots
(tests) never share counters.

Endpoints (aiohttp, bound to `METRICS_HOST`, localhost by default):
- `/metrics`: Prometheus text format;
- `/healthz`: 200 while the event loop answers (liveness);
- `/readyz`: 200 when the model is loaded, the gateway connected and the backend
  reachable, else 503; the JSON body says which.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import math
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

log = logging.getLogger(__name__)

#: Seconds: from a text-only hit (milliseconds) to a slow GPU-less batch of photos.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
BATCH_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 64)
#: A readiness check that takes longer (e.g. probing unreachable inference servers) says "not ready".
READY_CHECK_TIMEOUT_S = 5.0


@dataclass(slots=True)
class Probes:
    """What is read when scraped or asked for readiness (callables, cheap, on the loop)."""

    queue_depth: Callable[[], float] = lambda: 0.0
    gateway_latency_s: Callable[[], float] = lambda: float("nan")
    text_cache_lookups: Callable[[], float] = lambda: 0.0
    text_cache_misses: Callable[[], float] = lambda: 0.0
    #: name -> check; all must be true for /readyz. A check may be async (it is awaited, bounded).
    ready: Mapping[str, Callable[[], bool | Awaitable[bool]]] = field(default_factory=dict)


def known_or_nan(seconds: float) -> float:
    """discord.py's latency is +inf until a heartbeat is acknowledged (and again while the
    gateway closes): an unknown, which Prometheus spells NaN, not an infinitely slow link."""
    return seconds if math.isfinite(seconds) else math.nan


class BotMetrics:
    """The bot's counters, histograms and gauges, in a registry of its own."""

    def __init__(self, probes: Probes | None = None) -> None:
        self.probes = probes or Probes()
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "clipbot_requests", "Requests by command and outcome", ["command", "outcome"], registry=r
        )
        self.request_seconds = Histogram(
            "clipbot_request_seconds",
            "Request latency by command and stage (download, total)",
            ["command", "stage"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.queue_wait_seconds = Histogram(
            "clipbot_queue_wait_seconds",
            "Time an item waited for its encoder batch",
            ["encoder"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.model_seconds = Histogram(
            "clipbot_model_seconds",
            "Time of one encoder batch in the model's thread (images: preparation included on a CPU)",
            ["encoder"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_size = Histogram(
            "clipbot_batch_size", "Items per encoder batch", ["encoder"], buckets=BATCH_BUCKETS, registry=r
        )
        self.gateway_reconnects = Counter(
            "clipbot_gateway_reconnects", "Gateway reconnections (resumed or new sessions)", registry=r
        )
        self.index_dropped = Counter(
            "clipbot_index_dropped",
            "New images not indexed because too many were waiting (the oldest waiting is dropped)",
            registry=r,
        )
        self.repost_alerts = Counter(
            "clipbot_repost_alerts", "Repost alerts posted (a new image near-duplicating an indexed one)", registry=r
        )
        self.autotag = Counter(
            "clipbot_autotag",
            "Images of autotagged channels by outcome "
            "(tagged, skipped_rate_limited, skipped_backlog, below_threshold, failed)",
            ["outcome"],
            registry=r,
        )
        self.model_load_seconds = Gauge("clipbot_model_load_seconds", "Time the model took to load", registry=r)
        self.model_info = Gauge(
            "clipbot_model_info", "The model and device in use (value 1)", ["model", "device"], registry=r
        )
        gauges: Iterable[tuple[str, str, Callable[[], float]]] = (
            ("clipbot_queue_depth", "Requests admitted and not finished", lambda: self.probes.queue_depth()),
            (
                "clipbot_gateway_latency_seconds",
                "Discord gateway heartbeat latency (NaN: unknown, before the first heartbeat ack or while closing)",
                lambda: known_or_nan(self.probes.gateway_latency_s()),
            ),
            ("clipbot_text_cache_lookups", "Texts looked up (cumulative)", lambda: self.probes.text_cache_lookups()),
            (
                "clipbot_text_cache_misses",
                "Texts sent to the encoder (cumulative)",
                lambda: self.probes.text_cache_misses(),
            ),
            ("clipbot_text_cache_hit_ratio", "Share of text lookups served from the cache", self._hit_ratio),
        )
        for name, documentation, function in gauges:
            Gauge(name, documentation, registry=r).set_function(function)

    def _hit_ratio(self) -> float:
        lookups = self.probes.text_cache_lookups()
        return 1.0 - self.probes.text_cache_misses() / lookups if lookups else float("nan")

    # -- recording ------------------------------------------------------------
    def observe_batch(self, encoder: str, size: int, seconds: float, queue_waits: list[float]) -> None:
        """A `bot.engine.batching.BatchObserver`."""
        self.batch_size.labels(encoder).observe(size)
        self.model_seconds.labels(encoder).observe(seconds)
        for wait in queue_waits:
            self.queue_wait_seconds.labels(encoder).observe(wait)

    def model_loaded(self, model: str, device: str, load_s: float) -> None:
        self.model_load_seconds.set(load_s)
        self.model_info.labels(model, device).set(1)

    def render(self) -> bytes:
        return generate_latest(self.registry)

    async def readiness(self) -> dict[str, bool]:
        checks: dict[str, bool] = {}
        for name, check in self.probes.ready.items():
            try:
                result = check()
                if inspect.isawaitable(result):
                    result = await asyncio.wait_for(result, READY_CHECK_TIMEOUT_S)
                checks[name] = bool(result)
            except Exception:  # a probe that fails says "not ready", it does not break /readyz
                checks[name] = False
        return checks


class MetricsServer:
    """The HTTP side: `/metrics`, `/healthz`, `/readyz` on one local port."""

    def __init__(self, metrics: BotMetrics, host: str, port: int) -> None:
        self.metrics = metrics
        self.host = host
        self.port = port  # 0: any free port; the bound one is here after `start`
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        app = web.Application()
        app.add_routes(
            [
                web.get("/metrics", self._metrics),
                web.get("/healthz", self._healthz),
                web.get("/readyz", self._readyz),
            ]
        )
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        sockets = getattr(site._server, "sockets", None) or []  # the real port when 0 was asked
        if sockets:
            self.port = sockets[0].getsockname()[1]
        log.info("Metrics and health on http://%s:%d (/metrics, /healthz, /readyz)", self.host, self.port)

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _metrics(self, request: web.Request) -> web.Response:
        return web.Response(body=self.metrics.render(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _healthz(self, request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def _readyz(self, request: web.Request) -> web.Response:
        checks = await self.metrics.readiness()
        ready = bool(checks) and all(checks.values())
        return web.json_response({"ready": ready, "checks": checks}, status=200 if ready else 503)
