"""The sessions the engine swaps in after start-up (`bot.engine.sessions`).

The text graph runs prompts at their real length once the rewrite has verified;
the visual session's threads stop spinning after each run. Real ONNX sessions
throughout (the tiny trained CLIP, loaded by inference's `Clip`).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bot.engine import ClipEngine, sessions, text_graph
from bot.engine.loading import import_clip_class
from tests.support.settings import make_settings


class RecordingSession:
    """Wraps an onnxruntime session and records the shape of each token batch fed to it."""

    def __init__(self, session: Any) -> None:
        self._session = session
        self.shapes: list[tuple[int, ...]] = []

    def get_inputs(self) -> Any:
        return self._session.get_inputs()

    def run(self, outputs: Any, feed: dict[str, np.ndarray]) -> Any:
        self.shapes.extend(tuple(value.shape) for value in feed.values())
        return self._session.run(outputs, feed)


def cached_text_graphs(engine: ClipEngine) -> list[Path]:
    return sorted((Path(engine.settings.model_cache_dir) / "clipbot" / "text-real-length").glob("*.onnx"))


async def test_prompts_run_at_their_real_length_with_the_seed_s_embeddings(engine: ClipEngine) -> None:
    assert engine.backend.text_mode == "real length"
    assert engine.info is not None
    seed = import_clip_class()(model_id=engine.info.model_id, onnxruntime_execution_providers=["CPUExecutionProvider"])
    # Unseen texts (the session engine caches what other tests embedded).
    prompts = ["a photo of a never seen label", "dogfish", "a drawing of a small red bicycle leaning on a wall"]
    recording = RecordingSession(engine.backend._text_session)
    engine.backend._text_session = recording
    try:
        ours = await engine.embed_texts(prompts)
    finally:
        engine.backend._text_session = recording._session
    tokenizer = __import__("clip").clip._tokenizer
    longest = max(len(tokenizer.encode(prompt)) for prompt in prompts) + 2  # start and end markers
    assert recording.shapes == [(3, longest)], "one batch, cut to the longest prompt"
    assert longest < 20
    want = seed.embed_text(prompts)  # the seed: 77 positions, the original graph
    np.testing.assert_allclose(ours, want, rtol=0, atol=1e-5 * float(np.abs(want).max()))


async def test_the_rewritten_graph_is_cached_and_a_damaged_one_rebuilt(engine: ClipEngine) -> None:
    (cached,) = cached_text_graphs(engine)
    built = cached.stat().st_mtime_ns
    second = ClipEngine(make_settings())
    await second.start()
    await second.settled()
    assert second.backend.text_mode == "real length" and cached.stat().st_mtime_ns == built, "reused, not rebuilt"
    await second.aclose()

    cached.write_bytes(b"not an onnx file")
    source_key = cached.name.split("-")[0]
    older = cached.with_name(f"{source_key}-000000000000.onnx")  # this model's rewrite from an older version
    older.write_bytes(b"stale")
    third = ClipEngine(make_settings())
    await third.start()
    await third.settled()
    assert third.backend.text_mode == "real length"
    assert cached.stat().st_size > 1000, "rebuilt"
    assert cached_text_graphs(third) == [cached], "the older rewrite was removed: one file per model"
    await third.aclose()


async def test_a_graph_that_does_not_verify_keeps_77_tokens(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def refuse(*args: object, **kwargs: object) -> float:
        raise text_graph.UnsupportedTextGraph("rewritten text graph differs from the original by 0.5 > 0.0001")

    monkeypatch.setattr(text_graph, "verify_rewrite", refuse)
    engine = ClipEngine(make_settings())
    with caplog.at_level(logging.WARNING, logger="bot.engine"):
        await engine.start()
        await engine.settled()
    try:
        assert engine.backend.text_mode == "77 tokens" and engine.backend._text_session is None
        assert any("stays at 77 tokens" in r.getMessage() and "differs" in r.getMessage() for r in caplog.records)
        vectors = await engine.embed_texts(["a photo of a red circle", "a photo of a blue square"])
        assert vectors.shape[0] == 2 and np.isfinite(vectors).all(), "still serving, the old way"
    finally:
        await engine.aclose()


async def test_text_real_length_can_be_turned_off() -> None:
    engine = ClipEngine(make_settings(text_real_length=False))
    await engine.start()
    await engine.settled()
    try:
        assert engine.backend.text_mode == "77 tokens" and engine.backend._text_session is None
    finally:
        await engine.aclose()


async def test_visual_session_is_re_created_with_spinning_stop(engine: ClipEngine) -> None:
    options = engine.backend._model.visual_onnx_session.get_session_options()
    assert options.get_session_config_entry("session.force_spinning_stop") == "1"


async def test_a_visual_session_that_cannot_be_re_created_is_left_as_it_was(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def fail(model: object) -> object:
        raise RuntimeError("CUDA out of memory")

    monkeypatch.setattr(sessions, "tuned_visual_session", fail)
    engine = ClipEngine(make_settings())
    await engine.start()
    original = engine.backend._model.visual_onnx_session
    with caplog.at_level(logging.WARNING, logger="bot.engine"):
        await engine.settled()
    try:
        assert engine.backend._model.visual_onnx_session is original
        messages = [r.getMessage() for r in caplog.records]
        assert "visual session left as inference made it: CUDA out of memory" in messages
        assert engine.backend.text_mode == "real length", "the text graph is upgraded regardless"
        assert (await engine.embed_texts(["a photo of a red circle"])).shape[0] == 1
    finally:
        await engine.aclose()
