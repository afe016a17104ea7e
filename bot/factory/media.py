"""Builders of the media services: Telegram file downloads, images for GLM, albums, voice
messages and documents."""

from __future__ import annotations

import logging

from aiogram import Bot

from bot.config import Settings
from bot.llm import GLMClient
from bot.media.albums import AlbumCollector
from bot.media.files import TelegramFiles
from bot.media.inputs import MediaInputs
from bot.media.source import TelegramImages
from bot.models import ModelCatalog

log = logging.getLogger(__name__)


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


def create_media(
    settings: Settings, files: TelegramFiles, llm: GLMClient, models: ModelCatalog
) -> MediaInputs:
    """Voice messages and documents as questions; speech with the catalog's first speech
    model (none: voice messages are answered with a note)."""
    speech = next((model.name for model in models if model.kind == "speech"), None)
    if speech is None:
        log.warning("no speech model in the catalog: voice messages will not be transcribed")
    return MediaInputs(
        files, llm, speech_model=speech, voice_max_seconds=settings.media.voice_max_seconds
    )
