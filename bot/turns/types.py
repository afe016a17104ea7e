"""The data a turn carries and the ports it talks to. Nothing here does anything."""

from __future__ import annotations

import enum
import time
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from bot.llm import ErrorKind, GLMOptions, StreamEvent, Usage
from bot.messages import Message, Part, TextPart, text_of
from bot.prompt.tokens import message_tokens
from bot.storage.keys import ConversationKey

__all__ = [
    "AnswerResult",
    "AnswerWriter",
    "AnsweredHook",
    "Attachment",
    "ChatModel",
    "FailedHook",
    "FetchedImages",
    "ImageProblem",
    "ImageSource",
    "Outcome",
    "OwnerAlert",
    "PartsFeed",
    "PendingInput",
    "PreparationRefused",
    "Prepared",
    "Turn",
]


class PartsFeed(Protocol):
    """A question still arriving in pieces (an album: one update per photo)."""

    async def collected(self) -> tuple[Part, ...]:
        """All its parts, once the last has arrived."""
        ...


@dataclass(frozen=True, slots=True)
class Attachment:
    """A document's text that joins the question, cut to fit the prompt budget."""

    name: str
    text: str
    # the length of the whole text when `text` is only its start
    cut_from: int | None = None

    def as_text(self) -> str:
        """The attachment as the model reads it: its name, a word if it was cut, its text."""
        head = f"[Document: {self.name}"
        if self.cut_from is not None:
            head += f", cut: the first {len(self.text):,} of {self.cut_from:,} characters"
        return f"{head}]\n{self.text}"


@dataclass(frozen=True, slots=True)
class Prepared:
    """What a pending input became: the question's parts, and what to show or add."""

    parts: tuple[Part, ...]
    # shown above the answer: what was understood (a voice message's transcript)
    quote: str | None = None
    attachment: Attachment | None = None


class PreparationRefused(Exception):
    """The input cannot be answered (too long, unreadable, too large): `key` names the
    text (`bot.texts`) that tells the user why, `values` fill it in."""

    def __init__(self, key: str, **values: str) -> None:
        super().__init__(key)
        self.key = key
        self.values = values


class PendingInput(Protocol):
    """Something to fetch and read before a turn is answered, in the turn's place in
    its conversation's line (`bot.media.inputs`: a voice message, a document)."""

    async def prepare(self) -> Prepared:
        """The question it makes; raises PreparationRefused."""
        ...


@dataclass(frozen=True, slots=True)
class Turn:
    """One message that asks for an answer."""

    key: ConversationKey
    parts: tuple[Part, ...]
    user_id: int
    # Display name prefixed to the stored question so the model can tell group members
    # apart; None in private chats.
    speaker: str | None = None
    language: str | None = None
    # answer with GLM's web search (/search), whatever the chat's preference
    search: bool = False
    # read first (a voice message to transcribe, a document); `parts` say what it is
    # until then (what a crash notice quotes)
    pending: PendingInput | None = None
    # a document's text, joined to the question once the prompt budget is known
    attachment: Attachment | None = None
    # The asker's name as Telegram shows it (never their id), for models that address
    # the user by name (role-play); None when unknown.
    user_name: str | None = None
    # /image: draw the text as a picture (`bot.turns.pictures`) instead of answering it
    picture: bool = False
    # a question arriving in pieces (an album): its parts replace `parts` when the
    # answer starts, so the turn holds its place in the conversation's order meanwhile
    arriving: PartsFeed | None = None

    @property
    def text(self) -> str:
        return text_of(self.parts)

    def question(self) -> Message:
        """The question as stored and sent: the speaker's name before its text."""
        if self.speaker is None:
            parts = self.parts
        else:
            parts = tuple(
                TextPart(f"{self.speaker}: {part.text}") if isinstance(part, TextPart) else part
                for part in self.parts
            )
        if self.attachment is not None:
            parts = (*parts, TextPart(self.attachment.as_text()))
        return Message("user", parts, message_tokens(text_of(parts)))


class Outcome(enum.Enum):
    COMPLETED = "completed"
    STOPPED = "stopped"
    FAILED = "failed"
    INTERRUPTED = "interrupted"  # text arrived, then the stream broke off
    FILTERED = "filtered"
    SKIPPED = "skipped"  # dropped from the queue by /stop before it started


@dataclass(slots=True)
class AnswerResult:
    outcome: Outcome
    answer: str = ""
    # a thinking model's reasoning (shown folded, never stored; a stopped answer is
    # charged an estimate of it)
    reasoning: str = ""
    usage: Usage | None = None
    error: ErrorKind | None = None
    finish_reason: str | None = None
    stored: bool = False
    # the model that answered (a turn's model is chosen per chat)
    model: str = ""
    started_at: float = field(default_factory=time.monotonic)
    request_sent_at: float | None = None
    # the first reasoning of a thinking model, then the first answer text
    first_reasoning_at: float | None = None
    first_token_at: float | None = None
    finished_at: float | None = None
    # From the writer: when the user first saw text (time.monotonic()) and the Bot API
    # calls the answer cost.
    first_visible_at: float | None = None
    api_calls: int = 0
    # Calibrated estimate of the last prompt sent: what a stopped or cut answer (GLM
    # reports `usage` only at the end) is charged for its prompt.
    estimated_prompt_tokens: int = 0
    # pictures drawn (/image), charged per picture
    pictures: int = 0


class AnswerWriter(Protocol):
    """Where a growing answer goes (a Telegram message, a draft, a test double)."""

    @property
    def first_visible_at(self) -> float | None: ...

    @property
    def api_calls(self) -> int: ...

    async def begin(self) -> None: ...

    def think(self, reasoning: str) -> None:
        """The model is thinking; `reasoning` is all of it so far (may be shown)."""
        ...

    def update(self, markdown: str) -> None: ...

    async def finish(
        self, markdown: str, *, footer: str | None = None, reasoning: str | None = None
    ) -> None:
        """The final answer; `reasoning`, when given, is folded above it."""
        ...

    async def aclose(self) -> None: ...


class ChatModel(Protocol):
    """GLM, or anything that streams like it (`bot.llm.GLMClient`, its wrappers)."""

    def stream(
        self, messages: Sequence[Mapping[str, Any]], options: GLMOptions
    ) -> AsyncGenerator[StreamEvent, None]: ...


# Why an image could not go to GLM: over Telegram's download limit, no longer served, or
# not an image.
ImageProblem = Literal["too_large", "unavailable", "unreadable"]


@dataclass(frozen=True, slots=True)
class FetchedImages:
    """Images by reference: the base64 JPEGs ready for GLM, and why the others are not."""

    data: Mapping[str, str] = field(default_factory=dict)
    problems: Mapping[str, ImageProblem] = field(default_factory=dict)


class ImageSource(Protocol):
    """Where the images of a conversation come from (`bot.media.source.TelegramImages`)."""

    async def fetch(self, refs: Sequence[str]) -> FetchedImages: ...


# Tells the owners about an outage only they can fix; True when an alert went out.
OwnerAlert = Callable[[ErrorKind, str], Awaitable[bool]]
# Called after every answer (e.g. to charge its tokens); its errors are logged, not raised.
AnsweredHook = Callable[[Turn, AnswerResult], Awaitable[None]]
# Called when an answer ended in an exception nothing handled (a bug), once it is logged.
FailedHook = Callable[[Turn, Exception], None]
