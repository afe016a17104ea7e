"""What a GLM answer stream yields: typed events, free of the SDK and of HTTP."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = [
    "ReasoningDelta",
    "SearchResult",
    "SearchResults",
    "StreamEnd",
    "StreamEvent",
    "TextDelta",
    "Usage",
]


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int
    # part of completion_tokens (usage.completion_tokens_details.reasoning_tokens)
    reasoning_tokens: int = 0


@dataclass(frozen=True, slots=True)
class TextDelta:
    """A piece of answer text (``delta.content``)."""

    text: str


@dataclass(frozen=True, slots=True)
class ReasoningDelta:
    """A piece of a thinking model's reasoning (``delta.reasoning_content``); it streams
    before the answer text and is not part of the answer."""

    text: str


@dataclass(frozen=True, slots=True)
class SearchResult:
    """One source of the built-in web search; ``refer`` is the marker (``ref_1``) the
    model writes in its text where it uses this source."""

    title: str
    link: str
    refer: str
    media: str


@dataclass(frozen=True, slots=True)
class SearchResults:
    """The sources of a web search (the top-level ``web_search`` list of a chunk)."""

    results: tuple[SearchResult, ...]


@dataclass(frozen=True, slots=True)
class StreamEnd:
    # "stop" | "length" | "sensitive" | "tool_calls" | None (a [DONE] without a reason).
    # "network_error" and "model_context_window_exceeded" are raised as GLMError instead.
    finish_reason: str | None
    usage: Usage | None


StreamEvent = TextDelta | ReasoningDelta | SearchResults | StreamEnd
