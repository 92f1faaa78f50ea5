"""One throw-away PostgreSQL server for every storage test of the session."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.postgres import temporary_postgres


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    try:
        with temporary_postgres() as url:
            yield url
    except RuntimeError as exc:
        pytest.skip(f"PostgreSQL cannot run here: {exc}")
