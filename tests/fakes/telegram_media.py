"""Updates with media, shaped as Telegram sends them: photos, albums, voice, audio, documents.

Each builder registers the file bytes (``add_file``) so the bot can fetch them through
getFile and the download route, and pushes the message. ``chat_id`` decides the chat:
a positive id is the private chat with ``user_id`` (pass the same id), a negative one a
supergroup. A caption's ``@username`` mentions get their entities, as Telegram's apps add
them, unless ``caption_entities`` is given.
"""

from __future__ import annotations

import itertools
import re
from typing import Any

from tests.fakes.telegram_feed import UpdateFeeder
from tests.fakes.telegram_files import FileMethods
from tests.fakes.telegram_text import utf16_len

_MENTION_RE = re.compile(r"@[A-Za-z0-9_]{5,32}")
_media_groups = itertools.count(13_000_000_000_000_000)


def mention_entities(caption: str) -> list[dict[str, Any]]:
    """``mention`` entities for every @username in ``caption`` (UTF-16 offsets)."""
    return [
        {
            "type": "mention",
            "offset": utf16_len(caption[: match.start()]),
            "length": utf16_len(match.group()),
        }
        for match in _MENTION_RE.finditer(caption)
    ]


class MediaFeeder(UpdateFeeder, FileMethods):
    """Builders for media messages, on top of the file methods."""

    def photo_sizes(
        self, data: bytes, *, width: int = 1280, height: int = 960, size: int | None = None
    ) -> list[dict[str, Any]]:
        """PhotoSize entries as Telegram lists them, smallest first.

        A thumbnail (whose bytes are not an image: a bot that reads it fails visibly) and
        the full size holding ``data``.
        """
        scale = 90 / max(width, height)
        thumb = b"thumbnail, not the photo"
        thumb_id = self.add_file(thumb, folder="photos", extension="jpg")
        full_id = self.add_file(data, folder="photos", extension="jpg", size=size)
        return [
            {
                "file_id": thumb_id,
                "file_unique_id": f"T{thumb_id}",
                "width": max(1, round(width * scale)),
                "height": max(1, round(height * scale)),
                "file_size": len(thumb),
            },
            {
                "file_id": full_id,
                "file_unique_id": f"P{full_id}",
                "width": width,
                "height": height,
                "file_size": len(data) if size is None else size,
            },
        ]

    def media_message(
        self,
        chat_id: int,
        user_id: int,
        media: dict[str, Any],
        *,
        caption: str | None = None,
        caption_entities: list[dict[str, Any]] | None = None,
        reply_to_message_id: int | None = None,
        media_group_id: str | None = None,
        message_thread_id: int | None = None,
        first_name: str = "Alice",
        language_code: str | None = "en",
    ) -> int:
        """Push a message carrying ``media`` (e.g. ``{"photo": [...]}``); returns the update_id."""
        user = self._new_user(user_id, first_name, language_code=language_code)
        chat = self.chat(chat_id)
        if chat_id > 0:
            chat.type, chat.first_name = "private", first_name
        else:
            chat.type = "supergroup"
        message: dict[str, Any] = {
            "message_id": chat.take_message_id(),
            "from": user,
            "chat": chat.as_dict(),
            "date": self.now_date(),
            **media,
        }
        if caption:
            message["caption"] = caption
            entities = mention_entities(caption) if caption_entities is None else caption_entities
            if entities:
                message["caption_entities"] = entities
        if media_group_id is not None:
            message["media_group_id"] = media_group_id
        if message_thread_id is not None:
            message["message_thread_id"] = message_thread_id
            message["is_topic_message"] = True
        if reply_to_message_id is not None:
            target = self._reply_for_update(chat_id, reply_to_message_id)
            if target is not None:
                message["reply_to_message"] = target
        return self.push_update({"message": message})

    def photo_message(
        self,
        chat_id: int,
        user_id: int,
        data: bytes,
        *,
        width: int = 1280,
        height: int = 960,
        size: int | None = None,
        **kwargs: Any,
    ) -> int:
        """A photo (several PhotoSize entries) with optional caption; keyword arguments
        of ``media_message`` apply."""
        sizes = self.photo_sizes(data, width=width, height=height, size=size)
        return self.media_message(chat_id, user_id, {"photo": sizes}, **kwargs)

    def album_messages(
        self,
        chat_id: int,
        user_id: int,
        images: list[bytes],
        *,
        caption: str | None = None,
        **kwargs: Any,
    ) -> list[int]:
        """An album: one photo message per image, one media_group_id, the caption on the
        first (as Telegram's apps send it); returns the update_ids."""
        group_id = str(next(_media_groups))
        return [
            self.photo_message(
                chat_id,
                user_id,
                data,
                caption=caption if index == 0 else None,
                media_group_id=group_id,
                **kwargs,
            )
            for index, data in enumerate(images)
        ]

    def voice_message(
        self,
        chat_id: int,
        user_id: int,
        data: bytes,
        *,
        duration: int = 3,
        mime_type: str = "audio/ogg",
        size: int | None = None,
        **kwargs: Any,
    ) -> int:
        """A voice message (OGG/Opus as Telegram records them)."""
        file_id = self.add_file(data, folder="voice", extension="oga", size=size)
        voice = {
            "file_id": file_id,
            "file_unique_id": f"V{file_id}",
            "duration": duration,
            "mime_type": mime_type,
            "file_size": len(data) if size is None else size,
        }
        return self.media_message(chat_id, user_id, {"voice": voice}, **kwargs)

    def audio_message(
        self,
        chat_id: int,
        user_id: int,
        data: bytes,
        *,
        duration: int = 3,
        mime_type: str = "audio/mpeg",
        file_name: str = "audio.mp3",
        title: str | None = None,
        size: int | None = None,
        **kwargs: Any,
    ) -> int:
        """An audio file (music player attachment)."""
        extension = file_name.rsplit(".", 1)[-1] if "." in file_name else "bin"
        file_id = self.add_file(data, folder="music", extension=extension, size=size)
        audio: dict[str, Any] = {
            "file_id": file_id,
            "file_unique_id": f"A{file_id}",
            "duration": duration,
            "mime_type": mime_type,
            "file_name": file_name,
            "file_size": len(data) if size is None else size,
        }
        if title is not None:
            audio["title"] = title
        return self.media_message(chat_id, user_id, {"audio": audio}, **kwargs)

    def document_message(
        self,
        chat_id: int,
        user_id: int,
        data: bytes,
        *,
        file_name: str = "notes.txt",
        mime_type: str | None = "text/plain",
        size: int | None = None,
        **kwargs: Any,
    ) -> int:
        """A file sent as a document (any type, images "as a file" included)."""
        extension = file_name.rsplit(".", 1)[-1] if "." in file_name else "bin"
        file_id = self.add_file(data, folder="documents", extension=extension, size=size)
        document: dict[str, Any] = {
            "file_id": file_id,
            "file_unique_id": f"D{file_id}",
            "file_name": file_name,
            "file_size": len(data) if size is None else size,
        }
        if mime_type is not None:
            document["mime_type"] = mime_type
        return self.media_message(chat_id, user_id, {"document": document}, **kwargs)
