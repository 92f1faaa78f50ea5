"""One extension per feature, loaded by name in `ClipBot.setup_hook`."""
