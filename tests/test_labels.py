"""Label, phrase and template parsing (pure; property tests with hypothesis)."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.errors import LabelError
from bot.labels import (
    MAX_LABEL_CHARS,
    apply_template,
    clean_text,
    parse_labels,
    parse_others,
    parse_phrase,
    parse_template,
    split_items,
)


def test_trims_drops_empties_and_duplicates_keeping_first_spelling() -> None:
    assert split_items(" cat ,dog,, Cat ,  bloody   mary ,dog ,") == ["cat", "dog", "bloody mary"]


def test_accepts_a_list_as_well_as_comma_text() -> None:
    assert split_items(["a", " b ", "A"]) == ["a", "b"]


def test_classify_needs_two_distinct_labels() -> None:
    with pytest.raises(LabelError, match="at least 2"):
        parse_labels("cat, Cat, cat", min_count=2, max_count=25)
    with pytest.raises(LabelError, match="no labels"):
        parse_labels(" , ,", min_count=2, max_count=25)


def test_too_many_labels_is_refused_with_the_count() -> None:
    raw = ",".join(f"label {i}" for i in range(40))
    with pytest.raises(LabelError, match="40 given, at most 25"):
        parse_labels(raw, min_count=2, max_count=25)
    assert len(parse_labels(",".join(f"l{i}" for i in range(25)), min_count=2, max_count=25)) == 25


def test_overlong_label_is_refused() -> None:
    with pytest.raises(LabelError, match="too long"):
        parse_labels(f"cat, {'x' * (MAX_LABEL_CHARS + 1)}", min_count=2, max_count=25)


def test_similar_accepts_one_other_phrase_and_refuses_none() -> None:
    assert parse_others("globe", max_count=25) == ["globe"]
    with pytest.raises(LabelError):
        parse_others(" ,, ", max_count=25)
    with pytest.raises(LabelError):
        parse_phrase("   \n ")
    assert parse_phrase("  hello \n world ") == "hello world"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (None, "a photo of a {}"),
        ("", "a photo of a {}"),
        ("none", None),
        ("OFF", None),
        ("{}", None),
        ("a drawing of {}", "a drawing of {}"),
        ("  a   {} in the wild ", "a {} in the wild"),
    ],
)
def test_template_choices(raw: str | None, expected: str | None) -> None:
    assert parse_template(raw, "a photo of a {}") == expected


@pytest.mark.parametrize("raw", ["a photo of a cat", "{} and {}", "a photo of {0}"])
def test_template_without_exactly_one_placeholder_is_refused(raw: str) -> None:
    with pytest.raises(LabelError, match=r"exactly once"):
        parse_template(raw, "a photo of a {}")


def test_template_is_filled_without_format_so_braces_are_harmless() -> None:
    assert apply_template("a {} {0} {name}", "cat") == "a cat {0} {name}"
    assert apply_template(None, "cat") == "cat"
    assert apply_template("a photo of a {}", "{}") == "a photo of a {}"


@given(st.lists(st.text(max_size=30), max_size=60))
def test_split_items_properties(parts: list[str]) -> None:
    items = split_items(",".join(parts))
    folded = [i.casefold() for i in items]
    assert len(folded) == len(set(folded)), "no duplicates"
    for item in items:
        assert item, "no empties"
        assert item == item.strip() and "  " not in item, "trimmed and collapsed"
        assert "," not in item
    # every non-empty input part is represented (by itself or an earlier duplicate)
    for part in ",".join(parts).split(","):
        cleaned = clean_text(part)
        if cleaned:
            assert cleaned.casefold() in folded


@given(st.text(max_size=400), st.integers(min_value=1, max_value=5), st.integers(min_value=5, max_value=30))
def test_parse_labels_either_returns_bounded_list_or_one_line_error(raw: str, low: int, high: int) -> None:
    try:
        labels = parse_labels(raw, min_count=low, max_count=high)
    except LabelError as exc:
        assert "\n" not in str(exc) and str(exc)
    else:
        assert low <= len(labels) <= high
        assert all(0 < len(label) <= MAX_LABEL_CHARS for label in labels)


# -- labels behave as a person expects --------------------------------------------
@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("red circle, red\u200b circle, red circle\u2060", ["red circle"]),  # zero-width space, word joiner
        ("caf\u00e9, cafe\u0301", ["caf\u00e9"]),  # NFC and NFD
        ("\ufeffcat, cat\u00ad, c\u200cat", ["cat"]),  # BOM, soft hyphen, zero-width non-joiner
        ("\u202edog\u202c, dog, \u2066dog\u2069, \u200fdog\u200e, \u061cdog", ["dog"]),  # bidi controls
        ("Dog\x07, dog\x1b[31m", ["Dog", "dog[31m"]),  # control characters (a terminal escape loses its ESC)
        ("\u3164, \u200b\u200b, \u2800, \u115f\u1160, \ufe0f, real", ["real"]),  # only invisible: empty
    ],
)
def test_invisible_differences_do_not_make_different_labels(raw: str, expected: list[str]) -> None:
    assert split_items(raw) == expected


def test_emoji_sequences_keep_their_joiners_and_tags() -> None:
    family, rainbow, england = (
        "👨\u200d👩\u200d👧",
        "🏳\ufe0f\u200d🌈",
        "🏴\U000e0067\U000e0062\U000e0065\U000e006e\U000e0067\U000e007f",
    )
    coder = "🧑🏽\u200d💻"
    assert split_items(f"{family}, {rainbow}, {england}, {coder}") == [family, rainbow, england, coder]
    assert clean_text("a\u200db \U000e0067x") == "ab x", "a joiner or tag outside an emoji sequence goes"


def test_only_invisible_labels_are_refused_like_empty_ones() -> None:
    with pytest.raises(LabelError, match="no labels"):
        parse_labels("\u200b, \u2060\u202e, \u3164", min_count=2, max_count=25)
    with pytest.raises(LabelError, match="empty"):
        parse_phrase("\u200b\u200b")
    assert parse_template("a photo of a {}\u202e", "x") == "a photo of a {}"


@given(st.text(max_size=200))
def test_clean_text_is_idempotent_visible_and_nfc(raw: str) -> None:
    cleaned = clean_text(raw)
    assert clean_text(cleaned) == cleaned
    assert unicodedata.is_normalized("NFC", cleaned)
    assert not any(unicodedata.category(ch) in ("Cc", "Cs") for ch in cleaned)
    assert all(
        unicodedata.category(ch) != "Cf" or ch == "\u200d" or "\U000e0020" <= ch <= "\U000e007f" for ch in cleaned
    )


def test_lone_surrogates_from_json_are_dropped() -> None:
    """JSON may carry `\\ud800` on its own; UTF-8 (the tokenizer, Discord) cannot encode it."""
    import json

    raw = json.loads('"cat\\ud800, dog\\udfff\\ud83d"')
    labels = split_items(raw)
    assert labels == ["cat", "dog"]
    assert all(label.encode("utf-8") for label in labels)
