"""Tables. Changing one means adding an Alembic migration (`bot/storage/migrations/versions`)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, DateTime, Float, Index, String, Text, UniqueConstraint, false
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class Base(DeclarativeBase):
    pass


class LabelPreset(Base):
    """A named label set, owned by a server (`scope` "guild") or a person ("user")."""

    __tablename__ = "label_presets"
    __table_args__ = (UniqueConstraint("scope", "owner_id", "name", name="uq_label_presets_owner_name"),)

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    scope: Mapped[str] = mapped_column(String(8))
    owner_id: Mapped[int] = mapped_column(BigInteger)
    name: Mapped[str] = mapped_column(String(32))
    #: The labels, one per line (labels never contain a newline: `bot.labels` cleans them).
    labels: Mapped[str] = mapped_column(Text)
    created_by: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class RecentLabelSet(Base):
    """A label set someone used lately, offered back by autocomplete and the modal."""

    __tablename__ = "recent_label_sets"
    __table_args__ = (
        UniqueConstraint("user_id", "guild_id", "labels", name="uq_recent_label_sets_user_guild_labels"),
        Index("ix_recent_label_sets_user_used", "user_id", "used_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(BigInteger)
    #: 0 outside a server (DMs).
    guild_id: Mapped[int] = mapped_column(BigInteger)
    labels: Mapped[str] = mapped_column(Text)
    used_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class GuildSettings(Base):
    """A server's defaults, set by members with Manage Server."""

    __tablename__ = "guild_settings"

    guild_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    #: Template for /classify when none is given ("none", "ensemble" or one with {}); None: the bot's.
    default_template: Mapped[str | None] = mapped_column(Text, nullable=True)
    #: Preset offered in the "Classify image" form when a person has no recent label set here.
    default_preset: Mapped[str | None] = mapped_column(String(32), nullable=True)


class IndexedChannel(Base):
    """A channel whose images /search covers (`/index add`), with its history backfill's checkpoint.

    A backfill walks the history from newest to oldest; `cursor` is the oldest message
    id scanned so far, so a restart continues before it.
    """

    __tablename__ = "indexed_channels"

    channel_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    guild_id: Mapped[int] = mapped_column(BigInteger, index=True)
    added_by: Mapped[int] = mapped_column(BigInteger)
    added_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    #: "none" (new messages only), "running" or "done".
    backfill: Mapped[str] = mapped_column(String(8))
    #: The model the backfill embeds for (a model change starts it again, see `/index rebuild`).
    model_id: Mapped[str] = mapped_column(Text)
    cursor: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    #: Where the backfill started (newest message id then), for its estimate of time left.
    started_from: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    scanned: Mapped[int] = mapped_column(BigInteger, default=0)
    indexed: Mapped[int] = mapped_column(BigInteger, default=0)
    #: Repost alerts are on (`/index add … repost:True`, `/index repost`): opt-in, off by default.
    repost_alerts: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class IndexedThread(Base):
    """A thread (or forum post) of an indexed channel, met live or in a backfill.

    Its images are stored with `channel_id` = the thread's id; this row says which
    indexed channel it belongs to (deleting that channel deletes them) and whether it is
    private (then only its members and moderators may find them), with its own history
    backfill's checkpoint (`cursor`: the oldest message id scanned so far).
    """

    __tablename__ = "indexed_threads"

    thread_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    parent_id: Mapped[int] = mapped_column(BigInteger, index=True)
    guild_id: Mapped[int] = mapped_column(BigInteger, index=True)
    private: Mapped[bool] = mapped_column(Boolean, default=False)
    #: "none" (new messages only), "running" or "done".
    backfill: Mapped[str] = mapped_column(String(8))
    cursor: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    scanned: Mapped[int] = mapped_column(BigInteger, default=0)
    indexed: Mapped[int] = mapped_column(BigInteger, default=0)


class ForgottenAuthor(Base):
    """Someone who asked to be forgotten (`/forget-me`, `/index forget-me`): their images are
    never indexed again, whatever path would store them (live, backfill, rebuild)."""

    __tablename__ = "forgotten_authors"

    author_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    forgotten_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    #: When their images were deleted from the image index; None: a pending erasure (the index
    #: could not be reached), run when it opens (`SearchService.open`).
    index_erased_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class ErasedImage(Base):
    """An image an edit removed from its message: never indexed again (an embedding queued
    before the edit, or a backfill page read before it, would otherwise store it)."""

    __tablename__ = "erased_images"

    #: The image's key in the vector store (`<message id>:a<attachment id>` or `:e<embed index>`).
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    message_id: Mapped[int] = mapped_column(BigInteger, index=True)
    erased_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class JoinedGuild(Base):
    """A server the bot is a member of (seen at READY or on joining), so the reconcile after
    downtime can tell a server the bot left (its presets and defaults go) from one where people
    use the bot only through a user install (theirs: kept)."""

    __tablename__ = "joined_guilds"

    guild_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class AutotagChannel(Base):
    """A channel whose new images are tagged by themselves (`/autotag add`). Deleted with the
    channel, and with the server when the bot leaves it (live, or by the reconcile after downtime)."""

    __tablename__ = "autotag_channels"

    channel_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    guild_id: Mapped[int] = mapped_column(BigInteger, index=True)
    #: The labels as given (emoji first where there is one), one per line.
    labels: Mapped[str] = mapped_column(Text)
    #: "react" (the winning label's emoji) or "reply" (one quiet line).
    mode: Mapped[str] = mapped_column(String(8))
    min_probability: Mapped[float] = mapped_column(Float)
    #: The server preset the labels were copied from, if any (shown by `/autotag list`).
    preset: Mapped[str | None] = mapped_column(String(32), nullable=True)
    added_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
