"""The image index: CLIP vectors in Milvus (Milvus Lite in a file by default, a server with a URL).

One collection per embedding model (`images_<hash of the model id>`), each row also
carrying the model id, so vectors of two models are never compared. A row holds ids
only (guild, channel, message, author, attachment), never a URL: Discord's links
expire, and the message is fetched again to show a result.

Every client call blocks (Milvus Lite runs in this process; a server is gRPC), so
each runs in this store's own thread, never on the event loop. Searches filter by
guild and channel ids inside the database (a boolean expression evaluated with the
vector search), never after a global top-k.

A search only touches its own server's rows. Milvus Lite keeps one partition per
guild (`g<guild id>`) and is told which to search: its engine scans every row of the
partitions it searches, filter or not, so without them a search cost grew with the
images of every server the bot indexes (1M vectors over 10 servers: BENCHMARKS.md).
A server gets `guild_id` as its partition key instead, as Milvus documents for
multi-tenancy (hashed into a fixed set of partitions, pruned by the `guild_id ==`
filter; manual partitions stop at 1,024 per collection there). Collections made
before this keep working: their rows stay in the default partition, which the file
still searches.

Erasure on disk (Milvus Lite). A delete only writes a tombstone: the row, its vector and
ids stay in the partition's data and index files until Milvus Lite compacts them, which
it does only once enough files pile up. So after a deletion the store rewrites each
partition it deleted from: its live rows are copied into a fresh partition of the same
guild (`g<guild id>_<generation>`), which is flushed, and the old one is dropped, which
removes its folder (data, tombstones, indexes). This runs `erase_after_s` after the first
deletion (one rewrite for a burst of them), at `erase_now`, and at the next open for any
partition that still holds tombstones (a stop in between). A rewrite interrupted by a crash
leaves the old partition whole: the copy is dropped at the next open and done again.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from bot.errors import StartupError

log = logging.getLogger(__name__)

T = TypeVar("T")

PREFIX = "images_"
KEY_LENGTH = 64
MODEL_LENGTH = 512
#: A server (Milvus standalone or distributed) gets HNSW, built per segment by Knowhere; `ef`
#: grows with the number of results asked. Milvus Lite offers HNSW too (FAISS, per sealed
#: segment), but with the guild/channel filter on, its exact FLAT search measured faster here
#: (100k vectors, busy machine: p50 555 ms FLAT against 1,021 ms HNSW; BENCHMARKS.md), so the file gets FLAT.
INDEX_PARAMS = {"M": 16, "efConstruction": 200}
SEARCH_EF = 64
#: Milvus Lite searches rows still in its memtable by a scan (10k unflushed rows: ~2 s a query on
#: 2 cores, against 14 ms once flushed into an indexed segment), so the file is flushed after this
#: many new rows, and by `flush` (after each backfill page). A server seals segments itself.
FLUSH_ROWS = 256
#: Where Milvus Lite keeps a guild's rows (see the module docstring), and where rows stored
#: before per-guild partitions are.
GUILD_PARTITION = "g{}"
#: A guild's partition after `generation` rewrites (see "Erasure on disk"): `g<guild>_<generation>`.
GUILD_PARTITION_NAME = re.compile(r"g(\d+)(?:_(\d+))?")
DEFAULT_PARTITION = "_default"
#: How long after a deletion the embedded file rewrites the partitions it deleted from.
ERASE_AFTER_S = 60.0
#: Rows copied per step of a rewrite: bounds its memory, and how long a search waits behind a step
#: (the store's thread runs one call at a time). The copy is flushed every 4 x `FLUSH_ROWS` rows.
REWRITE_CHUNK = 256
FIELDS = ("key", "guild_id", "channel_id", "message_id", "author_id", "attachment_id", "posted_at")


@dataclass(frozen=True, slots=True)
class ImageRef:
    """Where one indexed image is: ids only (`attachment_id` 0 for an embedded image link)."""

    guild_id: int
    channel_id: int
    message_id: int
    author_id: int
    attachment_id: int
    #: Unix seconds the message was posted.
    posted_at: int
    #: Which embed of the message, for embedded images (-1 for an attachment).
    embed_index: int = -1

    @property
    def key(self) -> str:
        """The row's primary key: one row per image of a message."""
        slot = f"a{self.attachment_id}" if self.attachment_id else f"e{self.embed_index}"
        return f"{self.message_id}:{slot}"


@dataclass(frozen=True, slots=True)
class Hit:
    ref: ImageRef
    #: Cosine similarity (vectors are unit length; inner product).
    score: float


def collection_name(model_id: str) -> str:
    """A valid Milvus collection name per model id (letters, digits, `_`)."""
    return PREFIX + hashlib.sha256(model_id.encode()).hexdigest()[:20]


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """L2-normalised float32 rows (cosine = inner product)."""
    rows = np.atleast_2d(np.asarray(vectors, dtype=np.float32))
    norms = np.linalg.norm(rows, axis=1, keepdims=True)
    return rows / np.maximum(norms, 1e-12)


def _ids(values: Iterable[int]) -> str:
    return "[" + ",".join(str(int(v)) for v in values) + "]"


class VectorStore:
    """Image vectors of one model, plus deletions across every model's collection."""

    def __init__(
        self, uri: str, *, token: str | None = None, index: str | None = None, erase_after_s: float = ERASE_AFTER_S
    ) -> None:
        """`index`: the vector index of new collections ("FLAT" or "HNSW"); default FLAT for the
        embedded file, HNSW for a server (see `INDEX_PARAMS`). `erase_after_s`: how soon after a
        deletion the embedded file rewrites what it deleted from (module docstring)."""
        self.uri = uri
        self.token = token
        self.embedded = "://" not in uri
        self.index = index or ("FLAT" if self.embedded else "HNSW")
        #: Milvus Lite's client is not shared across threads: one thread for it. A server: a few.
        self._pool = ThreadPoolExecutor(max_workers=1 if self.embedded else 4, thread_name_prefix="vectors")
        self._client: Any = None
        self.model_id: str | None = None
        self.collection: str | None = None
        self.dim = 0
        self._unflushed = 0
        #: Milvus Lite: the partitions of the open collection (see `GUILD_PARTITION`).
        self._partitions: set[str] = set()
        self.erase_after_s = erase_after_s
        #: Milvus Lite: (collection, partition) holding deleted rows, to rewrite ("Erasure on disk").
        self._dirty: set[tuple[str, str]] = set()
        self._erase_task: asyncio.Task[None] | None = None
        #: Partitions being filled by a rewrite -> the partition they copy: writes and deletes
        #: meanwhile reach both (reads see each key once: its newest version).
        self._copies: dict[tuple[str, str], str] = {}
        self._closing = False

    async def _run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, lambda: fn(*args, **kwargs))

    @property
    def ready(self) -> bool:
        return self.collection is not None

    def _connect(self) -> None:
        from pymilvus import MilvusClient

        if self._client is None:
            if self.embedded:
                Path(self.uri).expanduser().parent.mkdir(parents=True, exist_ok=True)
            self._client = MilvusClient(self.uri, token=self.token or "")

    async def open(self, model_id: str, dim: int) -> None:
        """Connect if not yet done, and make (or open) this model's collection."""
        try:
            await self._run(self._open, model_id, dim)
        except Exception as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:200]
            raise StartupError(f"Cannot open the vector database: {type(exc).__name__}: {first}") from exc

    def _open(self, model_id: str, dim: int) -> None:
        from pymilvus import DataType

        self._connect()
        client = self._client
        name = collection_name(model_id)
        if not client.has_collection(name):
            schema = client.create_schema(auto_id=False, enable_dynamic_field=False)
            schema.add_field("key", DataType.VARCHAR, is_primary=True, max_length=KEY_LENGTH)
            schema.add_field("vector", DataType.FLOAT_VECTOR, dim=dim)
            schema.add_field("model", DataType.VARCHAR, max_length=MODEL_LENGTH)
            for field in FIELDS[1:]:
                # A server partitions by guild itself; the file gets a partition per guild (`_upsert`).
                schema.add_field(field, DataType.INT64, is_partition_key=field == "guild_id" and not self.embedded)
            index = client.prepare_index_params()
            params = INDEX_PARAMS if self.index == "HNSW" else {}
            index.add_index("vector", index_type=self.index, metric_type="IP", params=params)
            index.add_index("guild_id", index_type="INVERTED")
            client.create_collection(name, schema=schema, index_params=index)
            log.info("Created vector collection %s (%s) for model %s (%d dimensions)", name, self.index, model_id, dim)
        client.load_collection(name)
        self.model_id, self.collection, self.dim = model_id, name, dim
        if self.embedded:
            self._recover()
            self._rewrite_dirty()
            self._release_others()
            self._partitions = set(client.list_partitions(name))

    def _collections(self) -> list[str]:
        return [name for name in self._client.list_collections() if name.startswith(PREFIX)]

    def _loaded(self, name: str) -> None:
        """Milvus Lite reads only a loaded collection: an earlier model's is loaded to delete
        from it, then released (`_release_others`), so its vectors do not stay in memory."""
        if name != self.collection:
            self._client.load_collection(name)

    def _release_others(self) -> None:
        busy = {name for name, _ in self._copies}
        for name in self._collections():
            if name != self.collection and name not in busy:
                self._client.release_collection(name)

    def _recover(self) -> None:
        """At open (Milvus Lite): finish what a stop interrupted. A guild with two partitions was
        being rewritten: its older one is whole, the copy is dropped and the rewrite done again; a
        partition whose folder still holds tombstones was deleted from but not yet rewritten."""
        root = Path(self.uri).expanduser() / "collections"
        for name in self._collections():
            self._loaded(name)
            by_guild: dict[int, list[tuple[int, str]]] = {}
            for partition in self._client.list_partitions(name):
                if (place := _guild_partition(partition)) is not None:
                    by_guild.setdefault(place[0], []).append((place[1], partition))
                if any((root / name / "partitions" / partition / "delta").glob("*")):
                    self._dirty.add((name, partition))
            for generations in by_guild.values():
                generations.sort()
                for _, partial in generations[1:]:
                    log.info("Dropping partition %s of %s: a rewrite was interrupted", partial, name)
                    self._client.drop_partition(name, partial)
                    self._dirty.discard((name, partial))
                if len(generations) > 1:
                    self._dirty.add((name, generations[0][1]))

    def _rewrite_dirty(self) -> int:
        """Rewrite every partition deleted from, at once (at open, before anything is served)."""
        done = 0
        for name, partition in sorted(self._dirty):
            self._dirty.discard((name, partition))
            target = self._begin_rewrite(name, partition)
            if target is not None:
                self._finish_rewrite(name, partition, target)
                done += 1
        return done

    async def _rewrite(self, name: str, partition: str) -> bool:
        """Copy `partition`'s live rows into a fresh partition of its guild, then drop it (its
        folder, with the deleted rows' bytes and the tombstones, goes).

        The copy goes `REWRITE_CHUNK` rows at a time, each a separate job of the store's
        thread, so searches and writes go on in between (see `_scope`); writes and deletes
        meanwhile reach both partitions.
        """
        target = await self._run(self._begin_rewrite, name, partition)
        if target is None:
            return False
        try:
            keys = await self._run(self._keys_in, name, partition)
            for start in range(0, len(keys), REWRITE_CHUNK):
                if self._closing:  # the next open drops the copy and does it again
                    return False
                chunk = keys[start : start + REWRITE_CHUNK]
                flush = (start // REWRITE_CHUNK) % (FLUSH_ROWS * 4 // REWRITE_CHUNK or 1) == 0
                await self._run(self._copy_rows, name, partition, target, chunk, flush)
            if self._closing:
                return False
            await self._run(self._finish_rewrite, name, partition, target)
        finally:
            self._copies.pop((name, target), None)
        return True

    def _begin_rewrite(self, name: str, partition: str) -> str | None:
        """Make the empty copy of `partition` (None: nothing to rewrite). The default partition
        cannot be dropped (Milvus's rule): rows stored there before per-guild partitions keep their
        deleted bytes until Milvus Lite compacts that partition on its own."""
        client = self._client
        place = _guild_partition(partition)
        if place is None or name not in self._collections():
            return None
        self._loaded(name)
        if not client.has_partition(name, partition):
            return None
        target = GUILD_PARTITION.format(place[0]) + f"_{place[1] + 1}"
        if client.has_partition(name, target):
            client.drop_partition(name, target)
        client.create_partition(name, target)
        self._copies[(name, target)] = partition
        if name == self.collection:
            self._partitions.add(target)
        return target

    def _keys_in(self, name: str, partition: str) -> list[str]:
        self._loaded(name)
        rows = self._client.query(name, filter='key != ""', partition_names=[partition], output_fields=["key"])
        return sorted(row["key"] for row in rows)

    def _copy_rows(self, name: str, partition: str, target: str, keys: list[str], flush: bool = False) -> int:
        if not keys:
            return 0
        self._loaded(name)
        rows = self._client.get(name, ids=keys, partition_names=[partition], output_fields=["*"])
        rows = [{field: row[field] for field in (*FIELDS, "vector", "model")} for row in rows]
        if rows:
            self._client.insert(name, rows, partition_name=target)
        if flush:  # into an indexed segment: searches meanwhile scan unflushed rows (`FLUSH_ROWS`)
            self._client.flush(name)
        return len(rows)

    def _finish_rewrite(self, name: str, partition: str, target: str) -> None:
        """Copy what is still missing (everything, when called alone), flush, drop the old one."""
        started = time.monotonic()
        missing = sorted(set(self._keys_in(name, partition)) - set(self._keys_in(name, target)))
        for start in range(0, len(missing), REWRITE_CHUNK):
            self._copy_rows(name, partition, target, missing[start : start + REWRITE_CHUNK])
        self._client.flush(name)
        self._client.drop_partition(name, partition)
        self._copies.pop((name, target), None)
        if name == self.collection:
            self._partitions = set(self._client.list_partitions(name))
        self._release_others()
        log.info(
            "Rewrote partition %s of %s as %s without its deleted rows (last step %.1f s)",
            partition,
            name,
            target,
            time.monotonic() - started,
        )

    def _guild_partition_for(self, name: str, guild_id: int) -> str:
        """The partition new rows of `guild_id` go to in collection `name` (made if missing)."""
        existing = sorted(
            (place[1], partition)
            for partition in (self._partitions if name == self.collection else self._client.list_partitions(name))
            if (place := _guild_partition(partition)) is not None
            and place[0] == guild_id
            and (name, partition) not in self._copies
        )
        if existing:
            return existing[-1][1]
        partition = GUILD_PARTITION.format(guild_id)
        self._client.create_partition(name, partition)
        if name == self.collection:
            self._partitions.add(partition)
        return partition

    async def add(self, refs: Sequence[ImageRef], vectors: np.ndarray) -> None:
        """Store (or replace) these images' vectors, normalised, with the model id."""
        if not refs:
            return
        rows = unit_rows(vectors)
        if rows.shape != (len(refs), self.dim):
            raise ValueError(f"expected {len(refs)} vectors of {self.dim} dimensions, got {rows.shape}")
        data = [
            {
                "key": ref.key,
                "vector": row.tolist(),
                "model": self.model_id,
                "guild_id": ref.guild_id,
                "channel_id": ref.channel_id,
                "message_id": ref.message_id,
                "author_id": ref.author_id,
                "attachment_id": ref.attachment_id,
                "posted_at": ref.posted_at,
            }
            for ref, row in zip(refs, rows, strict=True)
        ]
        await self._run(self._upsert, data)
        self._unflushed += len(data)
        if self._unflushed >= FLUSH_ROWS:
            await self.flush()

    def _upsert(self, rows: list[dict[str, Any]]) -> None:
        """Milvus Lite: each guild's rows into its own partition, made on first use; a server
        routes by the partition key itself."""
        if not self.embedded:
            self._client.upsert(self.collection, rows)
            return
        assert self.collection is not None
        for guild_id, guild_rows in _by_guild(rows).items():
            partition = self._guild_partition_for(self.collection, guild_id)
            self._client.upsert(self.collection, guild_rows, partition_name=partition)
            for (name, copy), source in self._copies.items():
                if name == self.collection and source == partition:
                    self._client.upsert(self.collection, guild_rows, partition_name=copy)

    def _scope(self, expression: str, guild_id: int | None) -> tuple[str, list[str] | None]:
        """`expression` narrowed to one guild's rows, and the partitions to read (None: all).

        Milvus Lite reads only that guild's partitions (and the default one, where rows stored
        before partitions are); a server prunes its partitions itself by the `guild_id ==`
        clause. Without a guild: every row. While a rewrite fills a copy, both are read: Milvus
        Lite keeps one version of a key across partitions (the newest), so each row is seen once.
        """
        if guild_id is None:
            return expression, None
        expression = f"guild_id == {int(guild_id)} and {expression}"
        if not self.embedded:
            return expression, None
        return expression, _partitions_of(int(guild_id), self._partitions)

    async def flush(self) -> None:
        """Milvus Lite: move new rows into an indexed segment (see `FLUSH_ROWS`); a server: nothing."""
        if self.embedded and self._unflushed:
            self._unflushed = 0
            await self._run(self._client.flush, self.collection)

    async def search(self, vector: np.ndarray, guild_id: int, channel_ids: Iterable[int], limit: int) -> list[Hit]:
        """The `limit` nearest images in `guild_id`, among `channel_ids` only (filtered in the database)."""
        channels = sorted({int(c) for c in channel_ids})
        if not channels:
            return []
        expression, partitions = self._scope(
            f"channel_id in {_ids(channels)} and model == {json.dumps(self.model_id)}", guild_id
        )
        query = unit_rows(vector)[0].tolist()
        params: dict[str, Any] = {"metric_type": "IP"}
        if self.index == "HNSW":
            params["params"] = {"ef": max(SEARCH_EF, limit)}
        results = await self._run(
            self._client.search,
            self.collection,
            data=[query],
            filter=expression,
            limit=limit,
            output_fields=list(FIELDS),
            search_params=params,
            partition_names=partitions,
        )
        return [Hit(_ref(hit["entity"]), float(hit["distance"])) for hit in results[0]]

    async def keys(self, message_id: int, guild_id: int | None = None) -> set[str]:
        """Keys of the images of one message (in this model's collection); `guild_id`: the message's
        server, so only its rows are read (an edit event costs one server's rows, not all)."""
        return {ref.key for ref in await self.refs(message_id, guild_id)}

    async def refs(self, message_id: int, guild_id: int | None = None) -> list[ImageRef]:
        expression, partitions = self._scope(f"message_id == {int(message_id)}", guild_id)
        rows = await self._run(
            self._client.query,
            self.collection,
            filter=expression,
            partition_names=partitions,
            output_fields=list(FIELDS),
        )
        return [_ref(row) for row in rows]

    async def vector_of(self, key: str) -> np.ndarray | None:
        rows = await self._run(self._client.get, self.collection, ids=[key], output_fields=["vector"])
        return np.asarray(rows[0]["vector"], dtype=np.float32) if rows else None

    async def count(self, **where: int) -> int:
        """Images stored in this model's collection matching `field == value` for each of `where`
        (with `guild_id`, only that server's rows are read)."""
        guild_id = where.pop("guild_id", None)
        expression = " and ".join(f"{field} == {int(value)}" for field, value in where.items()) or 'key != ""'
        expression, partitions = self._scope(expression, guild_id)
        rows = await self._run(
            self._client.query,
            self.collection,
            filter=expression,
            partition_names=partitions,
            output_fields=["count(*)"],
        )
        return int(rows[0]["count(*)"]) if rows else 0

    # -- deletions: every model's collection, so nothing an old model stored survives --
    async def delete_keys(self, keys: Iterable[str]) -> None:
        wanted = sorted(set(keys))
        if wanted:
            await self._delete(f"key in {json.dumps(wanted)}")

    async def delete_messages(self, message_ids: Iterable[int], guild_id: int | None = None) -> None:
        """Delete these messages' images; `guild_id`: their server, so only its rows are read."""
        ids = sorted({int(m) for m in message_ids})
        if ids:
            await self._delete(f"message_id in {_ids(ids)}", guild_id)

    async def delete_channel(self, channel_id: int) -> None:
        await self._delete(f"channel_id == {int(channel_id)}")

    async def delete_guild(self, guild_id: int) -> None:
        await self._delete(f"guild_id == {int(guild_id)}")

    async def delete_author(self, author_id: int) -> None:
        await self._delete(f"author_id == {int(author_id)}")

    async def _delete(self, expression: str, guild_id: int | None = None) -> None:
        """Delete the rows matching `expression` from every model's collection.

        Milvus Lite: the keys are looked up first (in the guild's partitions only, when it is
        known), then deleted by key in their guild's partitions only, which are marked for a
        rewrite (a delete without a partition would put the keys in every partition's tombstones).
        """
        scoped, _ = self._scope(expression, guild_id)
        if not self.embedded:
            await self._run(lambda: [self._client.delete(name, filter=scoped) for name in self._collections()])
            return

        def delete_everywhere() -> None:
            for name in self._collections():
                self._loaded(name)
                names = self._partitions if name == self.collection else set(self._client.list_partitions(name))
                guilds = [p for p in names if (place := _guild_partition(p)) and guild_id in (None, place[0])]
                for source in ([guilds] if guilds else []) + [[DEFAULT_PARTITION]]:
                    rows = self._client.query(
                        name, filter=scoped, partition_names=source, output_fields=["key", "guild_id"]
                    )
                    for gid, guild_rows in _by_guild(rows).items():
                        keys = [row["key"] for row in guild_rows]
                        for partition in (
                            source if source == [DEFAULT_PARTITION] else _partitions_of(gid, guilds, default=False)
                        ):
                            self._client.delete(name, ids=keys, partition_name=partition)
                            self._dirty.add((name, partition))
            self._release_others()

        await self._run(delete_everywhere)
        self._schedule_erase()

    def _schedule_erase(self) -> None:
        if self._dirty and (self._erase_task is None or self._erase_task.done()):
            self._erase_task = asyncio.get_running_loop().create_task(self._erase_later(), name="vectors-erase")

    async def _erase_later(self) -> None:
        while self._dirty:  # deletions during a rewrite mark partitions again
            await asyncio.sleep(self.erase_after_s)
            try:
                await self.erase_now()
            except Exception:
                log.exception("Rewriting the vector file after deletions failed; it is tried again at the next start")
                return

    async def erase_now(self) -> int:
        """Milvus Lite: rewrite now every partition deleted from, so the deleted rows leave the
        disk (see "Erasure on disk"); how many were rewritten. A server: nothing (it compacts)."""
        if not self.embedded or self._client is None or self._closing:
            return 0
        done = 0
        while self._dirty and not self._closing:
            name, partition = min(self._dirty)
            self._dirty.discard((name, partition))
            done += await self._rewrite(name, partition)
        return done

    async def drop_other_models(self) -> list[str]:
        """Drop the collections of every model but the current one (after a re-index)."""

        def drop() -> list[str]:
            dropped = [name for name in self._collections() if name != self.collection]
            for name in dropped:
                self._client.drop_collection(name)
            return dropped

        return await self._run(drop)

    async def close(self) -> None:
        self._closing = True
        if self._erase_task is not None:
            self._erase_task.cancel()
            await asyncio.gather(self._erase_task, return_exceptions=True)
        if self._client is not None:
            if self.collection is not None:
                await self.flush()
            # Tombstones to disk: the next open finds the partitions still to rewrite by them.
            if self.embedded:
                for name in await self._run(self._collections):
                    await self._run(self._client.flush, name)
            await self._run(self._client.close)
            self._client = None
            if self.embedded:
                await self._run(_release_lite, self.uri)
        self.collection = None  # not `ready` any more
        self._pool.shutdown(wait=True)


def _release_lite(uri: str) -> None:
    """Stop Milvus Lite's server for this file: the client's `close` leaves it (and its threads and
    memory) running until the process exits."""
    from milvus_lite.server_manager import server_manager_instance

    server_manager_instance.release_server(uri)


def _guild_partition(name: str) -> tuple[int, int] | None:
    """(guild id, generation) of a guild's partition name; None for another partition."""
    match = GUILD_PARTITION_NAME.fullmatch(name)
    return None if match is None else (int(match[1]), int(match[2] or 0))


def _partitions_of(guild_id: int, names: Iterable[str], *, default: bool = True) -> list[str]:
    """The partitions that may hold `guild_id`'s rows: its own, and the default one (rows stored
    before per-guild partitions)."""
    return sorted(
        name
        for name in names
        if (default and name == DEFAULT_PARTITION)
        or ((place := _guild_partition(name)) is not None and place[0] == guild_id)
    )


def _by_guild(rows: Iterable[dict[str, Any]]) -> dict[int, list[dict[str, Any]]]:
    grouped: dict[int, list[dict[str, Any]]] = {}
    for row in rows:
        grouped.setdefault(int(row["guild_id"]), []).append(row)
    return grouped


def _ref(entity: dict[str, Any]) -> ImageRef:
    key = str(entity["key"])
    slot = key.split(":", 1)[1]
    return ImageRef(
        guild_id=int(entity["guild_id"]),
        channel_id=int(entity["channel_id"]),
        message_id=int(entity["message_id"]),
        author_id=int(entity["author_id"]),
        attachment_id=int(entity["attachment_id"]),
        posted_at=int(entity["posted_at"]),
        embed_index=int(slot[1:]) if slot.startswith("e") else -1,
    )
