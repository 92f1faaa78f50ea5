"""Tests of `bot.discord`, mirroring its modules."""
