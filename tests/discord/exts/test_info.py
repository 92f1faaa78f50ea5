"""`/help` and `/about` (bot.discord.exts.info)."""

from __future__ import annotations

from bot.discord.client import ClipBot
from bot.discord.exts.info import InfoCommands
from tests.discord.exts.conftest import make_interaction


async def test_help_answers_privately_with_this_bots_limits(clip_bot: ClipBot) -> None:
    cog = InfoCommands(clip_bot)
    interaction = make_interaction(clip_bot)
    await cog.help.callback(cog, interaction)
    sent = interaction.response.send_message.await_args.kwargs
    assert sent["ephemeral"] is True
    fields = {field.name: field.value for field in sent["embed"].fields}
    settings = clip_bot.settings
    assert (
        f"Ranks {settings.min_labels} to {settings.max_labels} comma-separated labels"
        in fields["/classify image labels [template]"]
    )
    assert f"at most {settings.max_image_bytes / 2**20:g} MiB" in fields["Limits"]
    assert "server managers included" in fields["Limits"]
    assert f"{settings.decodes_per_user} of your image" in fields["Limits"]


async def test_about_names_the_loaded_model_and_counts_answers(clip_bot: ClipBot) -> None:
    cog = InfoCommands(clip_bot)
    clip_bot.stats.record("classify", 0.25)
    interaction = make_interaction(clip_bot)
    await cog.about.callback(cog, interaction)
    embed = interaction.response.send_message.await_args.kwargs["embed"]
    fields = {field.name: field.value for field in embed.fields}
    info = clip_bot.engine.info
    assert info is not None and fields["Model"].startswith(f"{info.model} on {info.device}")
    assert "/classify: 1 answers, median 0.25 s" in fields["Since start"]
    assert "never saved" in fields["What is stored"]
    assert "the erasure runs when it is back" in fields["What is stored"]  # what is erased when
    assert "at the bot's next start if it was offline" in fields["What is stored"]
    assert "server managers included" in fields["Fair use"]


async def test_help_and_about_tell_of_autotag(clip_bot: ClipBot) -> None:
    cog = InfoCommands(clip_bot)
    help_fields = {field.name: field.value for field in cog.help_embed().fields}
    autotag = help_fields["/autotag add · remove · list (Manage Server)"]
    assert f"at most {clip_bot.settings.autotag_per_minute} images a minute" in autotag
    about_fields = {field.name: field.value for field in cog.about_embed().fields}
    assert "`/autotag`: a channel's labels and mode only." in about_fields["What is stored"]


def test_help_and_about_say_what_a_clip_gives(clip_bot: ClipBot) -> None:
    from bot.discord.exts.info import InfoCommands

    cog = InfoCommands(clip_bot)
    limits = {field.name: field.value for field in cog.help_embed().fields}["Limits"] or ""
    about = {field.name: field.value for field in cog.about_embed().fields}
    for text in (limits, about["Clips and animated images"] or ""):
        assert "Clips (MP4, WebM, MOV)" in text and "up to 8 frames" in text and "At most 10 min" in text
