"""The "Classify image" message command's form, driven through the Discord stand-in."""

from __future__ import annotations

from typing import Any

from tests.fakediscord.server import FakeDiscord

#: The message command's name, as Discord shows it under Apps.
COMMAND = "Classify image"


async def open_modal(fake: FakeDiscord, message: dict[str, Any], **who: object) -> Any:
    """Run the message command on `message`; the interaction's record once it answered (the form)."""
    rec = await fake.send_command(COMMAND, target_message=message, **who)  # type: ignore[arg-type]
    await rec.wait_for(lambda r: bool(r.callbacks), 5)
    return rec


def form_field(modal_callback: dict[str, Any], index: int) -> str:
    """The custom id of the form's `index`-th text input."""
    return str(modal_callback["data"]["components"][index]["component"]["custom_id"])
