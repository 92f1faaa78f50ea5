"""Image search: embed images for the index, and queries (words or an image) to search it.

Knows nothing of Discord: the Discord layer says which guild and which channels the
asking member may view, and this searches only those, in the database. Images for
the index go through the same engine (and decode isolation) as /classify, as
background work that waits behind interactive requests in the engine's queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from bot import labels as label_parsing
from bot.config import Settings
from bot.engine.backend import ModelInfo
from bot.errors import UserFacingError
from bot.service import ClipService
from bot.storage.erasures import Erasures
from bot.storage.index_settings import IndexSettings
from bot.storage.vectors import Hit, ImageRef, VectorStore, unit_rows

log = logging.getLogger(__name__)

#: Deleted messages remembered, so an image embedded while its message was deleted is not stored.
TOMBSTONES = 10_000
#: Edited messages whose images are remembered, so an image an edit removed while its embedding
#: waited in the queue is not stored.
EDITS_KEPT = 10_000
#: New messages' images waiting to be indexed, at most; past it the oldest is dropped (`IndexQueue`).
INDEX_QUEUE_LIMIT = 1000


#: How long `/forget-me` waits for the image index to open before recording a pending erasure.
FORGET_OPEN_WAIT_S = 60.0


def _log_open_failure(opening: asyncio.Future[None]) -> None:
    """Retrieve the outcome of an opening nobody waits for any more (no "never retrieved" warning)."""
    if not opening.cancelled() and opening.exception() is not None:
        log.warning("The image index could not open: %s", opening.exception())


class IndexNotReady(UserFacingError):
    """The model or the vector database is still starting."""


class IndexWorkDropped(Exception):
    """A new image's indexing was dropped: too many were waiting (`IndexQueue`)."""


class IndexQueue:
    """Index work: `concurrency` images fetched and embedded at once, the rest waiting in order.

    New messages' images (`droppable`) wait in a bounded queue: past `limit` of them, the
    oldest is dropped (`IndexWorkDropped`, counted in `dropped` and by `on_drop`), so a flood
    of image messages costs bounded memory and tasks. A backfill's images are never dropped
    (its checkpoint would skip them); it waits one page at a time, so it is bounded already.
    """

    def __init__(self, concurrency: int, limit: int, on_drop: Callable[[], None] | None = None) -> None:
        self.concurrency = concurrency
        self.limit = limit
        self.on_drop = on_drop
        self.dropped = 0
        self._running = 0
        self._waiting: deque[tuple[asyncio.Future[None], bool]] = deque()

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    @contextlib.asynccontextmanager
    async def slot(self, *, droppable: bool) -> AsyncIterator[None]:
        """Hold one of the `concurrency` slots; raises `IndexWorkDropped` if dropped while waiting."""
        if self._running < self.concurrency and not self._waiting:
            self._running += 1
        else:
            turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            self._waiting.append((turn, droppable))
            if droppable:
                self._drop_past_limit()
            try:
                await turn  # the slot is handed over by `_release` (the running count stays)
            except asyncio.CancelledError:
                if turn.done() and not turn.cancelled() and turn.exception() is None:
                    self._release()  # given the slot just as it was cancelled: pass it on
                else:
                    with contextlib.suppress(ValueError):
                        self._waiting.remove((turn, droppable))
                raise
        try:
            yield
        finally:
            self._release()

    def _drop_past_limit(self) -> None:
        droppable = [entry for entry in self._waiting if entry[1]]
        for entry in droppable[: max(0, len(droppable) - self.limit)]:
            self._waiting.remove(entry)
            entry[0].set_exception(IndexWorkDropped())
            self.dropped += 1
            if self.on_drop is not None:
                self.on_drop()

    def _release(self) -> None:
        while self._waiting:
            turn, _ = self._waiting.popleft()
            if not turn.done():
                turn.set_result(None)
                return
        self._running -= 1


@dataclass(frozen=True, slots=True)
class Query:
    vector: np.ndarray
    #: What the query was, for the reply (the phrase as embedded, or None for an image).
    text: str | None = None


class SearchService:
    """Indexing and searching on one `VectorStore`, with CLIP through `ClipService`.

    Every vector stored goes through `store_images`, which first asks `erasures` (the
    database) whether its author was forgotten or an edit removed it: what someone asked
    to forget stays forgotten across restarts, backfills and rebuilds.
    """

    def __init__(
        self,
        clip: ClipService,
        store: VectorStore,
        settings: Settings,
        erasures: Erasures,
        *,
        model_ready: Callable[[], Awaitable[ModelInfo]],
        on_index_drop: Callable[[], None] | None = None,
    ) -> None:
        """`model_ready`: waits for the model and says which it is (the index is per model)."""
        self.clip = clip
        self.store = store
        self.settings = settings
        self.erasures = erasures
        self._model_ready = model_ready
        self._open_lock = asyncio.Lock()
        #: Indexed channel id -> its guild id (what the listeners check on every message).
        self.indexed: dict[int, int] = {}
        #: Who may fetch and embed an image for the index now (`on_index_drop`: a metric).
        self.queue = IndexQueue(settings.backfill_concurrency, INDEX_QUEUE_LIMIT, on_index_drop)
        #: Message id -> the image keys its latest edit left (bounded: `EDITS_KEPT`).
        self._edited: OrderedDict[int, frozenset[str]] = OrderedDict()
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
        """Open the vector database for this model (its dimension read off one text embedding),
        then run the erasures recorded while it could not be reached."""
        dim = int((await self.clip.embedder.embed_texts(["a photo"])).shape[1])
        await self.store.open(model_id, dim)
        await self.erase_pending()

    async def erase_pending(self) -> int:
        """Delete the images of everyone whose erasure is pending (`forget_author`); how many people."""
        authors = await self.erasures.pending()
        for author_id in authors:
            self._forgotten_authors.add(author_id)
            await self.store.delete_author(author_id)
            await self.erasures.index_erased(author_id)
        if authors:
            log.info("Ran %d pending erasures from the image index", len(authors))
        return len(authors)

    # -- indexing ---------------------------------------------------------------
    async def embed_for_index(self, data: bytes) -> np.ndarray:
        """One image's unit vector, as background work (interactive requests go first)."""
        return unit_rows(await self.clip.embedder.embed_image(data, background=True))[0]

    async def store_images(self, refs: Sequence[ImageRef], vectors: Sequence[np.ndarray]) -> int:
        """Store images unless their message, author or place was deleted or forgotten, or an
        edit removed them (in memory, then in the database); how many were stored."""
        pairs = list(zip(refs, vectors, strict=True))
        edited_away = [ref for ref, _ in pairs if self._edited_away(ref)]
        if edited_away:
            await self.erasures.erase_images((ref.message_id, ref.key) for ref in edited_away)
        pairs = [(ref, vec) for ref, vec in pairs if not self._gone(ref)]
        blocked = await self.erasures.blocked(ref for ref, _ in pairs)
        # Checked again after that wait, with no wait before `add`: a forget that ran meanwhile
        # marked memory first, and its deletion reaches the store after this write.
        kept = [(ref, vec) for ref, vec in pairs if ref.key not in blocked and not self._gone(ref)]
        if kept:
            await self.store.add([ref for ref, _ in kept], np.stack([vec for _, vec in kept]))
        return len(kept)

    def _edited_away(self, ref: ImageRef) -> bool:
        left = self._edited.get(ref.message_id)
        return left is not None and ref.key not in left

    def _gone(self, ref: ImageRef) -> bool:
        return (
            ref.message_id in self._deleted_set
            or ref.author_id in self._forgotten_authors
            or ref.channel_id in self._forgotten_places
            or ref.guild_id in self._forgotten_places
            or self._edited_away(ref)
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

    async def images_edited(self, message_id: int, guild_id: int | None, current: Iterable[str]) -> set[str]:
        """A message now holds the images `current` (keys): the others it had are deleted and never
        stored again, even if their embedding is still queued; returns the keys stored before."""
        left = frozenset(current)
        self._edited[message_id] = left
        self._edited.move_to_end(message_id)
        while len(self._edited) > EDITS_KEPT:
            self._edited.popitem(last=False)
        stored = await self.store.keys(message_id, guild_id)
        removed = stored - left
        if removed:
            await self.erasures.erase_images((message_id, key) for key in removed)
            await self.store.delete_keys(removed)
        return stored

    async def forget_channel(self, channel_id: int) -> None:
        self._forgotten_places.add(channel_id)
        await self.store.delete_channel(channel_id)

    async def forget_guild(self, guild_id: int) -> None:
        self._forgotten_places.add(guild_id)
        await self.store.delete_guild(guild_id)

    async def forget_author(self, author_id: int, *, open_within_s: float = FORGET_OPEN_WAIT_S) -> bool:
        """Delete a person's images and never index them again; True if they are deleted now,
        False if the index could not be reached: the erasure is then pending (in the database,
        written first) and runs when the index opens (`open`). Opens the index if needed (it is
        not open at start-up, on a shard without indexed channels, or after it failed to)."""
        self._forgotten_authors.add(author_id)
        await self.erasures.forget_author(author_id)
        opening = asyncio.ensure_future(self.ensure_open())
        try:
            # Shielded: a slow start goes on after this gives up, and runs the erasure itself.
            await asyncio.wait_for(asyncio.shield(opening), open_within_s)
        except Exception:
            opening.add_done_callback(_log_open_failure)
            log.warning("The image index is unreachable: an erasure is pending until it opens")
            return False
        try:
            await self.store.delete_author(author_id)
        except Exception:  # a server that went away since: still pending, run at the next open
            log.warning("Deleting a forgotten author's images failed: the erasure is pending", exc_info=True)
            return False
        await self.erasures.index_erased(author_id)
        return True

    async def retire_old_models(self, channels: IndexSettings) -> list[str]:
        """Once every indexed channel is backfilled with the current model (`/index rebuild` done
        everywhere), drop the other models' collections; the names dropped."""
        if not self.store.ready or not await channels.all_done_for(self.store.model_id or ""):
            return []
        dropped = await self.store.drop_other_models()
        if dropped:
            log.info("Dropped the collections of earlier models: %s", ", ".join(dropped))
        return dropped

    # -- queries ----------------------------------------------------------------
    async def text_query(self, text: str) -> Query:
        """Words to a unit vector, through the bot's default template ("a photo of a {}").

        Called inside the caller's place in the queue (`ClipService.admit`).
        """
        phrase = label_parsing.parse_phrase(text)
        template = label_parsing.parse_template(None, self.settings.clip_default_template)
        prompts, _, _, vectors = await self.clip.label_vectors([phrase], template)
        return Query(unit_rows(vectors)[0], prompts[0])

    async def image_query(self, data: bytes, *, requester: Hashable | None = None) -> Query:
        """An image to a unit vector (interactive: ahead of indexing work), on `requester`'s decode allowance."""
        vector = await self.clip.embedder.embed_image(data, requester=requester)
        return Query(unit_rows(vector)[0])

    async def search(self, query: Query, guild_id: int, channel_ids: Iterable[int], limit: int) -> list[Hit]:
        """The best `limit` images of `guild_id` among `channel_ids` (the ones the member may view)."""
        self.check_ready()
        return await self.store.search(query.vector, guild_id, channel_ids, limit)
