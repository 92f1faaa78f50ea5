"""`python -m bot classify|similar|run`."""

from bot.cli import main

raise SystemExit(main())
