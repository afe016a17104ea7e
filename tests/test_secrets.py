"""Secrets never reach the logs: the bot token, the Zhipu API key, the Redis password.

Failures are provoked on purpose (GLM answers 401 quoting the key, Redis refuses every
connection, a Telegram call fails), since error paths are where secrets leak: URLs in
exception texts, response bodies, tracebacks.
"""

from __future__ import annotations

import logging
import socket
from pathlib import Path

import pytest
from pydantic import SecretStr

from tests.bot_process import BotProcess, bot_env
from tests.fakes.glm import FakeGLM, Reply
from tests.fakes.telegram import FakeTelegram
from tests.harness import make_settings, start_bot

BOT_ID = 5150
TOKEN_SECRET = "AAHsuperSecretBotToken_x9"
TOKEN = f"{BOT_ID}:{TOKEN_SECRET}"
KEY_SECRET = "zhipuSuperSecretKeyPart77"
API_KEY = f"keyid42.{KEY_SECRET}"
REDIS_PASSWORD = "redisSecretPassw0rd"
SECRETS = (TOKEN, TOKEN_SECRET, API_KEY, KEY_SECRET, REDIS_PASSWORD)
USER, OWNER = 1001, 7777
# GLM's error body quotes the key, so only redaction keeps it out of the logs.
UNAUTHORIZED = Reply(status=401, code="1002", message=f"invalid api key {API_KEY}")


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def dead_redis_url() -> str:
    return f"redis://:{REDIS_PASSWORD}@127.0.0.1:{closed_port()}/0"


def leaks(text: str) -> list[str]:
    return [secret for secret in SECRETS if secret in text]


async def test_process_logs_hold_no_secret(key_prefix: str, tmp_path: Path) -> None:
    """What `python -m bot` writes to stderr at DEBUG, on the store and GLM error paths."""
    async with (
        FakeTelegram(token=TOKEN, bot_id=BOT_ID) as tg,
        FakeGLM(default=UNAUTHORIZED) as glm,
    ):
        tg.fail_next("sendChatAction", description="Bad Request: injected", times=5)
        store_down = bot_env(
            tg, glm, api_key=API_KEY, redis_url=dead_redis_url(), key_prefix=key_prefix
        )
        glm_down = bot_env(tg, glm, api_key=API_KEY, redis_url=None, key_prefix=key_prefix) | {
            "TELEGRAM__OWNERS": f"[{OWNER}]"
        }
        logs = []
        for n, env in enumerate((store_down, glm_down)):
            async with BotProcess(env | {"LOG_LEVEL": "DEBUG"}, tmp_path / f"{n}.log") as bot:
                polls = len(tg.calls_of("getUpdates"))
                await tg.wait_for(
                    lambda p=polls: len(tg.calls_of("getUpdates")) > p, timeout=120, what="polling"
                )
                sent = len(tg.chat_messages(USER))
                tg.private_text(USER, "hello")
                await tg.wait_for(
                    lambda s=sent: len(tg.chat_messages(USER)) > s, timeout=30, what="reply"
                )
                assert await bot.stop() == 0
            logs.append(bot.log())

        replies = [m.text for m in tg.chat_messages(USER)]
        assert "memory store is temporarily unavailable" in replies[0]
        assert "unavailable" in replies[1]
        assert tg.chat_messages(OWNER), "the owner was alerted"
        assert "connect" in logs[0].lower(), "the Redis failure was logged"
        assert "GLM AUTH" in logs[1], "the GLM failure was logged"
        for log in logs:
            assert "DEBUG" in log, "debug logging was on"
            assert leaks(log) == []


async def test_captured_records_hold_no_secret(
    key_prefix: str, redis_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Records as any handler receives them (before the redacting formatter), with their
    tracebacks: secrets are kept out at the source, not only at the handler."""
    caplog.set_level(logging.DEBUG)
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    async with (
        FakeTelegram(token=TOKEN, bot_id=BOT_ID) as tg,
        FakeGLM(default=UNAUTHORIZED) as glm,
    ):
        for url in (dead_redis_url(), redis_url):
            settings = make_settings(
                tg, glm, url, key_prefix, telegram={"owners": [OWNER]}, llm={"retry_attempts": 1}
            )
            settings = settings.model_copy(update={"zhipu_api_key": SecretStr(API_KEY)})
            async with start_bot(settings) as app:
                sent = len(tg.chat_messages(USER))
                tg.private_text(USER, "hello")
                await tg.wait_for(lambda s=sent: len(tg.chat_messages(USER)) > s, what="reply")
                await tg.wait_for(lambda a=app: a.turns.in_flight == 0, what="idle")
    assert len(glm.requests) == 1
    assert tg.chat_messages(OWNER), "the owner was alerted"
    lines = [formatter.format(record) for record in caplog.records]
    assert any("history unavailable" in line for line in lines), "the store failure was logged"
    assert any("GLM AUTH" in line for line in lines), "the GLM failure was logged"
    for line in lines:
        assert leaks(line) == [], line
