"""Image search: embed images for the index, and queries (words or an image) to search it.

Knows nothing of Discord: the Discord layer says which guild and which channels the
asking member may view, and this searches only those, in the database. Images for
the index go through the same engine (and decode isolation) as /classify, as
background work that waits behind interactive requests in the engine's queue.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from bot import labels as label_parsing
from bot.config import Settings
from bot.engine.backend import ModelInfo
from bot.errors import UserFacingError
from bot.service import ClipService
from bot.storage.vectors import Hit, ImageRef, VectorStore, unit_rows

log = logging.getLogger(__name__)

#: Deleted messages remembered, so an image embedded while its message was deleted is not stored.
TOMBSTONES = 10_000


class IndexNotReady(UserFacingError):
    """The model or the vector database is still starting."""


@dataclass(frozen=True, slots=True)
class Query:
    vector: np.ndarray
    #: What the query was, for the reply (the phrase as embedded, or None for an image).
    text: str | None = None


class SearchService:
    """Indexing and searching on one `VectorStore`, with CLIP through `ClipService`."""

    def __init__(
        self,
        clip: ClipService,
        store: VectorStore,
        settings: Settings,
        *,
        model_ready: Callable[[], Awaitable[ModelInfo]],
    ) -> None:
        """`model_ready`: waits for the model and says which it is (the index is per model)."""
        self.clip = clip
        self.store = store
        self.settings = settings
        self._model_ready = model_ready
        self._open_lock = asyncio.Lock()
        #: Indexed channel id -> its guild id (what the listeners check on every message).
        self.indexed: dict[int, int] = {}
        self._deleted_messages: deque[int] = deque(maxlen=TOMBSTONES)
        self._deleted_set: set[int] = set()
        self._forgotten_authors: set[int] = set()
        self._forgotten_places: set[int] = set()

    @property
    def ready(self) -> bool:
        return self.store.ready

    def check_ready(self) -> None:
        if not self.store.ready:
            raise IndexNotReady("The image index is still starting; please try again in a minute.")

    async def ensure_open(self) -> None:
        """Open the vector database on first use: Milvus Lite runs in this process, and its import
        and start take a few CPU-seconds, which a bot whose servers never index never spends."""
        if self.ready:
            return
        async with self._open_lock:
            if not self.ready:
                info = await self._model_ready()
                await self.open(info.model_id)

    async def open(self, model_id: str) -> None:
        """Open the vector database for this model (its dimension read off one text embedding)."""
        dim = int((await self.clip.embedder.embed_texts(["a photo"])).shape[1])
        await self.store.open(model_id, dim)

    # -- indexing ---------------------------------------------------------------
    async def embed_for_index(self, data: bytes) -> np.ndarray:
        """One image's unit vector, as background work (interactive requests go first)."""
        return unit_rows(await self.clip.embedder.embed_image(data, background=True))[0]

    async def store_images(self, refs: Sequence[ImageRef], vectors: Sequence[np.ndarray]) -> int:
        """Store images unless their message (or author, or place) was deleted meanwhile; how many."""
        kept = [(ref, vec) for ref, vec in zip(refs, vectors, strict=True) if not self._gone(ref)]
        if kept:
            await self.store.add([ref for ref, _ in kept], np.stack([vec for _, vec in kept]))
        return len(kept)

    def _gone(self, ref: ImageRef) -> bool:
        return (
            ref.message_id in self._deleted_set
            or ref.author_id in self._forgotten_authors
            or ref.channel_id in self._forgotten_places
            or ref.guild_id in self._forgotten_places
        )

    def allow_place(self, place_id: int) -> None:
        """A channel indexed again after `forget_channel`: its images may be stored again."""
        self._forgotten_places.discard(place_id)

    # -- deletions ----------------------------------------------------------------
    async def forget_messages(self, message_ids: Iterable[int], guild_id: int | None = None) -> None:
        """`guild_id`: the messages' server (the store then reads only its rows)."""
        ids = [int(m) for m in message_ids]
        for message_id in ids:
            if len(self._deleted_messages) == self._deleted_messages.maxlen:
                self._deleted_set.discard(self._deleted_messages[0])
            self._deleted_messages.append(message_id)
            self._deleted_set.add(message_id)
        await self.store.delete_messages(ids, guild_id)

    async def forget_images(self, keys: Iterable[str]) -> None:
        await self.store.delete_keys(keys)

    async def forget_channel(self, channel_id: int) -> None:
        self._forgotten_places.add(channel_id)
        await self.store.delete_channel(channel_id)

    async def forget_guild(self, guild_id: int) -> None:
        self._forgotten_places.add(guild_id)
        await self.store.delete_guild(guild_id)

    async def forget_author(self, author_id: int) -> None:
        self._forgotten_authors.add(author_id)
        await self.store.delete_author(author_id)

    # -- queries ----------------------------------------------------------------
    async def text_query(self, text: str) -> Query:
        """Words to a unit vector, through the bot's default template ("a photo of a {}").

        Called inside the caller's place in the queue (`ClipService.admit`).
        """
        phrase = label_parsing.parse_phrase(text)
        template = label_parsing.parse_template(None, self.settings.clip_default_template)
        prompts, _, _, vectors = await self.clip.label_vectors([phrase], template)
        return Query(unit_rows(vectors)[0], prompts[0])

    async def image_query(self, data: bytes) -> Query:
        """An image to a unit vector (interactive: ahead of indexing work)."""
        vector = await self.clip.embedder.embed_image(data)
        return Query(unit_rows(vector)[0])

    async def search(self, query: Query, guild_id: int, channel_ids: Iterable[int], limit: int) -> list[Hit]:
        """The best `limit` images of `guild_id` among `channel_ids` (the ones the member may view)."""
        self.check_ready()
        return await self.store.search(query.vector, guild_id, channel_ids, limit)
