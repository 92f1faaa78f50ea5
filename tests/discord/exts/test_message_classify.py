"""The "Classify image" message command (bot.discord.exts.message_classify)."""

from __future__ import annotations

import discord
import pytest

from bot.discord.client import ClipBot
from bot.discord.exts.message_classify import MAX_IMAGES, ClassifyModal, MessageClassify, message_embeds
from bot.discord.interactions import message_images
from bot.errors import ImageError, LabelError
from bot.scoring import Score
from bot.service import Ranking
from tests.discord.exts.conftest import make_attachment, make_interaction, make_message


async def test_a_message_without_images_is_refused_without_a_form(clip_bot: ClipBot) -> None:
    cog = MessageClassify(clip_bot)
    interaction = make_interaction(clip_bot)
    text_only = make_message([make_attachment("notes.txt", "text/plain")])
    with pytest.raises(ImageError, match="no image I can classify"):
        await cog.open(interaction, text_only)
    interaction.response.send_modal.assert_not_awaited()


async def test_the_form_is_prefilled_with_the_last_labels_used_here(clip_bot: ClipBot) -> None:
    cog = MessageClassify(clip_bot)
    clip_bot.presets.remember(1001, 42, ["red circle", "blue square"])
    await clip_bot.presets.flush()
    interaction = make_interaction(clip_bot, guild_id=42)
    photo = make_message([make_attachment("photo.png", "image/png")], guild_id=42)
    await cog.open(interaction, photo)
    modal = interaction.response.send_modal.await_args.args[0]
    assert isinstance(modal, ClassifyModal)
    assert modal.labels.default == "red circle, blue square"
    assert [source.name for source in modal.sources] == ["photo.png"]
    # Open for 15 minutes: it keeps the link and the image sources, not the message.
    assert modal.jump_url == photo.jump_url
    assert not any(isinstance(value, discord.Message) for value in vars(modal).values())


async def test_an_image_declared_too_large_is_refused_by_name_before_thinking(clip_bot: ClipBot) -> None:
    cog = MessageClassify(clip_bot)
    interaction = make_interaction(clip_bot)
    big = make_attachment("big.png", "image/png", size=clip_bot.settings.max_image_bytes + 1)
    sources = message_images(make_message([big]))
    with pytest.raises(ImageError, match=r"`big.png`: The image is too large"):
        await cog.classify_message(interaction, make_message([big]).jump_url, sources, "cat, dog", None)
    interaction.response.defer.assert_not_awaited()


async def test_unusable_labels_are_refused_before_thinking(clip_bot: ClipBot) -> None:
    cog = MessageClassify(clip_bot)
    interaction = make_interaction(clip_bot)
    message = make_message([make_attachment("a.png", "image/png")])
    with pytest.raises(LabelError):
        await cog.classify_message(interaction, message.jump_url, message_images(message), "cat", None)
    interaction.response.defer.assert_not_awaited()


def test_the_reply_has_one_embed_per_image_and_links_to_the_message() -> None:
    attachments = [make_attachment(f"{n}.png", "image/png", attachment_id=n) for n in range(1, MAX_IMAGES + 2)]
    message = make_message(attachments, guild_id=42)
    sources = message_images(message)[:MAX_IMAGES]
    ranking = Ranking(scores=[Score("cat", "a photo of a cat", 0.3, 0.9), Score("dog", "a photo of a dog", 0.1, 0.1)])
    unreadable = LabelError("That file is not an image I can read.")
    results: list[Ranking | LabelError] = [ranking, unreadable, ranking, ranking]
    embeds = message_embeds(message.jump_url, sources, results, total=len(attachments), template="a photo of a {}")
    assert len(embeds) == MAX_IMAGES
    assert embeds[0].url == message.jump_url
    assert f"the first {MAX_IMAGES} of {len(attachments)}" in (embeds[0].description or "")
    assert embeds[0].title == "1. Looks like: cat"
    assert "not an image I can read" in (embeds[1].description or ""), "one image's error does not hide the others"


def test_embedded_images_are_taken_only_from_discords_media_proxy() -> None:
    embed = discord.Embed.from_dict(
        {
            "type": "image",
            "url": "https://example.com/cat.png",
            "thumbnail": {"url": "https://example.com/cat.png", "proxy_url": "https://media.discordapp.net/p/cat.png"},
        }
    )
    images = message_images(make_message(embeds=[embed]))
    assert [(image.url, image.name) for image in images] == [
        ("https://media.discordapp.net/p/cat.png", "embedded image 1")
    ]


def test_a_messages_clips_are_among_its_images_and_say_their_frames() -> None:
    message = make_message(
        [
            make_attachment("clip.mp4", "video/mp4", attachment_id=1),
            make_attachment("loop.webm", None, attachment_id=2),  # no content type: by name
            make_attachment("song.mp3", "audio/mpeg", attachment_id=3),
        ],
        guild_id=42,
    )
    sources = message_images(message)
    assert [source.name for source in sources] == ["clip.mp4", "loop.webm"]
    scores = [Score("cat", "a photo of a cat", 0.3, 0.9), Score("dog", "a photo of a dog", 0.1, 0.1)]
    results: list[Ranking | LabelError] = [Ranking(scores=scores, frames=(6,)), Ranking(scores=scores, frames=(1,))]
    embeds = message_embeds(message.jump_url, sources, results, total=2, template=None)
    assert "_from 6 frames_" in (embeds[0].description or "")
    assert "frames" not in (embeds[1].description or "")
