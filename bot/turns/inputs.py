"""Turns whose question has to be read first: a voice message, a document.

The reading happens in the turn's place in its conversation's line (the queue's worker
calls the answer, the answer calls `prepare`), so a voice message and the text sent
after it are answered in the order they came, /stop and crash notices reach it, and
nothing is downloaded for a turn that is never answered.

- `prepare` turns the pending input into the question (`bot.turns.types.Prepared`),
  and wraps the writer so that a transcript shows above the answer.
- `fit_attachment` cuts a document's text to the prompt budget of the model that
  answers: at most half of it, the rest stays for the persona and the conversation.
"""

from __future__ import annotations

import dataclasses
import re

from bot.prompt.build import truncate_to_tokens
from bot.prompt.tokens import message_tokens
from bot.texts import text
from bot.turns.types import AnswerWriter, Attachment, Turn

__all__ = ["QuotedWriter", "cut_note", "fit_attachment", "prepare", "quote_markdown"]

# A document takes at most this share of the prompt budget.
ATTACHMENT_SHARE = 0.5
# The transcript shown above an answer is cut here: the whole of it is in the history.
SHOWN_QUOTE_CHARS = 600

# CommonMark lets any ASCII punctuation be escaped; these would format a transcript.
_MARKDOWN = re.compile(r"([\\`*_\[\]()#+\-.!|~<>{}$=&])")


async def prepare(turn: Turn, writer: AnswerWriter) -> tuple[Turn, AnswerWriter]:
    """The turn with its question read, and the writer that shows it; raises
    PreparationRefused (or GLMError, from a transcription)."""
    if turn.pending is None:
        return turn, writer
    # "typing…" while the input is downloaded and read (it stops at the first text)
    await writer.begin()
    prepared = await turn.pending.prepare()
    turn = dataclasses.replace(
        turn, parts=prepared.parts, pending=None, attachment=prepared.attachment
    )
    if prepared.quote:
        writer = QuotedWriter(writer, quote_markdown(prepared.quote))
    return turn, writer


def fit_attachment(turn: Turn, budget_tokens: int) -> Turn:
    """``turn`` with its attachment cut to its share of ``budget_tokens``: the start of
    the text, marked as cut (``Attachment.cut_from``)."""
    attachment = turn.attachment
    if attachment is None:
        return turn
    # the header the model reads above the text takes a few tokens of the share
    header = Attachment(attachment.name, "", cut_from=len(attachment.text)).as_text()
    room = int(budget_tokens * ATTACHMENT_SHARE) - message_tokens(header)
    text = truncate_to_tokens(attachment.text, max(0, room))
    if len(text) == len(attachment.text):
        return turn
    cut = Attachment(attachment.name, text, cut_from=len(attachment.text))
    return dataclasses.replace(turn, attachment=cut)


def cut_note(turn: Turn) -> str | None:
    """How much of a document cut to fit was read (None: all of it, or no document)."""
    attachment = turn.attachment
    if attachment is None or not attachment.cut_from:
        return None
    read, whole = len(attachment.text), attachment.cut_from
    return text(
        "document_cut",
        turn.language,
        name=attachment.name,
        percent=str(read * 100 // whole),
        read=f"{read:,}",
        total=f"{whole:,}",
    )


def quote_markdown(text: str) -> str:
    """``text`` as a Markdown blockquote led by a microphone, cut to a short length,
    with nothing in it taken for Markdown."""
    text = " ".join(text.split())
    if len(text) > SHOWN_QUOTE_CHARS:
        text = text[:SHOWN_QUOTE_CHARS].rstrip() + " …"
    escaped = _MARKDOWN.sub(r"\\\1", text)
    return f"> 🎤 {escaped}\n\n"


class QuotedWriter:
    """An AnswerWriter that shows ``head`` (Markdown) above everything it writes, so
    the first message of the answer starts with it: no Bot API call of its own."""

    def __init__(self, inner: AnswerWriter, head: str) -> None:
        self._inner = inner
        self._head = head

    @property
    def first_visible_at(self) -> float | None:
        return self._inner.first_visible_at

    @property
    def api_calls(self) -> int:
        return self._inner.api_calls

    async def begin(self) -> None:
        await self._inner.begin()

    def think(self, reasoning: str) -> None:
        self._inner.think(reasoning)

    def update(self, markdown: str) -> None:
        self._inner.update(self._head + markdown)

    async def finish(
        self, markdown: str, *, footer: str | None = None, reasoning: str | None = None
    ) -> None:
        await self._inner.finish(self._head + markdown, footer=footer, reasoning=reasoning)

    async def aclose(self) -> None:
        await self._inner.aclose()
