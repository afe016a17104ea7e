"""What the bot asks of Redis during a run: INFO commandstats deltas and a MONITOR feed.

commandstats counts every command, those run inside Lua scripts included, so it gives
the work Redis does. Round trips are what the bot waits for: MONITOR tells commands sent
by a client (``[0 127.0.0.1:port]``) from those a script ran (``[0 lua]``). Commands a
client sent back to back (a pipeline or MULTI/EXEC) are one round trip: consecutive
client commands of one connection less than `_PIPELINE_GAP` apart (no loopback round
trip of redis-py is that fast) are counted once, and MULTI ... EXEC always as one.
Round trips that open or check a pooled connection (HELLO, CLIENT SETINFO, PING) are
also counted apart, as they are not paid per answer once the pool is warm; so are the
periodic ones of the whole process (the journal's heartbeat and sweep, replica presence,
lease renewals), recognised by their key, which cost the same whatever the answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import redis.asyncio as aioredis

_LINE = re.compile(rb'^\+(\d+\.\d+) \[\d+ ([^\]]+)\] "([^"]+)"(?: "([^"]*)")?')
_PIPELINE_GAP = 50e-6
# Sent when a pooled connection is opened or checked, not by the answer itself.
_CONNECTION_SETUP = frozenset({"hello", "client", "auth", "select", "ping"})
# Keys of the process's periodic work (bot/turns/journal.py, bot/cluster/replicas.py and
# bot/cluster/leases.py):
# the instance's alive mark, the sweep of the journal, replica presence, lease renewals.
_PERIODIC_KEY = re.compile(r":instance:|:pending$|:replicas$|:lease$")
_PERIODIC_COMMANDS = frozenset({"set", "hgetall", "zadd", "zremrangebyscore", "zcard", "pexpire"})


@dataclass
class RedisCost:
    commands: Counter[str] = field(default_factory=Counter)  # commandstats deltas
    client_commands: Counter[str] = field(default_factory=Counter)  # sent by clients
    script_commands: Counter[str] = field(default_factory=Counter)  # run inside Lua
    round_trips: int = 0
    setup_round_trips: int = 0
    periodic_round_trips: int = 0
    monitored: bool = False

    def per_answer(self, answers: int) -> dict[str, Any]:
        n = max(answers, 1)
        return {
            "commands": round(sum(self.commands.values()) / n, 2),
            "round_trips": round(self.round_trips / n, 2) if self.monitored else None,
            "connection_setup_round_trips": (
                round(self.setup_round_trips / n, 2) if self.monitored else None
            ),
            "periodic_round_trips": (
                round(self.periodic_round_trips / n, 2) if self.monitored else None
            ),
            "client_commands": {k: round(v / n, 3) for k, v in self.client_commands.items()},
            "script_commands": {k: round(v / n, 3) for k, v in self.script_commands.items()},
            "by_command": {k: round(v / n, 3) for k, v in sorted(self.commands.items())},
        }


class _Monitor:
    def __init__(self) -> None:
        self.cost = RedisCost(monitored=True)
        self._last: dict[str, float] = {}
        self._previous_client: str | None = None
        self._in_multi: set[str] = set()

    def feed(self, line: bytes) -> None:
        found = _LINE.match(line)
        if found is None:
            return
        at, source, raw = float(found.group(1)), found.group(2).decode(), found.group(3)
        command = raw.decode(errors="replace").lower()
        key = (found.group(4) or b"").decode(errors="replace")
        if source == "lua":
            self.cost.script_commands[command] += 1
            return
        self.cost.client_commands[command] += 1
        same_burst = (
            self._previous_client == source and at - self._last.get(source, 0.0) < _PIPELINE_GAP
        )
        if command == "multi":
            self._in_multi.add(source)
            if not same_burst:
                self.cost.round_trips += 1
        elif source in self._in_multi:
            if command in ("exec", "discard"):
                self._in_multi.discard(source)
        elif not same_burst:
            self.cost.round_trips += 1
            if command in _CONNECTION_SETUP:
                self.cost.setup_round_trips += 1
            elif command in _PERIODIC_COMMANDS and _PERIODIC_KEY.search(key):
                self.cost.periodic_round_trips += 1
        self._last[source] = at
        self._previous_client = source


class RedisProbe:
    """Start before a run, stop after it; the bench's own commands are not counted."""

    def __init__(self, url: str, host: str, port: int, *, monitor: bool = True) -> None:
        self._url = url
        self._host, self._port = host, port
        self._monitor_enabled = monitor
        self._monitor = _Monitor()
        self._task: asyncio.Task[None] | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._client: aioredis.Redis | None = None

    async def start(self) -> None:
        # one connection, opened before the reset, so its handshake is not counted
        self._client = aioredis.Redis.from_url(self._url, single_connection_client=True)
        await self._client.ping()
        await self._client.config_resetstat()
        if self._monitor_enabled:
            reader, self._writer = await asyncio.open_connection(self._host, self._port)
            self._writer.write(b"MONITOR\r\n")
            await self._writer.drain()
            if not (await asyncio.wait_for(reader.readline(), 5.0)).startswith(b"+OK"):
                raise RuntimeError("Redis refused MONITOR")
            self._task = asyncio.create_task(self._read(reader))

    async def _read(self, reader: asyncio.StreamReader) -> None:
        while line := await reader.readline():
            self._monitor.feed(line)

    async def stop(self) -> RedisCost:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(OSError):
                await self._writer.wait_closed()
        if self._client is None:
            raise RuntimeError("RedisProbe.stop() before start()")
        try:
            stats = await self._client.info("commandstats")
        finally:
            await self._client.aclose()
        cost = self._monitor.cost if self._monitor_enabled else RedisCost()
        for name, values in stats.items():
            command = name.removeprefix("cmdstat_")
            if command in ("config|resetstat", "info", "monitor"):
                continue  # the probe's own
            cost.commands[command] = int(values["calls"])
        return cost
