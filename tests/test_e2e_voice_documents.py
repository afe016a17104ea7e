"""Voice messages and documents, end to end: the real dispatcher polling the fake Bot API
(getFile and downloads included), the real SDK on the fake GLM (chat and speech), real
Redis. Audio is real OGG/Opus, PDFs and .docx files are made in the test."""

from __future__ import annotations

import json
import logging

import pytest

from bot.texts import text
from tests.fakes.glm import Reply
from tests.fakes.glm_audio import Transcript
from tests.harness import BotHarness, running_bot
from tests.media_samples import docx_with_text, ogg_opus, pdf_with_text

USER = 2001
GROUP = -1002223334445
BOT_USERNAME = "glm_test_bot"


def user_text(h: BotHarness, index: int = -1) -> str:
    """The last user message of a GLM request, as text."""
    content = h.glm_messages(index)[-1]["content"]
    assert isinstance(content, str)
    return content


async def answered(h: BotHarness, chat_id: int, needle: str) -> str:
    await h.tg.wait_for(lambda: needle in h.last_text(chat_id), what=f"{needle!r} in chat")
    await h.wait_idle()
    return h.last_text(chat_id)


async def test_voice_is_transcribed_quoted_and_answered(redis_url: str, key_prefix: str) -> None:
    async with running_bot(redis_url, key_prefix, reply=Reply(text="Paris.")) as h:
        h.glm.transcriptions.script(Transcript("What is the capital of France?"))
        h.tg.voice_message(USER, USER, ogg_opus(1.5), duration=2)

        shown = await answered(h, USER, "Paris.")

        # the transcript is quoted above the answer, in the same message
        assert shown.startswith("🎤 What is the capital of France?")
        assert shown.endswith("Paris.")
        (message,) = h.tg.chat_messages(USER)
        assert any(e["type"] == "blockquote" and e["offset"] == 0 for e in message.entities)
        # GLM's speech recognition got a 16 kHz WAV of the recording, from the catalog
        (asr,) = h.glm.transcriptions.requests
        assert asr.fields["model"] == "glm-asr-2512"
        assert asr.rate == 16_000
        assert asr.seconds == pytest.approx(1.5, abs=0.05)
        # the transcript is the question, and stays one for a follow-up
        assert user_text(h) == "What is the capital of France?"
        h.tg.private_text(USER, "And of Italy?")
        await h.wait_for_messages(USER, 2)
        await h.wait_idle()
        assert [m["content"] for m in h.glm_messages()] == [
            "What is the capital of France?",
            "Paris.",
            "And of Italy?",
        ]


async def test_group_voice_with_a_caption_mentioning_the_bot_is_answered(
    redis_url: str, key_prefix: str
) -> None:
    async with running_bot(
        redis_url, key_prefix, fake_telegram={"bot_username": BOT_USERNAME}
    ) as h:
        h.tg.voice_message(GROUP, USER, ogg_opus(1.0), caption="ignored: not addressed")
        h.tg.voice_message(GROUP, USER, ogg_opus(1.0), caption=f"@{BOT_USERNAME} listen")

        await answered(h, GROUP, "Hello from GLM!")
        assert len(h.glm.transcriptions.requests) == 1
        assert user_text(h) == "Alice: What is the capital of France?"


async def test_over_long_and_unreadable_audio_get_their_replies(
    redis_url: str, key_prefix: str
) -> None:
    async with running_bot(redis_url, key_prefix, media={"voice_max_seconds": 2}) as h:
        # Telegram's duration says it: nothing is downloaded
        h.tg.voice_message(USER, USER, ogg_opus(0.5), duration=45)
        first = await answered(h, USER, "too long")
        assert "at most 2 seconds" in first
        # Telegram's duration is wrong: the decoding finds out
        h.tg.voice_message(USER, USER, ogg_opus(3.0), duration=1)
        await h.wait_for_messages(USER, 2)
        await h.wait_idle()
        assert "too long" in h.last_text(USER)
        # not audio at all
        h.tg.voice_message(USER, USER, b"this is not an ogg file" * 20, duration=1)
        await h.wait_for_messages(USER, 3)
        await h.wait_idle()
        assert "could not play this audio" in h.last_text(USER)

        assert h.glm.transcriptions.requests == []
        assert h.glm.requests == []
        # nothing was stored: the next question starts a clean conversation
        h.tg.private_text(USER, "hello")
        await h.wait_for_messages(USER, 4)
        await h.wait_idle()
        assert h.glm_messages() == [{"role": "user", "content": "hello"}]


async def test_a_voice_message_too_large_to_download(redis_url: str, key_prefix: str) -> None:
    async with running_bot(redis_url, key_prefix) as h:
        h.tg.voice_message(USER, USER, ogg_opus(0.5), size=21 * 1024 * 1024)
        shown = await answered(h, USER, "20 MB")
        assert "larger than 20 MB" in shown
        assert h.glm.transcriptions.requests == []


async def test_speech_recognition_failure_is_reported(redis_url: str, key_prefix: str) -> None:
    async with running_bot(redis_url, key_prefix) as h:
        h.glm.transcriptions.script(Transcript(status=400, code="1214", message="bad file"))
        h.tg.voice_message(USER, USER, ogg_opus(0.5))
        await h.wait_for_messages(USER, 1)
        await h.wait_idle()
        assert h.last_text(USER) == text("bad_request")
        assert h.glm.requests == []

        h.glm.transcriptions.script(Transcript(status=429, code="1302"), Transcript("   "))
        h.tg.voice_message(USER, USER, ogg_opus(0.5))
        await h.wait_for_messages(USER, 2)
        await h.wait_idle()
        # retried after "slow down", then nothing was said
        assert h.last_text(USER) == text("voice_no_speech")
        assert len(h.glm.transcriptions.requests) == 3


async def test_text_document_content_reaches_glm(redis_url: str, key_prefix: str) -> None:
    async with running_bot(redis_url, key_prefix, reply=Reply(text="It lists fruit.")) as h:
        data = b"name,colour\napple,red\nbanana,yellow\n"
        h.tg.document_message(USER, USER, data, file_name="fruit.csv", mime_type="text/csv")
        await answered(h, USER, "It lists fruit.")
        question = user_text(h)
        assert question.startswith("Summarise this document.")
        assert "[Document: fruit.csv]\nname,colour\napple,red\nbanana,yellow" in question

        # a caption is the question; the stored document keeps follow-ups informed
        h.tg.private_text(USER, "Which is yellow?")
        await h.wait_for_messages(USER, 2)
        await h.wait_idle()
        assert "banana,yellow" in h.glm_messages()[0]["content"]


async def test_pdf_and_docx_text_reaches_glm(redis_url: str, key_prefix: str) -> None:
    async with running_bot(redis_url, key_prefix) as h:
        pdf = pdf_with_text("Quarterly report", "Revenue grew by 12 percent")
        h.tg.document_message(
            USER,
            USER,
            pdf,
            file_name="report.pdf",
            mime_type="application/pdf",
            caption="How much did revenue grow?",
        )
        await answered(h, USER, "Hello from GLM!")
        question = user_text(h)
        assert question.startswith("How much did revenue grow?")
        assert "[Document: report.pdf]" in question
        assert "Quarterly report" in question
        assert "Revenue grew by 12 percent" in question

        docx = docx_with_text("Minutes of the meeting", "Bob will send the slides")
        h.tg.document_message(
            USER, USER, docx, file_name="minutes.docx", mime_type="application/octet-stream"
        )
        await h.wait_for_messages(USER, 2)
        await h.wait_idle()
        assert "Bob will send the slides" in user_text(h)


async def test_too_large_document_is_cut_with_a_note(redis_url: str, key_prefix: str) -> None:
    # a 2,000-token prompt budget: the document may take about half of it
    models = {"glm-4.7-flash": {"kind": "chat", "context_window": 3000, "max_tokens": 1000}}
    lines = [f"line {i:05d}: the quick brown fox jumps over the lazy dog" for i in range(2000)]
    data = "\n".join(lines).encode()
    async with running_bot(redis_url, key_prefix, models=models) as h:
        h.tg.document_message(USER, USER, data, file_name="big.txt")
        shown = await answered(h, USER, "Hello from GLM!")

        question = user_text(h)
        assert "line 00000" in question
        assert lines[-1] not in question
        read = len(question.split("]\n", 1)[1])
        assert f"cut: the first {read:,} of {len(data):,} characters" in question
        percent = read * 100 // len(data)
        assert f"big.txt is too long to read whole: I read the first {percent}%" in shown
        assert f"({read:,} of {len(data):,} characters)" in shown
        assert 0 < percent < 50


async def test_unsupported_and_empty_documents_get_a_note(redis_url: str, key_prefix: str) -> None:
    async with running_bot(redis_url, key_prefix) as h:
        h.tg.document_message(
            USER, USER, b"PK\x03\x04 zip", file_name="a.zip", mime_type="application/zip"
        )
        await h.wait_for_messages(USER, 1)
        await h.wait_idle()
        assert "not this kind of file" in h.last_text(USER)
        h.tg.document_message(USER, USER, b"%PDF-1.4 broken", file_name="x.pdf")
        await h.wait_for_messages(USER, 2)
        await h.wait_idle()
        assert "I found no text in x.pdf" in h.last_text(USER)
        assert h.glm.requests == []


async def test_voice_and_text_keep_their_order(redis_url: str, key_prefix: str) -> None:
    """A text sent after a voice message is answered after it, though the voice message
    needs a download and a transcription first."""
    async with running_bot(redis_url, key_prefix) as h:
        h.glm.transcriptions.script(Transcript("first, spoken"))
        h.tg.voice_message(USER, USER, ogg_opus(2.0))
        h.tg.private_text(USER, "second, typed")
        await h.wait_for_messages(USER, 2)
        await h.wait_idle()
        assert [m["messages"][-1]["content"] for m in h.glm.requests] == [
            "first, spoken",
            "second, typed",
        ]


async def test_no_request_or_log_holds_the_bot_token(
    redis_url: str, key_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    async with running_bot(redis_url, key_prefix) as h:
        h.tg.voice_message(USER, USER, ogg_opus(0.5))
        h.tg.document_message(USER, USER, b"some notes", file_name="n.txt")
        h.tg.voice_message(USER, USER, ogg_opus(0.5), size=25 * 1024 * 1024)
        await h.wait_for_messages(USER, 3)
        await h.wait_idle()
        token = h.tg.token
        secret = token.split(":", 1)[1]
        assert h.glm.transcriptions.requests
        for asr in h.glm.transcriptions.requests:
            assert secret.encode() not in asr.audio
            assert secret not in json.dumps([asr.fields, asr.headers, asr.filename])
        assert secret not in json.dumps([h.glm.requests, h.glm.headers])
        assert secret not in caplog.text


async def test_media_questions_count_against_the_limits(redis_url: str, key_prefix: str) -> None:
    async with running_bot(redis_url, key_prefix, limits={"user_per_minute": 1}) as h:
        h.tg.voice_message(USER, USER, ogg_opus(0.5))
        await answered(h, USER, "Hello from GLM!")
        h.tg.document_message(USER, USER, b"more notes", file_name="n.txt")
        h.tg.voice_message(USER, USER, ogg_opus(0.5))
        await h.wait_for_messages(USER, 2)
        await h.wait_idle()
        assert "Hello from GLM!" not in h.last_text(USER)
        # refused before anything was downloaded, transcribed or asked
        assert len(h.glm.transcriptions.requests) == 1
        assert len(h.glm.requests) == 1
        assert len(h.tg.chat_messages(USER)) == 2
