"""`/classify`, `/similar` and `/compare` (bot.discord.exts.clip_commands), one command at a time."""

from __future__ import annotations

import pytest

from bot.discord.client import ClipBot
from bot.discord.exts.clip_commands import ClipCommands, compare_embed
from bot.discord.interactions import check_attachment
from bot.errors import ImageError, LabelError
from bot.scoring import Score
from bot.service import Ranking
from tests.discord.exts.conftest import last_edit, make_attachment, make_interaction


async def test_classify_refuses_a_file_that_is_not_an_image_before_thinking(clip_bot: ClipBot) -> None:
    cog = ClipCommands(clip_bot)
    interaction = make_interaction(clip_bot)
    notes = make_attachment("notes.txt", "text/plain")
    with pytest.raises(ImageError, match=r"`notes.txt` is `text/plain`, not an image"):
        await cog.classify.callback(cog, interaction, notes, "cat, dog", "a photo of a {}")
    interaction.response.defer.assert_not_awaited()
    interaction.edit_original_response.assert_not_awaited()


async def test_classify_refuses_an_image_over_the_size_limit_before_downloading(clip_bot: ClipBot) -> None:
    cog = ClipCommands(clip_bot)
    interaction = make_interaction(clip_bot)
    huge = make_attachment("huge.png", "image/png", size=clip_bot.settings.max_image_bytes + 1)
    with pytest.raises(ImageError, match="The image is too large"):
        await cog.classify.callback(cog, interaction, huge, "cat, dog", "a photo of a {}")
    interaction.response.defer.assert_not_awaited()


async def test_classify_refuses_a_single_label_at_once(clip_bot: ClipBot) -> None:
    cog = ClipCommands(clip_bot)
    interaction = make_interaction(clip_bot)
    with pytest.raises(LabelError):
        await cog.classify.callback(cog, interaction, make_attachment("a.png", "image/png"), "cat", "a photo of a {}")
    interaction.response.defer.assert_not_awaited()


async def test_similar_thinks_then_answers_once_with_every_phrase_ranked(clip_bot: ClipBot) -> None:
    cog = ClipCommands(clip_bot)
    interaction = make_interaction(clip_bot)
    await cog.similar.callback(cog, interaction, "a red circle", "a blue square, a green triangle")
    interaction.response.defer.assert_awaited_once_with(ephemeral=False, thinking=True)
    answer = last_edit(interaction)
    embed = answer["embed"]
    assert answer["content"] is None and answer["attachments"] == []
    assert "a blue square" in embed.description and "a green triangle" in embed.description
    assert clip_bot.stats.latency("similar") is not None, "the answer is counted for /about"


async def test_similar_without_enough_phrases_for_a_heatmap_says_so(clip_bot: ClipBot) -> None:
    cog = ClipCommands(clip_bot)
    interaction = make_interaction(clip_bot)
    await cog.similar.callback(cog, interaction, "a red circle", "a blue square", True)
    answer = last_edit(interaction)
    assert answer["attachments"] == []
    assert "a heatmap needs 3+ phrases" in answer["embed"].footer.text


def test_compare_names_each_image_by_position_and_makes_file_names_inert() -> None:
    ranking = Ranking(scores=[Score("#2 @everyone.png", "#2 @everyone.png", 0.9), Score("#3 b.png", "#3 b.png", 0.1)])
    embed = compare_embed(["#1 a.png", "#2 @everyone.png", "#3 b.png"], ranking, None, 0.5)
    assert embed.title is not None and embed.title.startswith("Most like \\#1 a.png")  # markdown escaped
    assert "@everyone" not in (embed.description or ""), "a file name never pings"
    assert (embed.description or "").index("b.png") > (embed.description or "").index("everyone")


def test_compare_says_how_many_frames_each_clip_gave() -> None:
    names = ["#1 clip.mp4", "#2 a.png", "#3 loop.gif"]
    scores = [Score("#3 loop.gif", "#3 loop.gif", 0.9), Score("#2 a.png", "#2 a.png", 0.1)]
    embed = compare_embed(names, Ranking(scores=scores, frames=(8, 1, 5)), None, 0.5)
    rows = (embed.description or "").split("\n")
    assert "loop.gif** · from 5 frames" in rows[0]
    assert "frames" not in rows[2], "a still picture says nothing of frames"
    assert embed.footer.text is not None and embed.footer.text.endswith("#1 clip.mp4 · from 8 frames")


def test_a_clip_attachment_passes_the_type_check() -> None:
    """video/mp4, video/webm and video/quicktime pass (the bytes decide, in the decode worker)."""
    for name, kind in [("a.mp4", "video/mp4"), ("b.webm", "video/webm"), ("c.mov", "video/quicktime")]:
        check_attachment(make_attachment(name, kind), 10**6)
    with pytest.raises(ImageError, match=r"is `audio/mpeg`, not an image \(or an MP4, WebM or MOV clip\)"):
        check_attachment(make_attachment("song.mp3", "audio/mpeg"), 10**6)


def test_an_attachment_of_no_particular_type_is_judged_by_its_bytes() -> None:
    """An iPhone's HEIC renamed, or a file with no extension, comes as "some bytes": it passes the type
    check (the decode worker sniffs it); a named non-image type is still refused up front."""
    for content_type in ("application/octet-stream", "Application/Octet-Stream; charset=binary", None):
        check_attachment(make_attachment("IMG_0001", content_type), 10**6)
    with pytest.raises(ImageError, match=r"is `application/pdf`, not an image"):
        check_attachment(make_attachment("IMG_0001.pdf", "application/pdf"), 10**6)
