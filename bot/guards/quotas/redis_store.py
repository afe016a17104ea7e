"""Limits and usage in Redis, safe for Redis Cluster: every script touches one slot.

Keys (under the bot's prefix). A user's counters live under the hash tag of their
private chat (Telegram gives it the user's id), a chat's under the chat's tag::

    <base>{c<user>}:user:rate              sorted set: the user's messages in the window
    <base>{c<user>}:user:told:<limit>      "already told" marker of a refusal
    <base>{c<user>}:user:usage:<period>    hash: prompt, completion, tokens, requests, cost,
                                           reasoning (part of completion)
    <base>{c<chat>}:rate, told:<limit>, usage:<period>      the same for a chat
    <base>usage:<period>:m:<model>         usage of a model
    <base>usage:<period>:total             usage of the whole bot
    <base>usage:<month>:top:chats          sorted set: tokens per chat in the month
    <base>usage:<month>:top:models         sorted set: tokens per model in the month

A message is admitted by one script on the user's slot, then one on the chat's; each
checks and counts atomically, so no number of replicas can push a counter past its limit.
If the chat refuses after the user's window counted the message, that count is taken
back: a refused message costs nothing.

An answer is charged by one script, in one round trip (on a Cluster, one script per slot
its keys fall in, in one pipeline). A usage hash costs an HMGET and an HSET of all its
fields, whatever changed, rather than an HINCRBY per field; its TTL is set when the
first answer of the period creates it (a period's counters then outlive its end by the
TTL at least), and a board's when a new member joins it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast
from uuid import uuid4

import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster
from redis.commands.core import AsyncScript
from redis.crc import key_slot
from redis.exceptions import RedisError
from redis.typing import EncodableT

from bot.guards.quotas.base import (
    DAY_TTL,
    MONTH_TTL,
    NOTICE_INTERVAL,
    Board,
    Charge,
    Limits,
    MeterUnavailable,
    Reason,
    Refusal,
    Scope,
    Totals,
    day_of,
    month_of,
    seconds_to_midnight,
)
from bot.storage.keys import Keys
from bot.storage.redis_batch import ScriptCall, send_together

__all__ = ["RedisMeterStore"]

# One scope (a user or a chat).
# KEYS: rate window, today's usage, told marker (tokens), told marker (rate).
# ARGV: now (ms), window (ms), rate limit, daily quota, ms to midnight, window member,
#       longest quiet time after a notice (ms).
# The quota is only read (answers are charged afterwards); the message is counted in the
# window only when both checks pass.
_ADMIT = """
local now = tonumber(ARGV[1])
local window = tonumber(ARGV[2])
local limit = tonumber(ARGV[3])
local quota = tonumber(ARGV[4])
local function refuse(kind, bound, wait, told)
  -- the marker holds when the quiet time ends (the caller's clock, like the window)
  local quiet = math.max(1000, math.floor(math.min(wait, tonumber(ARGV[7]))))
  local first = tonumber(redis.call('GET', told) or '0') <= now
  if first then
    redis.call('SET', told, now + quiet, 'PX', quiet)
  end
  return {kind, bound, math.ceil(wait), first and 1 or 0}
end
if quota > 0 then
  local spent = tonumber(redis.call('HGET', KEYS[2], 'tokens') or '0')
  if spent >= quota then
    return refuse('tokens', quota, tonumber(ARGV[5]), KEYS[3])
  end
end
if limit > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
  if redis.call('ZCARD', KEYS[1]) >= limit then
    local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
    return refuse('rate', limit, tonumber(oldest[2]) + window - now, KEYS[4])
  end
  redis.call('ZADD', KEYS[1], now, ARGV[6])
  redis.call('PEXPIRE', KEYS[1], window)
end
return false
"""

# Adds one answer to usage hashes and boards (sorted sets) of one Cluster slot.
# KEYS: usage hashes, then boards.
# ARGV: prompt, completion, cost, reasoning, number of hashes, a TTL per hash, then a
#       member and a TTL per board.
# Lua numbers are doubles, exact to 2^53; '%d' keeps large sums out of exponent notation.
_CHARGE = """
local prompt, completion, cost = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local reasoning = tonumber(ARGV[4])
local tokens = prompt + completion
local hashes = tonumber(ARGV[5])
local function plus(old, n)
  return string.format('%d', (tonumber(old) or 0) + n)
end
for i = 1, hashes do
  local old = redis.call('HMGET', KEYS[i],
    'prompt', 'completion', 'tokens', 'requests', 'cost', 'reasoning')
  redis.call('HSET', KEYS[i],
    'prompt', plus(old[1], prompt), 'completion', plus(old[2], completion),
    'tokens', plus(old[3], tokens), 'requests', plus(old[4], 1), 'cost', plus(old[5], cost),
    'reasoning', plus(old[6], reasoning))
  if not old[4] then
    redis.call('EXPIRE', KEYS[i], ARGV[5 + i])
  end
end
local at = 6 + hashes
for i = hashes + 1, #KEYS do
  local score = redis.call('ZINCRBY', KEYS[i], tokens, ARGV[at])
  if tonumber(score) == tokens then
    redis.call('EXPIRE', KEYS[i], ARGV[at + 1])
  end
  at = at + 2
end
return 1
"""

# what ZREVRANGE ... WITHSCORES answers
_Scored = list[tuple[str | bytes, float]]

_REASONS = {
    ("user", "rate"): Reason.USER_RATE,
    ("user", "tokens"): Reason.USER_TOKENS,
    ("chat", "rate"): Reason.CHAT_RATE,
    ("chat", "tokens"): Reason.CHAT_TOKENS,
}


class RedisMeterStore:
    """`MeterStore` on a shared Redis client (which the caller owns and closes)."""

    def __init__(self, redis: aioredis.Redis, keys: Keys) -> None:
        self._redis = redis
        self._keys = keys
        self._admit = redis.register_script(_ADMIT)
        self._charge = redis.register_script(_CHARGE)
        # a Cluster script may only touch one slot: the charge is split by slot there
        self._cluster = isinstance(redis, RedisCluster)

    # -- keys --------------------------------------------------------------------------

    def _scoped(self, scope: Scope, name: str) -> str:
        """A key of a user or chat scope, in that user's (private chat's) or chat's slot."""
        return self._keys.quota(int(scope.ident), name, user=scope.kind == "user")

    def usage_key(self, scope: Scope, period: str) -> str:
        if scope.kind in ("user", "chat"):
            return self._scoped(scope, f"usage:{period}")
        if scope.kind == "user_model":
            # in the user's slot, so a charge still touches one slot per chat
            user, _, model = scope.ident.partition(":")
            return self._keys.quota(int(user), f"usage:{period}:m:{model}", user=True)
        return self._keys.usage(period, str(scope.ident) if scope.kind == "model" else None)

    def _board_key(self, board: Board, month: str) -> str:
        return self._keys.usage_board(month, board)

    # -- MeterStore --------------------------------------------------------------------

    async def admit(self, user_id: int, chat_id: int, limits: Limits, now: float) -> Refusal | None:
        now_ms = int(now * 1000)
        member = f"{now_ms}:{uuid4().hex[:12]}"
        scopes = (
            (Scope.user(user_id), limits.user_per_minute, limits.user_daily_tokens),
            (Scope.chat(chat_id), limits.chat_per_minute, limits.chat_daily_tokens),
        )
        counted: list[str] = []
        try:
            for scope, per_minute, daily in scopes:
                if not per_minute and not daily:
                    continue
                keys = [
                    self._scoped(scope, "rate"),
                    self.usage_key(scope, day_of(now)),
                    self._scoped(scope, "told:tokens"),
                    self._scoped(scope, "told:rate"),
                ]
                args: list[Any] = [
                    now_ms,
                    int(limits.window * 1000),
                    per_minute,
                    daily,
                    int(seconds_to_midnight(now) * 1000),
                    member,
                    int(NOTICE_INTERVAL * 1000),
                ]
                reply = await self._admit(keys=keys, args=args)
                if reply:
                    for window in counted:
                        await self._redis.zrem(window, member)
                    kind, limit, wait_ms, first = reply
                    reason = _REASONS[(scope.kind, _text(kind))]
                    return Refusal(reason, int(limit), int(wait_ms) / 1000, bool(int(first)))
                if per_minute:
                    counted.append(keys[0])
        except RedisError as exc:
            raise MeterUnavailable(str(exc)) from None
        return None

    async def charge(self, charge: Charge, now: float) -> None:
        # Not one transaction on a Cluster: the keys live in several slots. Each slot's
        # counters are still added to atomically; a failure midway leaves some uncounted.
        day, month = day_of(now), month_of(now)
        groups: dict[int, _SlotCharge] = {}

        def group(key: str) -> _SlotCharge:
            slot = key_slot(key.encode()) if self._cluster else 0
            return groups.setdefault(slot, _SlotCharge())

        for scope in Scope.of_charge(charge):
            for period, ttl in ((day, DAY_TTL), (month, MONTH_TTL)):
                key = self.usage_key(scope, period)
                group(key).hashes.append((key, ttl))
        boards: tuple[tuple[Board, str], ...] = (
            ("chats", str(charge.chat_id)),
            ("models", charge.model),
        )
        for board, member in boards:
            key = self._board_key(board, month)
            group(key).boards.append((key, member, MONTH_TTL))
        amounts = [
            charge.prompt_tokens,
            charge.completion_tokens,
            charge.cost_micros,
            charge.reasoning_tokens,
        ]
        calls = [slot.call(self._charge, amounts) for slot in groups.values()]
        try:
            replies = await send_together(self._redis, calls)
        except RedisError as exc:
            raise MeterUnavailable(str(exc)) from None
        failed = [reply for reply in replies if isinstance(reply, Exception)]
        if failed:
            raise MeterUnavailable(str(failed[0]))

    async def totals(self, wanted: Sequence[tuple[Scope, str]]) -> list[Totals]:
        if not wanted:
            return []
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for scope, period in wanted:
                    pipe.hgetall(self.usage_key(scope, period))
                hashes = await pipe.execute()
        except RedisError as exc:
            raise MeterUnavailable(str(exc)) from None
        return [_totals(h) for h in hashes]

    async def ranking(self, board: Board, month: str, count: int) -> list[tuple[str, int]]:
        try:
            rows = await self._redis.zrevrange(
                self._board_key(board, month), 0, count - 1, withscores=True
            )
        except RedisError as exc:
            raise MeterUnavailable(str(exc)) from None
        return [(_text(member), int(score)) for member, score in cast(_Scored, rows)]


class _SlotCharge:
    """The keys of one charge that share a Cluster slot (all of them elsewhere)."""

    __slots__ = ("boards", "hashes")

    def __init__(self) -> None:
        self.hashes: list[tuple[str, int]] = []  # usage hash, TTL
        self.boards: list[tuple[str, str, int]] = []  # board, member, TTL

    def call(self, script: AsyncScript, amounts: list[int]) -> ScriptCall:
        keys = [key for key, _ in self.hashes] + [key for key, _, _ in self.boards]
        args: list[EncodableT] = [*amounts, len(self.hashes)]
        args.extend(ttl for _, ttl in self.hashes)
        for _, member, ttl in self.boards:
            args.extend((member, ttl))
        return ScriptCall(script, keys, args)


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _totals(fields: dict[Any, Any]) -> Totals:
    values = {_text(k): int(v) for k, v in fields.items()}
    return Totals(
        prompt=values.get("prompt", 0),
        completion=values.get("completion", 0),
        requests=values.get("requests", 0),
        cost_micros=values.get("cost", 0),
        reasoning=values.get("reasoning", 0),
    )
