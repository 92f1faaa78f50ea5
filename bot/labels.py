"""Parsing of user-supplied labels, phrases and prompt templates.

Pure functions: what the user typed in, a clean list (or a one-line
`LabelError`) out. Nothing here knows about CLIP or Discord.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

from bot.errors import LabelError

#: Longest label or phrase accepted, in characters; longer text than CLIP's 77 tokens is
#: cut to fit (and the reply says so), this only stops absurd input.
MAX_LABEL_CHARS = 1000
#: Words that switch the prompt template off.
NO_TEMPLATE_WORDS = frozenset({"none", "off", "no", "raw", "{}"})

_WHITESPACE = re.compile(r"\s+")
#: Zero-joiner that glues emoji into one (👨‍👩‍👧, 🏳️‍🌈): kept between emoji, dropped elsewhere.
ZWJ = "\u200d"
#: Letters and marks that draw nothing (Hangul fillers, braille blank, grapheme joiner); used for blank names.
_BLANKS = frozenset("\u115f\u1160\u3164\uffa0\u2800\u034f")
#: What `str.isprintable` lets through that `strip_invisible` may still drop.
_MAYBE_INVISIBLE = re.compile("[" + "".join(_BLANKS) + "\ufe00-\ufe0f\U000e0100-\U000e01ef]")
_BLACK_FLAG = "\U0001f3f4"  # tag characters after it spell a subdivision flag (England, Scotland)


def _is_tag(ch: str) -> bool:
    return "\U000e0020" <= ch <= "\U000e007f"


def _is_variation_selector(ch: str) -> bool:
    return "\ufe00" <= ch <= "\ufe0f" or "\U000e0100" <= ch <= "\U000e01ef"


def _emoji_like(ch: str) -> bool:
    return unicodedata.category(ch) in ("So", "Sk") or ch == "\ufe0f"


def strip_invisible(text: str) -> str:
    """Drop characters that draw nothing or reorder what is drawn.

    Format characters (zero-width space/non-joiner, word joiner, BOM, soft hyphen,
    bidi embeddings, overrides, isolates and marks), control characters other than
    whitespace, lone surrogates and blank fillers go; a zero-width joiner survives
    only between emoji, and tag characters only inside a flag sequence, so emoji
    sequences stay whole. `red\u200b circle` is then `red circle`, and a right-to-left
    override cannot flip how a label (or the text after it) is displayed.
    """
    if text.isprintable() and not _MAYBE_INVISIBLE.search(text):
        return text  # no Cc, Cf, Cs or separator but the space: the common case, at C speed
    out: list[str] = []
    for i, ch in enumerate(text):
        category = unicodedata.category(ch)
        if ch == ZWJ:
            after = text[i + 1 : i + 2]
            if out and after and _emoji_like(out[-1]) and unicodedata.category(after) == "So":
                out.append(ch)
        elif _is_tag(ch):
            if out and (out[-1] == _BLACK_FLAG or _is_tag(out[-1])):
                out.append(ch)
        elif category in ("Cf", "Cs") or ch in _BLANKS or (category == "Cc" and not ch.isspace()):
            continue
        elif category == "Mn" and _is_variation_selector(ch) and (not out or out[-1].isspace()):
            continue  # selects a glyph for nothing
        else:
            out.append(ch)
    return "".join(out)


def clean_text(text: str) -> str:
    """What a person sees: invisible characters dropped, NFC, whitespace collapsed and trimmed.

    NFC after stripping, so `e` + zero-width space + combining acute becomes `é`;
    composed and decomposed spellings (`café`) are then the same text.
    """
    return _WHITESPACE.sub(" ", unicodedata.normalize("NFC", strip_invisible(text))).strip()


def split_items(raw: str | Iterable[str]) -> list[str]:
    """Comma-separated text (or a list) to unique, trimmed, non-empty items.

    Duplicates are dropped case-insensitively after `clean_text`, keeping the first
    spelling, so `cat, Cat, cat `, `café` in NFC and NFD, and `red circle` with a
    zero-width space inside are one label each and ranks stay meaningful.
    """
    parts = raw.split(",") if isinstance(raw, str) else list(raw)
    seen: set[str] = set()
    items: list[str] = []
    for part in parts:
        item = clean_text(part)
        key = item.casefold()
        if item and key not in seen:
            seen.add(key)
            items.append(item)
    return items


def parse_labels(raw: str | Iterable[str], *, min_count: int, max_count: int) -> list[str]:
    """Labels for `/classify`, or a `LabelError` saying what is wrong."""
    labels = split_items(raw)
    if len(labels) < min_count:
        got = "no labels" if not labels else f"only {len(labels)} distinct label"
        raise LabelError(
            f"Give at least {min_count} different labels separated by commas (e.g. `cat, dog, car`); got {got}."
        )
    _check_count_and_length(labels, max_count, "labels")
    return labels


def parse_others(raw: str | Iterable[str], *, max_count: int) -> list[str]:
    """Phrases for `/similar` to compare against (one is a plain pair)."""
    others = split_items(raw)
    if not others:
        raise LabelError("Give at least one phrase to compare with, separated by commas.")
    _check_count_and_length(others, max_count, "phrases")
    return others


def parse_phrase(raw: str) -> str:
    """The subject phrase of `/similar`."""
    phrase = clean_text(raw)
    if not phrase:
        raise LabelError("The phrase to compare is empty.")
    if len(phrase) > MAX_LABEL_CHARS:
        raise LabelError(f"The phrase is too long ({len(phrase)} characters, at most {MAX_LABEL_CHARS}).")
    return phrase


def _check_count_and_length(items: list[str], max_count: int, noun: str) -> None:
    if len(items) > max_count:
        raise LabelError(f"Too many {noun}: {len(items)} given, at most {max_count}.")
    longest = max(items, key=len)
    if len(longest) > MAX_LABEL_CHARS:
        raise LabelError(f"One of the {noun} is too long ({len(longest)} characters, at most {MAX_LABEL_CHARS}).")


#: `template:ensemble`: each label's embedding is the mean of its normalized embeddings
#: under these templates. They are the 7 that OpenAI's CLIP notebook
#: "Prompt_Engineering_for_ImageNet" selected from its 80 ImageNet templates (forward
#: selection on ImageNet; the paper credits the full ensemble with +3.5 points of
#: zero-shot accuracy over one template, and the notebook the subset with most of it).
ENSEMBLE = "ensemble"
ENSEMBLE_TEMPLATES = (
    "itap of a {}.",
    "a bad photo of the {}.",
    "a origami {}.",
    "a photo of the large {}.",
    "a {} in a video game.",
    "art of the {}.",
    "a photo of the small {}.",
)


def parse_template(raw: str | None, default: str) -> str | None:
    """The prompt template to use, None when the user switched it off, or `ENSEMBLE`.

    A template must hold `{}` exactly once, where the label goes; it is filled
    with `str.replace`, never `str.format`, so other braces are harmless.
    """
    if raw is None:
        return default
    template = clean_text(raw)
    if not template:
        return default
    if template.casefold() in NO_TEMPLATE_WORDS:
        return None
    if template.casefold() == ENSEMBLE:
        return ENSEMBLE
    count = template.count("{}")
    if count != 1:
        raise LabelError(
            "The template must contain `{}` exactly once, where the label goes "
            "(e.g. `a photo of a {}`), or be `none` to use the labels as they are."
        )
    if len(template) > MAX_LABEL_CHARS:
        raise LabelError(f"The template is too long (at most {MAX_LABEL_CHARS} characters).")
    return template


def apply_template(template: str | None, label: str) -> str:
    """The prompt CLIP sees for one label."""
    return label if template is None else template.replace("{}", label)
