"""One info line per answer: chat, outcome, latencies, tokens. Never the text itself."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bot.turns.types import AnswerResult, Turn

__all__ = ["answer_fields", "log_answer"]

log = logging.getLogger("bot.answers")


def _seconds(start: float, end: float | None) -> float | None:
    return None if end is None else round(max(0.0, end - start), 3)


def answer_fields(turn: Turn, result: AnswerResult) -> dict[str, Any]:
    """The answer's figures, as JSON logs carry them (seconds from the answer's start)."""
    usage = result.usage
    return {
        "chat_id": turn.key.chat_id,
        "thread_id": turn.key.thread_id,
        "outcome": result.outcome.value,
        "error": result.error.value if result.error is not None else None,
        "first_token_s": _seconds(result.started_at, result.first_token_at),
        "first_visible_s": _seconds(result.started_at, result.first_visible_at),
        "total_s": _seconds(result.started_at, result.finished_at),
        "prompt_tokens": usage.prompt_tokens if usage else None,
        "completion_tokens": usage.completion_tokens if usage else None,
        "telegram_calls": result.api_calls,
        "stored": result.stored,
    }


def _show(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}s"


async def log_answer(turn: Turn, result: AnswerResult) -> None:
    """The conversation's after-answer hook."""
    fields = answer_fields(turn, result)
    tokens = (
        f"{fields['prompt_tokens']}+{fields['completion_tokens']}"
        if result.usage is not None
        else "-"
    )
    log.info(
        "answer chat=%s outcome=%s first_token=%s first_visible=%s total=%s tokens=%s calls=%s",
        turn.key.chat_id,
        fields["outcome"] + (f"/{fields['error']}" if fields["error"] else ""),
        _show(fields["first_token_s"]),
        _show(fields["first_visible_s"]),
        _show(fields["total_s"]),
        tokens,
        fields["telegram_calls"],
        extra=fields,
    )
