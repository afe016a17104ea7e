"""Telling the bot's owners about outages they must fix (no balance, a rejected API key).

Each cause is sent at most once per ``interval`` however many users hit it and however
many replicas see it: the first process to claim the cause in Redis (``SET NX EX``)
sends; without Redis the claim is kept in this process. Sending itself is a function
given by the caller (``bot.factory.reliability`` passes one built on the aiogram Bot), so this
module knows nothing of Telegram.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Sequence

import redis.asyncio as aioredis

from bot.storage.keys import Keys
from bot.storage.once import OncePerInterval

log = logging.getLogger(__name__)

__all__ = ["OwnerAlerts", "SendPrivate"]

# (owner's user id, text)
SendPrivate = Callable[[int, str], Awaitable[None]]

# A slow Telegram must not hold the user's error reply for long.
_SEND_TIMEOUT = 10.0


class OwnerAlerts:
    """``await alerts.alert(cause, text)`` messages every owner, once per cause per interval."""

    def __init__(
        self,
        send: SendPrivate,
        owners: Sequence[int],
        *,
        redis: aioredis.Redis | None,
        keys: Keys,
        interval: float = 3600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._send = send
        self._owners = list(dict.fromkeys(owners))
        self._keys = keys
        # better one alert per replica than none during a Redis outage
        self._once = OncePerInterval(redis, interval=interval, clock=clock)

    async def alert(self, cause: str, message: str) -> bool:
        """Send ``message`` to every owner unless ``cause`` was sent within the interval.

        Returns whether the owners have been told: now (to at least one of them), or
        within the interval. Never raises.
        """
        if not self._owners:
            log.warning("owner alert (%s) not sent: no owners are configured", cause)
            return False
        if not await self._claim(cause):
            return True  # sent within the interval
        sent = await asyncio.gather(
            *(self._send_one(cause, owner, message) for owner in self._owners)
        )
        delivered = sum(sent)
        if delivered:
            log.warning("owner alert (%s) sent to %d owner(s)", cause, delivered)
        else:
            # Nobody heard it: let the next occurrence try again.
            await self._release(cause)
        return delivered > 0

    async def _send_one(self, cause: str, owner: int, message: str) -> bool:
        try:
            async with asyncio.timeout(_SEND_TIMEOUT):
                await self._send(owner, message)
        except Exception as exc:  # e.g. the owner never opened a chat with the bot
            log.warning("owner alert (%s) to %s failed: %s", cause, owner, exc)
            return False
        return True

    async def _claim(self, cause: str) -> bool:
        return await self._once.first(self._key(cause))

    async def _release(self, cause: str) -> None:
        await self._once.forget(self._key(cause))

    def _key(self, cause: str) -> str:
        return self._keys.alert(cause)
