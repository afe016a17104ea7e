"""Readiness: can this process serve right now (its Redis, the Bot API and GLM answer)?"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping

from bot.llm import ErrorKind
from bot.turns.types import AnswerResult, Outcome, Turn

__all__ = ["Check", "GLMHealth", "Readiness"]

log = logging.getLogger(__name__)

Check = Callable[[], Awaitable[bool]]

# A dependency that has not answered in this long counts as down.
_CHECK_TIMEOUT = 3.0


class GLMHealth:
    """Whether GLM accepts our API key, as last seen by a request.

    A rejected key fails every answer while the process itself is fine, so readiness
    reports GLM down from an authentication failure until a request succeeds (a key
    fixed on Zhipu's side, or a transient 401). Other failures leave it as it was: the
    circuit breaker and the retries handle an overloaded or unreachable GLM.
    """

    def __init__(self) -> None:
        self._key_rejected = False

    def observe_failure(self, kind: ErrorKind) -> None:
        if kind is ErrorKind.AUTH:
            if not self._key_rejected:
                log.warning(
                    "GLM rejected the API key: /readyz reports GLM down until it is accepted"
                )
            self._key_rejected = True

    def observe_success(self) -> None:
        if self._key_rejected:
            log.info("GLM accepts the API key again")
        self._key_rejected = False

    async def ready(self) -> bool:
        """A readiness `Check`."""
        return not self._key_rejected

    async def on_answered(self, turn: Turn, result: AnswerResult) -> None:
        """An after-answer hook: what the answer says about the key."""
        if result.error is ErrorKind.AUTH:
            self.observe_failure(ErrorKind.AUTH)
        elif result.outcome in (Outcome.COMPLETED, Outcome.FILTERED):
            self.observe_success()  # GLM answered: it took the key


class Readiness:
    """Runs named checks concurrently and reuses the answer for ``cache_seconds``, so a
    probe every second does not turn into a Redis PING and a getMe every second."""

    def __init__(
        self,
        checks: Mapping[str, Check],
        *,
        glm: GLMHealth | None = None,
        cache_seconds: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._checks = dict(checks)
        if glm is not None:
            self._checks["glm"] = glm.ready
        self._cache_seconds = cache_seconds
        self._clock = clock
        self._last: tuple[float, dict[str, bool]] | None = None
        self._lock = asyncio.Lock()

    async def check(self) -> dict[str, bool]:
        """Each check's result (True: ready)."""
        async with self._lock:  # concurrent probes share one round of checks
            now = self._clock()
            if self._last is not None and now - self._last[0] < self._cache_seconds:
                return self._last[1]
            names = list(self._checks)
            results = await asyncio.gather(*(self._run(name) for name in names))
            state = dict(zip(names, results, strict=True))
            self._last = (self._clock(), state)
            return state

    async def _run(self, name: str) -> bool:
        try:
            async with asyncio.timeout(_CHECK_TIMEOUT):
                return await self._checks[name]()
        except Exception as exc:
            log.warning("readiness check %s failed: %s", name, exc)
            return False
