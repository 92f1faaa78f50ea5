"""Plain-text pieces of a reply, shared by the Discord embed and the CLI.

Also what makes text fit a length limit (measured as Discord does, in UTF-16
code units) without cutting through an escape, a surrogate pair or a grapheme.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterator

from bot.labels import ZWJ, clean_text

BAR_FULL = "█"
BAR_EMPTY = "░"


def bar(fraction: float, width: int = 12) -> str:
    """A text bar; any non-zero fraction shows at least a sliver."""
    fraction = min(max(fraction, 0.0), 1.0)
    filled = round(fraction * width)
    if fraction > 0 and filled == 0:
        filled = 1
    return BAR_FULL * filled + BAR_EMPTY * (width - filled)


def percent(probability: float) -> str:
    """`71.2%`, `<0.1%` or `100%`, never a misleading `0.0%`."""
    value = probability * 100
    if 0 < value < 0.05:
        return "<0.1%"
    if value >= 99.95:
        return "100%"
    return f"{value:.1f}%"


def cosine_fraction(cosine: float) -> float:
    """Bar length for a cosine: the cosine itself, negatives as empty."""
    return max(cosine, 0.0)


# -- text that must fit a limit ---------------------------------------------------
#: Shown where text was cut.
ELLIPSIS = "…"
#: Inserted after a character to stop Discord reading a mention, link or markup there.
ZWSP = "\u200b"
#: Characters that extend the one before them into a single grapheme (a cut never separates them).
_EMOJI_MODIFIERS = ("\U0001f3fb", "\U0001f3ff")


def utf16_len(text: str) -> int:
    """Length as Discord counts it: UTF-16 code units (an emoji outside the BMP is 2)."""
    return len(text.encode("utf-16-le")) // 2


def _extends(ch: str) -> bool:
    """Whether `ch` belongs to the grapheme before it (combining mark, joiner, selector, modifier, tag)."""
    return (
        unicodedata.category(ch) in ("Mn", "Mc", "Me")
        or ch == ZWJ
        or _EMOJI_MODIFIERS[0] <= ch <= _EMOJI_MODIFIERS[1]
        or "\U000e0020" <= ch <= "\U000e007f"
    )


def _units(text: str) -> Iterator[str]:
    """`text` in pieces a cut must not split: `\\x` escapes, `x` + zero-width space, graphemes (cheaply).

    Lazy, so fitting a long text to a short limit only walks as far as the limit.
    """
    current = ""
    paired = False  # whether `current` is already a pair of regional indicators
    i, n = 0, len(text)
    while i < n:
        if i + 1 < n and (text[i] == "\\" or text[i + 1] == ZWSP):
            piece, i = text[i : i + 2], i + 2
        else:
            piece, i = text[i], i + 1
        if current and (
            _extends(piece[0])
            or current.endswith(ZWJ)
            or (_is_regional(piece) and len(current) == 1 and _is_regional(current) and not paired)
        ):
            paired = _is_regional(piece)
            current += piece
        else:
            if current:
                yield current
            current, paired = piece, False
    if current:
        yield current


def _is_regional(piece: str) -> bool:
    """A regional indicator letter; two make a flag (🇫🇷)."""
    return "\U0001f1e6" <= piece[0] <= "\U0001f1ff"


def fit(text: str, limit: int) -> str:
    """`text` trimmed, and cut with `…` to at most `limit` UTF-16 units, between whole units.

    Works on already escaped text: an escape (`\\_`), a defused mention (`@` + zero-width
    space) or an emoji sequence is kept whole or dropped whole, so a cut never leaves a
    stray backslash that would escape the markup after it.
    """
    text = text.strip()
    if utf16_len(text) <= limit:
        return text
    if limit < 1:
        return ""
    budget, used = limit - utf16_len(ELLIPSIS), 0
    kept: list[str] = []
    for unit in _units(text):
        used += len(unit) if unit.isascii() else utf16_len(unit)
        if used > budget:
            break
        kept.append(unit)
    while kept and kept[-1][-1].isspace():  # a trailing space, or an escaped one (`\ `)
        kept.pop()
    return "".join(kept) + ELLIPSIS


def plain(text: str, limit: int) -> str:
    """User text for places Discord shows as plain text (embed footers): visible, one line, fitted."""
    return fit(clean_text(text), limit)


def inline_code(text: str, limit: int) -> str:
    """User text inside a code span (`` `like this` ``), at most `limit` UTF-16 units with the backticks.

    Nothing is escaped inside a code span (a backslash would show), so backticks, which
    would end it, become `ˋ` (U+02CB); mentions and markdown are inert there anyway.
    """
    inner = fit(clean_text(text).replace("`", "\u02cb"), max(limit - 2, 1))
    return f"`{inner or ' '}`"
