"""Hostile uploads through the real bot and discord.py, against the Discord stand-in.

Each gets one clear line (or an answer), and none of them holds up other users.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from tests.fakediscord.server import FakeDiscord
from tests.support import decode_hooks
from tests.support.badimages import (
    colour_key_pngs,
    gif_comment_bomb,
    jpeg_scan_bomb,
    malformed_exif_jpegs,
    negative_width_bmp,
    tiff_strip_bomb,
)
from tests.support.live_bot import running_bot
from tests.support.outcomes import EPHEMERAL, final_messages, wait_outcome
from tests.support.shapes import CLASSES, shape_png

pytestmark = pytest.mark.asyncio(loop_scope="session")

ALL_LABELS = ", ".join(CLASSES)
#: The decode budget here; the bot's default is 5 s.
BUDGET_S = 2.0
#: Bombs go without a content type (Discord sometimes sends none): given "image/...", the
#: stand-in measures the attachment with Pillow on its own event loop, which a GIF bomb stalls.
NO_TYPE = None


async def test_other_users_are_answered_at_normal_speed_while_a_bomb_decodes(fake: FakeDiscord) -> None:
    async with running_bot(fake, decode_timeout_s=BUDGET_S):
        bomb_sent = time.perf_counter()
        bomb = await fake.send_command(
            "classify",
            {"labels": ALL_LABELS},
            attachments={"image": (gif_comment_bomb(), "party.gif", NO_TYPE)},
            user_id=9001,
        )
        await asyncio.sleep(0.3)  # the bomb is downloaded and decoding by now

        async def normal(index: int) -> tuple[str, str, float]:
            label = CLASSES[index]
            sent = time.perf_counter()
            rec = await fake.send_command(
                "classify",
                {"labels": ALL_LABELS},
                attachments={"image": (shape_png(label, 60 + index), f"{index}.png", "image/png")},
                user_id=9100 + index,
            )
            kind, message = await wait_outcome(rec, timeout=30)
            assert final_messages(rec) == 1
            return label, message["embeds"][0]["title"] if kind == "answer" else kind, time.perf_counter() - sent

        answers = await asyncio.gather(*(normal(index) for index in range(4)))
        kind, message = await wait_outcome(bomb, timeout=30)
        bomb_s = time.perf_counter() - bomb_sent
    for label, title, _ in answers:
        assert title == f"Looks like: {label}"
    slowest = max(seconds for _, _, seconds in answers)
    print(
        f"\nwhile a bomb decoded: 4 normal requests answered in at most {slowest:.2f} s; bomb refused at {bomb_s:.2f} s"
    )
    # Queued behind the bomb they would take its whole budget (2 s) and more.
    assert slowest < BUDGET_S / 2
    assert kind == "error" and "takes too long to decode (over 2 s)" in message["content"]
    assert final_messages(bomb) == 1


async def test_a_crashing_decoder_gets_one_line_and_the_bot_keeps_serving(fake: FakeDiscord) -> None:
    async with running_bot(fake) as bot:
        bot.engine.workers.task = decode_hooks.crash_on_magic
        crash = await fake.send_command(
            "classify",
            {"labels": "a, b"},
            attachments={"image": (decode_hooks.SEGFAULT + b" as a PNG", "x.png", "image/png")},
        )
        kind, message = await wait_outcome(crash)
        assert kind == "error" and "crashed the image decoder" in message["content"]
        assert final_messages(crash) == 1
        good = await fake.send_command(
            "classify",
            {"labels": ALL_LABELS},
            attachments={"image": (shape_png("green circle", 7), "g.png", "image/png")},
        )
        kind, message = await wait_outcome(good)
    assert kind == "answer" and message["embeds"][0]["title"] == "Looks like: green circle"


async def test_each_hostile_family_ends_with_one_line_or_an_answer(fake: FakeDiscord) -> None:
    """In one bot, one after another: the bombs time out, the odd ones are answered."""
    uploads: list[tuple[str, bytes, str | None, str]] = [
        ("scans.jpg", jpeg_scan_bomb(), NO_TYPE, "takes too long to decode"),
        ("strips.tif", tiff_strip_bomb(), NO_TYPE, "takes too long to decode"),
        ("negative.bmp", negative_width_bmp(), "image/bmp", "corrupt"),
        ("exif.jpg", malformed_exif_jpegs()["rational-minus-one-over-zero"], "image/jpeg", ""),
        ("exif2.jpg", malformed_exif_jpegs()["ifd-pointer-past-the-end"], "image/jpeg", ""),
        ("key.png", colour_key_pngs()["16-bit-grey-trns"], "image/png", ""),
    ]
    async with running_bot(fake, decode_timeout_s=1.0):
        for name, data, content_type, refusal in uploads:
            started = time.perf_counter()
            rec = await fake.send_command(
                "classify", {"labels": "a, b"}, attachments={"image": (data, name, content_type)}
            )
            kind, message = await wait_outcome(rec, timeout=30)
            assert final_messages(rec) == 1, name
            if refusal:
                assert kind == "error" and refusal in message["content"], (name, message)
                assert "\n" not in message["content"]
            else:
                assert kind == "answer", (name, message)
            assert time.perf_counter() - started < 10, name


async def test_deep_pictures_and_hostile_labels_through_the_stand_in(fake: FakeDiscord) -> None:
    """The families not above: 49 MP 16-bit and float pictures are answered (converted without
    float64 blow-ups, under the worker's memory cap); invisible and NFD twins are one label; a
    CJK label over CLIP's context is shortened, never cut away, and the reply says so."""
    from tests.support.badimages import deep_png, deep_tiff
    from tests.support.labels import CJK_LABEL

    async with running_bot(fake, decode_timeout_s=30.0, decode_memory_mb=1024):
        for name, data in [("deep.png", deep_png()), ("deep.tif", deep_tiff("float"))]:
            rec = await fake.send_command(
                "classify", {"labels": "light, dark"}, attachments={"image": (data, name, NO_TYPE)}
            )
            kind, message = await wait_outcome(rec, timeout=60)
            assert kind == "answer", (name, message)
        twins = await fake.send_command(
            "classify",
            {"labels": "red circle, red\u200b circle, café, cafe\u0301, \u200b\u2060"},
            attachments={"image": (shape_png("red circle", 5), "r.png", "image/png")},
        )
        kind, message = await wait_outcome(twins)
        assert kind == "answer" and message["embeds"][0]["description"].count(" cos ") == 2
        cjk = await fake.send_command(
            "classify",
            {"labels": f"{CJK_LABEL}, red circle"},
            attachments={"image": (shape_png("red circle", 6), "r.png", "image/png")},
        )
        kind, message = await wait_outcome(cjk)
    embed = message["embeds"][0]
    assert kind == "answer" and embed["title"] == "Looks like: red circle"
    assert any(field["name"] == "Truncated" for field in embed.get("fields", [])), "the reply says so"


async def test_a_flood_of_crafted_files_from_one_person_does_not_stall_another(fake: FakeDiscord) -> None:
    """Issue 23's flood: one person (a Manage Server holder, as anyone who owns a server is)
    sends two /compare of ten stalling files and three /classify with one, at once. Another
    person's ordinary /classify is answered within its normal time plus one decode budget at
    worst, and each of the flooder's refused requests gets one private line saying why."""
    flooder = 9301
    async with running_bot(fake, decode_timeout_s=BUDGET_S, user_cooldown_s=3.0, user_max_in_flight=2) as bot:

        async def ordinary(user_id: int, seed: int) -> tuple[str, float]:
            sent = time.perf_counter()
            rec = await fake.send_command(
                "classify",
                {"labels": ALL_LABELS},
                attachments={"image": (shape_png("blue square", seed), "photo.png", "image/png")},
                user_id=user_id,
            )
            kind, message = await wait_outcome(rec, timeout=60)
            return (
                message["embeds"][0]["title"] if kind == "answer" else message["content"]
            ), time.perf_counter() - sent

        normal = [await ordinary(9310 + index, 70 + index) for index in range(2)]
        normal_s = max(seconds for _, seconds in normal)

        bomb = gif_comment_bomb()
        others = ["other", *(f"other{n}" for n in range(2, 10))]
        ten_bombs = {name: (bomb, f"{name}.gif", NO_TYPE) for name in ["image", *others]}
        flood = [await fake.send_command("compare", attachments=ten_bombs, user_id=flooder) for _ in range(2)]
        for index in range(3):
            flood.append(
                await fake.send_command(
                    "classify",
                    {"labels": ALL_LABELS},
                    attachments={"image": (bomb, f"party{index}.gif", NO_TYPE)},
                    user_id=flooder,
                )
            )
        await asyncio.sleep(0.5)  # the flooder's files are downloaded and decoding by now
        title, under_flood_s = await ordinary(9320, 80)
        outcomes = [await wait_outcome(rec, timeout=120) for rec in flood]
        await asyncio.sleep(0.1)  # the served requests' tasks end
        budget = bot.download_budget
        assert budget.available == budget.capacity, "every request gave its download budget back"
    print(f"\nflood: an ordinary /classify took {under_flood_s:.2f} s (alone: {normal_s:.2f} s, budget {BUDGET_S:g} s)")
    assert [title for title, _ in normal] == ["Looks like: blue square"] * 2
    assert title == "Looks like: blue square"
    assert under_flood_s <= normal_s + BUDGET_S, "waited more than one decode budget behind the flood"
    refused = [message for kind, message in outcomes if kind == "error" and "in progress" in message["content"]]
    assert len(refused) == 3, [message.get("content") for _, message in outcomes]
    assert all(message["flags"] & EPHEMERAL and "\n" not in message["content"] for message in refused)
    served = [message for kind, message in outcomes if "in progress" not in message["content"]]
    assert all("takes too long to decode" in message["content"] for message in served)
    assert all(final_messages(rec) == 1 for rec in flood)
