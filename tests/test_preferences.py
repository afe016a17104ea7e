"""Per-chat preferences: typed over the stored strings, on both stores."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis

from bot.history import HistoryStore, MemoryHistoryStore, RedisHistoryStore
from bot.preferences import ChatPreferences, Preferences
from bot.storage.keys import ConversationKey, Keys

CHAT = -100321


def test_nothing_stored_means_the_defaults() -> None:
    assert Preferences.parse({}) == Preferences(listen=None, model=None)


def test_stored_strings_are_read_as_their_types() -> None:
    assert Preferences.parse({"listen": "1", "model": "glm-4-plus"}) == Preferences(
        listen=True, model="glm-4-plus"
    )
    assert Preferences.parse({"listen": "0"}).listen is False


@pytest.mark.parametrize(
    "raw",
    [
        {"listen": "yes"},  # not how a flag is written
        {"listen": ""},
        {"listen": "true"},
        {"model": ""},
        {"from_a_newer_version": "x"},
    ],
)
def test_unreadable_or_unknown_values_are_the_default(raw: dict[str, str]) -> None:
    assert Preferences.parse(raw) == Preferences()


def test_one_bad_value_leaves_the_others() -> None:
    assert Preferences.parse({"listen": "maybe", "model": "glm-4-air"}) == Preferences(
        model="glm-4-air"
    )


@pytest.fixture(params=["redis", "memory"])
def store(request: pytest.FixtureRequest, key_prefix: str) -> HistoryStore:
    if request.param == "memory":
        return MemoryHistoryStore()
    # the Redis store does not own the client: the fixture closes it
    client: aioredis.Redis = request.getfixturevalue("redis_client")
    return RedisHistoryStore(client, Keys(key_prefix, 42))


async def test_set_and_get_round_trip(store: HistoryStore) -> None:
    prefs = ChatPreferences(store)
    assert await prefs.get(CHAT) == Preferences()
    await prefs.set(CHAT, "listen", True)
    await prefs.set(CHAT, "model", "glm-4-plus")
    assert await prefs.get(CHAT) == Preferences(listen=True, model="glm-4-plus")
    # stored as the strings the context read hands to `Preferences.parse`
    assert await store.get_preferences(CHAT) == {"listen": "1", "model": "glm-4-plus"}
    context = await store.load_context(ConversationKey(CHAT, 5), 1000)
    assert Preferences.parse(context.preferences) == Preferences(listen=True, model="glm-4-plus")

    await prefs.set(CHAT, "listen", False)
    assert (await prefs.get(CHAT)).listen is False, "off is not the same as the default"
    await prefs.set(CHAT, "listen", None)
    await prefs.set(CHAT, "model", None)
    assert await prefs.get(CHAT) == Preferences()
    assert await store.get_preferences(CHAT) == {}
    assert await prefs.get(CHAT + 1) == Preferences(), "other chats untouched throughout"


async def test_an_unknown_preference_is_refused_and_nothing_is_stored(
    store: HistoryStore,
) -> None:
    with pytest.raises(KeyError):
        await ChatPreferences(store).set(CHAT, "colour", "blue")
    assert await store.get_preferences(CHAT) == {}
