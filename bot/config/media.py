"""The ``[media]`` settings section: Telegram files and the images sent to GLM.

Kept apart from ``bot.config`` (which includes it in ``Settings``); every key is
documented in settings.toml.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

# Bots may download files up to 20 MB from Telegram's Bot API (telegram-api.md).
TELEGRAM_DOWNLOAD_LIMIT = 20 * 1024 * 1024
# Zhipu's vision models take images of at most 5 MB (glm-api.md, "GLM in late 2026"). The
# JPEG goes as base64, 4/3 of its size: kept to 3/4 of the limit, either reading holds.
GLM_IMAGE_LIMIT = 5 * 1024 * 1024
# Zhipu's speech recognition takes recordings of at most 30 s (glm-api.md; docs.z.ai).
ASR_MAX_SECONDS = 30.0
MAX_JPEG_BYTES = GLM_IMAGE_LIMIT * 3 // 4


class MediaSettings(BaseModel):
    # Seconds one file download from Telegram may take.
    download_timeout: float = Field(default=30.0, gt=0)
    # Seconds to wait for the rest of an album: Telegram sends each of its photos as an update.
    album_window: float = Field(default=1.0, gt=0, le=10)
    # Longest side of an image sent to GLM, in pixels (Zhipu takes up to 6000).
    image_max_side: int = Field(default=2048, ge=64, le=6000)
    # Largest JPEG sent to GLM, in bytes (Zhipu takes up to 5 MB, base64 or not).
    image_max_bytes: int = Field(default=MAX_JPEG_BYTES, ge=64 * 1024, le=MAX_JPEG_BYTES)
    # Most earlier images of the conversation re-attached to a prompt (the newest first).
    history_images: int = Field(default=3, ge=0, le=50)
    # Megabytes of re-encoded images kept in process memory for follow-up questions.
    image_cache_mb: int = Field(default=64, ge=0)
    # Longest voice message or audio file transcribed, in seconds (glm-asr: 30 s at most).
    voice_max_seconds: float = Field(default=30.0, gt=0, le=ASR_MAX_SECONDS)
