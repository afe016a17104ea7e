"""A circuit breaker in front of the chat model: when GLM keeps failing, fail fast.

Without it, every new question during an outage would wait through the client's
timeouts and retries (tens of seconds each) and pile up threads and connections. After
``failures`` consecutive upstream failures within ``window`` seconds the breaker opens:
for ``cooldown`` seconds every request fails at once with ``ErrorKind.UNAVAILABLE``.
Then one trial request is let through (half-open): its success closes the breaker, its
failure opens it for another cool-down.

A small class rather than a library: aiobreaker and purgatory wrap coroutine calls, but a
streamed answer can fail long after the call returned (a stall mid-stream), and an answer
the user stopped says nothing about GLM's health; both need the verdict at the end of the
iteration. The state is per process on purpose: each replica sees its own timeouts, and
sharing it through Redis would cost a round trip per answer for little gain.
"""

from __future__ import annotations

import contextlib
import enum
import logging
import time
from collections import deque
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from typing import Any

from bot.llm import ErrorKind, GLMError, GLMOptions, StreamEvent
from bot.turns.types import ChatModel

log = logging.getLogger(__name__)

__all__ = ["COUNTED_KINDS", "BreakerState", "CircuitBreakerModel"]

# Failures that say GLM is unhealthy. Answers such as "filtered" or "no balance" come
# from a healthy server and do not count (the owner alert covers the latter).
COUNTED_KINDS = frozenset(
    {
        ErrorKind.SERVER,
        ErrorKind.NETWORK,
        ErrorKind.TIMEOUT,
        ErrorKind.STALLED,
        ErrorKind.OVERLOADED,
        ErrorKind.RATE_LIMITED,
    }
)


class BreakerState(enum.Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class CircuitBreakerModel:
    """A ChatModel that forwards to ``model`` unless the breaker is open.

    ``failures`` of 0 turns the breaker off (every request is forwarded).
    """

    def __init__(
        self,
        model: ChatModel,
        *,
        failures: int,
        window: float,
        cooldown: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._model = model
        self._threshold = failures
        self._window = window
        self._cooldown = cooldown
        self._clock = clock
        self._state = BreakerState.CLOSED
        self._recent: deque[float] = deque()  # times of the consecutive failures
        self._open_until = 0.0
        self._trial_running = False

    @property
    def state(self) -> BreakerState:
        if self._state is BreakerState.OPEN and self._clock() >= self._open_until:
            return BreakerState.HALF_OPEN
        return self._state

    async def stream(
        self, messages: Sequence[Mapping[str, Any]], options: GLMOptions
    ) -> AsyncGenerator[StreamEvent, None]:
        """The model's events; raises GLMError(UNAVAILABLE) at once while open."""
        trial = self._admit()
        # True: GLM answered; False: a counted failure; None: no verdict (stopped early)
        healthy: bool | None = None
        got_event = False
        try:
            # closes the HTTP stream at once when the consumer leaves early
            async with contextlib.aclosing(self._model.stream(messages, options)) as events:
                async for event in events:
                    got_event = True
                    yield event
            healthy = True
        except GLMError as exc:
            healthy = exc.kind not in COUNTED_KINDS
            raise
        except BaseException:
            # Stopped by the user, or shut down: text that already flowed shows GLM works.
            healthy = True if got_event else None
            raise
        finally:
            self._record(healthy, trial=trial)

    def _admit(self) -> bool:
        """Whether this request is the half-open trial; raises while the breaker is open."""
        if self._threshold <= 0:
            return False
        state = self.state
        if state is BreakerState.CLOSED:
            return False
        if state is BreakerState.HALF_OPEN and not self._trial_running:
            self._state = BreakerState.HALF_OPEN
            self._trial_running = True
            log.info("GLM circuit half-open: letting one trial request through")
            return True
        wait = max(0.0, self._open_until - self._clock())
        raise GLMError(ErrorKind.UNAVAILABLE, f"circuit open, next trial in {wait:.0f}s")

    def _record(self, healthy: bool | None, *, trial: bool) -> None:
        if self._threshold <= 0:
            return
        if trial:
            self._trial_running = False
        if healthy is None:
            return
        now = self._clock()
        if healthy:
            self._recent.clear()
            if self._state is not BreakerState.CLOSED:
                log.warning("GLM circuit closed: GLM answers again")
                self._state = BreakerState.CLOSED
            return
        if trial:
            self._open(now, "the trial request failed")
            return
        if self._state is not BreakerState.CLOSED:
            return  # a request admitted before the breaker opened; it is open already
        self._recent.append(now)
        while self._recent and now - self._recent[0] > self._window:
            self._recent.popleft()
        if len(self._recent) >= self._threshold:
            self._open(now, f"{len(self._recent)} consecutive failures")

    def _open(self, now: float, why: str) -> None:
        self._state = BreakerState.OPEN
        self._open_until = now + self._cooldown
        self._recent.clear()
        log.warning(
            "GLM circuit open for %.0fs (%s): answering 'temporarily unavailable'",
            self._cooldown,
            why,
        )
