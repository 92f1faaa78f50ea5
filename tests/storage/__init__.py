"""Tests of `bot.storage`, mirroring its modules."""
