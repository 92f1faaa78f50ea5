"""Fitting text to a limit as Discord counts it, without cutting an escape or a grapheme (pure)."""

from __future__ import annotations

import discord
import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.render import ELLIPSIS, ZWSP, _units, fit, inline_code, plain, utf16_len

NASTY = "_*~|>@#<:`\\[]()-\u202e\u2066\u200f abcé😀👍🏽🇫🇷\u0301"


def test_utf16_len_counts_astral_characters_twice() -> None:
    assert utf16_len("abc") == 3
    assert utf16_len("😀") == 2 and len("😀") == 1
    assert utf16_len("é") == 1 and utf16_len("e\u0301") == 2


def test_short_text_is_only_trimmed() -> None:
    assert fit("  cat  ", 10) == "cat"
    assert fit("cat", 3) == "cat"


def test_cut_text_ends_with_an_ellipsis_within_the_limit() -> None:
    assert fit("abcdefghij", 5) == "abcd…"
    assert fit("ab cdefghij", 4) == "ab…", "no space before the ellipsis"
    assert fit("😀😀😀", 4) == "😀…", "an emoji is never split into half a surrogate pair"
    assert fit("abc", 0) == ""


@pytest.mark.parametrize(
    ("text", "whole"),
    [
        ("\\_" * 10, "\\_"),  # markdown escapes
        (f"@{ZWSP}" * 10, f"@{ZWSP}"),  # defused mentions
        ("👨\u200d👩\u200d👧" * 5, "👨\u200d👩\u200d👧"),  # a ZWJ family
        ("🇫🇷🇩🇪🇯🇵🇬🇧", None),  # flags: pairs of regional indicators
        ("e\u0301" * 10, "e\u0301"),  # a letter and its combining accent
        ("👍🏽" * 10, "👍🏽"),  # emoji and skin tone
    ],
)
def test_cuts_fall_between_whole_units(text: str, whole: str | None) -> None:
    for limit in range(1, utf16_len(text)):
        cut = fit(text, limit)
        assert utf16_len(cut) <= limit
        body = cut.removesuffix(ELLIPSIS)
        assert text.startswith(body)
        if whole is not None:
            assert len(body) % len(whole) == 0, (limit, cut)
    assert [len(u) for u in _units("🇫🇷🇩🇪🇯🇵")] == [2, 2, 2]


@given(st.text(alphabet=NASTY, max_size=300), st.integers(min_value=0, max_value=400))
def test_fit_of_escaped_text_never_leaves_a_stray_backslash(raw: str, limit: int) -> None:
    escaped = discord.utils.escape_markdown(raw, ignore_links=False).replace("@", "@" + ZWSP)
    cut = fit(escaped, limit)
    assert utf16_len(cut) <= limit
    body = cut.removesuffix(ELLIPSIS)
    units = list(_units(escaped.strip()))
    prefixes = {"".join(units[:k]) for k in range(len(units) + 1)}
    assert body in prefixes, "a cut only ever falls between whole units"
    trailing = len(body) - len(body.rstrip("\\"))
    assert trailing % 2 == 0, "no lone backslash to escape what follows"
    assert "@" not in body.replace("@" + ZWSP, ""), "every @ keeps its zero-width space"


def test_inline_code_replaces_backticks_and_escapes_nothing() -> None:
    assert inline_code("my_file`s *name*.png", 60) == "`my_file\u02cbs *name*.png`"
    long = inline_code("x" * 500, 20)
    assert utf16_len(long) <= 20 and long.startswith("`") and long.endswith("…`")
    assert inline_code("\u202eevil\u200b", 20) == "`evil`", "bidi and invisible characters go"
    assert inline_code("", 10) == "` `"


def test_plain_keeps_markdown_but_drops_controls() -> None:
    assert plain("a_{}_b\u202e\x07\n c", 100) == "a_{}_b c"
    assert utf16_len(plain("😀" * 300, 101)) <= 101
