"""Builders of the media services: Telegram file downloads, images for GLM, albums."""

from __future__ import annotations

from aiogram import Bot

from bot.config import Settings
from bot.media.albums import AlbumCollector
from bot.media.files import TelegramFiles
from bot.media.source import TelegramImages


def create_files(settings: Settings, bot: Bot) -> TelegramFiles:
    """Downloads of the files users send (photos, voice, documents), within Telegram's limit."""
    return TelegramFiles(bot, timeout=settings.media.download_timeout)


def create_images(settings: Settings, files: TelegramFiles) -> TelegramImages:
    """Images for GLM, fetched by file_id and re-encoded, cached for follow-up questions."""
    media = settings.media
    return TelegramImages(
        files,
        max_side=media.image_max_side,
        max_bytes=media.image_max_bytes,
        cache_bytes=media.image_cache_mb * 1024 * 1024,
    )


def create_albums(settings: Settings) -> AlbumCollector:
    """Photos of one album collected into one question."""
    return AlbumCollector(settings.media.album_window)
