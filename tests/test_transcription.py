"""Speech: GLMClient.transcribe (the real SDK, multipart, against the fake GLM) and the
audio conversion that feeds it (PyAV, real OGG/Opus)."""

from __future__ import annotations

import asyncio
import io
import wave
from collections.abc import AsyncIterator

import pytest

from bot.llm import ErrorKind, GLMError
from bot.media.voice import RATE, AudioTooLong, AudioUnreadable, to_wav
from tests.fakes.glm import FakeGLM, Reply
from tests.fakes.glm_audio import Transcript
from tests.llm_rig import API_KEY, ClientFactory, client_factory
from tests.media_samples import ogg_opus


@pytest.fixture
async def fake() -> AsyncIterator[FakeGLM]:
    async with FakeGLM() as server:
        yield server


@pytest.fixture
async def make_client(fake: FakeGLM) -> AsyncIterator[ClientFactory]:
    async with client_factory(fake) as make:
        yield make


async def test_voice_is_converted_to_16khz_mono_wav() -> None:
    speech = await to_wav(ogg_opus(2.0), max_seconds=30)
    with wave.open(io.BytesIO(speech.wav)) as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, RATE)
        assert wav.getnframes() / RATE == pytest.approx(2.0, abs=0.05)
    assert speech.seconds == pytest.approx(2.0, abs=0.05)


async def test_audio_past_the_limit_is_refused() -> None:
    with pytest.raises(AudioTooLong):
        await to_wav(ogg_opus(3.0), max_seconds=2)


@pytest.mark.parametrize("data", [b"", b"not audio at all" * 64, b"OggS" + bytes(200)])
async def test_what_is_not_audio_is_unreadable(data: bytes) -> None:
    with pytest.raises(AudioUnreadable):
        await to_wav(data, max_seconds=30)


async def test_transcription_sends_multipart_and_returns_the_text(
    fake: FakeGLM, make_client: ClientFactory
) -> None:
    fake.transcriptions.script(Transcript("你好，世界"))
    client = make_client()
    speech = await to_wav(ogg_opus(1.0), max_seconds=30)

    text = await client.transcribe(speech.wav, model="glm-asr-2512")

    assert text == "你好，世界"
    [got] = fake.transcriptions.requests
    assert got.fields["model"] == "glm-asr-2512"
    assert got.filename == "speech.wav"
    assert got.audio == speech.wav
    assert got.rate == RATE
    assert got.seconds == pytest.approx(1.0, abs=0.05)
    assert got.headers["Authorization"].startswith("Bearer ")
    assert fake.transcriptions.refused == []


async def test_transcription_errors_are_mapped_and_retried(
    fake: FakeGLM, make_client: ClientFactory
) -> None:
    fake.transcriptions.script(Transcript(status=503, code="1305"), Transcript("again"))
    client = make_client(retry_attempts=2)
    speech = await to_wav(ogg_opus(0.5), max_seconds=30)
    assert await client.transcribe(speech.wav, model="glm-asr-2512") == "again"
    assert len(fake.transcriptions.requests) == 2

    fake.transcriptions.script(Transcript(status=429, code="1113", message=f"key {API_KEY}"))
    with pytest.raises(GLMError) as caught:
        await client.transcribe(speech.wav, model="glm-asr-2512")
    assert caught.value.kind is ErrorKind.NO_BALANCE
    assert API_KEY not in str(caught.value)
    assert len(fake.transcriptions.requests) == 3  # no balance: never retried


async def test_a_format_the_asr_refuses_is_a_bad_request(
    fake: FakeGLM, make_client: ClientFactory
) -> None:
    client = make_client()
    with pytest.raises(GLMError) as caught:
        await client.transcribe(ogg_opus(0.5), model="glm-asr-2512", filename="v.ogg")
    assert caught.value.kind is ErrorKind.BAD_REQUEST
    assert fake.transcriptions.refused == ["not a wav or mp3 file"]


async def test_transcription_and_streams_share_the_client(
    fake: FakeGLM, make_client: ClientFactory
) -> None:
    """A transcription next to a streaming answer, on the same loop and client."""
    fake.script(Reply(text="a streamed answer", token_interval=0.01))
    client = make_client()
    speech = await to_wav(ogg_opus(0.5), max_seconds=30)

    async def stream() -> str:
        from bot.llm import TextDelta
        from tests.llm_rig import MESSAGES, OPTIONS

        pieces = [
            e.text async for e in client.stream(MESSAGES, OPTIONS) if isinstance(e, TextDelta)
        ]
        return "".join(pieces)

    streamed, said = await asyncio.gather(
        stream(), client.transcribe(speech.wav, model="glm-asr-2512")
    )
    assert streamed == "a streamed answer"
    assert said == fake.transcriptions.default.text
    assert client.in_flight == 0
