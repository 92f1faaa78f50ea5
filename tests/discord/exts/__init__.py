"""Tests of `bot.discord.exts`, one file per extension (`test_<feature>.py`)."""
