"""An httpx transport for the synchronous zhipuai SDK that does the HTTP on an event loop.

The SDK keeps building, authenticating and sending its requests and mapping HTTP errors
to its exceptions, from a worker thread. ``handle_request`` hands the exchange to aiohttp
on the loop and blocks the thread only until the response headers are in. An error
response comes back whole, so the SDK builds its exception from the body as usual; a
successful one comes back unread, its ``aiohttp.ClientResponse`` in
``extensions["aiohttp_response"]`` for the loop to read (the SDK's stream object only
wraps the response lazily and never touches the body unless iterated).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextvars
import threading
import urllib.request
from collections.abc import Callable, Iterator
from typing import TypeVar

import aiohttp
import httpx

__all__ = ["AIOHTTP_RESPONSE", "AiohttpTransport", "Exchange", "to_httpx_error"]

AIOHTTP_RESPONSE = "aiohttp_response"

# Managed by aiohttp itself: the framing of the body it sends, the connection, and the
# encodings it can decode (it decodes what it asks for, so httpx must not see them).
_REQUEST_HEADERS_SKIPPED = frozenset(
    {"host", "content-length", "transfer-encoding", "connection", "accept-encoding"}
)
_RESPONSE_HEADERS_SKIPPED = frozenset({"content-encoding", "content-length", "transfer-encoding"})

_T = TypeVar("_T")


class Exchange:
    """One request of a worker thread, as the event loop sees it. Loop only.

    ``on_response`` gets a successful response as soon as its headers are in, on the
    loop, before the worker thread has even resumed: aiohttp raises a broken
    connection's error ahead of the data that came before it, so the body must be read
    while it arrives, not after a round trip through the thread.
    """

    def __init__(self, on_response: Callable[[aiohttp.ClientResponse], None] | None = None) -> None:
        self.response: aiohttp.ClientResponse | None = None
        self._on_response = on_response
        self._task: asyncio.Task[httpx.Response] | None = None
        self._aborted = False

    @property
    def aborted(self) -> bool:
        return self._aborted

    def sending(self, task: asyncio.Task[httpx.Response]) -> None:
        """The loop task sending this request (cancelled by ``abort``)."""
        self._task = task

    def responded(self, response: aiohttp.ClientResponse) -> None:
        self.response = response
        if self._on_response is not None:
            self._on_response(response)

    def abort(self) -> None:
        """Cancel the request if it still waits for headers (the worker thread then
        raises) and close the response's connection at once. Idempotent."""
        self._aborted = True
        if self._task is not None and not self._task.done():
            self._task.cancel()
        if self.response is not None:
            self.response.close()


_EXCHANGE: contextvars.ContextVar[Exchange | None] = contextvars.ContextVar(
    "glm_exchange", default=None
)


class _UnreadBody(httpx.SyncByteStream):
    """The body of a streaming response, which only the event loop reads."""

    def __iter__(self) -> Iterator[bytes]:
        raise RuntimeError("this response body is read on the event loop")

    def close(self) -> None:
        # The loop closes the aiohttp response; closing it from a thread is not safe.
        pass


def to_httpx_error(exc: BaseException, request: httpx.Request | None = None) -> Exception:
    """The httpx exception an httpx transport would have raised instead of ``exc``."""
    message = str(exc) or type(exc).__name__
    error: httpx.TransportError
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        error = httpx.ConnectTimeout(message)
    elif isinstance(exc, TimeoutError):
        error = httpx.ReadTimeout(message)
    elif isinstance(exc, aiohttp.ClientConnectorError):
        error = httpx.ConnectError(message)
    elif isinstance(exc, aiohttp.ServerDisconnectedError | aiohttp.ClientPayloadError):
        error = httpx.RemoteProtocolError(message)
    elif isinstance(exc, aiohttp.ClientResponseError):
        # aiohttp raises it for a malformed response (status line, headers)
        error = httpx.RemoteProtocolError(message)
    elif isinstance(exc, aiohttp.ClientConnectionError | OSError):
        error = httpx.ReadError(message)
    elif isinstance(exc, aiohttp.InvalidURL):
        error = httpx.UnsupportedProtocol(message)
    else:
        error = httpx.TransportError(message)
    if request is not None:
        error.request = request
    return error


class AiohttpTransport(httpx.BaseTransport):
    """See the module docstring. ``open()`` and ``aclose()`` run on the loop that
    does the HTTP; ``handle_request`` runs in any other thread."""

    def __init__(self, *, max_connections: int, connect_timeout: float, read_timeout: float):
        self._max_connections = max_connections
        self._connect_timeout = connect_timeout
        # Connecting, sending the request and waiting for the headers, all together.
        self._headers_budget = connect_timeout + read_timeout
        self._loop: asyncio.AbstractEventLoop | None = None
        self._session: aiohttp.ClientSession | None = None
        self._proxies: dict[str, str] = {}
        # The SDK's Python work (about 1 ms a request) runs in one worker at a time.
        # A burst of a thousand runnable workers would each compete with the event loop
        # for the GIL, and the loop, one waiter among a thousand, would stall for
        # seconds; a worker waiting for its headers holds no gate.
        self._gate = threading.Lock()

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        return self._loop

    def open(self) -> None:
        """Create the shared session on the running loop (once)."""
        if self._session is not None:
            return
        connector = aiohttp.TCPConnector(
            # one connection per possible generation, so no request waits for the pool
            limit=self._max_connections,
            limit_per_host=0,
            # the trust httpx would have used (certifi, SSL_CERT_FILE / SSL_CERT_DIR)
            ssl=httpx.create_ssl_context(),
        )
        self._session = aiohttp.ClientSession(
            connector=connector,
            timeout=aiohttp.ClientTimeout(
                total=None, connect=self._connect_timeout, sock_connect=self._connect_timeout
            ),
            # httpx keeps the cookies (it sees Set-Cookie in the headers handed back)
            cookie_jar=aiohttp.DummyCookieJar(),
            # Not trust_env: it costs two default-executor trips per request (netrc,
            # proxies), and a netrc entry would replace the SDK's Authorization header.
            trust_env=False,
        )
        # Proxies from the environment, as httpx honoured them (its own lookup is off,
        # so that it never routes around this transport); read once.
        self._proxies = urllib.request.getproxies_environment()
        self._loop = asyncio.get_running_loop()

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()

    def bound(self, exchange: Exchange, fn: Callable[[], _T]) -> _T:
        """Worker thread: call ``fn``; the request it sends is tracked by ``exchange``.

        ``fn`` runs under the gate, which ``handle_request`` lets go while it waits.
        """
        token = _EXCHANGE.set(exchange)
        try:
            with self._gate:
                return fn()
        finally:
            _EXCHANGE.reset(token)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        loop = self._loop
        if loop is None:
            raise httpx.ConnectError("the transport is not open", request=request)
        exchange = _EXCHANGE.get()
        gated = exchange is not None
        content = request.read()
        try:
            future = asyncio.run_coroutine_threadsafe(
                self._send(request, content, exchange or Exchange()), loop
            )
        except RuntimeError as exc:  # the loop is closed
            raise httpx.ConnectError(str(exc), request=request) from None
        if gated:
            self._gate.release()
        try:
            # A safety net only: _send is bounded by the same budget on the loop.
            return future.result(timeout=self._headers_budget + 5.0)
        except concurrent.futures.CancelledError:
            raise httpx.ConnectError("the request was cancelled", request=request) from None
        except TimeoutError:
            future.cancel()
            raise httpx.ReadTimeout("no response headers in time", request=request) from None
        finally:
            if gated:
                self._gate.acquire()

    def _proxy_for(self, url: httpx.URL) -> str | None:
        proxy = self._proxies.get(url.scheme) or self._proxies.get("all")
        if proxy is None or urllib.request.proxy_bypass(url.host):
            return None
        return proxy

    async def _send(
        self, request: httpx.Request, content: bytes, exchange: Exchange
    ) -> httpx.Response:
        """On the loop: one HTTP exchange up to the headers (the whole body of an error)."""
        if exchange.aborted:
            raise httpx.ConnectError("the request was cancelled", request=request)
        task = asyncio.current_task()
        assert task is not None
        exchange.sending(task)
        session = self._session
        assert session is not None
        headers = [
            (name, value)
            for name, value in request.headers.multi_items()
            if name.lower() not in _REQUEST_HEADERS_SKIPPED
        ]
        response: aiohttp.ClientResponse | None = None
        try:
            async with asyncio.timeout(self._headers_budget):
                response = await session.request(
                    request.method,
                    str(request.url),
                    headers=headers,
                    data=content or None,
                    allow_redirects=False,
                    proxy=self._proxy_for(request.url),
                )
                if 200 <= response.status < 300:
                    exchange.responded(response)
                    return httpx.Response(
                        response.status,
                        headers=_headers(response),
                        stream=_UnreadBody(),
                        request=request,
                        extensions={AIOHTTP_RESPONSE: response},
                    )
                # small: the SDK builds its error from it
                body = await response.read()
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            if response is not None:
                response.close()
            raise to_httpx_error(exc, request) from exc
        except BaseException:
            if response is not None:
                response.close()
            raise
        response.release()
        return httpx.Response(
            response.status, headers=_headers(response), content=body, request=request
        )


def _headers(response: aiohttp.ClientResponse) -> list[tuple[bytes, bytes]]:
    return [
        (name, value)
        for name, value in response.raw_headers
        if name.decode("latin-1").lower() not in _RESPONSE_HEADERS_SKIPPED
    ]
