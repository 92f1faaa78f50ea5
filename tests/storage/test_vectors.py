"""The vector store on real Milvus engines: the embedded file (the default) and a server over
gRPC (`VECTOR_DB_URL`; `milvus-lite server`, see `tests/support/milvus_server.py`). Filters, models,
deletions, and each server's rows kept apart."""

from __future__ import annotations

import asyncio
import contextlib
import struct
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from pymilvus import MilvusClient

from bot.storage.vectors import (
    DEFAULT_PARTITION,
    FIELDS,
    ImageRef,
    VectorStore,
    _release_lite,
    collection_name,
    unit_rows,
)
from tests.support.milvus_server import milvus_lite_server

DIM = 16
GUILD, OTHER_GUILD = 10, 20
PUBLIC, PRIVATE, FOREIGN = 100, 101, 200


def refs(count: int, *, guild: int, channel: int, start: int, author: int = 7) -> list[ImageRef]:
    return [
        ImageRef(guild, channel, start + i, author, attachment_id=start * 10 + i, posted_at=1_700_000_000 + i)
        for i in range(count)
    ]


def near(base: np.ndarray, count: int, noise: float, rng: np.random.Generator) -> np.ndarray:
    return base + noise * rng.standard_normal((count, DIM))


@pytest.fixture(params=["file", "server"])
def uri(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Where the store lives: Milvus Lite's file (the default) or a Milvus server's URL."""
    if request.param == "file":
        yield str(tmp_path / "vectors.db")
        return
    with milvus_lite_server(tmp_path / "server") as url:
        yield url


async def test_filters_run_in_the_database_and_models_never_mix(uri: str) -> None:
    rng = np.random.default_rng(1)
    query = rng.standard_normal(DIM)
    store = VectorStore(uri)
    await store.open("model-a", DIM)
    try:
        # 60 images in the public channel all closer to the query than any of the 3 private ones,
        # and 60 in another guild closer still: a global top-k filtered afterwards would find
        # nothing in the private channel.
        await store.add(refs(60, guild=GUILD, channel=PUBLIC, start=1000), near(query, 60, 0.2, rng))
        await store.add(refs(60, guild=OTHER_GUILD, channel=FOREIGN, start=2000), near(query, 60, 0.05, rng))
        private = refs(3, guild=GUILD, channel=PRIVATE, start=3000, author=8)
        await store.add(private, near(-query, 3, 0.5, rng))

        hits = await store.search(query, GUILD, [PRIVATE], 5)
        assert sorted(h.ref.key for h in hits) == sorted(r.key for r in private)
        hits = await store.search(query, GUILD, [PUBLIC, PRIVATE], 10)
        assert len(hits) == 10 and {h.ref.channel_id for h in hits} == {PUBLIC}
        assert all(h.ref.guild_id == GUILD for h in hits)
        assert hits == sorted(hits, key=lambda h: -h.score)
        assert await store.search(query, GUILD, [], 5) == []

        stored = await store.vector_of(private[0].key)
        assert stored is not None and abs(float(np.linalg.norm(stored)) - 1) < 1e-5  # kept L2-normalised
    finally:
        await store.close()

    # Another model (another dimension) on the same file: its own collection, nothing shared.
    other = VectorStore(uri)
    await other.open("model-b", DIM * 2)
    try:
        assert await other.count() == 0
        assert await other.search(np.ones(DIM * 2), GUILD, [PUBLIC, PRIVATE], 5) == []
        await other.add(refs(2, guild=GUILD, channel=PUBLIC, start=4000, author=8), rng.standard_normal((2, DIM * 2)))
        # A person's deletion reaches every model's collection.
        await other.delete_author(8)
        assert await other.count() == 0
    finally:
        await other.close()

    reopened = VectorStore(uri)
    await reopened.open("model-a", DIM)
    try:
        assert await reopened.count() == 120  # kept on disk; the private channel's went with author 8
        assert await reopened.count(channel_id=PRIVATE) == 0
    finally:
        await reopened.close()


async def test_deletions_by_message_key_channel_and_guild(uri: str) -> None:
    rng = np.random.default_rng(2)
    store = VectorStore(uri)
    await store.open("model-a", DIM)
    try:
        public = refs(5, guild=GUILD, channel=PUBLIC, start=1)
        private = refs(4, guild=GUILD, channel=PRIVATE, start=100)
        foreign = refs(3, guild=OTHER_GUILD, channel=FOREIGN, start=200)
        for group in (public, private, foreign):
            await store.add(group, rng.standard_normal((len(group), DIM)))
        assert await store.count() == 12

        await store.delete_messages([public[0].message_id])
        assert await store.keys(public[0].message_id) == set()
        # With the server's id, as Discord's delete and edit events carry it.
        assert await store.keys(public[1].message_id, GUILD) == {public[1].key}
        await store.delete_messages([public[1].message_id], GUILD)
        assert await store.keys(public[1].message_id, GUILD) == set() == await store.keys(public[1].message_id)
        await store.delete_keys([public[2].key])
        assert await store.count(channel_id=PUBLIC) == 2 == await store.count(guild_id=GUILD, channel_id=PUBLIC)
        await store.delete_channel(PRIVATE)
        assert await store.count(channel_id=PRIVATE) == 0
        await store.delete_guild(GUILD)
        assert await store.count(guild_id=GUILD) == 0
        assert await store.count() == 3  # the other guild is untouched
        # Adding an image again replaces it (one row per image).
        await store.add(foreign[:1], rng.standard_normal((1, DIM)))
        assert await store.count() == 3
    finally:
        await store.close()


async def test_the_file_keeps_each_server_in_its_own_partition(tmp_path: Path) -> None:
    """A search in one server scans that server's partition only (Milvus Lite scans every row of
    what it searches: BENCHMARKS.md), and rows stored before partitions existed are still found."""
    rng = np.random.default_rng(3)
    query = rng.standard_normal(DIM)
    uri = str(tmp_path / "vectors.db")
    store = VectorStore(uri)
    await store.open("model-a", DIM)
    await store.close()
    # What an earlier version stored: rows in the default partition.
    legacy = refs(4, guild=GUILD, channel=PUBLIC, start=500)
    client = MilvusClient(uri)
    client.upsert(
        collection_name("model-a"),
        [
            {"key": ref.key, "vector": row.tolist(), "model": "model-a", "guild_id": ref.guild_id}
            | {"channel_id": ref.channel_id, "message_id": ref.message_id, "author_id": ref.author_id}
            | {"attachment_id": ref.attachment_id, "posted_at": ref.posted_at}
            for ref, row in zip(legacy, near(query, 4, 0.01, rng) / np.linalg.norm(query), strict=True)
        ],
    )
    client.close()
    _release_lite(uri)

    store = VectorStore(uri)
    await store.open("model-a", DIM)
    try:
        new = refs(6, guild=GUILD, channel=PUBLIC, start=600)
        foreign = refs(6, guild=OTHER_GUILD, channel=FOREIGN, start=700)
        await store.add(new, near(query, 6, 0.5, rng))
        await store.add(foreign, near(query, 6, 0.01, rng))
        await store.flush()

        def guilds_in(partition: str) -> set[int]:
            rows = store._client.query(
                store.collection, filter='key != ""', partition_names=[partition], output_fields=["guild_id"]
            )
            return {row["guild_id"] for row in rows}

        assert guilds_in(f"g{GUILD}") == {GUILD} and guilds_in(f"g{OTHER_GUILD}") == {OTHER_GUILD}
        assert guilds_in(DEFAULT_PARTITION) == {GUILD}  # the earlier rows, where they were

        hits = await store.search(query, GUILD, [PUBLIC], 10)
        assert {h.ref.key for h in hits} == {r.key for r in legacy + new}  # never the closer foreign ones
        assert {h.ref.key for h in hits[:4]} == {r.key for r in legacy}  # the closest come first
        # Storing an earlier image again replaces it, wherever it was.
        await store.add(legacy[:1], near(-query, 1, 0.01, rng))
        hits = await store.search(query, GUILD, [PUBLIC], 10)
        assert len(hits) == 10 and hits[-1].ref.key == legacy[0].key
        assert await store.count(guild_id=GUILD) == 10
        # A message deleted in Discord loses its entries in either partition.
        await store.delete_messages([legacy[1].message_id, new[0].message_id], GUILD)
        assert await store.keys(legacy[1].message_id) == set() == await store.keys(new[0].message_id)
        assert await store.keys(legacy[2].message_id, GUILD) == {legacy[2].key}
        assert await store.count(guild_id=GUILD) == 8 and await store.count(guild_id=OTHER_GUILD) == 6
        await store.delete_guild(GUILD)
        assert await store.count() == 6 and await store.search(query, GUILD, [PUBLIC], 10) == []
    finally:
        await store.close()


async def test_a_server_partitions_by_guild_itself(tmp_path: Path) -> None:
    """With `VECTOR_DB_URL`, `guild_id` is the collection's partition key (Milvus's multi-tenancy:
    the `guild_id ==` filter prunes partitions; manual ones stop at 1,024 per collection)."""
    with milvus_lite_server(tmp_path / "server") as url:
        store = VectorStore(url)
        await store.open("model-a", DIM)
        try:
            await store.add(refs(3, guild=GUILD, channel=PUBLIC, start=1), np.eye(3, DIM))
            fields = store._client.describe_collection(store.collection)["fields"]
            assert [f["name"] for f in fields if f.get("is_partition_key")] == ["guild_id"]
            assert store.index == "HNSW"
            hits = await store.search(np.eye(1, DIM)[0], GUILD, [PUBLIC], 2)
            assert hits[0].ref.message_id == 1 and len(hits) == 2
        finally:
            await store.close()


# -- erasure on disk (Milvus Lite) ----------------------------------------------------------------
FORGOTTEN = 1_100_000_000_000_000_001  # an author id as Discord makes them (a snowflake)
SECRET_CHANNEL = 1_200_000_000_000_000_002
KEPT_AUTHOR = 1_300_000_000_000_000_003


def traces(root: Path, ids: set[int], keys: set[str], vectors: np.ndarray) -> list[str]:
    """Every file under `root` that still holds one of `ids` (as int64 or text), `keys`, or one of
    `vectors` (as the float32 bytes stored): raw bytes first, then each Parquet/Arrow file decoded
    (its columns may be compressed or dictionary-encoded). A Parquet file that cannot be read yet
    (a flush is writing it) counts as holding them, so a caller that polls looks again."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    needles = [struct.pack("<q", i) for i in ids] + [str(i).encode() for i in ids]
    needles += [row.astype("<f4").tobytes() for row in vectors] + [k.encode() for k in keys]
    found = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        try:  # a rewrite running meanwhile may remove it: then it holds nothing
            data = path.read_bytes()
        except FileNotFoundError:
            continue
        if any(needle in data for needle in needles):
            found.append(f"{path.relative_to(root)} (raw bytes)")
            continue
        tables = []
        if path.suffix == ".parquet":
            try:
                tables.append(pq.read_table(pa.BufferReader(data)))
            except pa.ArrowInvalid:  # being written by a flush meanwhile: it may hold anything yet
                found.append(f"{path.relative_to(root)} (unreadable Parquet, {len(data)} bytes)")
                continue
        elif path.suffix == ".arrow":
            with contextlib.suppress(pa.ArrowInvalid):
                tables.append(pa.ipc.open_stream(data).read_all())
        for table in tables:
            for column in table.column_names:
                values = table.column(column).to_pylist()
                if any(v in ids or v in keys for v in values if isinstance(v, int | str)):
                    found.append(f"{path.relative_to(root)} column {column}")
    return found


def erasure_fixture(rng: np.random.Generator) -> tuple[list[ImageRef], list[ImageRef], np.ndarray, np.ndarray]:
    """Two servers: the forgotten author's images (in a channel of their own too) among others'."""
    kept = [
        ImageRef(GUILD, PUBLIC, 1_400_000_000_000_000_000 + i, KEPT_AUTHOR, 1_500_000_000_000_000_000 + i, 1)
        for i in range(30)
    ] + [ImageRef(OTHER_GUILD, FOREIGN, 1_410_000_000_000_000_000 + i, KEPT_AUTHOR, 0, 1, 0) for i in range(5)]
    gone = [
        ImageRef(GUILD, SECRET_CHANNEL, 1_600_000_000_000_000_000 + i, FORGOTTEN, 1_700_000_000_000_000_000 + i, 2)
        for i in range(12)
    ] + [ImageRef(OTHER_GUILD, SECRET_CHANNEL, 1_610_000_000_000_000_000, FORGOTTEN, 1_710_000_000_000_000_000, 2)]
    return (
        kept,
        gone,
        unit_rows(rng.standard_normal((len(kept), DIM))),
        unit_rows(rng.standard_normal((len(gone), DIM))),
    )


def gone_ids(gone: list[ImageRef]) -> tuple[set[int], set[str]]:
    ids = {FORGOTTEN} | {r.message_id for r in gone} | {r.attachment_id for r in gone}
    return ids, {r.key for r in gone}


@pytest.mark.parametrize("erase", ["author", "messages", "channel"])
async def test_deleted_images_leave_the_files_of_the_embedded_store(tmp_path: Path, erase: str) -> None:
    """Milvus Lite only marks deleted rows; the store rewrites what it deleted from, so the
    forgotten author's vectors and ids are gone from every file under the store's folder within
    `erase_after_s`, and everyone else's images are still found."""
    rng = np.random.default_rng(4)
    kept, gone, kept_vectors, gone_vectors = erasure_fixture(rng)
    folder = tmp_path / "vectors.db"
    # An old model's collection holds the author's images too (deletions reach every model).
    old = VectorStore(str(folder))
    await old.open("model-old", DIM)
    await old.add(gone[:3], gone_vectors[:3])
    await old.close()

    store = VectorStore(str(folder), erase_after_s=0.2)
    await store.open("model-a", DIM)
    try:
        await store.add(kept[:10] + gone[:6], np.vstack([kept_vectors[:10], gone_vectors[:6]]))
        await store.flush()  # some in data files, some still in memory and the write-ahead log
        await store.add(kept[10:] + gone[6:], np.vstack([kept_vectors[10:], gone_vectors[6:]]))
        await store.flush()
        ids, keys = gone_ids(gone)
        assert traces(folder, ids, keys, gone_vectors)  # the check can see them

        if erase == "author":
            await store.delete_author(FORGOTTEN)
        elif erase == "messages":
            await store.delete_messages([r.message_id for r in gone if r.guild_id == GUILD], GUILD)
            await store.delete_messages([r.message_id for r in gone if r.guild_id != GUILD])
        else:
            await store.delete_channel(SECRET_CHANNEL)
        assert await store.count() == len(kept)
        for _ in range(300):  # the stated delay is 0.2 s; the rewrite takes a moment more
            await asyncio.sleep(0.1)
            if not traces(folder, ids, keys, gone_vectors):
                break
        assert traces(folder, ids, keys, gone_vectors) == []
        hits = await store.search(kept_vectors[3], GUILD, [PUBLIC, SECRET_CHANNEL], 3)
        assert hits[0].ref == kept[3] and hits[0].score > 0.999
        await store.add(kept[:1], kept_vectors[:1])  # writes go on into the rewritten partition
    finally:
        await store.close()
    assert traces(folder, ids, keys, gone_vectors) == []

    reopened = VectorStore(str(folder))
    await reopened.open("model-a", DIM)
    try:
        assert await reopened.count(guild_id=GUILD) == 30 and await reopened.count(guild_id=OTHER_GUILD) == 5
        hits = await reopened.search(kept_vectors[31], OTHER_GUILD, [FOREIGN], 1)
        assert hits[0].ref == kept[31]
    finally:
        await reopened.close()


async def test_a_stop_before_the_rewrite_erases_at_the_next_open(tmp_path: Path) -> None:
    """Deleted, then stopped before `erase_after_s`: the next open rewrites what still holds
    tombstones; a rewrite cut short (both partitions left) keeps the whole one and redoes it."""
    rng = np.random.default_rng(5)
    kept, gone, kept_vectors, gone_vectors = erasure_fixture(rng)
    folder = tmp_path / "vectors.db"
    store = VectorStore(str(folder), erase_after_s=3600)
    await store.open("model-a", DIM)
    await store.add(kept + gone, np.vstack([kept_vectors, gone_vectors]))
    await store.delete_author(FORGOTTEN)
    await store.close()
    ids, keys = gone_ids(gone)
    assert traces(folder, ids, keys, gone_vectors)  # still there: the rewrite had not run

    # As if a rewrite had been interrupted: a half-made copy of the guild's partition.
    client = MilvusClient(str(folder))
    client.create_partition(collection_name("model-a"), f"g{GUILD}_1")
    client.insert(
        collection_name("model-a"),
        [
            {"key": kept[0].key, "vector": kept_vectors[0].tolist(), "model": "model-a"}
            | {field: getattr(kept[0], field) for field in FIELDS[1:]}
        ],
        partition_name=f"g{GUILD}_1",
    )
    client.close()
    _release_lite(str(folder))

    reopened = VectorStore(str(folder))
    await reopened.open("model-a", DIM)
    try:
        assert traces(folder, ids, keys, gone_vectors) == []
        assert await reopened.count(guild_id=GUILD) == 30 and await reopened.count() == len(kept)
        hits = await reopened.search(kept_vectors[0], GUILD, [PUBLIC], 2)
        assert hits[0].ref == kept[0] and hits[1].score < 0.999  # once, not twice
    finally:
        await reopened.close()


async def test_searches_and_writes_go_on_while_a_partition_is_rewritten(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rewrite copies a few rows per step; in between, searches see each image once, and an
    image stored or deleted meanwhile is stored or deleted in the result."""
    from bot.storage.vectors import rewrite as rewrites

    monkeypatch.setattr(rewrites, "REWRITE_CHUNK", 2)
    rng = np.random.default_rng(6)
    kept, gone, kept_vectors, gone_vectors = erasure_fixture(rng)
    store = VectorStore(str(tmp_path / "vectors.db"), erase_after_s=3600)
    await store.open("model-a", DIM)
    try:
        await store.add(kept + gone, np.vstack([kept_vectors, gone_vectors]))
        await store.delete_author(FORGOTTEN)
        rewrite = asyncio.create_task(store.erase_now())
        for _ in range(1000):  # until the rewrite's copy exists
            if store._copies:
                break
            await asyncio.sleep(0.01)
        late = ImageRef(GUILD, PUBLIC, 1_800_000_000_000_000_000, KEPT_AUTHOR, 1_900_000_000_000_000_000, 3)
        late_vector = unit_rows(rng.standard_normal((1, DIM)))
        await store.add([late], late_vector)
        await store.delete_messages([kept[5].message_id], GUILD)
        hits = await store.search(kept_vectors[0], GUILD, [PUBLIC], 50)
        assert not rewrite.done()  # all of this happened in the middle of the rewrite
        assert len(hits) == len({h.ref.key for h in hits}) == 30  # 30 kept - 1 deleted + 1 new, once each
        assert await store.count() == len(kept)
        assert await rewrite >= 1
        assert await store.keys(kept[5].message_id, GUILD) == set()
        assert (await store.search(late_vector[0], GUILD, [PUBLIC], 1))[0].ref == late
        assert await store.count(guild_id=GUILD) == 30 and await store.count() == len(kept)
        await store.erase_now()  # the deletion made meanwhile: the copy is rewritten in turn
    finally:
        await store.close()
    ids, keys = gone_ids(gone)
    assert traces(tmp_path, ids | {kept[5].message_id}, keys | {kept[5].key}, gone_vectors) == []
