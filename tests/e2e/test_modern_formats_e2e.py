"""AVIF and HEIC uploads through the real bot and discord.py, against the Discord stand-in:
/classify, /compare, the message command, indexing and /search.

The uploads carry the content types Discord gives them (image/avif, image/heic); the bot tells
the formats apart by content, so an AVIF named .png is read as well.
"""

from __future__ import annotations

import pytest
from PIL import Image

from bot.engine.images import decode_image
from tests.fakediscord import payloads as P
from tests.fakediscord.messages import GuildFakeDiscord
from tests.fakediscord.server import FakeDiscord
from tests.support.badimages import (
    COUSIN_REASON,
    STORED_LABEL,
    UPRIGHT_LABEL,
    as_phone_saves,
    encode,
    isobmff_cousins,
    upright_shape,
)
from tests.support.live_bot import running_bot
from tests.support.outcomes import final_messages, wait_outcome
from tests.support.search import index_channel, ready_index, result_links, search_bot, stored
from tests.support.shapes import CLASSES

pytestmark = pytest.mark.asyncio(loop_scope="session")

ALL_LABELS = ", ".join(CLASSES)
MAX_PIXELS = 50_000_000


def phone_photos() -> dict[str, bytes]:
    upright = upright_shape()
    return {"photo.avif": as_phone_saves(upright, "AVIF"), "IMG_0001.HEIC": as_phone_saves(upright, "HEIF")}


def test_the_stand_in_labels_uploads_as_discord_does() -> None:
    assert P.upload_content_type("photo.avif") == "image/avif"
    assert P.upload_content_type("IMG_0001.HEIC") == "image/heic"
    assert P.upload_content_type("x.heif") == "image/heif"
    assert P.upload_content_type("notes") is None


async def test_avif_and_heic_are_classified_upright(fake: FakeDiscord) -> None:
    photos = phone_photos()
    uploads = [(name, data, P.upload_content_type(name)) for name, data in photos.items()]
    uploads.append(("renamed.png", photos["photo.avif"], "image/png"))  # sniffed by content, not name
    uploads.append(("IMG_0002", photos["IMG_0001.HEIC"], "application/octet-stream"))  # a type that says nothing
    async with running_bot(fake):
        for name, data, content_type in uploads:
            rec = await fake.send_command(
                "classify", {"labels": ALL_LABELS}, attachments={"image": (data, name, content_type)}
            )
            kind, message = await wait_outcome(rec)
            assert kind == "answer", (name, message)
            assert message["embeds"][0]["title"] == f"Looks like: {UPRIGHT_LABEL}", name
            served = [r for r in fake.cdn_requests if name in r.path]
            assert served, f"{name} was fetched from the CDN"
    assert not fake.forbidden_fetches


async def test_compare_finds_a_heic_equal_to_a_png_of_its_pixels(fake: FakeDiscord) -> None:
    heic = phone_photos()["IMG_0001.HEIC"]
    pixels_png = encode(decode_image(heic, max_pixels=MAX_PIXELS), "PNG")
    sideways = encode(upright_shape().transpose(Image.Transpose.ROTATE_90), "PNG")
    async with running_bot(fake):
        rec = await fake.send_command(
            "compare",
            {},
            attachments={
                "image": (heic, "IMG_0001.HEIC", "image/heic"),
                "other": (sideways, "sideways.png", "image/png"),
                "other2": (pixels_png, "pixels.png", "image/png"),
                "other3": (phone_photos()["photo.avif"], "photo.avif", "image/avif"),
            },
        )
        kind, message = await wait_outcome(rec)
    assert kind == "answer", message
    embed = message["embeds"][0]
    assert embed["title"] == "Most like \\#1 IMG\\_0001.HEIC: \\#3 pixels.png", embed["title"]
    first = embed["description"].splitlines()[0]
    assert "#3 pixels.png" in first and "cos 1.0000" in first, embed["description"]


async def test_the_message_command_classifies_a_heic_attachment(fake: FakeDiscord) -> None:
    from tests.support.forms import form_field, open_modal

    async with running_bot(fake):
        heic = phone_photos()["IMG_0001.HEIC"]
        message = fake.channel_message(attachments=[(heic, "IMG_0001.HEIC", P.upload_content_type("IMG_0001.HEIC"))])
        rec = await open_modal(fake, message)
        submitted = await fake.submit_modal(rec, {form_field(rec.callbacks[0][1], 0): ALL_LABELS})
        kind, reply = await wait_outcome(submitted)
    assert kind == "answer" and reply["embeds"][0]["title"] == f"1. Looks like: {UPRIGHT_LABEL}", reply


async def test_hostile_avif_and_heic_cousins_get_one_line_each(fake: FakeDiscord) -> None:
    async with running_bot(fake, decode_timeout_s=2.0):
        for fmt, extension in (("AVIF", "avif"), ("HEIF", "heic")):
            for family, data in isobmff_cousins(fmt).items():
                name = f"{family}.{extension}"
                rec = await fake.send_command(
                    "classify", {"labels": "a, b"}, attachments={"image": (data, name, P.upload_content_type(name))}
                )
                kind, message = await wait_outcome(rec, timeout=30)
                assert final_messages(rec) == 1, name
                assert kind == "error" and COUSIN_REASON[family] in message["content"], (name, message)
                assert "\n" not in message["content"]


async def test_a_heic_posted_in_an_indexed_channel_is_found_by_an_avif(guild: GuildFakeDiscord) -> None:
    import tempfile
    from pathlib import Path

    from tests.support.settings import TEST_CACHE_DIR

    fake = guild
    photos = phone_photos()
    async with search_bot(fake, Path(tempfile.mkdtemp(prefix="search-", dir=TEST_CACHE_DIR))) as bot:
        cog = await ready_index(bot)
        await index_channel(fake, fake.channel_id)
        from tests.support.shapes import shape_png

        for i, label in enumerate((STORED_LABEL, "red circle", "green square")):
            await fake.post(fake.channel_id, images=[(shape_png(label, 300 + i), f"{i}.png")])
        target = await fake.post(fake.channel_id, images=[(photos["IMG_0001.HEIC"], "IMG_0001.HEIC")])
        assert target["attachments"][0]["content_type"] == "image/heic"
        await stored(cog, 4)
        rec = await fake.send_command("search", attachments={"image": (photos["photo.avif"], "q.avif", "image/avif")})
        kind, answer = await wait_outcome(rec)
    assert kind == "answer" and result_links(answer)[0].endswith(f"/{target['id']}"), answer
