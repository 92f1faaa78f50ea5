"""`@name` inside a label list: replaced by that preset's labels.

Pure apart from the `resolve` callable it is given (the storage layer's
`PresetStore.resolve`, bound to the person and place), so the Discord layer,
the CLI and tests share it.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

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
