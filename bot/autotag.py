"""Channels that tag their own images (`/autotag`): labels with an emoji, the per-channel rate
limit, and what a ranking means for a message. Pure: nothing here knows Discord or CLIP.

A label may start with an emoji, Unicode (`🐱 cat`) or a server's own (`<:cat:123> cat`): the
emoji is what `react` mode puts on the message, the words after it are all CLIP sees.
"""

from __future__ import annotations

import re
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import regex

from bot.errors import LabelError
from bot.labels import parse_labels
from bot.scoring import Score

Mode = Literal["react", "reply"]
#: One minute: the rate limit's window.
WINDOW_S = 60.0

#: A server emoji as Discord writes it in a message (`<:name:id>`, animated `<a:name:id>`).
_CUSTOM_EMOJI = re.compile(r"^<(?P<animated>a?):(?P<name>[A-Za-z0-9_]{2,32}):(?P<id>\d{15,21})>\s*")
#: The first user-perceived character (a grapheme cluster: 👩🏽‍💻, 🇫🇷, 1️⃣ stay whole).
_FIRST_GRAPHEME = regex.compile(r"^\X")
#: A grapheme that draws an emoji: a pictograph, a flag (two regional indicators) or a keycap.
_EMOJI_GRAPHEME = regex.compile(r"\p{Extended_Pictographic}|\p{Regional_Indicator}{2}|\u20e3")


@dataclass(frozen=True, slots=True)
class TagLabel:
    """One label: the words CLIP sees, and the emoji to react with (None: none given)."""

    text: str
    emoji: str | None = None

    @property
    def shown(self) -> str:
        """How the label was written (emoji first), as `/autotag list` shows it."""
        return f"{self.emoji} {self.text}" if self.emoji else self.text


def split_emoji(label: str) -> TagLabel:
    """`🐱 cat` → emoji `🐱`, text `cat`; `<:cat:123> cat` → emoji `<:cat:123>`; else no emoji."""
    custom = _CUSTOM_EMOJI.match(label)
    if custom is not None:
        emoji, rest = custom.group(0).strip(), label[custom.end() :]
    else:
        first = _FIRST_GRAPHEME.match(label)
        if first is None or not _EMOJI_GRAPHEME.search(first.group(0)):
            return TagLabel(label)
        emoji, rest = first.group(0), label[first.end() :]
    text = rest.strip()
    if not text:
        raise LabelError(f"The label `{emoji}` has no words after its emoji: CLIP needs words to compare.")
    return TagLabel(text, emoji)


def parse_tag_labels(raw: str | Sequence[str], *, min_count: int, max_count: int) -> list[TagLabel]:
    """Labels for a channel (comma-separated, or a preset's), each with its emoji split off."""
    labels = [split_emoji(label) for label in parse_labels(raw, min_count=min_count, max_count=max_count)]
    texts = [label.text.casefold() for label in labels]
    repeated = sorted({text for text in texts if texts.count(text) > 1})
    if repeated:
        raise LabelError(f"Two labels have the same words once their emoji is set aside: {', '.join(repeated)}.")
    return labels


@dataclass(frozen=True, slots=True)
class Tag:
    """What to put on a message: the winning label and its probability."""

    label: TagLabel
    probability: float


def winner(scores: Sequence[Score], labels: Sequence[TagLabel], min_probability: float) -> Tag | None:
    """The best label if its probability reaches `min_probability`, else None (nothing is done).

    `scores` are ranked and name labels by their text (`ClipService.classify`)."""
    best = scores[0]
    probability = best.probability or 0.0
    if probability < min_probability:
        return None
    label = next(label for label in labels if label.text == best.label)
    return Tag(label, probability)


class ChannelRateLimit:
    """At most `per_minute` tags per channel in any sliding minute; more are refused (and counted)."""

    def __init__(self, per_minute: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_minute = per_minute
        self._clock = clock
        self._recent: dict[int, deque[float]] = {}

    def take(self, channel_id: int) -> bool:
        """Count one tag for the channel if it is under its limit; False when it is over."""
        now = self._clock()
        recent = self._recent.setdefault(channel_id, deque())
        while recent and recent[0] <= now - WINDOW_S:
            recent.popleft()
        if len(recent) >= self.per_minute:
            return False
        recent.append(now)
        return True

    def forget(self, channel_id: int) -> None:
        self._recent.pop(channel_id, None)
