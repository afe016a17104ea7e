"""Redis Sentinel and Redis Cluster, for real: servers of the test's own, and the history
store, the journal of turns in progress, conversation leases and usage accounting working
through the clients `[redis] mode` builds."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from bot.cluster.leases import RedisLeases
from bot.cluster.replicas import ReplicaRegistry
from bot.cluster.stop_signal import StopSignal
from bot.guards.quotas import Charge, RedisMeterStore, Scope, day_of
from bot.history import RedisHistoryStore, create_redis_client
from bot.history.base import Persona
from bot.messages import Message, TextPart
from bot.stopping import MayAdminister, StopOutcome
from bot.storage.keys import ConversationKey, Keys
from bot.storage.redis_client import CountingRedisCluster, SentinelRedis
from bot.turns.journal import PendingTurn, TurnJournal
from bot.turns.types import Turn
from tests.webhook_updates import free_port


def _binary(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"{name} is not installed (.ci/run installs redis-server)")
    return found


def _wait(predicate: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.05)


def _answers(port: int) -> bool:
    try:
        client = redis.Redis(port=port, socket_connect_timeout=0.5)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except redis.RedisError:
        return False


class Servers:
    """redis-server processes of one test, stopped and removed at the end."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="glmbot-redis-modes-"))
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, *args: str) -> None:
        self.procs.append(
            subprocess.Popen([_binary("redis-server"), *args], stdout=subprocess.DEVNULL)
        )

    def close(self) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            proc.wait(timeout=10)
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture
def cluster_url() -> Iterator[str]:
    """A three-master Redis Cluster on loopback."""
    servers = Servers()
    ports = [free_port() for _ in range(3)]
    try:
        for port in ports:
            servers.start(
                "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", str(servers.dir),
                "--cluster-enabled", "yes", "--cluster-config-file", f"nodes-{port}.conf",
                # the default bus port (port + 10000) may be taken, or past 65535
                "--cluster-port", str(free_port()),
            )  # fmt: skip
        for port in ports:
            _wait(lambda port=port: _answers(port), f"cluster node {port}")
        subprocess.run(
            [_binary("redis-cli"), "--cluster", "create", *[f"127.0.0.1:{p}" for p in ports],
             "--cluster-replicas", "0", "--cluster-yes"],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip

        def cluster_ok() -> bool:
            return all(
                "cluster_state:ok"
                in subprocess.run(
                    [_binary("redis-cli"), "-p", str(p), "cluster", "info"],
                    capture_output=True, text=True, timeout=10,
                ).stdout
                for p in ports
            )  # fmt: skip

        _wait(cluster_ok, "cluster_state:ok")
        yield f"redis://127.0.0.1:{ports[0]}/0"
    finally:
        servers.close()


@pytest.fixture
def sentinel_url() -> Iterator[str]:
    """A master and one Sentinel watching it, as a redis+sentinel:// URL."""
    servers = Servers()
    master, sentinel = free_port(), free_port()
    try:
        servers.start("--port", str(master), "--bind", "127.0.0.1", "--save", "")
        _wait(lambda: _answers(master), "the master")
        config = servers.dir / "sentinel.conf"
        config.write_text(
            f"port {sentinel}\nbind 127.0.0.1\ndir {servers.dir}\n"
            f"sentinel monitor glm 127.0.0.1 {master} 1\n"
        )
        servers.start(str(config), "--sentinel")

        def knows_master() -> bool:
            try:
                client = redis.Redis(port=sentinel, socket_connect_timeout=0.5)
                try:
                    return client.sentinel_get_master_addr_by_name("glm") is not None
                finally:
                    client.close()
            except redis.RedisError:
                return False

        _wait(knows_master, "the sentinel")
        yield f"redis+sentinel://127.0.0.1:{sentinel}/glm/0"
    finally:
        servers.close()


async def _exercise(client: redis.asyncio.Redis) -> None:
    """History, personas (a MULTI) and leases of chats in different slots."""
    keys = Keys("glmbot-modes", 42)
    store = RedisHistoryStore(client, keys)
    leases = RedisLeases(client, keys, ttl=2.0, poll_interval=0.01)

    async def never_notified(turn: PendingTurn) -> None:
        raise AssertionError(f"nothing was lost: {turn}")

    journal = TurnJournal(client, keys, never_notified, heartbeat=60, grace=30)
    meters = RedisMeterStore(client, keys)
    try:
        for chat in (1, -100200, 3003, 40004):
            key = ConversationKey(chat)
            async with leases.hold(key):
                # the journal's hash is in another slot than the chat's keys
                ticket = await journal.record(Turn(key, (TextPart("hi"),), user_id=7))
                assert ticket is not None
                assert await client.hexists(keys.bot_scoped("pending"), ticket)
                await store.set_preference(chat, "model", "glm-4-air")
                context = await store.load_context(key, 1000)
                assert context.preferences == {"model": "glm-4-air"}
                await store.append(
                    key,
                    [
                        Message.of_text("user", f"hi {chat}"),
                        Message.of_text("assistant", f"hello {chat}"),
                    ],
                )
                await journal.end(ticket)
                assert not await client.hexists(keys.bot_scoped("pending"), ticket)
                # user, chat, model and totals: keys of several slots, one charge
                await meters.charge(Charge(7, chat, "glm-4", 10, 5, 3), 1.7e9)
            await store.set_persona(key, Persona("Be brief.", 3, "admin", 1.0))
            context = await store.load_context(key, 10_000)
            assert [m.text for m in context.messages] == [f"hi {chat}", f"hello {chat}"]
            assert context.persona is not None
            assert context.persona.text == "Be brief."
        ran: list[int] = []

        async def turn(n: int) -> None:
            async with leases.hold(ConversationKey(1)):
                ran.append(n)
                await asyncio.sleep(0.01)

        await asyncio.gather(*(turn(n) for n in range(3)))
        assert sorted(ran) == [0, 1, 2]
        # Redis forgets its scripts on a restart or failover: each script call loads its own
        await client.script_flush()
        context = await store.load_context(ConversationKey(1), 1000)
        assert [m.text for m in context.messages] == ["hi 1", "hello 1"]
        await client.script_flush()
        await store.append(ConversationKey(1), [Message.of_text("user", "again")])
        assert await store.length(ConversationKey(1)) == 3
        await client.script_flush()
        await meters.charge(Charge(7, 1, "glm-4", 0, 0, 0), 1.7e9)
        day = day_of(1.7e9)
        user, total, chat = await meters.totals(
            [(Scope.user(7), day), (Scope.total(), day), (Scope.chat(3003), day)]
        )
        assert (user.tokens, user.requests, user.cost_micros) == (60, 5, 12)
        assert (total.tokens, total.requests) == (60, 5)
        assert (chat.tokens, chat.requests) == (15, 1)
        ranking = await meters.ranking("chats", "m" + day[1:7], 10)
        assert sorted(ranking) == sorted((str(chat), 15) for chat in (1, -100200, 3003, 40004))
    finally:
        await leases.aclose()
        await client.aclose()


async def test_cluster_mode(cluster_url: str) -> None:
    client = create_redis_client(cluster_url, max_connections=20, pool_timeout=1, mode="cluster")
    assert isinstance(client, CountingRedisCluster)
    await _exercise(client)


async def test_sentinel_url(sentinel_url: str) -> None:
    # the scheme alone selects Sentinel, whatever [redis] mode says
    client = create_redis_client(sentinel_url, max_connections=20, pool_timeout=1)
    assert isinstance(client, SentinelRedis)
    await _exercise(client)


class _Answering:
    """A replica's side of /stop that is writing the answer to every conversation."""

    def __init__(self) -> None:
        self.stopped: list[ConversationKey] = []

    async def stop_here(
        self, key: ConversationKey, *, by: int, may_administer: MayAdminister
    ) -> StopOutcome:
        self.stopped.append(key)
        return StopOutcome.STOPPED

    def stopped_elsewhere(self, key: ConversationKey) -> None:
        pass


async def test_replicas_reach_each_other_through_a_cluster(cluster_url: str) -> None:
    """Pub/sub (a /stop for another replica) and presence marks, through Cluster clients."""
    clients = [
        create_redis_client(cluster_url, max_connections=20, pool_timeout=1, mode="cluster")
        for _ in range(2)
    ]
    keys = Keys("glmbot-test", 42)
    counts: list[list[int]] = [[], []]

    async def held_elsewhere(key: ConversationKey) -> bool:
        return True

    async def admin() -> bool:
        return False

    signals = [StopSignal(c, keys, held_elsewhere=held_elsewhere) for c in clients]
    registries = [
        ReplicaRegistry(c, keys, interval=60, on_count=counts[n].append)
        for n, c in enumerate(clients)
    ]
    answering = _Answering()
    signals[0].serve(answering)
    try:
        for part in (*signals, *registries):
            await part.start()
        assert all(signal.subscribed for signal in signals)
        key = ConversationKey(-100300, 7)
        assert await signals[1].ask(key, by=5, may_administer=admin) is StopOutcome.STOPPED
        assert answering.stopped == [key]
        assert counts == [[1], [2]]
    finally:
        for part in (*signals, *registries):
            await part.stop()
        for client in clients:
            await client.aclose()
