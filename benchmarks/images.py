"""The image path outside the engine, built from the engine's public parts, for the bench.

`ImagePath` turns bytes into the model's input as a request does (`bot.engine.decoding`
then `bot.engine.preprocess`), in this process or in decode worker processes of its own;
`bare_visual_session` is the floor a request is compared with.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from bot.config import Settings


class ImagePath:
    """Bytes to the model's input outside the engine, with the engine's public building blocks
    (`bot.engine.decoding`, `bot.engine.preprocess`): in this process, and in decode worker
    processes of the bench's own, as a request gets it."""

    def __init__(self, transform: Any, settings: Settings) -> None:
        from bot.engine.decoding import ImageWorkers
        from bot.engine.preparation import THUMBNAIL_SIDE
        from bot.engine.preprocess import ClipImageTransform

        self.transform = ClipImageTransform(transform)
        self.max_pixels = settings.max_image_pixels
        self.thumbnail_side = THUMBNAIL_SIDE
        self.workers = ImageWorkers(
            settings.decode_workers, timeout_s=settings.decode_timeout_s, memory_mb=settings.decode_memory_mb
        )
        self.workers.start()
        self.workers.warm_up(self.spec())

    def spec(self, *, thumbnail: bool = False, draft: bool = True) -> Any:
        from bot.engine.decoding import PrepareSpec

        side = self.thumbnail_side if thumbnail else 0
        return PrepareSpec(crop=self.transform.size, max_pixels=self.max_pixels, thumbnail=side, draft=draft)

    def model_input(self, prepared: Any) -> np.ndarray:
        return self.transform.from_crop(prepared.array())

    def in_process(self, data: bytes, *, draft: bool = True) -> np.ndarray:
        from bot.engine.decoding import prepare

        return self.model_input(prepare(data, self.spec(draft=draft)))

    def isolated(self, data: bytes, *, thumbnail: bool) -> np.ndarray:
        return self.model_input(self.workers.submit(data, self.spec(thumbnail=thumbnail)).result())

    def close(self) -> None:
        self.workers.close()


def bare_visual_session(clip: Any, providers: list[str]) -> Any:
    """The floor: a session on the same `visual.onnx`, with the options the engine's serving
    session has (`bot.engine.sessions.session_options`)."""
    import onnxruntime

    from bot.engine.sessions import session_options

    return onnxruntime.InferenceSession(
        clip.cache_file("visual.onnx"), sess_options=session_options(), providers=providers
    )
