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
from bot.llm.events import ReasoningDelta, SearchResults, TextDelta
from bot.llm.sse import SSEDecoder, parse_chunk
from bot.llm.transport import Exchange, to_httpx_error

__all__ = ["Delta", "Generation"]

Delta = TextDelta | ReasoningDelta | SearchResults

# How long a finished answer waits for the end of its body, so that the connection goes
# back to the pool instead of being closed (the end normally follows [DONE] at once).
_DRAIN_TIMEOUT = 1.0


class _Batch:
    """The events of one read, text and reasoning of consecutive chunks merged."""

    __slots__ = ("_events", "_kind", "_pieces")

    def __init__(self) -> None:
        self._events: list[Delta] = []
        self._kind: type[TextDelta] | type[ReasoningDelta] = TextDelta
        self._pieces: list[str] = []

    def text(self, kind: type[TextDelta] | type[ReasoningDelta], piece: str) -> None:
        if kind is not self._kind:
            self._flush()
            self._kind = kind
        self._pieces.append(piece)

    def add(self, event: SearchResults) -> None:
        self._flush()
        self._events.append(event)

    def events(self) -> list[Delta]:
        self._flush()
        return self._events

    def _flush(self) -> None:
        if self._pieces:
            self._events.append(self._kind("".join(self._pieces)))
            self._pieces = []


class Generation:
    """One attempt: ``start()``, ``next_events()`` until None, ``finish()``; ``close()``
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
        self._usage: tuple[int, int, int, int] | None = None
        # raised once the text that came before it has been taken
        self._error: GLMError | None = None
        self._done = False
        self._closed = False
        self._closed_error: GLMError | None = None
        self._released = False

    async def start(self, create: Callable[[], Any], until: float | None = None) -> None:
        """Have the SDK send the request; return as soon as the headers of a successful
        response are in (else raise the SDK's error, as GLMError).

        ``until`` (loop time) cuts the wait for the headers and for the first chunk
        short (a retry within what is left of the retry budget)."""
        try:
            self._exchange.call(create)
            async with asyncio.timeout_at(until):
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
        except TimeoutError:
            self._exchange.abort()
            raise GLMError(ErrorKind.TIMEOUT, "no response within the retry budget") from None
        except Exception as exc:
            error = error_from_exception(exc, secret=self._secret, after_first_chunk=False)
            raise error from error.__cause__
        if self._closed:
            outcome.close()
            raise self._closed_error or GLMError(ErrorKind.UNKNOWN, "the request was dropped")
        self._response = outcome
        # The first chunk may take as long as a read, but no longer than a stall: a
        # server that sends headers and then nothing is a stall (issue 14.2).
        first = self._loop.time() + min(self._read_timeout, self._stall_timeout)
        self._deadline = first if until is None else min(first, until)

    async def next_events(self) -> list[Delta] | None:
        """All that arrived since the last call, waiting for some; None at the end.

        A body that ends without ``[DONE]`` and without a finish_reason is an answer cut
        short (GLMError NETWORK), not a complete one."""
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
                    return self._take_completion(await response.read()) or None
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
                events = self._take(self._decoder.feed(data))
            else:
                events = self._take(self._decoder.flush())
                if self._error is None and not self._done:
                    self._error = self._cut_short()
                self._done = True
            if events:
                return events

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
    def usage(self) -> tuple[int, int, int, int] | None:
        """(prompt, completion, total, reasoning) tokens, when the answer said."""
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

    def _cut_short(self) -> GLMError | None:
        """What a body that ended before [DONE] means."""
        if not self._got_chunk:
            # a cleanly ended body without a single chunk: a server glitch
            return GLMError(ErrorKind.SERVER, "the response held no answer")
        if self._finish_reason is None:
            return GLMError(ErrorKind.NETWORK, "the stream ended before the answer did")
        return None  # said why it finished; only [DONE] was missing

    def _timed_out(self) -> GLMError:
        if self._got_chunk:
            return GLMError(ErrorKind.STALLED, f"no chunk for {self._stall_timeout:g}s mid-stream")
        return GLMError(ErrorKind.TIMEOUT, "the answer did not start in time")

    def _take(self, events: list[tuple[str | None, bytes]]) -> list[Delta]:
        """The deltas of these events; notes the end, an error, finish_reason and usage."""
        batch = _Batch()
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
            self._note(chunk, batch)
            noted = True
        if noted:
            self._deadline = self._loop.time() + self._stall_timeout
        return batch.events()

    def _take_completion(self, body: bytes) -> list[Delta]:
        self._done = True
        try:
            completion = json.loads(body)
        except ValueError:
            raise GLMError(ErrorKind.UNKNOWN, "malformed response") from None
        if isinstance(completion, dict) and completion.get("error"):
            raise error_from_stream_event(completion, secret=self._secret)
        batch = _Batch()
        self._note(completion, batch)
        return batch.events()

    def _note(self, chunk: object, batch: _Batch) -> None:
        fields = parse_chunk(chunk)
        self._got_chunk = True
        if fields.search is not None:
            batch.add(SearchResults(fields.search))
        if fields.reasoning:
            batch.text(ReasoningDelta, fields.reasoning)
        if fields.text:
            batch.text(TextDelta, fields.text)
        if fields.finish_reason is not None:
            self._finish_reason = fields.finish_reason
        if fields.usage is not None:
            self._usage = fields.usage
