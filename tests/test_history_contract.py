"""One contract for both history stores, plus what only the Redis store can show."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

import pytest
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff

from bot.history import (
    ConversationKey,
    HistoryStore,
    HistoryUnavailable,
    MemoryHistoryStore,
    Persona,
    RedisHistoryStore,
    create_history_store,
)
from bot.history.entries import encode_entry
from bot.messages import ImagePart, Message, Role, TextPart
from bot.storage.keys import Keys
from tests.conftest import RedisProcess

BOT_ID = 42
CHAT = ConversationKey(-100123)
TOPIC = ConversationKey(-100123, 7)
OTHER_TOPIC = ConversationKey(-100123, 8)
PRIVATE = ConversationKey(555)

StoreFactory = Callable[..., HistoryStore]


def msg(role: Role, content: str, tokens: int = 10) -> Message:
    return Message.of_text(role, content, tokens)


def persona(text: str, tokens: int = 20, preset: str | None = None) -> Persona:
    return Persona(
        text=text, tokens=tokens, set_by="Alice (id 7)", set_at=1.7e9 + 0.25, preset=preset
    )


def numbered(count: int, tokens: int = 10) -> list[Message]:
    roles: tuple[Role, Role] = ("user", "assistant")
    return [msg(roles[i % 2], f"message {i}", tokens) for i in range(count)]


@pytest.fixture(params=["redis", "memory"])
def make_store(request: pytest.FixtureRequest, key_prefix: str) -> StoreFactory:
    """Builds the store under test; the Redis one writes only under `key_prefix`."""
    if request.param == "memory":

        def memory(*, max_messages: int = 2000, idle_ttl: int = 0) -> HistoryStore:
            return MemoryHistoryStore(max_messages=max_messages)

        return memory
    client: aioredis.Redis = request.getfixturevalue("redis_client")

    def on_redis(*, max_messages: int = 2000, idle_ttl: int = 0) -> HistoryStore:
        return RedisHistoryStore(
            client, Keys(key_prefix, BOT_ID), max_messages=max_messages, idle_ttl=idle_ttl
        )

    return on_redis


@pytest.fixture
async def store(make_store: StoreFactory) -> AsyncIterator[HistoryStore]:
    history = make_store()
    yield history
    await history.aclose()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


async def load_all(store: HistoryStore, key: ConversationKey) -> list[Message]:
    return (await store.load_context(key, 10**9)).messages


# ---- contract: both stores ----------------------------------------------------------


async def test_a_new_conversation_is_empty(store: HistoryStore) -> None:
    context = await store.load_context(CHAT, 1000)
    assert context.persona is None
    assert context.messages == []
    assert not context.truncated
    assert await store.length(CHAT) == 0


@pytest.mark.parametrize(
    "content",
    [
        "plain text",
        "你好，世界 🌍 — ünïcödé",
        "tabs\tinside\tthe\ttext",
        "lines\nand\r\nmore\n\n",
        "",
        " ",
        "\t",
        "10\tu\tlooks like an entry",
        "👨\u200d👩\u200d👧 e\u0301",
        "x" * 100_000,
    ],
)
async def test_messages_round_trip_exactly(store: HistoryStore, content: str) -> None:
    sent = [msg("user", content, 3), msg("assistant", content + "!", 4)]
    await store.append(CHAT, sent)
    assert await load_all(store, CHAT) == sent
    assert await store.length(CHAT) == 2


async def test_appends_accumulate_in_order(store: HistoryStore) -> None:
    messages = numbered(6)
    for i in range(0, 6, 2):
        await store.append(CHAT, messages[i : i + 2])
    await store.append(CHAT, [])
    assert await load_all(store, CHAT) == messages


async def test_the_budget_walk_returns_the_newest_suffix(store: HistoryStore) -> None:
    messages = [
        msg("user" if i % 2 == 0 else "assistant", f"m{i}", tokens=i + 1) for i in range(10)
    ]
    await store.append(CHAT, messages)
    # newest three cost 10 + 9 + 8 = 27
    exact = await store.load_context(CHAT, 27)
    assert exact.messages == messages[-3:]
    assert exact.truncated
    short = await store.load_context(CHAT, 26)
    assert short.messages == messages[-2:]
    assert short.truncated
    everything = await store.load_context(CHAT, sum(range(1, 11)))
    assert everything.messages == messages
    assert not everything.truncated
    nothing = await store.load_context(CHAT, 0)
    assert nothing.messages == []
    assert nothing.truncated
    assert (await store.load_context(CHAT, -5)).messages == []


async def test_the_walk_stops_at_the_first_message_that_does_not_fit(store: HistoryStore) -> None:
    messages = [msg("user", "small", 1), msg("assistant", "huge", 1000), msg("user", "small", 1)]
    await store.append(CHAT, messages)
    context = await store.load_context(CHAT, 10)
    assert context.messages == messages[-1:]
    assert context.truncated


async def test_a_long_history_is_walked_across_pages(make_store: StoreFactory) -> None:
    store = make_store(max_messages=5000)
    messages = numbered(3000, tokens=1)
    await store.append(CHAT, messages)
    for budget in (1, 31, 32, 33, 100, 1500, 2999):
        context = await store.load_context(CHAT, budget)
        assert context.messages == messages[-budget:]
        assert context.truncated
    context = await store.load_context(CHAT, 3000)
    assert context.messages == messages
    assert not context.truncated


@pytest.mark.parametrize("length", [31, 32, 33, 96, 97])
async def test_a_history_ending_at_a_page_edge_is_read_whole(
    make_store: StoreFactory, length: int
) -> None:
    store = make_store()
    messages = numbered(length, tokens=1)
    await store.append(CHAT, messages)
    context = await store.load_context(CHAT, 10_000)
    assert context.messages == messages
    assert not context.truncated
    context = await store.load_context(CHAT, length - 1)
    assert context.messages == messages[1:]
    assert context.truncated


async def test_a_topic_inherits_the_chat_persona_until_it_has_its_own(
    store: HistoryStore,
) -> None:
    group = persona("Be formal.", preset="formal")
    await store.set_persona(CHAT, group)
    assert await store.get_persona(TOPIC) == group
    assert await store.get_persona(TOPIC, inherit=False) is None
    assert (await store.load_context(TOPIC, 100)).persona == group

    own = persona("Talk like a pirate.", tokens=30)
    await store.set_persona(TOPIC, own)
    assert await store.get_persona(TOPIC) == own
    assert (await store.load_context(TOPIC, 100)).persona == own
    assert await store.get_persona(CHAT) == group
    assert await store.get_persona(OTHER_TOPIC) == group

    await store.set_persona(TOPIC, None)
    assert await store.get_persona(TOPIC) == group
    await store.set_persona(CHAT, None)
    assert await store.get_persona(TOPIC) is None
    assert (await store.load_context(TOPIC, 100)).persona is None


async def test_persona_fields_round_trip(store: HistoryStore) -> None:
    for value in (
        Persona("多行\n\t人设 🎭", 17, "Bob (id 1)", 1712345678.123456, None),
        Persona("", 0, "", 0.0, ""),
        Persona("x", 5, "Ann", 1.0, "preset name"),
    ):
        await store.set_persona(PRIVATE, value)
        assert await store.get_persona(PRIVATE) == value


async def test_replacing_a_persona_forgets_its_old_preset(store: HistoryStore) -> None:
    await store.set_persona(CHAT, persona("one", preset="p1"))
    await store.set_persona(CHAT, persona("two"))
    current = await store.get_persona(CHAT)
    assert current is not None
    assert current.preset is None
    assert current.text == "two"


async def test_the_persona_is_paid_from_the_budget(store: HistoryStore) -> None:
    messages = numbered(10, tokens=10)
    await store.append(TOPIC, messages)
    await store.set_persona(CHAT, persona("Chat persona", tokens=25))
    context = await store.load_context(TOPIC, 60)
    assert context.messages == messages[-3:]  # 60 - 25 leaves room for 3
    await store.set_persona(TOPIC, persona("Topic persona", tokens=45))
    context = await store.load_context(TOPIC, 60)
    assert context.messages == messages[-1:]  # the topic's own persona counts, not the chat's
    await store.set_persona(TOPIC, persona("Huge", tokens=100))
    context = await store.load_context(TOPIC, 60)
    assert context.persona is not None
    assert context.messages == []
    assert context.truncated


async def test_clear_forgets_the_history_but_keeps_the_persona(store: HistoryStore) -> None:
    await store.set_persona(PRIVATE, persona("Stay."))
    await store.append(PRIVATE, numbered(4))
    await store.clear(PRIVATE)
    assert await store.length(PRIVATE) == 0
    context = await store.load_context(PRIVATE, 1000)
    assert context.messages == []
    assert context.persona == persona("Stay.")
    await store.clear(PRIVATE)  # clearing twice is fine


async def test_conversations_and_topics_are_isolated(store: HistoryStore) -> None:
    keys = [CHAT, TOPIC, OTHER_TOPIC, PRIVATE, ConversationKey(-100999, 7)]
    for n, key in enumerate(keys, start=1):
        await store.append(key, numbered(n))
    for n, key in enumerate(keys, start=1):
        assert await load_all(store, key) == numbered(n)
    await store.clear(TOPIC)
    assert await store.length(TOPIC) == 0
    assert await store.length(CHAT) == 1
    assert await store.length(OTHER_TOPIC) == 3


async def test_thread_zero_is_the_chat_itself(store: HistoryStore) -> None:
    await store.append(ConversationKey(-100123, 0), numbered(2))
    assert await store.length(CHAT) == 2
    assert ConversationKey(-100123, 0) == CHAT


async def test_append_trims_to_max_messages(make_store: StoreFactory) -> None:
    store = make_store(max_messages=5)
    messages = numbered(12)
    await store.append(CHAT, messages[:3])
    await store.append(CHAT, messages[3:4])
    assert await store.length(CHAT) == 4
    await store.append(CHAT, messages[4:12])
    assert await store.length(CHAT) == 5
    assert await load_all(store, CHAT) == messages[-5:]


async def test_an_invalid_batch_stores_nothing(store: HistoryStore) -> None:
    bad: Sequence[Message] = [
        msg("user", "fine"),
        Message("system", (TextPart("not storable"),), 3),  # type: ignore[arg-type]
    ]
    with pytest.raises(ValueError, match="role"):
        await store.append(CHAT, bad)
    with pytest.raises(ValueError, match="tokens"):
        await store.append(CHAT, [msg("user", "fine"), msg("assistant", "bad", -1)])
    with pytest.raises(TypeError, match="parts"):
        await store.append(CHAT, [msg("user", "fine"), Message("assistant", (), 1)])
    assert await store.length(CHAT) == 0


async def test_a_concurrent_reader_never_sees_half_a_turn(store: HistoryStore) -> None:
    writers, turns_each = 8, 15

    async def write(w: int) -> None:
        for t in range(turns_each):
            await store.append(
                CHAT, [msg("user", f"q {w}/{t}", 2), msg("assistant", f"a {w}/{t}", 3)]
            )

    seen: list[list[Message]] = []

    async def read() -> None:
        for _ in range(writers * turns_each):
            seen.append(await load_all(store, CHAT))

    await asyncio.gather(read(), *(write(w) for w in range(writers)))

    final = await load_all(store, CHAT)
    assert len(final) == 2 * writers * turns_each
    for snapshot in [*seen, final]:
        assert len(snapshot) % 2 == 0
        for question, answer in zip(snapshot[::2], snapshot[1::2], strict=True):
            assert question.role == "user"
            assert answer.role == "assistant"
            assert answer.text == "a" + question.text[1:]


async def test_preferences_round_trip(store: HistoryStore) -> None:
    assert await store.get_preferences(CHAT.chat_id) == {}
    await store.set_preference(CHAT.chat_id, "listen", "1")
    await store.set_preference(CHAT.chat_id, "model", "glm-4-plus")
    assert await store.get_preferences(CHAT.chat_id) == {"listen": "1", "model": "glm-4-plus"}
    assert await store.get_preferences(PRIVATE.chat_id) == {}
    await store.set_preference(CHAT.chat_id, "listen", "0")
    await store.set_preference(CHAT.chat_id, "model", None)
    assert await store.get_preferences(CHAT.chat_id) == {"listen": "0"}
    await store.set_preference(CHAT.chat_id, "listen", None)
    assert await store.get_preferences(CHAT.chat_id) == {}
    await store.set_preference(CHAT.chat_id, "listen", None)  # removing twice is fine


async def test_preferences_come_with_the_context_of_every_topic(store: HistoryStore) -> None:
    await store.set_preference(CHAT.chat_id, "model", "glm-4-air")
    await store.set_preference(PRIVATE.chat_id, "listen", "1")
    for key in (CHAT, TOPIC):
        assert (await store.load_context(key, 1000)).preferences == {"model": "glm-4-air"}
    assert (await store.load_context(PRIVATE, 1000)).preferences == {"listen": "1"}
    assert (await store.load_context(ConversationKey(-100999), 1000)).preferences == {}


async def test_preferences_do_not_touch_history_or_personas(store: HistoryStore) -> None:
    await store.set_persona(CHAT, persona("p"))
    await store.append(CHAT, numbered(2))
    await store.set_preference(CHAT.chat_id, "listen", "1")
    assert await load_all(store, CHAT) == numbered(2)
    await store.clear(CHAT)
    assert await store.get_preferences(CHAT.chat_id) == {"listen": "1"}
    assert await store.get_persona(CHAT) == persona("p")


async def test_messages_with_images_round_trip(store: HistoryStore) -> None:
    sent = [
        Message("user", (TextPart("what is it?"), ImagePart("AgAC-file", "image/png")), 90),
        Message("user", (ImagePart("only-an-image"),), 85),
        msg("assistant", "a cat", 4),
    ]
    await store.append(CHAT, sent)
    assert await load_all(store, CHAT) == sent
    assert (await store.load_context(CHAT, 89)).messages == sent[1:]


async def test_ping(store: HistoryStore) -> None:
    assert await store.ping() is True


# ---- Redis only -----------------------------------------------------------------------


@pytest.fixture
def redis_store(redis_client: aioredis.Redis, key_prefix: str) -> RedisHistoryStore:
    return RedisHistoryStore(redis_client, Keys(key_prefix, BOT_ID), max_messages=200_000)


def test_key_scheme(key_prefix: str) -> None:
    keys = Keys("glmbot", 42)
    assert keys.messages(ConversationKey(-100123)) == "glmbot:b42:{c-100123}:t0:messages"
    assert keys.messages(ConversationKey(-100123, 7)) == "glmbot:b42:{c-100123}:t7:messages"
    assert keys.persona(ConversationKey(-100123)) == "glmbot:b42:{c-100123}:t0:persona"
    assert keys.persona(ConversationKey(-100123, 7)) == "glmbot:b42:{c-100123}:t7:persona"
    assert keys.chat_settings(-100123) == "glmbot:b42:{c-100123}:settings"
    assert keys.chat_scoped(5, "lease") == "glmbot:b42:{c5}:lease"
    assert keys.bot_scoped("dedup:9") == "glmbot:b42:dedup:9"
    for bad in ("", "a{b", "a}b"):
        with pytest.raises(ValueError, match="brace"):
            keys.bot_scoped(bad)
    with pytest.raises(ValueError, match="brace"):
        Keys("pre{fix}", 1)


async def test_every_key_written_is_under_the_prefix(
    redis_store: RedisHistoryStore, redis_client: aioredis.Redis, key_prefix: str
) -> None:
    chat = int(key_prefix.rsplit("-", 1)[1][:8], 16)  # an id no other test uses
    topic = ConversationKey(chat, 3)
    await redis_store.append(topic, numbered(2))
    await redis_store.append(ConversationKey(chat), numbered(2))
    await redis_store.set_persona(ConversationKey(chat), persona("p"))
    await redis_store.set_persona(topic, persona("t"))
    await redis_store.set_preference(chat, "listen", "1")
    keys = Keys(key_prefix, BOT_ID)
    # every key of the chat in the whole database, whatever its prefix
    written = {_text(k) async for k in redis_client.scan_iter(match=f"*{{c{chat}}}*", count=1000)}
    markers = {k for k in written if ":append:" in k}
    assert written - markers == {
        keys.messages(topic),
        keys.messages(ConversationKey(chat)),
        keys.persona(topic),
        keys.persona(ConversationKey(chat)),
        keys.chat_settings(chat),
    }
    for key in written:
        assert key.startswith(f"{key_prefix}:b{BOT_ID}:{{c{chat}}}:")
    # one short-lived marker per append
    assert len(markers) == 2
    for marker in markers:
        assert 0 < await redis_client.ttl(marker) <= 120


async def test_load_context_on_a_huge_list_is_one_call_reading_only_the_tail(
    redis_store: RedisHistoryStore,
    redis_client: aioredis.Redis,
    key_prefix: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    list_key = Keys(key_prefix, BOT_ID).messages(CHAT)
    # 99,000 entries the script cannot parse: reading any of them makes load_context
    # fail, so success proves the walk never got there
    async with redis_client.pipeline(transaction=False) as pipe:
        for _ in range(99):
            pipe.rpush(list_key, *(["poison"] * 1000))
        await pipe.execute()
    tail = numbered(1000, tokens=10)
    for i in range(0, 1000, 100):
        await redis_store.append(CHAT, tail[i : i + 100])
    assert await redis_store.length(CHAT) == 100_000

    with pytest.raises(HistoryUnavailable, match="malformed"):
        await redis_store.load_context(CHAT, 10**6)  # the poison is real

    await redis_store.load_context(CHAT, 50)  # the script is loaded from here on
    sent: list[object] = []
    execute: Callable[..., Awaitable[object]] = redis_client.execute_command

    async def counting(*args: object, **options: object) -> object:
        sent.append(args[0])
        return await execute(*args, **options)

    monkeypatch.setattr(redis_client, "execute_command", counting)
    context = await redis_store.load_context(CHAT, 50)
    assert sent == ["EVALSHA"]
    assert context.messages == tail[-5:]
    assert context.truncated
    sent.clear()
    context = await redis_store.load_context(CHAT, 9_990)
    assert sent == ["EVALSHA"]
    assert context.messages == tail[-999:]


async def test_a_failing_append_leaves_nothing(
    redis_store: RedisHistoryStore, redis_client: aioredis.Redis, key_prefix: str
) -> None:
    list_key = Keys(key_prefix, BOT_ID).messages(CHAT)
    await redis_client.set(list_key, "not a list")
    with pytest.raises(HistoryUnavailable):
        await redis_store.append(CHAT, numbered(2))
    assert await redis_client.get(list_key) in (b"not a list", "not a list")
    keys = [_text(k) async for k in redis_client.scan_iter(match=f"{key_prefix}*", count=1000)]
    assert keys == [list_key]  # not even the idempotency marker


async def test_a_version_1_entry_still_loads(
    redis_store: RedisHistoryStore, redis_client: aioredis.Redis, key_prefix: str
) -> None:
    list_key = Keys(key_prefix, BOT_ID).messages(CHAT)
    # written by the version before parts: `<tokens>\t<u|a>\t<text>`, tabs in the text
    await redis_client.rpush(list_key, "7\tu\tan old\tquestion", '5\ta\t["not json"]')
    new = [Message("user", (TextPart("new"), ImagePart("f")), 9), msg("assistant", "ok", 3)]
    await redis_store.append(CHAT, new)
    assert await load_all(redis_store, CHAT) == [
        Message.of_text("user", "an old\tquestion", 7),
        Message.of_text("assistant", '["not json"]', 5),
        *new,
    ]
    # the budget walk reads the tokens of either version
    assert (await redis_store.load_context(CHAT, 17)).messages[0].text == '["not json"]'
    # what is written now is version 2
    entries = [_text(e) for e in await redis_client.lrange(list_key, 2, -1)]
    assert entries == [encode_entry(m) for m in new]
    assert [e.split("\t")[1] for e in entries] == ["u2", "a2"]


async def test_scripts_survive_a_script_cache_flush(own_redis: RedisProcess) -> None:
    """After a restart or a failover Redis knows no scripts: each call loads its script
    once and is sent again, and nothing is stored twice."""
    client = aioredis.Redis.from_url(own_redis.url)
    try:
        store = RedisHistoryStore(client, Keys("glmbot-test", BOT_ID))
        await store.append(CHAT, numbered(2))
        await client.script_flush()
        await client.config_resetstat()
        context = await store.load_context(CHAT, 1000)
        assert context.messages == numbered(2)
        await client.script_flush()
        await store.append(CHAT, numbered(2))
        stats = await client.info("commandstats")
        assert stats["cmdstat_script|load"]["calls"] == 2, "both calls found no script"
        assert stats["cmdstat_rpush"]["calls"] == 1
        assert await load_all(store, CHAT) == numbered(2) * 2
    finally:
        await client.aclose()


async def test_a_retried_append_is_stored_once(
    redis_store: RedisHistoryStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the client resends the same script call (same marker) when a reply is lost
    class FixedUUID:
        hex = "retried"

    monkeypatch.setattr("bot.history.redis_store.uuid4", FixedUUID)
    await redis_store.append(CHAT, numbered(2))
    await redis_store.append(CHAT, numbered(2))
    assert await redis_store.length(CHAT) == 2


async def test_append_refreshes_the_idle_ttl(redis_client: aioredis.Redis, key_prefix: str) -> None:
    keys = Keys(key_prefix, BOT_ID)
    store = RedisHistoryStore(redis_client, keys, idle_ttl=600)
    await store.append(CHAT, numbered(2))
    await redis_client.expire(keys.messages(CHAT), 5)
    await store.append(CHAT, numbered(2))
    assert 5 < await redis_client.ttl(keys.messages(CHAT)) <= 600
    await store.set_persona(CHAT, persona("p"))
    assert await redis_client.ttl(keys.persona(CHAT)) == -1  # personas never expire


async def test_without_idle_ttl_history_does_not_expire(
    redis_store: RedisHistoryStore, redis_client: aioredis.Redis, key_prefix: str
) -> None:
    await redis_store.append(CHAT, numbered(2))
    assert await redis_client.ttl(Keys(key_prefix, BOT_ID).messages(CHAT)) == -1


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
async def unreachable_store() -> AsyncIterator[RedisHistoryStore]:
    client = aioredis.Redis(
        host="127.0.0.1", port=_closed_port(), retry=Retry(NoBackoff(), 0), socket_timeout=1
    )
    yield RedisHistoryStore(client, Keys("glmbot-test-unreachable", BOT_ID))
    await client.aclose()


@pytest.mark.parametrize(
    "call",
    [
        lambda s: s.load_context(CHAT, 100),
        lambda s: s.append(CHAT, [msg("user", "hi")]),
        lambda s: s.clear(CHAT),
        lambda s: s.length(CHAT),
        lambda s: s.get_persona(TOPIC),
        lambda s: s.set_persona(CHAT, persona("p")),
        lambda s: s.set_persona(CHAT, None),
        lambda s: s.get_preferences(1),
        lambda s: s.set_preference(1, "listen", "1"),
        lambda s: s.set_preference(1, "listen", None),
    ],
)
async def test_unreachable_redis_raises_history_unavailable(
    unreachable_store: RedisHistoryStore, call: Callable[[RedisHistoryStore], Awaitable[object]]
) -> None:
    with pytest.raises(HistoryUnavailable) as caught:
        await call(unreachable_store)
    assert caught.value.__cause__ is not None


async def test_unreachable_redis_fails_ping_without_raising(
    unreachable_store: RedisHistoryStore,
) -> None:
    assert await unreachable_store.ping() is False


# ---- the factory ----------------------------------------------------------------------


async def test_the_factory_without_url_gives_the_memory_store() -> None:
    store, client = create_history_store(
        None,
        prefix="glmbot",
        bot_id=1,
        max_messages=10,
        idle_ttl=0,
        max_connections=5,
        pool_timeout=1.0,
    )
    assert isinstance(store, MemoryHistoryStore)
    assert client is None


async def test_the_factory_store_waits_for_a_connection_in_a_burst(
    redis_url: str, redis_client: aioredis.Redis, key_prefix: str
) -> None:
    store, client = create_history_store(
        redis_url,
        prefix=key_prefix,
        bot_id=BOT_ID,
        max_messages=1000,
        idle_ttl=0,
        max_connections=2,
        pool_timeout=30.0,
    )
    assert client is not None
    try:
        assert isinstance(store, RedisHistoryStore)
        assert isinstance(client.connection_pool, aioredis.BlockingConnectionPool)
        # 200 concurrent turns on 2 connections: they queue instead of failing
        await asyncio.gather(
            *(
                store.append(
                    ConversationKey(i % 10), [msg("user", f"q{i} 你好\t"), msg("assistant", "a")]
                )
                for i in range(200)
            )
        )
        assert sum([await store.length(ConversationKey(c)) for c in range(10)]) == 400
        assert (await load_all(store, ConversationKey(3)))[0] == msg("user", "q3 你好\t")
        await store.set_persona(ConversationKey(3), persona("p", preset="x"))
        assert await store.get_persona(ConversationKey(3, 9)) == persona("p", preset="x")
        assert await store.ping()
    finally:
        await client.aclose()


async def test_the_factory_store_reports_an_unreachable_redis() -> None:
    store, client = create_history_store(
        f"redis://127.0.0.1:{_closed_port()}/0",
        prefix="glmbot-test-unreachable",
        bot_id=BOT_ID,
        max_messages=10,
        idle_ttl=0,
        max_connections=2,
        pool_timeout=1.0,
    )
    assert client is not None
    try:
        with pytest.raises(HistoryUnavailable):
            await store.length(CHAT)
    finally:
        await client.aclose()
