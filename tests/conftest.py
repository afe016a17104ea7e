"""Shared fixtures: a real Redis (never flushed: every test gets its own key prefix), and
the lanes every test is sorted into (markers unit, e2e, deploy; see `lane_of`)."""

from __future__ import annotations

import gc
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
import redis
import redis.asyncio as aioredis

# Every prefix this session handed out (and the test it went to): none may keep keys.
PREFIX_ROOT = "glmbot-test-"
_handed_out: dict[str, str] = {}
# The Redis of the session, once a test asked for it (`redis_url`).
_session_redis: list[str] = []

# A module that uses one of these runs the whole bot (in process, behind the fakes) or
# starts processes: its tests are end-to-end. Found by name, so new files sort themselves.
E2E_TOOLS = frozenset(
    {
        "running_bot",  # tests/harness.py: the bot polling the fakes
        "start_bot",
        "webhook_bot",  # tests/webhook_updates.py: the bot behind its webhook server
        "BotProcess",  # tests/bot_process.py: python -m bot
        "start_replica",  # tests/replica_processes.py
        "CaddyProcess",  # tests/caddy_process.py
        "subprocess",
    }
)
# Modules that are e2e for reasons the tools above do not show.
E2E_MODULES = frozenset(
    {
        "test_fake_telegram",  # the fake's own HTTP tests, an aiogram Bot session each
        "test_fuzz",  # thousands of updates through the dispatcher
        "test_llm_endings",  # stalls and retry budgets, timed in real seconds
        "test_llm_thinking",  # reasoning streamed over seconds by the fake GLM
        "test_replica_share",  # a replica in a process of its own (asyncio subprocess)
        "test_startup",  # python -m bot, until it exits (asyncio subprocesses)
        "test_stop_signal",  # replicas on one Redis, restarted
        "test_streaming",  # delivery through the fake Bot API, paced by real intervals
    }
)


def lane_of(item: pytest.Item) -> str:
    """deploy for test_deploy_* files; e2e for test_e2e_* files and modules that run the
    bot or start processes; unit for the rest (folders stay as they are)."""
    name = item.path.stem
    if name.startswith("test_deploy_"):
        return "deploy"
    module = getattr(item, "module", None)
    uses = E2E_TOOLS.intersection(vars(module)) if module is not None else set()
    if name.startswith("test_e2e_") or name in E2E_MODULES or uses:
        return "e2e"
    return "unit"


LANES = ("unit", "e2e", "deploy")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        # a test marked by hand (e.g. one slow test in a fast file) keeps its lane
        if not any(item.get_closest_marker(lane) for lane in LANES):
            item.add_marker(lane_of(item))


def pytest_collection_finish(session: pytest.Session) -> None:
    # Everything imported so far lives for the whole run: out of the collector's sight,
    # the collection after each test (_collect_garbage) walks only what tests made, in
    # milliseconds instead of half a second.
    gc.collect()
    gc.freeze()


def _answers(url: str) -> bool:
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=0.5)
        try:
            return bool(client.ping())
        finally:
            client.close()
    except redis.RedisError:
        return False


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """REDIS_URL if set, else the local Redis on 6379, else a throwaway redis-server.

    Database 0 is shared with whatever else runs on this Redis, so tests only ever touch
    keys under their own random prefix and delete exactly those.
    """
    url = os.environ.get("REDIS_URL")
    if url:
        _session_redis.append(url)
        yield url
        _check_no_keys_left(url)
        return
    local = "redis://127.0.0.1:6379/0"
    if _answers(local):
        _session_redis.append(local)
        yield local
        _check_no_keys_left(local)
        return
    server = shutil.which("redis-server")
    if server is None:
        pytest.fail("no Redis: set REDIS_URL, run one on 127.0.0.1:6379 or install redis-server")
    port = _free_port()
    workdir = tempfile.mkdtemp(prefix="glmbot-redis-")
    proc = subprocess.Popen(
        [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", workdir],
        stdout=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    deadline = time.monotonic() + 10
    while not _answers(url):
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("the throwaway redis-server did not start")
        time.sleep(0.05)
    _session_redis.append(url)
    yield url
    _check_no_keys_left(url)
    proc.terminate()
    proc.wait(timeout=10)
    shutil.rmtree(workdir, ignore_errors=True)


def _check_no_keys_left(url: str) -> None:
    """At the end of the session: no prefix it handed out still has keys in ``url``."""
    client = redis.Redis.from_url(url)
    try:
        left: dict[str, int] = {}
        for key in client.scan_iter(match=f"{PREFIX_ROOT}*", count=1000):
            prefix = key.decode(errors="replace")[: len(PREFIX_ROOT) + 12]
            if prefix in _handed_out:
                left[prefix] = left.get(prefix, 0) + 1
    finally:
        client.close()
    if left:
        lines = [f"  {count} under {p} ({_handed_out[p]})" for p, count in sorted(left.items())]
        pytest.fail("tests left keys in Redis:\n" + "\n".join(lines), pytrace=False)


def _delete_prefix(url: str, prefix: str) -> None:
    client = redis.Redis.from_url(url)
    try:
        for key in client.scan_iter(match=f"{prefix}*", count=1000):
            client.delete(key)
    finally:
        client.close()


@pytest.fixture
def key_prefix(request: pytest.FixtureRequest) -> Iterator[str]:
    """A namespace no other test (or deployment) uses. Whatever the test, its bots or its
    processes wrote under it in the session's Redis is deleted when the test ends."""
    prefix = f"{PREFIX_ROOT}{uuid.uuid4().hex[:12]}"
    _handed_out[prefix] = request.node.nodeid
    yield prefix
    # the session's Redis may have been asked for after this fixture (getfixturevalue)
    for url in _session_redis:
        _delete_prefix(url, prefix)


@pytest.fixture
async def redis_client(redis_url: str, key_prefix: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url)
    yield client
    await client.aclose()


class RedisProcess:
    """A redis-server of the test's own, which the test may stop and start again."""

    def __init__(self) -> None:
        self.port = _free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self._dir = tempfile.mkdtemp(prefix="glmbot-redis-")
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        server = shutil.which("redis-server")
        if server is None:
            pytest.fail("redis-server is not installed (.ci/run installs it)")
        # AOF on, so a restart keeps what was written, as in production
        self._proc = subprocess.Popen(
            [
                server,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
                "--dir",
                self._dir,
            ],
            stdout=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while not _answers(self.url):
            if time.monotonic() > deadline:
                pytest.fail("redis-server did not start")
            time.sleep(0.02)

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            self._proc.wait(timeout=10)
            self._proc = None

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self._dir, ignore_errors=True)


@pytest.fixture
def own_redis() -> Iterator[RedisProcess]:
    server = RedisProcess()
    server.start()
    yield server
    server.cleanup()


@pytest.fixture(autouse=True)
def _collect_garbage() -> Iterator[None]:
    """Collect at the end of each test, so that anything it leaked (an unclosed socket
    or Redis connection) is reported against that test, not a random later one."""
    yield
    gc.collect()
