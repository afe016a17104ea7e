"""Readiness: can this process serve right now (its Redis, the Bot API and GLM answer)?"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping

from bot.llm import ErrorKind, GLMError, GLMOptions, Messages, StreamEvent
from bot.turns.types import ChatModel

__all__ = ["Check", "GLMHealth", "GLMWatchedModel", "Readiness"]

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

    def watch(self, model: ChatModel) -> GLMWatchedModel:
        return GLMWatchedModel(model, self)


class GLMWatchedModel:
    """A `ChatModel` reporting to a `GLMHealth` how the model behind it fares."""

    def __init__(self, model: ChatModel, health: GLMHealth) -> None:
        self._model = model
        self._health = health

    async def stream(
        self, messages: Messages, options: GLMOptions
    ) -> AsyncGenerator[StreamEvent, None]:
        try:
            async with contextlib.aclosing(self._model.stream(messages, options)) as stream:
                async for event in stream:
                    yield event
        except GLMError as exc:
            self._health.observe_failure(exc.kind)
            raise
        # ended normally (not stopped by the user, not failed): GLM took the key
        self._health.observe_success()


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
