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
from collections.abc import AsyncIterator, Awaitable, Hashable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

import numpy as np

from bot import labels as label_parsing
from bot.config import Settings
from bot.engine.backend import ImageEmbedding, ModelInfo
from bot.errors import BusyError, EngineError, ImageError, LabelError, UserFacingError
from bot.pacing import BackgroundPacer
from bot.render import inline_code
from bot.scoring import Score, cosine_similarities, normalize, rank, zero_shot_probabilities

A = TypeVar("A")
B = TypeVar("B")
T = TypeVar("T")

#: How much of a label an error message shows (UTF-16 units, with its backticks).
NAME_IN_ERROR = 42


class Embedder(Protocol):
    """What the service needs from the engine."""

    async def fit_texts(self, texts: Sequence[str]) -> list[tuple[str, bool]]: ...

    async def embed_texts(self, texts: Sequence[str]) -> np.ndarray: ...

    async def embed_image(
        self, data: bytes, *, background: bool = False, requester: Hashable | None = None
    ) -> np.ndarray: ...

    async def embed_upload(
        self, data: bytes, *, thumbnail: bool = True, background: bool = False, requester: Hashable | None = None
    ) -> ImageEmbedding: ...

    @property
    def info(self) -> ModelInfo | None: ...

    def warming_up(self) -> str | None: ...


@dataclass(frozen=True, slots=True)
class Ranking:
    """A ranked answer, with what the reply needs to explain it."""

    scores: list[Score]
    template: str | None = None
    #: Labels (as given) whose own text was cut to fit CLIP's 77-token context.
    truncated: list[str] = field(default_factory=list)
    subject_truncated: bool = False
    #: Labels (as given) used without the template, which left too little room for them.
    template_dropped: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0
    #: `/classify`: a small JPEG of the image (longest side 256 px, on white) for the reply,
    #: made from the same decode; None when not asked for (or for `/similar`).
    thumbnail: bytes | None = None
    #: Frames each image was embedded from (a clip's or an animation's few; 1: a still picture):
    #: `/classify` one entry, `/compare` one per image in order; empty for `/similar`.
    frames: tuple[int, ...] = ()

    @property
    def best(self) -> Score:
        return self.scores[0]


class ClipService:
    """`/classify` and `/similar`, independent of any front end."""

    def __init__(self, embedder: Embedder, settings: Settings) -> None:
        self.embedder = embedder
        self.settings = settings
        self._pending = 0
        #: Background classifications (`/autotag`) yield to interactive requests through it.
        self.background = BackgroundPacer(settings.autotag_busy_share)

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

    @contextlib.asynccontextmanager
    async def admit(self) -> AsyncIterator[int]:
        """Reserve a place for one request; yields how many are ahead of it.

        Raises `BusyError` at once when `max_pending` requests are in progress,
        so nobody waits forever behind a long queue.
        """
        if self._pending >= self.settings.max_pending:
            raise BusyError(
                f"I'm busy right now ({self._pending} requests in progress). Please try again in a few seconds."
            )
        ahead = self._pending
        self._pending += 1
        self.background.interactive()
        try:
            yield ahead
        finally:
            self._pending -= 1

    @property
    def pending(self) -> int:
        """Requests admitted and not yet finished (the queue depth)."""
        return self._pending

    @property
    def model_info(self) -> ModelInfo | None:
        """What model answers, and where (None while it loads)."""
        return self.embedder.info

    @property
    def runtime(self) -> str | None:
        """The visual encoder's runtime and precision (e.g. "openvino-bf16"), where the engine says."""
        runtime = getattr(self.embedder, "runtime", None)
        return runtime if isinstance(runtime, str) else None

    def warming_up(self) -> str | None:
        """While the model is being downloaded: how far along (e.g. "downloading CLIP: 45%")."""
        return self.embedder.warming_up()

    # -- the work ---------------------------------------------------------------
    async def classify(
        self,
        image: bytes,
        labels: Sequence[str],
        template: str | None,
        *,
        thumbnail: bool = True,
        requester: Hashable | None = None,
        background: bool = False,
    ) -> Ranking:
        """Zero-shot classify `image` over already-parsed `labels`.

        `requester` (e.g. the user's id) is whose decode allowance the image uses (`DECODES_PER_USER`).
        `background` work (`/autotag`) waits behind every interactive request in the engine, and
        is paced while people use the bot (`bot.pacing`).

        With `thumbnail` (the default) the ranking carries a small JPEG of the image
        for the reply (Discord's link to the upload expires), made from the same decode.
        """
        started = time.perf_counter()
        paced = self.background.turn() if background else contextlib.nullcontext()
        async with paced, self._engine_errors():
            # Together: the image's decode overlaps with looking up (or embedding) the labels.
            embedded, (prompts, truncated, dropped, text_vecs) = await _all_or_nothing(
                self.embedder.embed_upload(image, thumbnail=thumbnail, background=background, requester=requester),
                self.label_vectors(labels, template),
            )
        cosines = cosine_similarities(embedded.vector, text_vecs)
        scores = rank(labels, prompts, cosines, zero_shot_probabilities(cosines))
        return Ranking(
            scores=scores,
            template=template,
            truncated=[labels[i] for i in truncated],
            template_dropped=[labels[i] for i in dropped],
            elapsed_s=time.perf_counter() - started,
            thumbnail=embedded.thumbnail,
            frames=(embedded.frames,),
        )

    async def label_vectors(
        self, labels: Sequence[str], template: str | None
    ) -> tuple[list[str], list[int], list[int], np.ndarray]:
        """Prompts, cut and template-less indices, and one embedding per label.

        With `template:ensemble`, a label's embedding is the normalized mean of its
        normalized embeddings under each of `ENSEMBLE_TEMPLATES` (as CLIP's notebook
        builds zero-shot classifiers); all its prompts go to the encoder in one batch.
        """
        if template != label_parsing.ENSEMBLE:
            prompts, truncated, dropped = await self._prompts(labels, template)
            return prompts, truncated, dropped, await self.embedder.embed_texts(prompts)
        fitted = [await self._prompts(labels, each) for each in label_parsing.ENSEMBLE_TEMPLATES]
        vecs = await self.embedder.embed_texts([prompt for prompts, _, _ in fitted for prompt in prompts])
        per_template = normalize(vecs).reshape(len(fitted), len(labels), -1)
        truncated = sorted({i for _, cut, _ in fitted for i in cut})
        dropped = sorted({i for _, _, without in fitted for i in without})
        return fitted[0][0], truncated, dropped, normalize(per_template.mean(axis=0))

    async def similar(self, text: str, others: Sequence[str]) -> Ranking:
        """Cosine similarity of `text` to each of `others`, ranked (no template)."""
        started = time.perf_counter()
        async with self._engine_errors():
            (subject, subject_cut), *_ = await self.embedder.fit_texts([text])
            prompts, truncated, _ = await self._prompts(others, None)
            vecs = await self.embedder.embed_texts([subject, *prompts])
        cosines = cosine_similarities(vecs[0], vecs[1:])
        return Ranking(
            scores=rank(others, prompts, cosines),
            truncated=[others[i] for i in truncated],
            subject_truncated=subject_cut,
            elapsed_s=time.perf_counter() - started,
        )

    async def compare_images(
        self, images: Sequence[bytes], names: Sequence[str], *, requester: Hashable | None = None
    ) -> Ranking:
        """Images 2..n ranked by cosine similarity to the first (`names` label them).

        Each image goes through the same engine, batching and limits as `/classify`;
        a bad one fails the request with a line that says which it was (by position).
        The images share one decode allowance (`requester`'s, else this request's own), so
        ten crafted files hold `DECODES_PER_USER` decode workers, never all of them; the first
        bad one stops the rest (no decoding for an answer already given).
        """
        started = time.perf_counter()
        requester = requester if requester is not None else object()

        async def embed(position: int, data: bytes) -> ImageEmbedding:
            try:
                return await self.embedder.embed_upload(data, thumbnail=False, requester=requester)
            except ImageError as exc:
                raise ImageError(f"Image {position}: {exc}") from None

        async with self._engine_errors():
            embedded = await _every_or_nothing([embed(i, data) for i, data in enumerate(images, 1)])
        vecs = [each.vector for each in embedded]
        cosines = cosine_similarities(vecs[0], np.stack(vecs[1:]))
        return Ranking(
            scores=rank(names[1:], names[1:], cosines),
            elapsed_s=time.perf_counter() - started,
            frames=tuple(each.frames for each in embedded),
        )

    async def pairwise(self, texts: Sequence[str]) -> np.ndarray:
        """Cosine similarity of every pair of `texts` (n x n), fitted to CLIP's context.

        After `similar` on the same texts, every embedding comes from the cache.
        """
        async with self._engine_errors():
            prompts, _, _ = await self._prompts(texts, None)
            vecs = await self.embedder.embed_texts(prompts)
        unit = vecs / np.linalg.norm(vecs, axis=1, keepdims=True)
        return np.clip(unit @ unit.T, -1.0, 1.0)

    async def _prompts(self, items: Sequence[str], template: str | None) -> tuple[list[str], list[int], list[int]]:
        """Prompts that fit CLIP's context; indices of labels cut, and of those used without the template.

        The label has priority over the template's words: when both do not fit in 75
        tokens, the label is used alone, and only if it still does not fit is the label
        itself cut. Two labels whose prompts end up the same would tie exactly, so that
        is refused with a `LabelError` naming them.
        """
        fitted = await self.embedder.fit_texts([label_parsing.apply_template(template, item) for item in items])
        prompts = [prompt for prompt, _ in fitted]
        cut = [index for index, (_, was_cut) in enumerate(fitted) if was_cut]
        dropped: list[int] = []
        if template is not None and cut:
            dropped = cut
            alone = await self.embedder.fit_texts([items[index] for index in dropped])
            cut = []
            for index, (prompt, was_cut) in zip(dropped, alone, strict=True):
                prompts[index] = prompt
                if was_cut:
                    cut.append(index)
        if cut or dropped:
            _refuse_ties(items, prompts)
        return prompts, cut, dropped

    @contextlib.asynccontextmanager
    async def _engine_errors(self) -> AsyncIterator[None]:
        """User mistakes pass through; anything else becomes an `EngineError`."""
        try:
            yield
        except (UserFacingError, EngineError):
            raise
        except Exception as exc:
            raise EngineError(f"CLIP failed: {type(exc).__name__}") from exc


async def _all_or_nothing(first: Awaitable[A], second: Awaitable[B]) -> tuple[A, B]:
    """Both results, started in this order; if either fails, the other is cancelled (and
    awaited) before the error rises as it is (not wrapped in an exception group)."""
    one, two = asyncio.ensure_future(first), asyncio.ensure_future(second)
    try:
        await asyncio.wait((one, two), return_when=asyncio.FIRST_EXCEPTION)
        for task in (one, two):
            if task.done():
                task.result()  # raises its failure, if it failed
        return one.result(), two.result()
    except BaseException:
        for task in (one, two):
            task.cancel()
        await asyncio.gather(one, two, return_exceptions=True)
        raise


async def _every_or_nothing(awaitables: Sequence[Awaitable[T]]) -> list[T]:
    """Every result, in order; at the first failure the rest are cancelled (and awaited) and
    that failure rises as it is."""
    tasks = [asyncio.ensure_future(each) for each in awaitables]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for task in tasks:
            if task.done():
                task.result()  # raises its failure, if it failed
        return [task.result() for task in tasks]
    except BaseException:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        raise


def _refuse_ties(items: Sequence[str], prompts: Sequence[str]) -> None:
    """A `LabelError` if two labels' prompts are the same to CLIP (its tokenizer ignores case)."""
    seen: dict[str, int] = {}
    for index, prompt in enumerate(prompts):
        key = " ".join(prompt.casefold().split())
        if key in seen:
            first, second = (inline_code(items[i], NAME_IN_ERROR) for i in (seen[key], index))
            raise LabelError(
                f"Labels {first} and {second} look the same to CLIP once cut to its 77-token limit; "
                "make them differ near the start."
            )
        seen[key] = index
