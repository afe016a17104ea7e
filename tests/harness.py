"""The whole bot, running for real against the fake Telegram and fake GLM servers.

The real dispatcher polls the fake Bot API over HTTP, the real zhipuai SDK streams from
the fake GLM server, and history lives in the real Redis under the test's own prefix.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from bot.app import App, create_app
from bot.config import Settings
from bot.llm import GLMClient
from tests.fakes.glm import FakeGLM, Reply
from tests.fakes.telegram import FakeTelegram

API_KEY = "test-key-id.test-key-secret"


@dataclass
class BotHarness:
    tg: FakeTelegram
    glm: FakeGLM
    app: App

    def glm_messages(self, index: int = -1) -> list[dict[str, Any]]:
        """The `messages` of a request the fake GLM received."""
        messages: list[dict[str, Any]] = self.glm.requests[index]["messages"]
        return messages

    def last_text(self, chat_id: int, thread_id: int | None = None) -> str:
        messages = self.tg.chat_messages(chat_id, thread_id)
        return messages[-1].text if messages else ""

    def texts(self, chat_id: int, thread_id: int | None = None) -> list[str]:
        return [m.text for m in self.tg.chat_messages(chat_id, thread_id)]

    async def wait_for_messages(
        self, chat_id: int, count: int, *, thread_id: int | None = None, timeout: float = 10
    ) -> None:
        await self.tg.wait_for(
            lambda: len(self.tg.chat_messages(chat_id, thread_id)) >= count,
            timeout,
            what=f"{count} bot messages in chat {chat_id}",
        )

    async def wait_idle(self, timeout: float = 10) -> None:
        """Until no answer is running or queued (answers run in tasks of their own, which
        their handlers start and leave)."""
        left = await self.app.turns.drain(timeout)
        assert left == 0, f"timed out waiting for {left} answers to finish"


def small_glm_client(glm: FakeGLM) -> GLMClient:
    """A GLM client on the fake, for tests that build a conversation without a bot: no
    retries, short timeouts."""
    return GLMClient(
        api_key=API_KEY,
        base_url=glm.api_base,
        max_concurrent=4,
        connect_timeout=2.0,
        read_timeout=5.0,
        stall_timeout=5.0,
        retry_attempts=1,
        retry_max_seconds=1.0,
    )


async def eventually(
    probe: Callable[[], Awaitable[object]], expected: object, *, timeout: float = 10, what: str
) -> None:
    """Poll an async probe (e.g. a Redis read) until it returns `expected`, or fail."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while (value := await probe()) != expected:
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}: last saw {value!r}")
        await asyncio.sleep(0.02)


def make_settings(
    tg: FakeTelegram, glm: FakeGLM, redis_url: str | None, key_prefix: str, **overrides: Any
) -> Settings:
    sections: dict[str, Any] = {
        "redis": {"key_prefix": key_prefix},
        "stream": {"edit_interval": 0.2, "draft_interval": 0.1},
        "llm": {"retry_max_seconds": 2.0, "read_timeout": 10.0, "stall_timeout": 5.0},
    }
    for name, value in overrides.items():
        if isinstance(value, dict) and isinstance(sections.get(name), dict):
            sections[name] = {**sections[name], **value}
        else:
            sections[name] = value
    return Settings(
        TELEGRAM_BOT_TOKEN=tg.token,
        ZHIPU_API_KEY=API_KEY,
        ZHIPU_BASE_URL=glm.api_base,
        TELEGRAM_API_BASE=tg.base_url,
        REDIS_URL=redis_url,
        **sections,
    )


@asynccontextmanager
async def start_bot(settings: Settings) -> AsyncIterator[App]:
    """Run the app's dispatcher in long polling until the block ends."""
    app = create_app(settings)
    polling = asyncio.create_task(
        app.dispatcher.start_polling(
            app.bot,
            handle_signals=False,
            close_bot_session=False,
            polling_timeout=1,
            allowed_updates=app.dispatcher.resolve_used_update_types(),
        )
    )
    try:
        yield app
    finally:
        if not polling.done():
            await app.dispatcher.stop_polling()
        await polling
        await app.aclose()


@asynccontextmanager
async def running_bot(
    redis_url: str | None,
    key_prefix: str,
    *,
    fake_telegram: dict[str, Any] | None = None,
    reply: Reply | None = None,
    **overrides: Any,
) -> AsyncIterator[BotHarness]:
    async with (
        FakeTelegram(**(fake_telegram or {})) as tg,
        FakeGLM(default=reply or Reply(text="Hello from GLM!")) as glm,
    ):
        settings = make_settings(tg, glm, redis_url, key_prefix, **overrides)
        async with start_bot(settings) as app:
            await tg.wait_for(lambda: bool(tg.calls_of("getUpdates")), what="polling started")
            yield BotHarness(tg, glm, app)
