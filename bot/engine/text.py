"""The text side of the engine: fitting prompts to CLIP's context, and caching their embeddings.

Both are independent of where the model runs: fitting uses rf-clip's tokenizer
(inference's own, shipped in the `clip` package, no model needed), and the cache
sits in front of whichever backend embeds.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from cachetools import LRUCache

#: CLIP's context is 77 tokens, two of which are start/end markers.
MAX_TEXT_TOKENS = 75
#: Fitting tokenises this many characters of a text first (growing while they fit in
#: `MAX_TEXT_TOKENS`): BPE is quadratic in a word's length (~0.15 s for 1000 random letters).
FIT_WINDOW = 128
#: Words the fitting tokenizer remembers before it starts afresh (bounded memory).
FIT_TOKENIZER_CACHE = 50_000


def cut_word(word: str, tokenizer: Any) -> str:
    """The longest start of one word (no spaces; more than 75 tokens) that fits, cut between characters.

    Where the tokenizer's cleaning leaves the word as it is (lower case aside), the cut
    is read off the word's own tokens: the characters the first 75 cover, checked by
    encoding (one token fewer at a time, rarely needed), then lengthened while one more
    character still fits. Otherwise, or if that fails, a binary search on characters.
    """
    from bot.engine.tokenizer import clean  # imports rf-clip (and torch): only when needed

    encode: Callable[[str], list[int]] = tokenizer.encode
    lowered = word.lower()
    if len(lowered) == len(word) and clean(word).lower() == lowered:
        data = lowered.encode("utf-8")
        sizes = [len(token_bytes(token, tokenizer)) for token in encode(word)[:MAX_TEXT_TOKENS]]
        for keep in range(len(sizes), max(len(sizes) - 4, 0), -1):
            # Whole characters only: a token may end inside a character's UTF-8 bytes.
            chars = len(data[: sum(sizes[:keep])].decode("utf-8", errors="ignore"))
            if chars and len(encode(word[:chars])) <= MAX_TEXT_TOKENS:
                # A shorter word may merge differently: a character or two more often still fits.
                for _ in range(8):
                    if chars >= len(word) or len(encode(word[: chars + 1])) > MAX_TEXT_TOKENS:
                        break
                    chars += 1
                return word[:chars]
    low, high = 0, len(word) - 1
    while low < high:
        mid = (low + high + 1) // 2
        if len(encode(word[:mid])) <= MAX_TEXT_TOKENS:
            low = mid
        else:
            high = mid - 1
    return word[:low]


def token_bytes(token: int, tokenizer: Any) -> bytes:
    """The UTF-8 bytes one BPE token stands for."""
    return bytes(tokenizer.byte_decoder[c] for c in tokenizer.decoder[token].removesuffix("</w>"))


def fit_text(text: str, tokenizer: Any) -> tuple[str, bool]:
    """The longest start of `text` that fits in 75 tokens: whole words, else characters of the first.

    BPE only ever sees a bounded start of the text: `FIT_WINDOW` characters, grown (at
    most doubled) while they still fit. Once a window holds more than 75 tokens, the
    answer lies inside it, so a 1000-character word costs about what ~150 characters do.
    """
    encode: Callable[[str], list[int]] = tokenizer.encode
    window = FIT_WINDOW
    while True:
        head = text[:window]
        count = len(encode(head))
        if count > MAX_TEXT_TOKENS:
            break
        if window >= len(text):
            return text, False
        # Grow to a little past where the 76th token should end, by the rate so far.
        window = min(2 * window, max(window + 16, window * (MAX_TEXT_TOKENS + 8) // max(count, 1)))
    # The last word of `head` may be cut short, or `head` is all of `text`: never take it whole.
    words = head.split(" ")
    low, high = 0, len(words) - 1  # longest word prefix that fits: binary search
    while low < high:
        mid = (low + high + 1) // 2
        if len(encode(" ".join(words[:mid]))) <= MAX_TEXT_TOKENS:
            low = mid
        else:
            high = mid - 1
    if low:
        return " ".join(words[:low]), True
    return cut_word(words[0], tokenizer), True


class PromptFitter:
    """Cuts texts to what CLIP's 77-token context holds, in one thread of its own.

    Results are remembered (LRU): fitting a long label costs milliseconds of BPE, and
    the same labels come back all the time.
    """

    def __init__(self, cache_size: int) -> None:
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="fit")
        self._tokenizer: Any = None
        self._fitted: LRUCache[str, tuple[str, bool]] = LRUCache(maxsize=max(cache_size, 64))

    async def fit(self, texts: Sequence[str]) -> list[tuple[str, bool]]:
        """Each text cut to fit, and whether it was cut. Known texts are answered here on the
        loop (microseconds); the others are tokenised in the fitting thread."""
        found: dict[str, tuple[str, bool]] = {}
        for text in texts:
            fitted = self._fitted.get(text)
            if fitted is not None:
                found[text] = fitted
        missing = [text for text in dict.fromkeys(texts) if text not in found]
        if missing:
            loop = asyncio.get_running_loop()
            results = await loop.run_in_executor(self._pool, self._fit_many, missing)
            for text, fitted in zip(missing, results, strict=True):
                found[text] = self._fitted[text] = fitted
        return [found[text] for text in texts]

    def _fit_many(self, texts: Sequence[str]) -> list[tuple[str, bool]]:
        """`fit_text` for each, in the fitting thread, with its own tokenizer.

        The tokenizer is a fair copy of rf-clip's (`bot.engine.tokenizer`: the loop keeps its
        turns while long words are tokenised here) that shares the vocabulary but not the
        per-word cache, which grows with every new word: this one is only used in this
        one thread, so it can be emptied safely when it grows large.
        """
        if self._tokenizer is None:
            import clip as clip_package  # rf-clip: inference's own tokenizer

            from bot.engine.tokenizer import fair_copy

            self._tokenizer = fair_copy(clip_package.clip._tokenizer)
        tokenizer = self._tokenizer
        if len(tokenizer.cache) > FIT_TOKENIZER_CACHE:
            tokenizer.cache = {key: value for key, value in tokenizer.cache.items() if key.startswith("<|")}
        return [fit_text(text, tokenizer) for text in texts]

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


class TextEmbeddings:
    """Text embeddings through an LRU cache, with concurrent misses de-duplicated.

    A text already being embedded for someone else is awaited, not embedded twice.
    Keys carry the model id, so a model change never mixes embedding spaces.
    """

    def __init__(self, embed: Callable[[list[str]], Awaitable[list[np.ndarray]]], cache_size: int) -> None:
        self._embed = embed
        self._cache: LRUCache[str, np.ndarray] | None = LRUCache(maxsize=cache_size) if cache_size > 0 else None
        self._inflight: dict[str, asyncio.Future[np.ndarray]] = {}
        #: Texts asked for, and those sent to the encoder (the rest came from the cache or a twin).
        self.lookups = 0
        self.misses = 0

    async def get(self, model_id: str, texts: Sequence[str]) -> np.ndarray:
        """Embeddings of `texts`, rows in order."""
        self.lookups += len(texts)
        cache = self._cache if self._cache is not None else {}
        prefix = f"{model_id}\x00"
        keys = [prefix + text for text in texts]
        new = [key for key in dict.fromkeys(keys) if key not in cache and key not in self._inflight]
        if new:  # in one call, so that this request's new texts share a batch
            self.misses += len(new)
            job = asyncio.ensure_future(self._embed([key.removeprefix(prefix) for key in new]))
            for key in new:
                self._inflight[key] = future = asyncio.get_running_loop().create_future()
                future.add_done_callback(functools.partial(self._remember, key))
            job.add_done_callback(functools.partial(self._settle, new))
        rows: list[np.ndarray] = []
        for key in keys:
            cached = cache.get(key)
            rows.append(cached if cached is not None else await asyncio.shield(self._inflight[key]))
        return np.stack(rows) if rows else np.zeros((0, 0), dtype=np.float32)

    def _settle(self, keys: list[str], job: asyncio.Future[list[np.ndarray]]) -> None:
        """Hand a finished encoder call's rows (or its failure) to each text's waiters."""
        for index, key in enumerate(keys):
            future = self._inflight.get(key)
            if future is None or future.done():
                continue
            if job.cancelled():
                future.cancel()
            elif job.exception() is not None:
                future.set_exception(job.exception())  # type: ignore[arg-type]
            else:
                future.set_result(job.result()[index])

    def _remember(self, key: str, future: asyncio.Future[np.ndarray]) -> None:
        self._inflight.pop(key, None)
        if future.cancelled() or future.exception() is not None or self._cache is None:
            return
        self._cache[key] = future.result()
