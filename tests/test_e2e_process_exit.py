"""A bot process that dies while a test waits for it fails that test at once, with the
tail of its log, instead of a timeout that says only what was awaited."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from tests.bot_process import BotProcess, bot_env
from tests.fakes.glm import FakeGLM
from tests.fakes.telegram import FakeTelegram
from tests.harness import API_KEY


async def test_a_process_that_cannot_bind_its_port_fails_the_wait_at_once(
    key_prefix: str, tmp_path: Path
) -> None:
    # what happened on a shared machine: the metrics port was taken by another process
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        async with FakeTelegram() as tg, FakeGLM() as glm:
            env = bot_env(tg, glm, api_key=API_KEY, redis_url=None, key_prefix=key_prefix)
            env["METRICS__PORT"] = str(port)
            started = time.monotonic()
            with pytest.raises(AssertionError, match="exited on its own") as failed:
                async with BotProcess(env, tmp_path / "bot.log"):
                    await tg.wait_for(lambda: False, timeout=120, what="something never true")
    assert time.monotonic() - started < 60, "failed when the process exited, not at timeout"
    assert "address already in use" in str(failed.value), "the log's tail tells why"


async def test_each_bot_process_gets_a_free_metrics_port(key_prefix: str) -> None:
    async with FakeTelegram() as tg, FakeGLM() as glm:
        ports = {
            bot_env(tg, glm, api_key=API_KEY, redis_url=None, key_prefix=key_prefix)[
                "METRICS__PORT"
            ]
            for _ in range(3)
        }
    assert "9090" not in ports
    assert all(int(port) > 0 for port in ports)
