"""The pure side of /autotag (bot/autotag.py): a label's emoji, the labels' checks, the winner
against the threshold, and the per-channel rate limit."""

from __future__ import annotations

import pytest

from bot.autotag import ChannelRateLimit, TagLabel, parse_tag_labels, split_emoji, winner
from bot.errors import LabelError
from bot.scoring import Score


@pytest.mark.parametrize(
    ("label", "emoji", "text"),
    [
        ("🐱 cat", "🐱", "cat"),
        ("🐶dog", "🐶", "dog"),
        ("👩🏽‍💻 coder", "👩🏽‍💻", "coder"),  # one emoji of several code points (skin tone, joiner)
        ("🇫🇷 france", "🇫🇷", "france"),  # a flag: two regional indicators
        ("1️⃣ first", "1️⃣", "first"),  # a keycap
        ("<:blob:123456789012345678> blob", "<:blob:123456789012345678>", "blob"),
        ("<a:spin:123456789012345678> spinner", "<a:spin:123456789012345678>", "spinner"),
        ("cat", None, "cat"),
        ("1 cat", None, "1 cat"),  # a digit alone is no emoji
        ("cat 🐱", None, "cat 🐱"),  # only a leading emoji is the label's
    ],
)
def test_a_leading_emoji_is_split_from_the_words_clip_sees(label: str, emoji: str | None, text: str) -> None:
    assert split_emoji(label) == TagLabel(text, emoji)


def test_labels_are_checked_once_their_emoji_is_set_aside() -> None:
    assert parse_tag_labels("🐱 cat, 🐶 dog, fox", min_count=2, max_count=25) == [
        TagLabel("cat", "🐱"),
        TagLabel("dog", "🐶"),
        TagLabel("fox"),
    ]
    with pytest.raises(LabelError, match="no words after its emoji"):
        parse_tag_labels("🐱, 🐶 dog", min_count=2, max_count=25)
    with pytest.raises(LabelError, match="same words once their emoji is set aside: cat"):
        parse_tag_labels("🐱 cat, 😺 Cat", min_count=2, max_count=25)
    with pytest.raises(LabelError, match="at least 2"):
        parse_tag_labels("🐱 cat", min_count=2, max_count=25)


def test_the_winner_must_reach_the_threshold() -> None:
    labels = [TagLabel("cat", "🐱"), TagLabel("dog", "🐶")]
    scores = [Score("dog", "a photo of a dog", 0.3, 0.7), Score("cat", "a photo of a cat", 0.2, 0.3)]
    tag = winner(scores, labels, 0.5)
    assert tag is not None and tag.label == TagLabel("dog", "🐶") and tag.probability == 0.7
    assert winner(scores, labels, 0.7) is not None  # "at least"
    assert winner(scores, labels, 0.71) is None


def test_the_rate_limit_is_per_channel_over_a_sliding_minute() -> None:
    now = [1000.0]
    limit = ChannelRateLimit(2, clock=lambda: now[0])
    assert [limit.take(1), limit.take(1), limit.take(1)] == [True, True, False]
    assert limit.take(2), "another channel has its own allowance"
    now[0] += 59.9
    assert not limit.take(1)
    now[0] += 0.2  # the first two are a minute old
    assert [limit.take(1), limit.take(1), limit.take(1)] == [True, True, False]
    limit.forget(1)
    assert limit.take(1)
