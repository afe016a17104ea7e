"""Download a file a user sent, by file_id, through the Bot API.

The download URL is ``{server}/file/bot<token>/<path>``: it holds the bot token. It is
built and used here only; the errors raised from here never carry it (nor chain an
aiohttp error that would: their text includes the URL).
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from aiogram import Bot
from aiogram.exceptions import TelegramAPIError, TelegramBadRequest, TelegramNetworkError
from aiohttp import ClientError

from bot.config.media import TELEGRAM_DOWNLOAD_LIMIT

log = logging.getLogger(__name__)


class FileError(Exception):
    """A file a user sent could not be read; the text is safe to log."""


class FileTooLarge(FileError):
    """Larger than the bot may download (Telegram: 20 MB) or than the caller accepts."""

    def __init__(self, size: int | None, limit: int) -> None:
        shown = "unknown" if size is None else f"{size} bytes"
        super().__init__(f"file too large: {shown}, limit {limit} bytes")
        self.size = size
        self.limit = limit


class FileUnavailable(FileError):
    """Telegram no longer serves the file (expired, deleted, a bad file_id) or failed."""


def check_size(size: int | None, limit: int = TELEGRAM_DOWNLOAD_LIMIT) -> None:
    """Raise FileTooLarge for a size Telegram reported above ``limit`` (None: unknown, fine)."""
    if size is not None and size > limit:
        raise FileTooLarge(size, limit)


class TelegramFiles:
    """Reads files by file_id: getFile, then the download, both within a size limit."""

    def __init__(
        self,
        bot: Bot,
        *,
        max_bytes: int = TELEGRAM_DOWNLOAD_LIMIT,
        timeout: float = 30.0,
        chunk_size: int = 64 * 1024,
    ) -> None:
        self._bot = bot
        self._max_bytes = max_bytes
        self._timeout = timeout
        self._chunk_size = chunk_size

    @property
    def max_bytes(self) -> int:
        return self._max_bytes

    async def download(self, file_id: str, *, max_bytes: int | None = None) -> bytes:
        """The file's bytes; FileTooLarge above the limit, FileUnavailable when unreadable.

        The size Telegram reports is checked before downloading, the bytes while reading
        (a report may be missing or wrong).
        """
        limit = self._max_bytes if max_bytes is None else min(max_bytes, self._max_bytes)
        try:
            file = await self._bot.get_file(file_id)
        except TelegramBadRequest as exc:
            # "file is too big" is how Telegram refuses files over its download limit
            if "too big" in exc.message.lower():
                raise FileTooLarge(None, limit) from None
            raise FileUnavailable(f"getFile refused: {exc.message}") from None
        except TelegramNetworkError:
            raise FileUnavailable("getFile failed: network error") from None
        except TelegramAPIError as exc:
            raise FileUnavailable(f"getFile failed: {type(exc).__name__}") from None
        check_size(file.file_size, limit)
        if not file.file_path:
            raise FileUnavailable("getFile gave no file_path")
        return await self._read(file.file_path, limit)

    async def _read(self, file_path: str, limit: int) -> bytes:
        session = self._bot.session
        if session.api.is_local:
            # a local Bot API server hands out paths on its own disk
            return await self._read_local(session.api.wrap_local_file.to_local(file_path), limit)
        url = session.api.file_url(self._bot.token, file_path)
        chunks: list[bytes] = []
        size = 0
        try:
            async for chunk in session.stream_content(
                url=url,
                timeout=int(self._timeout),
                chunk_size=self._chunk_size,
                raise_for_status=True,
            ):
                size += len(chunk)
                if size > limit:
                    raise FileTooLarge(size, limit)
                chunks.append(chunk)
        except ClientError as exc:
            # the status only: the error's own text holds the URL, and with it the token
            status = getattr(exc, "status", None)
            raise FileUnavailable(f"download failed ({type(exc).__name__} {status})") from None
        except TimeoutError:
            raise FileUnavailable("download timed out") from None
        return b"".join(chunks)

    async def _read_local(self, path: str | Path, limit: int) -> bytes:
        def read() -> bytes:
            with Path(path).open("rb") as handle:
                data = handle.read(limit + 1)
            if len(data) > limit:
                raise FileTooLarge(len(data), limit)
            return data

        try:
            return await asyncio.to_thread(read)
        except OSError as exc:
            raise FileUnavailable(f"local file unreadable ({type(exc).__name__})") from None
