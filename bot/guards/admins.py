"""Who may use admin commands (/persona, /listen, /reset in groups, stopping others' answers).

In a group: its creator and administrators, as Telegram reports them, cached briefly in
Redis (in memory without it) so that a busy group does not cost a getChatAdministrators
call per command. The cache is dropped when a chat_member update says someone's status
changed; Telegram sends those only to a bot that is a group admin, so before refusing
someone the list is asked for once more (at most once per `recheck_interval` per chat):
a member promoted a minute ago is not refused. In a private chat the user administers
their own chat. The bot's owners may do everything anywhere.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterable

from cachetools import TTLCache
from redis.asyncio import Redis
from redis.exceptions import RedisError

from bot.storage.keys import Keys

log = logging.getLogger(__name__)

AdminFetcher = Callable[[int], Awaitable[set[int]]]
# Marks a cached admin set as present even when it is empty (a group with no human admin).
_PRESENT = "-"
# Chats whose admin lists are kept in memory (without Redis) or whose recent re-checks are
# remembered: beyond this, the least recently used are forgotten.
_LOCAL_CHATS = 10_000


class AdminChecker:
    def __init__(
        self,
        fetch_admins: AdminFetcher,
        *,
        owners: Iterable[int] = (),
        redis: Redis | None = None,
        keys: Keys | None = None,
        ttl: int = 120,
        recheck_interval: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._fetch = fetch_admins
        self.owners = frozenset(owners)
        self._redis = redis
        self._keys = keys
        self._ttl = ttl
        # tests move time by replacing the clock
        self.clock = clock
        self._local: TTLCache[int, frozenset[int]] = TTLCache(_LOCAL_CHATS, ttl, self._now)
        # chats whose list was fetched this recently: no re-check before a refusal
        self._fresh: TTLCache[int, bool] = TTLCache(_LOCAL_CHATS, recheck_interval, self._now)

    def _now(self) -> float:
        return self.clock()

    def is_owner(self, user_id: int | None) -> bool:
        return user_id is not None and user_id in self.owners

    async def may_administer(
        self,
        chat_id: int,
        user_id: int | None,
        *,
        is_private: bool,
        anonymous_admin: bool = False,
    ) -> bool:
        """Whether this person may change how the bot behaves in this chat."""
        if self.is_owner(user_id) or anonymous_admin:
            return True
        if user_id is None:
            return False
        if is_private:
            return chat_id == user_id
        if user_id in await self.admins(chat_id):
            return True
        if chat_id in self._fresh:
            return False
        # promoted since the list was cached? Look once more before refusing.
        return user_id in await self._refresh(chat_id)

    async def admins(self, chat_id: int) -> frozenset[int]:
        cached = await self._cached(chat_id)
        if cached is not None:
            return cached
        return await self._refresh(chat_id)

    async def _refresh(self, chat_id: int) -> frozenset[int]:
        admins = frozenset(await self._fetch(chat_id))
        self._fresh[chat_id] = True
        await self._remember(chat_id, admins)
        return admins

    async def invalidate(self, chat_id: int) -> None:
        self._local.pop(chat_id, None)
        if self._redis is not None and self._keys is not None:
            try:
                await self._redis.delete(self._key(chat_id))
            except RedisError:
                log.warning("could not drop the admin cache of chat %s", chat_id)

    def _key(self, chat_id: int) -> str:
        assert self._keys is not None
        return self._keys.admins(chat_id)

    async def _cached(self, chat_id: int) -> frozenset[int] | None:
        if self._redis is None or self._keys is None:
            return self._local.get(chat_id)
        try:
            members = await self._redis.smembers(self._key(chat_id))
        except RedisError:
            return None  # the cache is an optimisation: ask Telegram instead
        if not members:
            return None
        return frozenset(int(m) for m in members if m != _PRESENT)

    async def _remember(self, chat_id: int, admins: frozenset[int]) -> None:
        if self._redis is None or self._keys is None:
            self._local[chat_id] = admins
            return
        key = self._key(chat_id)
        try:
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.delete(key)
                pipe.sadd(key, _PRESENT, *(str(a) for a in admins))
                pipe.expire(key, self._ttl)
                await pipe.execute()
        except RedisError:
            log.warning("could not cache the admins of chat %s", chat_id)
