"""The webhook's door (issue 14.8): an unauthenticated request is a 401 whatever its
secret header holds, a body that is not an update is a 400 with nothing acknowledged or
processed, and no refusal logs a traceback or the body's content."""

from __future__ import annotations

import asyncio
import json
import logging
from urllib.parse import urlsplit

import aiohttp
import pytest

from tests.webhook_updates import WebhookBot, private_text_update, webhook_bot

USER = 3101
# Put in every refused body: it must never reach a log line or stderr.
MARKER = "hunter2-private-words"


async def post_raw(url: str, headers: bytes, body: bytes) -> int:
    """POST with header bytes exactly as given (an HTTP client would encode or refuse
    non-ASCII values); returns the status code."""
    parts = urlsplit(url)
    assert parts.hostname is not None
    assert parts.port is not None
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    try:
        writer.write(
            b"POST " + parts.path.encode() + b" HTTP/1.1\r\n"
            b"Host: " + parts.netloc.encode() + b"\r\n"
            b"Content-Type: application/json\r\n"
            b"Content-Length: " + str(len(body)).encode() + b"\r\n"
            b"Connection: close\r\n" + headers + b"\r\n" + body
        )
        await writer.drain()
        status_line = await asyncio.wait_for(reader.readline(), 10)
        return int(status_line.split()[1])
    finally:
        writer.close()
        await writer.wait_closed()


def secret_header(value: bytes) -> bytes:
    return b"X-Telegram-Bot-Api-Secret-Token: " + value + b"\r\n"


async def assert_still_answers(w: WebhookBot) -> None:
    """Nothing refused reached GLM or the chat, and a genuine update is answered."""
    assert await w.tg.deliver_webhook(private_text_update(w.tg, USER, "Hello")) == 200
    await w.tg.wait_for(lambda: len(w.tg.chat_messages(USER)) == 1, what="the answer")
    await w.tg.wait_for(lambda: w.app.turns.in_flight == 0, what="idle")
    assert [r["messages"][-1]["content"] for r in w.glm.requests] == ["Hello"]


def assert_quiet(caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]) -> None:
    captured = capsys.readouterr()
    assert MARKER not in caplog.text + captured.err + captured.out
    assert not [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]


def valid_update_with_marker(w: WebhookBot) -> dict[str, object]:
    update = private_text_update(w.tg, USER, f"Let me in {MARKER}")
    update["update_id"] = 1
    return update


@pytest.mark.parametrize(
    "value",
    [
        "пароль".encode(),  # valid UTF-8, not ASCII
        b"\xff\xfe\x80garbage",  # not even UTF-8
        "é".encode("latin-1"),
    ],
    ids=["cyrillic", "invalid-utf8", "latin1"],
)
async def test_a_non_ascii_secret_is_refused_like_any_wrong_one(
    redis_url: str,
    key_prefix: str,
    value: bytes,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.INFO)
    async with webhook_bot(redis_url, key_prefix) as w:
        body = json.dumps(valid_update_with_marker(w)).encode()
        assert await post_raw(w.url, secret_header(value), body) == 401
        # the right secret with a non-ASCII tail too
        tail = w.secret.encode() + "ü".encode()
        assert await post_raw(w.url, secret_header(tail), body) == 401
        await assert_still_answers(w)
    assert_quiet(caplog, capsys)


def refused_bodies() -> dict[str, bytes]:
    deep = 100_000
    not_an_update = {"update_id": 7, "message": {"text": MARKER}}  # no chat, date, id
    return {
        "empty": b"",
        "truncated": b'{"update_id": 5, "message": {"text": "' + MARKER.encode(),
        "not json": b"update_id=5&text=" + MARKER.encode(),
        "not utf-8": b'{"update_id": 5, "x": "\xff\xfe"}',
        "deep array": b"[" * deep + b"]" * deep,
        "deep object": b'{"a":' * deep + b"1" + b"}" * deep,
        "a list": json.dumps([{"update_id": 5, "message": {"text": MARKER}}]).encode(),
        "a string": json.dumps(MARKER).encode(),
        "no update_id": json.dumps({"message": {"text": MARKER}}).encode(),
        "string update_id": json.dumps({"update_id": "5", "text": MARKER}).encode(),
        "bool update_id": json.dumps({"update_id": True, "text": MARKER}).encode(),
        "invalid message": json.dumps(not_an_update).encode(),
        # pydantic refuses a key it cannot read as text
        "surrogate key": json.dumps({"update_id": 8, "future\udfff": MARKER}).encode(),
    }


@pytest.mark.parametrize("leases", ["off", "on"])
async def test_a_body_that_is_not_an_update_is_a_400_and_nothing_is_processed(
    redis_url: str,
    key_prefix: str,
    leases: str,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.INFO)
    async with webhook_bot(redis_url, key_prefix, leases={"enabled": leases}) as w:
        headers = {"X-Telegram-Bot-Api-Secret-Token": w.secret}
        statuses = {}
        async with aiohttp.ClientSession() as session:
            for name, body in refused_bodies().items():
                async with session.post(w.url, data=body, headers=headers) as resp:
                    statuses[name] = resp.status
        assert statuses == dict.fromkeys(refused_bodies(), 400)
        # refused at the door: the dispatcher never saw any of them
        samples = w.app.metrics.registry.get_sample_value
        assert samples("glmbot_updates_total", {"type": "message", "outcome": "handled"}) is None
        # each refusal says why, with the update_id where there was one
        refusals = [r.getMessage() for r in caplog.records if "request refused" in r.getMessage()]
        assert len(refusals) == len(statuses)
        assert any("update 7: not a valid update (fields: message)" in r for r in refusals)
        await assert_still_answers(w)
    assert_quiet(caplog, capsys)
