"""The operator's view: /metrics moves with the traffic, /readyz follows the bot's state."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest

from tests.fakediscord.server import FakeDiscord
from tests.support.live_bot import running_bot
from tests.support.metrics import scrape, value
from tests.support.outcomes import wait_outcome
from tests.support.shapes import CLASSES, shape_png

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_metrics_move_during_traffic_and_readiness_follows_the_bot(fake: FakeDiscord) -> None:
    async with running_bot(fake, metrics_port=0) as bot, aiohttp.ClientSession() as session:
        assert bot.metrics_server is not None
        base = f"http://127.0.0.1:{bot.metrics_server.port}"
        async with session.get(f"{base}/readyz") as response:
            assert response.status == 200, await response.text()
        before = await scrape(session, base)
        assert value(before, "clipbot_model_load_seconds") > 0
        assert value(before, "clipbot_model_info", model="local:tiny-clip", device="CPU") == 1

        labels = ", ".join(CLASSES)
        records = [
            await fake.send_command(
                "classify", {"labels": labels}, attachments={"image": (shape_png(CLASSES[i], i), "s.png", "image/png")}
            )
            for i in range(6)
        ]
        records.append(await fake.send_command("similar", {"text": "red circle", "others": "blue square, cat"}))
        records.append(
            await fake.send_command(
                "classify",
                {"labels": "only one"},
                attachments={"image": (shape_png("red circle", 1), "s.png", "image/png")},
            )
        )
        await asyncio.gather(*(wait_outcome(r) for r in records))
        await fake.drop_gateway()
        await fake.wait_for(lambda f: f.resumes >= 1, 15)
        await asyncio.sleep(0.2)
        after = await scrape(session, base)

        assert value(after, "clipbot_requests_total", command="classify", outcome="answered") == 6
        assert value(after, "clipbot_requests_total", command="similar", outcome="answered") == 1
        assert value(after, "clipbot_requests_total", command="classify", outcome="refused") == 1
        assert value(after, "clipbot_request_seconds_count", command="classify", stage="total") == 6
        assert value(after, "clipbot_request_seconds_count", command="classify", stage="download") == 6
        assert (
            value(after, "clipbot_batch_size_sum", encoder="visual")
            - value(before, "clipbot_batch_size_sum", encoder="visual")
            == 6
        )
        assert value(after, "clipbot_queue_wait_seconds_count", encoder="visual") > value(
            before, "clipbot_queue_wait_seconds_count", encoder="visual"
        )
        assert value(after, "clipbot_text_cache_lookups") > value(before, "clipbot_text_cache_lookups")
        assert 0 < value(after, "clipbot_text_cache_hit_ratio") < 1, "repeated labels came from the cache"
        assert value(after, "clipbot_gateway_reconnects_total") >= 1
        assert value(after, "clipbot_queue_depth") == 0

        closing = asyncio.create_task(bot.shutdown())
        await asyncio.sleep(0)
        async with session.get(f"{base}/readyz") as response:
            assert response.status == 503 and (await response.json())["checks"]["gateway"] is False
        await closing
