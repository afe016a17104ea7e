"""Thousands of hostile updates through the real dispatcher, fake Telegram and fake GLM,
with a Redis server of the test's own: nothing escapes a handler, GLM never receives a
malformed request, and no key is written outside the bot's namespace."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis
from aiogram.types import ErrorEvent, Update
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.app import App, create_app
from tests.conftest import RedisProcess
from tests.fakes.glm import FakeGLM, Reply
from tests.fakes.telegram import FakeTelegram
from tests.fuzz_updates import BOT_ID, BOT_USERNAME, updates
from tests.harness import make_settings

# Bounded so the whole test takes well under a minute; derandomized, so CI is repeatable.
EXAMPLES = 100
BATCH = 30


@dataclass
class Rig:
    tg: FakeTelegram
    glm: FakeGLM
    app: App
    errors: list[str] = field(default_factory=list)
    fed: int = 0

    async def feed(self, batch: list[dict[str, Any]]) -> None:
        """Feed a batch at once, as a busy bot receives it; answers run concurrently.
        Returns once the answers ended too (their handlers only start them)."""
        for update in batch:
            self.tg.push_update(update)  # the fake learns the messages and callback ids
        await asyncio.gather(*(self._feed_one(update) for update in batch))
        assert await self.app.turns.drain(10) == 0
        self.fed += len(batch)

    def answer_errors(self) -> float:
        """Answers that ended in an exception (they run after their handler returned, so
        the dispatcher's error observer never sees those)."""
        value = self.app.metrics.registry.get_sample_value("glmbot_answer_errors_total")
        return value or 0.0

    async def _feed_one(self, raw: dict[str, Any]) -> None:
        update = Update.model_validate(raw, context={"bot": self.app.bot})
        await self.app.dispatcher.feed_update(self.app.bot, update)

    async def record_error(self, event: ErrorEvent) -> bool:
        self.errors.append(f"{type(event.exception).__name__}: {event.exception}")
        return True


async def start_rig(redis_url: str, key_prefix: str) -> Rig:
    tg = FakeTelegram(bot_id=BOT_ID, bot_username=BOT_USERNAME)
    glm = FakeGLM(default=Reply(text="A short answer."))
    await tg.start()
    await glm.start()
    settings = make_settings(
        tg,
        glm,
        redis_url,
        key_prefix,
        stream={
            "edit_interval": 0.01,
            "draft_interval": 0.01,
            "global_rate": 100_000,
            "group_rate_per_minute": 100_000,
        },
        # Messages from the owner take the admin paths too.
        telegram={"owners": [1003]},
    )
    app = create_app(settings)
    rig = Rig(tg, glm, app)
    # The dispatcher's own error observer runs before any router's: it sees everything.
    app.dispatcher.errors.register(rig.record_error)
    return rig


async def stop_rig(rig: Rig) -> None:
    await rig.app.turns.drain(10)
    await rig.app.aclose()
    await rig.glm.stop()
    await rig.tg.stop()


async def foreign_keys(redis_url: str, namespace: str) -> list[str]:
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    try:
        return [key async for key in client.scan_iter(count=1000) if not key.startswith(namespace)]
    finally:
        await client.aclose()


def test_hostile_updates_change_nothing_they_should_not(
    own_redis: RedisProcess, key_prefix: str
) -> None:
    with asyncio.Runner() as runner:
        rig = runner.run(start_rig(own_redis.url, key_prefix))
        try:

            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                derandomize=True,
                database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
            )
            @given(st.lists(updates(), min_size=10, max_size=BATCH))
            def feed(batch: list[dict[str, Any]]) -> None:
                runner.run(rig.feed(batch))
                assert rig.errors == []
                assert rig.answer_errors() == 0
                assert rig.glm.violations == []

            feed()
        finally:
            runner.run(stop_rig(rig))
        assert rig.fed > 1000, "thousands of updates went through"
        assert rig.glm.requests, "some of them reached GLM"
        assert rig.tg.server_errors == [], "the fake Telegram never saw a request it chokes on"
        # This Redis server is the test's own: every key in it was written by the bot.
        namespace = f"{key_prefix}:b{BOT_ID}:"
        assert runner.run(foreign_keys(own_redis.url, namespace)) == []


def private_text(user: int, update_id: int, text: str) -> dict[str, Any]:
    chat = {"id": user, "type": "private", "first_name": "Ann"}
    sender = {"id": user, "is_bot": False, "first_name": "Ann"}
    message = {"message_id": update_id, "date": 0, "chat": chat, "from": sender, "text": text}
    return {"update_id": update_id, "message": message}


async def test_showing_a_persona_of_emoji_fits_a_message(
    redis_url: str, key_prefix: str, redis_client: aioredis.Redis
) -> None:
    rig = await start_rig(redis_url, key_prefix)
    try:
        # 3,950 characters (under the limit of 4,000), 6,320 UTF-16 units
        await rig.feed([private_text(2001, 1, "/persona " + "👨‍👩‍👧" * 790)])
        await rig.feed([private_text(2001, 2, "/persona")])
    finally:
        await stop_rig(rig)
    assert rig.errors == []
