"""Speech to text through the SDK's ``audio.transcriptions.create``, sent on the loop.

The request goes through the same transport as the chat streams (``bot.llm.transport``),
not a worker thread: the SDK builds the multipart body, the transport reads it whole (a
voice message of at most 30 s is under a megabyte as WAV) and aiohttp sends it, so
there is one HTTP stack, one connection pool and one proxy setting for every GLM call.

The answer is one JSON object the SDK must parse itself, not a stream read on the loop,
so the SDK is called twice: the first call sends and then gives up on a body it cannot
read yet (an error expected and dropped); once the loop holds the whole response, the
second call is answered with it (``Exchange.replay``) and parses it, or raises its own
error for a failed one, exactly as if it had waited.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from typing import Any

import aiohttp
import httpx
import zhipuai

from bot.llm.errors import ErrorKind, GLMError, error_from_exception
from bot.llm.transport import Exchange, read_whole

__all__ = ["transcribe_once", "transcription_call"]


def transcription_call(
    sdk: Any, audio: bytes, *, model: str, filename: str, mime: str
) -> Callable[[], Any]:
    """The SDK call that transcribes ``audio`` (a file of ``mime`` type, e.g. audio/wav)."""
    return functools.partial(
        sdk.audio.transcriptions.create, model=model, file=(filename, audio, mime)
    )


async def transcribe_once(
    create: Callable[[], Any], *, secret: str, read_timeout: float, until: float | None
) -> str:
    """One attempt: the transcript, or GLMError. ``until`` (loop time) cuts it short."""
    exchange = Exchange()
    try:
        exchange.call(create)
    except zhipuai.APIConnectionError:
        pass  # expected: the body is read on the loop, below
    except Exception as exc:
        error = error_from_exception(exc, secret=secret, after_first_chunk=False)
        raise error from error.__cause__
    try:
        async with asyncio.timeout_at(until):
            outcome = await _whole(exchange, read_timeout)
    except TimeoutError:
        raise GLMError(ErrorKind.TIMEOUT, "no transcription within the retry budget") from None
    finally:
        exchange.abort()  # nothing left to read; closes a response left open
    try:
        result = exchange.replay(outcome, create)
    except Exception as exc:
        error = error_from_exception(exc, secret=secret, after_first_chunk=False)
        raise error from error.__cause__
    text = getattr(result, "text", None)
    if not isinstance(text, str):
        raise GLMError(ErrorKind.UNKNOWN, "the transcription carried no text")
    return text


async def _whole(exchange: Exchange, read_timeout: float) -> httpx.Response | Exception:
    """The request's outcome with the body read: a whole response or an httpx error."""
    outcome = await exchange.response_ready()
    if not isinstance(outcome, aiohttp.ClientResponse):
        return outcome
    try:
        return await read_whole(outcome, read_timeout)
    except httpx.HTTPError as exc:
        return exc
