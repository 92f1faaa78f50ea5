"""Issue 13's "done when" under load: /metrics moves while the load runs, and a SIGTERM in the
middle of it loses no accepted request (each gets exactly one final reply)."""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import signal

import aiohttp
import numpy as np
import pytest

from bot.discord.client import RESTARTING, install_signal_handlers
from tests.fakediscord.server import FakeDiscord
from tests.support.live_bot import LOAD_HEARTBEAT_MS, running_bot, slow_down_images
from tests.support.metrics import scrape, value
from tests.support.outcomes import EPHEMERAL, final_messages, outcome, wait_outcome
from tests.support.shapes import CLASSES, shape_png

pytestmark = pytest.mark.asyncio(loop_scope="session")

ALL_LABELS = ", ".join(CLASSES)


@pytest.mark.parametrize("fake", [LOAD_HEARTBEAT_MS], indirect=True)
async def test_metrics_move_under_load_and_sigterm_mid_load_loses_nothing(fake: FakeDiscord) -> None:
    total, concurrency, signal_after = 48, 16, 24
    rng = np.random.default_rng(13)
    images = {i: shape_png(CLASSES[i % len(CLASSES)], int(rng.integers(1 << 30))) for i in range(total)}
    async with running_bot(fake, metrics_port=0, max_pending=64, shutdown_grace_s=30) as bot:
        assert bot.metrics_server is not None
        base = f"http://127.0.0.1:{bot.metrics_server.port}"
        slow_down_images(bot, 0.1)  # a busy model: requests queue up, as under real load
        records: list = []
        expected: dict[int, str] = {}
        scrapes: list[dict] = []
        scraped_in_load: list[int] = []  # how many scrapes came before SIGTERM
        signalled = asyncio.Event()
        queue: asyncio.Queue[int] = asyncio.Queue()
        for index in range(total):
            queue.put_nowait(index)

        async def user() -> None:
            while not queue.empty() and not signalled.is_set():
                index = queue.get_nowait()
                label = CLASSES[index % len(CLASSES)]
                if index % 6 == 5:
                    rec = await fake.send_command("similar", {"text": label, "others": "red circle, blue square"})
                else:
                    image = {"image": (images[index], f"{index}.png", "image/png")}
                    rec = await fake.send_command("classify", {"labels": ALL_LABELS}, attachments=image)
                    expected[rec.id] = label
                records.append(rec)
                await wait_outcome(rec, timeout=60)

        async def scraper(session: aiohttp.ClientSession) -> None:
            """Through the load and the drain, until the bot (and its metrics port) closes."""
            while not bot.is_closed():
                with contextlib.suppress(aiohttp.ClientError, OSError):
                    scrapes.append(await scrape(session, base))
                await asyncio.sleep(0.05)

        async def terminate() -> None:
            await fake.wait_for(lambda _: sum(bool(r.callbacks) for r in records) >= signal_after, 60)
            scraped_in_load.append(len(scrapes))
            signalled.set()
            os.kill(os.getpid(), signal.SIGTERM)

        handled = install_signal_handlers(bot)
        try:
            async with aiohttp.ClientSession() as session:
                before = await scrape(session, base)
                users = [asyncio.create_task(user()) for _ in range(concurrency)]
                scraping = asyncio.create_task(scraper(session))
                await terminate()
                await asyncio.sleep(0.05)  # the handler runs on this loop
                assert bot.draining
                accepted = [r for r in records if r.callbacks and r.callbacks[0][1]["type"] == 5]
                late = [await fake.send_command("similar", {"text": "cat", "others": "dog, car"}) for _ in range(2)]
                for rec in late:
                    kind, message = await wait_outcome(rec, 10)
                    assert kind == "error" and RESTARTING in message["content"] and message["flags"] & EPHEMERAL
                await asyncio.gather(*users)
                await asyncio.wait_for(scraping, 30)  # ends once the bot has closed
            assert bot.is_closed()
        finally:
            loop = asyncio.get_running_loop()
            for sig in handled:
                loop.remove_signal_handler(sig)

    # SIGTERM mid-load: every request accepted before it got exactly one final reply, the answer.
    assert len(accepted) >= signal_after
    for rec in accepted:
        assert final_messages(rec) == 1, f"{rec} got {final_messages(rec)} final replies"
        kind, message = outcome(rec) or ("none", {})
        assert kind == "answer", message
        if rec.id in expected:
            assert message["embeds"][0]["title"].startswith("Looks like: ")
    assert all(final_messages(rec) == 1 for rec in records + late)

    # /metrics, parsed with prometheus_client's parser, moved while the load ran.
    assert len(scrapes) >= 3
    answered = [value(s, "clipbot_requests_total", command="classify", outcome="answered") for s in scrapes]
    assert any(0 < a < answered[-1] for a in answered), "answers counted as they happened"
    assert max(value(s, "clipbot_queue_depth") for s in scrapes) > 1, "the queue depth showed the backlog"
    last = scrapes[-1]
    for name in ("clipbot_queue_wait_seconds_count", "clipbot_model_seconds_count", "clipbot_batch_size_count"):
        assert value(last, name, encoder="visual") > value(before, name, encoder="visual"), name
    assert value(last, "clipbot_request_seconds_count", command="classify", stage="total") > 0
    assert value(last, "clipbot_request_seconds_count", command="classify", stage="download") > 0
    assert value(last, "clipbot_text_cache_lookups") > value(before, "clipbot_text_cache_lookups")
    assert 0 < value(last, "clipbot_text_cache_hit_ratio") < 1
    # Measured from heartbeat acks while the gateway was up (after, it may say NaN: unknown).
    latency = value(scrapes[scraped_in_load[0] - 1], "clipbot_gateway_latency_seconds")
    assert math.isfinite(latency) and latency > 0, "gateway latency from heartbeat acks"
    assert value(last, "clipbot_model_info", model="local:tiny-clip", device="CPU") == 1
    assert value(last, "clipbot_model_load_seconds") > 0
