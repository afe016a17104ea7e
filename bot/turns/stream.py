"""Streaming one answer from the model into the writer, in a task /stop can cancel.

Reasoning (thinking models) goes to the writer as it arrives, so the user sees that the
model is thinking; answer text goes as it grows, web search markers already numbered.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field

from bot.llm import (
    GLMOptions,
    Messages,
    ReasoningDelta,
    SearchResult,
    SearchResults,
    StreamEnd,
    TextDelta,
)
from bot.models import ModelSpec
from bot.preferences import Preferences
from bot.roleplay import Character, meta
from bot.turns.sources import cite
from bot.turns.types import AnswerResult, AnswerWriter, ChatModel, Turn

__all__ = ["AnswerRun", "generate", "options_for"]


@dataclass(slots=True)
class AnswerRun:
    """The answer being written in one conversation, as far as /stop needs to reach it."""

    asker: int
    # it holds the conversation (with replicas, its lease): until then it only waits, and
    # the answer being written (whose asker /stop checks) is another replica's
    holding: bool = False
    stopped: bool = False
    # the outcome is decided: a /stop now would change nothing
    settled: bool = False
    text: str = ""
    reasoning: str = ""
    sources: tuple[SearchResult, ...] = field(default_factory=tuple)
    end: StreamEnd | None = None
    stream: asyncio.Task[None] | None = None

    def stop(self) -> bool:
        """Stop the answer (before its stream began too: it is then cancelled as soon as
        it starts); False when there is nothing left to stop."""
        if self.stopped or self.settled:
            return False
        self.stopped = True
        if self.stream is not None:
            self.stream.cancel()
        return True


def options_for(
    model: ModelSpec, preferences: Preferences, turn: Turn, character: Character | None = None
) -> GLMOptions:
    """The request options of a turn: the model's limits, the chat's choices where the
    model supports them, and for a role-play model the character and the user."""
    able = model.capabilities
    roleplay = character if model.kind == "roleplay" else None
    return GLMOptions(
        model=model.name,
        max_tokens=model.max_tokens,
        temperature=model.temperature,
        thinking=preferences.thinking if able.thinking == "optional" else None,
        reasoning_effort=preferences.reasoning_effort if able.reasoning_effort else None,
        web_search=able.web_search and (turn.search or bool(preferences.web_search)),
        meta=meta(roleplay, turn.user_name) if roleplay is not None else None,
    )


def _shown(run: AnswerRun, options: GLMOptions) -> str:
    """The answer so far as the user sees it: search markers already numbered."""
    return cite(run.text, run.sources, growing=True) if options.web_search else run.text


async def generate(
    model: ChatModel,
    messages: Messages,
    options: GLMOptions,
    writer: AnswerWriter,
    run: AnswerRun,
    result: AnswerResult,
) -> None:
    """Stream in a task of its own, so that /stop can cancel just this."""

    async def consume() -> None:
        async with contextlib.aclosing(model.stream(messages, options)) as stream:
            async for event in stream:
                if isinstance(event, TextDelta) and event.text:
                    if result.first_token_at is None:
                        result.first_token_at = time.monotonic()
                    run.text += event.text
                    searching = options.web_search
                    writer.update(
                        cite(run.text, run.sources, growing=True) if searching else run.text
                    )
                elif isinstance(event, ReasoningDelta) and event.text:
                    if result.first_reasoning_at is None:
                        result.first_reasoning_at = time.monotonic()
                    run.reasoning += event.text
                    writer.think(run.reasoning)
                elif isinstance(event, SearchResults):
                    run.sources = event.results
                elif isinstance(event, StreamEnd):
                    run.end = event

    run.stream = asyncio.create_task(consume())
    if run.stopped:  # stopped before the stream began
        run.stream.cancel()
    try:
        # "typing…" once the request is under way: one turn of the loop lets the
        # stream's task hand the request to the HTTP client first
        await asyncio.sleep(0)
        if not run.stopped:
            await writer.begin()
        await run.stream
    except BaseException:
        # cut off before the await above passed it on, or the writer failed: the
        # stream must not go on (and call the model) for an answer that has ended
        run.stream.cancel()
        raise
    finally:
        run.stream = None
