"""What one row of the image index is, and how Milvus Lite names a guild's partitions."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import numpy as np

PREFIX = "images_"
KEY_LENGTH = 64
MODEL_LENGTH = 512
#: Where Milvus Lite keeps a guild's rows (see the package docstring), and where rows stored
#: before per-guild partitions are.
GUILD_PARTITION = "g{}"
#: A guild's partition after `generation` rewrites (see `rewrite`): `g<guild>_<generation>`.
GUILD_PARTITION_NAME = re.compile(r"g(\d+)(?:_(\d+))?")
DEFAULT_PARTITION = "_default"
#: Milvus Lite searches rows still in its memtable by a scan (10k unflushed rows: ~2 s a query on
#: 2 cores, against 14 ms once flushed into an indexed segment), so the file is flushed after this
#: many new rows, and by `flush` (after each backfill page). A server seals segments itself.
FLUSH_ROWS = 256
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


def id_list(values: Iterable[int]) -> str:
    """Integers as a Milvus filter list literal."""
    return "[" + ",".join(str(int(v)) for v in values) + "]"


def guild_partition(name: str) -> tuple[int, int] | None:
    """(guild id, generation) of a guild's partition name; None for another partition."""
    match = GUILD_PARTITION_NAME.fullmatch(name)
    return None if match is None else (int(match[1]), int(match[2] or 0))


def partitions_of(guild_id: int, names: Iterable[str], *, default: bool = True) -> list[str]:
    """The partitions that may hold `guild_id`'s rows: its own, and the default one (rows stored
    before per-guild partitions)."""
    return sorted(
        name
        for name in names
        if (default and name == DEFAULT_PARTITION)
        or ((place := guild_partition(name)) is not None and place[0] == guild_id)
    )


def by_guild(rows: Iterable[dict[str, Any]]) -> dict[int, list[dict[str, Any]]]:
    grouped: dict[int, list[dict[str, Any]]] = {}
    for row in rows:
        grouped.setdefault(int(row["guild_id"]), []).append(row)
    return grouped


def ref_of(entity: dict[str, Any]) -> ImageRef:
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
