"""Speech for GLM: any audio Telegram delivers, as the WAV file Zhipu's ASR accepts.

Telegram voice messages are OGG/Opus and audio files anything (MP3, M4A, FLAC...);
glm-asr takes .wav or .mp3 of at most 30 s (glm-api.md). Everything is decoded and
written as 16 kHz mono 16-bit WAV, the rate speech recognisers work at (30 s is about
1 MB): one path for every input, no guessing which MP3 variant the ASR would take.

Library: PyAV (``av``), FFmpeg's decoders and resampler in a wheel that bundles FFmpeg,
so `make run` needs no system program (pydub and ffmpeg-python run an ``ffmpeg`` binary
that would have to be installed). Decoding is CPU work in C that releases the GIL:
``to_wav`` runs in a worker thread, off the event loop.
"""

from __future__ import annotations

import asyncio
import io
import wave
from dataclasses import dataclass

__all__ = ["AudioTooLong", "AudioUnreadable", "Speech", "to_wav"]

# The rate and layout written (speech needs no more; the file stays small).
RATE = 16_000
_SAMPLE_BYTES = 2


class AudioUnreadable(Exception):
    """Not audio, or audio FFmpeg cannot decode (the text is safe to log)."""


class AudioTooLong(Exception):
    def __init__(self, seconds: float, limit: float) -> None:
        super().__init__(f"audio of {seconds:.1f} s, limit {limit:g} s")
        self.seconds = seconds
        self.limit = limit


@dataclass(frozen=True, slots=True)
class Speech:
    wav: bytes
    seconds: float


async def to_wav(data: bytes, *, max_seconds: float) -> Speech:
    """``data`` (any audio FFmpeg reads) as 16 kHz mono WAV; AudioTooLong past
    ``max_seconds`` (decoding stops there), AudioUnreadable when it is not audio."""
    return await asyncio.to_thread(_convert, data, max_seconds)


def _convert(data: bytes, max_seconds: float) -> Speech:
    # imported on the first voice message: FFmpeg's libraries take tens of megabytes,
    # which a bot that never hears a voice message need not carry
    import av
    import av.error

    limit = round(max_seconds * RATE)
    pcm = bytearray()
    try:
        with av.open(io.BytesIO(data), mode="r") as source:
            if not source.streams.audio:
                raise AudioUnreadable("no audio stream")
            stream = source.streams.audio[0]
            resampler = av.AudioResampler(format="s16", layout="mono", rate=RATE)
            for frame in source.decode(stream):
                for out in resampler.resample(frame):
                    pcm += bytes(out.planes[0])[: out.samples * _SAMPLE_BYTES]
                if len(pcm) > limit * _SAMPLE_BYTES:
                    raise AudioTooLong(len(pcm) / _SAMPLE_BYTES / RATE, max_seconds)
            for out in resampler.resample(None):
                pcm += bytes(out.planes[0])[: out.samples * _SAMPLE_BYTES]
    except av.error.FFmpegError as exc:
        raise AudioUnreadable(f"FFmpeg: {type(exc).__name__}") from None
    samples = len(pcm) // _SAMPLE_BYTES
    if samples > limit:
        raise AudioTooLong(samples / RATE, max_seconds)
    if samples == 0:
        raise AudioUnreadable("no samples")
    return Speech(_wav(bytes(pcm)), samples / RATE)


def _wav(pcm: bytes) -> bytes:
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(_SAMPLE_BYTES)
        wav.setframerate(RATE)
        wav.writeframes(pcm)
    return out.getvalue()
