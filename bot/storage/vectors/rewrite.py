"""Erasure on disk (Milvus Lite). A delete only writes a tombstone: the row, its vector and
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
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from bot.storage.vectors.rows import FIELDS, FLUSH_ROWS, GUILD_PARTITION, PREFIX, guild_partition

log = logging.getLogger(__name__)
T = TypeVar("T")

#: How long after a deletion the embedded file rewrites the partitions it deleted from.
ERASE_AFTER_S = 60.0
#: Rows copied per step of a rewrite: bounds its memory, and how long a search waits behind a step
#: (the store's thread runs one call at a time). The copy is flushed every 4 x `FLUSH_ROWS` rows.
REWRITE_CHUNK = 256


class PartitionRewrites:
    """`VectorStore`'s client thread and its erasure on disk (Milvus Lite), kept apart for size:
    `VectorStore` sets these attributes and calls `erase_now` / `_schedule_erase` after deletions."""

    uri: str
    embedded: bool
    collection: str | None
    erase_after_s: float
    _client: Any
    _pool: ThreadPoolExecutor
    #: The partitions of the open collection (see `rows.GUILD_PARTITION`).
    _partitions: set[str]
    #: (collection, partition) holding deleted rows, to rewrite.
    _dirty: set[tuple[str, str]]
    _erase_task: asyncio.Task[None] | None
    #: Partitions being filled by a rewrite -> the partition they copy: writes and deletes
    #: meanwhile reach both (reads see each key once: its newest version).
    _copies: dict[tuple[str, str], str]
    _closing: bool

    async def _run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, lambda: fn(*args, **kwargs))

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
                if (place := guild_partition(partition)) is not None:
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
        place = guild_partition(partition)
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
        disk (module docstring); how many were rewritten. A server: nothing (it compacts)."""
        if not self.embedded or self._client is None or self._closing:
            return 0
        done = 0
        while self._dirty and not self._closing:
            name, partition = min(self._dirty)
            self._dirty.discard((name, partition))
            done += await self._rewrite(name, partition)
        return done
