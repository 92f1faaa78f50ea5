"""One typed settings object, read from the environment and `.env`.

Every knob the bot has lives here, so `.env.example`, the README table and the
code cannot drift apart silently: `tests/test_config.py` checks `.env.example`
against this class.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_PROVIDERS = ("CUDAExecutionProvider", "CPUExecutionProvider")


class Settings(BaseSettings):
    """Bot, engine and limit settings. Field names map to upper-case env vars."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        # Allow `Settings(model_dir=...)` as well as the env name in code and tests.
        populate_by_name=True,
    )

    # --- Discord ---------------------------------------------------------
    discord_token: SecretStr | None = None
    discord_guild_id: int | None = None
    #: The only hosts images are fetched from: Discord's CDN and media proxy, never a link a
    #: user posted (no request forgery). Extra hosts are for a local stand-in in tests.
    trusted_media_hosts: Annotated[tuple[str, ...], NoDecode] = (
        "cdn.discordapp.com",
        "media.discordapp.net",
        "images-ext-1.discordapp.net",
        "images-ext-2.discordapp.net",
    )
    #: On SIGTERM/SIGINT, how long requests in flight may take to finish (Docker waits 10 s).
    shutdown_grace_s: float = Field(default=8.0, ge=0, le=600)
    #: Sharding (`discord.AutoShardedClient`): shards in all, across every process; unset: no sharding.
    shard_count: int | None = Field(default=None, ge=1)
    #: The shards this process runs (`0,1`); unset: all `shard_count` of them.
    shard_ids: Annotated[tuple[int, ...] | None, NoDecode] = None

    # --- Storage -------------------------------------------------------------
    #: Where the SQLite database lives when `DATABASE_URL` is unset.
    data_dir: Path = Path("~/.local/share/clipbot").expanduser()
    #: PostgreSQL (`postgresql://user:password@host/db`) for several bot processes; unset: SQLite.
    database_url: SecretStr | None = None
    #: Milvus server or cluster (`http://host:19530`) for /search; unset: Milvus Lite, a file in `DATA_DIR`.
    vector_db_url: SecretStr | None = None
    #: Token for `VECTOR_DB_URL` (`user:password` or an API key); unset: none.
    vector_db_token: SecretStr | None = None
    #: Milvus Lite: how soon after a deletion the deleted vectors and ids leave its files (the
    #: partitions deleted from are rewritten then; one rewrite serves a burst of deletions).
    vector_erase_after_s: float = Field(default=60.0, ge=0, le=86_400)

    # --- Image search (/index, /search) -----------------------------------------
    #: Ask Discord for the privileged Message Content intent (enable it in the Developer Portal
    #: first). Without it Discord sends no attachments of ordinary messages, so /index sees none.
    message_content_intent: bool = False
    #: Images embedded at once by a history backfill (each also waits behind interactive requests).
    backfill_concurrency: int = Field(default=2, ge=1, le=16)
    #: How often a backfill's progress message is edited, in seconds.
    backfill_progress_every_s: float = Field(default=3.0, ge=0.5, le=60)
    #: Results /search shows when not told otherwise (at most 10).
    search_results: int = Field(default=5, ge=1, le=10)

    # --- Repost alerts (`/index add … repost:True`, `/index repost`) ---------------
    #: Cosine (of unit CLIP image vectors) at or above which a new image counts as a repost of its
    #: nearest indexed neighbour; chosen by `python -m benchmarks.repost` (BENCHMARKS.md, "Repost alerts").
    repost_threshold: float = Field(default=0.99, ge=0.5, le=1.0)

    # --- Operations ----------------------------------------------------------
    #: Serve /metrics, /healthz and /readyz on this port (unset: off; 0: any free port).
    metrics_port: int | None = Field(default=None, ge=0, le=65535)
    metrics_host: str = "127.0.0.1"

    # --- Model -------------------------------------------------------------
    clip_model_id: str = "clip/ViT-B-16"
    clip_model_dir: Path | None = None
    roboflow_api_key: SecretStr | None = None
    model_cache_dir: Path = Path("~/.cache/clipbot/inference").expanduser()
    clip_execution_providers: Annotated[tuple[str, ...], NoDecode] = DEFAULT_PROVIDERS
    clip_default_template: str = "a photo of a {}"
    #: First-run download (`bot.engine.model_download`): tries per file, then one error line; a later start resumes.
    model_download_tries: int = Field(default=4, ge=1, le=100)
    #: Seconds without data (or to connect) before a try counts as failed.
    model_download_timeout_s: float = Field(default=60.0, gt=0)
    #: First wait between two tries, in seconds; it doubles each time (at most 30 s).
    model_download_retry_wait_s: float = Field(default=1.0, ge=0, le=30)
    #: Without a terminal (Docker, logs), one progress line every this many seconds.
    model_download_log_every_s: float = Field(default=5.0, gt=0)

    # --- Remote CLIP (`bot.engine.remote`) ------------------------------------
    #: `local`: CLIP runs in this process; `remote`: on Roboflow Inference Servers (`INFERENCE_SERVER_URL`).
    clip_backend: Literal["local", "remote"] = "local"
    #: One or several (comma-separated) inference server URLs; requests are spread over them.
    inference_server_url: Annotated[tuple[str, ...], NoDecode] = ()
    #: Seconds one request to a server may take before it is retried on another.
    inference_timeout_s: float = Field(default=15.0, gt=0, le=600)
    #: Further tries after a failed one (timeout, 5xx, connection error), on other servers first.
    inference_retries: int = Field(default=2, ge=0, le=10)
    #: At start-up, how long to wait for a first server to answer (they may start after the bot).
    inference_startup_timeout_s: float = Field(default=300.0, gt=0)
    #: The model's input side in pixels; unset: known from the CLIP version (224 for ViT-B-16).
    clip_remote_resolution: int | None = Field(default=None, ge=16, le=1024)

    # --- Engine ------------------------------------------------------------
    clip_workers: int = Field(default=1, ge=1, le=16)
    #: Worker processes that decode uploads (`bot.engine.decoding`); each may hold one hostile upload
    #: for up to `decode_timeout_s`.
    decode_workers: int = Field(default=2, ge=1, le=32)
    #: Longest one upload may take to decode and prepare; past it the worker is killed and replaced.
    decode_timeout_s: float = Field(default=5.0, gt=0, le=120)
    #: One person's images decoding at once, whatever they asked (a /compare of ten files
    #: included), so one person never holds every decode worker.
    decodes_per_user: int = Field(default=1, ge=1, le=32)
    #: Address space of one decode worker (its ~150 MB of code included); past it the upload is refused.
    decode_memory_mb: int = Field(default=1024, ge=256, le=1 << 20)
    batch_window_ms: float = Field(default=0.0, ge=0, le=1000)
    #: Largest batch per encoder call; unset: 4 on a CPU, 16 on an accelerator (see `ClipEngine`).
    max_batch_size: int | None = Field(default=None, ge=1, le=256)
    text_cache_size: int = Field(default=4096, ge=0)
    #: Run the text encoder on the prompt's real length instead of all 77 positions
    #: (the graph is rewritten once, cached, and verified against the original at start-up).
    text_real_length: bool = True
    #: The visual encoder's CPU runtime and precision (`bot.engine.runtimes`): `auto` measures the
    #: candidates this CPU supports once and keeps the fastest that agrees with fp32 (checked at
    #: every start); `CLIP_PRECISION=fp32` is onnxruntime fp32, the seed's exact path.
    clip_runtime: Literal["auto", "onnxruntime", "openvino"] = "auto"
    clip_precision: Literal["auto", "fp32", "bf16", "int8"] = "auto"
    max_pending: int = Field(default=32, ge=1)

    # --- Limits ------------------------------------------------------------
    min_labels: int = Field(default=2, ge=1)
    max_labels: int = Field(default=25, ge=1, le=100)
    max_image_bytes: int = Field(default=25 * 1024 * 1024, ge=1024)
    max_image_pixels: int = Field(default=50_000_000, ge=1024)
    download_timeout_s: float = Field(default=20.0, gt=0)
    request_timeout_s: float = Field(default=600.0, gt=0, le=840)
    #: Per person, Manage Server holders included (`bot.discord.admission`): one request per
    #: `user_cooldown_s` on average, up to `user_burst` in quick succession; 0 s: no rate limit.
    user_cooldown_s: float = Field(default=3.0, ge=0)
    user_burst: int = Field(default=3, ge=1, le=100)
    #: A person's requests served at once (commands and form submissions); 0: no cap.
    user_max_in_flight: int = Field(default=2, ge=0)
    #: Bytes of images all downloads in progress may hold, reserved by their declared size.
    download_budget_mb: int = Field(default=256, ge=1)
    queue_notice_after: int = Field(default=4, ge=1)

    # --- /autotag (channels that tag their own images) ---------------------------
    #: The least probability a winning label needs before anything is done, when `/autotag add`
    #: gives none: below it a guess is too unsure to put on someone's message.
    autotag_min_probability: float = Field(default=0.5, ge=0, le=1)
    #: Images one channel may have tagged per minute; more are skipped (and counted in /metrics),
    #: so a flood of uploads never floods the channel with reactions or replies.
    autotag_per_minute: int = Field(default=20, ge=1, le=600)
    #: Images waiting to be tagged, all channels together; more are skipped (counted in /metrics),
    #: so a bot that cannot keep up tags what is new instead of working through an ever longer
    #: backlog, and holds a bounded number of waiting messages.
    autotag_max_waiting: int = Field(default=200, ge=1, le=100_000)
    #: While people use the bot (a request in the last few seconds), the share of the time
    #: background classification (/autotag) may take: the rest is left free so a request never
    #: waits long behind an image being tagged. Alone, it runs at full speed.
    autotag_busy_share: float = Field(default=0.25, gt=0, le=1)

    # --- Clips and animations (MP4, WebM, MOV; animated GIF, WebP, APNG: `bot.engine.frames`) ---
    #: Frames of a clip or an animation embedded (spread over its length) and averaged.
    clip_frames: int = Field(default=8, ge=1, le=32)
    #: Longest clip taken (declared, or found while decoding one that declares no length).
    clip_max_duration_s: float = Field(default=600.0, gt=0)
    #: Most frames decoded from one clip or animation to reach the chosen ones (seeking included).
    clip_max_frames_examined: int = Field(default=3000, ge=1)

    log_level: str = "INFO"

    @field_validator("clip_execution_providers", "trusted_media_hosts", "inference_server_url", mode="before")
    @classmethod
    def _split_providers(cls, value: object) -> object:
        """Accept `A,B` (env style) as well as a list."""
        if isinstance(value, str):
            return tuple(p.strip() for p in value.strip("[]").split(",") if p.strip())
        return value

    @field_validator("shard_ids", mode="before")
    @classmethod
    def _split_ids(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(int(p) for p in value.strip("[]").split(",") if p.strip()) or None
        return value

    @field_validator("inference_server_url", mode="after")
    @classmethod
    def _check_urls(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for url in value:
            if not url.startswith(("http://", "https://")):
                raise ValueError(f"{url!r} is not an http:// or https:// URL")
        return tuple(url.rstrip("/") for url in value)

    @model_validator(mode="after")
    def _check_combinations(self) -> Settings:
        if self.clip_backend == "remote" and not self.inference_server_url:
            raise ValueError("CLIP_BACKEND=remote needs INFERENCE_SERVER_URL (one URL or several, comma-separated)")
        if (self.clip_runtime, self.clip_precision) in (("onnxruntime", "bf16"), ("openvino", "int8")):
            raise ValueError(
                f"CLIP_RUNTIME={self.clip_runtime} with CLIP_PRECISION={self.clip_precision} is not offered "
                "(bf16 runs on openvino, int8 on onnxruntime)"
            )
        if self.shard_ids is not None:
            if self.shard_count is None:
                raise ValueError("SHARD_IDS needs SHARD_COUNT (the number of shards across all processes)")
            wrong = [i for i in self.shard_ids if not 0 <= i < self.shard_count]
            if wrong or len(set(self.shard_ids)) != len(self.shard_ids):
                raise ValueError(f"SHARD_IDS must be distinct numbers from 0 to SHARD_COUNT-1 ({self.shard_count - 1})")
        return self

    @field_validator(
        "clip_model_dir",
        "discord_guild_id",
        "discord_token",
        "roboflow_api_key",
        "max_batch_size",
        "metrics_port",
        "database_url",
        "shard_count",
        "shard_ids",
        "clip_remote_resolution",
        "vector_db_url",
        "vector_db_token",
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        """`NAME=` in .env means "not set", not an empty string."""
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("clip_model_dir", "model_cache_dir", "data_dir", mode="after")
    @classmethod
    def _expand_home(cls, value: Path | None) -> Path | None:
        return None if value is None else value.expanduser()

    @property
    def model_label(self) -> str:
        """What the footer and logs call the model."""
        if self.clip_model_dir is not None:
            return f"local:{self.clip_model_dir.name}"
        return self.clip_model_id

    @property
    def database(self) -> str:
        """The database URL in use: `DATABASE_URL`, or the SQLite file in `DATA_DIR`."""
        if self.database_url is not None:
            return self.database_url.get_secret_value()
        return f"sqlite:///{self.data_dir / 'clipbot.db'}"

    @property
    def vector_db(self) -> str:
        """Where vectors live: `VECTOR_DB_URL`, or the Milvus Lite file in `DATA_DIR`."""
        if self.vector_db_url is not None:
            return self.vector_db_url.get_secret_value()
        return str(self.data_dir / "vectors.db")

    def secrets(self) -> list[str]:
        """Secret values that must never reach a log line or a reply (`bot.logs` also scrubs
        their derived forms: a URL's password, its `user:password`, …)."""
        values = [
            s.get_secret_value()
            for s in (
                self.discord_token,
                self.roboflow_api_key,
                self.database_url,
                self.vector_db_url,
                self.vector_db_token,
            )
            if s is not None and s.get_secret_value()
        ]
        # A server URL is not secret, but the user:password in one is.
        return values + [url for url in self.inference_server_url if "@" in url.split("://", 1)[-1].split("/")[0]]
