"""Discord extensions (the only package that imports discord, with bot.discord_bot)."""
