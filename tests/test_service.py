"""The service's own logic (prompts, fitting priority, ties), with a plain stand-in embedder.

No model here, and no claim about classification quality: the stand-in's vectors are
deterministic noise. What is checked is what the service decides before and after
the embedder: which prompt each label gets, and what the ranking says about it.
Classification itself is tested on the real tiny CLIP in test_engine.py.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
import pytest

from bot.engine.backend import ImageEmbedding
from bot.errors import BusyError, LabelError
from bot.service import ClipService, ModelInfo
from tests.support.settings import make_settings

#: The stand-in's context, in characters (CLIP's is 75 tokens).
CONTEXT = 20


class CharEmbedder:
    """`Embedder` with a 20-character context, cut at word boundaries (else characters)."""

    def __init__(self) -> None:
        self.fitted: list[str] = []
        self.embedded: list[str] = []

    async def fit_texts(self, texts: Sequence[str]) -> list[tuple[str, bool]]:
        self.fitted += texts
        out = []
        for text in texts:
            if len(text) <= CONTEXT:
                out.append((text, False))
                continue
            words, cut = text.split(" "), ""
            for word in words:
                longer = f"{cut} {word}" if cut else word
                if len(longer) > CONTEXT:
                    break
                cut = longer
            out.append((cut or text[:CONTEXT], True))
        return out

    async def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        self.embedded += texts
        return np.stack([_vector(text) for text in texts])

    async def embed_image(self, data: bytes, *, background: bool = False, requester: object = None) -> np.ndarray:
        return _vector(data.decode())

    async def embed_upload(
        self, data: bytes, *, thumbnail: bool = True, background: bool = False, requester: object = None
    ) -> ImageEmbedding:
        return ImageEmbedding(_vector(data.decode()))

    @property
    def info(self) -> ModelInfo | None:
        return None

    def warming_up(self) -> str | None:
        return None


def _vector(text: str) -> np.ndarray:
    seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
    return np.random.default_rng(seed).standard_normal(8).astype(np.float32)


@pytest.fixture
def service() -> ClipService:
    return ClipService(CharEmbedder(), make_settings())


def prompts(ranking_scores: Sequence[object]) -> dict[str, str]:
    return {s.label: s.prompt for s in ranking_scores}  # type: ignore[attr-defined]


async def test_short_labels_get_the_template(service: ClipService) -> None:
    ranking = await service.classify(b"img", ["cat", "dog"], "a {} photo")
    assert prompts(ranking.scores) == {"cat": "a cat photo", "dog": "a dog photo"}
    assert ranking.truncated == [] and ranking.template_dropped == []


async def test_a_label_too_long_for_the_template_is_used_alone_not_cut_away(service: ClipService) -> None:
    label = "猫" * 15  # fits alone (15), not with the template (25); no spaces to cut at
    ranking = await service.classify(b"img", ["cat", label], "a photo of {}")
    assert prompts(ranking.scores) == {"cat": "a photo of cat", label: label}
    assert ranking.template_dropped == [label] and ranking.truncated == []


async def test_a_label_too_long_even_alone_is_cut_itself(service: ClipService) -> None:
    label = "x" * 50
    ranking = await service.classify(b"img", ["cat", label], "a photo of {}")
    assert prompts(ranking.scores)[label] == "x" * CONTEXT
    assert ranking.truncated == [label] and ranking.template_dropped == [label]
    raw = await service.classify(b"img", ["cat", label], None)
    assert raw.truncated == [label] and raw.template_dropped == []


async def test_labels_that_become_the_same_prompt_are_refused_naming_both(service: ClipService) -> None:
    first, second = "the same long start one", "The same long start two"
    with pytest.raises(LabelError) as caught:
        await service.classify(b"img", [first, second, "cat"], None)
    message = str(caught.value)
    assert "\n" not in message and "`the same long start one`" in message and "`The same long start two`" in message
    embedder = service.embedder
    assert isinstance(embedder, CharEmbedder) and embedder.embedded == [], "refused before any embedding"


async def test_a_label_alone_equal_to_another_templated_prompt_is_a_tie(service: ClipService) -> None:
    long = "photo of a red cat"  # too long with the template, so used alone: the other's prompt
    with pytest.raises(LabelError, match="look the same"):
        await service.classify(b"img", ["red cat", long], "photo of a {}")


async def test_similar_reports_the_subject_and_the_phrases_cut(service: ClipService) -> None:
    subject = "a subject phrase that is rather long"
    ranking = await service.similar(subject, ["short", "another phrase that is too long"])
    assert ranking.subject_truncated
    assert ranking.truncated == ["another phrase that is too long"] and ranking.template_dropped == []
    assert prompts(ranking.scores)["another phrase that is too long"] == "another phrase that"


async def test_the_queue_is_bounded_and_says_where_each_request_stands() -> None:
    service = ClipService(CharEmbedder(), make_settings(max_pending=2))
    async with service.admit() as first, service.admit() as second:
        assert (first, second) == (0, 1) and service.pending == 2
        with pytest.raises(BusyError, match="try again"):
            async with service.admit():
                pass
    async with service.admit() as again:
        assert again == 0
    assert service.pending == 0


async def test_a_label_error_is_not_held_up_by_the_image() -> None:
    """`classify` embeds the image and the labels together; a label that fails ends the request
    at once (the image's work is cancelled), not after the image is done."""
    import asyncio

    class SlowImages(CharEmbedder):
        cancelled = False

        async def embed_upload(
            self, data: bytes, *, thumbnail: bool = True, background: bool = False, requester: object = None
        ) -> ImageEmbedding:
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                SlowImages.cancelled = True
                raise
            raise AssertionError("unreachable")

        async def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
            raise LabelError("no such label")

    service = ClipService(SlowImages(), make_settings())
    async with asyncio.timeout(5):
        with pytest.raises(LabelError, match="no such label"):
            await service.classify(b"cat", ["cat", "dog"], None)
    assert SlowImages.cancelled
