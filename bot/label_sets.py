"""`@name` inside a label list: replaced by that preset's labels.

Pure apart from the `resolve` callable it is given (the storage layer's
`PresetStore.resolve`, bound to the person and place), so the Discord layer,
the CLI and tests share it.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence

from bot.errors import LabelError
from bot.storage.presets import Preset

#: One comma-separated item that is exactly `@name`.
PRESET_REFERENCE = re.compile(r"^\s*@([A-Za-z0-9][A-Za-z0-9_-]{0,31})\s*$")
#: Most presets one label list may name.
MAX_REFERENCES = 5
#: Discord's own mentions: never preset names, so `@everyone` stays a (defused) label.
RESERVED = frozenset({"everyone", "here"})

Resolver = Callable[[str], Awaitable[Preset | None]]


def references(raw: str) -> list[str]:
    """The preset names a label list refers to, lower-cased, in order."""
    return [name for part in raw.split(",") if (name := _reference(part)) is not None]


def _reference(item: str) -> str | None:
    match = PRESET_REFERENCE.match(item)
    if match is None or match.group(1).lower() in RESERVED:
        return None
    return match.group(1).lower()


async def expand_presets(raw: str, resolve: Resolver) -> list[str]:
    """Comma-separated items with each `@name` replaced by its preset's labels.

    Returns the items (not re-joined: a preset's labels are kept whole), ready for
    `bot.labels.parse_labels`. An unknown name is a one-line `LabelError`.
    """
    if "@" not in raw:
        return raw.split(",")
    if len(references(raw)) > MAX_REFERENCES:
        raise LabelError(f"At most {MAX_REFERENCES} presets in one label list.")
    items: list[str] = []
    for part in raw.split(","):
        name = _reference(part)
        if name is None:
            items.append(part)
            continue
        preset = await resolve(name)
        if preset is None:
            raise LabelError(f"There is no preset named `@{name}` here; `/labels list` shows yours and this server's.")
        items.extend(preset.labels)
    return items


#: Discord's limits on an autocomplete answer (choices; name and string value lengths).
MAX_CHOICES = 25
CHOICE_CHARS = 100


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def suggestions(current: str, presets: Sequence[Preset], recent: Sequence[Sequence[str]]) -> list[tuple[str, str]]:
    """Autocomplete choices `(shown name, value)` for a label list being typed.

    The item being typed (after the last comma) is completed with matching presets
    (`presets` are already filtered by the caller's prefix query); while nothing but
    one item has been typed, the person's recent label sets that contain it are
    offered too, newest first. Values longer than Discord's 100 characters cannot be
    offered and are left out.
    """
    head, comma, last = current.rpartition(",")
    keep = f"{head}{comma} " if comma else ""
    typed = last.strip()
    preset_choices = []
    for preset in presets:
        value = f"{keep}@{preset.name}"
        if len(value) <= CHOICE_CHARS:
            where = "server" if preset.scope == "guild" else "yours"
            preset_choices.append((_short(f"@{preset.name} ({where}): {preset.label_text}", CHOICE_CHARS), value))
    recent_choices = []
    if not comma:
        needle = typed.casefold()
        for labels in recent:
            text = ", ".join(labels)
            if len(text) <= CHOICE_CHARS and needle in text.casefold():
                recent_choices.append((_short(f"recent: {text}", CHOICE_CHARS), text))
    first, second = (preset_choices, recent_choices) if typed.startswith("@") else (recent_choices, preset_choices)
    return [*first, *second][:MAX_CHOICES]
