"""The "Classify image" message command through the stand-in: modal, images in the chat."""

from __future__ import annotations

import discord
import pytest

from bot.engine import ClipEngine
from tests.fakediscord.server import FakeDiscord
from tests.support.forms import form_field, open_modal
from tests.support.live_bot import running_bot, slow_down_images
from tests.support.outcomes import EPHEMERAL, wait_outcome
from tests.support.shapes import CLASSES, shape_png

pytestmark = pytest.mark.asyncio(loop_scope="session")

ALL_LABELS = ", ".join(CLASSES)


def png(label: str, seed: int) -> tuple[bytes, str, str]:
    return shape_png(label, seed), f"{label.replace(' ', '-')}.png", "image/png"


async def test_an_attachment_is_classified_and_the_reply_links_the_message(
    fake: FakeDiscord, engine: ClipEngine
) -> None:
    async with running_bot(fake, engine=engine):
        message = fake.channel_message(content="look", attachments=[png("blue circle", 21)])
        rec = await open_modal(fake, message)
        callback = rec.callbacks[0][1]
        assert callback["type"] == 9 and rec.ack_latency is not None and rec.ack_latency < 3.0
        submitted = await fake.submit_modal(rec, {form_field(callback, 0): ALL_LABELS})
        kind, reply = await wait_outcome(submitted)
    assert kind == "answer"
    [embed] = reply["embeds"]
    assert embed["title"] == "1. Looks like: blue circle"
    assert embed["url"].endswith(f"/{message['channel_id']}/{message['id']}")
    assert "[The message](" in embed["description"]
    assert not fake.forbidden_fetches


async def test_an_embedded_image_link_is_fetched_through_the_media_proxy_only(
    fake: FakeDiscord, engine: ClipEngine
) -> None:
    async with running_bot(fake, engine=engine):
        posted = fake.user_posted_url("cat.png")
        embed = fake.add_external_image(shape_png("red triangle", 22), posted)
        message = fake.channel_message(content=posted, embeds=[embed])
        rec = await open_modal(fake, message)
        submitted = await fake.submit_modal(rec, {form_field(rec.callbacks[0][1], 0): ALL_LABELS})
        kind, reply = await wait_outcome(submitted)
    assert kind == "answer" and reply["embeds"][0]["title"] == "1. Looks like: red triangle", reply["embeds"][0][
        "description"
    ]
    assert fake.forbidden_fetches == [], "the link the user posted was never requested"
    assert any(r.path.startswith("/external/") for r in fake.cdn_requests), "the media proxy was"


async def test_several_images_one_reply_and_a_bad_one_fails_alone(fake: FakeDiscord, engine: ClipEngine) -> None:
    async with running_bot(fake, engine=engine):
        images = [png("green square", 23), (b"not an image", "notes.png", "image/png"), png("yellow circle", 24)]
        images += [png("red circle", 25 + i) for i in range(3)]  # six in all: the first four are classified
        message = fake.channel_message(attachments=images)
        rec = await open_modal(fake, message)
        submitted = await fake.submit_modal(
            rec, {form_field(rec.callbacks[0][1], 0): ALL_LABELS, form_field(rec.callbacks[0][1], 1): "ensemble"}
        )
        kind, reply = await wait_outcome(submitted)
    assert kind == "answer"
    titles = [e["title"] for e in reply["embeds"]]
    assert titles[0] == "1. Looks like: green square" and titles[2] == "3. Looks like: yellow circle"
    assert titles[1].startswith("2. ") and "not an image" in reply["embeds"][1]["description"]
    assert len(titles) == 4 and "the first 4 of 6" in reply["embeds"][0]["description"]
    assert "ensemble of 7 templates" in reply["embeds"][-1]["footer"]["text"]


async def test_a_message_without_an_image_gets_a_private_line_at_once(fake: FakeDiscord, engine: ClipEngine) -> None:
    async with running_bot(fake, engine=engine):
        link = fake.user_posted_url("page.html")
        rec = await open_modal(fake, fake.channel_message(content=f"just text {link}"))
    callback = rec.callbacks[0][1]
    assert callback["type"] == 4 and callback["data"]["flags"] & EPHEMERAL
    assert "no image I can classify" in callback["data"]["content"]
    assert rec.ack_latency is not None and rec.ack_latency < 3.0


async def test_the_modal_is_prefilled_with_the_last_label_set_and_presets_work(
    fake: FakeDiscord, engine: ClipEngine
) -> None:
    async with running_bot(fake, engine=engine) as bot:
        bot.presets.remember(fake.user_id, fake.guild_id, ["red circle", "blue square"])
        await bot.presets.save("user", fake.user_id, "shapes", list(CLASSES), by=fake.user_id)
        rec = await open_modal(fake, fake.channel_message(attachments=[png("green triangle", 26)]))
        modal = rec.callbacks[0][1]["data"]
        assert modal["components"][0]["component"]["value"] == "red circle, blue square"
        submitted = await fake.submit_modal(rec, {form_field(rec.callbacks[0][1], 0): "@shapes"})
        kind, reply = await wait_outcome(submitted)
    assert kind == "answer" and reply["embeds"][0]["title"] == "1. Looks like: green triangle"


async def test_bad_labels_in_the_modal_are_one_private_line(fake: FakeDiscord, engine: ClipEngine) -> None:
    async with running_bot(fake, engine=engine):
        rec = await open_modal(fake, fake.channel_message(attachments=[png("red circle", 27)]))
        submitted = await fake.submit_modal(rec, {form_field(rec.callbacks[0][1], 0): "just one"})
        kind, message = await wait_outcome(submitted)
    assert kind == "error" and "at least 2" in message["content"] and message["flags"] & EPHEMERAL


async def test_an_open_form_holds_the_link_and_the_image_sources_not_the_message(fake: FakeDiscord) -> None:
    """A form stays open up to 15 minutes: it must not keep the whole message (text, author, embeds)."""
    async with running_bot(fake) as bot:
        message = fake.channel_message(content="private words", attachments=[png("red circle", 28)])
        await open_modal(fake, message)
        [form] = bot._connection._view_store._modals.values()  # what discord.py keeps until it times out
        held = list(vars(form).values())
        assert not any(isinstance(value, discord.Message) for value in held)
        assert f"/{message['channel_id']}/{message['id']}" in form.jump_url  # type: ignore[attr-defined]
        assert [source.name for source in form.sources] == ["red-circle.png"]  # type: ignore[attr-defined]


async def test_the_message_command_and_its_form_go_through_admission(fake: FakeDiscord) -> None:
    """The form's submission is a request of its own: with room for one request per 30 s, the
    "Classify image" that opens the form takes it, and the submission (and a second "Classify
    image") each get one private line instead of an answer. A Manage Server holder included."""
    async with running_bot(fake, user_cooldown_s=30, user_burst=1):
        message = fake.channel_message(attachments=[png("blue circle", 31)])
        rec = await open_modal(fake, message, user_id=70_001)
        assert rec.callbacks[0][1]["type"] == 9, "the first request opens the form"
        submitted = await fake.submit_modal(rec, {form_field(rec.callbacks[0][1], 0): ALL_LABELS})
        kind, reply = await wait_outcome(submitted)
        assert kind == "error" and "Slow down" in reply["content"] and reply["flags"] & EPHEMERAL
        again = await open_modal(fake, message, user_id=70_001)
        kind, reply = await wait_outcome(again)
        assert kind == "error" and "Slow down" in reply["content"] and reply["flags"] & EPHEMERAL
        other = await open_modal(fake, message, user_id=70_002)
        assert other.callbacks[0][1]["type"] == 9, "the limit is per person"


async def test_one_person_has_at_most_their_cap_of_forms_in_progress(fake: FakeDiscord) -> None:
    """The in-flight cap counts form submissions too: a second submission while the first is
    being answered is refused with one private line; another person's is answered."""
    async with running_bot(fake, user_max_in_flight=1) as bot:
        slow_down_images(bot, 1.0)
        message = fake.channel_message(attachments=[png("green square", 32)])
        first, second, other = [await open_modal(fake, message, user_id=who) for who in (70_011, 70_011, 70_012)]
        busy = await fake.submit_modal(first, {form_field(first.callbacks[0][1], 0): ALL_LABELS})
        await busy.wait_for(lambda r: bool(r.callbacks), 5)
        refused = await fake.submit_modal(second, {form_field(second.callbacks[0][1], 0): ALL_LABELS})
        elsewhere = await fake.submit_modal(other, {form_field(other.callbacks[0][1], 0): ALL_LABELS})
        kind, reply = await wait_outcome(refused)
        assert kind == "error" and "in progress" in reply["content"] and reply["flags"] & EPHEMERAL
        assert (await wait_outcome(busy))[0] == "answer"
        assert (await wait_outcome(elsewhere))[0] == "answer"
