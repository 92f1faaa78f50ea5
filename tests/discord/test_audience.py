"""Who a repost alert may link (bot/discord/audience.py): every member who views the first channel
must view the second and read its history, whatever roles they hold."""

from __future__ import annotations

from bot.discord.audience import (
    ADMINISTRATOR,
    MAX_COMBINATIONS,
    READ_MESSAGE_HISTORY,
    VIEW_CHANNEL,
    Channels,
    RoleKind,
    Rule,
    audience_can_read,
)

READ = VIEW_CHANNEL | READ_MESSAGE_HISTORY
HIDE = Rule(deny=VIEW_CHANNEL)
NONE = Rule()


def channels(
    first: Rule = NONE, second: Rule = NONE, *roles: RoleKind, base: int = READ, members: tuple = ()
) -> Channels:
    return Channels(base, first, second, frozenset(roles), tuple(members))


def test_public_channels_can_link_each_other() -> None:
    assert audience_can_read(channels())


def test_a_public_channel_cannot_link_a_hidden_one_but_the_hidden_one_can_link_it() -> None:
    staff = RoleKind(0, NONE, Rule(allow=READ))
    assert not audience_can_read(channels(NONE, HIDE, staff))
    assert audience_can_read(channels(HIDE, NONE, staff))


def test_the_same_private_channel_links_itself_unless_someone_there_cannot_read_its_history() -> None:
    staff = RoleKind(0, Rule(allow=READ), Rule(allow=READ))
    assert audience_can_read(channels(HIDE, HIDE, staff))
    no_history = Rule(deny=VIEW_CHANNEL | READ_MESSAGE_HISTORY)
    guests = RoleKind(0, Rule(allow=VIEW_CHANNEL), Rule(allow=VIEW_CHANNEL))
    assert not audience_can_read(channels(no_history, no_history, guests))


def test_role_combinations_are_tried_not_just_single_roles() -> None:
    """A member with both roles views the first channel (allow wins over deny among roles) but is
    kept out of the second by one role's deny there: each role alone passes, together they do not."""
    opener = RoleKind(0, Rule(allow=VIEW_CHANNEL), NONE)
    banned = RoleKind(0, NONE, Rule(deny=VIEW_CHANNEL))
    assert not audience_can_read(channels(HIDE, NONE, opener, banned))
    assert audience_can_read(channels(HIDE, NONE, opener))


def test_a_members_own_overwrite_counts_with_any_roles() -> None:
    assert not audience_can_read(channels(NONE, NONE, members=((NONE, HIDE),)))
    assert audience_can_read(channels(NONE, NONE, members=((Rule(allow=VIEW_CHANNEL), NONE),)))


def test_administrators_see_everything_and_too_many_combinations_say_no() -> None:
    admins = RoleKind(ADMINISTRATOR, NONE, NONE)
    staff = RoleKind(0, NONE, Rule(allow=READ))
    assert audience_can_read(channels(HIDE, HIDE, admins, staff))
    # Thirteen roles that differ (in bits the check would carry along): 8,192 combinations.
    roles = [RoleKind(1 << (20 + i), NONE, NONE) for i in range(13)]
    assert (1 << len(roles)) > MAX_COMBINATIONS and not audience_can_read(channels(NONE, NONE, *roles))
