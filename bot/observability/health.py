"""Readiness: can this process serve right now (its Redis and the Bot API answer)?"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping

__all__ = ["Check", "Readiness"]

log = logging.getLogger(__name__)

Check = Callable[[], Awaitable[bool]]

# A dependency that has not answered in this long counts as down.
_CHECK_TIMEOUT = 3.0


class Readiness:
    """Runs named checks concurrently and reuses the answer for ``cache_seconds``, so a
    probe every second does not turn into a Redis PING and a getMe every second."""

    def __init__(
        self,
        checks: Mapping[str, Check],
        *,
        cache_seconds: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._checks = dict(checks)
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
