"""Clips (MP4, WebM, MOV) and animated images through the real bot and discord.py, against the stand-in:
/classify, /compare, the message command, hostile cousins, and a clip indexed and found by /search.

The stand-in serves a clip as Discord does: `content_type` video/mp4 (webm, quicktime), its width,
height and `duration_secs`, and a `proxy_url` on the media proxy.
"""

from __future__ import annotations

import re

import pytest

from bot.engine import ClipEngine
from tests.fakediscord import payloads as P
from tests.fakediscord.messages import GuildFakeDiscord
from tests.fakediscord.server import FakeDiscord
from tests.support import clips
from tests.support.live_bot import running_bot
from tests.support.outcomes import final_messages, wait_outcome
from tests.support.search import data_dir, gallery, index_channel, ready_index, result_links, search_bot, stored
from tests.support.shapes import CLASSES, shape_png

pytestmark = pytest.mark.asyncio(loop_scope="session")

ALL_LABELS = ", ".join(CLASSES)


def circles_clip(container: str = "mp4") -> bytes:
    """Two seconds of red circles, each frame drawn afresh."""
    return clips.encode_clip(clips.shape_frames(["red circle"], per_label=16), container)


def alternating_gif() -> bytes:
    """An animated GIF alternating a red circle and a red square."""
    return clips.animation(clips.shape_frames(["red circle", "red square"] * 4), "GIF")


def test_the_stand_in_serves_video_attachments_as_discord_does(fake: FakeDiscord) -> None:
    assert P.upload_content_type("clip.mp4") == "video/mp4"
    assert P.upload_content_type("clip.WEBM") == "video/webm"
    assert P.upload_content_type("clip.mov") == "video/quicktime"
    attachment = fake.add_attachment(circles_clip(), "clip.mp4", "video/mp4", ephemeral=False)
    assert (attachment["width"], attachment["height"]) == (clips.SIDE, clips.SIDE)
    assert attachment["duration_secs"] == pytest.approx(2.0, abs=0.2)
    assert attachment["content_type"] == "video/mp4"
    assert attachment["proxy_url"].startswith(f"{fake.base_url}/media/attachments/")


@pytest.mark.parametrize(
    ("name", "data", "top"),
    [
        ("circles.mp4", circles_clip, {"red circle"}),
        ("circles.webm", lambda: circles_clip("webm"), {"red circle"}),
        ("circles.mov", lambda: circles_clip("mov"), {"red circle"}),
        ("both.gif", alternating_gif, {"red circle", "red square"}),
    ],
)
async def test_a_clip_and_an_animated_gif_are_classified_from_several_frames(
    fake: FakeDiscord, engine: ClipEngine, name: str, data: object, top: set[str]
) -> None:
    upload = data()  # type: ignore[operator]
    async with running_bot(fake, engine=engine):
        rec = await fake.send_command(
            "classify", {"labels": ALL_LABELS}, attachments={"image": (upload, name, P.upload_content_type(name))}
        )
        kind, message = await wait_outcome(rec)
    assert kind == "answer", message
    [embed] = message["embeds"]
    assert embed["footer"]["text"].endswith("· from 8 frames"), embed["footer"]
    ranked = re.findall(r"\*\*(.+?)\*\*", embed["description"])
    assert set(ranked[: len(top)]) == top, ranked[:3]
    assert embed["thumbnail"]["url"].startswith("attachment://"), "a still of the clip travels with the reply"
    assert any(name in r.path for r in fake.cdn_requests) and not fake.forbidden_fetches


async def test_compare_ranks_a_still_against_a_clip_and_says_its_frames(fake: FakeDiscord, engine: ClipEngine) -> None:
    async with running_bot(fake, engine=engine):
        rec = await fake.send_command(
            "compare",
            {},
            attachments={
                "image": (circles_clip(), "circles.mp4", "video/mp4"),
                "other": (shape_png("blue square", 5), "square.png", "image/png"),
                "other2": (shape_png("red circle", 6), "circle.png", "image/png"),
                "other3": (alternating_gif(), "both.gif", "image/gif"),
            },
        )
        kind, message = await wait_outcome(rec)
    assert kind == "answer", message
    embed = message["embeds"][0]
    assert embed["footer"]["text"].endswith("#1 circles.mp4 · from 8 frames"), embed["footer"]
    rows = embed["description"].splitlines()
    assert "both.gif** · from 8 frames" in embed["description"]
    assert "square.png" in rows[-2] and "frames" not in rows[-2], "the square is least alike; a still says no frames"


async def test_the_message_command_classifies_a_clip_in_the_chat(fake: FakeDiscord, engine: ClipEngine) -> None:
    async with running_bot(fake, engine=engine):
        message = fake.channel_message(attachments=[(circles_clip("webm"), "clip.webm", "video/webm")])
        rec = await fake.send_command("Classify image", target_message=message)  # type: ignore[arg-type]
        await rec.wait_for(lambda r: bool(r.callbacks), 5)
        field = rec.callbacks[0][1]["data"]["components"][0]["component"]["custom_id"]
        submitted = await fake.submit_modal(rec, {field: ALL_LABELS})
        kind, reply = await wait_outcome(submitted)
    assert kind == "answer", reply
    [embed] = reply["embeds"]
    assert embed["title"] == "1. Looks like: red circle"
    assert "_from 8 frames_" in embed["description"]


HOSTILE = {
    "truncated.mp4": (lambda: clips.encode_clip(clips.numbered_frames(24))[:800], "no frames I can read"),
    "empty.mp4": (clips.empty_clip, "no frames I can read"),
    "text-renamed.mp4": (lambda: b"not a clip, just text saved as clip.mp4\n" * 4, "not an image I can read"),
    "huge.mp4": (clips.huge_clip, "The clip's frame is too large: 8000 x 7000 pixels"),
    "bomb.gif": (clips.gif_frame_bomb, "The animation is too large to sample"),
    "endless.webm": (lambda: clips.encode_clip(clips.numbered_frames(24), "webm", live="1"), "The clip runs past 1 s"),
    "long.mp4": (lambda: clips.encode_clip(clips.numbered_frames(24)), "The clip is too long: 3 s"),
}


async def test_hostile_clips_get_one_line_each_and_the_bot_keeps_serving(fake: FakeDiscord) -> None:
    async with running_bot(fake, clip_max_duration_s=1.0, user_cooldown_s=0) as bot:
        for name, (make, reason) in HOSTILE.items():
            rec = await fake.send_command(
                "classify", {"labels": "a, b"}, attachments={"image": (make(), name, P.upload_content_type(name))}
            )
            kind, message = await wait_outcome(rec, timeout=30)
            assert final_messages(rec) == 1, name
            assert kind == "error" and reason in message["content"], (name, message)
            assert "\n" not in message["content"]
        square = (shape_png("blue square", 7), "b.png", "image/png")
        rec = await fake.send_command("classify", {"labels": ALL_LABELS}, attachments={"image": square})
        kind, message = await wait_outcome(rec)
        assert kind == "answer" and message["embeds"][0]["title"] == "Looks like: blue square"
        assert bot.engine.workers.replaced == 0, "each refused in time, no worker stalled"


async def test_a_clip_posted_in_an_indexed_channel_is_found_by_words_and_by_a_clip(guild: GuildFakeDiscord) -> None:
    fake = guild
    async with search_bot(fake, data_dir()) as bot:
        cog = await ready_index(bot)
        await index_channel(fake, fake.channel_id)
        for i, label in enumerate(("blue square", "green triangle", "yellow square")):
            await fake.post(fake.channel_id, images=[(shape_png(label, 600 + i), f"{i}.png")])
        target = await fake.post(fake.channel_id, images=[(circles_clip(), "circles.mp4")])
        assert target["attachments"][0]["content_type"] == "video/mp4"
        await stored(cog, 4)
        rec = await fake.send_command("search", {"text": "red circle", "results": 1})
        kind, answer = await wait_outcome(rec)
        assert kind == "answer" and result_links(answer)[0].endswith(f"/{target['id']}"), answer
        assert "circles.mp4" in gallery(answer)[0]["media"]["url"]  # the clip itself, shown in the gallery
        example = (circles_clip("webm"), "query.webm", "video/webm")  # search by example: a clip too
        rec = await fake.send_command("search", {"results": 1}, attachments={"image": example})
        kind, answer = await wait_outcome(rec)
    assert kind == "answer" and result_links(answer)[0].endswith(f"/{target['id']}"), answer
