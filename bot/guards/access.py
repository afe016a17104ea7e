"""Who may use the bot at all: everyone, or an allowlist of users and chats.

With an allowlist, a listed user may use the bot anywhere, anyone may use it in a listed
chat, and the owners everywhere. Everyone else is refused politely once per
`refusal_interval` (remembered in Redis, so replicas and restarts agree), then ignored:
their messages never reach GLM and write nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Literal

from redis.asyncio import Redis

from bot.storage.keys import Keys
from bot.storage.once import OncePerInterval

__all__ = ["AccessPolicy"]

# Without Redis the keys only name what this process remembers.
_LOCAL_KEYS = Keys("local", 0)


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
        self._keys = keys or _LOCAL_KEYS
        self._told = OncePerInterval(redis if keys else None, interval=refusal_interval)

    def allows(self, user_id: int, chat_id: int) -> bool:
        if self.mode == "open":
            return True
        return user_id in self._users or chat_id in self._chats

    async def should_tell(self, user_id: int, chat_id: int) -> bool:
        """Whether to send the refusal now: true once per interval per person and chat."""
        return await self._told.first(self._keys.refusal(chat_id, user_id))
