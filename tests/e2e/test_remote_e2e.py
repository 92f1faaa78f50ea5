"""The bot with `CLIP_BACKEND=remote`: /classify and /similar through the Discord stand-in, CLIP on
two real Roboflow Inference Servers (`tests/support/inference_server.py`), one of them killed mid-run."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import numpy as np
import pytest
import pytest_asyncio

from bot.engine.remote import UNREACHABLE
from tests.fakediscord.server import FakeDiscord
from tests.support.inference_server import TINY_REMOTE_MODEL_ID, TINY_RESOLUTION, InferenceServer, revive
from tests.support.live_bot import running_bot
from tests.support.outcomes import final_messages, outcome, wait_outcome
from tests.support.shapes import CLASSES, shape_png

pytestmark = pytest.mark.asyncio(loop_scope="session")

ALL_LABELS = ", ".join(CLASSES)


@pytest_asyncio.fixture(loop_scope="session")
async def servers(inference_pool: list[InferenceServer]) -> list[InferenceServer]:
    await revive(inference_pool)
    return inference_pool


def remote(servers: list[InferenceServer], **overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "clip_backend": "remote",
        "inference_server_url": tuple(s.url for s in servers),
        "clip_model_id": TINY_REMOTE_MODEL_ID,
        "clip_remote_resolution": TINY_RESOLUTION,
        "clip_model_dir": None,
        "inference_timeout_s": 10.0,
        "inference_startup_timeout_s": 30.0,
    }
    values.update(overrides)
    return values


async def test_classify_and_similar_answer_from_the_inference_servers(
    fake: FakeDiscord, servers: list[InferenceServer]
) -> None:
    async with running_bot(fake, **remote(servers)) as bot:
        assert bot.engine.info is not None and bot.engine.info.device == "remote: 2 inference servers"
        rec = await fake.send_command(
            "classify",
            {"labels": ALL_LABELS},
            attachments={"image": (shape_png("blue triangle", 1), "shape.png", "image/png")},
        )
        kind, message = await wait_outcome(rec)
        phrases = {"text": "a photo of a red circle", "others": "a photo of a blue square, a photo of a red circle"}
        similar = await fake.send_command("similar", phrases)
        similar_kind, similar_message = await wait_outcome(similar)
    assert kind == "answer" and final_messages(rec) == 1
    embed = message["embeds"][0]
    assert embed["title"] == "Looks like: blue triangle"
    assert embed["thumbnail"]["url"] == "attachment://thumbnail.jpg"  # made by our decode workers
    assert "remote: 2 inference servers" in embed["footer"]["text"]
    assert similar_kind == "answer" and final_messages(similar) == 1
    first = similar_message["embeds"][0]["description"].splitlines()[0]
    assert first == "` 1.` **a photo of a red circle** · cos 1.0000"


async def test_one_server_killed_mid_run_every_interaction_gets_one_right_answer(
    fake: FakeDiscord, servers: list[InferenceServer]
) -> None:
    total, concurrency, kill_after = 36, 8, 10
    rng = np.random.default_rng(5)
    async with running_bot(fake, max_pending=64, **remote(servers)):
        queue: asyncio.Queue[int] = asyncio.Queue()
        for index in range(total):
            queue.put_nowait(index)
        records: list = []
        expected: dict[int, str] = {}
        similar_expected: dict[int, str] = {}

        async def user() -> None:
            while not queue.empty():
                index = queue.get_nowait()
                label = CLASSES[index % len(CLASSES)]
                if index % 4 == 3:
                    # New phrases every time: the text cache cannot hide the servers.
                    others = f"a photo of a {label}, a drawing number {index}"
                    rec = await fake.send_command("similar", {"text": f"a photo of a {label}", "others": others})
                    similar_expected[rec.id] = f"a photo of a {label}"
                else:
                    image = shape_png(label, int(rng.integers(1 << 30)))
                    rec = await fake.send_command(
                        "classify", {"labels": ALL_LABELS}, attachments={"image": (image, f"{index}.png", "image/png")}
                    )
                    expected[rec.id] = label
                records.append(rec)
                await wait_outcome(rec, timeout=60)

        async def kill_one() -> None:
            await fake.wait_for(lambda _: sum(outcome(r) is not None for r in records) >= kill_after, 60)
            servers[0].kill()

        await asyncio.gather(kill_one(), *(user() for _ in range(concurrency)))
    assert not servers[0].alive
    assert len(records) == total
    for rec in records:
        assert final_messages(rec) == 1, f"{rec} got {final_messages(rec)} final replies"
        kind, message = outcome(rec) or ("none", {})
        assert kind == "answer", message
        if rec.id in expected:
            assert message["embeds"][0]["title"] == f"Looks like: {expected[rec.id]}"
        else:
            first = message["embeds"][0]["description"].splitlines()[0]
            assert first.startswith(f"` 1.` **{similar_expected[rec.id]}**")


async def test_all_servers_down_is_one_line_and_readyz_says_so(
    fake: FakeDiscord, inference_pool: list[InferenceServer]
) -> None:
    """Last here: it kills the servers still alive (restarting the one killed above would cost ~20 s)."""
    servers = [server for server in inference_pool if server.alive] or inference_pool
    await revive(servers)
    async with running_bot(fake, metrics_port=0, **remote(servers)) as bot, aiohttp.ClientSession() as session:
        assert bot.metrics_server is not None
        readyz = f"http://127.0.0.1:{bot.metrics_server.port}/readyz"
        async with session.get(readyz) as response:
            assert response.status == 200, await response.text()
        for server in servers:
            server.kill()
        rec = await fake.send_command("similar", {"text": "a brand new phrase", "others": "another new one"})
        kind, message = await wait_outcome(rec)
        async with session.get(readyz) as response:
            status, body = response.status, await response.json()
    assert kind == "error" and final_messages(rec) == 1
    assert UNREACHABLE in message["content"]
    assert status == 503 and body["checks"]["backend"] is False
