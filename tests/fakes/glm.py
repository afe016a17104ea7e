"""A fake Zhipu GLM server speaking the real chat-completions wire format.

Tests point the real zhipuai SDK at it (``base_url=fake.api_base``) instead of
monkeypatching the SDK, so what is exercised is exactly what crosses the network:
headers, JSON bodies, SSE framing, HTTP errors, abrupt disconnects and stalls.

It also runs standalone for load tests::

    python -m tests.fakes.glm --port 8082 --first-token-ms 300 --tokens-per-second 40 --tokens 200

with ``GET /_fake/stats``, ``GET /_fake/timings`` (per request, wall clock: when it
arrived, when its first token and its last chunk were written, and its last user
message to tell requests apart) and ``POST /_fake/reset``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import re
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

_VALID_ROLES = frozenset({"system", "user", "assistant", "tool"})
_BAD_MESSAGES = {"code": "1214", "message": "messages 参数非法。请检查文档。"}

# CJK characters come one or two per piece, like Zhipu's tokenizer; other text is
# split at word starts with the whitespace kept, so the pieces concatenate to the text.
_CJK = "\u3000-\u9fff\uac00-\ud7af\uff00-\uffef"
_PIECES = re.compile(rf"[{_CJK}]{{1,2}}|\s*[^\s{_CJK}]+|\s+")


def split_pieces(text: str) -> list[str]:
    """Word-ish pieces whose concatenation is exactly ``text``."""
    return _PIECES.findall(text)


@dataclass
class Reply:
    """One scripted behaviour for one request."""

    text: str = "Hello!"
    tokens: list[str] | None = None
    first_token_delay: float = 0.0
    token_interval: float = 0.0
    finish_reason: str = "stop"
    usage: dict[str, int] | None = None
    # An HTTP error instead of a stream, with body {"error": {"code": code, "message": message}}.
    status: int | None = None
    code: str | None = None
    message: str = "error"
    # Close the connection abruptly (no chunked terminator) after this many pieces.
    disconnect_after: int | None = None
    # Stop sending after this many pieces but keep the connection open until the client leaves.
    stall_after: int | None = None
    # Send a `data: {"error": {...}}` event after this many pieces, then end the stream.
    stream_error_after: int | None = None
    # Answer with one JSON completion even when a stream was asked for.
    json_body: bool = False

    def pieces(self) -> list[str]:
        return list(self.tokens) if self.tokens is not None else split_pieces(self.text)


def validate_body(body: Any) -> str | None:
    """Why Zhipu would reject this request body as invalid messages, or None."""
    if not isinstance(body, dict):
        return "body is not a JSON object"
    model = body.get("model")
    if not isinstance(model, str) or not model:
        return "model missing or empty"
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "messages must be a non-empty list"
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            return f"messages[{i}] is not an object"
        role = message.get("role")
        if role not in _VALID_ROLES:
            return f"messages[{i}].role is {role!r}"
        content = message.get("content")
        if not isinstance(content, str | list):
            return f"messages[{i}].content is {type(content).__name__}"
        if role == "system" and i != 0:
            return f"messages[{i}] is a system message after index 0"
    if all(m.get("role") == "system" for m in messages):
        return "messages hold only a system message"
    return None


def _estimate_tokens(body: dict[str, Any]) -> int:
    chars = 0
    for message in body.get("messages") or ():
        if isinstance(message, dict) and isinstance(message.get("content"), str):
            chars += len(message["content"])
    return max(1, chars // 4)


class _Flight:
    """One request counted in flight until it leaves (exactly once)."""

    __slots__ = ("_fake", "_left")

    def __init__(self, fake: FakeGLM) -> None:
        self._fake = fake
        self._left = False
        fake.in_flight += 1
        fake.max_in_flight = max(fake.max_in_flight, fake.in_flight)
        fake._notify()

    def leave(self, *, completed: bool = False) -> None:
        if self._left:
            return
        self._left = True
        self._fake.in_flight -= 1
        if completed:
            self._fake.completed += 1
        self._fake._notify()


class FakeGLM:
    """In-process aiohttp server; see the module docstring."""

    def __init__(self, *, default: Reply | None = None, port: int = 0, validate: bool = True):
        self.default = default or Reply()
        self.validate = validate
        self._port = port
        self._queue: deque[Reply] = deque()
        self._responder: Callable[[dict[str, Any]], Reply] | None = None
        self._runner: web.AppRunner | None = None
        self._ids = itertools.count(1)
        self._changed = asyncio.Event()
        self._stopping = asyncio.Event()
        self.base_url = ""
        self.api_base = ""
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        self.violations: list[str] = []
        self.timings: list[dict[str, Any]] = []
        self.cancelled = 0
        self.completed = 0
        self.in_flight = 0
        self.max_in_flight = 0

    # lifecycle

    async def start(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_get("/_fake/stats", self._stats)
        app.router.add_post("/_fake/reset", self._reset)
        app.router.add_get("/_fake/timings", self._timings)
        app.router.add_post("/{prefix:.*}chat/completions", self._completions)
        # handler_cancellation: a client that goes away cancels its handler even while it
        # sleeps between tokens, which is how stalled and slow streams notice the disconnect.
        self._runner = web.AppRunner(
            app, handler_cancellation=True, shutdown_timeout=1.0, access_log=None
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self._port, backlog=4096)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.base_url = f"http://{host}:{port}"
        self.api_base = f"{self.base_url}/api/paas/v4"

    async def stop(self) -> None:
        self._stopping.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeGLM:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # scripting

    def script(self, *replies: Reply) -> None:
        """Queue replies used in order by the next requests; then `default` again."""
        self._queue.extend(replies)

    def set_responder(self, fn: Callable[[dict[str, Any]], Reply] | None) -> None:
        """Choose the reply from the request body (when no scripted reply is queued)."""
        self._responder = fn

    def reset(self) -> None:
        self._queue.clear()
        self.requests.clear()
        self.headers.clear()
        self.violations.clear()
        self.timings.clear()
        self.cancelled = 0
        self.completed = 0
        self.max_in_flight = self.in_flight
        self._notify()

    # waiting (tests)

    # `timeout` is part of the fake's API that other tests code against.
    async def wait_for(
        self,
        predicate: Callable[[], bool],
        timeout: float = 10.0,
        what: str = "condition",
    ) -> None:
        """Wait until predicate() holds; it is re-checked on every change and every 20 ms
        (the predicate may also read state the fake does not own)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not predicate():
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise AssertionError(f"timed out after {timeout}s waiting for {what}")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(remaining, 0.02)):
                    await self._changed.wait()

    async def wait_cancelled(self, n: int = 1, timeout: float = 5.0) -> None:
        await self.wait_for(lambda: self.cancelled >= n, timeout, f"{n} cancelled stream(s)")

    # internals

    def _notify(self) -> None:
        self._changed.set()

    def _next_reply(self, body: dict[str, Any]) -> Reply:
        if self._queue:
            return self._queue.popleft()
        if self._responder is not None:
            return self._responder(body)
        return self.default

    async def _stats(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "requests": len(self.requests),
                "cancelled": self.cancelled,
                "completed": self.completed,
                "violations": len(self.violations),
                "in_flight": self.in_flight,
                "max_in_flight": self.max_in_flight,
            }
        )

    async def _timings(self, request: web.Request) -> web.Response:
        return web.json_response(self.timings)

    def _timing(self, body: Any) -> dict[str, Any]:
        """A wall-clock record of one request (time.time(): benchmarks compare it across
        processes), named by its last user message."""
        last_user = None
        messages = body.get("messages") if isinstance(body, dict) else None
        for message in messages if isinstance(messages, list) else ():
            if isinstance(message, dict) and message.get("role") == "user":
                last_user = message.get("content")
        timing: dict[str, Any] = {"user": last_user, "received_at": time.time()}
        self.timings.append(timing)
        return timing

    async def _reset(self, request: web.Request) -> web.Response:
        self.reset()
        return web.json_response({"ok": True})

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        try:
            body = json.loads(await request.read())
        except ValueError:
            body = None
        self.requests.append(body if isinstance(body, dict) else {"_invalid": True})
        self.headers.append(dict(request.headers))
        timing = self._timing(body)
        self._notify()
        if self.validate:
            problem = validate_body(body)
            if problem is not None:
                self.violations.append(problem)
                self._notify()
                return web.json_response({"error": _BAD_MESSAGES}, status=400)
        if not isinstance(body, dict):
            body = {}
        reply = self._next_reply(body)
        if reply.status is not None:
            error = {"code": reply.code or str(reply.status), "message": reply.message}
            return web.json_response({"error": error}, status=reply.status)

        flight = _Flight(self)
        try:
            if body.get("stream") and not reply.json_body:
                return await self._stream(request, body, reply, flight, timing)
            completion = await self._complete(body, reply)
            flight.leave(completed=True)
            return completion
        except (asyncio.CancelledError, ConnectionResetError):
            # Either the handler was cancelled by the client disconnecting or a write
            # hit the closed socket: both mean the client left before the end.
            self.cancelled += 1
            raise
        finally:
            flight.leave()

    def _chunk(self, rid: str, model: str, delta: dict[str, Any], **extra: Any) -> bytes:
        choice: dict[str, Any] = {"index": 0}
        if "finish_reason" in extra:
            choice["finish_reason"] = extra.pop("finish_reason")
        choice["delta"] = delta
        payload = {"id": rid, "created": int(time.time()), "model": model, "choices": [choice]}
        payload.update(extra)
        return b"data: " + json.dumps(payload, ensure_ascii=False).encode() + b"\n\n"

    def _usage(self, body: dict[str, Any], reply: Reply, pieces: list[str]) -> dict[str, int]:
        if reply.usage is not None:
            return reply.usage
        prompt = _estimate_tokens(body)
        return {
            "prompt_tokens": prompt,
            "completion_tokens": len(pieces),
            "total_tokens": prompt + len(pieces),
        }

    async def _complete(self, body: dict[str, Any], reply: Reply) -> web.Response:
        if reply.first_token_delay:
            await asyncio.sleep(reply.first_token_delay)
        pieces = reply.pieces()
        return web.json_response(
            {
                "id": str(next(self._ids)),
                "created": int(time.time()),
                "model": body.get("model"),
                "request_id": str(next(self._ids)),
                "choices": [
                    {
                        "index": 0,
                        "finish_reason": reply.finish_reason,
                        "message": {"role": "assistant", "content": "".join(pieces)},
                    }
                ],
                "usage": self._usage(body, reply, pieces),
            }
        )

    async def _stream(
        self,
        request: web.Request,
        body: dict[str, Any],
        reply: Reply,
        flight: _Flight,
        timing: dict[str, Any] | None = None,
    ) -> web.StreamResponse:
        timing = timing if timing is not None else {}
        rid = f"{int(time.time() * 1000)}{next(self._ids):08d}"
        model = str(body.get("model"))
        pieces = reply.pieces()
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream;charset=UTF-8", "Cache-Control": "no-cache"}
        )
        await response.prepare(request)
        if reply.first_token_delay:
            await asyncio.sleep(reply.first_token_delay)
        n = len(pieces)
        for i in range(n + 1):
            if i and i < n and reply.token_interval:
                await asyncio.sleep(reply.token_interval)
            for after, action in (
                (reply.disconnect_after, "disconnect"),
                (reply.stall_after, "stall"),
                (reply.stream_error_after, "error"),
            ):
                if after is not None and (after == i or (i == n and after > n)):
                    await self._misbehave(action, request, response, reply)
                    return response
            if i < n:
                delta = {"role": "assistant", "content": pieces[i]}
                await response.write(self._chunk(rid, model, delta))
                timing.setdefault("first_token_at", time.time())
        last = self._chunk(
            rid,
            model,
            {"role": "assistant", "content": ""},
            finish_reason=reply.finish_reason,
            usage=self._usage(body, reply, pieces),
        )
        await response.write(last + b"data: [DONE]\n\n")
        timing["last_chunk_at"] = time.time()
        timing["pieces"] = n
        # Leave before the terminator: once the client has it, it may already send its
        # next request, which must not find this one still counted as in flight.
        flight.leave(completed=True)
        await response.write_eof()
        return response

    async def _misbehave(
        self, action: str, request: web.Request, response: web.StreamResponse, reply: Reply
    ) -> None:
        if action == "disconnect":
            # No chunked terminator: the client sees the body end mid-message, like a cut link.
            if request.transport is not None:
                request.transport.abort()
        elif action == "stall":
            # Cancelled by aiohttp when the client disconnects (handler_cancellation).
            await self._stopping.wait()
        else:
            error = {"code": reply.code or "500", "message": reply.message}
            await response.write(b"data: " + json.dumps({"error": error}).encode() + b"\n\n")
            await response.write_eof()


async def _serve(args: argparse.Namespace) -> None:
    pieces = [f"tok{i} " for i in range(args.tokens)]
    default = Reply(
        tokens=pieces,
        first_token_delay=args.first_token_ms / 1000,
        token_interval=1 / args.tokens_per_second if args.tokens_per_second > 0 else 0.0,
    )
    fake = FakeGLM(default=default, port=args.port, validate=not args.no_validate)
    await fake.start()
    print(f"fake GLM listening on {fake.base_url} (SDK base_url {fake.api_base})", flush=True)
    try:
        await asyncio.Event().wait()
    finally:
        await fake.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8082)
    parser.add_argument("--first-token-ms", type=float, default=300.0)
    parser.add_argument("--tokens-per-second", type=float, default=40.0)
    parser.add_argument("--tokens", type=int, default=200)
    parser.add_argument("--no-validate", action="store_true")
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args))


if __name__ == "__main__":
    main()
