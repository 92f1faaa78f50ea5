"""Metrics are valid Prometheus text and say what happened; readiness says what is missing."""

from __future__ import annotations

import math

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from bot.metrics import BotMetrics, MetricsServer, Probes


def samples(metrics: BotMetrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    out = {}
    for family in text_string_to_metric_families(metrics.render().decode()):
        for sample in family.samples:
            out[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return out


def test_recorded_figures_appear_in_the_exposition() -> None:
    lookups = {"n": 10.0}
    metrics = BotMetrics(
        Probes(queue_depth=lambda: 3, text_cache_lookups=lambda: lookups["n"], text_cache_misses=lambda: 4)
    )
    metrics.requests.labels("classify", "answered").inc()
    metrics.requests.labels("classify", "busy").inc(2)
    metrics.observe_batch("visual", 3, 0.12, [0.0, 0.01, 0.02])
    metrics.model_loaded("clip/ViT-B-16", "CPU", 2.5)
    got = samples(metrics)
    assert got[("clipbot_requests_total", (("command", "classify"), ("outcome", "answered")))] == 1
    assert got[("clipbot_requests_total", (("command", "classify"), ("outcome", "busy")))] == 2
    assert got[("clipbot_batch_size_count", (("encoder", "visual"),))] == 1
    assert got[("clipbot_batch_size_sum", (("encoder", "visual"),))] == 3
    assert got[("clipbot_queue_wait_seconds_count", (("encoder", "visual"),))] == 3
    assert got[("clipbot_queue_depth", ())] == 3
    assert got[("clipbot_text_cache_hit_ratio", ())] == 0.6
    assert got[("clipbot_model_load_seconds", ())] == 2.5
    assert got[("clipbot_model_info", (("device", "CPU"), ("model", "clip/ViT-B-16")))] == 1
    lookups["n"] = 20.0  # read at scrape time
    assert samples(metrics)[("clipbot_text_cache_hit_ratio", ())] == 0.8


def test_gateway_latency_is_the_heartbeat_latency_and_nan_while_unknown() -> None:
    latency = {"s": float("inf")}  # discord.py's before the first heartbeat ack, and while closing
    metrics = BotMetrics(Probes(gateway_latency_s=lambda: latency["s"]))
    assert math.isnan(samples(metrics)[("clipbot_gateway_latency_seconds", ())])
    latency["s"] = 0.042
    assert samples(metrics)[("clipbot_gateway_latency_seconds", ())] == 0.042
    latency["s"] = float("nan")  # discord.py's with no gateway at all
    assert math.isnan(samples(metrics)[("clipbot_gateway_latency_seconds", ())])


def test_two_bots_do_not_share_counters() -> None:
    first, second = BotMetrics(), BotMetrics()
    first.requests.labels("similar", "answered").inc()
    assert ("clipbot_requests_total", (("command", "similar"), ("outcome", "answered"))) not in samples(second)


async def test_health_and_readiness_endpoints() -> None:
    state = {"model": False}
    metrics = BotMetrics(Probes(ready={"model": lambda: state["model"], "gateway": lambda: True}))
    server = MetricsServer(metrics, "127.0.0.1", 0)
    await server.start()
    try:
        base = f"http://127.0.0.1:{server.port}"
        async with aiohttp.ClientSession() as session:
            async with session.get(f"{base}/healthz") as response:
                assert response.status == 200
            async with session.get(f"{base}/readyz") as response:
                assert response.status == 503
                assert await response.json() == {"ready": False, "checks": {"model": False, "gateway": True}}
            state["model"] = True
            async with session.get(f"{base}/readyz") as response:
                assert response.status == 200
            async with session.get(f"{base}/metrics") as response:
                assert response.status == 200
                assert response.headers["Content-Type"].startswith("text/plain")
                assert "clipbot_requests" in await response.text()
    finally:
        await server.close()
