"""Voice messages, audio files and documents as pending inputs of a turn.

A handler describes what was sent (`MediaInputs.voice`, `MediaInputs.document`); the
turn reads it in its place in the conversation's line (`bot.turns.inputs.prepare`):
download from Telegram (`bot.media.files`), then a transcript (`bot.media.voice` and
GLM's speech recognition) or the document's text (`bot.media.documents`). Anything that
cannot be answered raises PreparationRefused with the text that tells the user why.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Protocol

from bot.config.media import TELEGRAM_DOWNLOAD_LIMIT
from bot.media.documents import (
    DocumentUnreadable,
    UnsupportedDocument,
    extract_text,
    kind_of,
)
from bot.media.files import FileTooLarge, FileUnavailable, TelegramFiles, check_size
from bot.media.voice import AudioTooLong, AudioUnreadable, to_wav
from bot.messages import TextPart
from bot.sanitize import clean_text, is_blank
from bot.turns.types import Attachment, PendingInput, PreparationRefused, Prepared

__all__ = ["MediaInputs", "Transcriber"]

log = logging.getLogger(__name__)

# MIME types that are certainly not text: refused before anything is downloaded.
_BINARY_PREFIXES = ("image/", "video/", "audio/", "font/")
_BINARY_TYPES = frozenset(
    {
        "application/zip",
        "application/gzip",
        "application/x-7z-compressed",
        "application/x-rar-compressed",
        "application/vnd.rar",
        "application/x-tar",
        "application/vnd.android.package-archive",
        "application/x-msdownload",
        "application/msword",  # the old binary .doc
        "application/vnd.ms-excel",
        "application/vnd.ms-powerpoint",
    }
)


class Transcriber(Protocol):
    """Speech to text (`bot.llm.GLMClient.transcribe`)."""

    async def transcribe(
        self, audio: bytes, *, model: str, filename: str = ..., mime: str = ...
    ) -> str: ...


class MediaInputs:
    """Builds the pending inputs of voice and document turns; one per bot."""

    def __init__(
        self,
        files: TelegramFiles,
        transcriber: Transcriber,
        *,
        speech_model: str | None,
        voice_max_seconds: float,
    ) -> None:
        self._files = files
        self._transcriber = transcriber
        self._speech_model = speech_model
        self._voice_max_seconds = voice_max_seconds

    def voice(self, file_id: str, *, seconds: int | None, size: int | None) -> PendingInput:
        """A voice message or audio file; its transcript becomes the question."""
        return _Voice(self, file_id, seconds, size)

    def document(
        self, file_id: str, *, name: str | None, mime: str | None, size: int | None, question: str
    ) -> PendingInput:
        """A document; its text joins ``question`` (the caption, or "summarise this")."""
        return _Document(self, file_id, name or "document", mime, size, question)

    async def _download(self, file_id: str, size: int | None) -> bytes:
        try:
            check_size(size, TELEGRAM_DOWNLOAD_LIMIT)
            return await self._files.download(file_id)
        except FileTooLarge:
            raise PreparationRefused("media_too_large") from None
        except FileUnavailable as exc:
            log.warning("could not download a file: %s", exc)
            raise PreparationRefused("media_unavailable") from None


@dataclass(frozen=True, slots=True)
class _Voice:
    inputs: MediaInputs
    file_id: str
    seconds: int | None
    size: int | None

    async def prepare(self) -> Prepared:
        inputs = self.inputs
        model = inputs._speech_model
        if model is None:
            raise PreparationRefused("voice_unavailable")
        limit = inputs._voice_max_seconds
        too_long = PreparationRefused("voice_too_long", limit=f"{limit:g}")
        # Telegram's duration saves the download of a recording that is too long anyway
        if self.seconds is not None and self.seconds > limit:
            raise too_long
        data = await inputs._download(self.file_id, self.size)
        try:
            speech = await to_wav(data, max_seconds=limit)
        except AudioTooLong:
            raise too_long from None
        except AudioUnreadable as exc:
            log.info("unreadable audio: %s", exc)
            raise PreparationRefused("voice_unreadable") from None
        # GLMError goes on to the answer, which reports it like a failed answer
        said = await inputs._transcriber.transcribe(speech.wav, model=model)
        said = clean_text(said).strip()
        if is_blank(said):
            raise PreparationRefused("voice_no_speech")
        return Prepared((TextPart(said),), quote=said)


@dataclass(frozen=True, slots=True)
class _Document:
    inputs: MediaInputs
    file_id: str
    name: str
    mime: str | None
    size: int | None
    question: str

    async def prepare(self) -> Prepared:
        mime = (self.mime or "").lower()
        if kind_of(self.name, mime) is None and (
            mime.startswith(_BINARY_PREFIXES) or mime in _BINARY_TYPES
        ):
            raise PreparationRefused("document_unsupported")
        data = await self.inputs._download(self.file_id, self.size)
        try:
            document = await extract_text(data, name=self.name, mime=self.mime)
        except UnsupportedDocument:
            raise PreparationRefused("document_unsupported") from None
        except DocumentUnreadable as exc:
            log.info("unreadable document: %s", exc)
            raise PreparationRefused("document_unreadable", name=self.name) from None
        attachment = Attachment(self.name, clean_text(document.text))
        return Prepared((TextPart(self.question),), attachment=attachment)
