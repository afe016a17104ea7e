"""An httpx transport that lets the synchronous zhipuai SDK send without blocking.

The SDK keeps building, authenticating and sending its requests and mapping HTTP errors
to its exceptions, called on the event loop itself: ``handle_request`` starts the
exchange as an aiohttp task and returns at once a 200 response whose body is never read
through httpx (the SDK's stream object wraps it lazily and never touches it unless
iterated). The loop then awaits the real response (``Exchange.response_ready``). If it
is an error, or the connection failed, the same SDK call is made a second time with the
outcome in hand (``Exchange.replay``): ``handle_request`` returns the error response, or
raises the transport error, and the SDK maps it to its exception exactly as if it had
waited. A successful response is handed over as an ``aiohttp.ClientResponse`` for the
loop to read.

Why not a worker thread per request, as a synchronous SDK would suggest: the SDK's work
is about 0.3 ms of Python per request, while a thread hop costs a GIL hand-off each way,
and with hundreds of workers waiting the event loop lost the GIL for up to the switch
interval (5 ms) after each of its system calls: at 1,000 simultaneous answers the loop
lagged by seconds while the process used 0.4 cores. No call here blocks: nothing waits
on the network inside the SDK call.
"""

from __future__ import annotations

import asyncio
import contextvars
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from typing import TypeVar

import aiohttp
import httpx

__all__ = ["AiohttpTransport", "Exchange", "read_whole", "to_httpx_error", "whole_response"]

# Managed by aiohttp itself: the framing of the body it sends, the connection, and the
# encodings it can decode (it decodes what it asks for, so httpx must not see them).
_REQUEST_HEADERS_SKIPPED = frozenset(
    {"host", "content-length", "transfer-encoding", "connection", "accept-encoding"}
)
_RESPONSE_HEADERS_SKIPPED = frozenset({"content-encoding", "content-length", "transfer-encoding"})

_T = TypeVar("_T")


class Exchange:
    """One SDK call's HTTP exchange, as the event loop sees it. Loop only.

    ``call()`` runs the SDK with this exchange current; the request it sends becomes a
    task, whose outcome ``response_ready()`` awaits.
    """

    def __init__(self) -> None:
        self.response: aiohttp.ClientResponse | None = None
        self._task: asyncio.Task[aiohttp.ClientResponse | httpx.Response] | None = None
        # the outcome handed back to the SDK when it is called a second time
        self._replay: httpx.Response | Exception | None = None
        self._aborted = False

    @property
    def aborted(self) -> bool:
        return self._aborted

    def call(self, fn: Callable[[], _T]) -> _T:
        """Run the SDK call ``fn`` on the loop; the request it sends is this exchange's."""
        token = _EXCHANGE.set(self)
        try:
            return fn()
        finally:
            _EXCHANGE.reset(token)

    async def response_ready(self) -> aiohttp.ClientResponse | httpx.Response | Exception:
        """The outcome of the request the SDK sent: a successful aiohttp response (its
        body unread), a whole error response, or the httpx error of a failed exchange."""
        task = self._task
        if task is None:
            return httpx.ConnectError("the SDK sent no request")
        try:
            return await task
        except httpx.TransportError as exc:
            return exc
        except asyncio.CancelledError:
            current = asyncio.current_task()
            if self._aborted and (current is None or not current.cancelling()):
                # dropped by abort(), not by cancelling the caller
                return httpx.ConnectError("the request was cancelled")
            raise

    def replay(self, outcome: httpx.Response | Exception, fn: Callable[[], _T]) -> _T:
        """Call the SDK again, its request answered with ``outcome`` (so it raises)."""
        self._replay = outcome
        return self.call(fn)

    def sending(self, task: asyncio.Task[aiohttp.ClientResponse | httpx.Response]) -> None:
        self._task = task

    def take_replay(self) -> httpx.Response | Exception | None:
        replay, self._replay = self._replay, None
        return replay

    def responded(self, response: aiohttp.ClientResponse) -> None:
        self.response = response

    def abort(self) -> None:
        """Cancel the request if it still waits for headers and close the response's
        connection at once. Idempotent."""
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
    """See the module docstring. Every method runs on the loop that does the HTTP."""

    def __init__(self, *, max_connections: int, connect_timeout: float, read_timeout: float):
        self._max_connections = max_connections
        self._connect_timeout = connect_timeout
        # Connecting, sending the request and waiting for the headers, all together.
        self._headers_budget = connect_timeout + read_timeout
        self._loop: asyncio.AbstractEventLoop | None = None
        self._session: aiohttp.ClientSession | None = None
        self._proxies: Mapping[str, str] = {}

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

    async def fetch(self, url: str, *, max_bytes: int, timeout: float) -> tuple[bytes, str]:
        """GET a file (a generated picture) on the shared session: its bytes and content
        type. Raises httpx errors, as the SDK's requests would; ValueError when it is
        larger than ``max_bytes``."""
        session = self._session
        if session is None:
            raise httpx.ConnectError("the transport is not open")
        proxy = self._proxy_for(httpx.URL(url))
        try:
            async with (
                asyncio.timeout(timeout),
                session.get(url, allow_redirects=True, proxy=proxy) as got,
            ):
                if got.status != 200:
                    raise httpx.RemoteProtocolError(f"HTTP {got.status}")
                if (got.content_length or 0) > max_bytes:
                    raise ValueError(f"larger than {max_bytes} bytes")
                chunks: list[bytes] = []
                size = 0
                async for chunk in got.content.iter_chunked(1 << 16):
                    size += len(chunk)
                    if size > max_bytes:
                        raise ValueError(f"larger than {max_bytes} bytes")
                    chunks.append(chunk)
                return b"".join(chunks), got.content_type
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise to_httpx_error(exc) from exc

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        exchange = _EXCHANGE.get()
        if exchange is None or self._loop is None:
            raise httpx.ConnectError("requests go through Exchange.call()", request=request)
        replay = exchange.take_replay()
        if isinstance(replay, Exception):
            raise replay
        if replay is not None:
            return replay
        content = request.read()
        task = self._loop.create_task(self._send(request, content, exchange))
        exchange.sending(task)
        # What the SDK sees for now: its stream object only wraps it, lazily.
        return httpx.Response(200, stream=_UnreadBody(), request=request)

    def _proxy_for(self, url: httpx.URL) -> str | None:
        proxy = self._proxies.get(url.scheme) or self._proxies.get("all")
        if proxy is None or urllib.request.proxy_bypass(url.host):
            return None
        return proxy

    async def _send(
        self, request: httpx.Request, content: bytes, exchange: Exchange
    ) -> aiohttp.ClientResponse | httpx.Response:
        """One HTTP exchange up to the headers (the whole body of an error)."""
        if exchange.aborted:
            raise httpx.ConnectError("the request was cancelled", request=request)
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
                    return response
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
        return whole_response(response, body, request)


def whole_response(
    response: aiohttp.ClientResponse, body: bytes, request: httpx.Request | None = None
) -> httpx.Response:
    """A response read whole on the loop, as httpx would hand it to the SDK."""
    return httpx.Response(
        response.status, headers=_headers(response), content=body, request=request
    )


async def read_whole(response: aiohttp.ClientResponse, timeout: float) -> httpx.Response:
    """A successful response read whole (a small JSON body), as httpx would hand it to
    the SDK; the connection goes back to the pool. Raises httpx errors."""
    try:
        async with asyncio.timeout(timeout):
            body = await response.read()
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        response.close()
        raise to_httpx_error(exc) from exc
    response.release()
    return whole_response(response, body)


def _headers(response: aiohttp.ClientResponse) -> list[tuple[bytes, bytes]]:
    return [
        (name, value)
        for name, value in response.raw_headers
        if name.decode("latin-1").lower() not in _RESPONSE_HEADERS_SKIPPED
    ]
