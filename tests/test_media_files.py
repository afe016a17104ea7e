"""TelegramFiles against the fake Bot API, and the fake's media updates parsed by aiogram."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator

import pytest
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.types import BufferedInputFile, Update

from bot.media.files import FileTooLarge, FileUnavailable, TelegramFiles
from tests.fakes.telegram import FakeTelegram, Upload

USER = 100
GROUP = -1001234567890


@pytest.fixture
async def fake() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram() as server:
        yield server


@pytest.fixture
async def bot(fake: FakeTelegram) -> AsyncIterator[Bot]:
    client = Bot(fake.token, session=AiohttpSession(api=TelegramAPIServer.from_base(fake.base_url)))
    yield client
    await client.session.close()


async def test_download_by_file_id(fake: FakeTelegram, bot: Bot) -> None:
    data = bytes(range(256)) * 1000
    file_id = fake.add_file(data)
    assert await TelegramFiles(bot, chunk_size=4096).download(file_id) == data
    assert fake.downloads_of(file_id) == 1


async def test_reported_size_over_the_limit_is_refused_before_downloading(
    fake: FakeTelegram, bot: Bot
) -> None:
    file_id = fake.add_file(b"x" * 2000)
    with pytest.raises(FileTooLarge) as caught:
        await TelegramFiles(bot, max_bytes=1000).download(file_id)
    assert caught.value.size == 2000
    assert fake.downloads_of(file_id) == 0


async def test_telegram_refuses_files_over_20_mb(fake: FakeTelegram, bot: Bot) -> None:
    file_id = fake.add_file(b"tiny", size=25 * 1024 * 1024)
    with pytest.raises(FileTooLarge):
        await TelegramFiles(bot).download(file_id)
    assert fake.downloads_of(file_id) == 0


async def test_bytes_beyond_the_limit_stop_the_download(fake: FakeTelegram, bot: Bot) -> None:
    # Telegram under-reports: the bytes themselves are counted too
    file_id = fake.add_file(b"y" * 50_000, size=10)
    with pytest.raises(FileTooLarge):
        await TelegramFiles(bot, max_bytes=20_000, chunk_size=1024).download(file_id)


async def test_errors_never_carry_the_token(
    fake: FakeTelegram, bot: Bot, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    files = TelegramFiles(bot)
    gone = fake.add_file(b"old photo")
    fake.forget_file(gone)
    with pytest.raises(FileUnavailable) as refused:
        await files.download(gone)
    # getFile works but the download fails: aiohttp's own error text holds the URL
    path_gone = fake.add_file(b"photo")
    fake._paths.pop(fake.file(path_gone).file_path)
    with pytest.raises(FileUnavailable) as failed:
        await files.download(path_gone)
    for caught in (refused, failed):
        assert fake.token not in str(caught.value)
        assert caught.value.__cause__ is None
        assert caught.value.__suppress_context__
    assert "404" in str(failed.value)
    assert fake.token not in caplog.text


async def test_media_updates_parse_as_aiogram_messages(fake: FakeTelegram, bot: Bot) -> None:
    fake.photo_message(USER, USER, b"jpeg bytes", caption="what is it?")
    fake.album_messages(GROUP, USER, [b"one", b"two"], caption="@glm_test_bot compare")
    fake.voice_message(USER, USER, b"ogg", duration=4)
    fake.audio_message(GROUP, USER, b"mp3", caption="@glm_test_bot lyrics?")
    fake.document_message(USER, USER, b"a,b\n1,2\n", file_name="t.csv", mime_type="text/csv")
    updates = [Update.model_validate(raw) for raw in await bot.get_updates()]
    photo, first, second, voice, audio, document = (u.message for u in updates)
    assert photo is not None
    assert photo.photo is not None
    assert photo.caption == "what is it?"
    assert [size.width for size in photo.photo] == [90, 1280]
    assert await TelegramFiles(bot).download(photo.photo[-1].file_id) == b"jpeg bytes"
    assert first is not None
    assert second is not None
    assert first.photo
    assert second.photo
    assert first.media_group_id == second.media_group_id is not None
    assert first.caption_entities is not None
    assert first.caption_entities[0].type == "mention"
    assert second.caption is None
    assert voice is not None
    assert voice.voice is not None
    assert voice.voice.duration == 4
    assert audio is not None
    assert audio.audio is not None
    assert audio.chat.type == "supergroup"
    assert document is not None
    assert document.document is not None
    assert document.document.mime_type == "text/csv"


async def test_send_photo_records_the_upload(fake: FakeTelegram, bot: Bot) -> None:
    sent = await bot.send_photo(
        USER, BufferedInputFile(b"\xff\xd8picture", "cat.jpg"), caption="a cat"
    )
    assert sent.photo is not None
    assert sent.caption == "a cat"
    [photo] = fake.sent_photos
    assert (photo.photo, photo.caption, photo.message_id) == (b"\xff\xd8picture", "a cat", 1)
    [call] = fake.calls_of("sendPhoto")
    assert isinstance(call.params[call.params["photo"].removeprefix("attach://")], Upload)
    await bot.send_photo(USER, "https://example.com/cat.png")
    assert fake.sent_photos[-1].photo == "https://example.com/cat.png"
