"""The engine a benchmark measures: the given model on CPU, its own cache, and any other settings."""

from __future__ import annotations

from pathlib import Path

from bot.config import Settings
from bot.engine import ClipEngine
from bot.engine.backend import ModelInfo


async def started_engine(
    model_dir: Path, cache_dir: Path | None = None, **overrides: object
) -> tuple[Settings, ClipEngine, ModelInfo]:
    """Settings (no `.env`: a benchmark measures what it says), and their engine, started and settled."""
    values: dict[str, object] = {"clip_model_dir": model_dir, "clip_execution_providers": ("CPUExecutionProvider",)}
    if cache_dir is not None:
        values["model_cache_dir"] = cache_dir
    settings = Settings(_env_file=None, **values, **overrides)  # type: ignore[call-arg,arg-type]
    engine = ClipEngine(settings)
    info = await engine.start()
    await engine.settled()
    return settings, engine, info
