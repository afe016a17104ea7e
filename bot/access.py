"""Who may use the bot at all: everyone, or an allowlist of users and chats.

With an allowlist, a listed user may use the bot anywhere, anyone may use it in a listed
chat, and the owners everywhere. Everyone else is refused politely once per
`refusal_interval` (remembered in Redis, so replicas and restarts agree), then ignored:
their messages never reach GLM and write nothing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Literal

from redis.asyncio import Redis
from redis.exceptions import RedisError

from bot.keys import Keys

__all__ = ["AccessPolicy"]

log = logging.getLogger(__name__)

# Strangers are many; the in-process memory of whom we told is pruned beyond this size.
_LOCAL_LIMIT = 10_000


class AccessPolicy:
    def __init__(
        self,
        *,
        mode: Literal["open", "allowlist"],
        users: Iterable[int] = (),
        chats: Iterable[int] = (),
        owners: Iterable[int] = (),
        refusal_interval: int = 86_400,
        redis: Redis | None = None,
        keys: Keys | None = None,
    ) -> None:
        self.mode = mode
        self._users = frozenset(users) | frozenset(owners)
        self._chats = frozenset(chats)
        self._interval = refusal_interval
        self._redis = redis
        self._keys = keys
        # (chat, user) -> monotonic time until which they need not be told again
        self._told: dict[tuple[int, int], float] = {}

    def allows(self, user_id: int, chat_id: int) -> bool:
        if self.mode == "open":
            return True
        return user_id in self._users or chat_id in self._chats

    async def should_tell(self, user_id: int, chat_id: int) -> bool:
        """Whether to send the refusal now: true once per interval per person and chat."""
        now = time.monotonic()
        if self._told.get((chat_id, user_id), 0.0) > now:
            return False  # told by this process: no need to ask Redis
        self._remember(chat_id, user_id, now)
        if self._redis is None or self._keys is None:
            return True
        key = self._keys.chat_scoped(chat_id, f"refused:{user_id}")
        try:
            return bool(await self._redis.set(key, "1", nx=True, ex=self._interval))
        except RedisError:
            # Without Redis, this process's memory still keeps the refusal from repeating.
            log.warning("could not record a refusal in chat %s", chat_id)
            return True

    def _remember(self, chat_id: int, user_id: int, now: float) -> None:
        if len(self._told) >= _LOCAL_LIMIT:
            self._told = {k: until for k, until in self._told.items() if until > now}
            if len(self._told) >= _LOCAL_LIMIT:
                self._told.clear()
        self._told[(chat_id, user_id)] = now + self._interval
