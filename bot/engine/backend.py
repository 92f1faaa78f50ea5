"""Where CLIP runs: the interface every backend implements, and what it reports once loaded.

The facade (`bot.engine.ClipEngine`) owns what does not depend on where the model
runs: the text cache, prompt fitting and the isolated decode workers. A backend
owns the model side: loading it (or reaching it), batching, and the embeddings.
`LocalBackend` (`bot.engine.local`) runs Roboflow Inference's `Clip` in this
process; `RemoteBackend` (`bot.engine.remote`) calls Roboflow Inference Servers.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

import numpy as np

if TYPE_CHECKING:
    from bot.engine.batching import MicroBatcher


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """What was loaded and where it runs (shown in replies and logs)."""

    model: str
    model_id: str
    device: str
    providers: tuple[str, ...]
    requested_providers: tuple[str, ...]
    resolution: int
    load_s: float


@dataclass(frozen=True, slots=True)
class ImageEmbedding:
    """An upload's raw embedding (a clip's: its frames' normalised mean), the reply's thumbnail
    when asked for, and how many frames it was made from (1: a still picture)."""

    vector: np.ndarray
    thumbnail: bytes | None = None
    frames: int = 1


class Backend(Protocol):
    """The model side of the engine. Built as `Backend(settings, workers)`; every call is async
    and keeps the event loop free (model runs in threads, or I/O to a server)."""

    async def load(self) -> ModelInfo:
        """Load (or reach) the model and warm it up; one-line `StartupError` when it cannot."""
        ...

    def warming_up(self) -> str | None:
        """While the model is being downloaded: how far along; else None."""
        ...

    async def embed_texts(self, texts: list[str]) -> list[np.ndarray]:
        """One raw (unnormalised) embedding per text. Texts are already fitted to CLIP's
        context and de-duplicated; the facade caches the results."""
        ...

    async def embed_image(
        self, data: bytes, *, thumbnail: bool, background: bool = False, requester: Hashable | None = None
    ) -> ImageEmbedding:
        """An upload's raw embedding, and the reply's thumbnail JPEG when asked for; a clip's or an
        animation's frames each embedded, then averaged after normalising (`mean_of_frames`).

        `background` work (indexing) waits behind interactive requests; `requester`'s uploads
        share `DECODES_PER_USER` decode workers (`ImageWorkers.submit`)."""
        ...

    async def problem(self) -> str | None:
        """None while the backend can serve; otherwise why not (for `/readyz`)."""
        ...

    async def settled(self) -> None:
        """Wait for background start-up work (e.g. a session swap) to finish."""
        ...

    @property
    def batchers(self) -> Sequence[MicroBatcher]:
        """The micro-batchers whose batches metrics observe (may be empty)."""
        ...

    async def aclose(self) -> None:
        """Stop batching and release threads, sessions and connections."""
        ...
