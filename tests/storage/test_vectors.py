"""The vector store on the real embedded engine (Milvus Lite in a file): filters, models, deletions."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from bot.storage.vectors import ImageRef, VectorStore

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


async def test_filters_run_in_the_database_and_models_never_mix(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    query = rng.standard_normal(DIM)
    store = VectorStore(str(tmp_path / "vectors.db"))
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
    other = VectorStore(str(tmp_path / "vectors.db"))
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

    reopened = VectorStore(str(tmp_path / "vectors.db"))
    await reopened.open("model-a", DIM)
    try:
        assert await reopened.count() == 120  # kept on disk; the private channel's went with author 8
        assert await reopened.count(channel_id=PRIVATE) == 0
    finally:
        await reopened.close()


async def test_deletions_by_message_key_channel_and_guild(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    store = VectorStore(str(tmp_path / "vectors.db"))
    await store.open("model-a", DIM)
    try:
        public = refs(5, guild=GUILD, channel=PUBLIC, start=1)
        private = refs(4, guild=GUILD, channel=PRIVATE, start=100)
        foreign = refs(3, guild=OTHER_GUILD, channel=FOREIGN, start=200)
        for group in (public, private, foreign):
            await store.add(group, rng.standard_normal((len(group), DIM)))
        assert await store.count() == 12

        await store.delete_messages([public[0].message_id, public[1].message_id])
        assert await store.keys(public[0].message_id) == set()
        await store.delete_keys([public[2].key])
        assert await store.count(channel_id=PUBLIC) == 2
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
