"""The images of a conversation, fetched again by reference whenever a prompt needs them.

History keeps an image's Telegram file_id, never its bytes. A prompt that re-attaches it
downloads it through `TelegramFiles` and re-encodes it (`bot.media.images`); the result
is kept in a bounded in-process cache, so a follow-up question costs no download.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Sequence
from typing import NamedTuple

from cachetools import LRUCache

from bot.media.files import FileTooLarge, FileUnavailable, TelegramFiles
from bot.media.images import ImageUnreadable, prepare_image
from bot.turns.types import FetchedImages, ImageProblem

__all__ = ["TelegramImages"]

log = logging.getLogger(__name__)


class _Failed(NamedTuple):
    problem: ImageProblem


class TelegramImages:
    """`bot.turns.types.ImageSource` over Telegram files."""

    def __init__(
        self,
        files: TelegramFiles,
        *,
        max_side: int,
        max_bytes: int,
        cache_bytes: int,
        encoders: int | None = None,
    ) -> None:
        self._files = files
        self._max_side = max_side
        self._max_bytes = max_bytes
        # sized by the characters of the base64 text: what it holds in memory
        self._cache: LRUCache[str, str] = LRUCache(maxsize=max(1, cache_bytes), getsizeof=len)
        # Decoding takes a full-size bitmap in memory: a few at a time, whatever the
        # number of photo questions in flight.
        self._encoding = asyncio.Semaphore(encoders or min(4, os.cpu_count() or 1))

    async def fetch(self, refs: Sequence[str]) -> FetchedImages:
        unique = list(dict.fromkeys(refs))
        results = await asyncio.gather(*(self._one(ref) for ref in unique))
        data: dict[str, str] = {}
        problems: dict[str, ImageProblem] = {}
        for ref, result in zip(unique, results, strict=True):
            if isinstance(result, _Failed):
                problems[ref] = result.problem
            else:
                data[ref] = result
        return FetchedImages(data, problems)

    async def _one(self, ref: str) -> str | _Failed:
        cached = self._cache.get(ref)
        if cached is not None:
            return cached
        try:
            raw = await self._files.download(ref)
        except FileTooLarge as exc:
            log.info("image %s not fetched: %s", ref, exc)
            return _Failed("too_large")
        except FileUnavailable as exc:
            log.info("image %s not fetched: %s", ref, exc)
            return _Failed("unavailable")
        async with self._encoding:
            try:
                prepared = await asyncio.to_thread(
                    prepare_image, raw, max_side=self._max_side, max_bytes=self._max_bytes
                )
            except ImageUnreadable as exc:
                log.info("image %s unreadable: %s", ref, exc)
                return _Failed("unreadable")
        del raw
        encoded = prepared.base64()
        if len(encoded) <= self._cache.maxsize:
            self._cache[ref] = encoded
        return encoded
