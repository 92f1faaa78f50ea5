"""The engine and service on the tiny trained CLIP, loaded through inference's own `Clip`.

No mock of the model anywhere in this file: classification results come from
real ONNX sessions created by Roboflow Inference from its (offline) cache.
"""

from __future__ import annotations

import asyncio
import io
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from benchmarks.probes import loop_lag_probe
from bot.engine import ClipEngine
from bot.engine.loading import explain_load_failure, stage_local_model
from bot.errors import EngineError, ImageError
from bot.scoring import cosine_similarities
from bot.service import ClipService
from tests.support.labels import CJK_LABEL
from tests.support.paths import TINY_MODEL_DIR
from tests.support.settings import TEST_CACHE_DIR, make_settings
from tests.support.shapes import CLASSES, HELDOUT_SEED, render, shape_png


async def test_model_is_loaded_by_inference_from_its_offline_cache(engine: ClipEngine) -> None:
    info = engine.info
    assert info is not None
    assert info.device == "CPU" and info.providers[0] == "CPUExecutionProvider"
    assert info.model_id.startswith("clip/local-")
    model = engine.backend._model
    assert type(model).__module__ == "inference.models.clip.clip_model"
    staged = Path(model.cache_file("visual.onnx"))
    assert staged.is_relative_to(TEST_CACHE_DIR) and staged.is_file() and not staged.is_symlink()
    assert info.resolution == model.visual_onnx_session.get_inputs()[0].shape[2]
    batcher = engine.backend.image_batcher
    assert engine.settings.max_batch_size is None and batcher.max_batch == 4, "the CPU's batch limit"


async def test_heldout_accuracy_at_least_90_percent(service: ClipService, capsys: pytest.CaptureFixture[str]) -> None:
    """Freshly generated images (unseen seed), all 12 classes as labels, default template."""
    rng = np.random.default_rng(HELDOUT_SEED)
    trials = 240
    jobs = []
    truth = []
    for i in range(trials):
        label = CLASSES[i % len(CLASSES)]
        truth.append(label)
        jobs.append(service.classify(shape_png(label, int(rng.integers(1 << 31))), CLASSES, "a photo of a {}"))
    rankings = await asyncio.gather(*jobs)
    correct = sum(r.best.label == t for r, t in zip(rankings, truth, strict=True))
    accuracy = correct / trials
    with capsys.disabled():
        print(f"\ntiny CLIP held-out top-1 through the service: {correct}/{trials} = {accuracy:.1%}")
    assert accuracy >= 0.90
    for ranking in rankings:
        probabilities = [s.probability for s in ranking.scores]
        assert sum(probabilities) == pytest.approx(1.0)
        assert probabilities == sorted(probabilities, reverse=True)


@pytest.fixture(scope="module")
def seed_clip(engine: ClipEngine):  # type: ignore[no-untyped-def]
    """The seed's own `inference.models.Clip` on the same cached files, untouched by our engine."""
    from bot.engine.loading import import_clip_class

    assert engine.info is not None
    return import_clip_class()(model_id=engine.info.model_id, onnxruntime_execution_providers=["CPUExecutionProvider"])


@pytest.mark.parametrize("image_format", ["PNG", "JPEG"])
async def test_cosines_equal_the_seed_compare(
    engine: ClipEngine,
    service: ClipService,
    seed_clip,
    tmp_path: Path,
    image_format: str,  # type: ignore[no-untyped-def]
) -> None:
    """Our ranking gives the same cosines as the seed's own `Clip.compare` on that model
    (its 77-token text graph and full-picture resize; our real-length graph and fused resize)."""
    assert engine.backend.text_mode == "real length"
    labels = ["red circle", "blue square", "yellow triangle", "green circle"]
    image = tmp_path / f"shape.{image_format.lower()}"
    buffer = io.BytesIO()
    # Non-square and larger than the model's input: exercises resize and centre crop.
    picture = render("blue square", np.random.default_rng(7), size=200).resize((520, 390), Image.Resampling.BICUBIC)
    picture.save(buffer, format=image_format)
    image.write_bytes(buffer.getvalue())
    ranking = await service.classify(image.read_bytes(), labels, "a photo of a {}")
    seed = seed_clip.compare(subject=str(image), prompt=[f"a photo of a {label}" for label in labels])
    by_label = {s.label: s.cosine for s in ranking.scores}
    for label, expected in zip(labels, seed, strict=True):
        assert by_label[label] == pytest.approx(float(expected[0]), abs=1e-4)
    assert ranking.best.label == "blue square"


async def test_similar_ranks_phrases_by_text_cosine(engine: ClipEngine, service: ClipService) -> None:
    ranking = await service.similar("a photo of a red circle", ["a photo of a red circle", "a photo of a blue square"])
    assert ranking.best.label == "a photo of a red circle"
    assert ranking.best.cosine == pytest.approx(1.0, abs=1e-5)
    assert all(s.probability is None for s in ranking.scores)
    vectors = engine.backend._model.embed_text(["hello world", "globe", "cat", "dog"])
    expected = cosine_similarities(vectors[0], vectors[1:])
    ranking = await service.similar("hello world", ["globe", "cat", "dog"])
    got = {s.label: s.cosine for s in ranking.scores}
    np.testing.assert_allclose([got["globe"], got["cat"], got["dog"]], expected, atol=1e-5)


async def test_repeated_labels_cost_only_the_image(service: ClipService, engine: ClipEngine) -> None:
    labels = ["red square", "green triangle", "a label seen once"]
    data = shape_png("red square", 11)
    first = await service.classify(data, labels, "a drawing of a {}")
    misses = engine.text_cache_misses
    text_batches = len(engine.backend.text_batcher.batch_sizes)
    second = await service.classify(data, labels, "a drawing of a {}")
    assert engine.text_cache_misses == misses, "no label embedded again"
    assert len(engine.backend.text_batcher.batch_sizes) == text_batches, "the text encoder was not called"
    assert [(s.label, s.cosine) for s in first.scores] == [(s.label, s.cosine) for s in second.scores]


async def test_concurrent_images_are_batched_and_match_single_results() -> None:
    engine = ClipEngine(make_settings(max_batch_size=8))
    await engine.start()
    try:
        images = [shape_png(CLASSES[i], 100 + i) for i in range(12)]
        alone = [await engine.embed_image(data) for data in images]
        assert set(engine.backend.image_batcher.batch_sizes) == {1}, "a lone request runs alone, at once"
        together = await asyncio.gather(*(engine.embed_image(data) for data in images))
        assert max(engine.backend.image_batcher.batch_sizes) > 1, "concurrent requests shared a batch"
        assert max(engine.backend.image_batcher.batch_sizes) <= 8
        for a, b in zip(alone, together, strict=True):
            np.testing.assert_allclose(a, b, atol=1e-4)
    finally:
        await engine.aclose()


async def test_accelerator_path_prepares_images_alongside_and_gives_the_same_vectors() -> None:
    """With a GPU the engine decodes in the decode pool while a batch runs (no GPU here:
    the switch is flipped on a CPU engine, which runs the very same code)."""
    engine = ClipEngine(make_settings(max_batch_size=8))
    await engine.start()
    try:
        images = [shape_png(CLASSES[i], 500 + i) for i in range(6)] + [b"not an image"]
        in_batch = await asyncio.gather(*(engine.embed_image(data) for data in images), return_exceptions=True)
        engine.backend._prepare_in_batch = False
        alongside = await asyncio.gather(*(engine.embed_image(data) for data in images), return_exceptions=True)
        for a, b in zip(in_batch[:-1], alongside[:-1], strict=True):
            np.testing.assert_allclose(a, b, atol=1e-4)
        assert isinstance(in_batch[-1], ImageError) and isinstance(alongside[-1], ImageError)
    finally:
        await engine.aclose()


async def test_an_unreadable_image_in_a_shared_batch_fails_alone() -> None:
    """On a CPU images are decoded inside their batch; one bad upload must not sink the rest."""
    engine = ClipEngine(make_settings(max_batch_size=8))
    await engine.start()
    try:
        good = [shape_png(CLASSES[i], 400 + i) for i in range(4)]
        alone = [await engine.embed_image(data) for data in good]
        batches_before = len(engine.backend.image_batcher.batch_sizes)
        uploads = [good[0], b"GIF89a broken", good[1], good[2], b"", good[3]]
        results = await asyncio.gather(*(engine.embed_image(data) for data in uploads), return_exceptions=True)
        assert max(list(engine.backend.image_batcher.batch_sizes)[batches_before:]) > 1, "they shared a batch"
        assert isinstance(results[1], ImageError) and "not an image" in str(results[1])
        assert isinstance(results[4], ImageError) and "empty" in str(results[4])
        for want, got in zip(alone, [results[0], results[2], results[3], results[5]], strict=True):
            assert isinstance(got, np.ndarray)
            np.testing.assert_allclose(got, want, atol=1e-4)
    finally:
        await engine.aclose()


async def test_extreme_aspect_ratio_image_is_classified(service: ClipService) -> None:
    """A 40000 x 2 strip: torchvision alone would resize it to ~1e9 pixels first."""
    buffer = io.BytesIO()
    Image.new("RGB", (40_000, 2), (215, 35, 35)).save(buffer, format="PNG")
    ranking = await asyncio.wait_for(service.classify(buffer.getvalue(), CLASSES, "a photo of a {}"), timeout=10)
    assert len(ranking.scores) == len(CLASSES)


async def test_text_longer_than_77_tokens_is_truncated_and_reported(service: ClipService) -> None:
    long_label = "red " + " ".join(["very"] * 120) + " circle"
    ranking = await service.classify(shape_png("red circle", 3), ["blue square", long_label], None)
    assert ranking.truncated == [long_label]
    cut = next(s for s in ranking.scores if s.label == long_label).prompt
    assert len(clip_tokenizer().encode(cut)) <= 75
    enormous_word = "x" * 2000
    subject = await service.similar(enormous_word, ["cat"])
    assert subject.subject_truncated


async def test_bad_image_is_a_user_error_and_the_engine_keeps_serving(service: ClipService) -> None:
    with pytest.raises(ImageError):
        await service.classify(b"not an image", ["a", "b"], None)
    ranking = await service.classify(shape_png("green circle", 5), CLASSES, "a photo of a {}")
    assert ranking.best.label == "green circle"


async def test_engine_failure_is_reported_and_the_next_request_is_served(
    service: ClipService, engine: ClipEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An onnxruntime error (say, out of memory) fails that request only."""
    real_predict = engine.backend._model.predict
    calls = 0

    def failing_once(batch: np.ndarray):  # type: ignore[no-untyped-def]
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("[ONNXRuntimeError] : 6 : RUNTIME_EXCEPTION : Failed to allocate memory")
        return real_predict(batch)

    monkeypatch.setattr(engine.backend._model, "predict", failing_once)
    with pytest.raises(EngineError):
        await service.classify(shape_png("red circle", 1), CLASSES, "a photo of a {}")
    ranking = await service.classify(shape_png("red circle", 1), CLASSES, "a photo of a {}")
    assert ranking.best.label == "red circle"


async def test_event_loop_stays_free_while_clip_works(service: ClipService) -> None:
    """A 5 ms ticker keeps ticking while 24 classifications run."""
    images = [shape_png(CLASSES[i % 12], 300 + i) for i in range(24)]
    async with loop_lag_probe(0.005) as lags:
        await asyncio.gather(*(service.classify(data, CLASSES, "a photo of a {}") for data in images))
    print(f"\nloop lag during 24 classifications: max {max(lags) * 1000:.1f} ms over {len(lags)} ticks")
    assert max(lags) < 0.15


def test_model_folder_missing_a_file_is_one_clear_line(tmp_path: Path) -> None:
    (tmp_path / "visual.onnx").write_bytes((TINY_MODEL_DIR / "visual.onnx").read_bytes())
    from bot.errors import StartupError

    with pytest.raises(StartupError, match=r"has no textual\.onnx"):
        stage_local_model(tmp_path)
    with pytest.raises(StartupError, match="not a folder"):
        stage_local_model(tmp_path / "nope")


def test_load_failure_message_never_shows_the_roboflow_key() -> None:
    settings = make_settings(roboflow_api_key="rf_SECRET_key_123", clip_model_dir=None)
    failure = RuntimeError("403 Forbidden for url https://api.roboflow.com/clip?api_key=rf_SECRET_key_123")
    message = explain_load_failure(settings, failure)
    assert "rf_SECRET_key_123" not in message and "[redacted]" in message
    assert message.startswith("Could not load CLIP model clip/ViT-B-16") and "\n" not in message


# -- fitting text to CLIP's context (the real tokenizer) ------------------------------


def tokens(engine: ClipEngine, text: str) -> int:
    return len(clip_tokenizer().encode(text))


def clip_tokenizer() -> Any:
    """rf-clip's shared tokenizer (inference's own), which CLIP's tokenize uses."""
    import clip

    return clip.clip._tokenizer


async def test_a_label_too_long_with_the_template_is_used_alone_not_cut_away(
    service: ClipService, engine: ClipEngine
) -> None:
    """Before: the CJK label was cut (by words; it has none) down to "a photo of a", which then won."""
    assert tokens(engine, f"a photo of a {CJK_LABEL}") > 75 >= tokens(engine, CJK_LABEL)
    ranking = await service.classify(shape_png("red circle", 3), ["red circle", CJK_LABEL], "a photo of a {}")
    prompt = next(s.prompt for s in ranking.scores if s.label == CJK_LABEL)
    assert prompt == CJK_LABEL, "the label whole, without the template's words"
    assert ranking.template_dropped == [CJK_LABEL] and ranking.truncated == []
    assert ranking.best.label == "red circle"


async def test_a_word_too_long_even_alone_is_cut_by_characters_as_far_as_it_fits(
    service: ClipService, engine: ClipEngine
) -> None:
    rng = np.random.default_rng(11)
    for alphabet in ("abcdefghijklmnopqrstuvwxyz", "中文字符测试漢字かなカナ", "😀🎉👍🏽ab", "é_-*@1"):
        word = "".join(rng.choice(list(alphabet), 1000))
        ranking = await service.classify(shape_png("red circle", 3), ["red circle", word], "a photo of a {}")
        prompt = next(s.prompt for s in ranking.scores if s.label == word)
        assert word.startswith(prompt) and len(prompt) > 20
        assert tokens(engine, prompt) <= 75 < tokens(engine, word[: len(prompt) + 1]), "as long as fits"
        assert ranking.truncated == [word] and ranking.template_dropped == [word]


def reference_fit(engine: ClipEngine, text: str) -> str:
    """The longest word prefix in 75 tokens, by trying every one (the slow, obvious way)."""
    words = text.split(" ")
    best = ""
    for end in range(1, len(words) + 1):
        if tokens(engine, " ".join(words[:end])) <= 75:
            best = " ".join(words[:end])
    return best


async def test_word_fitting_matches_the_obvious_longest_prefix(engine: ClipEngine) -> None:
    rng = np.random.default_rng(5)
    vocabulary = ["cat", "a", "photo", "of", "antidisestablishment", "🐈", "中文", "x_y", "don't", "12345", "&amp;"]
    texts = [" ".join(rng.choice(vocabulary, int(rng.integers(5, 120)))) for _ in range(30)]
    fitted = await engine.fit_texts(texts)
    for text, (prompt, cut) in zip(texts, fitted, strict=True):
        if tokens(engine, text) <= 75:
            assert (prompt, cut) == (text, False)
        else:
            assert cut and prompt == reference_fit(engine, text)


async def test_fitting_long_labels_leaves_the_loop_free_and_the_cache_answers_on_it(
    engine: ClipEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """200 labels of 1000 random letters: about a second of BPE, which on the loop would hold
    it all that time; off it, the loop gets its turns.

    The bound is a share of the fitting's own duration, not a fixed time: on a busy machine
    both stretch, while a preempted tick (CI has seen 0.1 s) stays a small part of it.
    """
    rng = np.random.default_rng(int(time.time()))  # fresh words: nothing cached
    words = ["".join(rng.choice(list("abcdefghijklmnopqrstuvwxyz"), 1000)) for _ in range(200)]
    async with loop_lag_probe(0.005) as lags:
        started = time.perf_counter()
        fitted = await engine.fit_texts([f"a photo of a {word}" for word in words])
        took = time.perf_counter() - started
    p90 = float(np.percentile(lags, 90))
    print(f"\nloop lag fitting 200 x 1000 letters for {took:.2f} s: p90 {p90 * 1000:.1f} ms, max {max(lags):.3f} s")
    assert max(lags) < took / 3  # not held throughout
    assert p90 < 0.03  # nor passed over for the GIL (`bot.engine.tokenizer`)
    assert all(cut for _, cut in fitted)

    def no_thread(texts: object) -> None:
        raise AssertionError("a cached text went to the fitting thread")

    monkeypatch.setattr(engine.fitter, "_fit_many", no_thread)
    assert await engine.fit_texts([f"a photo of a {word}" for word in words]) == fitted


async def test_the_fitting_tokenizer_forgets_words_beyond_its_bound(
    engine: ClipEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("bot.engine.text.FIT_TOKENIZER_CACHE", 100)
    for start in range(0, 600, 50):
        await engine.fit_texts([f"w{i}x{start}" for i in range(start, start + 50)])
    assert len(engine.fitter._tokenizer.cache) <= 100 + 50 + 2
    assert engine.fitter._tokenizer.cache is not clip_tokenizer().cache


async def test_an_upload_that_misses_its_batch_rejoins_a_later_one(monkeypatch: pytest.MonkeyPatch) -> None:
    """On a CPU a batch waits `IN_BATCH_WAIT_S` for its uploads' decode workers; one still decoding
    then leaves the batch (so a slow or hostile upload holds nobody) and is embedded once decoded."""
    import bot.engine.local

    engine = ClipEngine(make_settings(max_batch_size=8), tune_sessions=False)
    await engine.start()
    try:
        images = [shape_png(CLASSES[i], 700 + i) for i in range(4)]
        in_time = await asyncio.gather(*(engine.embed_image(data) for data in images))
        batches = len(engine.backend.image_batcher.batch_sizes)
        monkeypatch.setattr(bot.engine.local, "IN_BATCH_WAIT_S", 0.0)  # every upload is late now
        late = await asyncio.gather(*(engine.embed_image(data) for data in images))
        ran = len(engine.backend.image_batcher.batch_sizes) - batches
        assert ran >= 2, "a batch that ran no model, then the rejoin"
        for a, b in zip(in_time, late, strict=True):
            np.testing.assert_allclose(a, b, atol=1e-4)
    finally:
        await engine.aclose()
