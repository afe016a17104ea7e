"""`python -m bot` as a real child process against the fakes, for crash and log tests."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from types import TracebackType

from tests.fakes.glm import FakeGLM
from tests.fakes.telegram import FakeTelegram

ROOT = Path(__file__).resolve().parent.parent
# Variables of the bot that must come from the test, never from the developer's shell.
_BOT_VARIABLES = ("TELEGRAM_", "ZHIPU", "REDIS", "BOT_SETTINGS", "LOG_")


def bot_env(
    tg: FakeTelegram,
    glm: FakeGLM,
    *,
    api_key: str,
    redis_url: str | None,
    key_prefix: str,
    **settings: str,
) -> dict[str, str]:
    """The environment of a bot process; ``settings`` are SECTION__KEY overrides."""
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith(_BOT_VARIABLES)}
    env.update(
        TELEGRAM_BOT_TOKEN=tg.token,
        ZHIPU_API_KEY=api_key,
        TELEGRAM_API_BASE=tg.base_url,
        ZHIPU_BASE_URL=glm.api_base,
        BOT_SETTINGS=str(ROOT / "settings.toml"),
        REDIS__KEY_PREFIX=key_prefix,
        STREAM__EDIT_INTERVAL="0.2",
        STREAM__DRAFT_INTERVAL="0.1",
        PYTHONUNBUFFERED="1",
    )
    if redis_url is not None:
        env["REDIS_URL"] = redis_url
    env.update(settings)
    return env


class BotProcess:
    """Runs the bot until the ``async with`` block ends (SIGTERM, then SIGKILL); stderr
    goes to a file. Waiting never blocks the event loop: the fakes live in it."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self._env = env
        self.log_path = log_path
        self._proc: asyncio.subprocess.Process | None = None

    async def __aenter__(self) -> BotProcess:
        with self.log_path.open("wb") as log:
            self._proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bot",
                "polling",
                cwd=ROOT,
                env=self._env,
                stdout=asyncio.subprocess.DEVNULL,
                stderr=log,
            )
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.returncode is None

    async def kill(self) -> None:
        """Die at once, as in a crash or an OOM kill: no shutdown code runs."""
        if self._proc is not None:
            if self._proc.returncode is None:
                self._proc.kill()
            await self._proc.wait()

    async def stop(self, timeout: float = 30) -> int | None:
        """Terminate gracefully (SIGTERM), killing after ``timeout``; the exit code."""
        proc = self._proc
        if proc is None:
            return None
        if proc.returncode is None:
            proc.terminate()
        try:
            return await asyncio.wait_for(proc.wait(), timeout)
        except TimeoutError:
            proc.kill()
            return await proc.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")
