"""`VectorStore`: the image index's reads, writes and deletions (see the package docstring)."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from bot.errors import StartupError
from bot.storage.vectors.rewrite import ERASE_AFTER_S, PartitionRewrites
from bot.storage.vectors.rows import (
    DEFAULT_PARTITION,
    FIELDS,
    FLUSH_ROWS,
    GUILD_PARTITION,
    KEY_LENGTH,
    MODEL_LENGTH,
    Hit,
    ImageRef,
    by_guild,
    collection_name,
    guild_partition,
    id_list,
    partitions_of,
    ref_of,
    unit_rows,
)

log = logging.getLogger(__name__)

#: A server (Milvus standalone or distributed) gets HNSW, built per segment by Knowhere; `ef`
#: grows with the number of results asked. Milvus Lite offers HNSW too (FAISS, per sealed
#: segment), but with the guild/channel filter on, its exact FLAT search measured faster here
#: (100k vectors, busy machine: p50 555 ms FLAT against 1,021 ms HNSW; BENCHMARKS.md), so the file gets FLAT.
INDEX_PARAMS = {"M": 16, "efConstruction": 200}
SEARCH_EF = 64


class VectorStore(PartitionRewrites):
    """Image vectors of one model, plus deletions across every model's collection."""

    def __init__(
        self, uri: str, *, token: str | None = None, index: str | None = None, erase_after_s: float = ERASE_AFTER_S
    ) -> None:
        """`index`: the vector index of new collections ("FLAT" or "HNSW"); default FLAT for the
        embedded file, HNSW for a server (see `INDEX_PARAMS`). `erase_after_s`: how soon after a
        deletion the embedded file rewrites what it deleted from (`rewrite`)."""
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
        #: Milvus Lite: (collection, partition) holding deleted rows, to rewrite (`rewrite`).
        self._dirty: set[tuple[str, str]] = set()
        self._erase_task: asyncio.Task[None] | None = None
        #: Partitions being filled by a rewrite -> the partition they copy: writes and deletes
        #: meanwhile reach both (reads see each key once: its newest version).
        self._copies: dict[tuple[str, str], str] = {}
        self._closing = False

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

    def _guild_partition_for(self, name: str, guild_id: int) -> str:
        """The partition new rows of `guild_id` go to in collection `name` (made if missing)."""
        existing = sorted(
            (place[1], partition)
            for partition in (self._partitions if name == self.collection else self._client.list_partitions(name))
            if (place := guild_partition(partition)) is not None
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
        for guild_id, guild_rows in by_guild(rows).items():
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
        return expression, partitions_of(int(guild_id), self._partitions)

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
            f"channel_id in {id_list(channels)} and model == {json.dumps(self.model_id)}", guild_id
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
        return [Hit(ref_of(hit["entity"]), float(hit["distance"])) for hit in results[0]]

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
        return [ref_of(row) for row in rows]

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
            await self._delete(f"message_id in {id_list(ids)}", guild_id)

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
                guilds = [p for p in names if (place := guild_partition(p)) and guild_id in (None, place[0])]
                for source in ([guilds] if guilds else []) + [[DEFAULT_PARTITION]]:
                    rows = self._client.query(
                        name, filter=scoped, partition_names=source, output_fields=["key", "guild_id"]
                    )
                    for gid, guild_rows in by_guild(rows).items():
                        keys = [row["key"] for row in guild_rows]
                        for partition in (
                            source if source == [DEFAULT_PARTITION] else partitions_of(gid, guilds, default=False)
                        ):
                            self._client.delete(name, ids=keys, partition_name=partition)
                            self._dirty.add((name, partition))
            self._release_others()

        await self._run(delete_everywhere)
        self._schedule_erase()

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
