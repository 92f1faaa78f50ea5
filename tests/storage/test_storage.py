"""Presets and recent label sets round-trip on a real SQLite file and a real PostgreSQL server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio

from bot.errors import LabelError, StartupError
from bot.storage import Database, PresetStore
from bot.storage.presets import FLUSH_EVERY_S, RECENT_KEPT, check_name
from tests.support.postgres import temporary_postgres


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    try:
        with temporary_postgres() as url:
            yield url
    except RuntimeError as exc:
        pytest.skip(f"PostgreSQL cannot run here: {exc}")


@pytest_asyncio.fixture(params=["sqlite", "postgresql"], loop_scope="session")
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[PresetStore]:
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path}/data/clipbot.db"  # the folder does not exist yet
    else:
        url = request.getfixturevalue("postgres_url")
    database = Database(url)
    await database.start()
    presets = PresetStore(database)
    yield presets
    if request.param == "postgresql":  # one server for the session: leave it empty
        for user in (1, 2):
            await presets.forget_user(user)
        await presets.forget_guild(100)
    await database.close()


async def test_save_show_list_replace_delete(store: PresetStore) -> None:
    assert await store.save("user", 1, "Animals", ["cat", "dog"], by=1) is True
    assert await store.save("user", 1, "animals", ["cat", "dog", "fox"], by=1) is False, "same name: replaced"
    preset = await store.get("user", 1, "ANIMALS")
    assert preset is not None and preset.labels == ["cat", "dog", "fox"] and preset.name == "animals"
    await store.save("user", 1, "birds", ["owl, the wise one", "crow"], by=1)
    assert [p.name for p in await store.owned("user", 1)] == ["animals", "birds"]
    assert (await store.get("user", 1, "birds")).labels == ["owl, the wise one", "crow"]  # type: ignore[union-attr]
    assert await store.delete("user", 1, "animals") is True
    assert await store.get("user", 1, "animals") is None, "deleted at once"
    assert await store.delete("user", 1, "animals") is False


async def test_a_persons_preset_wins_over_the_servers_and_others_cannot_see_it(store: PresetStore) -> None:
    await store.save("guild", 100, "pets", ["cat", "dog"], by=9)
    await store.save("user", 1, "pets", ["hamster", "parrot"], by=1)
    mine = await store.resolve("pets", user_id=1, guild_id=100)
    assert mine is not None and mine.scope == "user" and mine.labels == ["hamster", "parrot"]
    theirs = await store.resolve("pets", user_id=2, guild_id=100)
    assert theirs is not None and theirs.scope == "guild"
    assert await store.resolve("pets", user_id=2, guild_id=None) is None, "in a DM only personal presets"


async def test_autocomplete_matches_prefixes_personal_first_and_treats_wildcards_literally(
    store: PresetStore,
) -> None:
    await store.save("guild", 100, "animals", ["cat", "dog"], by=9)
    await store.save("user", 1, "animated", ["gif", "video"], by=1)
    await store.save("user", 2, "ants", ["ant", "bee"], by=2)
    found = await store.matching("@anim", user_id=1, guild_id=100)
    assert [(p.scope, p.name) for p in found] == [("user", "animated"), ("guild", "animals")]
    assert await store.matching("an_m", user_id=1, guild_id=100) == [], "_ is not a wildcard"
    assert await store.matching("%", user_id=1, guild_id=100) == []


async def test_recent_label_sets_are_newest_first_deduplicated_and_bounded(store: PresetStore) -> None:
    for i in range(RECENT_KEPT + 3):
        store.remember(1, 100, [f"label {i}", "other"])
        await store.flush()  # as `FLUSH_EVERY_S` passing would
    store.remember(1, 100, ["label 5", "other"])  # used again: moves to the front (read flushes it)
    recent = await store.recent(1, 100)
    assert len(recent) == RECENT_KEPT
    assert recent[0] == ["label 5", "other"] and recent[1] == [f"label {RECENT_KEPT + 2}", "other"]
    assert await store.recent(1, None) == [], "per place"


async def test_forget_me_deletes_everything_about_the_person_only(store: PresetStore) -> None:
    await store.save("user", 1, "mine", ["a", "b"], by=1)
    await store.save("user", 2, "theirs", ["a", "b"], by=2)
    await store.save("guild", 100, "shared", ["a", "b"], by=1)
    store.remember(1, 100, ["a", "b"])
    await store.flush()
    assert await store.forget_user(1) == {"presets": 1, "recent label sets": 1}
    assert await store.owned("user", 1) == [] and await store.recent(1, 100) == []
    assert [p.name for p in await store.owned("user", 2)] == ["theirs"]
    assert [p.name for p in await store.owned("guild", 100)] == ["shared"], "a server's preset belongs to the server"


@pytest.mark.parametrize("name", ["", "-x", "a b", "x" * 33, "café", "everyone", "@here"])
def test_bad_preset_names_are_one_line(name: str) -> None:
    with pytest.raises(LabelError, match="preset name"):
        check_name(name)


async def test_an_unreachable_database_is_one_startup_line() -> None:
    database = Database("postgresql://nobody:secret-password@127.0.0.1:9/clipbot")
    with pytest.raises(StartupError) as caught:
        await database.start()
    message = str(caught.value)
    assert "\n" not in message and "secret-password" not in message and "127.0.0.1:9" in message
    await database.close()


async def test_recent_sets_are_written_in_the_background_in_one_batch(store: PresetStore) -> None:
    store.remember(2, 100, ["cat", "dog"])
    store.remember(2, None, ["sun", "moon"])
    store.remember(1, 100, ["red", "blue"])
    assert await store.recent(2, 100) == [["cat", "dog"]], "a read sees what is still pending"
    await asyncio.sleep(FLUSH_EVERY_S + 0.5)  # the background flush ran: nothing left pending
    other = PresetStore(store.db)  # another bot process on the same database
    assert await other.recent(2, None) == [["sun", "moon"]] and await other.recent(1, 100) == [["red", "blue"]]
    store.remember(1, 100, ["gone", "soon"])
    await store.forget_user(1)
    await store.close()
    assert await other.recent(1, 100) == [], "forget-me also drops what was not yet written"


async def test_server_defaults_round_trip_and_go_with_the_server(store: PresetStore) -> None:
    assert await store.guild_defaults(100) == (None, None) and await store.guild_defaults(None) == (None, None)
    await store.set_guild_defaults(100, template="a drawing of a {}", preset="pets")
    assert await store.guild_defaults(100) == ("a drawing of a {}", "pets")
    await store.set_guild_defaults(100, template=None, preset="pets")
    assert await store.guild_defaults(100) == (None, "pets")
    await store.forget_guild(100)
    assert await store.guild_defaults(100) == (None, None)
