"""`/help`, `/about` and the `/similar` heatmap through the Discord stand-in."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from bot.engine import ClipEngine
from bot.heatmap import cell_colour, render_heatmap, scale_for
from tests.fakediscord.server import FakeDiscord
from tests.support.live_bot import running_bot
from tests.support.outcomes import EPHEMERAL, wait_outcome
from tests.support.shapes import CLASSES, shape_png

pytestmark = pytest.mark.asyncio(loop_scope="session")


async def test_help_answers_at_once_privately_with_the_real_limits(fake: FakeDiscord) -> None:
    async with running_bot(fake, wait_model=False, max_labels=12, user_cooldown_s=5, user_max_in_flight=2):
        rec = await fake.send_command("help", {})
        await rec.wait_for(lambda r: bool(r.callbacks))
    callback = rec.callbacks[0][1]
    assert callback["type"] == 4, "answered at once, no deferral"
    data = callback["data"]
    assert data["flags"] & EPHEMERAL
    text = str(data["embeds"][0])
    assert "/classify" in text and "/similar" in text and "heatmap" in text
    assert "2 to 12 comma-separated labels" in text
    assert "every 5 s" in text and "at most 2 of your requests at once" in text
    assert "server managers included" in text


async def test_about_reports_model_device_and_answers_served(fake: FakeDiscord, engine: ClipEngine) -> None:
    async with running_bot(fake, engine=engine):
        for seed in range(2):
            rec = await fake.send_command(
                "classify",
                {"labels": ", ".join(CLASSES)},
                attachments={"image": (shape_png("red circle", seed), "r.png", "image/png")},
            )
            await wait_outcome(rec)
        about = await fake.send_command("about", {})
        await about.wait_for(lambda r: bool(r.callbacks))
    data = about.callbacks[0][1]["data"]
    assert data["flags"] & EPHEMERAL
    fields = {f["name"]: f["value"] for f in data["embeds"][0]["fields"]}
    assert fields["Model"].startswith("local:tiny-clip on CPU, onnxruntime-fp32"), "the runtime and precision"
    assert "clipbot " in fields["Versions"] and "Roboflow Inference " in fields["Versions"]
    assert "/classify: 2 answers, median " in fields["Since start"]
    assert "never saved" in fields["What is stored"]


async def test_similar_heatmap_is_attached_and_its_cells_match_the_cosines(
    fake: FakeDiscord, engine: ClipEngine
) -> None:
    phrases = ["a photo of a red circle", "a photo of a blue square", "a photo of a red square", "green"]
    async with running_bot(fake, engine=engine) as bot:
        rec = await fake.send_command(
            "similar", {"text": phrases[0], "others": ", ".join(phrases[1:]), "heatmap": True}
        )
        kind, message = await wait_outcome(rec)
        expected = await bot.service.pairwise(phrases)
    assert kind == "answer"
    assert message["embeds"][0]["image"]["url"] == "attachment://similarity.png"
    [upload] = [f for f in rec.files if f.filename == "similarity.png"]
    pixels = np.asarray(Image.open(io.BytesIO(upload.data)).convert("RGB"))
    low, high = scale_for(expected)
    _, layout = render_heatmap(phrases, expected)
    for row, column in [(0, 1), (1, 2), (3, 0)]:
        x = layout.origin[0] + column * layout.cell + 2
        y = layout.origin[1] + row * layout.cell + 2
        assert tuple(pixels[y, x]) == cell_colour(expected[row, column], low, high)


async def test_similar_heatmap_needs_three_phrases(fake: FakeDiscord, engine: ClipEngine) -> None:
    async with running_bot(fake, engine=engine):
        rec = await fake.send_command("similar", {"text": "cat", "others": "dog", "heatmap": True})
        kind, message = await wait_outcome(rec)
    assert kind == "answer" and not rec.files
    assert "a heatmap needs 3+ phrases" in message["embeds"][0]["footer"]["text"]
