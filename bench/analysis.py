"""Per-answer records from the fakes' wall-clock timelines, and the figures built on them."""

from __future__ import annotations

import math
import re
from dataclasses import asdict, dataclass
from typing import Any

from bench.stack import Chat

_QUESTION = re.compile(r"bench question (-?\d+)$")


@dataclass
class Answer:
    """One chat's question and answer as the fakes saw them (wall-clock seconds)."""

    chat_id: int
    group: bool
    complete: bool
    messages: int
    calls: int
    refused_429: int
    pushed_at: float | None
    delivered_at: float | None  # handed to the bot by getUpdates
    glm_received_at: float | None
    glm_first_reasoning_at: float | None  # thinking models: the first reasoning chunk
    glm_first_token_at: float | None
    glm_last_chunk_at: float | None
    first_visible_at: float | None
    last_shown_at: float | None

    def span(self, start: str, end: str) -> float | None:
        a, b = getattr(self, start), getattr(self, end)
        return None if a is None or b is None else b - a

    @property
    def stream_seconds(self) -> float | None:
        """From the first chunk the user can be shown (reasoning or text) to the last."""
        if self.glm_first_reasoning_at is not None:
            return self.span("glm_first_reasoning_at", "glm_last_chunk_at")
        return self.span("glm_first_token_at", "glm_last_chunk_at")


def normalise(text: str) -> str:
    return " ".join(text.split())


def answers(
    chats: list[Chat], timeline: dict[str, Any], timings: list[dict[str, Any]], expected: str
) -> list[Answer]:
    """Join what the fake Telegram and the fake GLM recorded for each chat."""
    pushed: dict[int, dict[str, Any]] = {}
    for update in timeline["updates"]:
        pushed.setdefault(update["chat_id"], update)
    glm: dict[int, dict[str, Any]] = {}
    for timing in timings:
        found = _QUESTION.search(timing.get("user") or "")
        if found:
            glm.setdefault(int(found.group(1)), timing)
    out = []
    for chat in chats:
        entry = timeline["chats"].get(str(chat.chat_id), {})
        update = pushed.get(chat.chat_id, {})
        timing = glm.get(chat.chat_id, {})
        out.append(
            Answer(
                chat_id=chat.chat_id,
                group=chat.group,
                complete=normalise(entry.get("text", "")) == expected and not entry.get("markup"),
                messages=entry.get("messages", 0),
                calls=entry.get("calls", 0),
                refused_429=entry.get("refused_429", 0),
                pushed_at=update.get("pushed_at"),
                delivered_at=update.get("delivered_at"),
                glm_received_at=timing.get("received_at"),
                glm_first_reasoning_at=timing.get("first_reasoning_at"),
                glm_first_token_at=timing.get("first_token_at"),
                glm_last_chunk_at=timing.get("last_chunk_at"),
                first_visible_at=entry.get("first_visible_at"),
                last_shown_at=entry.get("last_shown_at"),
            )
        )
    return out


def percentile(values: list[float], q: float) -> float | None:
    """The q-th percentile (0..100), linear between closest ranks; None without values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def spread_ms(values: list[float | None]) -> dict[str, float | None]:
    """p50, p99 and max of seconds, in milliseconds."""
    seconds = [v for v in values if v is not None]

    def ms(v: float | None) -> float | None:
        return None if v is None else round(v * 1000, 1)

    return {
        "p50": ms(percentile(seconds, 50)),
        "p99": ms(percentile(seconds, 99)),
        "max": ms(max(seconds) if seconds else None),
        "n": len(seconds),
    }


def call_bound(answer: Answer, interval: float) -> int | None:
    """2 + ceil(stream seconds / interval) + one per message beyond the first (issue 4)."""
    stream = answer.stream_seconds
    if stream is None:
        return None
    return 2 + math.ceil(stream / interval) + max(0, answer.messages - 1)


def bound_check(answers_: list[Answer], interval: float) -> dict[str, Any]:
    """How many answers stayed within the Bot API call bound, and the worst excess."""
    rows = [(a.calls, call_bound(a, interval)) for a in answers_]
    checked = [(calls, bound) for calls, bound in rows if bound is not None]
    within = sum(1 for calls, bound in checked if calls <= bound)
    return {
        "interval": interval,
        "answers": len(checked),
        "within": within,
        "calls_mean": round(sum(c for c, _ in checked) / len(checked), 2) if checked else None,
        "bound_mean": round(sum(b for _, b in checked) / len(checked), 2) if checked else None,
        "worst_excess": max((c - b for c, b in checked), default=None),
    }


def records(answers_: list[Answer]) -> list[dict[str, Any]]:
    return [asdict(a) for a in answers_]
