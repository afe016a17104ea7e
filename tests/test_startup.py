"""`python -m bot` as an operator starts it: every mistake ends with one line on stderr,
``glmbot: configuration error: ...``, and exit code 2; a good start names what it uses."""

from __future__ import annotations

import asyncio
import os
import socket
import sys
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from tests.bot_process import ROOT, BotProcess, bot_env
from tests.fakes.glm import FakeGLM
from tests.fakes.telegram import FakeTelegram
from tests.harness import API_KEY
from tests.webhook_updates import free_port

# Longest a start that must fail may take (a getMe to the fake at most).
EXIT_TIMEOUT = 30


def _closed_url() -> str:
    """A URL where nothing listens: a start that must fail never gets that far."""
    return f"http://127.0.0.1:{free_port()}"


def plain_env(**variables: str) -> dict[str, str]:
    """A valid configuration without fakes (nothing reachable), plus `variables`."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.upper().startswith(("TELEGRAM_", "ZHIPU", "REDIS", "BOT_SETTINGS", "LOG_"))
        and "__" not in k
    }
    env.update(
        TELEGRAM_BOT_TOKEN="42:TEST-TOKEN",
        ZHIPU_API_KEY=API_KEY,
        TELEGRAM_API_BASE=_closed_url(),
        ZHIPU_BASE_URL=_closed_url(),
        BOT_SETTINGS=str(ROOT / "settings.toml"),
        METRICS__PORT="0",
        LOG_FORMAT="text",
        PYTHONUNBUFFERED="1",
    )
    env.update(variables)
    return env


async def run_until_exit(env: dict[str, str], *args: str) -> tuple[int, str]:
    """Run `python -m bot` to its end; the exit code and stderr."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        *args,
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        _, err = await asyncio.wait_for(proc.communicate(), EXIT_TIMEOUT)
    except TimeoutError:
        proc.kill()
        _, err = await proc.communicate()
        tail = err.decode()[-2000:]
        raise AssertionError(f"still running after {EXIT_TIMEOUT}s:\n{tail}") from None
    assert proc.returncode is not None
    return proc.returncode, err.decode(errors="replace")


def assert_configuration_error(code: int, stderr: str, starts: str) -> str:
    """The process ended with the one line, no traceback; returns that line."""
    assert code == 2, stderr[-2000:]
    assert "Traceback" not in stderr, stderr[-2000:]
    last = stderr.rstrip("\n").splitlines()[-1]
    assert last.startswith(f"glmbot: configuration error: {starts}"), stderr[-2000:]
    return last


@pytest.mark.parametrize("token", ["TEST-TOKEN", "42:TEST-TOKEN ", "42 :TEST-TOKEN"])
async def test_a_malformed_bot_token_stops_the_start_with_one_line(token: str) -> None:
    code, err = await run_until_exit(plain_env(TELEGRAM_BOT_TOKEN=token))
    assert_configuration_error(code, err, "TELEGRAM_BOT_TOKEN: ")
    assert "TEST-TOKEN" not in err


async def test_a_token_telegram_rejects_stops_the_start_before_polling() -> None:
    async with FakeTelegram() as tg, FakeGLM() as glm:
        env = bot_env(tg, glm, api_key=API_KEY, redis_url=None, key_prefix="unused")
        env.update(TELEGRAM_BOT_TOKEN="42:REVOKED-TOKEN", METRICS__PORT="0")
        code, err = await run_until_exit(env, "polling")
        line = assert_configuration_error(code, err, "TELEGRAM_BOT_TOKEN: Telegram rejected")
        assert "REVOKED-TOKEN" not in err
        assert "Unauthorized" in line
        assert not tg.calls_of("getUpdates")


async def test_a_lowercase_log_level_is_accepted(tmp_path: Path) -> None:
    # and the start-up names the model and the (absent) Redis, and warns about a typo
    async with FakeTelegram() as tg, FakeGLM() as glm:
        env = bot_env(tg, glm, api_key=API_KEY, redis_url=None, key_prefix="unused")
        env.update(LOG_LEVEL="debug", LOG_FORMAT="text", METRICS__PORT="0")
        env.update(LLM__TEMPRATURE="0.2", LLM__MODEL="glm-4-flash-250414")
        async with BotProcess(env, tmp_path / "bot.log") as bot:
            await tg.wait_for(
                lambda: bool(tg.calls_of("getUpdates")) or not bot.running,
                timeout=EXIT_TIMEOUT,
                what="polling",
            )
            assert bot.running, bot.log()[-2000:]
            assert await bot.stop() == 0
        log = bot.log()
    assert " DEBUG " in log
    warnings = [line for line in log.splitlines() if "LLM__TEMPRATURE" in line]
    assert len(warnings) == 1, log[-2000:]
    assert "WARNING" in warnings[0]
    assert "did you mean LLM__TEMPERATURE?" in warnings[0]
    assert "0.2" not in warnings[0]  # names only: a value may be a secret
    assert "starting: long polling, model glm-4-flash-250414, Redis in memory (no REDIS_URL)" in log


async def test_the_start_up_line_names_the_redis_in_use(
    tmp_path: Path, redis_url: str, key_prefix: str
) -> None:
    parts = urlsplit(redis_url)
    db = parts.path.strip("/") or "0"
    async with FakeTelegram() as tg, FakeGLM() as glm:
        env = bot_env(tg, glm, api_key=API_KEY, redis_url=redis_url, key_prefix=key_prefix)
        env.update(LOG_FORMAT="text", METRICS__PORT="0")
        async with BotProcess(env, tmp_path / "bot.log") as bot:
            await tg.wait_for(
                lambda: bool(tg.calls_of("getUpdates")) or not bot.running,
                timeout=EXIT_TIMEOUT,
                what="polling",
            )
            assert bot.running, bot.log()[-2000:]
        log = bot.log()
    assert f"model glm-4.7-flash, Redis {parts.hostname}:{parts.port or 6379}, db {db}" in log, log
    if parts.password:
        assert parts.password not in log


async def test_an_unknown_log_level_is_a_configuration_error() -> None:
    code, err = await run_until_exit(plain_env(LOG_LEVEL="verbose"))
    assert_configuration_error(code, err, "LOG_LEVEL: should be debug, info")


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


async def test_a_metrics_port_in_use_stops_the_start_with_one_line(taken_port: int) -> None:
    async with FakeTelegram() as tg, FakeGLM() as glm:
        env = bot_env(tg, glm, api_key=API_KEY, redis_url=None, key_prefix="unused")
        env.update(METRICS__HOST="127.0.0.1", METRICS__PORT=str(taken_port))
        code, err = await run_until_exit(env, "polling")
    line = assert_configuration_error(code, err, "METRICS__PORT: cannot listen on ")
    assert f"127.0.0.1:{taken_port}" in line
    assert not tg.calls_of("getUpdates")


async def test_a_redis_url_whose_database_is_not_a_number_is_a_configuration_error() -> None:
    code, err = await run_until_exit(plain_env(REDIS_URL="redis://:hunter2@127.0.0.1/notadb"))
    assert_configuration_error(code, err, "REDIS_URL: the database should be a number")
    assert "hunter2" not in err


async def test_an_http_webhook_url_is_refused_with_telegram_itself() -> None:
    env = plain_env(WEBHOOK__PUBLIC_URL="http://bot.example.com")
    del env["TELEGRAM_API_BASE"]  # the real Bot API: it posts to https only
    code, err = await run_until_exit(env, "webhook")
    assert_configuration_error(code, err, "WEBHOOK__PUBLIC_URL: should start with https://")
