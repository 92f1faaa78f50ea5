"""What a reply looks like: ranked labels, bars, escaping, footer (real discord.Embed objects)."""

from __future__ import annotations

import re
import unicodedata

import discord
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.discord.replies import classify_embed, embed_size, escape, similar_embed
from bot.engine import ModelInfo
from bot.labels import parse_labels, parse_template
from bot.render import utf16_len
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


# -- whatever the options accept, Discord accepts the reply --------------------------
#: Characters that markdown, mentions, links, tags or bidi could make something of.
NASTY = "_*~|>@#<:`\\-[]()/.\u202e\u2066\u200f\u061c\x07 aé中😀👍🏽🇫🇷"
LIMITS = {"title": 256, "description": 4096, "footer": 2048, "author": 256}
LABELS_OPTION = 4000  # the slash options' max_length (bot/discord/exts/clip_commands.py)
TEMPLATE_OPTION = 300
PHRASE_OPTION = 1000


def nasty(length: int, seed: int) -> str:
    """`length` characters cycling through NASTY from `seed`: every escape and defuse at once."""
    return "".join(NASTY[(seed + i * 7) % len(NASTY)] for i in range(length))


def assert_discord_accepts(embed: discord.Embed) -> None:
    """Discord's documented embed limits, in UTF-16 units after trimming, and the fake's own checks."""
    from tests.fakediscord.payloads import validate_message

    data = embed.to_dict()
    assert validate_message({"embeds": [data]}, []) == {}

    def size(text: str | None) -> int:
        return utf16_len((text or "").strip())

    assert size(data.get("title")) <= LIMITS["title"]
    assert size(data.get("description")) <= LIMITS["description"]
    assert size(data.get("footer", {}).get("text")) <= LIMITS["footer"]
    assert size(data.get("author", {}).get("name")) <= LIMITS["author"]
    fields = data.get("fields", [])
    assert len(fields) <= 25
    for fld in fields:
        assert 0 < size(fld["name"]) <= 256 and 0 < size(fld["value"]) <= 1024
    total = size(data.get("title")) + size(data.get("description"))
    total += size(data.get("footer", {}).get("text")) + size(data.get("author", {}).get("name"))
    total += sum(size(f["name"]) + size(f["value"]) for f in fields)
    assert total <= 6000
    assert total == embed_size(embed) or total < embed_size(embed)


def assert_inert(embed: discord.Embed) -> None:
    """No mention, tag, link, bidi control or control character survives anywhere in the reply."""
    data = embed.to_dict()
    texts = [data.get("title", ""), data.get("description", ""), data.get("footer", {}).get("text", "")]
    texts += [t for f in data.get("fields", []) for t in (f["name"], f["value"])]
    for text in texts:
        assert "@everyone" not in text and "@here" not in text
        assert not re.search(r"<[@#:/at]", text), "no <@id>, <#id>, <:emoji:id>, </cmd:id> or <t:..>"
        assert "://" not in text
        assert not any(unicodedata.category(ch) == "Cc" and ch != "\n" for ch in text)
        assert not set(text) & set("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c")


def split_option(total: int, count: int, seed: int = 0) -> list[str]:
    """The labels option at `total` characters split into `count` distinct comma-separated labels."""
    each = (total - (count - 1)) // count
    raw = ",".join(f"{i:02d}" + nasty(each - 2, seed + i).replace(",", ".") for i in range(count))
    assert len(raw) <= total
    return parse_labels(raw, min_count=1, max_count=25)


def worst_ranking(labels: list[str], template: str | None, every_cut: bool = True) -> Ranking:
    rows = [Score(label, label, 0.3 - i / 1000, 1 / len(labels)) for i, label in enumerate(labels)]
    return Ranking(
        scores=rows,
        template=template,
        truncated=labels[::2] if every_cut else [],
        template_dropped=labels[1::2] if every_cut else [],
    )


LONGEST_TEMPLATE = nasty(TEMPLATE_OPTION - 2, 3) + "{}"


@pytest.mark.parametrize(
    "labels",
    [
        pytest.param(split_option(LABELS_OPTION, 25), id="25 labels filling the option"),
        pytest.param(split_option(LABELS_OPTION, 4), id="4 labels of 1000"),
        pytest.param(split_option(3002, 3), id="3 labels of 1000"),
        pytest.param(
            parse_labels(
                nasty(1000, 1) + "," + ",".join(f"l{i} {nasty(100, i)}" for i in range(24)), min_count=2, max_count=25
            ),
            id="one of 1000 and 24 others",
        ),
        pytest.param(split_option(LABELS_OPTION, 25, seed=5), id="25 labels, other seed"),
        pytest.param([f"{i} " + "😀" * 120 for i in range(25)], id="astral emoji"),
        pytest.param([f"{i} " + "_" * 157 for i in range(25)], id="all underscores"),
        pytest.param([f"{i} " + "@everyone " * 15 for i in range(25)], id="mentions"),
    ],
)
@pytest.mark.parametrize("template", [LONGEST_TEMPLATE, "a photo of a {}", None])
def test_classify_reply_is_accepted_and_inert_in_the_worst_cases(labels: list[str], template: str | None) -> None:
    template = template and parse_template(template, "a photo of a {}")
    embed = classify_embed(worst_ranking(labels, template), INFO, 12.34, "http://cdn.example/x.png")
    assert_discord_accepts(embed)
    assert_inert(embed)
    rows = embed.description.split("\n")
    assert len(rows) == 2 * len(labels), "every label keeps its row, shown shorter if need be"
    for row in rows[::2]:
        assert re.fullmatch(r"`[ \d]\d\.` \*\*.+\*\* · [\d.<%]+", row), row


@pytest.mark.parametrize(
    "others",
    [
        pytest.param(split_option(LABELS_OPTION, 25, seed=2), id="25 phrases"),
        pytest.param(split_option(1000, 1), id="one phrase of 1000"),
        pytest.param([f"{i} " + "_" * 157 for i in range(25)], id="underscores"),
    ],
)
@pytest.mark.parametrize("subject", [nasty(PHRASE_OPTION, 9), "_" * PHRASE_OPTION, "😀" * PHRASE_OPTION])
def test_similar_reply_is_accepted_and_inert_in_the_worst_cases(others: list[str], subject: str) -> None:
    ranking = worst_ranking(others, None)
    ranking = Ranking(scores=ranking.scores, truncated=ranking.truncated, subject_truncated=True)
    embed = similar_embed(subject, ranking, INFO, 1.0)
    assert_discord_accepts(embed)
    assert_inert(embed)


LABEL_TEXT = st.text(alphabet=st.sampled_from(NASTY) | st.characters(codec="utf-8"), min_size=1, max_size=1000)


@settings(max_examples=60, deadline=None)
@given(
    st.lists(LABEL_TEXT, min_size=1, max_size=25).filter(lambda ls: sum(map(len, ls)) + len(ls) - 1 <= LABELS_OPTION),
    st.text(alphabet=st.sampled_from(NASTY) | st.characters(codec="utf-8"), max_size=TEMPLATE_OPTION),
    st.booleans(),
    st.floats(min_value=0, max_value=1e6),
)
def test_any_labels_the_options_accept_give_a_reply_discord_accepts(
    labels: list[str], template: str, cut: bool, elapsed: float
) -> None:
    ranking = worst_ranking(labels, template or None, every_cut=cut)
    classified = classify_embed(ranking, INFO, elapsed, None)
    assert_discord_accepts(classified)
    assert len(classified.description.split("\n")) == 2 * len(labels)
    assert_discord_accepts(similar_embed(template or "x", ranking, INFO, elapsed))


def test_markdown_headings_lists_quotes_and_links_are_escaped() -> None:
    assert escape("# big") == "\\# big"
    assert escape("- item") == "\\- item"
    assert escape("> quote") == "\\> quote"
    assert escape("[click](https://evil.example)").startswith("\\[click](https:\u200b//")
    assert escape("||spoiler|| ~~x~~ `code`") == "\\|\\|spoiler\\|\\| \\~\\~x\\~\\~ \\`code\\`"
    assert escape("<#123> <:e:1> <t:1:R> </cmd:1>") == "<\u200b#123> <\u200b:e:1> <\u200bt:1:R> <\u200b/cmd:1>"


def test_bidi_overrides_cannot_flip_the_reply() -> None:
    embed = classify_embed(ranking(("\u202egnp.exe\u202c cat", 0.3, 0.9), ("dog\u2066", 0.1, 0.1)), INFO, 0.1, None)
    assert embed.title == "Looks like: gnp.exe cat"
    assert "**dog**" in embed.description


def test_many_long_labels_are_all_shown_shorter() -> None:
    labels = [f"{i} " + "_" * 997 for i in range(25)]
    embed = classify_embed(worst_ranking(labels, None, every_cut=False), INFO, 1.0, None)
    rows = embed.description.split("\n")[::2]
    assert len(rows) == 25
    assert all(f"**{i} \\_" in row and row.count("…") == 1 for i, row in enumerate(rows))


def test_truncation_note_names_cut_and_untemplated_labels_and_counts_the_rest() -> None:
    labels = [f"label {i} " + "x" * 200 for i in range(25)]
    few = Ranking(
        scores=[Score(label, label, 0.1, 0.04) for label in labels[:3]],
        template="a photo of a {}",
        truncated=[labels[0]],
        template_dropped=[labels[1]],
    )
    value = classify_embed(few, INFO, 0.1, None).fields[0].value
    first, second = value.split("\n")
    assert "77-token" in first and "label 0" in first and "label 1" not in first
    assert "without it" in second and "label 1" in second
    many = Ranking(scores=[Score(label, label, 0.1, 0.04) for label in labels], template=None, truncated=labels)
    value = classify_embed(many, INFO, 0.1, None).fields[0].value
    assert re.search(r" and \d+ more$", value) and utf16_len(value) <= 1024


def test_template_in_the_footer_is_plain_and_fitted() -> None:
    template = "a \u202ephoto\u202c of a {} @everyone " + "_" * 280
    embed = classify_embed(ranking(("cat", 0.3, 0.9), template=template), INFO, 0.1, None)
    assert embed.footer.text.startswith('clip/ViT-B-16 · CPU · 0.10 s · template "a photo of a {} @everyone ___')
    assert "\u202e" not in embed.footer.text and utf16_len(embed.footer.text) <= 2048


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(NASTY + "[]()"), max_size=400), st.integers(min_value=1, max_value=300))
def test_escaping_only_the_start_of_long_text_changes_nothing(text: str, limit: int) -> None:
    """`escape` skips escaping what a cut would drop; the result is that of escaping everything."""
    from bot.labels import clean_text
    from bot.render import ZWSP, fit

    whole = discord.utils.escape_markdown(clean_text(text), ignore_links=False)
    whole = re.sub(r"[@<]|:(?=//)", lambda m: m.group() + ZWSP, whole)
    assert escape(text, limit) == fit(whole, limit)


@pytest.mark.parametrize("count", [40, 100])
def test_more_labels_than_the_slash_command_allows_still_give_an_accepted_reply(count: int) -> None:
    """MAX_LABELS may be raised to 100 (the CLI, a custom front end): rows shrink, then the tail is counted."""
    labels = [f"{i:03d} " + nasty(996, i) for i in range(count)]
    for embed in (
        classify_embed(worst_ranking(labels, LONGEST_TEMPLATE), INFO, 1.0, None),
        similar_embed(nasty(1000, 1), worst_ranking(labels, None), INFO, 1.0),
    ):
        assert_discord_accepts(embed)
        assert_inert(embed)
        rows = [line for line in embed.description.split("\n") if line.startswith("`")]
        if count == 40:
            assert len([r for r in rows if "**" in r]) == 40
        else:
            shown = len([r for r in rows if "**" in r])
            assert shown == count or (shown >= 60 and embed.description.endswith(f"… and {count - shown} more"))


def test_a_clips_reply_says_how_many_frames_it_used() -> None:
    from bot.scoring import Score
    from bot.service import Ranking

    scores = [Score("red circle", "a photo of a red circle", 0.3, 0.9), Score("dog", "a photo of a dog", 0.1, 0.1)]
    clip = classify_embed(Ranking(scores=scores, template="a photo of a {}", frames=(6,)), None, 0.5, None)
    still = classify_embed(Ranking(scores=scores, template="a photo of a {}", frames=(1,)), None, 0.5, None)
    assert clip.footer.text is not None and clip.footer.text.endswith("· from 6 frames")
    assert still.footer.text is not None and "frames" not in still.footer.text
