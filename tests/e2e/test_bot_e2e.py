"""The real bot, through the real discord.py client, against the Discord stand-in."""

from __future__ import annotations

import asyncio
import io
import logging
import statistics
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from benchmarks.probes import loop_lag_probe
from bot.config import Settings
from bot.engine import ClipEngine
from tests.fakediscord.payloads import MEMBER_PERMISSIONS
from tests.fakediscord.server import FakeDiscord
from tests.support.badimages import corpus
from tests.support.live_bot import LOAD_HEARTBEAT_MS, running_bot, slow_down_images
from tests.support.outcomes import EPHEMERAL, embed_text, final_messages, outcome, wait_outcome
from tests.support.shapes import CLASSES, shape_png

pytestmark = pytest.mark.asyncio(loop_scope="session")

ALL_LABELS = ", ".join(CLASSES)


async def test_classify_is_acknowledged_then_answered_with_the_right_label(
    fake: FakeDiscord, engine: ClipEngine
) -> None:
    async with running_bot(fake, engine=engine):
        rec = await fake.send_command(
            "classify",
            {"labels": ALL_LABELS},
            attachments={"image": (shape_png("blue triangle", 1), "shape.png", "image/png")},
        )
        kind, message = await wait_outcome(rec)
    assert kind == "answer"
    assert rec.ack_latency is not None and rec.ack_latency < 3.0
    assert rec.callbacks[0][1]["type"] == 5, "deferred (thinking) first"
    embed = message["embeds"][0]
    assert embed["title"] == "Looks like: blue triangle"
    assert embed["description"].splitlines()[0].startswith("` 1.` **blue triangle** · ")
    # A small JPEG sent with the reply, not a link to the upload (its signed URL expires).
    assert embed["thumbnail"]["url"] == "attachment://thumbnail.jpg"
    [thumbnail] = [f for f in rec.files if f.filename == "thumbnail.jpg"]
    picture = Image.open(io.BytesIO(thumbnail.data))
    assert picture.format == "JPEG" and max(picture.size) <= 256 and len(thumbnail.data) < 64 * 1024
    assert "local:tiny-clip · CPU ·" in embed["footer"]["text"]
    assert message.get("allowed_mentions") == {"parse": []}
    assert final_messages(rec) == 1


async def test_similar_ranks_phrases(fake: FakeDiscord, engine: ClipEngine) -> None:
    async with running_bot(fake, engine=engine):
        rec = await fake.send_command(
            "similar",
            {"text": "a photo of a red circle", "others": "a photo of a blue square, a photo of a red circle"},
        )
        kind, message = await wait_outcome(rec)
    assert kind == "answer"
    assert rec.ack_latency is not None and rec.ack_latency < 3.0
    first_line = message["embeds"][0]["description"].splitlines()[0]
    assert first_line == "` 1.` **a photo of a red circle** · cos 1.0000"


async def test_commands_are_synced_once_to_the_configured_guild(fake: FakeDiscord, engine: ClipEngine) -> None:
    async with running_bot(fake, engine=engine):
        await fake.drop_gateway()
        await fake.wait_for(lambda f: f.resumes >= 1, 15)
        rec = await fake.send_command("similar", {"text": "cat", "others": "dog"})
        await wait_outcome(rec)
    assert len(fake.command_syncs) == 1, "synced at start-up only, not on reconnect"
    sync = fake.command_syncs[0]
    assert sync.scope == fake.guild_id
    assert sorted(c["name"] for c in sync.commands) == [
        "Classify image",
        "Find similar images",
        "about",
        "autotag",
        "classify",
        "compare",
        "forget-me",
        "help",
        "index",
        "labels",
        "search",
        "similar",
    ]


async def test_commands_are_synced_globally_without_a_guild(fake: FakeDiscord, engine: ClipEngine) -> None:
    async with running_bot(fake, engine=engine, discord_guild_id=None):
        pass
    assert [s.scope for s in fake.command_syncs] == ["global"]
    server_only = {"index", "search", "Find similar images", "autotag"}  # image search and autotag are per server
    for command in fake.command_syncs[0].commands:
        # Installable to servers and user accounts; usable in servers, bot DMs and group DMs.
        assert sorted(command["integration_types"]) == [0, 1], command["name"]
        expected = [0] if command["name"] in server_only else [0, 1, 2]
        assert sorted(command["contexts"]) == expected, command["name"]


async def test_mentions_in_labels_are_inert(fake: FakeDiscord, engine: ClipEngine) -> None:
    async with running_bot(fake, engine=engine):
        rec = await fake.send_command(
            "classify",
            {"labels": "@everyone, <@123456789012345678>, **red circle**"},
            attachments={"image": (shape_png("red circle", 2), "a.png", "image/png")},
        )
        kind, message = await wait_outcome(rec)
    assert kind == "answer"
    text = embed_text(message)
    assert "@everyone" not in text and "<@123456789012345678>" not in text
    assert message.get("allowed_mentions") == {"parse": []}
    assert all(body.get("allowed_mentions", {"parse": []}) == {"parse": []} for _, body in rec.edits)


@pytest.mark.parametrize(
    ("options", "attachment", "expected"),
    [
        ({"labels": "just one"}, (b"", "x.png", "image/png"), "at least 2"),
        ({"labels": "a, b", "template": "no placeholder"}, None, "exactly once"),
        ({"labels": "a, b"}, (b"hello", "notes.txt", "text/plain"), "not an image"),
        ({"labels": "a, b"}, (corpus()["text-renamed-png"], "cat.png", "image/png"), "not an image I can read"),
        ({"labels": "a, b"}, (corpus()["truncated-jpeg"], "cut.jpg", "image/jpeg"), "truncated"),
        ({"labels": "a, b"}, (corpus()["png-50000x50000"], "bomb.png", "image/png"), "too large"),
        ({"labels": "a, b"}, (corpus()["zero-byte"], "empty.png", "image/png"), "empty"),
    ],
)
async def test_bad_input_gets_an_ephemeral_line_and_the_next_request_is_served(
    fake: FakeDiscord,
    engine: ClipEngine,
    options: dict[str, str],
    attachment: tuple[bytes, str, str] | None,
    expected: str,
) -> None:
    async with running_bot(fake, engine=engine):
        image = attachment or (shape_png("red circle", 3), "ok.png", "image/png")
        bad = await fake.send_command("classify", options, attachments={"image": image})
        kind, message = await wait_outcome(bad)
        assert kind == "error"
        if bad.callbacks[0][1].get("type") == 4:  # refused before deferring: private
            assert (message.get("flags") or 0) & EPHEMERAL
        else:  # found after the deferral: the "thinking" message becomes the line (documented way)
            assert not bad.followups and not bad.deletes
        assert expected in message["content"] and "\n" not in message["content"]
        assert final_messages(bad) == 1
        good = await fake.send_command(
            "classify",
            {"labels": ALL_LABELS},
            attachments={"image": (shape_png("green square", 4), "g.png", "image/png")},
        )
        kind, message = await wait_outcome(good)
    assert kind == "answer" and message["embeds"][0]["title"] == "Looks like: green square"


@pytest.mark.parametrize("fake", [LOAD_HEARTBEAT_MS], indirect=True)
async def test_load_100_interactions_at_concurrency_16(fake: FakeDiscord, capsys: pytest.CaptureFixture[str]) -> None:
    """Every interaction gets exactly one ack and one final reply; the loop stays free.

    The gateway heartbeat is fast here (100 ms) so its rhythm during the load is
    a second, independent witness of a free event loop.
    """
    total, concurrency = 100, 16
    async with running_bot(fake, max_pending=64) as bot:
        # The steady state: the one-off session swap after start-up (a few CPU-seconds of
        # onnx graph work, some holding the GIL) must not overlap the measured load.
        await bot.engine.settled()
        heartbeats_before = len(fake.heartbeats)
        rng = np.random.default_rng(7)
        pending: asyncio.Queue[int] = asyncio.Queue()
        for index in range(total):
            pending.put_nowait(index)
        records = []
        expected: dict[int, str] = {}
        # Images are made before the clock starts: only the bot's work is measured.
        images = {i: shape_png(CLASSES[i % len(CLASSES)], int(rng.integers(1 << 30))) for i in range(total)}

        async def user(worker: int) -> None:
            while not pending.empty():
                index = pending.get_nowait()
                label = CLASSES[index % len(CLASSES)]
                if index % 5 == 4:
                    rec = await fake.send_command(
                        "similar", {"text": label, "others": "red circle, blue square"}, user_id=10_000 + index
                    )
                else:
                    rec = await fake.send_command(
                        "classify",
                        {"labels": ALL_LABELS},
                        attachments={"image": (images[index], f"{index}.png", "image/png")},
                        user_id=10_000 + index,
                    )
                    expected[rec.id] = label
                records.append(rec)
                await wait_outcome(rec, timeout=60)

        async with loop_lag_probe(0.005) as lags:
            started = time.perf_counter()
            await asyncio.gather(*(user(w) for w in range(concurrency)))
            wall = time.perf_counter() - started
        heartbeats = fake.heartbeats[heartbeats_before:]
        batches = list(bot.engine.backend.image_batcher.batch_sizes)

    assert len(records) == total
    assert len({r.id for r in records}) == total
    for rec in records:
        assert len(rec.callbacks) == 1, f"{rec} acknowledged {len(rec.callbacks)} times"
        assert final_messages(rec) == 1, f"{rec} got {final_messages(rec)} final replies"
        kind, message = outcome(rec) or ("none", {})
        assert kind == "answer"
        if rec.id in expected:
            assert message["embeds"][0]["title"].startswith("Looks like: ")
    correct = sum(
        outcome(r)[1]["embeds"][0]["title"] == f"Looks like: {expected[r.id]}"  # type: ignore[index]
        for r in records
        if r.id in expected
    )
    acks = [r.ack_latency for r in records if r.ack_latency is not None]
    gaps = np.diff(heartbeats) if len(heartbeats) > 1 else np.array([0.0])
    lag_p99 = float(np.percentile(lags, 99)) * 1000
    with capsys.disabled():
        print(
            f"\nload: {total} interactions, concurrency {concurrency}, {wall:.1f} s ({total / wall:.1f}/s); "
            f"ack worst {max(acks) * 1000:.0f} ms, median {statistics.median(acks) * 1000:.0f} ms; "
            f"loop lag p99 {lag_p99:.1f} ms, max {max(lags) * 1000:.1f} ms; "
            f"heartbeats {len(heartbeats)}, largest gap {gaps.max() * 1000:.0f} ms (interval {LOAD_HEARTBEAT_MS} ms); "
            f"image batches {len(batches)}, mean size {statistics.mean(batches):.2f}; "
            f"correct labels {correct}/{len(expected)}"
        )
    assert max(acks) < 3.0, "every interaction acknowledged within Discord's 3 s"
    # Measured here: p99 ~15 ms, max ~20 ms. A full garbage collection of the
    # start-up heap (~180 ms, what gc.freeze() prevents) or any CLIP work on the
    # loop would break these bounds.
    assert lag_p99 < 60, "the event loop stayed responsive"
    assert max(lags) < 0.15, "the event loop was never blocked for long"
    assert len(heartbeats) >= 3 and gaps.max() < 3 * LOAD_HEARTBEAT_MS / 1000, "heartbeats kept their rhythm"
    assert correct >= 0.9 * len(expected)


async def test_rate_limited_reply_is_waited_out(fake: FakeDiscord, engine: ClipEngine) -> None:
    async with running_bot(fake, engine=engine):
        fake.fail_next("PATCH", r"/webhooks/\d+/[^/]+/messages/@original", status=429, retry_after=0.6)
        rec = await fake.send_command("similar", {"text": "cat", "others": "dog, car"})
        kind, _ = await wait_outcome(rec)
    assert kind == "answer"
    patches = [r for r in fake.requests if r.method == "PATCH" and "@original" in r.path]
    assert [p.status for p in patches][:2] == [429, 200]
    assert patches[1].time - patches[0].time >= 0.55, "discord.py waited retry_after before retrying"


async def test_server_error_on_the_reply_is_retried(fake: FakeDiscord, engine: ClipEngine) -> None:
    async with running_bot(fake, engine=engine):
        fake.fail_next("PATCH", r"/webhooks/\d+/[^/]+/messages/@original", status=500)
        rec = await fake.send_command("similar", {"text": "cat", "others": "dog, car"})
        kind, _ = await wait_outcome(rec)
    assert kind == "answer"
    statuses = [r.status for r in fake.requests if r.method == "PATCH" and "@original" in r.path]
    assert statuses[:2] == [500, 200]


async def test_dropped_gateway_is_resumed_and_the_bot_keeps_answering(fake: FakeDiscord, engine: ClipEngine) -> None:
    async with running_bot(fake, engine=engine):
        await fake.drop_gateway()
        await fake.wait_for(lambda f: f.resumes >= 1, 15)
        rec = await fake.send_command(
            "classify",
            {"labels": ALL_LABELS},
            attachments={"image": (shape_png("yellow square", 5), "y.png", "image/png")},
        )
        kind, message = await wait_outcome(rec)
    assert fake.identifies == 1 and fake.resumes == 1
    assert kind == "answer" and message["embeds"][0]["title"] == "Looks like: yellow square"


async def test_slow_cdn_is_cut_off_with_a_clear_line(fake: FakeDiscord, engine: ClipEngine) -> None:
    async with running_bot(fake, engine=engine, download_timeout_s=0.5):
        fake.cdn_delay = 2.0
        rec = await fake.send_command(
            "classify", {"labels": "a, b"}, attachments={"image": (shape_png("red circle", 1), "slow.png", "image/png")}
        )
        kind, message = await wait_outcome(rec)
    assert kind == "error" and "took longer than 0.5 s" in message["content"]
    assert rec.ack_latency is not None and rec.ack_latency < 3.0, "acknowledged before the download"


async def test_full_queue_answers_busy_and_others_are_served(fake: FakeDiscord) -> None:
    async with running_bot(fake, max_pending=2) as bot:
        slow_down_images(bot, 0.8)
        records = []
        for index in range(5):
            records.append(
                await fake.send_command(
                    "classify",
                    {"labels": ALL_LABELS},
                    attachments={"image": (shape_png("red circle", index), "r.png", "image/png")},
                    user_id=20_000 + index,
                )
            )
            await asyncio.sleep(0.05)
        outcomes = [await wait_outcome(r) for r in records]
    answers = [m for kind, m in outcomes if kind == "answer"]
    busy = [m for kind, m in outcomes if kind == "error"]
    assert len(answers) == 2 and len(busy) == 3
    assert all("busy" in m["content"] and (m.get("flags") or 0) & EPHEMERAL for m in busy)
    assert all(a["embeds"][0]["title"] == "Looks like: red circle" for a in answers)


async def test_engine_failure_is_reported_and_the_next_request_served(fake: FakeDiscord) -> None:
    async with running_bot(fake) as bot:
        real_run = bot.engine.backend._run_visual
        calls = 0

        def failing_once(batch):  # type: ignore[no-untyped-def]
            nonlocal calls
            calls += 1
            if calls == 1:
                raise RuntimeError("[ONNXRuntimeError] : 6 : RUNTIME_EXCEPTION : CUDA out of memory")
            return real_run(batch)

        bot.engine.backend.image_batcher._run_batch = failing_once
        image = {"image": (shape_png("green circle", 9), "g.png", "image/png")}
        failed = await fake.send_command("classify", {"labels": ALL_LABELS}, attachments=image)
        kind, message = await wait_outcome(failed)
        assert kind == "error" and "CLIP failed on my side" in message["content"]
        assert "ONNXRuntimeError" not in message["content"]
        served = await fake.send_command("classify", {"labels": ALL_LABELS}, attachments=image)
        kind, message = await wait_outcome(served)
    assert kind == "answer" and message["embeds"][0]["title"] == "Looks like: green circle"


async def test_request_timeout_is_respected(fake: FakeDiscord) -> None:
    """Work that outlives REQUEST_TIMEOUT_S (kept under the token's 15 minutes) is abandoned with a reply."""
    async with running_bot(fake, request_timeout_s=0.5) as bot:
        slow_down_images(bot, 1.0)
        rec = await fake.send_command(
            "classify",
            {"labels": ALL_LABELS},
            attachments={"image": (shape_png("red circle", 1), "r.png", "image/png")},
        )
        kind, message = await wait_outcome(rec)
    assert kind == "error" and "took too long" in message["content"]


async def test_bad_inputs_mid_stream_do_not_disturb_good_ones(
    fake: FakeDiscord, engine: ClipEngine, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = corpus()
    async with running_bot(fake, engine=engine):
        jobs = []
        for index, (name, data) in enumerate(bad.items()):
            jobs.append(
                (
                    "bad",
                    name,
                    fake.send_command(
                        "classify",
                        {"labels": ALL_LABELS},
                        attachments={"image": (data, f"{name}.png", "image/png")},
                        user_id=30_000 + index,
                    ),
                )
            )
            label = CLASSES[index % len(CLASSES)]
            jobs.append(
                (
                    "good",
                    label,
                    fake.send_command(
                        "classify",
                        {"labels": ALL_LABELS},
                        attachments={"image": (shape_png(label, 50 + index), "ok.png", "image/png")},
                        user_id=31_000 + index,
                    ),
                )
            )
        records = [(kind, what, await coro) for kind, what, coro in jobs]
        results = [(kind, what, await wait_outcome(rec)) for kind, what, rec in records]
    counts = {"bad refused": 0, "good answered": 0, "good correct": 0}
    for kind, what, (got, message) in results:
        if kind == "bad":
            assert got == "error", what
            counts["bad refused"] += 1
        else:
            assert got == "answer", what
            counts["good answered"] += 1
            counts["good correct"] += message["embeds"][0]["title"] == f"Looks like: {what}"
    with capsys.disabled():
        print(f"\nmixed stream: {len(results)} interactions: " + ", ".join(f"{k}: {v}" for k, v in counts.items()))
    assert counts["bad refused"] == len(bad) and counts["good answered"] == len(bad)
    assert counts["good correct"] >= len(bad) - 1


async def test_per_user_rate_limit_applies_to_everyone_managers_included(fake: FakeDiscord) -> None:
    """Anyone can own a server and add the bot: Manage Server buys no exemption."""
    async with running_bot(fake, user_cooldown_s=30, user_burst=1) as _:
        member = {"user_id": 40_001, "member_permissions": MEMBER_PERMISSIONS}
        first = await fake.send_command("similar", {"text": "cat", "others": "dog"}, **member)
        assert (await wait_outcome(first))[0] == "answer"
        second = await fake.send_command("similar", {"text": "cat", "others": "car"}, **member)
        kind, message = await wait_outcome(second)
        assert kind == "error" and "Slow down" in message["content"] and message["flags"] & EPHEMERAL
        other = await fake.send_command(
            "similar", {"text": "cat", "others": "car"}, user_id=40_002, member_permissions=MEMBER_PERMISSIONS
        )
        assert (await wait_outcome(other))[0] == "answer", "the cooldown is per user"
        manager = [await fake.send_command("similar", {"text": "a", "others": "b"}, user_id=40_003) for _ in range(2)]
        outcomes = [await wait_outcome(rec) for rec in manager]
        assert [kind for kind, _ in outcomes] == ["answer", "error"], "Manage Server is not exempt"
        assert "Slow down" in outcomes[1][1]["content"] and outcomes[1][1]["flags"] & EPHEMERAL
        # Commands that had no cooldown at all go through the same gate.
        forget = await fake.send_command("forget-me", {}, user_id=40_003)
        kind, message = await wait_outcome(forget)
        assert kind == "error" and "Slow down" in message["content"], "/forget-me is limited too"


async def test_queued_user_is_told_where_they_stand(fake: FakeDiscord) -> None:
    async with running_bot(fake, queue_notice_after=1) as bot:
        slow_down_images(bot, 0.5)
        image = {"image": (shape_png("blue circle", 1), "b.png", "image/png")}
        first = await fake.send_command("classify", {"labels": ALL_LABELS}, attachments=image, user_id=50_001)
        await first.wait_for(lambda r: bool(r.callbacks))
        second = await fake.send_command("classify", {"labels": ALL_LABELS}, attachments=image, user_id=50_002)
        kind, message = await wait_outcome(second)
        await wait_outcome(first)
    assert kind == "answer" and message["embeds"][0]["title"] == "Looks like: blue circle"
    assert second.edits[0][1]["content"] == "⏳ 1 request ahead of you; your result will appear here."
    assert not first.edits[0][1].get("content"), "nobody ahead: no notice"
    assert message.get("content") in (None, ""), "the notice is replaced by the answer"


async def test_token_never_reaches_the_logs(fake: FakeDiscord, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    async with running_bot(fake) as bot:
        real_run = bot.engine.backend._run_visual
        bot.engine.backend.image_batcher._run_batch = lambda batch: (_ for _ in ()).throw(RuntimeError("boom"))
        rec = await fake.send_command(
            "classify", {"labels": "a, b"}, attachments={"image": (shape_png("red circle", 1), "r.png", "image/png")}
        )
        await wait_outcome(rec)
        bot.engine.backend.image_batcher._run_batch = real_run
    assert "CLIP failed" in caplog.text, "the failure was logged, with its traceback"
    assert fake.token not in caplog.text
    assert all(fake.token not in str(body) for r in fake.interactions for _, body in r.followups)


async def test_rejected_token_is_one_clear_line(fake: FakeDiscord) -> None:
    from bot.discord.client import create_bot, serve
    from bot.errors import StartupError
    from tests.support.settings import make_settings

    bot = create_bot(make_settings(discord_token="not-the-right-token"))
    with pytest.raises(StartupError) as caught:
        await serve(bot)
    message = str(caught.value)
    assert message.startswith("Discord rejected DISCORD_TOKEN") and "python -m bot classify" in message
    assert "not-the-right-token" not in message


async def test_declared_size_is_checked_before_downloading(fake: FakeDiscord, engine: ClipEngine) -> None:
    async with running_bot(fake, engine=engine, max_image_bytes=10_000):
        attachment = fake.add_attachment(shape_png("red circle", 1), "big.png", "image/png", declared_size=50_000)
        rec = await fake.send_command("classify", {"labels": "a, b", "image": attachment})
        kind, message = await wait_outcome(rec)
    assert kind == "error" and "too large" in message["content"] and message["flags"] & EPHEMERAL
    assert rec.callbacks[0][1]["type"] == 4, "answered at once, without deferring"
    assert not fake.cdn_requests, "nothing was downloaded"


async def test_body_larger_than_declared_is_cut_off(fake: FakeDiscord, engine: ClipEngine) -> None:
    big = bytes(200_000)
    async with running_bot(fake, engine=engine, max_image_bytes=100_000):
        attachment = fake.add_attachment(big, "liar.png", "image/png", declared_size=1_000)
        rec = await fake.send_command("classify", {"labels": "a, b", "image": attachment})
        kind, message = await wait_outcome(rec)
    assert kind == "error" and "too large" in message["content"]


async def test_model_that_cannot_load_stops_the_bot_with_one_line(fake: FakeDiscord, tmp_path: Path) -> None:
    from bot.discord.client import create_bot, serve
    from bot.errors import StartupError
    from tests.support.settings import make_settings

    (tmp_path / "visual.onnx").write_bytes(b"")
    bot = create_bot(make_settings(discord_token=fake.token, discord_guild_id=fake.guild_id, clip_model_dir=tmp_path))
    with pytest.raises(StartupError, match=r"has no textual\.onnx"):
        await asyncio.wait_for(serve(bot), 30)
    assert bot.is_closed()


async def test_long_phrase_is_truncated_and_the_reply_says_so(fake: FakeDiscord, engine: ClipEngine) -> None:
    paragraph = " ".join(["the quick brown fox jumps over the lazy dog"] * 20)  # ~880 characters, ~180 tokens
    async with running_bot(fake, engine=engine):
        rec = await fake.send_command("similar", {"text": paragraph, "others": "fox, dog"})
        kind, message = await wait_outcome(rec)
    assert kind == "answer"
    fields = message["embeds"][0].get("fields", [])
    assert fields and fields[0]["name"] == "Truncated" and "the phrase" in fields[0]["value"]


async def test_requests_during_model_load_are_acknowledged_and_answered_after(
    fake: FakeDiscord, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The model loads in a worker thread: the gateway stays alive and early users wait, not fail."""
    import bot.engine.local

    real_load = bot.engine.local.load_clip

    def slow_load(settings: Settings, stop: threading.Event | None = None):  # type: ignore[no-untyped-def]
        time.sleep(2.5)  # a big model from a slow disk
        return real_load(settings, stop)

    monkeypatch.setattr(bot.engine.local, "load_clip", slow_load)
    async with running_bot(fake, wait_model=False) as bot:
        assert bot.engine.info is None, "still loading"
        heartbeats_before = len(fake.heartbeats)
        rec = await fake.send_command(
            "classify",
            {"labels": ALL_LABELS},
            attachments={"image": (shape_png("red square", 3), "r.png", "image/png")},
        )
        kind, message = await wait_outcome(rec)
    assert rec.ack_latency is not None and rec.ack_latency < 1.0
    assert kind == "answer" and message["embeds"][0]["title"] == "Looks like: red square"
    assert len(fake.heartbeats) > heartbeats_before, "heartbeats went on during the load"


async def test_requests_while_the_model_downloads_are_told_when_to_come_back(
    fake: FakeDiscord, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A first start downloads ~600 MB: users asking meanwhile get the progress at once, privately."""
    import bot.engine.local
    from bot.engine.model_download import progress_for

    real_load = bot.engine.local.load_clip
    release = threading.Event()

    def downloading_load(settings: Settings, stop: threading.Event | None = None):  # type: ignore[no-untyped-def]
        progress = progress_for(settings.clip_model_id)
        progress.begin(total=600 * 2**20, done=270 * 2**20)  # what the downloader reports
        release.wait(20)
        progress.set_state("done")
        return real_load(settings, stop)

    monkeypatch.setattr(bot.engine.local, "load_clip", downloading_load)
    async with running_bot(fake, wait_model=False) as bot:
        try:
            rec = await fake.send_command("similar", {"text": "cat", "others": "dog"})
            kind, message = await wait_outcome(rec)
            assert rec.ack_latency is not None and rec.ack_latency < 1.0
            assert kind == "error" and message["flags"] & EPHEMERAL
            assert "warming up (downloading CLIP: 45%" in message["content"]
        finally:
            release.set()
        await bot.engine.wait_ready()
        after = await fake.send_command("similar", {"text": "cat", "others": "dog"})
        assert (await wait_outcome(after))[0] == "answer"
