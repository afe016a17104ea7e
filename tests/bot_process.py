"""`python -m bot` as a real child process against the fakes, for crash and log tests."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
from pathlib import Path
from types import TracebackType

from tests.fakes.glm import FakeGLM
from tests.fakes.telegram import FakeTelegram
from tests.webhook_updates import free_port

ROOT = Path(__file__).resolve().parent.parent
# Variables of the bot that must come from the test, never from the developer's shell.
_BOT_VARIABLES = ("TELEGRAM_", "ZHIPU", "REDIS", "BOT_SETTINGS", "LOG_", "METRICS", "WEBHOOK")
# Lines of its log shown when a bot process exits on its own.
LOG_TAIL = 40


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
        # settings.toml's 9090 may be taken by anything else on the machine
        METRICS__HOST="127.0.0.1",
        METRICS__PORT=str(free_port()),
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
    goes to a file. Waiting never blocks the event loop: the fakes live in it.

    Should the process exit on its own meanwhile, whatever the block is waiting for is
    cancelled and the block fails at once with the tail of the log (the way
    ``asyncio.timeout()`` turns its cancellation into TimeoutError).
    """

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self._env = env
        self.log_path = log_path
        self._proc: asyncio.subprocess.Process | None = None
        self._host: asyncio.Task[object] | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._expected_exit = False
        self._died = False

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
        self._host = asyncio.current_task()
        self._watcher = asyncio.create_task(self._watch())
        return self

    async def _watch(self) -> None:
        assert self._proc is not None
        await self._proc.wait()
        if not self._expected_exit and self._host is not None:
            self._died = True
            self._host.cancel()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._expected_exit = True
        if self._died and self._host is not None:
            if exc_type is not asyncio.CancelledError:
                # the block ended before the cancellation reached it: take it here
                with contextlib.suppress(asyncio.CancelledError):
                    await asyncio.sleep(0)
            self._host.uncancel()
        if self._watcher is not None:
            self._watcher.cancel()
            await asyncio.wait([self._watcher])
        await self.stop()
        if self._died:
            cause = None if isinstance(exc, asyncio.CancelledError) else exc
            raise AssertionError(self.exit_report()) from cause

    def exit_report(self) -> str:
        code = None if self._proc is None else self._proc.returncode
        tail = "\n".join(self.log().splitlines()[-LOG_TAIL:])
        return f"the bot process exited on its own (code {code}); its log ends:\n{tail}"

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.returncode is None

    async def kill(self) -> None:
        """Die at once, as in a crash or an OOM kill: no shutdown code runs."""
        self._expected_exit = True
        if self._proc is not None:
            if self._proc.returncode is None:
                self._proc.kill()
            await self._proc.wait()

    async def stop(self, timeout: float = 30) -> int | None:
        """Terminate gracefully (SIGTERM), killing after ``timeout``; the exit code."""
        self._expected_exit = True
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
