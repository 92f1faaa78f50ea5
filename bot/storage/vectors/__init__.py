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

The parts: `rows` (what a row is, partition names), `rewrite` (erasure on disk), `store`
(`VectorStore`).
"""

from bot.storage.vectors.rows import DEFAULT_PARTITION, FIELDS, Hit, ImageRef, collection_name, unit_rows
from bot.storage.vectors.store import VectorStore, _release_lite

__all__ = [
    "DEFAULT_PARTITION",
    "FIELDS",
    "Hit",
    "ImageRef",
    "VectorStore",
    "_release_lite",
    "collection_name",
    "unit_rows",
]
