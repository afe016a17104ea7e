"""Pictures from Zhipu's image models (CogView, glm-image): one request, then the file.

The SDK's ``images.generations`` builds, authenticates and sends the request on the
event loop, as a chat request is sent (``bot.llm.transport``): no thread waits the
twenty seconds a picture can take. The SDK is told not to read the body (its own
raw-response header), since the transport's first answer is only a placeholder; once
the real response is in, the same call is made again with it in hand, so the SDK parses
the picture's link or raises its error exactly as if it had waited.

Zhipu answers with a link to the picture (valid 30 days) on its own storage. The bot
fetches it and uploads the bytes to Telegram rather than passing the link on: Telegram
may not reach that storage, and a link that fails there fails without a reason.
"""

from __future__ import annotations

import asyncio
import functools
from dataclasses import dataclass
from typing import Any

import aiohttp
import httpx
import zhipuai

from bot.llm.errors import ErrorKind, GLMError, error_from_exception
from bot.llm.transport import AiohttpTransport, Exchange, read_whole

__all__ = ["MAX_PICTURE_BYTES", "Picture", "fetch_picture", "request_picture"]

# The SDK's RAW_RESPONSE_HEADER: "stream" makes it hand the response back unread.
_UNREAD_BODY = {"X-Stainless-Raw-Response": "stream"}
# Telegram's limit for a photo sent as a file (sendPhoto); a CogView PNG is 1-3 MB.
MAX_PICTURE_BYTES = 10 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Picture:
    data: bytes
    content_type: str


async def request_picture(
    sdk: zhipuai.ZhipuAI,
    prompt: str,
    *,
    model: str,
    size: str | None,
    secret: str,
    read_timeout: float,
) -> str:
    """The link to one picture drawn for ``prompt``; raises GLMError (a refused prompt:
    FILTERED)."""
    arguments: dict[str, Any] = {"model": model, "prompt": prompt, "extra_headers": _UNREAD_BODY}
    if size is not None:
        arguments["size"] = size
    create = functools.partial(sdk.images.generations, **arguments)
    exchange = Exchange()
    try:
        exchange.call(create)
        outcome = await exchange.response_ready()
        if isinstance(outcome, aiohttp.ClientResponse):
            outcome = await read_whole(outcome, read_timeout)
        # at run time an unparsed APIResponse (the header above), whatever the SDK's types say
        unread: Any = exchange.replay(outcome, create)
        images = unread.parse()
    except (GLMError, asyncio.CancelledError):
        raise
    except Exception as exc:
        error = error_from_exception(exc, secret=secret, after_first_chunk=False)
        raise error from error.__cause__
    finally:
        exchange.abort()  # a cancelled wait closes the connection at once
    url = images.data[0].url if images.data else None
    if not isinstance(url, str) or not url.startswith(("https://", "http://")):
        raise GLMError(ErrorKind.UNKNOWN, "the response holds no picture link")
    return url


async def fetch_picture(transport: AiohttpTransport, url: str, *, timeout: float) -> Picture:
    """The picture behind Zhipu's link; raises GLMError (NETWORK, or UNKNOWN for a file
    that is not a picture or is too large). The link is never logged: it is the user's
    picture."""
    try:
        data, content_type = await transport.fetch(
            url, max_bytes=MAX_PICTURE_BYTES, timeout=timeout
        )
    except ValueError:
        raise GLMError(ErrorKind.UNKNOWN, "the picture is too large to send") from None
    except httpx.TransportError as exc:
        raise GLMError(ErrorKind.NETWORK, f"fetching the picture: {type(exc).__name__}") from exc
    if not content_type.startswith("image/") or not data:
        raise GLMError(ErrorKind.UNKNOWN, f"the picture link gave {content_type or 'nothing'}")
    return Picture(data, content_type)
