"""The service: from what the user typed to ranked scores.

Parses labels, applies the prompt template, asks an embedder for vectors and
scores them (cosine; softmax of 100 x cosine). Shared by the Discord cog and
the CLI. It depends only on the small `Embedder` protocol, so it is tested
with the real engine and, for pure logic, with a plain numpy stand-in.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from bot import labels as label_parsing
from bot.config import Settings
from bot.errors import EngineError, UserFacingError
from bot.scoring import Score, cosine_similarities, rank, zero_shot_probabilities


class Embedder(Protocol):
    """What the service needs from the engine."""

    async def fit_texts(self, texts: Sequence[str]) -> list[tuple[str, bool]]: ...

    async def embed_texts(self, texts: Sequence[str]) -> np.ndarray: ...

    async def embed_image(self, data: bytes) -> np.ndarray: ...

    async def embed_image_and_thumbnail(self, data: bytes) -> tuple[np.ndarray, bytes | None]: ...

    def admit(self) -> contextlib.AbstractAsyncContextManager[int]: ...


@dataclass(frozen=True, slots=True)
class Ranking:
    """A ranked answer, with what the reply needs to explain it."""

    scores: list[Score]
    template: str | None = None
    #: Labels (as given) whose prompt was cut to CLIP's 77-token context.
    truncated: list[str] = field(default_factory=list)
    subject_truncated: bool = False
    elapsed_s: float = 0.0
    #: `/classify`: a small JPEG of the image (longest side 256 px, on white) for the reply,
    #: made from the same decode; None when not asked for (or for `/similar`).
    thumbnail: bytes | None = None

    @property
    def best(self) -> Score:
        return self.scores[0]


class ClipService:
    """`/classify` and `/similar`, independent of any front end."""

    def __init__(self, embedder: Embedder, settings: Settings) -> None:
        self.embedder = embedder
        self.settings = settings

    # -- validation (cheap, before any waiting) -------------------------------
    def parse_classify(self, labels: str | Iterable[str], template: str | None) -> tuple[list[str], str | None]:
        """Labels and template, or a one-line `LabelError`."""
        parsed = label_parsing.parse_labels(
            labels, min_count=self.settings.min_labels, max_count=self.settings.max_labels
        )
        return parsed, label_parsing.parse_template(template, self.settings.clip_default_template)

    def parse_similar(self, text: str, others: str | Iterable[str]) -> tuple[str, list[str]]:
        """Subject phrase and phrases to compare with, or a `LabelError`."""
        return (
            label_parsing.parse_phrase(text),
            label_parsing.parse_others(others, max_count=self.settings.max_labels),
        )

    def admit(self) -> contextlib.AbstractAsyncContextManager[int]:
        """A place in the queue (raises `BusyError` when it is full)."""
        return self.embedder.admit()

    # -- the work ---------------------------------------------------------------
    async def classify(
        self, image: bytes, labels: Sequence[str], template: str | None, *, thumbnail: bool = True
    ) -> Ranking:
        """Zero-shot classify `image` over already-parsed `labels`.

        With `thumbnail` (the default) the ranking carries a small JPEG of the image
        for the reply (Discord's link to the upload expires); it costs ~1 ms of the
        same decode.
        """
        started = time.perf_counter()
        async with self._engine_errors():
            # The image goes first: it reaches the model's thread (one turn of the loop)
            # before the labels are looked up, so decoding it overlaps with that.
            image_task = asyncio.ensure_future(self._embed_image(image, thumbnail))
            try:
                await asyncio.sleep(0)
                prompts, truncated = await self._prompts(labels, template)
                text_vecs = await self.embedder.embed_texts(prompts)
                image_vec, small = await image_task
            except BaseException:
                image_task.cancel()
                await asyncio.gather(image_task, return_exceptions=True)
                raise
        cosines = cosine_similarities(image_vec, text_vecs)
        scores = rank(labels, prompts, cosines, zero_shot_probabilities(cosines))
        return Ranking(
            scores=scores,
            template=template,
            truncated=[labels[i] for i in truncated],
            elapsed_s=time.perf_counter() - started,
            thumbnail=small,
        )

    async def _embed_image(self, image: bytes, thumbnail: bool) -> tuple[np.ndarray, bytes | None]:
        if thumbnail:
            return await self.embedder.embed_image_and_thumbnail(image)
        return await self.embedder.embed_image(image), None

    async def similar(self, text: str, others: Sequence[str]) -> Ranking:
        """Cosine similarity of `text` to each of `others`, ranked (no template)."""
        started = time.perf_counter()
        async with self._engine_errors():
            (subject, subject_cut), *_ = await self.embedder.fit_texts([text])
            prompts, truncated = await self._prompts(others, None)
            vecs = await self.embedder.embed_texts([subject, *prompts])
        cosines = cosine_similarities(vecs[0], vecs[1:])
        return Ranking(
            scores=rank(others, prompts, cosines),
            truncated=[others[i] for i in truncated],
            subject_truncated=subject_cut,
            elapsed_s=time.perf_counter() - started,
        )

    async def _prompts(self, items: Sequence[str], template: str | None) -> tuple[list[str], list[int]]:
        """Templated prompts that fit CLIP's context, and the indices that were cut."""
        fitted = await self.embedder.fit_texts([label_parsing.apply_template(template, item) for item in items])
        return [prompt for prompt, _ in fitted], [index for index, (_, cut) in enumerate(fitted) if cut]

    @contextlib.asynccontextmanager
    async def _engine_errors(self) -> AsyncIterator[None]:
        """User mistakes pass through; anything else becomes an `EngineError`."""
        try:
            yield
        except (UserFacingError, EngineError):
            raise
        except Exception as exc:
            raise EngineError(f"CLIP failed: {type(exc).__name__}") from exc
