"""Streaming GLM answers into asyncio: the zhipuai SDK sends, the event loop reads.

The SDK is synchronous. It still builds, authenticates and sends every request and maps
HTTP errors to its exceptions, but its httpx client does the HTTP through
``bot.llm.transport``, with aiohttp on the event loop, so the SDK call never waits on the
network and is made on the loop itself (about 0.3 ms of Python per request; see the
transport for why not in threads). The SSE body is then read on the loop
(``bot.llm.generation``): no thread wakes per token, and each read takes all that has
arrived, yielded as one event per kind (a slow or busy consumer gets merged text).

Cancelling the consumer (task cancellation, ``aclose()`` of the iterator, or ``break``
once the generator is dropped) closes the HTTP connection at once, also while the
response headers are still awaited. Prefer ``contextlib.aclosing(client.stream(...))``
when a reference to the iterator outlives the loop over it. One client serves one event
loop (the first it streams on).
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
from collections.abc import AsyncGenerator, Iterator
from typing import Any

import httpx
import zhipuai

from bot.llm.errors import ErrorKind, GLMError, retry_policy
from bot.llm.events import StreamEnd, StreamEvent, Usage
from bot.llm.generation import Delta, Generation
from bot.llm.images import Picture, fetch_picture, request_picture
from bot.llm.request import GLMOptions, Messages, build_request
from bot.llm.transcription import transcribe_once, transcription_call
from bot.llm.transport import AiohttpTransport

__all__ = ["GLMClient"]

logger = logging.getLogger(__name__)


def _outcome(generation: Generation) -> StreamEnd:
    """The end of a stream that ended well; finish reasons that mean failure raise."""
    reason = generation.finish_reason
    if reason == "network_error":
        raise GLMError(ErrorKind.NETWORK, "generation failed (finish_reason=network_error)")
    if reason == "model_context_window_exceeded":
        raise GLMError(ErrorKind.PROMPT_TOO_LONG, "finish_reason=model_context_window_exceeded")
    usage = generation.usage
    return StreamEnd(reason, Usage(*usage) if usage is not None else None)


class GLMClient:
    """Concurrency-bounded streaming chat completions; see the module docstring.

    ``retry_attempts`` counts attempts (1 means no retry); no retry starts once
    ``retry_max_seconds`` have passed since the call began. Retries happen only for
    retryable kinds and only before any event was yielded, and a retry is cut to what is
    left of ``retry_max_seconds`` counted from the call, so
    the wait for a first event stays within the larger of one attempt's bound and the
    budget. Connecting, sending and the response headers together are bounded by
    ``connect_timeout + read_timeout``, the first chunk after the headers by the smaller
    of ``read_timeout`` and ``stall_timeout``, every later gap between chunks by
    ``stall_timeout``.
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
        self._read_timeout = read_timeout
        self._stall_timeout = stall_timeout
        self._retry_attempts = max(1, retry_attempts)
        self._retry_max_seconds = retry_max_seconds
        self._retry_initial_wait = retry_initial_wait
        self._transport = AiohttpTransport(
            max_connections=max_concurrent,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
        )
        timeout = httpx.Timeout(
            connect=connect_timeout, read=read_timeout, write=connect_timeout, pool=connect_timeout
        )
        # trust_env=False: httpx would mount its own transports for proxies from the
        # environment and route around ours; aiohttp honours those proxies instead.
        self._http = httpx.Client(transport=self._transport, timeout=timeout, trust_env=False)
        # max_retries=0: the SDK would retry even "account in arrears"; we own the policy.
        self._sdk = zhipuai.ZhipuAI(
            api_key=api_key,
            base_url=base_url,
            timeout=timeout,
            max_retries=0,
            http_client=self._http,
        )
        self._slots = asyncio.Semaphore(max_concurrent)
        self._generations: set[Generation] = set()
        self._closed = False

    @property
    def in_flight(self) -> int:
        """Generations holding a slot now."""
        return len(self._generations)

    async def stream(
        self, messages: Messages, options: GLMOptions
    ) -> AsyncGenerator[StreamEvent, None]:
        """ReasoningDelta, SearchResults and TextDelta events as they arrive, then one
        StreamEnd; raises GLMError on failure.

        A stream cut short (its body ended without ``[DONE]`` or a finish_reason, or it
        finished with ``network_error``) raises GLMError(NETWORK): retried when nothing
        was yielded yet, else the answer was interrupted. ``model_context_window_exceeded``
        raises GLMError(PROMPT_TOO_LONG). ``sensitive`` and ``length`` end in StreamEnd.
        """
        request = build_request(messages, options)
        retrying = retry_policy(
            attempts=self._retry_attempts,
            max_seconds=self._retry_max_seconds,
            initial_wait=self._retry_initial_wait,
            log=logger,
        )
        give_up_at = asyncio.get_running_loop().time() + self._retry_max_seconds
        opened: tuple[Generation, list[Delta] | None] = await retrying(
            self._open, request, give_up_at, itertools.count()
        )
        # Not kept for the seconds the answer streams: the request holds a copy of the
        # whole prompt, and a thousand answers stream at once.
        del request, retrying
        generation, events = opened
        try:
            while events is not None:
                for event in events:
                    yield event
                events = await generation.next_events()
            yield _outcome(generation)
            await generation.finish()
        finally:
            generation.close()

    async def transcribe(
        self, audio: bytes, *, model: str, filename: str = "speech.wav", mime: str = "audio/wav"
    ) -> str:
        """The text spoken in ``audio`` (Zhipu takes .wav or .mp3); raises GLMError.

        Retried like a stream's start, within a concurrency slot of its own; see
        ``bot.llm.transcription`` for how it is sent."""
        create = transcription_call(self._sdk, audio, model=model, filename=filename, mime=mime)
        retrying = retry_policy(
            attempts=self._retry_attempts,
            max_seconds=self._retry_max_seconds,
            initial_wait=self._retry_initial_wait,
            log=logger,
        )
        give_up_at = asyncio.get_running_loop().time() + self._retry_max_seconds
        tries = itertools.count()

        async def attempt() -> str:
            until = give_up_at if next(tries) else None
            await self._take_slot()
            try:
                return await transcribe_once(
                    create, secret=self._api_key, read_timeout=self._read_timeout, until=until
                )
            finally:
                self._slots.release()

        text: str = await retrying(attempt)
        return text

    async def draw(self, prompt: str, *, model: str, size: str | None = None) -> Picture:
        """One picture drawn by an image model, fetched; raises GLMError.

        It holds one of the ``max_concurrent`` slots (an upstream connection for the
        seconds a picture takes, as an answer does) and follows the same retry policy;
        cancelling it closes the connection."""
        if self._closed:
            raise RuntimeError("GLMClient is closed")
        retrying = retry_policy(
            attempts=self._retry_attempts,
            max_seconds=self._retry_max_seconds,
            initial_wait=self._retry_initial_wait,
            log=logger,
        )
        async with self._slots:
            self._transport.open()
            url: str = await retrying(
                request_picture,
                self._sdk,
                prompt,
                model=model,
                size=size,
                secret=self._api_key,
                read_timeout=self._read_timeout,
            )
            return await fetch_picture(self._transport, url, timeout=self._read_timeout)

    async def aclose(self) -> None:
        """Fail running generations and close the HTTP connections."""
        if self._closed:
            return
        self._closed = True
        for generation in list(self._generations):
            generation.close(GLMError(ErrorKind.UNKNOWN, "the GLM client was closed"))
        self._http.close()
        await self._transport.aclose()

    # internals

    async def _open(
        self, request: dict[str, Any], give_up_at: float, tries: Iterator[int]
    ) -> tuple[Generation, list[Delta] | None]:
        """One attempt, up to the first events (or the end): everything retry may redo.

        The first attempt has its own timeouts; a retry only what the budget left."""
        until = give_up_at if next(tries) else None
        generation = await self._begin()
        try:
            create = functools.partial(self._sdk.chat.completions.create, **request)
            await generation.start(create, until)
            events = await generation.next_events()
            if events is None and generation.finish_reason == "network_error":
                raise GLMError(ErrorKind.NETWORK, "generation failed (finish_reason=network_error)")
            return generation, events
        except BaseException:
            generation.close()
            raise

    async def _take_slot(self) -> None:
        """Take a slot (waiting for one), the transport open on this loop."""
        if self._closed:
            raise RuntimeError("GLMClient is closed")
        await self._slots.acquire()
        try:
            if self._closed:
                raise RuntimeError("GLMClient is closed")
            loop = self._transport.loop
            if loop is not None and loop is not asyncio.get_running_loop():
                raise RuntimeError("GLMClient is bound to another event loop")
            self._transport.open()
        except BaseException:
            self._slots.release()
            raise

    async def _begin(self) -> Generation:
        """Take a slot (waiting for one) for a new generation."""
        await self._take_slot()
        try:
            generation = Generation(
                secret=self._api_key,
                read_timeout=self._read_timeout,
                stall_timeout=self._stall_timeout,
                on_release=self._release,
            )
        except BaseException:
            self._slots.release()
            raise
        self._generations.add(generation)
        return generation

    def _release(self, generation: Generation) -> None:
        self._generations.discard(generation)
        self._slots.release()
