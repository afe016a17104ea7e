"""Structured logs: the JSON format, its redaction, the format choice, the answer line."""

from __future__ import annotations

import io
import json
import logging
import sys

import pytest

from bot.observability.logs_json import JsonFormatter, resolve_log_format
from bot.observability.redaction import REDACTED, RedactingFormatter
from tests.fakes.glm import Reply
from tests.harness import running_bot

TOKEN_SECRET = "AAE-very-secret"
PASSWORD = 'pa"ss\\word'


def record(message: str, *args: object, **extra: object) -> logging.LogRecord:
    rec = logging.LogRecord("bot.test", logging.WARNING, __file__, 1, message, args, None)
    for name, value in extra.items():
        setattr(rec, name, value)
    return rec


def test_json_lines_carry_fields_and_extras() -> None:
    line = JsonFormatter([]).format(record("answered chat %s", 42, chat_id=42, total_s=1.5))
    entry = json.loads(line)
    assert entry["message"] == "answered chat 42"
    assert entry["level"] == "WARNING"
    assert entry["logger"] == "bot.test"
    assert entry["time"].endswith("+00:00")
    assert entry["chat_id"] == 42
    assert entry["total_s"] == 1.5
    assert "\n" not in line


def test_json_redacts_secrets_everywhere_even_when_escaping_would_hide_them() -> None:
    formatter = JsonFormatter([TOKEN_SECRET, PASSWORD])
    try:
        raise RuntimeError(f"redis://:{PASSWORD}@redis:6379 refused")
    except RuntimeError:
        rec = record(
            "GET https://api.telegram.org/bot42:%s/getMe",
            TOKEN_SECRET,
            url=f"redis://:{PASSWORD}@redis",
        )
        rec.exc_info = sys.exc_info()
    line = formatter.format(rec)
    entry = json.loads(line)
    assert TOKEN_SECRET not in line
    assert PASSWORD not in line
    assert json.dumps(PASSWORD)[1:-1] not in line  # nor its JSON-escaped spelling
    assert REDACTED in entry["message"]
    assert REDACTED in entry["url"]
    assert "RuntimeError" in entry["exception"]
    assert REDACTED in entry["exception"]


def test_text_format_still_redacts() -> None:
    formatter = RedactingFormatter("%(message)s", [TOKEN_SECRET])
    assert formatter.format(record("token %s", TOKEN_SECRET)) == f"token {REDACTED}"


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_log_format_choice() -> None:
    assert resolve_log_format("auto", None, io.StringIO()) == "json"
    assert resolve_log_format("auto", None, _Terminal()) == "text"
    assert resolve_log_format("text", None, io.StringIO()) == "text"
    assert resolve_log_format("text", "JSON", _Terminal()) == "json"  # LOG_FORMAT wins
    with pytest.raises(ValueError, match="LOG_FORMAT"):
        resolve_log_format("auto", "yaml", io.StringIO())


async def test_one_info_line_per_answer_without_its_content(
    redis_url: str, key_prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    question = "my private question about zebras"
    answer = "an equally private answer about stripes"
    caplog.set_level(logging.INFO)
    async with running_bot(redis_url, key_prefix, reply=Reply(text=answer)) as h:
        h.tg.private_text(5001, question)
        await h.tg.wait_for(lambda: h.last_text(5001) == answer, what="the answer")
        await h.wait_idle()
        await h.tg.wait_for(
            lambda: any(r.name == "bot.answers" for r in caplog.records), what="answer line"
        )

    (line,) = [r for r in caplog.records if r.name == "bot.answers"]
    assert line.levelno == logging.INFO
    fields = line.__dict__
    assert fields["chat_id"] == 5001
    assert fields["outcome"] == "completed"
    assert 0 <= fields["first_token_s"] <= fields["total_s"]
    assert fields["first_visible_s"] is not None
    assert fields["prompt_tokens"] > 0
    assert fields["completion_tokens"] > 0
    assert "chat=5001" in line.getMessage()
    entry = json.loads(JsonFormatter([]).format(line))
    assert entry["outcome"] == "completed"
    for rec in caplog.records:
        if rec.levelno >= logging.INFO:
            text = rec.getMessage()
            assert "zebras" not in text
            assert "stripes" not in text
