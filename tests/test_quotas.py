"""Rate limits, daily token quotas and usage accounting: the core, against real Redis and
the in-memory store (same semantics), with time injected through a clock."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime

import pytest
import redis.asyncio as aioredis

from bot.guards.quotas import (
    Charge,
    Limits,
    MemoryMeterStore,
    MeterStore,
    QuotaService,
    Reason,
    RedisMeterStore,
    Scope,
    day_of,
    month_of,
    seconds_to_midnight,
)
from bot.guards.quotas.report import format_wait
from bot.llm import Usage
from bot.messages import TextPart
from bot.models import ModelCatalog, ModelSpec, Prices
from bot.storage.keys import ConversationKey, Keys
from bot.turns.types import AnswerResult, Outcome, Turn
from tests.conftest import RedisProcess

BOT_ID = 42
ALICE, BOB, OWNER = 11, 12, 99
GROUP, OTHER_GROUP = -1001, -1002
# 2024-03-10 12:00:00 UTC
NOON = datetime(2024, 3, 10, 12, 0, tzinfo=UTC).timestamp()
# CNY per million tokens
CATALOG = ModelCatalog(
    [
        ModelSpec("glm-4", 128_000, 4096, prices=Prices(input=100, output=200)),
        ModelSpec("glm-5", 200_000, 32_768, prices=Prices(input=4, output=18)),
    ],
    default="glm-4",
)


class Clock:
    def __init__(self, now: float = NOON) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture(params=["redis", "memory"])
async def store(
    request: pytest.FixtureRequest, redis_client: aioredis.Redis, key_prefix: str
) -> AsyncIterator[MeterStore]:
    if request.param == "redis":
        yield RedisMeterStore(redis_client, Keys(key_prefix, BOT_ID))
    else:
        yield MemoryMeterStore()


def service(store: MeterStore, clock: Clock, **limits: int) -> QuotaService:
    return QuotaService(
        store,
        limits=Limits(**limits),
        models=CATALOG,
        owners=[OWNER],
        clock=clock,
    )


async def test_per_minute_limit_refuses_then_resets(store: MeterStore) -> None:
    clock = Clock()
    quotas = service(store, clock, user_per_minute=2)
    assert await quotas.admit(ALICE, ALICE) is None
    clock.advance(10)
    assert await quotas.admit(ALICE, ALICE) is None
    clock.advance(5)
    refusal = await quotas.admit(ALICE, ALICE)
    assert refusal is not None
    assert refusal.reason is Reason.USER_RATE
    assert refusal.limit == 2
    # the first message leaves the window 60 s after it came, 45 s from now
    assert refusal.retry_after == pytest.approx(45, abs=0.01)
    assert refusal.notify
    # a second refusal in the same stretch is not announced again
    again = await quotas.admit(ALICE, ALICE)
    assert again is not None
    assert not again.notify
    assert await quotas.admit(BOB, BOB) is None, "another user has a window of their own"

    clock.advance(45)
    assert await quotas.admit(ALICE, ALICE) is None, "the oldest message left the window"
    refusal = await quotas.admit(ALICE, ALICE)
    assert refusal is not None
    assert refusal.retry_after == pytest.approx(10, abs=0.01)
    assert refusal.notify, "a new stretch of refusals is announced again"


async def test_a_refused_message_costs_nothing(store: MeterStore) -> None:
    clock = Clock()
    quotas = service(store, clock, user_per_minute=2, chat_per_minute=1)
    assert await quotas.admit(ALICE, GROUP) is None
    refusal = await quotas.admit(ALICE, GROUP)
    assert refusal is not None
    assert refusal.reason is Reason.CHAT_RATE
    # Alice's own window took back the message the group refused: one left for her
    assert await quotas.admit(ALICE, OTHER_GROUP) is None
    refusal = await quotas.admit(ALICE, -1003)
    assert refusal is not None
    assert refusal.reason is Reason.USER_RATE


async def test_daily_quota_after_charges_resets_at_midnight(store: MeterStore) -> None:
    clock = Clock()
    quotas = service(store, clock, user_daily_tokens=1000, chat_daily_tokens=5000)
    assert await quotas.admit(ALICE, GROUP) is None
    await quotas.charge(ALICE, GROUP, 600, 300)
    assert await quotas.admit(ALICE, GROUP) is None, "900 spent, under 1000"
    await quotas.charge(ALICE, GROUP, 80, 20)
    refusal = await quotas.admit(ALICE, GROUP)
    assert refusal is not None
    assert refusal.reason is Reason.USER_TOKENS
    assert refusal.limit == 1000
    assert refusal.retry_after == pytest.approx(12 * 3600, abs=1)
    assert await quotas.admit(BOB, GROUP) is None, "the chat's quota is not spent"

    clock.advance(12 * 3600 - 1)
    assert await quotas.admit(ALICE, GROUP) is not None, "still the same UTC day"
    clock.advance(1)
    assert await quotas.admit(ALICE, GROUP) is None, "a new UTC day, a new quota"


async def test_chat_quota_counts_everyone_in_the_chat(store: MeterStore) -> None:
    quotas = service(store, Clock(), chat_daily_tokens=100)
    await quotas.charge(ALICE, GROUP, 50, 10)
    await quotas.charge(BOB, GROUP, 30, 10)
    refusal = await quotas.admit(BOB, GROUP)
    assert refusal is not None
    assert refusal.reason is Reason.CHAT_TOKENS
    assert await quotas.admit(BOB, BOB) is None, "Bob's private chat has its own quota"


async def test_owners_are_exempt_but_counted(store: MeterStore) -> None:
    clock = Clock()
    quotas = service(store, clock, user_per_minute=1, user_daily_tokens=10)
    for _ in range(3):
        assert await quotas.admit(OWNER, GROUP) is None
    await quotas.charge(OWNER, GROUP, 500, 500)
    assert await quotas.admit(OWNER, GROUP) is None
    report = await quotas.user_report(OWNER)
    assert report.today.tokens == 1000


async def test_usage_per_user_chat_model_and_totals(store: MeterStore) -> None:
    clock = Clock()
    quotas = service(store, clock)
    await quotas.charge(ALICE, GROUP, 1000, 500)  # 0.1 + 0.1 = 0.2
    await quotas.charge(BOB, GROUP, 2000, 0)  # 0.2
    await quotas.charge(ALICE, ALICE, 100, 100, model="glm-3-turbo")  # no price: 0
    clock.advance(86_400)  # the next day, same month
    await quotas.charge(ALICE, OTHER_GROUP, 1000, 1000)  # 0.3

    report = await quotas.user_report(ALICE, GROUP)
    assert report.today.prompt == 1000
    assert report.today.completion == 1000
    assert report.today.requests == 1
    assert report.today.cost == pytest.approx(0.3)
    assert report.month.tokens == 1500 + 200 + 2000
    assert report.month.requests == 3
    assert report.month.cost == pytest.approx(0.5)
    assert report.chat_today is not None
    assert report.chat_today.tokens == 0, "nothing in the group today"
    assert report.chat_month is not None
    assert report.chat_month.tokens == 3500
    assert report.chat_month.cost == pytest.approx(0.4)

    bot = await quotas.bot_report()
    assert bot.today.tokens == 2000
    assert bot.month.tokens == 1500 + 2000 + 200 + 2000
    assert bot.month.requests == 4
    assert bot.month.cost == pytest.approx(0.7)
    assert [chat for chat, _ in bot.chats] == [GROUP, OTHER_GROUP, ALICE]
    assert bot.chats[0][1].tokens == 3500
    assert [(name, t.tokens) for name, t in bot.models] == [("glm-4", 5500), ("glm-3-turbo", 200)]


async def test_usage_keys_live_in_the_namespace_with_ttls(
    redis_client: aioredis.Redis, key_prefix: str
) -> None:
    clock = Clock()
    quotas = service(
        RedisMeterStore(redis_client, Keys(key_prefix, BOT_ID)),
        clock,
        user_per_minute=1,
        user_daily_tokens=5,
    )
    await quotas.admit(ALICE, GROUP)
    await quotas.admit(ALICE, GROUP)  # refused: a "told" marker
    await quotas.charge(ALICE, GROUP, 10, 5)
    keys = [k.decode() async for k in redis_client.scan_iter(match=f"{key_prefix}*")]
    assert len(keys) >= 12
    for key in keys:
        assert key.startswith(f"{key_prefix}:b{BOT_ID}:")
        assert await redis_client.ttl(key) > 0, f"{key} never expires"
    user_day = f"{key_prefix}:b{BOT_ID}:{{c{ALICE}}}:user:usage:{day_of(NOON)}"
    chat_month = f"{key_prefix}:b{BOT_ID}:{{c{GROUP}}}:usage:{month_of(NOON)}"
    assert await redis_client.hget(user_day, "tokens") == b"15"
    assert await redis_client.hget(chat_month, "cost") == b"2000"  # 0.002 CNY in millionths


async def test_a_charge_is_one_script_that_sets_ttls_when_it_creates_a_key(
    own_redis: RedisProcess,
) -> None:
    client = aioredis.Redis.from_url(own_redis.url)
    try:
        store = RedisMeterStore(client, Keys("glmbot-test", BOT_ID))
        quotas = service(store, Clock())
        await quotas.charge(ALICE, GROUP, 1000, 500)
        await client.script_flush()  # as after a restart: the script is loaded again
        await client.config_resetstat()
        await quotas.charge(ALICE, GROUP, 1000, 500)
        await quotas.charge(BOB, GROUP, 10, 10)  # Bob's own counters are new
        stats = {
            name.removeprefix("cmdstat_"): int(values["calls"])
            for name, values in (await client.info("commandstats")).items()
        }
        report = await quotas.user_report(ALICE, GROUP)
    finally:
        await client.aclose()
    # one round trip each: no per-field HINCRBY, an EXPIRE only for Bob's new day and
    # month counters (his own, and his own of the model)
    assert stats["evalsha"] == 3, "two charges, one sent again after NOSCRIPT"
    assert stats["script|load"] == 1
    assert stats["expire"] == 4
    assert "hincrby" not in stats
    # user, chat, model, user's model and total, for the day and the month
    assert stats["hset"] == stats["hmget"] == 2 * 10
    assert stats["zincrby"] == 2 * 2
    assert report.today.tokens == 3000
    assert report.today.requests == 2
    assert report.today.cost == pytest.approx(0.4)
    assert report.chat_today is not None
    assert report.chat_today.tokens == 3020
    assert report.chat_today.requests == 3


async def test_large_sums_stay_exact(redis_client: aioredis.Redis, key_prefix: str) -> None:
    store = RedisMeterStore(redis_client, Keys(key_prefix, BOT_ID))
    # near 2^53, the edge of what the script's numbers (doubles) hold exactly
    big = Charge(ALICE, ALICE, "glm-4", 4 * 10**15 + 1, 1, 10**15 + 3)
    await store.charge(big, NOON)
    await store.charge(big, NOON)
    (today,) = await store.totals([(Scope.user(ALICE), day_of(NOON))])
    assert today.prompt == 8 * 10**15 + 2
    assert today.cost_micros == 2 * 10**15 + 6
    user_day = Keys(key_prefix, BOT_ID).chat_scoped(ALICE, f"user:usage:{day_of(NOON)}")
    assert await redis_client.hget(user_day, "tokens") == b"8000000000000004"


async def test_two_replicas_cannot_exceed_a_limit_together(
    redis_url: str, redis_client: aioredis.Redis, key_prefix: str
) -> None:
    """Two services on two connections to one Redis, racing: the limits still hold."""
    clients = [aioredis.Redis.from_url(redis_url) for _ in range(2)]
    try:
        clock = Clock()
        replicas = [
            service(
                RedisMeterStore(client, Keys(key_prefix, BOT_ID)),
                clock,
                user_per_minute=7,
                chat_per_minute=10,
            )
            for client in clients
        ]
        # one user, many concurrent messages
        results = await asyncio.gather(*(replicas[i % 2].admit(ALICE, GROUP) for i in range(40)))
        assert sum(r is None for r in results) == 7
        # many users in one chat: the chat's limit (3 left of 10) holds as well
        results = await asyncio.gather(*(replicas[i % 2].admit(1000 + i, GROUP) for i in range(40)))
        assert sum(r is None for r in results) == 3
        assert {r.reason for r in results if r is not None} == {Reason.CHAT_RATE}
    finally:
        for client in clients:
            await client.aclose()


async def test_redis_down_fails_open_and_loses_only_accounting(
    own_redis: RedisProcess, caplog: pytest.LogCaptureFixture
) -> None:
    client = aioredis.Redis.from_url(own_redis.url, socket_connect_timeout=0.5)
    try:
        quotas = service(
            RedisMeterStore(client, Keys("glmbot-test", BOT_ID)), Clock(), user_per_minute=1
        )
        assert await quotas.admit(ALICE, ALICE) is None
        own_redis.stop()
        with caplog.at_level(logging.WARNING, logger="bot.guards.quotas"):
            assert await quotas.admit(ALICE, ALICE) is None, "limits fail open"
            await quotas.charge(ALICE, ALICE, 10, 10)  # logged, not raised
        assert any("not recorded" in r.getMessage() for r in caplog.records)
    finally:
        await client.aclose()


def test_periods_and_waits() -> None:
    assert day_of(NOON) == "d20240310"
    assert month_of(NOON) == "m202403"
    assert seconds_to_midnight(NOON) == 12 * 3600
    assert seconds_to_midnight(NOON - 12 * 3600) == 86_400
    assert format_wait(0.2, "en") == "1 s"
    assert format_wait(42, "en") == "42 s"
    assert format_wait(61, "en") == "2 min"
    assert format_wait(5 * 3600 + 11 * 60 + 30, "en") == "5 h 12 min"
    assert format_wait(42, "zh-hans") == "42 秒"


def test_cost_in_millionths() -> None:
    quotas = service(MemoryMeterStore(), Clock())
    assert quotas.cost_micros("glm-4", 1000, 1000) == 300_000
    assert quotas.cost_micros("glm-4", 1, 0) == 100
    # glm-5: 4 and 18 CNY per million tokens
    assert quotas.cost_micros("glm-5", 1_000_000, 1_000_000) == 22_000_000
    assert quotas.cost_micros("glm-5", 1000, 500) == 13_000
    assert quotas.cost_micros("unknown-model", 1000, 1000) == 0


async def test_an_answer_is_charged_to_the_model_that_answered(store: MeterStore) -> None:
    quotas = service(store, Clock())
    turn = Turn(ConversationKey(GROUP), (TextPart("hi"),), user_id=ALICE)
    usage = Usage(prompt_tokens=1000, completion_tokens=500, total_tokens=1500)
    await quotas.on_answered(turn, AnswerResult(Outcome.COMPLETED, usage=usage, model="glm-5"))
    await quotas.on_answered(turn, AnswerResult(Outcome.COMPLETED, usage=usage, model="glm-5"))
    await quotas.on_answered(turn, AnswerResult(Outcome.COMPLETED, usage=usage, model="glm-4"))

    report = await quotas.user_report(ALICE)
    # glm-5: 2 x (1000 x 4 + 500 x 18) / 1e6; glm-4: (1000 x 100 + 500 x 200) / 1e6
    assert report.month.cost == pytest.approx(0.026 + 0.2)
    assert [(name, t.tokens, t.requests) for name, t in report.by_model] == [
        ("glm-5", 3000, 2),
        ("glm-4", 1500, 1),
    ]
    assert report.by_model[0][1].cost == pytest.approx(0.026)
    assert await quotas.user_report(BOB) == replace(await quotas.user_report(BOB), by_model=[]), (
        "Bob used no model"
    )
    bot = await quotas.bot_report()
    assert [(name, t.cost) for name, t in bot.models] == [
        ("glm-5", pytest.approx(0.026)),
        ("glm-4", pytest.approx(0.2)),
    ]


def test_scopes_of_a_charge() -> None:
    from bot.guards.quotas import Charge

    charge = Charge(ALICE, GROUP, "glm-4", 1, 2, 3)
    assert Scope.of_charge(charge) == [
        Scope.user(ALICE),
        Scope.chat(GROUP),
        Scope.model("glm-4"),
        Scope.user_model(ALICE, "glm-4"),
        Scope.total(),
    ]
