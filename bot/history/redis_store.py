"""The Redis history store: one list per conversation, one hash per persona scope, one
settings hash per chat (its preferences).

List entries are described in `bot.history.entries`. A turn costs two round trips here:
the context read and the append, each one script call.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any
from uuid import uuid4

import redis.asyncio as aioredis
from redis.exceptions import RedisError
from redis.typing import EncodableT, FieldT

from bot.history.base import (
    ConversationContext,
    HistoryUnavailable,
    Persona,
    validate_messages,
    validate_persona,
)
from bot.history.entries import as_text, decode_entry, encode_entry
from bot.messages import Message
from bot.storage.keys import ConversationKey, Keys

__all__ = ["RedisHistoryStore"]

_PERSONA_FIELDS = ("text", "tokens", "set_by", "set_at", "preset")
# An append retried by the client after a lost reply must not store the turn twice; the
# marker only has to outlive the client's retries.
_APPEND_MARKER_TTL = 120

# KEYS: topic persona, chat persona (same key for thread None), message list, chat
# settings. ARGV: budget in tokens.
# Pages from the tail grow from 32 entries to 1024, so a small budget costs one short
# LRANGE however long the list is, and a large one a handful of calls. A short page is
# the head of the list (LRANGE clamps a range reaching past it), so no LLEN is needed.
_LOAD_CONTEXT = """
local fields = {'text', 'tokens', 'set_by', 'set_at', 'preset'}
local persona = redis.call('HMGET', KEYS[1], unpack(fields))
if not persona[1] and KEYS[2] ~= KEYS[1] then
  persona = redis.call('HMGET', KEYS[2], unpack(fields))
end
local budget = tonumber(ARGV[1])
if persona[1] then
  budget = budget - (tonumber(persona[2]) or 0)
else
  persona = {}
end
local out = {}
local used = 0
local seen = 0
local page = 32
local truncated = 0
while true do
  local entries = redis.call('LRANGE', KEYS[3], -(seen + page), -(seen + 1))
  for i = #entries, 1, -1 do
    local tokens = tonumber(string.match(entries[i], '^(%d+)\\t'))
    if not tokens then
      return redis.error_reply('ERR glmbot: malformed history entry in ' .. KEYS[3])
    end
    if used + tokens > budget then
      truncated = 1
      break
    end
    used = used + tokens
    out[#out + 1] = entries[i]
  end
  if truncated == 1 or #entries < page then break end
  seen = seen + page
  page = math.min(page * 2, 1024)
end
return {persona, truncated, out, redis.call('HGETALL', KEYS[4])}
"""

# KEYS: message list, idempotency marker. ARGV: max messages, idle ttl (0: none),
# marker ttl, entries...
_APPEND = """
if redis.call('EXISTS', KEYS[2]) == 1 then return 0 end
local n = #ARGV
local length = 0
-- unpack() is bounded by the Lua C stack, so long batches go in slices
for i = 4, n, 1000 do
  length = redis.call('RPUSH', KEYS[1], unpack(ARGV, i, math.min(i + 999, n)))
end
local max = tonumber(ARGV[1])
if length > max then redis.call('LTRIM', KEYS[1], -max, -1) end
local ttl = tonumber(ARGV[2])
if ttl > 0 then redis.call('EXPIRE', KEYS[1], ttl) end
redis.call('SET', KEYS[2], '1', 'EX', ARGV[3])
return 1
"""


def _decode_persona(values: Sequence[Any]) -> Persona | None:
    if not values or values[0] is None:
        return None
    text, tokens, set_by, set_at, preset = values
    return Persona(
        text=as_text(text),
        tokens=int(tokens),
        set_by=as_text(set_by) if set_by is not None else "",
        set_at=float(set_at) if set_at is not None else 0.0,
        preset=as_text(preset) if preset is not None else None,
    )


def _pairs(flat: Sequence[bytes | str]) -> dict[str, str]:
    """HGETALL's reply inside a script: name, value, name, value..."""
    return {as_text(flat[i]): as_text(flat[i + 1]) for i in range(0, len(flat) - 1, 2)}


@contextmanager
def _unavailable() -> Iterator[None]:
    try:
        yield
    except (RedisError, ConnectionError, TimeoutError) as exc:
        raise HistoryUnavailable(f"history storage unavailable: {exc}") from exc


class RedisHistoryStore:
    """`HistoryStore` on Redis.

    The store does not own `redis` unless `owns_client` is set: `aclose()` closes the
    client only then. `idle_ttl` (seconds, 0 = never) makes a conversation's history
    expire after that long without an append; personas and chat settings never expire.
    """

    def __init__(
        self,
        redis: aioredis.Redis,
        keys: Keys,
        *,
        max_messages: int = 2000,
        idle_ttl: int = 0,
        owns_client: bool = False,
    ) -> None:
        if max_messages < 1:
            raise ValueError("max_messages must be at least 1")
        if idle_ttl < 0:
            raise ValueError("idle_ttl must not be negative")
        self._redis = redis
        self._keys = keys
        self._max_messages = max_messages
        self._idle_ttl = idle_ttl
        self._owns_client = owns_client
        # redis-py's Script reloads the script on NOSCRIPT (after a restart or failover)
        self._load_script = redis.register_script(_LOAD_CONTEXT)
        self._append_script = redis.register_script(_APPEND)

    async def load_context(self, key: ConversationKey, budget_tokens: int) -> ConversationContext:
        """See `HistoryStore.load_context`; one script call, reading only the needed tail."""
        keys = [
            self._keys.persona(key),
            self._keys.persona(key.chat),
            self._keys.messages(key),
            self._keys.chat_settings(key.chat_id),
        ]
        with _unavailable():
            persona, truncated, entries, settings = await self._load_script(
                keys=keys, args=[budget_tokens]
            )
        return ConversationContext(
            persona=_decode_persona(persona),
            messages=[decode_entry(entry) for entry in reversed(entries)],
            truncated=bool(truncated),
            preferences=_pairs(settings),
        )

    async def append(self, key: ConversationKey, messages: Sequence[Message]) -> None:
        """See `HistoryStore.append`; one script call, so all messages land or none."""
        validate_messages(messages)
        if not messages:
            return
        marker = self._keys.append_marker(key, uuid4().hex)
        args: list[str | int] = [self._max_messages, self._idle_ttl, _APPEND_MARKER_TTL]
        args.extend(encode_entry(message) for message in messages)
        with _unavailable():
            await self._append_script(keys=[self._keys.messages(key), marker], args=args)

    async def clear(self, key: ConversationKey) -> None:
        """See `HistoryStore.clear`."""
        with _unavailable():
            await self._redis.delete(self._keys.messages(key))

    async def length(self, key: ConversationKey) -> int:
        """See `HistoryStore.length`."""
        with _unavailable():
            return int(await self._redis.llen(self._keys.messages(key)))

    async def get_persona(self, key: ConversationKey, *, inherit: bool = True) -> Persona | None:
        """See `HistoryStore.get_persona`."""
        scopes = [key]
        if inherit and key.thread_id is not None:
            scopes.append(key.chat)
        with _unavailable():
            async with self._redis.pipeline(transaction=False) as pipe:
                for scope in scopes:
                    pipe.hmget(self._keys.persona(scope), list(_PERSONA_FIELDS))
                results = await pipe.execute()
        for values in results:
            persona = _decode_persona(values)
            if persona is not None:
                return persona
        return None

    async def set_persona(self, key: ConversationKey, persona: Persona | None) -> None:
        """See `HistoryStore.set_persona`."""
        name = self._keys.persona(key)
        if persona is None:
            with _unavailable():
                await self._redis.delete(name)
            return
        validate_persona(persona)
        mapping: dict[FieldT, EncodableT] = {
            "text": persona.text,
            "tokens": persona.tokens,
            "set_by": persona.set_by,
            "set_at": repr(persona.set_at),
        }
        if persona.preset is not None:
            mapping["preset"] = persona.preset
        with _unavailable():
            # MULTI: a reader sees the old persona or the new one, never a mix of fields
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.delete(name)
                pipe.hset(name, mapping=mapping)
                await pipe.execute()

    async def get_preferences(self, chat_id: int) -> Mapping[str, str]:
        """See `HistoryStore.get_preferences`."""
        with _unavailable():
            values = await self._redis.hgetall(self._keys.chat_settings(chat_id))
        return {as_text(name): as_text(value) for name, value in values.items()}

    async def set_preference(self, chat_id: int, name: str, value: str | None) -> None:
        """See `HistoryStore.set_preference`."""
        settings = self._keys.chat_settings(chat_id)
        with _unavailable():
            if value is None:
                await self._redis.hdel(settings, name)
            else:
                await self._redis.hset(settings, name, value)

    async def ping(self) -> bool:
        """See `HistoryStore.ping`."""
        try:
            return bool(await self._redis.ping())
        except (RedisError, ConnectionError, TimeoutError):
            return False

    async def aclose(self) -> None:
        """Close the client if the store owns it; otherwise its creator closes it."""
        if self._owns_client:
            await self._redis.aclose()
