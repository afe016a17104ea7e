"""One attempt at a GLM answer: the SDK's request, sent without blocking, then the SSE
body read on the event loop (see ``bot.llm.transport`` for why)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from typing import Any

import aiohttp

from bot.llm.errors import ErrorKind, GLMError, error_from_exception, error_from_stream_event
from bot.llm.sse import SSEDecoder, parse_chunk
from bot.llm.transport import Exchange, to_httpx_error

__all__ = ["Generation"]

# How long a finished answer waits for the end of its body, so that the connection goes
# back to the pool instead of being closed (the end normally follows [DONE] at once).
_DRAIN_TIMEOUT = 1.0


class Generation:
    """One attempt: ``start()``, ``next_text()`` until None, ``finish()``; ``close()``
    always (it also frees the concurrency slot, through ``on_release``)."""

    def __init__(
        self,
        *,
        secret: str,
        read_timeout: float,
        stall_timeout: float,
        on_release: Callable[[Generation], None],
    ) -> None:
        self._loop = asyncio.get_running_loop()
        self._secret = secret
        self._read_timeout = read_timeout
        self._stall_timeout = stall_timeout
        self._on_release = on_release
        self._exchange = Exchange()
        self._response: aiohttp.ClientResponse | None = None
        self._decoder = SSEDecoder()
        # The time by which the next chunk must have arrived, enforced by one timer per
        # generation that moves along with it (a timeout around every read would cost
        # a timer per token).
        self._deadline = 0.0
        self._watchdog: asyncio.TimerHandle | None = None
        self._reading = False
        self._expired = False
        self._got_chunk = False
        self._finish_reason: str | None = None
        self._usage: tuple[int, int, int] | None = None
        # raised once the text that came before it has been taken
        self._error: GLMError | None = None
        self._done = False
        self._closed = False
        self._closed_error: GLMError | None = None
        self._released = False

    async def start(self, create: Callable[[], Any]) -> None:
        """Have the SDK send the request; return as soon as the headers of a successful
        response are in (else raise the SDK's error, as GLMError)."""
        try:
            self._exchange.call(create)
            outcome = await self._exchange.response_ready()
            if not isinstance(outcome, aiohttp.ClientResponse):
                if self._closed:
                    raise self._closed_error or GLMError(
                        ErrorKind.UNKNOWN, "the request was dropped"
                    )
                self._exchange.replay(outcome, create)
                raise GLMError(ErrorKind.UNKNOWN, "the SDK accepted a failed response")
        except (GLMError, asyncio.CancelledError):
            raise
        except Exception as exc:
            error = error_from_exception(exc, secret=self._secret, after_first_chunk=False)
            raise error from error.__cause__
        if self._closed:
            outcome.close()
            raise self._closed_error or GLMError(ErrorKind.UNKNOWN, "the request was dropped")
        self._response = outcome
        self._deadline = self._loop.time() + self._read_timeout

    async def next_text(self) -> str | None:
        """All text that arrived since the last call, waiting for some; None at the end."""
        response = self._response
        assert response is not None
        while True:
            if self._closed_error is not None:
                raise self._closed_error
            if self._error is not None:
                raise self._error
            if self._done:
                return None
            watchdog = self._watchdog
            if watchdog is None or watchdog.when() > self._deadline:
                # (the first chunk may bring the deadline closer: stall < read timeout)
                if watchdog is not None:
                    watchdog.cancel()
                self._watchdog = self._loop.call_at(self._deadline, self._watch)
            self._reading = True
            try:
                if response.content_type == "application/json":
                    # a whole completion (or an error) where a stream was asked for
                    return self._take_completion(await response.read())
                data = await response.content.readany()
            except (aiohttp.ClientError, OSError) as exc:
                if self._closed_error is not None:
                    raise self._closed_error from None
                if self._expired or isinstance(exc, TimeoutError):
                    raise self._timed_out() from None
                error = error_from_exception(
                    to_httpx_error(exc), secret=self._secret, after_first_chunk=self._got_chunk
                )
                raise error from error.__cause__
            finally:
                self._reading = False
            if data:
                text = self._take(self._decoder.feed(data))
            else:
                text = self._take(self._decoder.flush())
                if not self._got_chunk and self._error is None:
                    # a cleanly ended body without a single chunk: a server glitch
                    self._error = GLMError(ErrorKind.SERVER, "the response held no answer")
                self._done = True
            if text:
                return text

    def _watch(self) -> None:
        """The deadline timer: cut a read that waits past it (waking it with an error).

        A consumer busy elsewhere past the deadline is not a stall: the timer is armed
        again by its next read, which gets what arrived meanwhile.
        """
        self._watchdog = None
        if self._closed or not self._reading:
            return
        if self._loop.time() < self._deadline:
            self._watchdog = self._loop.call_at(self._deadline, self._watch)
            return
        self._expired = True
        if self._response is not None:
            self._response.close()

    @property
    def finish_reason(self) -> str | None:
        return self._finish_reason

    @property
    def usage(self) -> tuple[int, int, int] | None:
        """(prompt, completion, total) tokens, when the answer said."""
        return self._usage

    async def finish(self) -> None:
        """After the end: let the rest of the body arrive so the connection is reused."""
        response = self._response
        if response is None or response.content.is_eof():
            return
        with contextlib.suppress(TimeoutError, aiohttp.ClientError, OSError):
            async with asyncio.timeout(_DRAIN_TIMEOUT):
                while await response.content.readany():
                    pass

    def close(self, error: GLMError | None = None) -> None:
        """Drop the request or its connection now and free the slot.

        ``error`` is what a consumer still reading gets (when closed from elsewhere).
        Idempotent, never blocks.
        """
        if self._closed:
            return
        self._closed = True
        if error is not None and not self._done:
            self._closed_error = error
        self._exchange.abort()
        if self._response is not None:
            self._response.close()
        if self._watchdog is not None:
            self._watchdog.cancel()
            self._watchdog = None
        self._release()

    def _release(self) -> None:
        if not self._released:
            self._released = True
            self._on_release(self)

    def _timed_out(self) -> GLMError:
        if self._got_chunk:
            return GLMError(ErrorKind.STALLED, f"no chunk for {self._stall_timeout:g}s mid-stream")
        return GLMError(ErrorKind.TIMEOUT, "the answer did not start in time")

    def _take(self, events: list[tuple[str | None, bytes]]) -> str:
        """The text of these events; notes the end, an error, finish_reason and usage."""
        pieces: list[str] = []
        noted = False
        for event, data in events:
            if data.startswith(b"[DONE]"):
                self._done = True
                break
            try:
                # decoded first: json.loads would sniff the encoding of bytes every time
                chunk = json.loads(data.decode("utf-8"))
            except ValueError:  # UnicodeDecodeError included
                self._error = GLMError(ErrorKind.UNKNOWN, "malformed stream data")
                break
            if event == "error" or (isinstance(chunk, dict) and chunk.get("error")):
                self._error = error_from_stream_event(chunk, secret=self._secret)
                break
            self._note(chunk, pieces)
            noted = True
        if noted:
            self._deadline = self._loop.time() + self._stall_timeout
        return "".join(pieces)

    def _take_completion(self, body: bytes) -> str:
        self._done = True
        try:
            completion = json.loads(body)
        except ValueError:
            raise GLMError(ErrorKind.UNKNOWN, "malformed response") from None
        if isinstance(completion, dict) and completion.get("error"):
            raise error_from_stream_event(completion, secret=self._secret)
        pieces: list[str] = []
        self._note(completion, pieces)
        return "".join(pieces)

    def _note(self, chunk: object, pieces: list[str]) -> None:
        fields = parse_chunk(chunk)
        self._got_chunk = True
        if fields.text:
            pieces.append(fields.text)
        if fields.finish_reason is not None:
            self._finish_reason = fields.finish_reason
        if fields.usage is not None:
            self._usage = fields.usage
