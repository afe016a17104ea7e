"""The fake GLM's speech recognition: ``POST .../audio/transcriptions`` (multipart).

It checks what Zhipu documents for glm-asr (a .wav or .mp3 file of at most 30 s and
25 MB, a model), answers with scripted text as ``{"id", "created", "request_id",
"model", "text"}`` and keeps every request it got (``requests``) for tests to read.
"""

from __future__ import annotations

import io
import itertools
import time
import wave
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import BodyPartReader, web

__all__ = ["Transcript", "TranscriptionRequest", "Transcriptions"]

MAX_SECONDS = 30.0
MAX_BYTES = 25 * 1024 * 1024


@dataclass
class Transcript:
    """One scripted answer: the text, or an HTTP error with Zhipu's error body."""

    text: str = "What is the capital of France?"
    status: int | None = None
    code: str | None = None
    message: str = "error"


@dataclass
class TranscriptionRequest:
    """What one request carried."""

    fields: dict[str, str] = field(default_factory=dict)
    filename: str | None = None
    content_type: str | None = None
    audio: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    # WAV only: what its header says
    seconds: float | None = None
    channels: int | None = None
    rate: int | None = None


def _problem(request: TranscriptionRequest) -> str | None:
    """Why Zhipu would refuse the request, or None."""
    if not request.fields.get("model"):
        return "model missing"
    if not request.audio:
        return "file missing"
    if len(request.audio) > MAX_BYTES:
        return "file over 25 MB"
    if request.audio[:4] == b"RIFF" and request.audio[8:12] == b"WAVE":
        try:
            with wave.open(io.BytesIO(request.audio)) as wav:
                request.channels, request.rate = wav.getnchannels(), wav.getframerate()
                request.seconds = wav.getnframes() / request.rate
        except (wave.Error, EOFError, ZeroDivisionError):
            return "unreadable wav"
        return "audio over 30 s" if request.seconds > MAX_SECONDS else None
    if request.audio[:3] == b"ID3" or request.audio[:2] in (b"\xff\xfb", b"\xff\xf3"):
        return None
    return "not a wav or mp3 file"


class Transcriptions:
    def __init__(self, notify: Callable[[], None]) -> None:
        self._notify = notify
        self._queue: deque[Transcript] = deque()
        self._ids = itertools.count(1)
        self.default = Transcript()
        self.requests: list[TranscriptionRequest] = []
        self.refused: list[str] = []

    def script(self, *replies: Transcript) -> None:
        """Answers for the next requests, in order; then ``default`` again."""
        self._queue.extend(replies)

    def reset(self) -> None:
        self._queue.clear()
        self.requests.clear()
        self.refused.clear()

    async def handle(self, request: web.Request) -> web.Response:
        got = TranscriptionRequest(headers=dict(request.headers))
        reader = await request.multipart()
        async for part in reader:
            if not isinstance(part, BodyPartReader) or part.name is None:
                continue
            if part.filename is not None:
                got.filename = part.filename
                got.content_type = part.headers.get("Content-Type")
                got.audio = await part.read()
            else:
                got.fields[part.name] = await part.text()
        self.requests.append(got)
        self._notify()
        problem = _problem(got)
        if problem is not None:
            self.refused.append(problem)
            self._notify()
            return _error(400, "1214", problem)
        reply = self._queue.popleft() if self._queue else self.default
        if reply.status is not None:
            return _error(reply.status, reply.code or str(reply.status), reply.message)
        n = next(self._ids)
        body: dict[str, Any] = {
            "id": f"asr-{n}",
            "created": int(time.time()),
            "request_id": f"req-asr-{n}",
            "model": got.fields["model"],
            "text": reply.text,
        }
        return web.json_response(body)


def _error(status: int, code: str, message: str) -> web.Response:
    return web.json_response({"error": {"code": code, "message": message}}, status=status)
