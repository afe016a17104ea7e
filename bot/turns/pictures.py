"""/image: a picture drawn by the catalog's image model, as one turn of the conversation.

It is queued like a question (`bot.turns.queue`), so it keeps the conversation's order,
/stop reaches it, shutdown waits for it and a crash is reported. The drawing runs in the
run's stream task: /stop cancels it, which closes the request to Zhipu, and a picture
that arrives anyway is never sent once the turn is stopped. It is charged per picture
drawn (Zhipu bills what it drew, also when the user stopped waiting for it).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Protocol, runtime_checkable

from bot.llm import ErrorKind, GLMError, Picture
from bot.models import ModelCatalog, ModelSpec
from bot.texts import text
from bot.turns.outcomes import ERROR_NOTES
from bot.turns.stream import AnswerRun
from bot.turns.types import AnswerResult, AnswerWriter, Outcome, Turn

__all__ = ["Painter", "PictureWriter", "Pictures", "image_model"]

# Tells the owners about an error only they can fix; True when they were told.
Alert = Callable[[GLMError], Awaitable[bool]]


class Painter(Protocol):
    """`bot.llm.GLMClient.draw`."""

    async def draw(self, prompt: str, *, model: str, size: str | None = None) -> Picture: ...


@runtime_checkable
class PictureWriter(AnswerWriter, Protocol):
    """A writer that can also send a picture (`bot.streaming.photos.PhotoWriter`)."""

    async def picture(self, data: bytes, caption: str) -> bool:
        """Send the picture with the caption; False when it could not be sent."""
        ...


def image_model(models: ModelCatalog) -> ModelSpec | None:
    """The catalog's image model: its first current one."""
    return next((m for m in models if m.kind == "image" and not m.legacy), None)


class Pictures:
    def __init__(self, painter: Painter, models: ModelCatalog) -> None:
        self._painter = painter
        self.model = image_model(models)

    async def draw(
        self, turn: Turn, writer: AnswerWriter, run: AnswerRun, *, alert: Alert
    ) -> AnswerResult:
        """Draw the turn's text and send the picture, or a note saying why not."""
        if not isinstance(writer, PictureWriter):
            raise TypeError("an /image turn needs a writer that sends pictures")
        lang = turn.language
        if self.model is None:
            await writer.finish("", footer=text("pictures_unavailable", lang))
            return AnswerResult(Outcome.FAILED, finished_at=time.monotonic())
        result = AnswerResult(Outcome.FAILED, model=self.model.name)
        result.request_sent_at = time.monotonic()
        drawn: list[Picture] = []
        error = await self._paint(turn.text, self.model.name, writer, run, drawn)
        run.settled = True
        result.finished_at = time.monotonic()
        result.pictures = len(drawn)
        if run.stopped:
            result.outcome = Outcome.STOPPED
            await writer.finish("", footer=text("image_stopped", lang))
        elif error is not None:
            result.error = error.kind
            filtered = error.kind is ErrorKind.FILTERED
            result.outcome = Outcome.FILTERED if filtered else Outcome.FAILED
            await writer.finish("", footer=text(await _note(error, alert), lang))
        elif await writer.picture(drawn[0].data, turn.text):
            result.outcome = Outcome.COMPLETED
            result.first_token_at = result.finished_at
        else:
            await writer.finish("", footer=text("image_not_sent", lang))
        result.first_visible_at = writer.first_visible_at
        result.api_calls = writer.api_calls
        return result

    async def _paint(
        self, prompt: str, model: str, writer: AnswerWriter, run: AnswerRun, drawn: list[Picture]
    ) -> GLMError | None:
        """Draw in the run's stream task, which /stop cancels; the error it ended with."""

        async def paint() -> None:
            drawn.append(await self._painter.draw(prompt, model=model))

        task = run.stream = asyncio.create_task(paint())
        if run.stopped:  # stopped before the drawing began
            task.cancel()
        try:
            if not run.stopped:
                await writer.begin()
            await task
        except GLMError as exc:
            return exc
        except BaseException as exc:
            # the drawing must not go on for a turn that has ended
            task.cancel()
            current = asyncio.current_task()
            by_stop = isinstance(exc, asyncio.CancelledError) and run.stopped
            if not by_stop or (current is not None and current.cancelling()):
                raise  # shutdown, or the writer failed
        finally:
            run.stream = None
        return None


async def _note(error: GLMError, alert: Alert) -> str:
    """The text key of the note a failed picture gets."""
    if error.kind is ErrorKind.FILTERED:
        return "image_refused"
    if error.kind in (ErrorKind.SERVER, ErrorKind.NETWORK, ErrorKind.UNKNOWN):
        return "image_failed"
    if error.kind is ErrorKind.BAD_REQUEST:
        return "image_bad_request"
    note = ERROR_NOTES[error.kind]
    if error.kind in (ErrorKind.NO_BALANCE, ErrorKind.AUTH) and not await alert(error):
        note = "service_unavailable_quiet"  # nobody was told: do not say so
    return note
