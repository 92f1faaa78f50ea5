"""Tests of `bot.engine`, mirroring its modules."""
