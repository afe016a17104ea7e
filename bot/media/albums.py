"""Albums: Telegram sends each photo of a media group as an update of its own.

The first photo that asks a question opens the album's turn at once, so it keeps its
place in the conversation's order; the photos that follow within ``window`` seconds of
the last join it, and the answer, when it starts, waits for them (`Album.collected`).
Nothing here is a task: each album is one timer, restarted by every photo, and
`AlbumCollector.close` (at shutdown) completes them all at once.
"""

from __future__ import annotations

import asyncio

from bot.messages import ImagePart, Part, TextPart

__all__ = ["MAX_ALBUM_IMAGES", "Album", "AlbumCollector"]

# Telegram albums hold up to 10 items; anything beyond is not ours to keep.
MAX_ALBUM_IMAGES = 10


class Album:
    """The photos of one media group, in message order, and its question text."""

    def __init__(self, collector: AlbumCollector, key: tuple[int, str], default_text: str) -> None:
        self._collector = collector
        self._key = key
        self._default_text = default_text
        self._images: dict[int, ImagePart] = {}
        self._text: str | None = None
        self._done = asyncio.Event()
        self._timer: asyncio.TimerHandle | None = None
        # a turn was opened for it: later photos only join
        self.asked = False

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def add(self, message_id: int, image: ImagePart | None, text: str | None) -> None:
        """One photo of the album (and its caption's question, if it has one)."""
        if self.done:
            return
        if image is not None and len(self._images) < MAX_ALBUM_IMAGES:
            self._images[message_id] = image
        if text and self._text is None:
            self._text = text
        self.touch()

    def parts(self) -> tuple[Part, ...]:
        """The images so far, then the question (the default one when no caption asks)."""
        images = tuple(self._images[message_id] for message_id in sorted(self._images))
        return (*images, TextPart(self._text or self._default_text))

    @property
    def images(self) -> int:
        return len(self._images)

    async def collected(self) -> tuple[Part, ...]:
        # once the bot is shutting down, nothing waits for more photos
        if not self._collector.closed:
            await self._done.wait()
        return self.parts()

    def touch(self) -> None:
        """(Re)start the wait for the next photo."""
        if self._timer is not None:
            self._timer.cancel()
        loop = asyncio.get_running_loop()
        self._timer = loop.call_later(self._collector.window, self.finish)

    def finish(self) -> None:
        """No more photos: the answer may start."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._done.set()
        self._collector.forget(self._key, self)


class AlbumCollector:
    """The albums being collected, by chat and media group."""

    def __init__(self, window: float) -> None:
        self.window = window
        self.closed = False
        self._albums: dict[tuple[int, str], Album] = {}

    def __len__(self) -> int:
        return len(self._albums)

    @property
    def images(self) -> int:
        """Photos held by the albums being collected."""
        return sum(album.images for album in self._albums.values())

    def album(self, chat_id: int, media_group_id: str, default_text: str) -> Album:
        """The album being collected, or a new one."""
        key = (chat_id, media_group_id)
        album = self._albums.get(key)
        if album is None:
            album = self._albums[key] = Album(self, key, default_text)
            album.touch()  # an album nobody adds to still ends
        return album

    def forget(self, key: tuple[int, str], album: Album) -> None:
        if self._albums.get(key) is album:
            del self._albums[key]

    async def close(self) -> None:
        """Complete every album now (shutdown): their answers start with what arrived, and
        those of albums that begin meanwhile do not wait either."""
        self.closed = True
        for album in list(self._albums.values()):
            album.finish()
