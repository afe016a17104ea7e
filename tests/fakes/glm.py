"""A fake Zhipu GLM server speaking the real chat-completions wire format.

Tests point the real zhipuai SDK at it (``base_url=fake.api_base``) instead of
monkeypatching the SDK, so what is exercised is exactly what crosses the network:
headers, JSON bodies, SSE framing, HTTP errors, abrupt disconnects and stalls.

It also runs standalone for load tests::

    python -m tests.fakes.glm --port 8082 --first-token-ms 300 --tokens-per-second 40 --tokens 200

with ``GET /_fake/stats``, ``GET /_fake/timings`` (per request, wall clock: when it
arrived, when its first reasoning chunk, its first token and its last chunk were
written, and its last user message to tell requests apart) and ``POST /_fake/reset``.
``--reasoning-ms 2000`` makes it a thinking model: ``delta.reasoning_content`` for 2 s
after the first-token delay, then the answer.

Every request body is kept in ``requests`` (thinking, extra_body fields, tools and image
parts arrive there as Zhipu would see them). Image generation is ``images``
(``tests.fakes.glm_images``).
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

from tests.fakes.glm_audio import Transcriptions
from tests.fakes.glm_images import FakeImages
from tests.fakes.glm_requests import text_of, validate_body

__all__ = [
    "FakeGLM",
    "Reply",
    "search_results",
    "split_pieces",
    "text_of",
    "validate_body",
]

_BAD_MESSAGES = {"code": "1214", "message": "messages 参数非法。请检查文档。"}

# CJK characters come one or two per piece, like Zhipu's tokenizer; other text is
# split at word starts with the whitespace kept, so the pieces concatenate to the text.
_CJK = "\u3000-\u9fff\uac00-\ud7af\uff00-\uffef"
_PIECES = re.compile(rf"[{_CJK}]{{1,2}}|\s*[^\s{_CJK}]+|\s+")


def split_pieces(text: str) -> list[str]:
    """Word-ish pieces whose concatenation is exactly ``text``."""
    return _PIECES.findall(text)


def search_results(n: int = 2) -> list[dict[str, Any]]:
    """A top-level ``web_search`` list as Zhipu sends it, with ``n`` sources."""
    return [
        {
            "title": f"Source {i}",
            "link": f"https://example.com/{i}",
            "content": f"What source {i} says.",
            "media": f"Site {i}",
            "icon": f"https://example.com/{i}/icon.png",
            "refer": f"ref_{i}",
            "publish_date": "2026-12-01",
        }
        for i in range(1, n + 1)
    ]


@dataclass
class Reply:
    """One scripted behaviour for one request.

    A stream goes: ``headers_delay``; headers; ``first_token_delay``; a ``web_search``
    chunk (when ``web_search_at`` is "first"); the reasoning pieces, spread over
    ``reasoning_seconds``; the text pieces, ``token_interval`` apart; the finish chunk
    with usage; a ``web_search`` chunk (when "last"); ``data: [DONE]``.
    """

    text: str = "Hello!"
    tokens: list[str] | None = None
    first_token_delay: float = 0.0
    token_interval: float = 0.0
    finish_reason: str = "stop"
    # Sent as given (e.g. with completion_tokens_details); else counted from the pieces.
    usage: dict[str, Any] | None = None
    # A thinking model: delta.reasoning_content pieces before the text, the first at
    # once and the rest evenly over reasoning_seconds (the text starts after them).
    reasoning: str = ""
    reasoning_pieces: list[str] | None = None
    reasoning_seconds: float = 0.0
    # The top-level web_search list (see search_results()), on a chunk of its own
    # before everything ("first") or after the finish chunk ("last").
    web_search: list[dict[str, Any]] | None = None
    web_search_at: str = "first"
    # End the body cleanly after this many text pieces (and end_pause seconds), with
    # neither a finish chunk nor [DONE]: an answer cut short.
    end_early_after: int | None = None
    end_pause: float = 0.0
    # False: the finish chunk, then the end of the body without data: [DONE].
    send_done: bool = True
    # Hold the response headers back this long (a stall before the stream starts).
    headers_delay: float = 0.0
    # An HTTP error instead of a stream, with body {"error": {"code": code, "message": message}}.
    status: int | None = None
    code: str | None = None
    message: str = "error"
    # Close the connection abruptly (no chunked terminator) after this many pieces.
    disconnect_after: int | None = None
    # Stop sending after this many pieces but keep the connection open until the client
    # leaves; 0 (and no reasoning or web_search): headers, then nothing.
    stall_after: int | None = None
    # Send a `data: {"error": {...}}` event after this many pieces, then end the stream.
    stream_error_after: int | None = None
    # Answer with one JSON completion even when a stream was asked for.
    json_body: bool = False

    def pieces(self) -> list[str]:
        return list(self.tokens) if self.tokens is not None else split_pieces(self.text)

    def thoughts(self) -> list[str]:
        if self.reasoning_pieces is not None:
            return list(self.reasoning_pieces)
        return split_pieces(self.reasoning)


def _estimate_tokens(body: dict[str, Any]) -> int:
    chars = 0
    for message in body.get("messages") or ():
        if isinstance(message, dict):
            chars += len(text_of(message.get("content")) or "")
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
        # speech recognition (tests/fakes/glm_audio.py)
        self.transcriptions = Transcriptions(self._notify)
        self.images = FakeImages(self._notify)

    # lifecycle

    async def start(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_get("/_fake/stats", self._stats)
        app.router.add_post("/_fake/reset", self._reset)
        app.router.add_get("/_fake/timings", self._timings)
        app.router.add_post("/{prefix:.*}chat/completions", self._completions)
        app.router.add_post("/{prefix:.*}audio/transcriptions", self.transcriptions.handle)
        self.images.add_routes(app)
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
        self.transcriptions.reset()
        self.images.reset()
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
                last_user = text_of(message.get("content"))
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

    def _chunk(self, rid: str, model: str, delta: dict[str, Any] | None, **extra: Any) -> bytes:
        payload: dict[str, Any] = {"id": rid, "created": int(time.time()), "model": model}
        if delta is not None:
            choice: dict[str, Any] = {"index": 0}
            if "finish_reason" in extra:
                choice["finish_reason"] = extra.pop("finish_reason")
            choice["delta"] = delta
            payload["choices"] = [choice]
        payload.update(extra)
        return b"data: " + json.dumps(payload, ensure_ascii=False).encode() + b"\n\n"

    def _usage(self, body: dict[str, Any], reply: Reply, pieces: list[str]) -> dict[str, Any]:
        if reply.usage is not None:
            return reply.usage
        prompt = _estimate_tokens(body)
        thoughts = len(reply.thoughts())
        usage: dict[str, Any] = {
            "prompt_tokens": prompt,
            "completion_tokens": len(pieces) + thoughts,
            "total_tokens": prompt + len(pieces) + thoughts,
        }
        if thoughts:
            usage["completion_tokens_details"] = {"reasoning_tokens": thoughts}
        return usage

    async def _complete(self, body: dict[str, Any], reply: Reply) -> web.Response:
        if reply.first_token_delay:
            await asyncio.sleep(reply.first_token_delay)
        pieces = reply.pieces()
        message = {"role": "assistant", "content": "".join(pieces)}
        if reply.thoughts():
            message["reasoning_content"] = "".join(reply.thoughts())
        completion: dict[str, Any] = {
            "id": str(next(self._ids)),
            "created": int(time.time()),
            "model": body.get("model"),
            "request_id": str(next(self._ids)),
            "choices": [{"index": 0, "finish_reason": reply.finish_reason, "message": message}],
            "usage": self._usage(body, reply, pieces),
        }
        if reply.web_search is not None:
            completion["web_search"] = reply.web_search
        return web.json_response(completion)

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
        if reply.headers_delay:
            await asyncio.sleep(reply.headers_delay)
        await response.prepare(request)
        if reply.first_token_delay:
            await asyncio.sleep(reply.first_token_delay)
        if reply.web_search is not None and reply.web_search_at == "first":
            await response.write(self._chunk(rid, model, None, web_search=reply.web_search))
        await self._reason(response, rid, model, reply, timing)
        n = len(pieces)
        for i in range(n + 1):
            if i and i < n and reply.token_interval:
                await asyncio.sleep(reply.token_interval)
            for after, action in (
                (reply.disconnect_after, "disconnect"),
                (reply.stall_after, "stall"),
                (reply.stream_error_after, "error"),
                (reply.end_early_after, "end"),
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
        if reply.web_search is not None and reply.web_search_at == "last":
            last += self._chunk(rid, model, None, web_search=reply.web_search)
        await response.write(last + (b"data: [DONE]\n\n" if reply.send_done else b""))
        timing["last_chunk_at"] = time.time()
        timing["pieces"] = n
        # Leave before the terminator: once the client has it, it may already send its
        # next request, which must not find this one still counted as in flight.
        flight.leave(completed=True)
        await response.write_eof()
        return response

    async def _reason(
        self,
        response: web.StreamResponse,
        rid: str,
        model: str,
        reply: Reply,
        timing: dict[str, Any],
    ) -> None:
        """The reasoning pieces, evenly over reply.reasoning_seconds."""
        thoughts = reply.thoughts()
        if not thoughts:
            return
        loop = asyncio.get_running_loop()
        started = loop.time()
        step = reply.reasoning_seconds / len(thoughts)
        for i, thought in enumerate(thoughts):
            await asyncio.sleep(max(0.0, started + i * step - loop.time()))
            delta = {"role": "assistant", "reasoning_content": thought}
            await response.write(self._chunk(rid, model, delta))
            timing.setdefault("first_reasoning_at", time.time())
        await asyncio.sleep(max(0.0, started + reply.reasoning_seconds - loop.time()))

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
        elif action == "end":
            # A clean end of the body (chunked terminator) that never said the answer ended.
            if reply.end_pause:
                await asyncio.sleep(reply.end_pause)
            await response.write_eof()
        else:
            error = {"code": reply.code or "500", "message": reply.message}
            await response.write(b"data: " + json.dumps({"error": error}).encode() + b"\n\n")
            await response.write_eof()


async def _serve(args: argparse.Namespace) -> None:
    pieces = [f"tok{i} " for i in range(args.tokens)]
    # a thinking model: reasoning pieces spread over --reasoning-ms before the first token
    thoughts = [f"why{i} " for i in range(args.reasoning_tokens)] if args.reasoning_ms > 0 else []
    default = Reply(
        tokens=pieces,
        first_token_delay=args.first_token_ms / 1000,
        token_interval=1 / args.tokens_per_second if args.tokens_per_second > 0 else 0.0,
        reasoning_pieces=thoughts,
        reasoning_seconds=args.reasoning_ms / 1000,
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
    parser.add_argument(
        "--reasoning-ms",
        type=float,
        default=0.0,
        help="reason this long (delta.reasoning_content) after --first-token-ms, then answer",
    )
    parser.add_argument("--reasoning-tokens", type=int, default=20, help="reasoning pieces")
    parser.add_argument("--no-validate", action="store_true")
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args))


if __name__ == "__main__":
    main()
