"""The remote backend against real Roboflow Inference Servers (`tests/support/inference_server.py`), never a mock.

Two servers are shared by the test session (`inference_pool`: they take a while to start);
a test that kills them starts them again afterwards.
"""

from __future__ import annotations

import asyncio
import io
import itertools
import logging
import time
from collections.abc import AsyncIterator

import numpy as np
import pytest
import pytest_asyncio
from aiohttp import web

from bot.config import Settings
from bot.engine import ClipEngine
from bot.engine.decoding import ImageWorkers
from bot.engine.remote import UNREACHABLE, RemoteBackend, remote_resolution
from bot.errors import EngineError, StartupError
from bot.scoring import cosine_similarities, zero_shot_probabilities
from tests.support import clips
from tests.support.inference_server import (
    TINY_REMOTE_MODEL_ID,
    TINY_RESOLUTION,
    InferenceServer,
    free_port,
    revive,
)
from tests.support.settings import make_settings
from tests.support.shapes import render, shape_png

LABELS = ["red circle", "blue square", "green triangle", "yellow circle", "a dog", "nothing at all"]


def remote_settings(urls: list[str], **overrides: object) -> Settings:
    values: dict[str, object] = {
        "clip_backend": "remote",
        "inference_server_url": tuple(urls),
        "clip_model_id": TINY_REMOTE_MODEL_ID,
        "clip_remote_resolution": TINY_RESOLUTION,
        "clip_model_dir": None,
        "inference_timeout_s": 10.0,
        "inference_startup_timeout_s": 5.0,
    }
    values.update(overrides)
    return make_settings(**values)


def photo_jpeg(seed: int) -> bytes:
    """A non-square JPEG (640 x 480): the crop's resize is real work, done in our workers."""
    image = render("blue square", np.random.default_rng(seed), 480).resize((640, 480))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=90)
    return buffer.getvalue()


@pytest_asyncio.fixture(loop_scope="session")
async def servers(inference_pool: list[InferenceServer]) -> list[InferenceServer]:
    await revive(inference_pool)
    return inference_pool


@pytest_asyncio.fixture(loop_scope="session", scope="module")
async def workers() -> AsyncIterator[ImageWorkers]:
    pool = ImageWorkers(2, timeout_s=5.0, memory_mb=1024)
    await asyncio.to_thread(pool.start)
    yield pool
    await asyncio.to_thread(pool.close)


@pytest_asyncio.fixture(loop_scope="session")
async def backend(servers: list[InferenceServer], workers: ImageWorkers) -> AsyncIterator[RemoteBackend]:
    remote = RemoteBackend(remote_settings([s.url for s in servers]), workers)
    await remote.load()
    yield remote
    await remote.aclose()


async def test_load_reports_the_servers(backend: RemoteBackend) -> None:
    info = await backend.load()
    assert info.device == "remote: 2 inference servers"
    assert info.resolution == TINY_RESOLUTION
    assert await backend.problem() is None


async def test_scores_equal_the_local_backend(backend: RemoteBackend, engine: ClipEngine) -> None:
    """Same tiny model, same images and labels: cosines and zero-shot probabilities within 1e-4."""
    prompts = [f"a photo of a {label}" for label in LABELS]
    remote_text = np.stack(await backend.embed_texts(prompts))
    local_text = await engine.embed_texts(prompts)
    clip = clips.encode_clip(clips.shape_frames(LABELS[:3], per_label=2))  # a clip: its frames averaged alike
    uploads = [shape_png(label, seed) for seed, label in enumerate(LABELS[:4])] + [photo_jpeg(7), photo_jpeg(8), clip]
    for data in uploads:
        remote_image = (await backend.embed_image(data, thumbnail=False)).vector
        local_image = await engine.embed_image(data)
        remote_cos = cosine_similarities(remote_image, remote_text)
        local_cos = cosine_similarities(local_image, local_text)
        np.testing.assert_allclose(remote_cos, local_cos, atol=1e-4)
        np.testing.assert_allclose(zero_shot_probabilities(remote_cos), zero_shot_probabilities(local_cos), atol=1e-4)


async def test_the_right_label_wins_remotely(backend: RemoteBackend) -> None:
    """Not just equal to local: the tiny model classifies its shapes through the server."""
    prompts = [f"a photo of a {label}" for label in LABELS[:4]]
    text = np.stack(await backend.embed_texts(prompts))
    for seed, label in enumerate(LABELS[:4]):
        embedded = await backend.embed_image(shape_png(label, 100 + seed, 160), thumbnail=True)
        vector, thumbnail = embedded.vector, embedded.thumbnail
        assert LABELS[int(np.argmax(cosine_similarities(vector, text)))] == label
        assert thumbnail is not None and thumbnail.startswith(b"\xff\xd8")  # the reply's JPEG


async def test_requests_are_spread_over_both_servers(backend: RemoteBackend, servers: list[InferenceServer]) -> None:
    seen: list[str] = []
    pick = backend._pick

    def spy(tries):  # type: ignore[no-untyped-def]
        server = pick(tries)
        seen.append(server.url)
        return server

    backend._pick = spy  # type: ignore[method-assign]
    await asyncio.gather(*(backend.embed_texts([f"phrase {i}"]) for i in range(8)))
    assert {s.url for s in servers} == set(seen)


async def test_a_bad_upload_is_the_users_line_not_a_server_problem(backend: RemoteBackend) -> None:
    from bot.errors import ImageError

    with pytest.raises(ImageError):
        await backend.embed_image(b"not an image at all", thumbnail=False)
    assert backend.retries == 0


async def test_no_server_at_start_up_is_one_line(workers: ImageWorkers) -> None:
    dead_url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    remote = RemoteBackend(remote_settings([dead_url], inference_startup_timeout_s=0.5), workers)
    with pytest.raises(StartupError) as caught:
        await remote.load()
    message = str(caught.value)
    assert "\n" not in message and dead_url in message and "INFERENCE_SERVER_URL" in message
    await remote.aclose()


async def test_a_server_that_does_not_answer_in_time_is_retried_elsewhere(
    servers: list[InferenceServer], workers: ImageWorkers, caplog: pytest.LogCaptureFixture
) -> None:
    """A listener that accepts and never answers (a hung server): the timeout moves the request on."""
    hung = await asyncio.start_server(lambda reader, writer: None, "127.0.0.1", 0)
    hung_url = f"http://127.0.0.1:{hung.sockets[0].getsockname()[1]}"
    settings = remote_settings([hung_url, servers[0].url], inference_timeout_s=0.5, inference_startup_timeout_s=1)
    remote = RemoteBackend(settings, workers)
    try:
        await remote.load()  # the live server answers; the hung one's warm-up times out in the background
        await asyncio.gather(*remote._warmups)
        stuck = remote._servers[0]
        assert not stuck.reachable and (stuck.last_error or "").startswith("no answer within")
        stuck.failed_at = -1e9  # no longer avoided: the next request goes to it first
        remote._turn = itertools.count()
        with caplog.at_level(logging.WARNING, logger="bot.engine.remote"):
            started = time.monotonic()
            [row] = await remote.embed_texts(["a photo of a red circle"])
            took = time.monotonic() - started
        assert row.shape == (64,)
        assert remote.retries == 1
        assert f"{hung_url} failed (try 1): no answer within 0.5 s" in caplog.text
        assert took < 10  # bounded by the timeout, not hanging
    finally:
        await remote.aclose()
        hung.close()


async def test_only_retries_within_the_bound(workers: ImageWorkers) -> None:
    """Three dead servers and one retry: two tries, then the line."""
    urls = [f"http://127.0.0.1:{free_port()}" for _ in range(3)]  # nothing listens there
    remote = RemoteBackend(remote_settings(urls, inference_retries=1), workers)
    remote._resolution = TINY_RESOLUTION  # not loaded: no server to load from
    with pytest.raises(EngineError, match="unreachable"):
        await remote.embed_texts(["x"])
    assert remote.retries == 1
    assert sum(s.failed_at > 0 for s in remote._servers) == 2
    await remote.aclose()


def test_resolution_known_or_asked_for() -> None:
    def side(model_id: str) -> int:
        return remote_resolution(remote_settings(["http://x"], clip_model_id=model_id, clip_remote_resolution=None))

    assert side("clip/ViT-B-16") == 224
    assert side("clip/ViT-L-14-336px") == 336
    with pytest.raises(StartupError, match="CLIP_REMOTE_RESOLUTION"):
        side("clip/unknown")


def test_remote_needs_a_url() -> None:
    with pytest.raises(ValueError, match="INFERENCE_SERVER_URL"):
        make_settings(clip_backend="remote")
    settings = make_settings(clip_backend="remote", inference_server_url="http://a:9001/, http://b:9001")
    assert settings.inference_server_url == ("http://a:9001", "http://b:9001")


async def test_the_api_key_is_passed_on_and_never_logged(
    servers: list[InferenceServer], workers: ImageWorkers, caplog: pytest.LogCaptureFixture
) -> None:
    dead_url = f"http://127.0.0.1:{free_port()}"
    key = "rf-secret-key-0123456789"
    settings = remote_settings([dead_url, servers[0].url], roboflow_api_key=key)
    remote = RemoteBackend(settings, workers)
    try:
        with caplog.at_level(logging.DEBUG):
            await remote.load()
            remote._turn = itertools.count()  # the dead server first
            remote._servers[0].failed_at = -1e9
            [row] = await remote.embed_texts(["a photo of a red circle"])
            problem = await remote.problem()
        assert row.shape == (64,) and problem is None
        assert remote.retries == 1 and dead_url in caplog.text
        assert key not in caplog.text and key not in (remote._servers[0].last_error or "")
    finally:
        await remote.aclose()


async def test_http_500_is_retried_on_the_other_server_then_one_line(
    servers: list[InferenceServer], workers: ImageWorkers, caplog: pytest.LogCaptureFixture
) -> None:
    """Both real servers answer HTTP 500 for a model they cannot load: each is tried once, then the line."""
    settings = remote_settings([s.url for s in servers], clip_model_id="clip/not-in-the-cache", inference_retries=1)
    remote = RemoteBackend(settings, workers)
    remote._resolution = TINY_RESOLUTION  # not loaded: no server can load this model
    try:
        with caplog.at_level(logging.WARNING, logger="bot.engine.remote"), pytest.raises(EngineError) as caught:
            await remote.embed_image(shape_png("red circle", 3), thumbnail=False)
        assert str(caught.value) == UNREACHABLE and remote.retries == 1
        for server in servers:
            assert f"{server.url} failed (try " in caplog.text
        assert [s.last_error for s in remote._servers] == ["HTTP 500", "HTTP 500"]
    finally:
        await remote.aclose()


async def test_a_busy_server_is_tried_elsewhere_then_one_line(
    servers: list[InferenceServer], workers: ImageWorkers, caplog: pytest.LogCaptureFixture
) -> None:
    """A server that answers every call with 503 (overloaded): inference_sdk retries it, then we move on."""
    calls = 0

    async def overloaded(request: web.Request) -> web.Response:
        nonlocal calls
        calls += 1
        return web.json_response({"message": "overloaded"}, status=503)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", overloaded)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    busy_url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    remote = RemoteBackend(remote_settings([busy_url, servers[0].url], inference_retries=1), workers)
    remote._resolution = TINY_RESOLUTION
    remote._turn = itertools.count()  # the busy server is asked first
    try:
        with caplog.at_level(logging.WARNING, logger="bot.engine.remote"):
            row = (await remote.embed_image(shape_png("red circle", 3), thumbnail=False)).vector
        assert row.shape == (64,) and remote.retries == 1 and calls >= 1
        assert f"{busy_url} failed (try 1): busy (HTTP 429/503/504" in caplog.text
        alone = RemoteBackend(remote_settings([busy_url], inference_retries=0), workers)
        alone._resolution = TINY_RESOLUTION
        with pytest.raises(EngineError) as caught:
            await alone.embed_image(shape_png("red circle", 3), thumbnail=False)
        assert str(caught.value) == UNREACHABLE
        await alone.aclose()
    finally:
        await remote.aclose()
        await runner.cleanup()


async def test_failover_when_one_server_dies(servers: list[InferenceServer], workers: ImageWorkers) -> None:
    """Kill one of two servers: every request still gets its embedding, from the other one.

    Last in this module: it kills both of the session's servers (the next user revives them)."""
    first, second = servers
    remote = RemoteBackend(remote_settings([first.url, second.url]), workers)
    await remote.load()
    try:
        before = np.stack(await remote.embed_texts(["a photo of a red circle"]))
        first.kill()
        results = await asyncio.gather(*(remote.embed_texts([f"a photo of a red circle {i}"]) for i in range(6)))
        assert all(len(rows) == 1 for rows in results)
        again = np.stack(await remote.embed_texts(["a photo of a red circle"]))
        np.testing.assert_allclose(again, before, atol=1e-5)
        assert remote.reachable
        assert await remote.problem() is None  # one server answers: still ready
        second.kill()
        with pytest.raises(EngineError) as caught:
            await remote.embed_texts(["a photo of a blue square"])
        assert str(caught.value) == UNREACHABLE
        assert (await remote.problem() or "").startswith("no CLIP inference server answers")
        assert not remote.reachable
    finally:
        await remote.aclose()  # the `servers` fixture starts them again for the next test
