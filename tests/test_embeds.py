"""What a reply looks like: ranked labels, bars, escaping, footer (real discord.Embed objects)."""

from __future__ import annotations

import discord

from bot.cogs.embeds import classify_embed, escape, similar_embed
from bot.engine import ModelInfo
from bot.scoring import Score
from bot.service import Ranking

INFO = ModelInfo(
    model="clip/ViT-B-16",
    model_id="clip/ViT-B-16",
    device="CPU",
    providers=("CPUExecutionProvider",),
    requested_providers=("CPUExecutionProvider",),
    resolution=224,
    load_s=1.0,
)


def ranking(*rows: tuple[str, float, float | None], template: str | None = "a photo of a {}") -> Ranking:
    return Ranking(scores=[Score(label, label, cos, p) for label, cos, p in rows], template=template)


def test_classify_embed_ranks_with_percent_bar_cosine_thumbnail_and_footer() -> None:
    embed = classify_embed(
        ranking(("bloody mary", 0.3016, 0.9966), ("drink", 0.2430, 0.0028), ("man", 0.1959, 0.0006)),
        INFO,
        0.42,
        "http://cdn.example/img.png",
    )
    assert isinstance(embed, discord.Embed)
    assert embed.title == "Looks like: bloody mary"
    lines = embed.description.splitlines()
    assert lines[0] == "` 1.` **bloody mary** · 99.7%"
    assert lines[1].startswith("`████████████`") and "cos 0.3016" in lines[1]
    assert lines[2] == "` 2.` **drink** · 0.3%"
    assert embed.thumbnail.url == "http://cdn.example/img.png"
    assert embed.footer.text == 'clip/ViT-B-16 · CPU · 0.42 s · template "a photo of a {}"'
    assert len(embed) <= 6000


def test_user_text_is_escaped_and_cannot_mention() -> None:
    evil = ranking(("@everyone **bold** <@123> `x`", 0.5, 0.9), ("<@&456789012345678901>", 0.1, 0.1))
    embed = classify_embed(evil, INFO, 0.1, None)
    text = embed.title + embed.description
    assert "@everyone" not in text and "@\u200beveryone" in text
    assert "<@123>" not in text and "<@&456789012345678901>" not in text
    assert "\\*\\*bold\\*\\*" in text
    assert escape("a" * 200).endswith("…") and len(escape("a" * 200)) == 80


def test_25_long_labels_fit_discord_limits() -> None:
    rows = tuple((f"label {i} " + "x" * 280, 0.5 - i / 100, 1 / 25) for i in range(25))
    embed = classify_embed(ranking(*rows), INFO, 1.0, None)
    assert len(embed.description) <= 4096 and len(embed.title) <= 256 and len(embed) <= 6000


def test_similar_embed_lists_phrases_and_a_single_pair() -> None:
    many = similar_embed(
        "hello world", ranking(("globe", 0.85, None), ("dog", 0.78, None), ("cat", 0.77, None)), INFO, 0.05
    )
    assert many.title == "Closest to \u201chello world\u201d"
    assert many.description.splitlines()[0] == "` 1.` **globe** · cos 0.8500"
    pair = similar_embed("hello world", ranking(("globe", 0.8489, None)), INFO, 0.05)
    assert "**hello world** ↔ **globe**" in pair.description and "0.8489" in pair.description


def test_truncation_is_reported() -> None:
    truncated = Ranking(scores=[Score("long", "long", 0.2, 1.0)], template=None, truncated=["long"])
    embed = classify_embed(truncated, INFO, 0.1, None)
    assert embed.fields[0].name == "Truncated" and "77-token" in embed.fields[0].value
    assert "no template" in embed.footer.text
