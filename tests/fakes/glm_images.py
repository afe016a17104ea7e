"""The fake GLM's image generation: ``POST .../images/generations`` answers, as Zhipu
does, with a link to the picture, here one the fake serves itself
(``GET /_fake/pictures/<n>.png``, a small real PNG).

Scripted with ``FakeGLM.images.script(PictureReply(...))``: a refusal (HTTP 400, code
1301), another HTTP error, a delay, a link that fails, a file that is not a picture.
Every request body is kept in ``requests``, every picture fetch counted in ``fetches``.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import struct
import time
import zlib
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

__all__ = ["FakeImages", "PictureReply", "png"]


def png(width: int = 4, height: int = 3, rgb: tuple[int, int, int] = (200, 40, 40)) -> bytes:
    """A valid PNG of one colour (no imaging library needed for a fake)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    rows = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


PICTURE = png()


@dataclass
class PictureReply:
    """One scripted answer of the image endpoint."""

    # an HTTP error instead of a picture: {"error": {"code": code, "message": message}}
    status: int | None = None
    code: str | None = None
    message: str = "error"
    # seconds before answering (a picture takes ~20 s at Zhipu)
    delay: float = 0.0
    # the link's answer: its status and content type
    file_status: int = 200
    content_type: str = "image/png"


class FakeImages:
    def __init__(self, notify: Callable[[], None]) -> None:
        self._notify = notify
        self._queue: deque[PictureReply] = deque()
        self._ids = itertools.count(1)
        self._served: dict[str, PictureReply] = {}
        self.default = PictureReply()
        self.requests: list[dict[str, Any]] = []
        self.fetches = 0
        # requests whose client left before the answer (e.g. /stop)
        self.cancelled = 0

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/{prefix:.*}images/generations", self._generate)
        app.router.add_get("/_fake/pictures/{name}", self._picture)

    def script(self, *replies: PictureReply) -> None:
        """Replies for the next requests, in order; then ``default`` again."""
        self._queue.extend(replies)

    def reset(self) -> None:
        self._queue.clear()
        self.requests.clear()
        self.fetches = 0
        self.cancelled = 0

    async def _generate(self, request: web.Request) -> web.Response:
        try:
            body = json.loads(await request.read())
        except ValueError:
            body = {"_invalid": True}
        self.requests.append(body)
        self._notify()
        reply = self._queue.popleft() if self._queue else self.default
        try:
            if reply.delay:
                await asyncio.sleep(reply.delay)
        except asyncio.CancelledError:
            self.cancelled += 1
            self._notify()
            raise
        if not isinstance(body, dict) or not body.get("prompt") or not body.get("model"):
            error = {"code": "1214", "message": "prompt or model missing"}
            return web.json_response({"error": error}, status=400)
        if reply.status is not None:
            error = {"code": reply.code or str(reply.status), "message": reply.message}
            return web.json_response({"error": error}, status=reply.status)
        name = f"{next(self._ids)}.png"
        self._served[name] = reply
        url = f"{request.url.origin()}/_fake/pictures/{name}"
        return web.json_response({"created": int(time.time()), "data": [{"url": url}]})

    async def _picture(self, request: web.Request) -> web.Response:
        self.fetches += 1
        self._notify()
        reply = self._served.get(request.match_info["name"])
        if reply is None or reply.file_status != 200:
            return web.Response(status=reply.file_status if reply else 404)
        if reply.content_type != "image/png":
            return web.Response(body=b"<html>expired</html>", content_type=reply.content_type)
        return web.Response(body=PICTURE, content_type="image/png")
