"""End-to-end tests: the bot against tests.fakediscord."""
