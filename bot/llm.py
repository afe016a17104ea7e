"""Streaming GLM answers into asyncio through the synchronous zhipuai SDK.

Every generation runs in a thread of a dedicated pool (asyncio's default executor would
cap concurrent answers at a handful) and hands its text to the event loop through a
per-stream buffer. Workers wake the loop only when it is not already due to deliver
(see ``_Deliveries``), and a consumer takes everything buffered at once, so under load
many tokens are merged into one ``TextDelta`` instead of costing a loop wake-up each.

Cancelling the consumer (task cancellation, ``aclose()`` of the iterator, or ``break``
once the generator is dropped) shuts the HTTP connection down at once, which also wakes
the worker blocked in ``recv``. Prefer ``contextlib.aclosing(client.stream(...))`` when a
reference to the iterator outlives the loop over it.

Known limits:
- A cancellation that comes before the response headers arrived cannot reach the socket
  (httpx exposes it only with the response); the consumer is released at once, and the
  worker closes the connection when the headers arrive or the read timeout ends.
- Reading a token through httpx and h11 costs its worker about 0.2 ms of CPU (measured
  in the development sandbox), all under the one GIL, so one process streams a few
  thousand tokens a second. Past that, answers slow down and the event loop competes
  with every busy worker for the GIL.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import logging
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import zhipuai

from bot.llm_errors import (
    BUSINESS_CODES,
    RETRYABLE_KINDS,
    ErrorKind,
    GLMError,
    error_from_exception,
    error_from_stream_event,
    retry_policy,
)

__all__ = [
    "BUSINESS_CODES",
    "RETRYABLE_KINDS",
    "ErrorKind",
    "GLMClient",
    "GLMError",
    "GLMOptions",
    "StreamEnd",
    "StreamEvent",
    "TextDelta",
    "Usage",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


@dataclass(frozen=True, slots=True)
class TextDelta:
    """A piece of answer text (``delta.content``; reasoning is not shown)."""

    text: str


@dataclass(frozen=True, slots=True)
class StreamEnd:
    # "stop" | "length" | "sensitive" | "network_error" | "model_context_window_exceeded"
    # | "tool_calls" | None (the stream ended without saying why)
    finish_reason: str | None
    usage: Usage | None


StreamEvent = TextDelta | StreamEnd


@dataclass(frozen=True)
class GLMOptions:
    model: str
    max_tokens: int
    temperature: float
    # Sent only when Zhipu would accept it (6 to 128 characters).
    user_id: str | None = None


def _sse_events(lines: Iterator[str]) -> Iterator[tuple[str | None, str]]:
    """(event, data) of each Server-Sent Event, read the way the SDK's parser reads them."""
    event: str | None = None
    data: list[str] = []
    for line in lines:
        if not line:
            if data:
                yield event, "\n".join(data)
            event, data = None, []
            continue
        if line.startswith(":"):
            continue
        field, _, value = line.partition(":")
        if value.startswith(" "):
            value = value[1:]
        if field == "data":
            data.append(value)
        elif field == "event":
            event = value
    if data:
        yield event, "\n".join(data)


def _parse_chunk(chunk: object) -> tuple[str, str | None, Usage | None]:
    """(text, finish_reason, usage) of one chunk as decoded JSON (or of a whole
    completion, whose choices hold a ``message`` instead of a ``delta``); unknown shapes
    are empty."""
    if not isinstance(chunk, dict):
        return "", None, None
    text = ""
    finish_reason: str | None = None
    choices = chunk.get("choices")
    for choice in choices if isinstance(choices, list) else ():
        if not isinstance(choice, dict):
            continue
        delta = choice.get("delta") or choice.get("message")
        content = delta.get("content") if isinstance(delta, dict) else None
        if isinstance(content, str):
            text += content
        reason = choice.get("finish_reason")
        if isinstance(reason, str) and reason:
            finish_reason = reason
    usage = None
    raw = chunk.get("usage")
    if isinstance(raw, dict):
        with contextlib.suppress(TypeError, ValueError):
            usage = Usage(
                prompt_tokens=int(raw.get("prompt_tokens") or 0),
                completion_tokens=int(raw.get("completion_tokens") or 0),
                total_tokens=int(raw.get("total_tokens") or 0),
            )
    return text, finish_reason, usage


def _shutdown_socket(response: httpx.Response) -> bool:
    """Shut the response's TCP connection down; False if its socket is not reachable.

    close() from another thread would not do: a thread blocked in poll/recv keeps the
    file alive, so no FIN is sent and the reader is not woken until its read timeout.
    shutdown() does both at once.
    """
    stream = response.extensions.get("network_stream")
    sock = stream.get_extra_info("socket") if stream is not None else None
    if not isinstance(sock, socket.socket):
        return False
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    return True


# Longest a piece of text waits for the next delivery to the event loop while traffic
# flows; far below Telegram's edit interval, so nobody sees it.
_DELIVERY_TICK = 0.05


class _Deliveries:
    """Wakes the consumers of every stream on one event loop, at most once per tick.

    Each call_soon_threadsafe is a self-pipe write plus a loop wake-up; once per token of
    every stream that would be 40,000 a second at 1,000 streams. Here the first text after
    a quiet spell wakes the loop at once; while text keeps coming it is handed over by one
    timer per tick, each consumer getting everything buffered for it as one TextDelta.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, tick: float) -> None:
        self.loop = loop
        self._tick = tick
        self._lock = threading.Lock()
        self._ready: list[asyncio.Event] = []
        self._armed = False

    def notify(self, event: asyncio.Event) -> None:
        """Any thread: set ``event`` on the loop soon."""
        with self._lock:
            self._ready.append(event)
            if self._armed:
                return
            self._armed = True
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
            self.loop.call_soon_threadsafe(self._deliver)

    def _deliver(self) -> None:
        with self._lock:
            ready, self._ready = self._ready, []
            if not ready:
                self._armed = False
                return
        for event in ready:
            event.set()
        self.loop.call_later(self._tick, self._deliver)


class _Call:
    """One generation: the state its worker thread shares with the event loop."""

    def __init__(
        self, deliveries: _Deliveries, *, stall_timeout: float, first_chunk_budget: float
    ) -> None:
        self._deliveries = deliveries
        self.loop = deliveries.loop
        self.future: concurrent.futures.Future[None] | None = None
        self.cancel_requested = threading.Event()
        self._stall_timeout = stall_timeout
        self._first_chunk_deadline = time.monotonic() + first_chunk_budget
        self._wakeup = asyncio.Event()
        self._lock = threading.Lock()
        # guarded by _lock
        self._pieces: list[str] = []
        self._wake_pending = False
        self._got_chunk = False
        self._last_chunk_at = 0.0
        self._finish_reason: str | None = None
        self._usage: Usage | None = None
        self._error: GLMError | None = None
        self._done = False
        self._response: httpx.Response | None = None

    # worker thread side

    @property
    def got_chunk(self) -> bool:
        return self._got_chunk

    def attach(self, response: httpx.Response) -> bool:
        """Make the response abortable from the loop; False if already cancelled."""
        with self._lock:
            if self.cancel_requested.is_set():
                return False
            self._response = response
            return True

    def detach(self) -> None:
        # Under the lock, so abort() never shuts down a connection that is back in the
        # pool and serving another stream.
        with self._lock:
            self._response = None

    def feed(self, text: str, finish_reason: str | None, usage: Usage | None) -> None:
        wake = False
        with self._lock:
            self._got_chunk = True
            self._last_chunk_at = time.monotonic()
            if finish_reason is not None:
                self._finish_reason = finish_reason
            if usage is not None:
                self._usage = usage
            if text:
                self._pieces.append(text)
                if not self._wake_pending:
                    self._wake_pending = wake = True
        if wake:
            self._deliveries.notify(self._wakeup)

    def fail(self, error: GLMError) -> None:
        with self._lock:
            self._error = error

    def finish(self, on_exit: Callable[[_Call], None]) -> None:
        with self._lock:
            self._done = True
        self._call_soon(self._exited, on_exit)

    def _call_soon(self, callback: Callable[..., object], *args: object) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
            self.loop.call_soon_threadsafe(callback, *args)

    def _exited(self, on_exit: Callable[[_Call], None]) -> None:
        self._wakeup.set()
        on_exit(self)

    # event loop side

    def abort(self, error: GLMError | None = None) -> None:
        """Stop the worker and drop the connection now. Idempotent, never blocks.

        ``error`` is what a consumer still waiting gets (when the stream is aborted from
        elsewhere); without it the worker's silent exit would look like a normal end.
        """
        self.cancel_requested.set()
        with self._lock:
            if error is not None and self._error is None and not self._done:
                self._error = error
            response = self._response
            if response is not None and not _shutdown_socket(response):
                response.close()

    def outcome(self) -> StreamEnd:
        with self._lock:
            return StreamEnd(self._finish_reason, self._usage)

    async def next_text(self) -> str | None:
        """All text buffered since the last call, waiting for some; None at the end."""
        while True:
            self._wakeup.clear()
            with self._lock:
                self._wake_pending = False
                pieces = self._pieces
                if pieces:
                    self._pieces = []
                error, done = self._error, self._done
                got_chunk, last_chunk_at = self._got_chunk, self._last_chunk_at
            if pieces:
                return "".join(pieces)
            if error is not None:
                raise error
            if done:
                return None
            # Deadlines are checked against the worker's clock of the last chunk, so a
            # consumer that was busy elsewhere never mistakes its own delay for a stall.
            if got_chunk:
                remaining = last_chunk_at + self._stall_timeout - time.monotonic()
            else:
                remaining = self._first_chunk_deadline - time.monotonic()
            if remaining <= 0:
                self.abort()
                if got_chunk:
                    raise GLMError(
                        ErrorKind.STALLED, f"no chunk for {self._stall_timeout:g}s mid-stream"
                    )
                raise GLMError(ErrorKind.TIMEOUT, "the answer did not start in time")
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(remaining):
                    await self._wakeup.wait()


async def _in_own_thread(fn: Callable[..., None], **kwargs: Any) -> None:
    """Run a one-off blocking ``fn`` without borrowing any pool's thread."""
    loop = asyncio.get_running_loop()
    finished: asyncio.Future[None] = loop.create_future()

    def settle(error: BaseException | None) -> None:
        if finished.done():
            return
        if error is None:
            finished.set_result(None)
        else:
            finished.set_exception(error)

    def run() -> None:
        error: BaseException | None = None
        try:
            fn(**kwargs)
        except BaseException as exc:
            error = exc
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits any more
            loop.call_soon_threadsafe(settle, error)

    threading.Thread(target=run, name="glm-shutdown").start()
    await finished


class GLMClient:
    """Concurrency-bounded streaming chat completions; see the module docstring.

    ``retry_attempts`` counts attempts (1 means no retry); ``retry_max_seconds`` bounds
    the total time slept between attempts (each attempt is bounded by the timeouts).
    Retries happen only for retryable kinds and only before any text was yielded.
    """

    def __init__(
        self,
        *,
        api_key: str,
        base_url: str,
        max_concurrent: int,
        connect_timeout: float,
        read_timeout: float,
        stall_timeout: float,
        retry_attempts: int,
        retry_max_seconds: float,
        retry_initial_wait: float = 0.5,
    ) -> None:
        if max_concurrent < 1:
            raise ValueError("max_concurrent must be at least 1")
        self._api_key = api_key
        self._stall_timeout = stall_timeout
        # A safety net behind httpx's own timeouts (pool, connect, write, then read for
        # the first byte), for a server that trickles keep-alive bytes but no chunk.
        self._first_chunk_budget = 3 * connect_timeout + read_timeout + 1.0
        self._retry_attempts = max(1, retry_attempts)
        self._retry_max_seconds = retry_max_seconds
        self._retry_initial_wait = retry_initial_wait
        timeout = httpx.Timeout(
            connect=connect_timeout, read=read_timeout, write=connect_timeout, pool=connect_timeout
        )
        # One connection per possible generation, so no request ever waits for the pool.
        self._http = httpx.Client(
            limits=httpx.Limits(
                max_connections=max_concurrent, max_keepalive_connections=max_concurrent
            ),
            timeout=timeout,
        )
        # max_retries=0: the SDK would retry even "account in arrears"; we own the policy.
        self._sdk = zhipuai.ZhipuAI(
            api_key=api_key,
            base_url=base_url,
            timeout=timeout,
            max_retries=0,
            http_client=self._http,
        )
        # Thread stacks are left at the platform default: threading.stack_size() is
        # process-wide, and the default stack is only reserved address space; a worker
        # touches a few dozen KiB of it, so 1,000 idle workers cost little resident memory.
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=max_concurrent, thread_name_prefix="glm"
        )
        self._slots = asyncio.Semaphore(max_concurrent)
        self._calls: set[_Call] = set()
        self._deliveries: _Deliveries | None = None
        self._closed = False

    @property
    def in_flight(self) -> int:
        """Generations holding a worker now (a cancelled one until its worker exits)."""
        return len(self._calls)

    async def stream(
        self, messages: list[dict[str, str]], options: GLMOptions
    ) -> AsyncIterator[StreamEvent]:
        """TextDelta pieces in order, then one StreamEnd; raises GLMError on failure.

        A ``network_error`` finish before any text is raised as GLMError(NETWORK) (and
        retried); after text it is reported in StreamEnd like ``sensitive`` or ``length``.
        """
        request = self._request(messages, options)
        retrying = retry_policy(
            attempts=self._retry_attempts,
            max_seconds=self._retry_max_seconds,
            initial_wait=self._retry_initial_wait,
            log=logger,
        )
        opened: tuple[_Call, str | None] = await retrying(self._open, request)
        call, text = opened
        try:
            while text is not None:
                yield TextDelta(text)
                text = await call.next_text()
            yield call.outcome()
        finally:
            call.abort()

    async def aclose(self) -> None:
        """Abort running generations, stop the workers and close the HTTP pool."""
        if self._closed:
            return
        self._closed = True
        calls = list(self._calls)
        for call in calls:
            call.abort(GLMError(ErrorKind.UNKNOWN, "the GLM client was closed"))
        waiting = [asyncio.wrap_future(call.future) for call in calls if call.future is not None]
        pending: set[asyncio.Future[None]] = set()
        if waiting:
            # Bounded: a worker still waiting for response headers cannot be interrupted.
            _, pending = await asyncio.wait(waiting, timeout=self._first_chunk_budget)
            for future in pending:
                future.cancel()
            if pending:
                logger.warning("GLMClient closed with %d worker(s) still running", len(pending))
        await _in_own_thread(self._shut_down, wait=not pending)

    def _shut_down(self, *, wait: bool) -> None:
        # Joining up to max_concurrent threads takes a while (~0.2 s for 1,000): it runs
        # in a thread of its own so the loop keeps serving whatever else is shutting down.
        self._executor.shutdown(wait=wait, cancel_futures=True)
        self._http.close()

    # internals

    def _request(self, messages: list[dict[str, str]], options: GLMOptions) -> dict[str, Any]:
        request: dict[str, Any] = {
            "model": options.model,
            # copies: the SDK rewrites message dicts in place (image data prefixes)
            "messages": [dict(message) for message in messages],
            "stream": True,
            "max_tokens": options.max_tokens,
            "temperature": options.temperature,
        }
        if options.user_id is not None and 6 <= len(options.user_id) <= 128:
            request["user_id"] = options.user_id
        return request

    async def _open(self, request: dict[str, Any]) -> tuple[_Call, str | None]:
        """One attempt, up to the first text (or the end): everything retry may redo."""
        call = await self._start(request)
        try:
            text = await call.next_text()
            if text is None and call.outcome().finish_reason == "network_error":
                raise GLMError(ErrorKind.NETWORK, "generation failed (finish_reason=network_error)")
            return call, text
        except BaseException:
            call.abort()
            raise

    async def _start(self, request: dict[str, Any]) -> _Call:
        if self._closed:
            raise RuntimeError("GLMClient is closed")
        await self._slots.acquire()
        try:
            if self._closed:
                raise RuntimeError("GLMClient is closed")
            loop = asyncio.get_running_loop()
            if self._deliveries is None or self._deliveries.loop is not loop:
                self._deliveries = _Deliveries(loop, _DELIVERY_TICK)
            call = _Call(
                self._deliveries,
                stall_timeout=self._stall_timeout,
                first_chunk_budget=self._first_chunk_budget,
            )
            call.future = self._executor.submit(self._work, call, request)
        except BaseException:
            self._slots.release()
            raise
        self._calls.add(call)
        return call

    def _worker_exited(self, call: _Call) -> None:
        # The slot is held until the thread is really free, not just until the consumer
        # left, so the pool never has more work than threads and connections.
        if call in self._calls:
            self._calls.remove(call)
            self._slots.release()

    def _work(self, call: _Call, request: dict[str, Any]) -> None:
        """Worker thread: run one request and feed its chunks to ``call``."""
        response: httpx.Response | None = None
        try:
            if call.cancel_requested.is_set():
                return
            stream = self._sdk.chat.completions.create(**request)
            response = stream.response
            if not call.attach(response):
                return
            self._read_body(call, response)
        except Exception as exc:
            if not call.cancel_requested.is_set():
                call.fail(
                    error_from_exception(
                        exc, secret=self._api_key, after_first_chunk=call.got_chunk
                    )
                )
        finally:
            call.detach()
            if response is not None:
                with contextlib.suppress(Exception):
                    response.close()
            call.finish(self._worker_exited)

    def _read_body(self, call: _Call, response: httpx.Response) -> None:
        """Worker thread: feed the answer to ``call``; raises on an error in the body.

        The SDK only sends the request and raises its HTTP errors. Its chunk iterator
        builds every chunk through pydantic TypeAdapters, about 1.7 ms of CPU per token
        (measured), which 1,000 streams at 40 tokens/s could never afford; json.loads of
        the same SSE data is a small fraction of that. The parsing follows the SDK's.
        """
        if response.headers.get("content-type", "").startswith("application/json"):
            # a whole completion (or an error) where a stream was asked for
            response.read()
            completion = json.loads(response.text)
            if isinstance(completion, dict) and completion.get("error"):
                raise error_from_stream_event(completion, secret=self._api_key)
            call.feed(*_parse_chunk(completion))
            return
        lines = response.iter_lines()
        for event, data in _sse_events(lines):
            if call.cancel_requested.is_set():
                return
            if data.startswith("[DONE]"):
                # read the terminator too, so the connection goes back to the pool
                for _ in lines:
                    pass
                return
            chunk = json.loads(data)
            if event == "error" or (isinstance(chunk, dict) and chunk.get("error")):
                raise error_from_stream_event(chunk, secret=self._api_key)
            call.feed(*_parse_chunk(chunk))
        if not call.got_chunk and not call.cancel_requested.is_set():
            # a cleanly ended body without a single chunk: a server glitch, safe to retry
            raise GLMError(ErrorKind.SERVER, "the response held no answer")
