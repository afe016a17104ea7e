"""GLMClient's HTTP on the event loop: requests the SDK sends through the aiohttp-backed
transport, against a small server that can hold its response headers back."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiohttp import web

from bot.llm import ErrorKind, GLMClient, GLMError, GLMOptions, TextDelta

OPTIONS = GLMOptions(model="glm-4", max_tokens=64, temperature=0.5)
MESSAGES = [{"role": "user", "content": "hi"}]


class Server:
    """Answers every request with a two-chunk stream, optionally only once ``release``
    is set; counts handlers the client walked away from."""

    def __init__(self) -> None:
        self.hold_headers = False
        self.release = asyncio.Event()
        self.arrived = 0
        self.cancelled = 0
        self.client_ports: list[int] = []
        self._runner: web.AppRunner | None = None
        self.api_base = ""

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/v4/chat/completions", self._completions)
        self._runner = web.AppRunner(app, handler_cancellation=True, shutdown_timeout=1.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.api_base = f"http://{host}:{port}/v4"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        await request.read()
        self.arrived += 1
        peer = request.transport.get_extra_info("peername") if request.transport else None
        self.client_ports.append(peer[1] if peer else -1)
        try:
            if self.hold_headers:
                await self.release.wait()
            response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
            await response.prepare(request)
            for text in ("Hel", "lo"):
                chunk = {"choices": [{"index": 0, "delta": {"content": text}}]}
                await response.write(b"data: " + json.dumps(chunk).encode() + b"\n\n")
            end = {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
            await response.write(b"data: " + json.dumps(end).encode() + b"\n\ndata: [DONE]\n\n")
            # the end of the chunked body comes a moment after [DONE], as over a real
            # network: the client must wait for it to keep the connection
            await asyncio.sleep(0.05)
            await response.write_eof()
            return response
        except asyncio.CancelledError:
            self.cancelled += 1
            raise


async def wait_until(predicate: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


@pytest.fixture
async def server() -> AsyncIterator[Server]:
    server = Server()
    await server.start()
    yield server
    server.release.set()
    await server.stop()


@pytest.fixture
async def make_client(server: Server) -> AsyncIterator[Callable[..., GLMClient]]:
    clients: list[GLMClient] = []

    def make(**overrides: Any) -> GLMClient:
        settings: dict[str, Any] = {
            "api_key": "0123456789abcdef.SeCrEtPaRt-98765",
            "base_url": server.api_base,
            "max_concurrent": 1,
            "connect_timeout": 2.0,
            "read_timeout": 5.0,
            "stall_timeout": 5.0,
            "retry_attempts": 1,
            "retry_max_seconds": 0.0,
        }
        settings.update(overrides)
        client = GLMClient(**settings)
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()


async def answer(client: GLMClient) -> str:
    events = [event async for event in client.stream(MESSAGES, OPTIONS)]
    return "".join(event.text for event in events if isinstance(event, TextDelta))


async def test_cancelling_while_the_headers_are_awaited_drops_the_request_at_once(
    server: Server, make_client: Callable[..., GLMClient]
) -> None:
    client = make_client()
    server.hold_headers = True
    task = asyncio.create_task(answer(client))
    await wait_until(lambda: server.arrived == 1, "the request")
    started = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await wait_until(lambda: server.cancelled == 1, "the server to see the disconnect")
    assert time.monotonic() - started < 1.5
    await wait_until(lambda: client.in_flight == 0, "the slot to be freed")
    # the only connection slot serves the next request
    server.hold_headers = False
    assert await answer(client) == "Hello"


async def test_closing_the_client_while_the_headers_are_awaited_fails_the_stream(
    server: Server, make_client: Callable[..., GLMClient]
) -> None:
    client = make_client()
    server.hold_headers = True
    task = asyncio.create_task(answer(client))
    await wait_until(lambda: server.arrived == 1, "the request")
    await client.aclose()
    with pytest.raises(GLMError) as caught:
        await task
    assert caught.value.kind is ErrorKind.UNKNOWN
    await wait_until(lambda: server.cancelled == 1, "the server to see the disconnect")


async def test_the_headers_are_bounded_by_connect_and_read_timeouts(
    server: Server, make_client: Callable[..., GLMClient]
) -> None:
    client = make_client(connect_timeout=0.2, read_timeout=0.2)
    server.hold_headers = True
    started = time.monotonic()
    with pytest.raises(GLMError) as caught:
        await answer(client)
    assert caught.value.kind is ErrorKind.TIMEOUT
    assert caught.value.retryable
    assert 0.3 < time.monotonic() - started < 3
    await wait_until(lambda: server.cancelled == 1, "the server to see the disconnect")


async def test_a_finished_answer_leaves_its_connection_to_the_next(
    server: Server, make_client: Callable[..., GLMClient]
) -> None:
    client = make_client()
    assert await answer(client) == "Hello"
    assert await answer(client) == "Hello"
    assert server.client_ports[0] == server.client_ports[1]


async def test_streams_started_at_once_wait_for_a_slot_then_all_answer(
    server: Server, make_client: Callable[..., GLMClient]
) -> None:
    client = make_client(max_concurrent=2)
    answers = await asyncio.gather(*(answer(client) for _ in range(10)))
    assert answers == ["Hello"] * 10
    assert server.arrived == 10
    await wait_until(lambda: client.in_flight == 0, "every slot to be freed")


async def test_a_proxy_from_the_environment_is_used(
    server: Server, make_client: Callable[..., GLMClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    # the test server plays the proxy: the name below resolves nowhere
    monkeypatch.setenv("HTTP_PROXY", server.api_base.removesuffix("/v4"))
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    client = make_client(base_url="http://glm.invalid/v4")
    assert await answer(client) == "Hello"
    assert server.arrived == 1
