"""Files in the fake Telegram: getFile, the download route and sendPhoto.

Tests register bytes with ``add_file`` and get a file_id, as if a user had sent the file;
``getFile`` answers its path and the bot downloads it from ``/file/bot<token>/<path>``,
exactly where aiogram looks. ``forget_file`` makes a file unfetchable (Telegram keeps
files for a limited time); a declared ``size`` above 20 MB makes getFile refuse it as
Telegram does ("file is too big") without allocating the bytes.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from tests.fakes.telegram_methods import ApiError, BotApiMethods, Handler
from tests.fakes.telegram_state import SentMessage
from tests.fakes.telegram_text import (
    EntityParseError,
    UnsupportedParseModeError,
    format_text,
    utf16_len,
)

# Bots may download files up to 20 MB (Bot API, getFile).
DOWNLOAD_LIMIT = 20 * 1024 * 1024
MAX_CAPTION_UTF16 = 1024


@dataclass
class Upload:
    """A file posted by the bot (multipart), recorded in ApiCall.params as this."""

    filename: str | None
    content_type: str | None
    data: bytes

    def __repr__(self) -> str:
        return f"<file {self.filename!r} {len(self.data)} bytes>"


@dataclass
class StoredFile:
    file_id: str
    file_unique_id: str
    file_path: str
    data: bytes
    size: int  # what Telegram reports; may exceed len(data) to model huge files


@dataclass
class SentPhoto:
    """A sendPhoto: the uploaded bytes, or the URL / file_id string the bot passed."""

    chat_id: int
    message_id: int
    photo: bytes | str
    caption: str
    reply_to_message_id: int | None
    message_thread_id: int | None


class FileMethods(BotApiMethods):
    """File storage, getFile, the download route and sendPhoto."""

    def _init_files(self) -> None:
        self._files: dict[str, StoredFile] = {}
        self._paths: dict[str, StoredFile] = {}
        # kept across resets: Telegram never hands out a file_id twice, and a bot may cache
        # by it (the benchmark resets the fake between its warm-up and measured questions)
        self._file_counter = getattr(self, "_file_counter", None) or itertools.count(1)
        self.file_downloads: list[str] = []  # file_ids, in download order
        self.sent_photos: list[SentPhoto] = []

    def _file_handlers(self) -> dict[str, Handler]:
        return {"getFile": self._get_file, "sendPhoto": self._send_photo}

    # -- test helpers -------------------------------------------------------------------------

    def add_file(
        self,
        data: bytes,
        *,
        file_unique_id: str | None = None,
        size: int | None = None,
        folder: str = "documents",
        extension: str = "bin",
    ) -> str:
        """Register a file a user sent; returns its file_id."""
        number = next(self._file_counter)
        file_id = f"FILE{number:06d}-{len(data)}"
        stored = StoredFile(
            file_id=file_id,
            file_unique_id=file_unique_id or f"U{number:06d}",
            file_path=f"{folder}/file_{number}.{extension}",
            data=data,
            size=len(data) if size is None else size,
        )
        self._files[file_id] = stored
        self._paths[stored.file_path] = stored
        return file_id

    def file(self, file_id: str) -> StoredFile:
        return self._files[file_id]

    @property
    def last_file(self) -> StoredFile:
        """The file registered last (e.g. by the update builder just called)."""
        return next(reversed(self._files.values()))

    def forget_file(self, file_id: str) -> None:
        """Make a file unfetchable: getFile and the download both fail from now on."""
        stored = self._files.pop(file_id)
        self._paths.pop(stored.file_path, None)

    def downloads_of(self, file_id: str) -> int:
        return self.file_downloads.count(file_id)

    # -- Bot API ------------------------------------------------------------------------------

    def _get_file(self, params: dict[str, Any]) -> dict[str, Any]:
        file_id = params.get("file_id")
        if not isinstance(file_id, str) or not file_id:
            raise ApiError(400, "Bad Request: file_id not specified")
        stored = self._files.get(file_id)
        if stored is None:
            raise ApiError(400, "Bad Request: wrong file_id or the file is temporarily unavailable")
        if stored.size > DOWNLOAD_LIMIT:
            raise ApiError(400, "Bad Request: file is too big")
        return {
            "file_id": stored.file_id,
            "file_unique_id": stored.file_unique_id,
            "file_size": stored.size,
            "file_path": stored.file_path,
        }

    async def _handle_file_download(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return web.Response(status=401, text="Unauthorized")
        stored = self._paths.get(request.match_info["path"])
        self._notify_change()
        if stored is None:
            return web.Response(status=404, text="Not Found")
        self.file_downloads.append(stored.file_id)
        return web.Response(body=stored.data, content_type="application/octet-stream")

    def _caption(self, params: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
        caption = params.get("caption") or ""
        try:
            formatted = format_text(
                str(caption), params.get("parse_mode"), params.get("caption_entities")
            )
        except EntityParseError as exc:
            raise ApiError(400, f"Bad Request: can't parse entities: {exc}") from None
        except UnsupportedParseModeError as exc:
            raise ApiError(400, str(exc)) from None
        if utf16_len(formatted.text) > MAX_CAPTION_UTF16:
            raise ApiError(400, "Bad Request: message caption is too long")
        return formatted.text, formatted.entities

    def _send_photo(self, params: dict[str, Any]) -> dict[str, Any]:
        chat_id = self._chat_id(params)
        photo = params.get("photo")
        if isinstance(photo, str) and photo.startswith("attach://"):
            photo = params.get(photo.removeprefix("attach://"))  # the multipart field
        if isinstance(photo, Upload):
            content: bytes | str = photo.data
        elif isinstance(photo, str) and photo:
            content = photo  # a URL or a file_id: Telegram fetches it
        else:
            raise ApiError(400, "Bad Request: there is no photo in the request")
        caption, entities = self._caption(params)
        markup = self._reply_markup(params, inline_only=False)
        thread_id = self._optional_int(params, "message_thread_id")
        reply_to, thread_id = self._reply_target(chat_id, params, thread_id)
        self._admit(chat_id)
        chat = self.chat(chat_id)
        sent = SentMessage(
            message_id=chat.take_message_id(),
            chat_id=chat_id,
            text=caption,
            entities=entities,
            parse_mode=params.get("parse_mode") or None,
            reply_to_message_id=reply_to,
            message_thread_id=thread_id,
            reply_markup=markup,
            history=[caption],
            date=self.now_date(),
            photo=self._photo_sizes(content),
        )
        chat.bot_messages[sent.message_id] = sent
        self.sent_photos.append(
            SentPhoto(chat_id, sent.message_id, content, caption, reply_to, thread_id)
        )
        self.messages_sent += 1
        self.timeline.shown("sendPhoto", chat_id)
        return self.render(sent)

    def _photo_sizes(self, content: bytes | str) -> list[dict[str, Any]]:
        data = content if isinstance(content, bytes) else b""
        file_id = self.add_file(data, folder="photos", extension="jpg")
        stored = self._files[file_id]
        return [
            {
                "file_id": file_id,
                "file_unique_id": stored.file_unique_id,
                "width": 1024,
                "height": 1024,
                "file_size": stored.size,
            }
        ]
