"""Scripts and plain commands sent together: one round trip instead of one each.

A pipeline (no MULTI) of script calls by SHA and commands. Not redis-py's registered
scripts inside a pipeline: those cost a ``SCRIPT EXISTS`` round trip before every
execute. A script Redis does not know (NOSCRIPT, after a restart or a failover) is loaded
and that call alone sent again; NOSCRIPT means it did not run, so nothing runs twice.

On a Cluster the pipeline splits per node (still one round trip's wait, in parallel); a
script call must keep to one slot, as everywhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError, ResponseError
from redis.typing import EncodableT

__all__ = ["Command", "ScriptCall", "send_together"]

# A plain command as its arguments, e.g. ("HDEL", key, field).
Command = tuple[EncodableT, ...]


@dataclass(frozen=True, slots=True)
class ScriptCall:
    script: AsyncScript
    keys: Sequence[str]
    args: Sequence[EncodableT]


async def send_together(redis: aioredis.Redis, calls: Sequence[ScriptCall | Command]) -> list[Any]:
    """The replies in order. An error reply takes its command's place (the others ran
    regardless); a connection failure raises, and any of the commands may have run."""
    async with redis.pipeline(transaction=False) as pipe:
        for call in calls:
            if isinstance(call, ScriptCall):
                # not pipe.evalsha(): redis-py's Cluster pipeline blocks that method,
                # though it routes the command by its keys like any other
                pipe.execute_command(
                    "EVALSHA", call.script.sha, len(call.keys), *call.keys, *call.args
                )
            else:
                pipe.execute_command(*call)
        replies: list[Any] = await pipe.execute(raise_on_error=False)
    for index, (call, reply) in enumerate(zip(calls, replies, strict=True)):
        if isinstance(call, ScriptCall) and isinstance(reply, NoScriptError):
            replies[index] = await _load_and_send(redis, call)
    return replies


async def _load_and_send(redis: aioredis.Redis, call: ScriptCall) -> Any:
    call.script.sha = await redis.script_load(call.script.script)
    try:
        return await redis.evalsha(call.script.sha, len(call.keys), *call.keys, *call.args)
    except ResponseError as exc:
        return exc
